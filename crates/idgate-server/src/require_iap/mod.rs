//! Require a verified Identity-Aware Proxy assertion: [`RequireIapLayer`].
//!
//! IAP signs every request it lets through with an ES256 assertion in `x-goog-iap-jwt-assertion`. This layer
//! verifies it with an [`IapVerifier`](idgate_core::verify::IapVerifier) (issuer `https://cloud.google.com/iap`, your
//! audience, 10-minute lifetime), optionally applies an [`Allowlist`](idgate_core::policy::Allowlist) of users
//! (emails, domains, Workspace `hd`), and puts the user in the request extensions for the
//! [`VerifiedIapUser`](crate::extract::VerifiedIapUser), [`UserEmail`](crate::extract::UserEmail) and
//! [`VerifiedCaller`](crate::extract::VerifiedCaller) extractors.
//!
//! **External identities** (IAP with Identity Platform; the assertion carries a `gcip` claim): with email/password
//! sign-up anyone can register any address, so the email counts only when the identity provider verified it
//! (`gcip.email_verified: true`). An unverified one matches no `emails` or `domains` entry (403, logged as
//! `email_not_verified`; the signed `hd` claim still counts), is not what [`UserEmail`](crate::extract::UserEmail)
//! or [`Caller::email`](idgate_core::identity::Caller::email) return, and never reaches a proxied upstream as
//! `X-Idgate-Caller-Email`. Google accounts (no `gcip`) are always verified: IAP admits no other.
//!
//! IAP's unsigned `X-Goog-Authenticated-User-Email` header is **never** identity: it is ignored, or, behind
//! [`RequireIapLayer::compare_plain_user_headers`], compared with the verified assertion (a mismatch is a 401).
//!
//! | situation | response |
//! |---|---|
//! | no assertion | 401 |
//! | invalid assertion, or plain header mismatch | 401 |
//! | user not on the allowlist | 403 |
//! | IAP signing keys unavailable | 503, `Retry-After` |
//!
//! Response bodies: as for [`RequireIdentityLayer`](crate::RequireIdentityLayer#response-bodies),
//! `ResBody: From<String>`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use idgate_core::{identity::IapUser, keys::KeyFormat, verify::IapVerifier};
//! use idgate_emulator::{Emulator, TokenSpec};
//! use idgate_server::RequireIapLayer;
//! use tower::{ServiceBuilder, ServiceExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = Emulator::start().await?;
//! let audience = google.iap_audience_app_engine(); // "/projects/NUMBER/apps/PROJECT_ID"
//! let verifier = IapVerifier::builder()
//!     .audience(audience.clone())
//!     .keys_url(google.iap_jwks_url())
//!     .build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(RequireIapLayer::new(verifier).exempt_path("/healthz"))
//!     .service_fn(|request: Request<Body>| async move {
//!         let email = request.extensions().get::<IapUser>().map(|u| u.email().to_owned());
//!         Ok::<_, Infallible>(Response::new(Body::from(email.unwrap_or_default())))
//!     });
//!
//! let assertion = google.mint(&TokenSpec::iap_user("alice@example.com").audience(audience));
//! let request = Request::get("/").header("x-goog-iap-jwt-assertion", assertion).body(Body::empty())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"alice@example.com");
//!
//! // A forged plain header without an assertion gets nowhere.
//! let request = Request::get("/")
//!     .header("x-goog-authenticated-user-email", "accounts.google.com:alice@example.com")
//!     .body(Body::empty())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```

mod layer;
mod service;

pub use crate::future::ResponseFuture;
pub use layer::RequireIapLayer;
pub use service::RequireIap;
