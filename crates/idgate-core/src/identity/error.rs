//! Why a caller identity could not be derived.

/// Why a caller identity could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The ID token has no `email`, or `email_verified` is not JSON `true`. idgate identifies callers by verified
    /// email; without one there is nobody to put on an allowlist.
    #[error(
        "the ID token carries no verified email (mint it with the email included, e.g. IAM includeEmail=true)"
    )]
    NoVerifiedEmail,
    /// The verified email is not a plain ASCII address with one `@`.
    #[error("the ID token's email is not a plain ASCII address")]
    InvalidEmail,
    /// The ID token names a service account where only a person's Google account is accepted (sign-in).
    #[error("the ID token names a service account, not a person's Google account")]
    NotAUser,
    /// The `X-Appengine-Inbound-Appid` value is not an App Engine app ID.
    #[error("invalid X-Appengine-Inbound-Appid value: {0}")]
    InvalidAppId(&'static str),
}
