//! Typed errors for token sources and the adapters.
//!
//! No error in this module ever holds a token, an assertion, a private key, a refresh token or a response body that
//! could carry one: error bodies from Google are reduced to their `error` / `error_description` / `error.message`
//! fields, and JSON parse failures of credential files keep only the line and column.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use http::StatusCode;

use crate::audience::Audience;

/// Which Google endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The metadata server (`computeMetadata/v1/`).
    MetadataServer,
    /// An OAuth 2.0 token endpoint (a key file's `token_uri`).
    OAuthToken,
    /// The IAM Credentials API (`generateIdToken`).
    IamCredentials,
    /// A token source outside idgate (a custom [`IdTokenSource`](crate::IdTokenSource)).
    CustomSource,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MetadataServer => "metadata server",
            Self::OAuthToken => "OAuth token endpoint",
            Self::IamCredentials => "IAM Credentials API",
            Self::CustomSource => "token source",
        })
    }
}

/// Why an ID token (or the access token needed to mint one) could not be obtained.
///
/// Use the `is_*` helpers rather than matching: the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The endpoint could not be reached or did not answer in time (connection refused, DNS, TLS, timeout), after
    /// every retry.
    #[error("{endpoint}: request failed after {attempts} attempt(s): {}", ErrorChain(&**error))]
    Transport {
        /// Where the request went.
        endpoint: Endpoint,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        error: Arc<reqwest::Error>,
    },
    /// The endpoint answered with an error status (after every retry, for 5xx and 429).
    #[error("{endpoint} answered HTTP {status} after {attempts} attempt(s){}", Detail(detail.as_deref()))]
    Status {
        /// Where the request went.
        endpoint: Endpoint,
        /// The last status received.
        status: StatusCode,
        /// How many attempts were made.
        attempts: u32,
        /// Google's explanation (`error_description`, `error.message`), truncated; never a token.
        detail: Option<String>,
    },
    /// The answer did not carry `Metadata-Flavor: Google`, so whatever answered is not a metadata server (a captive
    /// portal, a proxy, another local service). Its answer is not trusted.
    #[error("{url} did not answer with `Metadata-Flavor: Google`; it is not a metadata server")]
    NotMetadataServer {
        /// The URL that answered (without its query).
        url: url::Url,
    },
    /// The endpoint answered 2xx, but the body is not what Google sends.
    #[error("{endpoint} answered with an unusable body: {problem}")]
    InvalidResponse {
        /// Where the request went.
        endpoint: Endpoint,
        /// What is wrong with it.
        problem: ResponseProblem,
    },
    /// A credentials file could not be read or parsed.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The credentials are of a kind Google cannot mint an ID token for a custom audience from.
    #[error("{}", unsupported_message(credential_type, origin.as_ref()))]
    UnsupportedCredentials {
        /// The `type` of the credentials (`authorized_user`, `external_account`, ...).
        credential_type: String,
        /// Where they came from.
        origin: Option<KeyOrigin>,
    },
    /// Application Default Credentials found nothing usable: `GOOGLE_APPLICATION_CREDENTIALS` is not set and the
    /// metadata server cannot be reached.
    #[error(
        "no Google credentials found: GOOGLE_APPLICATION_CREDENTIALS is not set and the metadata server is not \
         reachable ({metadata}); on Google Cloud this works out of the box, elsewhere point \
         GOOGLE_APPLICATION_CREDENTIALS at a service-account key or an impersonated_service_account file"
    )]
    NoCredentials {
        /// What the metadata server attempt ran into.
        metadata: Box<Self>,
    },
    /// The service-account assertion could not be signed.
    #[error("cannot sign the service-account assertion: {reason}")]
    Assertion {
        /// What went wrong (never key material).
        reason: String,
    },
    /// A token the source returned is already expired, or expires within the safety margin. Usually the local clock
    /// is far off.
    #[error(
        "the minted token expires at {} (unix), which is not after now ({}) plus the safety margin; is the clock right?",
        unix(*expires_at),
        unix(*now)
    )]
    Expired {
        /// The token's `exp`.
        expires_at: SystemTime,
        /// The time the decision was made.
        now: SystemTime,
    },
    /// The audience is empty or otherwise unusable.
    #[error("invalid audience: {reason}")]
    InvalidAudience {
        /// Why.
        reason: &'static str,
    },
    /// The configuration is invalid (an unparsable `GCE_METADATA_HOST`, a bad URL).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl SourceError {
    /// True for failures worth retrying later: transport errors, timeouts, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::NoCredentials { metadata } => metadata.is_transient(),
            _ => false,
        }
    }

    /// True when the last attempt timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Transport { error, .. } => error.is_timeout(),
            Self::NoCredentials { metadata } => metadata.is_timeout(),
            _ => false,
        }
    }

    /// True when the endpoint could not be reached (or timed out).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }

    /// The HTTP status of an error answer, if that is what this is.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when whatever answered at the metadata address is not a metadata server.
    pub fn is_not_metadata_server(&self) -> bool {
        match self {
            Self::NotMetadataServer { .. } => true,
            Self::NoCredentials { metadata } => metadata.is_not_metadata_server(),
            _ => false,
        }
    }

    /// True when a 2xx answer did not contain a usable token (missing field, not JSON, not a JWT).
    pub fn is_invalid_response(&self) -> bool {
        matches!(self, Self::InvalidResponse { .. })
    }

    /// True when a 2xx answer lacked the token field (`id_token`, `token`, `access_token`).
    pub fn is_missing_token(&self) -> bool {
        matches!(
            self,
            Self::InvalidResponse {
                problem: ResponseProblem::MissingField(_),
                ..
            }
        )
    }

    /// True when a credentials file could not be read or parsed.
    pub fn is_key_file(&self) -> bool {
        matches!(self, Self::KeyFile(_))
    }

    /// The credentials-file error, if that is what this is.
    pub fn key_file_error(&self) -> Option<&KeyFileError> {
        match self {
            Self::KeyFile(e) => Some(e),
            _ => None,
        }
    }

    /// True for credentials Google cannot mint custom-audience ID tokens from (`authorized_user`, ...).
    pub fn is_unsupported_credentials(&self) -> bool {
        matches!(self, Self::UnsupportedCredentials { .. })
    }

    /// True when Application Default Credentials found nothing usable.
    pub fn is_no_credentials(&self) -> bool {
        matches!(self, Self::NoCredentials { .. })
    }

    /// True when a minted token was already expired (or about to be).
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }

    /// True when the audience was rejected before any request.
    pub fn is_invalid_audience(&self) -> bool {
        matches!(self, Self::InvalidAudience { .. })
    }

    /// True for an invalid configuration.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. })
    }

    /// The endpoint involved, when there was a request.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::Transport { endpoint, .. }
            | Self::Status { endpoint, .. }
            | Self::InvalidResponse { endpoint, .. } => Some(*endpoint),
            Self::NotMetadataServer { .. } => Some(Endpoint::MetadataServer),
            Self::NoCredentials { metadata } => metadata.endpoint(),
            _ => None,
        }
    }

    /// How many attempts were made, when there was a request.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Transport { attempts, .. } | Self::Status { attempts, .. } => Some(*attempts),
            Self::NoCredentials { metadata } => metadata.attempts(),
            _ => None,
        }
    }

    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        if let Self::Transport { attempts, .. } | Self::Status { attempts, .. } = &mut self {
            *attempts = n;
        }
        self
    }

    pub(crate) fn invalid(endpoint: Endpoint, problem: ResponseProblem) -> Self {
        Self::InvalidResponse { endpoint, problem }
    }
}

