//! The verification core of idgate: everything that decides whether a Google token is genuine and whether its
//! bearer may call you. No web framework here; `idgate-server` puts this behind tower layers.
//!
//! | module | what it holds |
//! |---|---|
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

pub mod audience;
mod chain;
pub mod clock;
pub mod config;
pub mod google;
pub mod identity;
pub mod keys;
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
