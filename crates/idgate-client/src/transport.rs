//! The HTTP plumbing the token-endpoint and IAM sources share: one pooled client, per-request timeouts, bounded
//! retries with backoff, capped body reads, and the mapping of answers to [`SourceError`]s. (The metadata server
//! has its own client, [`MetadataClient`](idgate_core::google::MetadataClient).)

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use idgate_core::google::{HttpOptions, RetryPolicy};

use crate::error::{Endpoint, ResponseProblem, SourceError, error_detail};

/// The largest body idgate reads from a Google endpoint: tokens are ~1 KiB, error bodies a few hundred bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// An HTTP client as the sources use it, built from [`HttpOptions`].
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Result<reqwest::Client, Arc<reqwest::Error>>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Default for Http {
    fn default() -> Self {
        Self::new(HttpOptions::default())
    }
}

impl Http {
    /// `options`' client, else the shared default client for Google's public endpoints (which honours proxy
    /// settings).
    pub(crate) fn new(options: HttpOptions) -> Self {
        static SHARED: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
        let client = match options.client {
            Some(client) => Ok(client),
            None => SHARED
                .get_or_init(|| reqwest::Client::builder().build().map_err(Arc::new))
                .clone(),
        };
        Self {
            client,
            timeout: options.timeout,
            retry: options.retry,
        }
    }

    /// Sends the request built by `build` with retries, and returns the body of a 2xx answer.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
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
        let attempt = || async {
            let response = build(client)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| SourceError::Transport {
                    endpoint,
                    attempts: 1,
                    error: Arc::new(e),
                })?;
            read(endpoint, response).await
        };
        let (result, attempts) = self.retry.run(attempt, SourceError::is_transient).await;
        result.map_err(|e| e.with_attempts(attempts))
    }
}

async fn read(endpoint: Endpoint, response: reqwest::Response) -> Result<Vec<u8>, SourceError> {
    let status = response.status();
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
