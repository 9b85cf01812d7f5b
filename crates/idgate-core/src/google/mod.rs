//! Talking to Google: its endpoints, each overridable (for the emulator, tests, or a private deployment), the
//! HTTP settings every request to Google uses ([`HttpOptions`], [`RetryPolicy`]), and the one client of the
//! metadata server ([`MetadataClient`]).

use url::Url;

mod http;
pub mod metadata;

pub use http::{
    CappedReadError, DEFAULT_TIMEOUT, HttpOptions, MAX_BODY_BYTES, RetryPolicy, read_capped,
};
pub use metadata::{MetadataClient, MetadataError, PROBE_TIMEOUT};

/// Every Google endpoint idgate talks to.
///
/// [`Endpoints::default`] is the real Google; [`Endpoints::under`] puts every endpoint under one base URL on
/// Google's own paths, which is how `idgate-emulator` serves them.
///
/// ```
/// use idgate_core::google::Endpoints;
///
/// let google = Endpoints::default();
/// assert_eq!(google.oidc_jwks.as_str(), "https://www.googleapis.com/oauth2/v3/certs");
///
/// let local = Endpoints::under(&"http://127.0.0.1:8085".parse().unwrap());
/// assert_eq!(local.oidc_jwks.as_str(), "http://127.0.0.1:8085/oauth2/v3/certs");
/// assert_eq!(local.metadata.as_str(), "http://127.0.0.1:8085/computeMetadata/v1/");
/// assert_eq!(local.authorization.as_str(), "http://127.0.0.1:8085/o/oauth2/v2/auth");
/// assert_eq!(
///     local.service_account_keys.as_str(),
///     "http://127.0.0.1:8085/service_accounts/v1/metadata/"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoints {
    /// OIDC signing keys as a JWKS (`oauth2/v3/certs`).
    pub oidc_jwks: Url,
    /// OIDC signing keys as X.509 certificates (`oauth2/v1/certs`).
    pub oidc_pem: Url,
    /// IAP signing keys as a JWKS (`iap/verify/public_key-jwk`).
    pub iap_jwks: Url,
    /// IAP signing keys as PEM SPKI (`iap/verify/public_key`).
    pub iap_pem: Url,
    /// The metadata server's `computeMetadata/v1/` root.
    pub metadata: Url,
    /// The OAuth 2.0 token endpoint (JWT-bearer grant).
    pub token: Url,
    /// The IAM Credentials API root (`generateIdToken`, `generateAccessToken`, `signBlob`, `signJwt`).
    pub iam_credentials: Url,
    /// The root of every service account's published public keys: `{root}x509/{EMAIL}` (X.509 certificates),
    /// `{root}jwk/{EMAIL}` (a JWKS) and `{root}raw/{EMAIL}`. What verifies `signBlob`/`signJwt` signatures.
    pub service_account_keys: Url,
    /// Google's OAuth 2.0 authorization endpoint (`o/oauth2/v2/auth`): where sign-in sends the browser.
    pub authorization: Url,
    /// The OpenID Connect userinfo endpoint (`v1/userinfo`).
    pub userinfo: Url,
    /// The OAuth 2.0 token revocation endpoint (`revoke`).
    pub revoke: Url,
}

fn url(s: &str) -> Url {
    // Only ever called with the literals below, which are valid URLs (checked by the tests).
    Url::parse(s).unwrap_or_else(|_| unreachable!("invalid built-in URL {s}"))
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            oidc_jwks: url("https://www.googleapis.com/oauth2/v3/certs"),
            oidc_pem: url("https://www.googleapis.com/oauth2/v1/certs"),
            iap_jwks: url("https://www.gstatic.com/iap/verify/public_key-jwk"),
            iap_pem: url("https://www.gstatic.com/iap/verify/public_key"),
            metadata: url("http://metadata.google.internal/computeMetadata/v1/"),
            token: url("https://oauth2.googleapis.com/token"),
            iam_credentials: url("https://iamcredentials.googleapis.com/"),
            service_account_keys: url("https://www.googleapis.com/service_accounts/v1/metadata/"),
            authorization: url("https://accounts.google.com/o/oauth2/v2/auth"),
            userinfo: url("https://openidconnect.googleapis.com/v1/userinfo"),
            revoke: url("https://oauth2.googleapis.com/revoke"),
        }
    }
}

impl Endpoints {
    /// Every endpoint under `base`, on Google's own paths (as `idgate-emulator` serves them).
    pub fn under(base: &Url) -> Self {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |path: &str| base.join(path).unwrap_or_else(|_| base.clone());
        Self {
            oidc_jwks: join("oauth2/v3/certs"),
            oidc_pem: join("oauth2/v1/certs"),
            iap_jwks: join("iap/verify/public_key-jwk"),
            iap_pem: join("iap/verify/public_key"),
            metadata: join("computeMetadata/v1/"),
            token: join("token"),
            iam_credentials: base.clone(),
            service_account_keys: join("service_accounts/v1/metadata/"),
            authorization: join("o/oauth2/v2/auth"),
            userinfo: join("v1/userinfo"),
            revoke: join("revoke"),
        }
    }
}
