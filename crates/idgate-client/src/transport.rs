//! The HTTP plumbing the token-endpoint and IAM sources share: one pooled client, per-request timeouts, bounded
//! retries with backoff, capped body reads, and the mapping of answers to [`SourceError`]s. (The metadata server
//! has its own client, [`MetadataClient`](idgate_core::google::MetadataClient).)

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use idgate_core::google::{CappedReadError, HttpOptions, MAX_BODY_BYTES, RetryPolicy};

use crate::error::{Endpoint, ResponseProblem, SourceError, error_detail};

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
    /// `options`' client, else the shared default client for Google's public endpoints: it honours proxy settings
    /// and follows no redirect. Google's token and IAM endpoints never redirect, and a followed 307/308 would post
    /// the same body (a refresh token and client secret, an assertion) to wherever the redirect points.
    pub(crate) fn new(options: HttpOptions) -> Self {
        static SHARED: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
        let client = match options.client {
            Some(client) => Ok(client),
            None => SHARED
                .get_or_init(|| {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(Arc::new)
                })
                .clone(),
        };
        Self {
            client,
            timeout: options.timeout,
            retry: options.retry,
        }
    }

    /// Sends the request built by `build` with retries (of transient failures: transport errors, 5xx, 429), and
    /// returns the body of a 2xx answer.
    pub(crate) async fn send(
        &self,
        endpoint: Endpoint,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, SourceError> {
        self.send_if(endpoint, build, SourceError::is_transient)
            .await
    }

    /// Like [`send`](Self::send), retrying the failures for which `retry_if` is true.
    pub(crate) async fn send_if(
        &self,
        endpoint: Endpoint,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        retry_if: fn(&SourceError) -> bool,
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
        let (result, attempts) = self.retry.run(attempt, retry_if).await;
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

/// The body of `response`, at most [`MAX_BODY_BYTES`], as a [`SourceError`] naming `endpoint`.
async fn read_capped(
    endpoint: Endpoint,
    response: reqwest::Response,
) -> Result<Vec<u8>, SourceError> {
    idgate_core::google::read_capped(response)
        .await
        .map_err(|e| match e {
            CappedReadError::TooLarge => {
                SourceError::invalid(endpoint, ResponseProblem::TooLarge(MAX_BODY_BYTES))
            }
            CappedReadError::Transport(e) => SourceError::Transport {
                endpoint,
                attempts: 1,
                error: Arc::new(e),
            },
        })
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

/// An access-token answer (`{access_token, expires_in, token_type}`, the token endpoint's and the metadata
/// server's): the token with its lifetime and, when the answer says, its granted `scope`; else `requested`.
///
/// `access_token` and `expires_in` are required; a `token_type` other than `Bearer` is refused; an `expires_in`
/// of zero or less is [`SourceError::Expired`] (Google never sends one; a clock-skewed proxy might).
pub(crate) fn access_token(
    endpoint: Endpoint,
    body: &[u8],
    requested: Option<&crate::Scopes>,
) -> Result<crate::AccessToken, SourceError> {
    let raw = json_field(endpoint, body, "access_token")?;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| SourceError::invalid(endpoint, ResponseProblem::NotJson))?;
    let expires_in = value
        .get("expires_in")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| {
            SourceError::invalid(endpoint, ResponseProblem::MissingField("expires_in"))
        })?;
    if let Some(kind) = value.get("token_type")
        && !kind
            .as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
    {
        return Err(SourceError::invalid(
            endpoint,
            ResponseProblem::MissingField("token_type"),
        ));
    }
    let lifetime = match u64::try_from(expires_in) {
        // An expiry past what `SystemTime` can hold would overflow (and panic) wherever it is added to a time.
        Ok(secs) if secs > 0 => {
            let lifetime = Duration::from_secs(secs);
            if std::time::SystemTime::now().checked_add(lifetime).is_none() {
                return Err(SourceError::invalid(
                    endpoint,
                    ResponseProblem::OutOfRange("expires_in"),
                ));
            }
            lifetime
        }
        _ => {
            use idgate_core::clock::Clock;
            let now = idgate_core::clock::SystemClock.now();
            let ago = Duration::from_secs(expires_in.unsigned_abs());
            return Err(SourceError::Expired {
                expires_at: now.checked_sub(ago).unwrap_or(now),
                now,
            });
        }
    };
    let granted = value
        .get("scope")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse::<crate::Scopes>().ok())
        .or_else(|| requested.cloned());
    let token = crate::AccessToken::new(raw, Some(lifetime));
    Ok(match granted {
        Some(scopes) => token.with_scopes(scopes),
        None => token,
    })
}

