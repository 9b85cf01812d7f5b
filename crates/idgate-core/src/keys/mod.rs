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

mod cache;
mod set;
mod source;
#[cfg(test)]
mod tests;

pub use cache::{KeyCache, KeyCacheConfig, KeyCacheStatus, KeyLookupError, KeysUnavailable};
pub(crate) use set::truncate;
pub use set::{KeyAlgorithm, KeyFormat, KeySet, KeySetError, VerifyingKey};
pub use source::{FetchError, FetchedKeys, HttpKeySource, KeySource, StaticKeySource};
