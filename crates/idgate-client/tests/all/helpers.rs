//! Shared fixtures: an emulator, an echo server, claim decoding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use idgate_client::RetryPolicy;
use idgate_core::token::IdToken;
use idgate_emulator::Emulator;
use serde_json::{Value, json};

pub(crate) const METADATA_SA: &str = "runtime@emu-project.iam.gserviceaccount.com";

pub(crate) async fn emulator() -> Emulator {
    Emulator::builder()
        .project_id("emu-project")
        .project_number(123_456_789_012)
        .metadata_service_account(METADATA_SA)
        .start()
        .await
        .expect("emulator starts")
}

/// Fast retries, so the retry tests do not wait long (no timing is asserted).
pub(crate) fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// The token's claims, decoded without verification.
pub(crate) fn claims(token: &IdToken) -> Value {
    idgate_core::token::decode_unverified(token.as_str())
        .expect("a JWT")
        .claims
}

/// A server on 127.0.0.1 that answers every request with the credential headers it received, and counts requests.
pub(crate) struct Echo {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
}

impl Echo {
    pub(crate) async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let get = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                Json(json!({
                    "authorization": get("authorization"),
                    "x-serverless-authorization": get("x-serverless-authorization"),
                }))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, hits }
    }

    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The token in a `Bearer <token>` header value.
pub(crate) fn bearer(value: &Value) -> IdToken {
    let value = value.as_str().expect("header present");
    let token = value.strip_prefix("Bearer ").expect("Bearer scheme");
    IdToken::new(token).expect("a JWT")
}

/// A loopback port nothing listens on.
pub(crate) async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// A metadata server that answers every request with `body` (and `Metadata-Flavor: Google`): for answers the
/// emulator never gives (hostile or broken ones).
pub(crate) async fn metadata_answering(body: Value) -> url::Url {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([("metadata-flavor", "Google")], Json(body)) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/").parse().unwrap()
}
