//! Where key documents come from.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{KeyAlgorithm, KeyDocumentFormat, KeySet, KeySetError};

/// The largest key document idgate reads (Google's are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A freshly fetched key set, with how long its origin says it may be cached.
#[derive(Debug, Clone)]
pub struct FetchedKeys {
    /// The parsed keys.
    pub keys: KeySet,
    /// `Cache-Control: max-age` minus `Age`, when the origin said; `None` means "no guidance".
    pub max_age: Option<Duration>,
}

/// Why a key fetch failed. Safe to log: it carries no key material and no token.
///
/// Like every idgate error its message is one level; the cause, if any, is its
/// [`source`](std::error::Error::source) (print the whole chain with [`ErrorChain`](crate::ErrorChain)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The endpoint answered with a non-success status.
    #[error("key endpoint answered HTTP {0}")]
    Status(u16),
    /// The endpoint could not be reached, or the connection failed; the [`TransportError`] says how.
    #[error("key endpoint unreachable")]
    Transport(#[source] TransportError),
    /// The fetch did not complete within the configured timeout.
    #[error("key fetch timed out after {0:?}")]
    Timeout(Duration),
    /// The document is larger than 1 MiB.
    #[error("key document is larger than 1 MiB")]
    TooLarge,
    /// The document could not be parsed.
    #[error(transparent)]
    Parse(#[from] KeySetError),
    /// No fetch was made: the unknown-`kid` refetch interval has not passed since the last one, and no earlier
    /// fetch failed (so there is no other failure to report).
    #[error("key refetch rate-limited (at most one per unknown-kid interval)")]
    RateLimited,
}

/// Why a key endpoint could not be reached: the transport's own error (for [`HttpKeySource`], reqwest's, with the
/// URL removed), kept whole so its causes (a refused connection, a TLS failure, ...) stay in the chain.
///
/// Cheap to clone (shared). Two are equal when they are the same failure, that is one is a clone of the other.
///
/// ```
/// use idgate_core::ErrorChain;
/// use idgate_core::keys::{FetchError, TransportError};
///
/// // A custom `KeySource` reports its transport's failure like this.
/// let error = FetchError::Transport(TransportError::new(std::io::Error::other("connection refused")));
/// assert_eq!(error.to_string(), "key endpoint unreachable");
/// assert_eq!(ErrorChain(&error).to_string(), "key endpoint unreachable: connection refused");
/// ```
#[derive(Debug, Clone)]
pub struct TransportError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl TransportError {
    /// Wraps the transport's error (anything that converts into a boxed error, a `&str` too).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self(Arc::from(error.into()))
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Transparent: this wrapper adds no level of its own, so the chain goes on with the wrapped error's cause.
        self.0.source()
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TransportError {}

/// A source of key sets: Google's endpoints over HTTP, or a fixed set.
///
/// Implement it to plug in another transport; [`super::KeyCache`] adds caching, single-flight, rate limiting and
/// stale-while-error on top of any source.
pub trait KeySource: fmt::Debug + Send + Sync + 'static {
    /// Fetches the current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<FetchedKeys, FetchError>>;

    /// A short description for logs (the URL, or "static").
    fn describe(&self) -> String;

    /// The algorithm every key this source yields is bound to.
    fn algorithm(&self) -> KeyAlgorithm;
}

/// Fetches one of Google's key documents over HTTP(S).
///
/// ```
/// use idgate_core::keys::{HttpKeySource, KeyAlgorithm, KeyFormat, KeySource};
///
/// # fn main() -> Result<(), url::ParseError> {
/// // OIDC keys from whichever document the URL serves (google-auth's default is the v1 certificates).
/// let detect = HttpKeySource::new("https://www.googleapis.com/oauth2/v1/certs".parse()?, KeyAlgorithm::Rs256);
/// // Or exactly one format.
/// let jwks = HttpKeySource::new("https://www.googleapis.com/oauth2/v3/certs".parse()?, KeyFormat::OidcJwks);
/// assert_eq!(detect.algorithm(), jwks.algorithm());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpKeySource {
    url: url::Url,
    format: KeyDocumentFormat,
    client: reqwest::Client,
}

impl HttpKeySource {
    /// A source for `url`, read as `format` (a [`KeyAlgorithm`] to detect JWKS vs PEM from each document, or a
    /// fixed [`KeyFormat`](super::KeyFormat)), with a default HTTP client (rustls, 5 s connect timeout).
    pub fn new(url: url::Url, format: impl Into<KeyDocumentFormat>) -> Self {
        let format = format.into();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            url,
            format,
            client,
        }
    }

    /// Uses `client` (to share a connection pool or set a proxy).
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The URL fetched.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    async fn fetch_inner(&self) -> Result<FetchedKeys, FetchError> {
        let response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Transport(TransportError::new(e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max_age = cache_lifetime(response.headers());
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(TransportError::new(e.without_url())))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
        }
        let keys = self.format.parse(&body)?;
        Ok(FetchedKeys { keys, max_age })
    }
}

impl KeySource for HttpKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<FetchedKeys, FetchError>> {
        Box::pin(self.fetch_inner())
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.format.algorithm()
    }
}

/// A fixed key set, never refreshed: for tests and for keys provisioned out of band.
#[derive(Debug, Clone)]
pub struct StaticKeySource {
    keys: KeySet,
}

impl StaticKeySource {
    /// Serves `keys` forever.
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }
}

impl KeySource for StaticKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<FetchedKeys, FetchError>> {
        let keys = self.keys.clone();
        Box::pin(async move {
            Ok(FetchedKeys {
                keys,
                max_age: None,
            })
        })
    }

    fn describe(&self) -> String {
        "static".to_owned()
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.keys.algorithm()
    }
}

/// `Cache-Control: max-age` minus `Age`, as Go's idtoken cache computes it. `no-store`/`no-cache` mean zero
/// (the cache then clamps to its minimum rather than refetching on every request).
pub(crate) fn cache_lifetime(headers: &http::HeaderMap) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("max-age") {
                max_age = arg.trim().trim_matches('"').parse().ok().or(max_age);
            } else if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache")
            {
                return Some(Duration::ZERO);
            }
        }
    }
    let age: u64 = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::{AGE, CACHE_CONTROL};

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn max_age_minus_age() {
        let h = headers(&[
            (
                CACHE_CONTROL,
                "public, max-age=19204, must-revalidate, no-transform",
            ),
            (AGE, "204"),
        ]);
        assert_eq!(cache_lifetime(&h), Some(Duration::from_secs(19000)));
    }

    #[test]
    fn age_larger_than_max_age_is_zero() {
        let h = headers(&[(CACHE_CONTROL, "max-age=10"), (AGE, "50")]);
        assert_eq!(cache_lifetime(&h), Some(Duration::ZERO));
    }

    #[test]
    fn absent_or_garbage_is_none() {
        assert_eq!(cache_lifetime(&HeaderMap::new()), None);
        let h = headers(&[(CACHE_CONTROL, "max-age=abc")]);
        assert_eq!(cache_lifetime(&h), None);
        let h = headers(&[(CACHE_CONTROL, "public"), (AGE, "garbage")]);
        assert_eq!(cache_lifetime(&h), None);
    }

    #[test]
    fn no_store_is_zero() {
        let h = headers(&[(CACHE_CONTROL, "no-store, max-age=100")]);
        assert_eq!(cache_lifetime(&h), Some(Duration::ZERO));
    }
}
