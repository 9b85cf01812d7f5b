//! Why a token was not accepted.

use crate::keys::{KeyAlgorithm, KeysUnavailable};
use crate::token::Malformed;

/// Why a token was rejected. No variant ever contains the token or any part of its signature.
///
/// The message is one level; a cause (the [`Malformed`] shape, the key fetch's failure) is its
/// [`source`](std::error::Error::source). Print it with [`ErrorChain`](crate::ErrorChain).
///
/// Everything but [`VerifyError::KeysUnavailable`] is the caller's fault (HTTP 401); `KeysUnavailable` is ours (503).
/// Prefer the `is_*` helpers to matching, so new variants do not break your code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWT with JSON header and claims of the expected types; the [`Malformed`] (its source) says
    /// how.
    #[error("malformed token")]
    Malformed(#[from] Malformed),
    /// The header carries a member that would let the token choose its own key or semantics
    /// (`jwk`, `jku`, `x5u`, `x5c`, `crit`).
    #[error("token header carries forbidden member {0:?}")]
    ForbiddenHeader(&'static str),
    /// The header's `alg` is not the algorithm bound to the key set (`none`, `HS256`, `ES256` on the OIDC path...).
    #[error("token algorithm is not {expected}")]
    UnsupportedAlgorithm {
        /// The only algorithm this verifier accepts.
        expected: KeyAlgorithm,
    },
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKeyId,
    /// No key in the key set has the token's `kid`, even after a refetch.
    #[error("no signing key matches the token's kid")]
    UnknownKeyId,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// Cloud Run replaced the signature with `SIGNATURE_REMOVED_BY_GOOGLE`: the token cannot be verified here.
    #[error(
        "token signature was removed by Cloud Run's invoker check; send the token in X-Serverless-Authorization, \
         or explicitly opt in to trusting Cloud Run's check"
    )]
    SignatureRemoved,
    /// `iss` is not one this verifier accepts.
    #[error("token issuer {got:?} is not accepted")]
    WrongIssuer {
        /// The token's issuer (truncated to 64 characters).
        got: String,
    },
    /// `sub` is not the one this verifier requires (a JWT signed by a service account must name that account as
    /// its subject too).
    #[error("token subject {got:?} is not accepted")]
    WrongSubject {
        /// The token's subject (truncated to 64 characters).
        got: String,
    },
    /// `aud` is not one this verifier accepts.
    #[error("token audience {got:?} is not accepted")]
    WrongAudience {
        /// The token's audience (truncated to 64 characters).
        got: String,
    },
    /// `exp` has passed (beyond the leeway).
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// The token's `exp`, seconds since the epoch.
        expired_at: i64,
        /// The time of the check, seconds since the epoch.
        now: i64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` exceeds the maximum lifetime of this kind of token.
    #[error("token lifetime exceeds the maximum of {max_secs} s")]
    LifetimeTooLong {
        /// The maximum lifetime accepted, leeway included.
        max_secs: i64,
    },
    /// The token has no `email` claim but the verifier requires one.
    #[error("token has no email claim")]
    MissingEmail,
    /// `email_verified` is not JSON `true`.
    #[error("token email is not verified")]
    EmailNotVerified,
    /// The signing keys could not be obtained.
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
}

impl VerifyError {
    /// True for every rejection that is the presenter's fault (HTTP 401), false for [`VerifyError::KeysUnavailable`].
    pub fn is_invalid_token(&self) -> bool {
        !self.is_keys_unavailable()
    }

    /// The signing keys could not be obtained (HTTP 503).
    pub fn is_keys_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }

    /// The token is past its `exp`.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired { .. })
    }

    /// The token was minted for another audience.
    pub fn is_wrong_audience(&self) -> bool {
        matches!(self, Self::WrongAudience { .. })
    }

    /// The token was issued by someone else.
    pub fn is_wrong_issuer(&self) -> bool {
        matches!(self, Self::WrongIssuer { .. })
    }

    /// No key matches the token's `kid`.
    pub fn is_unknown_key_id(&self) -> bool {
        matches!(self, Self::UnknownKeyId)
    }

    /// The signature does not verify.
    pub fn is_invalid_signature(&self) -> bool {
        matches!(self, Self::InvalidSignature)
    }

    /// Cloud Run removed the signature (see [`VerifyError::SignatureRemoved`]).
    pub fn is_signature_removed(&self) -> bool {
        matches!(self, Self::SignatureRemoved)
    }

    /// The token is not structurally a JWT, or its header is unacceptable before any key is consulted.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_)
                | Self::ForbiddenHeader(_)
                | Self::UnsupportedAlgorithm { .. }
                | Self::MissingKeyId
        )
    }

    /// A short, stable, machine-readable reason (`"expired"`, `"wrong_audience"`, ...) for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::ForbiddenHeader(_) => "forbidden_header",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKeyId => "unknown_kid",
            Self::InvalidSignature => "invalid_signature",
            Self::SignatureRemoved => "signature_removed",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::WrongSubject { .. } => "wrong_subject",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::Expired { .. } => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong { .. } => "lifetime_too_long",
            Self::MissingEmail => "missing_email",
            Self::EmailNotVerified => "email_not_verified",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// Why a verifier could not be built. Building does no I/O, so these are all configuration mistakes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No audience was configured. idgate always checks `aud`; an empty list would accept tokens minted for any
    /// service, which is the replay hole in Google's own migration sample.
    #[error(
        "no audience configured: idgate always checks `aud`; configure the URL or custom audience callers mint tokens for"
    )]
    NoAudience,
    /// An audience breaks [`Audience::check`](crate::Audience::check), is not of a documented IAP shape (IAP) or,
    /// in origin mode, is not an absolute http(s) URL.
    #[error("invalid audience {0:?}: {1}")]
    InvalidAudience(String, &'static str),
    /// The account is not a service-account email.
    #[error("{0:?} is not a service-account email")]
    InvalidAccount(String),
    /// The maximum lifetime is zero or longer than the largest allowed.
    #[error("a maximum token lifetime of {0} s is out of range (1 s to 24 h)")]
    MaxLifetimeOutOfRange(u64),
    /// The leeway is larger than 5 minutes.
    #[error("leeway of {0} s is larger than the 300 s maximum")]
    LeewayTooLarge(u64),
    /// The key cache serves keys for another algorithm than this verifier's.
    #[error("key cache serves {got} keys but this verifier needs {expected}")]
    WrongKeyAlgorithm {
        /// The verifier's algorithm.
        expected: KeyAlgorithm,
        /// The algorithm of the cache's key set.
        got: KeyAlgorithm,
    },
}
