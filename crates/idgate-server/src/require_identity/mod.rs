//! Require a verified Google identity on service-to-service calls: [`RequireIdentityLayer`].
//!
//! Dual mode, for estates migrating off App Engine's App Identity API:
//!
//! 1. **`X-Appengine-Inbound-Appid`**, the legacy header, *only* when configured as trusted
//!    ([`RequireIdentityLayer::trust_legacy_header`]); otherwise it is ignored, because outside App Engine's front
//!    end anyone can send it. A trusted header that is present but empty counts as absent (App Engine never sends
//!    an empty one), so a blank copy cannot block a valid token; a non-empty value that is not an app ID is a 401;
//! 2. **`X-Serverless-Authorization: Bearer <token>`**, which Cloud Run checks and forwards intact; it wins over
//!    `Authorization` when both are present, as on Cloud Run;
//! 3. **`Authorization: Bearer <token>`** (scheme case-insensitive), or `ID <token>` as Google's migration guide
//!    prints it.
//!
//! The token is verified by an [`OidcVerifier`](idgate_core::verify::OidcVerifier) (its memo makes a repeated
//! token cost a hash and a lookup), turned into a [`Caller`](idgate_core::identity::Caller), and checked against the
//! [`Allowlist`](idgate_core::policy::Allowlist). An admitted request carries the `Caller` (and the
//! [`VerifiedIdToken`](idgate_core::verify::VerifiedIdToken), when there is one) in its extensions; read it with
//! [`VerifiedCaller`](crate::extract::VerifiedCaller). Otherwise the inner service is **never called**:
//!
//! | situation | response |
//! |---|---|
//! | no credential | 401, `WWW-Authenticate: Bearer` |
//! | unreadable credential (two `Authorization` headers, not ASCII, too large, not `Bearer`) | 401, `WWW-Authenticate: Bearer error="invalid_token"` |
//! | invalid token (signature, issuer, audience, expiry, unverified email, ...) | 401, `WWW-Authenticate: Bearer error="invalid_token"`, body `invalid token` |
//! | signature removed by Cloud Run (`SIGNATURE_REMOVED_BY_GOOGLE`) | 401, and the body says what to do |
//! | genuine but not on the allowlist | 403 |
//! | signing keys unavailable | 503, `Retry-After` |
//!
//! Exact [exempt paths](RequireIdentityLayer::exempt_path) (health checks) pass without a credential.
//!
//! # Response bodies
//!
//! Rejections are answered with a short `text/plain` body, so the layer needs to make a body of the inner
//! service's type from a `String`: it requires `ResBody: From<String>`. axum's `Body`, `http_body_util::Full<Bytes>`
//! and `String` qualify; the admitted path passes the inner response through untouched (no boxing, no mapping).
//! For another body type, map it first (e.g. `tower_http::map_response_body`). `Error` stays `S::Error`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode, header::AUTHORIZATION};
//! use idgate_core::{identity::Caller, keys::KeyFormat, policy::Allowlist, verify::OidcVerifier};
//! use idgate_emulator::{Emulator, TokenSpec};
//! use idgate_server::RequireIdentityLayer;
//! use tower::{ServiceBuilder, ServiceExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = Emulator::start().await?; // a local twin of Google's key endpoints
//! let verifier = OidcVerifier::builder()
//!     .audience("https://jobs.example.com")
//!     .keys_url(google.oidc_jwks_url())
//!     .build()?;
//! let allowlist = Allowlist::builder().project_id("billing-prod").build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(RequireIdentityLayer::new(verifier).allowlist(allowlist))
//!     .service_fn(|request: Request<Body>| async move {
//!         let caller = request.extensions().get::<Caller>().map(ToString::to_string);
//!         Ok::<_, Infallible>(Response::new(Body::from(caller.unwrap_or_default())))
//!     });
//!
//! // The App Engine default service account of an allowed project, with a token minted for this service.
//! let token = google.mint(
//!     &TokenSpec::service_account("billing-prod@appspot.gserviceaccount.com").audience("https://jobs.example.com"),
//! );
//! let request = Request::get("/jobs").header(AUTHORIZATION, format!("Bearer {token}")).body(Body::empty())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"service_account billing-prod@appspot.gserviceaccount.com");
//!
//! // No credential: 401, and the handler never runs.
//! let response = service.oneshot(Request::get("/jobs").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # Ok(()) }
//! ```

mod layer;
mod service;

pub use crate::future::ResponseFuture;
pub use layer::RequireIdentityLayer;
pub use service::RequireIdentity;