/// What is wrong with a 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseProblem {
    /// The body is not JSON (or not a JSON object).
    #[error("the body is not a JSON object")]
    NotJson,
    /// The body is not UTF-8 text.
    #[error("the body is not UTF-8 text")]
    NotText,
    /// A required field is missing or is not a string.
    #[error("the field `{0}` is missing or not a string")]
    MissingField(&'static str),
    /// The token is not shaped like a JWT.
    #[error("the token is not a compact JWT: {0}")]
    MalformedToken(idgate_core::token::Malformed),
    /// The token has no integer `exp` claim, so it cannot be cached safely.
    #[error("the token has no readable `exp` claim")]
    NoExpiry,
    /// The body is larger than any genuine answer.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}

/// Where credentials were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyOrigin {
    /// A file.
    File(PathBuf),
    /// JSON handed over in memory.
    Json,
    /// The `source_credentials` object inside an `impersonated_service_account` file.
    SourceCredentials(Box<Self>),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "credentials file {}", path.display()),
            Self::Json => f.write_str("credentials JSON"),
            Self::SourceCredentials(outer) => write!(f, "source_credentials of {outer}"),
        }
    }
}

/// A credentials file that cannot be used. Never contains key material.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read {origin}: {error}")]
    Read {
        /// The file.
        origin: KeyOrigin,
        /// The I/O error.
        error: Arc<std::io::Error>,
    },
    /// The content is not a JSON object.
    #[error("{origin} is not a JSON object (syntax error at line {line}, column {column})")]
    NotJson {
        /// Where it came from.
        origin: KeyOrigin,
        /// 1-based line of the syntax error (0 when the JSON is valid but not an object).
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The `type` field is not the one this constructor reads.
    #[error("{origin} has type {}, expected {expected}", found.as_deref().map_or_else(|| "<missing>".to_owned(), |t| format!("`{t}`")))]
    WrongType {
        /// Where it came from.
        origin: KeyOrigin,
        /// The `type` found (bounded in length), if any.
        found: Option<String>,
        /// What was expected.
        expected: &'static str,
    },
    /// A required field is missing, empty or not a string.
    #[error("{origin} is missing the field `{field}` (or it is empty or not a string)")]
    MissingField {
        /// Where it came from.
        origin: KeyOrigin,
        /// The field.
        field: &'static str,
    },
    /// A field has an unusable value.
    #[error("{origin} has an invalid `{field}`: {reason}")]
    InvalidField {
        /// Where it came from.
        origin: KeyOrigin,
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// `private_key` is not an RSA private key in PEM form.
    #[error("{origin} has a `private_key` that is not a usable RSA private key in PEM form")]
    BadPrivateKey {
        /// Where it came from.
        origin: KeyOrigin,
    },
}

impl KeyFileError {
    /// True when the file could not be read.
    pub fn is_read(&self) -> bool {
        matches!(self, Self::Read { .. })
    }
    /// True when the content is not a JSON object.
    pub fn is_not_json(&self) -> bool {
        matches!(self, Self::NotJson { .. })
    }
    /// True when the `type` is not the expected one.
    pub fn is_wrong_type(&self) -> bool {
        matches!(self, Self::WrongType { .. })
    }
    /// True when a required field is missing.
    pub fn is_missing_field(&self) -> bool {
        matches!(self, Self::MissingField { .. })
    }
    /// True when a field has an unusable value.
    pub fn is_invalid_field(&self) -> bool {
        matches!(self, Self::InvalidField { .. })
    }
    /// True when the private key cannot be used.
    pub fn is_bad_private_key(&self) -> bool {
        matches!(self, Self::BadPrivateKey { .. })
    }
}

/// Why an adapter could not attach a token to a request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// No audience is configured and none can be derived from the request's URL (not absolute, not http(s)).
    #[error(
        "no audience for this request ({reason}); configure one with `.audience(..)` or `.audience_for_host(..)`"
    )]
    NoAudience {
        /// Why the URL gives none.
        reason: &'static str,
    },
    /// The token source failed.
    #[error("cannot get an ID token for audience {audience}: {error}")]
    Source {
        /// The audience asked for.
        audience: Audience,
        /// What the source ran into.
        error: SourceError,
    },
    /// The token cannot be written into a header value (cannot happen with a token that passed
    /// [`IdToken::new`](idgate_core::token::IdToken::new); kept so nothing panics).
    #[error("the token cannot be written into a header value")]
    InvalidHeaderValue,
}

