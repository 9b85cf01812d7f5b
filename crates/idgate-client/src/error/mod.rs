//! Typed errors for token sources and the adapters.
//!
//! No error in this module ever holds a token, an assertion, a private key, a refresh token or a response body that
//! could carry one: error bodies from Google are reduced to their `error` / `error_description` / `error.message`
//! fields, and JSON parse failures of credential files keep only the line and column.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::StatusCode;
use idgate_core::google::metadata::{AnswerProblem, MetadataError};

mod attach;
mod detail;
mod key_file;
mod sign;
#[cfg(test)]
mod tests;

pub use attach::AttachError;
use detail::{Detail, unix, unsupported_message};
pub(crate) use detail::{bounded, error_detail};
pub use key_file::{KeyFileError, KeyOrigin};
pub use sign::{ClaimsProblem, SignError, TOKEN_CREATOR_ROLE};

/// Which Google endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// The metadata server (see [`MetadataClient`](idgate_core::google::MetadataClient)).
    MetadataServer,
    /// An OAuth 2.0 token endpoint (a key file's `token_uri`).
    OAuthToken,
    /// The IAM Credentials API (`generateIdToken`, `generateAccessToken`, `signJwt`, `signBlob`).
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
    #[error("{endpoint}: request failed after {attempts} attempt(s)")]
    Transport {
        /// Where the request went.
        endpoint: Endpoint,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        #[source]
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
    #[error("{endpoint} answered with an unusable body")]
    InvalidResponse {
        /// Where the request went.
        endpoint: Endpoint,
        /// What is wrong with it.
        #[source]
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
         reachable; on Google Cloud this works out of the box, elsewhere point GOOGLE_APPLICATION_CREDENTIALS at \
         a service-account key or an impersonated_service_account file (for access tokens, with \
         `AdcBuilder::accept_user_credentials`, also the file `gcloud auth application-default login` writes)"
    )]
    NoCredentials {
        /// What the metadata server attempt ran into.
        #[source]
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
    /// Google refused domain-wide delegation (`unauthorized_client`): the service account's client ID is not
    /// authorised, in the Workspace Admin console, for every scope asked for on behalf of `subject`.
    #[error(
        "domain-wide delegation to {subject} was refused: in the Google Workspace Admin console (Security → API \
         controls → Domain-wide delegation), authorize {} for these scopes: {scopes}",
        detail::ClientId(client_id.as_deref(), service_account)
    )]
    DelegationDenied {
        /// The service account acting for `subject`.
        service_account: String,
        /// Its OAuth client ID (the key file's `client_id`, the account's unique ID), when known.
        client_id: Option<String>,
        /// The scopes asked for.
        scopes: crate::Scopes,
        /// The Workspace user the token was asked for.
        subject: String,
        /// The token endpoint's answer.
        #[source]
        answer: Box<Self>,
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

    /// True when Google refused domain-wide delegation (see [`SourceError::DelegationDenied`]).
    pub fn is_delegation_denied(&self) -> bool {
        matches!(self, Self::DelegationDenied { .. })
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
            Self::DelegationDenied { answer, .. } => answer.endpoint(),
            _ => None,
        }
    }

    /// How many attempts were made, when there was a request.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Transport { attempts, .. } | Self::Status { attempts, .. } => Some(*attempts),
            Self::NoCredentials { metadata } => metadata.attempts(),
            Self::DelegationDenied { answer, .. } => answer.attempts(),
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
    #[error("the token is not a compact JWT")]
    MalformedToken(#[source] idgate_core::token::Malformed),
    /// The token has no integer `exp` claim, so it cannot be cached safely.
    #[error("the token has no readable `exp` claim")]
    NoExpiry,
    /// The body is larger than any genuine answer.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The answer should be a decimal number and is not.
    #[error("the answer is not a decimal number")]
    NotANumber,
    /// The answer should be a project ID and is not.
    #[error("the answer is not a project ID")]
    NotAProjectId,
    /// A field should be an RFC 3339 timestamp and is not.
    #[error("the field `{0}` is not an RFC 3339 timestamp")]
    NotATime(&'static str),
    /// A number is too large to be a real answer (an `expires_in` whose expiry no clock can represent).
    #[error("the field `{0}` is out of range")]
    OutOfRange(&'static str),
    /// A field should hold base64 bytes (IAM's `signedBlob`) and does not.
    #[error("the field `{0}` is not base64")]
    NotBase64(&'static str),
    /// A field should hold a key ID (IAM's `keyId`, a signed JWT's `kid`: 1 to 256 printable ASCII characters, what
    /// a verifier accepts) and does not.
    #[error("the field `{0}` is not a key ID")]
    NotAKeyId(&'static str),
    /// IAM `signJwt` answered a JWT that is not the one asked for: its header's `alg` is not RS256, its `kid` is
    /// not the answer's `keyId`, or a claim sent is missing or changed.
    #[error("the signed JWT is not the one asked for: {0}")]
    NotWhatWasAsked(&'static str),
}

impl From<AnswerProblem> for ResponseProblem {
    fn from(problem: AnswerProblem) -> Self {
        match problem {
            AnswerProblem::NotJson => Self::NotJson,
            AnswerProblem::TooLarge(n) => Self::TooLarge(n),
            AnswerProblem::NotANumber => Self::NotANumber,
            AnswerProblem::NotAProjectId => Self::NotAProjectId,
            // `NotText`, and whatever a later idgate-core adds.
            _ => Self::NotText,
        }
    }
}

/// A metadata-server failure as the sources report it: unreachable is [`SourceError::Transport`], an error answer
/// [`SourceError::Status`], an impostor [`SourceError::NotMetadataServer`], an unusable answer
/// [`SourceError::InvalidResponse`], a bad `GCE_METADATA_HOST` [`SourceError::Config`]; always with
/// [`Endpoint::MetadataServer`].
impl From<MetadataError> for SourceError {
    fn from(error: MetadataError) -> Self {
        let endpoint = Endpoint::MetadataServer;
        match error {
            MetadataError::Unreachable {
                attempts, source, ..
            } => Self::Transport {
                endpoint,
                attempts,
                error: source,
            },
            MetadataError::NotMetadataServer { url } => Self::NotMetadataServer { url },
            MetadataError::Status {
                status, attempts, ..
            } => Self::Status {
                endpoint,
                status,
                attempts,
                detail: None,
            },
            MetadataError::UnusableAnswer { problem, .. } => {
                Self::invalid(endpoint, problem.into())
            }
            // `InvalidHost`, `InvalidPath`, and whatever a later idgate-core adds.
            other => Self::Config {
                reason: other.to_string(),
            },
        }
    }
}
