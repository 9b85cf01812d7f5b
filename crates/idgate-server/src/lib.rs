//! tower layers and axum extractors that answer, for a service on Google Cloud, **who is calling, and may they?**
//!
//! | item | what |
//! |---|---|
//! | [`RequireIdentityLayer`] | service to service: verifies Google ID tokens (`X-Serverless-Authorization`, `Authorization`) and, when trusted, the legacy `X-Appengine-Inbound-Appid`; applies the allowlist |
//! | [`RequireIapLayer`] | users behind Identity-Aware Proxy: verifies `x-goog-iap-jwt-assertion`; optional allowlist |
//! | [`extract`] | [`VerifiedCaller`](extract::VerifiedCaller), [`VerifiedIapUser`](extract::VerifiedIapUser), [`UserEmail`](extract::UserEmail) (and `Option<_>` of each) |
//! | [`IdentityRejection`] | every refusal, typed: 401 / 403 / 503 / 500, logged once on target `idgate::decision` |
//! | [`from_config`] → [`Layers`] | both layers from the TOML `Config`, keys prefetched, IAP audience discovered; readiness; stacked (`[admission] mode = "all"`) or by credential |
//! | [`ByCredentialLayer`] | `[admission] mode = "by_credential"`: each request judged by the one gate its credential names (IAP assertion, else bearer token, else a pluggable no-credential gate such as sign-in); a failed credential never falls through |
//!
//! Each check runs in one `idgate.authenticate` tracing span with OpenTelemetry-style fields (no token, no email
//! unless opted in): see [`trace`].
//!
//! The verification itself (keys, signatures, claims, identity, allowlist) is `idgate-core`'s; this crate only
//! finds the credential in the request, asks the core, and answers. The inner service is never called for a
//! request that was not admitted.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use idgate_core::{keys::KeyFormat, policy::Allowlist, verify::OidcVerifier};
//! use idgate_server::{RequireIdentityLayer, extract::VerifiedCaller};
//!
//! async fn whoami(VerifiedCaller(caller): VerifiedCaller) -> String {
//!     caller.to_string()
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = OidcVerifier::builder().audience("https://jobs.example.com").build()?;
//! let allowlist = Allowlist::builder().project_id("billing-prod").build()?;
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/healthz", get(|| async { "ok" }))
//!     .layer(RequireIdentityLayer::new(verifier).allowlist(allowlist).exempt_path("/healthz"));
//! # let _ = app; Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | on | the [`extract`] module, `IntoResponse` for [`IdentityRejection`], [`Layers::apply`] on an axum `Router`; without it the layers serve any tower/hyper stack |
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod by_credential;
mod config;
mod credential;
mod error;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod future;
mod gate;
pub mod metrics;
pub mod rejection;
pub mod require_iap;
pub mod require_identity;
pub mod trace;

pub use by_credential::{ByCredential, ByCredentialLayer};
pub use config::{Layers, discover_iap_audience, from_config};
pub use credential::CredentialHeader;
pub use error::ServerError;
pub use rejection::IdentityRejection;
pub use require_iap::{RequireIap, RequireIapLayer};
pub use require_identity::{RequireIdentity, RequireIdentityLayer};
