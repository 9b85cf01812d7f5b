//! Identity-Aware Proxy's "Hello *user-email*" app: the page greets the signed-in user by the email in IAP's
//! **signed** assertion (`x-goog-iap-jwt-assertion`), verified by [`RequireIapLayer`], read with [`UserEmail`].
//!
//! Like the guide's sample, the app asks the metadata server for the project number and ID at startup to know its
//! IAP audience (`/projects/NUMBER/apps/PROJECT_ID`). Unlike code that reads the plain
//! `X-Goog-Authenticated-User-Email` header, it cannot be fooled by a request that reaches it around IAP with a
//! forged header: without a valid assertion the answer is 401.

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use idgate_core::google::Endpoints;
use idgate_core::verify::IapVerifier;
use idgate_emulator::{Emulator, IapProxy, IapUserSpec};
use idgate_server::RequireIapLayer;
use idgate_server::extract::UserEmail;
use url::Url;

use crate::Result;
use crate::support::{Server, expect_body, expect_status, loopback_listener};

/// IAP's plain, unsigned email header: never identity on its own.
pub const PLAIN_EMAIL_HEADER: &str = "x-goog-authenticated-user-email";

/// A verifier for this App Engine app's IAP assertions: the audience from the metadata server, the keys fetched
/// now so that a wrong key URL fails at startup.
///
/// # Errors
///
/// When the audience cannot be discovered, or the keys cannot be fetched.
pub async fn verifier(endpoints: &Endpoints) -> Result<IapVerifier> {
    let audience = idgate_server::discover_iap_audience(&endpoints.metadata).await?;
    let verifier = IapVerifier::builder()
        .audience(audience)
        .keys_url(endpoints.iap_jwks.clone())
        .build()?;
    verifier.keys().warm().await?;
    Ok(verifier)
}

/// The app: `/` says hello to the IAP user; `/healthz` is exempt (load-balancer health checks carry no assertion).
pub fn app(verifier: IapVerifier) -> Router {
    Router::new()
        .route("/", get(say_hello))
        .route("/healthz", get(|| async { "ok" }))
        .layer(RequireIapLayer::new(verifier).exempt_path("/healthz"))
}

/// The guide's `say_hello`, as plain text (no HTML to escape the email into).
async fn say_hello(UserEmail(email): UserEmail) -> String {
    format!("Hello {email}")
}

/// Runs the app behind the emulator's IAP proxy and checks every outcome.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::start().await?;
    let endpoints = Endpoints::under(&google.base_url());
    let app = Server::spawn(loopback_listener().await?, app(verifier(&endpoints).await?))?;
    let iap = IapProxy::start(
        &google,
        Url::parse(&app.url("/"))?,
        IapUserSpec::new("alice@example.com"),
    )
    .await?;
    let http = reqwest::Client::new();

    // Through IAP: IAP signs alice in and asserts it.
    let response = http.get(iap.url()).send().await?;
    expect_status("through IAP", response.status(), StatusCode::OK)?;
    expect_body(
        "through IAP",
        &response.text().await?,
        "Hello alice@example.com",
    )?;

    // IAP replaces whatever a client sends in its headers.
    let response = http
        .get(iap.url())
        .header(
            PLAIN_EMAIL_HEADER,
            "accounts.google.com:mallory@example.com",
        )
        .send()
        .await?;
    expect_body(
        "through IAP, spoof attempt",
        &response.text().await?,
        "Hello alice@example.com",
    )?;

    // Around IAP, a spoofed plain header and no assertion: 401, whatever the header says.
    let response = http
        .get(app.url("/"))
        .header(PLAIN_EMAIL_HEADER, "accounts.google.com:alice@example.com")
        .send()
        .await?;
    expect_status(
        "spoofed header, no assertion",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;

    // An assertion IAP signed for another app: 401.
    iap.set_user(IapUserSpec::new("alice@example.com").audience("/projects/1/apps/another-app"));
    let response = http.get(iap.url()).send().await?;
    expect_status(
        "assertion for another app",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;

    // Health checks need no assertion.
    let response = http.get(app.url("/healthz")).send().await?;
    expect_status("/healthz", response.status(), StatusCode::OK)?;
    Ok(())
}
