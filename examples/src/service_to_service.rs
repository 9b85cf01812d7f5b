//! A service that only answers other services it knows: axum, [`RequireIdentityLayer`] configured from a TOML
//! allowlist, a handler that reads the [`VerifiedCaller`], an exempt `/healthz` and a readiness probe.
//!
//! The whole setup is the TOML below plus [`idgate_server::from_config`], which builds the layer, fetches Google's
//! keys once at startup (a wrong key URL fails the deployment, not the first caller) and offers a readiness
//! handler. The example program is `examples/service_to_service.rs`.
//!
//! [`RequireIdentityLayer`]: idgate_server::RequireIdentityLayer

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use http::header::AUTHORIZATION;
use idgate_client::{IdTokenMiddleware, IdTokenSourceExt as _, ServiceAccountKey};
use idgate_core::config::Config;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::extract::VerifiedCaller;
use tokio::net::TcpListener;
use url::Url;

use crate::Result;
use crate::support::{Server, expect_body, expect_status, loopback_listener};

/// An App Engine app allowed by project ID: its default service account, `PROJECT_ID@appspot.gserviceaccount.com`.
pub const APP_ENGINE_CALLER: &str = "caller-app@appspot.gserviceaccount.com";

/// A user-managed service account of another project, allowed by email.
pub const PARTNER: &str = "billing@partner-proj.iam.gserviceaccount.com";

/// The service's configuration: who may call it, which audience their tokens must carry, and which paths need no
/// identity. `audience` is this service's URL (callers mint tokens for it); `google_base_url`, when set, puts
/// every Google endpoint under the emulator.
pub fn config_toml(audience: &str, google_base_url: Option<&Url>) -> String {
    let mut toml = format!(
        r#"[inbound]
# Tokens must be minted for this service (Cloud Run: its run.app URL or a custom audience).
audiences = ["{audience}"]
# Load balancers and kubelets call this without identity.
exempt_paths = ["/healthz"]

[inbound.allow]
# A project ID admits that project's App Engine default service account (caller-app@appspot.gserviceaccount.com).
project_ids = ["caller-app"]
# Other service accounts are listed one by one.
service_accounts = ["{PARTNER}"]
"#
    );
    if let Some(base) = google_base_url {
        toml.push_str(&format!("\n[google]\nbase_url = \"{base}\"\n"));
    }
    toml
}

/// The service: `/whoami` for allowed callers, `/healthz` exempt (by the config), `/readyz` outside the layer.
///
/// # Errors
///
/// When Google's keys cannot be fetched, or the config is unusable ([`idgate_server::ServerError`]).
pub async fn app(config: &Config) -> Result<Router> {
    let layers = idgate_server::from_config(config).await?;
    let protected = Router::new()
        .route("/whoami", get(whoami))
        .route("/healthz", get(|| async { "ok" }));
    Ok(layers
        .apply(protected)
        // Readiness needs no identity: mount it after (outside) the layers. 503 while no usable key set is held.
        .route("/readyz", get(layers.readiness_handler())))
}

/// Only runs for admitted callers: the layer already verified the token and applied the allowlist.
async fn whoami(VerifiedCaller(caller): VerifiedCaller) -> String {
    match caller.project() {
        Some(project) => format!("hello {caller} from project {project}"),
        None => format!("hello {caller}"),
    }
}

/// Serves the service on `listener` in the background, with its own address as the audience.
///
/// # Errors
///
/// As [`app`], or when the configuration is refused.
pub async fn start(listener: TcpListener, google_base_url: Option<&Url>) -> Result<Server> {
    let audience = format!("http://{}", listener.local_addr()?);
    let config = Config::from_toml_str(&config_toml(&audience, google_base_url))?;
    Server::spawn(listener, app(&config).await?)
}

/// Runs the example against an in-process emulator and checks every outcome.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::start().await?;
    let service = start(loopback_listener().await?, Some(&google.base_url())).await?;
    let http = reqwest::Client::new();

    // No identity needed for the probes.
    let response = http.get(service.url("/healthz")).send().await?;
    expect_status("/healthz", response.status(), StatusCode::OK)?;
    let response = http.get(service.url("/readyz")).send().await?;
    expect_status("/readyz", response.status(), StatusCode::OK)?;

    // No credential: 401.
    let response = http.get(service.url("/whoami")).send().await?;
    expect_status("no credential", response.status(), StatusCode::UNAUTHORIZED)?;

    // The allowed App Engine app, minting with its key file (what GOOGLE_APPLICATION_CREDENTIALS would name).
    let key = google.try_create_service_account(APP_ENGINE_CALLER)?;
    let source = ServiceAccountKey::from_json(key.to_json().as_bytes())?.cached();
    let caller = reqwest_middleware::ClientBuilder::new(http.clone())
        .with(IdTokenMiddleware::new(source))
        .build();
    let response = caller.get(service.url("/whoami")).send().await?;
    expect_status("allowed App Engine app", response.status(), StatusCode::OK)?;
    expect_body(
        "allowed App Engine app",
        &response.text().await?,
        "hello service_account caller-app@appspot.gserviceaccount.com from project caller-app",
    )?;

    // The allowed partner, with a token from anywhere Google signs them.
    let token = google.try_mint(&TokenSpec::service_account(PARTNER).audience(service.origin()))?;
    let response = http
        .get(service.url("/whoami"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status("allowed partner", response.status(), StatusCode::OK)?;

    // A genuine token of a service account nobody listed: 403.
    let intruder = "intruder@evil-proj.iam.gserviceaccount.com";
    let token =
        google.try_mint(&TokenSpec::service_account(intruder).audience(service.origin()))?;
    let response = http
        .get(service.url("/whoami"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status(
        "not on the allowlist",
        response.status(),
        StatusCode::FORBIDDEN,
    )?;

    // An allowed caller's token minted for another service (a replay): 401.
    let token = google.try_mint(
        &TokenSpec::service_account(PARTNER).audience("https://other-service.example.com"),
    )?;
    let response = http
        .get(service.url("/whoami"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status(
        "token for another audience",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;

    // An expired token: 401.
    let token = google.try_mint(
        &TokenSpec::service_account(PARTNER)
            .audience(service.origin())
            .expired(),
    )?;
    let response = http
        .get(service.url("/whoami"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status("expired token", response.status(), StatusCode::UNAUTHORIZED)?;
    Ok(())
}
