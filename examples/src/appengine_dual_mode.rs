//! Google's "Migrating from App Identity to OIDC ID tokens" guide, both sides, in Rust.
//!
//! **The receiver** ([`receiver`]) is the guide's upgraded app: while the estate migrates it accepts
//! both the legacy `X-Appengine-Inbound-Appid` header (set by App Engine's URL Fetch for Python 2 callers) and
//! Google-signed ID tokens (from migrated callers), maps either to the caller's project ID, and answers only the
//! app IDs on its list (403 for the others). Two differences from Google's Python sample, both on purpose:
//!
//! - the legacy header is honoured only because the code *declares* that the service sits behind App Engine's
//!   front end ([`TrustedAppEngineFrontEnd`]), which strips the header from client requests; anywhere else anyone
//!   could send it;
//! - the token's audience is checked (Google's sample does not check it, so a token minted for any service
//!   would be accepted). Since Google's sample caller mints for the *full* target URL, the receiver accepts any
//!   URL on its own origin ([`AudienceMatch::Origin`]), never another host's.
//!
//! **The caller** ([`caller`]) is the guide's migrated app: a reqwest client whose [`IdTokenMiddleware`] mints a
//! token per target (audience = the target's origin, e.g. `https://other-app.appspot.com`) and attaches it.
//! [`call_like_google_sample`] shows the per-request override that mints for the full URL, as
//! `fetch_id_token(request, url)` does. The same per target host, for every request to it:
//!
//! ```
//! # use idgate_client::{IdTokenMiddleware, IdTokenSourceExt as _, MetadataServer};
//! let middleware = IdTokenMiddleware::new(MetadataServer::new().cached())
//!     .audience_for_host("other-app.appspot.com", "https://other-app.appspot.com/incoming");
//! # let _ = middleware;
//! ```

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use http::header::AUTHORIZATION;
use idgate_client::{
    Audience, IdTokenMiddleware, IdTokenSource, IdTokenSourceExt as _, MetadataServer,
};
use idgate_core::google::Endpoints;
use idgate_core::identity::{Caller, TrustedAppEngineFrontEnd};
use idgate_core::policy::Allowlist;
use idgate_core::verify::{AudienceMatch, OidcVerifier};
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::RequireIdentityLayer;
use idgate_server::extract::VerifiedCaller;
use reqwest_middleware::ClientWithMiddleware;

use crate::Result;
use crate::support::{Server, expect_body, expect_status, loopback_listener};

/// The guide's `allowed_app_ids`: the project IDs of the App Engine apps that may call.
pub const ALLOWED_APP_IDS: [&str; 2] = ["caller-app", "other-caller-app"];

/// The header App Engine's URL Fetch adds for Python 2 callers.
pub const LEGACY_HEADER: &str = "x-appengine-inbound-appid";

/// The receiving app. `audience` is its own URL; `endpoints` says where Google's keys are; `legacy` is `Some`
/// only when the app is served by App Engine's front end.
///
/// # Errors
///
/// When the verifier or the allowlist cannot be built.
pub fn receiver(
    audience: &str,
    endpoints: &Endpoints,
    legacy: Option<TrustedAppEngineFrontEnd>,
) -> Result<Router> {
    let verifier = OidcVerifier::builder()
        .audience(audience)
        // Also accept `aud = https://this-app.appspot.com/any/path`, what Google's sample caller mints.
        .audience_match(AudienceMatch::Origin)
        .keys_url(endpoints.oidc_jwks.clone())
        .build()?;
    let allowlist = ALLOWED_APP_IDS
        .iter()
        .fold(Allowlist::builder(), |list, id| list.project_id(*id))
        .build()?;
    let mut layer = RequireIdentityLayer::new(verifier).allowlist(allowlist);
    if let Some(front_end) = legacy {
        layer = layer.trust_legacy_header(front_end);
    }
    Ok(Router::new().route("/", get(incoming)).layer(layer))
}

/// The guide's handler: answers with the calling app's ID (the layer has already refused everyone else).
async fn incoming(VerifiedCaller(caller): VerifiedCaller) -> String {
    let how = match &caller {
        Caller::AppEngineApp(_) => "X-Appengine-Inbound-Appid",
        _ => "ID token",
    };
    // App Engine default service accounts (ID@appspot.gserviceaccount.com) carry the project ID.
    match caller.project() {
        Some(project) => format!("Hello, {project} (via {how})"),
        None => format!("Hello, {caller} (via {how})"),
    }
}