impl AttachError {
    /// True when no audience could be determined.
    pub fn is_no_audience(&self) -> bool {
        matches!(self, Self::NoAudience { .. })
    }
    /// True when the token source failed.
    pub fn is_source(&self) -> bool {
        matches!(self, Self::Source { .. })
    }
    /// The token source's error, if that is what this is.
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            Self::Source { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Renders an error and its `source()` chain on one line (reqwest's own `Display` omits the cause, e.g.
/// "connection refused").
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        let mut depth = 0;
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
            depth += 1;
            if depth > 8 {
                break;
            }
        }
        Ok(())
    }
}

struct Detail<'a>(Option<&'a str>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unsupported_message(credential_type: &str, origin: Option<&KeyOrigin>) -> String {
    let from = origin.map(|o| format!(" (from {o})")).unwrap_or_default();
    let why = match credential_type {
        "authorized_user" | "external_account_authorized_user" => {
            "Google pins the `aud` of an ID token minted from user credentials to the OAuth client ID, so Cloud Run \
             custom audiences and IAP reject it"
        }
        "external_account" => {
            "workload identity federation credentials can mint ID tokens only by impersonating a service account"
        }
        _ => {
            "idgate mints ID tokens only from service_account and impersonated_service_account credentials"
        }
    };
    format!(
        "credentials of type `{credential_type}`{from} cannot mint an ID token for a custom audience: {why}. \
         Impersonate a service account instead: `idgate token --impersonate SA_EMAIL --audience AUD`, or \
         `gcloud auth print-identity-token --impersonate-service-account=SA_EMAIL --audiences=AUD`; for ADC, run \
         `gcloud auth application-default login --impersonate-service-account=SA_EMAIL` or point \
         GOOGLE_APPLICATION_CREDENTIALS at a service-account key"
    )
}

