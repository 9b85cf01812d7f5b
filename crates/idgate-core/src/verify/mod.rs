//! Token verification: Google OIDC ID tokens ([`OidcVerifier`]), IAP assertions ([`IapVerifier`]), and JWTs a
//! service account signed itself ([`ServiceAccountJwtVerifier`]).
//!
//! Both verifiers bind the algorithm to the key set (RS256 + Google's OIDC keys + Google's issuers; ES256 + IAP's
//! keys + `https://cloud.google.com/iap`), reject hostile shapes before any cryptography, always check `aud`, apply a
//! leeway (30 s by default) and a maximum lifetime, and remember verified tokens in a bounded memo keyed by the
//! token's SHA-256, so a caller that reuses its token for an hour pays for one signature check.
//!
//! A service account's own JWTs are bound to RS256, the keys that account publishes, `iss` = `sub` = the account,
//! and your audiences.
//!
//! The results, [`VerifiedIdToken`], [`VerifiedIapAssertion`] and [`VerifiedServiceAccountJwt`], have no public constructor: code that holds one
//! knows the checks ran.

mod claim_str;
mod engine;
mod error;
mod iap;
mod known_headers;
mod memo_key;
mod oidc;
mod recent;
mod service_account;

pub use error::{BuildError, VerifyError};
pub(crate) use iap::check_iap_audience;
pub use iap::{IAP_ISSUER, IapVerifier, IapVerifierBuilder, VerifiedIapAssertion};
pub use oidc::{
    AudienceMatch, DEFAULT_LEEWAY, DEFAULT_MEMO_CAPACITY, GOOGLE_ISSUERS, OidcVerifier,
    OidcVerifierBuilder, TrustedCloudRunInvokerCheck, VerifiedIdToken,
};
pub use service_account::{
    DEFAULT_MAX_SIGNED_JWT_LIFETIME, MAX_SIGNED_JWT_LIFETIME, ServiceAccountJwtVerifier,
    ServiceAccountJwtVerifierBuilder, VerifiedServiceAccountJwt,
};