/// The migrated caller's HTTP client: every request carries `Authorization: Bearer <ID token>` minted by
/// `source` for the target's origin, cached per audience until shortly before it expires.
pub fn caller<S: IdTokenSource + 'static>(source: S) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdTokenMiddleware::new(source.cached()))
        .build()
}

/// A GET with the token minted for the full `url`, as Google's sample does (`fetch_id_token(request, url)`):
/// the [`Audience`] extension overrides the origin for this request only.
///
/// # Errors
///
/// When no token can be minted or the request fails.
pub async fn call_like_google_sample(
    client: &ClientWithMiddleware,
    url: &str,
) -> reqwest_middleware::Result<reqwest::Response> {
    client
        .get(url)
        .with_extension(Audience::new(url))
        .send()
        .await
}

/// Runs both sides against an in-process emulator and checks every outcome.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::builder()
        .metadata_service_account("caller-app@appspot.gserviceaccount.com")
        .start()
        .await?;
    let endpoints = Endpoints::under(&google.base_url());
    let listener = loopback_listener().await?;
    let origin = format!("http://{}", listener.local_addr()?);
    // Loopback is not App Engine's front end: trusting the header here is only for the test, which plays URL Fetch.
    let front_end = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    let app = Server::spawn(listener, receiver(&origin, &endpoints, Some(front_end))?)?;
    let url = app.url("/");
    let http = reqwest::Client::new();

    // A legacy Python 2 app: URL Fetch added its app ID.
    let response = http
        .get(&url)
        .header(LEGACY_HEADER, "caller-app")
        .send()
        .await?;
    expect_status(
        "legacy header, allowed app",
        response.status(),
        StatusCode::OK,
    )?;
    expect_body(
        "legacy header, allowed app",
        &response.text().await?,
        "Hello, caller-app (via X-Appengine-Inbound-Appid)",
    )?;
    let response = http
        .get(&url)
        .header(LEGACY_HEADER, "stranger-app")
        .send()
        .await?;
    expect_status(
        "legacy header, other app",
        response.status(),
        StatusCode::FORBIDDEN,
    )?;

    // A migrated app: the metadata server mints its token, audience = the receiver's origin.
    let client = caller(MetadataServer::from_base_url(&google.base_url()));
    let response = client.get(&url).send().await?;
    expect_status("ID token, allowed app", response.status(), StatusCode::OK)?;
    expect_body(
        "ID token, allowed app",
        &response.text().await?,
        "Hello, caller-app (via ID token)",
    )?;

    // Google's sample mints for the full URL; the receiver accepts it because the origin is its own.
    let response = call_like_google_sample(&client, &url).await?;
    expect_status(
        "ID token for the full URL",
        response.status(),
        StatusCode::OK,
    )?;

    // The guide's header format, `Authorization: ID <token>`.
    let token = google.try_mint(
        &TokenSpec::service_account("other-caller-app@appspot.gserviceaccount.com")
            .audience(&origin),
    )?;
    let response = http
        .get(&url)
        .header(AUTHORIZATION, format!("ID {token}"))
        .send()
        .await?;
    expect_status(
        "Authorization: ID <token>",
        response.status(),
        StatusCode::OK,
    )?;

    // A genuine App Engine app that is not on the list: 403.
    let token = google.try_mint(
        &TokenSpec::service_account("stranger-app@appspot.gserviceaccount.com").audience(&origin),
    )?;
    let response = http
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status(
        "ID token, other app",
        response.status(),
        StatusCode::FORBIDDEN,
    )?;

    // An allowed app's token minted for another service: Google's sample would accept it; this receiver does not.
    let token = google.try_mint(
        &TokenSpec::service_account("caller-app@appspot.gserviceaccount.com")
            .audience("https://another-app.appspot.com/"),
    )?;
    let response = http
        .get(&url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await?;
    expect_status(
        "token for another service",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;

    // Without the front-end declaration the header is ignored: a plain request with it has no credential.
    let untrusting = Server::spawn(
        loopback_listener().await?,
        receiver(&origin, &endpoints, None)?,
    )?;
    let response = http
        .get(untrusting.url("/"))
        .header(LEGACY_HEADER, "caller-app")
        .send()
        .await?;
    expect_status(
        "legacy header, not trusted",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    Ok(())
}
