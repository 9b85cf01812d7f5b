//! [`SignInError`]: everything that can go wrong building the sign-in or during one.

use idgate_core::identity::IdentityError;
use idgate_core::policy::DenyReason;
use idgate_core::verify::{BuildError, VerifyError};

/// Why building the sign-in failed, or why one sign-in (a callback, a logout) did not complete.
///
/// No variant holds a token, an authorization code, the client secret or a cookie value: messages name the step and
/// the rule instead. Callers use [`reason`](Self::reason) (stable, machine-readable) and
/// [`status`](Self::status) (the HTTP status the sign-in routes answer with).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    // --- Building.
    /// The client secret could not be read.
    #[error("the OAuth client secret is unavailable: {what}")]
    ClientSecretUnavailable {
        /// What was tried (the variable or file name, never the value).
        what: String,
        /// The I/O error, for a file.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The configuration cannot work (no allowlist, a plain-http redirect URL off loopback, ...).
    #[error("invalid sign-in configuration: {0}")]
    InvalidConfig(&'static str),
    /// The token encryption key could not be read, or is not 32 bytes in base64.
    #[error("the token encryption key is unavailable: {what}")]
    TokenKeyUnavailable {
        /// What was tried (the variable or file name, never the value) and what is wrong.
        what: String,
        /// The I/O error, for a file.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The configuration file has no `[signin]` table.
    #[error("the configuration has no [signin] table")]
    NotConfigured,
    /// The ID-token verifier could not be built.
    #[error("could not build the ID-token verifier")]
    Verifier(#[source] BuildError),
    /// `[signin.sessions]` names a Redis store that cannot be used as configured (the URL's environment variable is
    /// unset, or the URL is malformed). The message never holds the URL, which may carry a password.
    #[error("the Redis session store cannot be used: {0}")]
    RedisUnavailable(String),

    // --- The callback.
    /// The callback carries no `state`, or carries it twice.
    #[error("the callback carries no single `state` parameter")]
    MissingState,
    /// No live sign-in attempt has this `state`: it expired (10 minutes), was already used, or never existed.
    #[error("no live sign-in attempt has this state (expired, already used, or unknown)")]
    UnknownState,
    /// The attempt was started in another browser: its cookie is missing or does not match.
    #[error("the sign-in attempt was not started in this browser")]
    AttemptNotBound,
    /// The RFC 9207 `iss` parameter names another authorization server than Google.
    #[error("the callback's `iss` parameter is not Google's issuer")]
    WrongIssuerParameter,
    /// The user declined (`error=access_denied`).
    #[error("the user declined to sign in")]
    AccessDenied,
    /// Google answered the authorization request with another error.
    #[error("the authorization server answered with error `{0}`")]
    AuthorizationError(String),
    /// The callback carries no single `code`.
    #[error("the callback carries no single authorization `code`")]
    MissingCode,
    /// The token endpoint refused the code (`invalid_grant`: replayed, expired, wrong PKCE verifier, ...).
    #[error("the token endpoint refused the authorization code with `{error}` (HTTP {status})")]
    TokenRejected {
        /// The HTTP status.
        status: u16,
        /// Google's `error` code (`invalid_grant`, `invalid_client`, ...), sanitized.
        error: String,
    },
    /// The token endpoint could not be reached, or answered with something that is not a token response.
    #[error("the token endpoint could not be used")]
    TokenEndpoint(#[source] EndpointError),
    /// The token response has no `id_token` (the `openid` scope was not granted).
    #[error("the token response carries no ID token")]
    MissingIdToken,
    /// The ID token failed verification (signature, issuer, audience = client ID, times, verified email).
    #[error("the ID token failed verification")]
    IdToken(#[source] VerifyError),
    /// The ID token's claims could not be read beyond what the verifier checked.
    #[error("the ID token's claims are malformed")]
    MalformedIdToken,
    /// `azp` is present and is not this client's ID.
    #[error("the ID token's `azp` is not this client")]
    WrongAuthorizedParty,
    /// `nonce` is missing or is not the attempt's.
    #[error("the ID token's `nonce` is not this sign-in attempt's")]
    NonceMismatch,
    /// `hd` is not the configured hosted domain.
    #[error("the ID token's `hd` is not the required hosted domain")]
    WrongHostedDomain,
    /// The token names nobody this sign-in accepts (no verified email, a service account).
    #[error("the ID token names no Google account that may sign in")]
    Identity(#[source] IdentityError),
    /// A genuine Google account that the allowlist does not admit.
    #[error("the account is not allowed to sign in ({})", .0.as_str())]
    NotAllowed(DenyReason),
    /// The session store failed.
    #[error("the session store failed")]
    Session(#[source] tower_sessions::session::Error),

    // --- Logout.
    /// A logout that did not come from this site (no same-origin `Origin` / `Sec-Fetch-Site`).
    #[error("the logout request did not come from this site")]
    CrossSiteLogout,
}

/// Why an HTTP exchange with a Google endpoint failed; never holds a token or a body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The request failed (connection, timeout).
    #[error("the request failed")]
    Transport(#[source] reqwest::Error),
    /// The answer's body was larger than idgate reads.
    #[error("the answer is too large")]
    TooLarge,
    /// A non-success status without a readable OAuth error.
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    /// The body is not the JSON expected.
    #[error("the answer is not the JSON expected")]
    Json(#[source] serde_json::Error),
}

impl SignInError {
    /// A short, stable, machine-readable reason (`"unknown_state"`, `"nonce_mismatch"`, `"not_allowed"`, ...).
    /// The page a sign-in route answers with carries it as `<main id="signin" data-reason="…">`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ClientSecretUnavailable { .. } => "client_secret_unavailable",
            Self::TokenKeyUnavailable { .. } => "token_key_unavailable",
            Self::InvalidConfig(_) => "invalid_config",
            Self::NotConfigured => "not_configured",
            Self::Verifier(_) => "verifier",
            Self::RedisUnavailable(_) => "redis_unavailable",
            Self::MissingState => "missing_state",
            Self::UnknownState => "unknown_state",
            Self::AttemptNotBound => "attempt_not_bound",
            Self::WrongIssuerParameter => "wrong_issuer_parameter",
            Self::AccessDenied => "access_denied",
            Self::AuthorizationError(_) => "authorization_error",
            Self::MissingCode => "missing_code",
            Self::TokenRejected { .. } => "token_rejected",
            Self::TokenEndpoint(_) => "token_endpoint",
            Self::MissingIdToken => "missing_id_token",
            Self::IdToken(e) if e.is_keys_unavailable() => "keys_unavailable",
            Self::IdToken(_) => "invalid_id_token",
            Self::MalformedIdToken => "malformed_id_token",
            Self::WrongAuthorizedParty => "wrong_azp",
            Self::NonceMismatch => "nonce_mismatch",
            Self::WrongHostedDomain => "wrong_hd",
            Self::Identity(_) => "not_a_user",
            Self::NotAllowed(_) => "not_allowed",
            Self::Session(_) => "session_store",
            Self::CrossSiteLogout => "cross_site_logout",
        }
    }

    /// The HTTP status a sign-in route answers this error with: 400 for a broken or replayed attempt, 403 for a
    /// declined or refused account, 502/503 when Google or the store failed. Never 500 for anything a request can
    /// cause.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::AccessDenied
            | Self::NotAllowed(_)
            | Self::Identity(_)
            | Self::CrossSiteLogout => StatusCode::FORBIDDEN,
            Self::TokenEndpoint(_) => StatusCode::BAD_GATEWAY,
            Self::IdToken(e) if e.is_keys_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Session(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ClientSecretUnavailable { .. }
            | Self::TokenKeyUnavailable { .. }
            | Self::InvalidConfig(_)
            | Self::NotConfigured
            | Self::RedisUnavailable(_)
            | Self::Verifier(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the error means the user should simply start again (an expired, replayed or foreign attempt).
    pub fn is_retryable_by_user(&self) -> bool {
        matches!(
            self,
            Self::UnknownState
                | Self::AttemptNotBound
                | Self::TokenRejected { .. }
                | Self::AccessDenied
        )
    }
}
