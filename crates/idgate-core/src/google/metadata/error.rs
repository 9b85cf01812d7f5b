//! [`MetadataError`] and [`AnswerProblem`].

use std::sync::Arc;

use http::StatusCode;
use url::Url;

use super::{GCE_METADATA_HOST, is_transient_status};

/// Why the metadata server could not tell what was asked.
///
/// Three families, for callers deciding what to do: **not on Google Cloud** (nothing, or something that is not a
/// metadata server, answers: [`is_not_on_google_cloud`](Self::is_not_on_google_cloud)), **an error status**
/// ([`status`](Self::status)), and **an unusable answer** ([`is_unusable_answer`](Self::is_unusable_answer)).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// `GCE_METADATA_HOST` is not a usable `host[:port]`.
    #[error("{GCE_METADATA_HOST} is not a usable host[:port]")]
    InvalidHost,
    /// A path that is not under the metadata server's root.
    #[error("`{path}` is not a path under the metadata server's root")]
    InvalidPath {
        /// The path asked for (bounded in length).
        path: String,
    },
    /// Nothing answered in time (connection refused, DNS, timeout), after every retry.
    #[error("the metadata server could not be reached for {path} after {attempts} attempt(s)")]
    Unreachable {
        /// The path asked for, without its query.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The answer did not carry `Metadata-Flavor: Google`, so whatever answered is not a metadata server. Its
    /// answer is not trusted.
    #[error("{url} did not answer with `Metadata-Flavor: Google`; it is not a metadata server")]
    NotMetadataServer {
        /// The URL that answered (without its query).
        url: Url,
    },
    /// The metadata server answered with an error status (after every retry, for 5xx and 429).
    #[error("the metadata server answered HTTP {status} for {path} after {attempts} attempt(s)")]
    Status {
        /// The path asked for, without its query.
        path: String,
        /// The last status received.
        status: StatusCode,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The metadata server answered 2xx, with something unusable.
    #[error("the metadata server's answer for {path} is unusable")]
    UnusableAnswer {
        /// The path asked for, without its query.
        path: String,
        /// What is wrong with it.
        #[source]
        problem: AnswerProblem,
    },
}

impl MetadataError {
    /// True when nothing, or something that is not a metadata server, answers at the metadata address: most
    /// likely the code is not running on Google Cloud.
    pub fn is_not_on_google_cloud(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::NotMetadataServer { .. }
        )
    }

    /// True when nothing answered in time.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// True when whatever answered is not a metadata server.
    pub fn is_not_metadata_server(&self) -> bool {
        matches!(self, Self::NotMetadataServer { .. })
    }

    /// True when the last attempt timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Unreachable { source, .. } if source.is_timeout())
    }

    /// True for failures worth retrying later: transport errors, timeouts, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// The HTTP status of an error answer, if that is what this is.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when a 2xx answer was unusable.
    pub fn is_unusable_answer(&self) -> bool {
        matches!(self, Self::UnusableAnswer { .. })
    }

    /// What was wrong with a 2xx answer, if that is what this is.
    pub fn problem(&self) -> Option<&AnswerProblem> {
        match self {
            Self::UnusableAnswer { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// True for an unusable `GCE_METADATA_HOST` or path: a mistake in the configuration, not in the environment.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::InvalidHost | Self::InvalidPath { .. })
    }

    /// How many attempts were made, when there was a request.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Unreachable { attempts, .. } | Self::Status { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    pub(super) fn with_attempts(mut self, n: u32) -> Self {
        if let Self::Unreachable { attempts, .. } | Self::Status { attempts, .. } = &mut self {
            *attempts = n;
        }
        self
    }
}

/// What is wrong with a 2xx answer of the metadata server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerProblem {
    /// The body is not UTF-8 text.
    #[error("the body is not UTF-8 text")]
    NotText,
    /// The body is not JSON of the expected shape.
    #[error("the body is not JSON of the expected shape")]
    NotJson,
    /// The body is larger than any genuine answer.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The answer should be a decimal number and is not.
    #[error("the answer is not a decimal number")]
    NotANumber,
    /// The answer should be a project ID and is not.
    #[error("the answer is not a project ID")]
    NotAProjectId,
    /// The answer should name a zone or region (`projects/NUMBER/zones/ZONE`, `projects/NUMBER/regions/REGION`)
    /// and does not.
    #[error("the answer does not name a zone or region")]
    NotALocation,
    /// The answer should be a domain name and is not.
    #[error("the answer is not a domain name")]
    NotADomain,
    /// The answer should be a name (an account's email, a cluster's name) and is empty, too long, or holds
    /// whitespace or control characters.
    #[error("the answer is not a name")]
    NotAName,
}
