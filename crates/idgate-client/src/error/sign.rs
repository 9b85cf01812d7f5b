//! [`SignError`]: why a [`Signer`](crate::Signer) could not sign, and [`ClaimsProblem`]: what is wrong with the
//! claims given to [`Signer::sign_jwt`](crate::Signer::sign_jwt).

use http::StatusCode;

use super::SourceError;
use super::detail::bounded;

/// The role that grants `iam.serviceAccounts.signBlob` and `iam.serviceAccounts.signJwt` on a service account.
pub const TOKEN_CREATOR_ROLE: &str = "roles/iam.serviceAccountTokenCreator";

/// Why a [`Signer`](crate::Signer) could not sign.
///
/// Each message says what failed at its own level; the cause (IAM's answer, the credential's failure, the
/// claims' problem) is in [`source()`](std::error::Error::source). Print the chain with
/// `idgate_core::ErrorChain`. No variant holds a token, a key or the bytes being signed. Use the `is_*` helpers
/// rather than matching: the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// IAM answered 403: the caller may not sign as `signer`. The caller needs `permission` on `signer`, which
    /// the Service Account Token Creator role ([`TOKEN_CREATOR_ROLE`]) grants; with delegates, each account of the
    /// chain needs it on the next. (The same 403 comes when the caller's access token lacks the
    /// `cloud-platform` scope, e.g. a Compute Engine instance's access scopes: IAM's explanation is the source.)
    #[error(
        "IAM refused to sign as {signer}: the caller needs the permission `{permission}` on it; grant the caller \
         the Service Account Token Creator role (roles/iam.serviceAccountTokenCreator) on {signer}{}",
        if delegates.is_empty() { "" } else { " (with delegates: each account of the chain on the next)" }
    )]
    PermissionDenied {
        /// The service account whose signature was asked for.
        signer: String,
        /// `iam.serviceAccounts.signBlob` or `iam.serviceAccounts.signJwt`.
        permission: &'static str,
        /// The delegate chain, as sent (`projects/-/serviceAccounts/...`).
        delegates: Vec<String>,
        /// IAM's answer (its message in the detail).
        #[source]
        answer: Box<SourceError>,
    },
    /// IAM answered 401: it did not accept the caller's access token (also after one retry with a fresh token,
    /// when the first one was a reused one).
    #[error("IAM did not accept the caller's credentials to sign as {signer} (HTTP 401)")]
    Unauthenticated {
        /// The service account whose signature was asked for.
        signer: String,
        /// IAM's answer.
        #[source]
        answer: Box<SourceError>,
    },
    /// The access token that authorises the IAM call could not be obtained from the caller's credential.
    #[error("cannot get the access token that authorises signing as {signer} through IAM")]
    Credential {
        /// The service account whose signature was asked for.
        signer: String,
        /// The credential's failure.
        #[source]
        error: Box<SourceError>,
    },
    /// The metadata server could not say which service account is attached.
    #[error("cannot read the attached service account's email from the metadata server")]
    AttachedAccount(#[source] Box<SourceError>),
    /// IAM failed otherwise: an error status other than 401/403 (after the retries, for 500/502/503/504), no answer
    /// (after the retries), or a 2xx answer that is not what Google sends.
    #[error("IAM could not sign as {signer}")]
    Iam {
        /// The service account whose signature was asked for.
        signer: String,
        /// What happened.
        #[source]
        error: Box<SourceError>,
    },
    /// Signing with the key file's private key failed in the crypto backend.
    #[error("cannot sign with the private key {key_id} of {signer}")]
    Local {
        /// The key file's account.
        signer: String,
        /// The key file's `private_key_id`.
        key_id: String,
        /// The backend's error (never key material).
        #[source]
        error: jsonwebtoken::errors::Error,
    },
    /// The claims given to [`Signer::sign_jwt`](crate::Signer::sign_jwt) cannot be signed; nothing was sent.
    #[error("cannot sign these JWT claims")]
    InvalidClaims(#[source] ClaimsProblem),
    /// The account to sign as is not a service-account email or unique ID (empty, or with a character that would
    /// change the IAM URL: `/`, `?`, `#`, `%`, `\`, a space or a control character). Nothing was sent.
    #[error("{} is not a service-account email or unique ID", Quoted(signer))]
    InvalidSigner {
        /// The value given (at most 100 characters of it).
        signer: String,
    },
    /// The credentials are a user's (`authorized_user`): a user cannot sign as a service account. Impersonate one
    /// instead ([`Signer::iam`](crate::Signer::iam) with the user's credentials as the source, or an
    /// `impersonated_service_account` file from `gcloud auth application-default login
    /// --impersonate-service-account=SA`).
    #[error(
        "credentials of type `{credential_type}` are a user's, and a user cannot sign as a service account: \
         impersonate one (`gcloud auth application-default login --impersonate-service-account=SA_EMAIL`, or \
         Signer::iam with these credentials as the caller)"
    )]
    NoServiceAccount {
        /// The credentials' `type` (`authorized_user`).
        credential_type: String,
    },
}

