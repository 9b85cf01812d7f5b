//! [`AttachError`]: why an adapter could not attach a token.

use super::SourceError;
use crate::audience::Audience;

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
    #[error("cannot get an ID token for audience {audience}")]
    Source {
        /// The audience asked for.
        audience: Audience,
        /// What the source ran into.
        #[source]
        error: SourceError,
    },
    /// The access-token source failed.
    #[error("cannot get an access token for scopes {scopes}")]
    AccessToken {
        /// The scopes asked for.
        scopes: crate::Scopes,
        /// What the source ran into.
        #[source]
        error: SourceError,
    },
    /// The quota project cannot be written into the `x-goog-user-project` header (not visible ASCII).
    #[error("the quota project cannot be written into the x-goog-user-project header")]
    InvalidQuotaProject,
    /// The access token cannot be written into a header value: a source returned one with characters a header
    /// cannot carry (control characters, non-ASCII). ID tokens never cause it: [`IdToken::new`] accepts only the
    /// base64url alphabet and dots.
    ///
    /// [`IdToken::new`]: idgate_core::token::IdToken::new
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
        matches!(self, Self::Source { .. } | Self::AccessToken { .. })
    }
    /// The token source's error, if that is what this is.
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            Self::Source { error, .. } | Self::AccessToken { error, .. } => Some(error),
            _ => None,
        }
    }
}
