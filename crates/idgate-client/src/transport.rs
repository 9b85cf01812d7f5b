//! The HTTP plumbing every source shares: one pooled client, per-request timeouts, bounded retries with backoff,
//! capped body reads, and the mapping of answers to [`SourceError`]s.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use http::StatusCode;

use crate::error::{Endpoint, ResponseProblem, SourceError, error_detail};

/// The largest body idgate reads from a Google endpoint: tokens are ~1 KiB, error bodies a few hundred bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a source retries transient failures (transport errors, timeouts, HTTP 5xx and 429). Client errors (4xx) are
/// never retried.
///
/// The default makes at most 3 attempts, waiting about 200 ms and then 400 ms (exponential, with jitter, each wait
/// capped at 2 s).
///
/// ```
/// use idgate_client::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy::default().max_attempts(5).max_delay(Duration::from_secs(5));
/// assert_eq!(patient.attempts(), 5);
/// assert_eq!(RetryPolicy::none().attempts(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The total number of attempts (at least 1, at most 10).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.clamp(1, 10);
        self
    }

    /// The wait before the first retry; later waits double.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest single wait between attempts.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The configured number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay.max(self.initial_delay))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// An HTTP client as the sources use it.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Result<reqwest::Client, Arc<reqwest::Error>>,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl Http {
    /// The shared default client for Google's public endpoints (honours proxy settings).
    pub(crate) fn public() -> Self {
        static CLIENT: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
        let client = CLIENT
            .get_or_init(|| reqwest::Client::builder().build().map_err(Arc::new))
            .clone();
        Self {
            client,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// The shared default client for the metadata server: never through a proxy (the metadata server is link-local
    /// and must be reached directly), no redirects.
    pub(crate) fn metadata() -> Self {
        static CLIENT: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
        let client = CLIENT
            .get_or_init(|| {
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(Arc::new)
            })
            .clone();
        Self {
            client,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    pub(crate) fn set_client(&mut self, client: reqwest::Client) {
        self.client = Ok(client);
    }

    /// Sends the request built by `build` with retries, and returns the body of a 2xx answer.
    ///
    /// `metadata_flavor`: require `Metadata-Flavor: Google` on every non-5xx answer.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        metadata_flavor: bool,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, SourceError> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                return Err(SourceError::Transport {
                    endpoint,
                    attempts: 0,
                    error: e.clone(),
                });
            }
        };
        let attempts = AtomicU32::new(0);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let response = build(client)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| SourceError::Transport {
                    endpoint,
                    attempts: 1,
                    error: Arc::new(e),
                })?;
            read(endpoint, metadata_flavor, response).await
        };
        let result = attempt
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(SourceError::is_transient)
            .notify(|e, after| {
                tracing::debug!(target: "idgate::client", %endpoint, error = %e, retry_in = ?after, "transient failure, retrying");
            })
            .await;
        result.map_err(|e| e.with_attempts(attempts.load(Ordering::Relaxed)))
    }
}

async fn read(
    endpoint: Endpoint,
    metadata_flavor: bool,
    response: reqwest::Response,
) -> Result<Vec<u8>, SourceError> {
    let status = response.status();
    let transient = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
    if metadata_flavor && !transient {
        let genuine = response
            .headers()
            .get("metadata-flavor")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"));
        if !genuine {
            let mut url = response.url().clone();
            url.set_query(None);
            return Err(SourceError::NotMetadataServer { url });
        }
    }
    if status.is_success() {
        return read_capped(endpoint, response).await;
    }
    let detail = match read_capped(endpoint, response).await {
        Ok(body) => error_detail(&body),
        Err(_) => None,
    };
    Err(SourceError::Status {
        endpoint,
        status,
        attempts: 1,
        detail,
    })
}

async fn read_capped(
    endpoint: Endpoint,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, SourceError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(SourceError::invalid(
            endpoint,
            ResponseProblem::TooLarge(MAX_BODY_BYTES),
        ));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(SourceError::invalid(
                        endpoint,
                        ResponseProblem::TooLarge(MAX_BODY_BYTES),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(SourceError::Transport {
                    endpoint,
                    attempts: 1,
                    error: Arc::new(e),
                });
            }
        }
    }
}

/// A JSON object body's string field.
pub(crate) fn json_field(
    endpoint: Endpoint,
    body: &[u8],
    field: &'static str,
) -> Result<String, SourceError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| SourceError::invalid(endpoint, ResponseProblem::NotJson))?;
    if !value.is_object() {
        return Err(SourceError::invalid(endpoint, ResponseProblem::NotJson));
    }
    match value.get(field).and_then(|v| v.as_str()) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(SourceError::invalid(
            endpoint,
            ResponseProblem::MissingField(field),
        )),
    }
}

/// A JSON object body's `expires_in` (seconds), when present.
pub(crate) fn expires_in(body: &[u8]) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get("expires_in")
        .and_then(serde_json::Value::as_u64)
        .map(Duration::from_secs)
}

/// Wraps a raw token from an endpoint, checking that it is a JWT with a readable `exp`.
pub(crate) fn id_token(
    endpoint: Endpoint,
    raw: String,
) -> Result<idgate_core::token::IdToken, SourceError> {
    let token = idgate_core::token::IdToken::new(raw)
        .map_err(|e| SourceError::invalid(endpoint, ResponseProblem::MalformedToken(e)))?;
    token
        .unverified_expiry()
        .map_err(|_| SourceError::invalid(endpoint, ResponseProblem::NoExpiry))?;
    Ok(token)
}