/// `"value"`, bounded and with control characters replaced.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", bounded(self.0, 100))
    }
}

impl SignError {
    /// True when IAM refused for lack of permission (see [`SignError::PermissionDenied`]).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::PermissionDenied { .. })
    }

    /// True when IAM did not accept the caller's credentials (401).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Unauthenticated { .. })
    }

    /// True when the caller's credential (or the metadata server, for the attached account) failed before IAM
    /// was asked.
    pub fn is_credential(&self) -> bool {
        matches!(self, Self::Credential { .. } | Self::AttachedAccount(_))
    }

    /// True when the claims were refused before anything was sent.
    pub fn is_invalid_claims(&self) -> bool {
        matches!(self, Self::InvalidClaims(_))
    }

    /// True when the account to sign as is not usable as one.
    pub fn is_invalid_signer(&self) -> bool {
        matches!(self, Self::InvalidSigner { .. })
    }

    /// True for user credentials, which cannot sign as a service account.
    pub fn is_no_service_account(&self) -> bool {
        matches!(self, Self::NoServiceAccount { .. })
    }

    /// True for failures worth trying again later: IAM (or the caller's credential) unreachable, or answering
    /// 5xx/429, after the retries.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Iam { error, .. }
            | Self::Credential { error, .. }
            | Self::AttachedAccount(error) => error.is_transient(),
            _ => false,
        }
    }

    /// The missing permission, for [`SignError::PermissionDenied`].
    pub fn permission(&self) -> Option<&'static str> {
        match self {
            Self::PermissionDenied { permission, .. } => Some(permission),
            _ => None,
        }
    }

    /// The service account whose signature was asked for, when known.
    pub fn signer(&self) -> Option<&str> {
        match self {
            Self::PermissionDenied { signer, .. }
            | Self::Unauthenticated { signer, .. }
            | Self::Credential { signer, .. }
            | Self::Iam { signer, .. }
            | Self::Local { signer, .. } => Some(signer),
            _ => None,
        }
    }

    /// The HTTP status IAM answered with, when that is the failure.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::PermissionDenied { answer, .. } | Self::Unauthenticated { answer, .. } => {
                answer.status()
            }
            Self::Iam { error, .. } => error.status(),
            _ => None,
        }
    }

    /// What is wrong with the claims, for [`SignError::InvalidClaims`].
    pub fn claims_problem(&self) -> Option<&ClaimsProblem> {
        match self {
            Self::InvalidClaims(problem) => Some(problem),
            _ => None,
        }
    }
}

/// What is wrong with the claims given to [`Signer::sign_jwt`](crate::Signer::sign_jwt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsProblem {
    /// The claims do not serialise to a JSON object.
    #[error("the claims are not a JSON object")]
    NotAnObject,
    /// The claims could not be serialised at all.
    #[error("the claims cannot be serialised to JSON")]
    NotSerializable,
    /// There is no `aud` (or it is empty, or not a string or a list of strings). A JWT signed as a service account
    /// proves who sent it only to the audience it names; verifiers of such JWTs require one.
    #[error(
        "the claims have no usable `aud`: a JWT signed as a service account must name its audience (a non-empty \
         string or list of strings)"
    )]
    MissingAudience,
    /// `iss` or `sub` is present but not a non-empty string: the JWT would name no account, and every verifier of
    /// a service account's JWTs would refuse it.
    #[error("the claim `{0}` is not a non-empty string")]
    NotAString(&'static str),
    /// A time claim (`exp`, `iat`, `nbf`) is not a whole number of seconds since the epoch.
    #[error("the claim `{0}` is not a whole number of seconds since the epoch")]
    NotANumericDate(&'static str),
    /// `exp` is further ahead than IAM allows (12 hours); checked for local keys too, so both kinds of signer accept
    /// the same claims.
    #[error(
        "`exp` is {ahead_secs} s ahead; IAM signs JWTs that expire at most {max_secs} s (12 h) ahead"
    )]
    ExpiresTooLate {
        /// How far ahead `exp` is, in seconds.
        ahead_secs: i64,
        /// The limit (43 200).
        max_secs: i64,
    },
}