/// An RFC 3339 timestamp (IAM's `expireTime`, `2024-05-01T12:00:00.123Z`).
pub(crate) fn rfc3339(
    endpoint: Endpoint,
    field: &'static str,
    value: &str,
) -> Result<std::time::SystemTime, SourceError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(std::time::SystemTime::from)
        .map_err(|_| SourceError::invalid(endpoint, ResponseProblem::NotATime(field)))
}

/// The OAuth error code of an error answer (`unauthorized_client`, `invalid_grant`), read from the detail
/// [`error_detail`] kept (`code: description`).
pub(crate) fn oauth_error_code(error: &SourceError) -> Option<&str> {
    match error {
        SourceError::Status {
            detail: Some(detail),
            ..
        } => detail.split(':').next().map(str::trim),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scopes;

    const EP: Endpoint = Endpoint::MetadataServer;

    #[test]
    fn access_token_answers() {
        let t = access_token(
            EP,
            br#"{"access_token":"ya29.a","expires_in":3599,"token_type":"Bearer"}"#,
            None,
        )
        .unwrap();
        assert_eq!(t.as_str(), "ya29.a");
        assert_eq!(t.lifetime(), Some(Duration::from_secs(3599)));
        assert!(t.scopes().is_none());

        let asked = Scopes::new(["b", "a"]).unwrap();
        let t = access_token(
            EP,
            br#"{"access_token":"ya29.a","expires_in":10,"scope":"c a"}"#,
            Some(&asked),
        )
        .unwrap();
        assert_eq!(t.scopes().unwrap().as_claim(), "a c");
        let t = access_token(
            EP,
            br#"{"access_token":"ya29.a","expires_in":10}"#,
            Some(&asked),
        )
        .unwrap();
        assert_eq!(t.scopes(), Some(&asked));
    }

    #[test]
    fn unusable_access_token_answers_are_typed() {
        for body in [
            &br#"{"expires_in":3599}"#[..],
            br#"{"access_token":"","expires_in":3599}"#,
            br#"{"access_token":"ya29.a"}"#,
            br#"{"access_token":"ya29.a","expires_in":"soon"}"#,
            br#"{"access_token":"ya29.a","expires_in":5,"token_type":"mac"}"#,
            br#"not json"#,
            br#"[1]"#,
        ] {
            let err = access_token(EP, body, None).unwrap_err();
            assert!(err.is_invalid_response(), "{err}");
            assert!(!err.to_string().contains("ya29"), "{err}");
        }
        for body in [
            &br#"{"access_token":"ya29.a","expires_in":0}"#[..],
            br#"{"access_token":"ya29.a","expires_in":-30}"#,
        ] {
            assert!(access_token(EP, body, None).unwrap_err().is_expired());
        }
    }

    #[test]
    fn timestamps() {
        let t = rfc3339(EP, "expireTime", "2024-05-01T12:00:00.5Z").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            1_714_564_800
        );
        assert!(
            rfc3339(EP, "expireTime", "tomorrow")
                .unwrap_err()
                .is_invalid_response()
        );
    }

    #[test]
    fn oauth_codes() {
        let err = SourceError::Status {
            endpoint: Endpoint::OAuthToken,
            status: http::StatusCode::UNAUTHORIZED,
            attempts: 1,
            detail: error_detail(br#"{"error":"unauthorized_client","error_description":"Client is unauthorized: x"}"#),
        };
        assert_eq!(oauth_error_code(&err), Some("unauthorized_client"));
    }
}
