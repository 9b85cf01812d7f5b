//! The verification core of idgate: everything that decides whether a Google token is genuine and whether its
//! bearer may call you. No web framework here; `idgate-server` puts this behind tower layers.
//!
//! # Example: verify a token, name the caller, decide
//!
//! Against `idgate-emulator`, a local twin of Google that mints tokens and serves the keys that verify them. In
//! production, leave out `keys_url`: the verifier then fetches Google's own keys.
//!
//! ```
//! use idgate_core::{Allowlist, Caller, OidcVerifier, identity::CallerKind};
//! use idgate_emulator::{Emulator, TokenSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = Emulator::start().await?;
//! let token = google.mint(
//!     &TokenSpec::service_account("runner@billing-prod.iam.gserviceaccount.com")
//!         .audience("https://jobs.example.com"),
//! );
//!
//! // Build once at startup: RS256 only, Google's issuers only, this audience only.
//! let verifier = OidcVerifier::builder()
//!     .audience("https://jobs.example.com")
//!     .keys_url(google.oidc_jwks_url())
//!     .build()?;
//! let verified = verifier.verify(&token).await?;
//! assert_eq!(verified.email(), Some("runner@billing-prod.iam.gserviceaccount.com"));
//!
//! // Who is calling: a service account of the project `billing-prod`.
//! let caller = Caller::from_id_token(&verified)?;
//! assert_eq!(caller.kind(), CallerKind::ServiceAccount);
//! assert_eq!(caller.to_string(), "service_account runner@billing-prod.iam.gserviceaccount.com");
//!
//! // May they? Listed by email. (Listing the project `billing-prod` would admit only its App Engine default
//! // service account, billing-prod@appspot.gserviceaccount.com, unless told to admit all of its service accounts.)
//! let allowlist = Allowlist::builder()
//!     .service_account("runner@billing-prod.iam.gserviceaccount.com")
//!     .build()?;
//! let decision = allowlist.decide(&caller);
//! assert!(decision.is_allowed());
//! assert_eq!(decision.reason(), "service_account_listed");
//!
//! // A token minted for another service is refused, whoever it names.
//! let elsewhere = google.mint(
//!     &TokenSpec::service_account("runner@billing-prod.iam.gserviceaccount.com")
//!         .audience("https://other.example.com"),
//! );
//! let refused = verifier.verify(&elsewhere).await.unwrap_err();
//! assert!(refused.is_wrong_audience());
//! assert_eq!(refused.reason(), "wrong_audience"); // stable, for logs and metrics
//! # google.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`app`] | who am I: [`app::AppIdentity`] (project, number, service account, region, zone, universe, runtime), from the environment and the metadata server |
//! | [`token`] | raw tokens (redacted `Debug`), credential extraction from header values, size limits, Cloud Run's signature-removed marker |
//! | [`keys`] | Google's four key formats, key sources, and the [`keys::KeyCache`] (max-age, single-flight, rate-limited unknown-kid refetch, stale-while-error) |
//! | [`verify`] | [`verify::OidcVerifier`] (RS256, Google issuers) and [`verify::IapVerifier`] (ES256, IAP issuer), with a memo of verified tokens |
//! | [`identity`] | [`identity::Caller`]: who is calling, derived from a verified token or a trusted legacy header |
//! | [`policy`] | the allowlist: who, among verified callers, may call |
//! | [`config`] | the suite's TOML configuration: endpoints, verifiers, allowlists, the proxy's limits; errors with line and column |
//! | [`google`] | Google's endpoint URLs, each overridable |
//! | [`clock`] | the injectable [`clock::Clock`] every expiry decision goes through |
//! | [`ErrorChain`] | prints an error with its causes (every idgate error keeps its cause in `source()`, not in its message) |
//!
//! # Security properties
//!
//! - The algorithm comes from the key set, never from the token; `none`, `HS*` and header-supplied keys are refused.
//! - `aud` is always checked: a verifier cannot be built without an audience.
//! - Tokens never appear in `Debug` output, errors or logs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod app;
pub mod audience;
mod chain;
pub mod clock;
pub mod config;
pub mod google;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod token;
pub mod verify;

pub use audience::Audience;
pub use chain::ErrorChain;
pub use config::Config;
pub use identity::Caller;
pub use policy::{Allowlist, Decision};
pub use token::IdToken;
pub use verify::{IapVerifier, OidcVerifier, VerifyError};
