//! Google's signing keys: the four key formats, sources, and the [`KeyCache`] every verification reads through.
//!
//! | document | URL (default) | format | algorithm |
//! |---|---|---|---|
//! | OIDC JWKS | `https://www.googleapis.com/oauth2/v3/certs` | [`KeyFormat::OidcJwks`] | RS256 |
//! | OIDC certificates | `https://www.googleapis.com/oauth2/v1/certs` | [`KeyFormat::OidcPemCertificates`] | RS256 |
//! | IAP JWKS | `https://www.gstatic.com/iap/verify/public_key-jwk` | [`KeyFormat::IapJwks`] | ES256 |
//! | IAP PEM | `https://www.gstatic.com/iap/verify/public_key` | [`KeyFormat::IapPem`] | ES256 |
//!
//! The algorithm comes from the key set, never from the token: a set parsed as [`KeyFormat::OidcJwks`] holds only
//! RS256 keys, and a token whose header says anything else is rejected before any key is touched.
//!
//! Which of a family's two formats a document is gets read from the document itself
//! ([`KeyDocumentFormat::Detect`], the default everywhere), as Google's own libraries do: any of the four URLs
//! works as a key URL for its verifier. The family never comes from the document: an IAP document at an OIDC
//! verifier's key URL is refused ([`KeySetError::WrongFamily`]). [`KeyDocumentFormat::Exactly`] pins one format.

mod accounts;
mod cache;
mod set;
mod source;
#[cfg(test)]
mod tests;

pub(crate) use accounts::checked_account;
pub use accounts::{
    DEFAULT_ACCOUNT_CAPACITY, ServiceAccountKeyFormat, ServiceAccountKeys, SignatureError,
};
pub use cache::{KeyCache, KeyCacheConfig, KeyCacheStatus, KeyLookupError, KeysUnavailable};
pub(crate) use set::truncate;
pub use set::{KeyAlgorithm, KeyDocumentFormat, KeyFormat, KeySet, KeySetError, VerifyingKey};
pub use source::{
    FetchError, FetchedKeys, HttpKeySource, KeySource, StaticKeySource, TransportError,
};