/// Extracts Google's explanation from an error body: OAuth's `error` / `error_description`, or the Google API
/// error's `error.status` / `error.message`. Bounded in length, control characters removed. Bodies that are not JSON
/// give nothing (they are never echoed: they might carry anything).
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let text = if let Some(code) = error.as_str() {
        match value.get("error_description").and_then(|d| d.as_str()) {
            Some(desc) => format!("{code}: {desc}"),
            None => code.to_owned(),
        }
    } else {
        let status = error.get("status").and_then(|s| s.as_str());
        let message = error.get("message").and_then(|s| s.as_str());
        match (status, message) {
            (Some(s), Some(m)) => format!("{s}: {m}"),
            (Some(s), None) => s.to_owned(),
            (None, Some(m)) => m.to_owned(),
            (None, None) => return None,
        }
    };
    Some(bounded(&text, 300))
}

/// At most `max` characters of `s`, with control characters replaced.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_reads_oauth_and_api_errors() {
        assert_eq!(
            error_detail(
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
            )
            .as_deref(),
            Some("invalid_grant: Invalid JWT Signature.")
        );
        assert_eq!(
            error_detail(br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#)
                .as_deref(),
            Some("PERMISSION_DENIED: Permission denied")
        );
        assert_eq!(error_detail(b"<html>secret</html>"), None);
        assert_eq!(error_detail(br#"{"other":1}"#), None);
    }

    #[test]
    fn bounded_truncates_and_strips_controls() {
        assert_eq!(bounded("a\nb", 10), "a b");
        assert_eq!(bounded("abcdef", 3), "abc…");
    }

    #[test]
    fn unsupported_message_gives_advice() {
        let e = SourceError::UnsupportedCredentials {
            credential_type: "authorized_user".into(),
            origin: Some(KeyOrigin::File("/tmp/adc.json".into())),
        };
        let msg = e.to_string();
        assert!(msg.contains("OAuth client ID"), "{msg}");
        assert!(msg.contains("--impersonate-service-account"), "{msg}");
        assert!(msg.contains("/tmp/adc.json"), "{msg}");
        assert!(e.is_unsupported_credentials());
    }

    #[test]
    fn transient_classification() {
        let s = |code: u16| SourceError::Status {
            endpoint: Endpoint::OAuthToken,
            status: StatusCode::from_u16(code).unwrap(),
            attempts: 1,
            detail: None,
        };
        assert!(s(503).is_transient());
        assert!(s(500).is_transient());
        assert!(s(429).is_transient());
        assert!(!s(400).is_transient());
        assert!(!s(403).is_transient());
        assert!(!SourceError::InvalidAudience { reason: "x" }.is_transient());
    }
}
