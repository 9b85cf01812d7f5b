//! End-to-end tests of idgate-server against the emulator, over real HTTP on 127.0.0.1. One binary, with modules.

mod by_credential;
mod extract;
mod iap;
mod identity;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::HeaderMap;
use idgate_core::policy::Allowlist;
use idgate_core::verify::OidcVerifier;
use idgate_emulator::Emulator;
use idgate_server::extract::VerifiedCaller;

pub(crate) const AUDIENCE: &str = "https://jobs.idgate.test";
/// The allowed project: its App Engine default service account is admitted.
pub(crate) const ALLOWED_SA: &str = "billing-prod@appspot.gserviceaccount.com";
pub(crate) const OTHER_SA: &str = "intruder@other-proj.iam.gserviceaccount.com";

/// What the handler saw, one entry per call.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<(Option<String>, HeaderMap)>>>);

impl Seen {
    pub(crate) fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub(crate) fn last_caller(&self) -> Option<String> {
        self.0.lock().unwrap().last().and_then(|(c, _)| c.clone())
    }
}

async fn record(
    State(seen): State<Seen>,
    caller: Option<VerifiedCaller>,
    headers: HeaderMap,
) -> String {
    let caller = caller.map(|VerifiedCaller(c)| c.to_string());
    seen.0.lock().unwrap().push((caller.clone(), headers));
    caller.unwrap_or_else(|| "anonymous".to_owned())
}

/// A router whose every path records what it saw.
pub(crate) fn recording_router(seen: &Seen) -> Router {
    Router::new()
        .route("/", get(record))
        .route("/healthz", get(record))
        .with_state(seen.clone())
}

/// Serves `router` on 127.0.0.1 and returns its base URL.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

pub(crate) async fn emulator() -> Emulator {
    Emulator::builder()
        .project_id("host-project")
        .project_number(424242424242)
        .start()
        .await
        .unwrap()
}

pub(crate) fn oidc_verifier(emulator: &Emulator) -> OidcVerifier {
    OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .unwrap()
}

pub(crate) fn allowlist() -> Allowlist {
    Allowlist::builder()
        .project_id("billing-prod")
        .build()
        .unwrap()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
