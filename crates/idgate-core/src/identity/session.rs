//! [`SessionUser`]: a Google account as a server-side sign-in session remembers it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Caller, GoogleUser, IdentityError};
use crate::verify::VerifiedIdToken;

/// A Google account as a server-side sign-in session remembers it: the verified email, `sub` and `hd` of the ID
/// token the user signed in with, kept so that later requests (which carry only a session cookie, no token) can be
/// judged by the same [`Allowlist`](crate::policy::Allowlist) as a token would.
///
/// Made from a [`VerifiedIdToken`] ([`SessionUser::from_id_token`]) at sign-in and turned back into a [`Caller`]
/// with [`Caller::from_session`]. It is `Serialize`/`Deserialize` so that a session store can hold it: deserialize
/// it **only** from a store that nothing but your server writes (the session record, never a cookie or a request).
///
/// ```
/// use idgate_core::identity::{Caller, SessionUser};
/// use idgate_core::verify::OidcVerifier;
/// use idgate_emulator::{Emulator, TokenSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let google = Emulator::start().await?;
/// let verifier = OidcVerifier::builder()
///     .audience("123-abc.apps.googleusercontent.com")
///     .keys_url(google.oidc_jwks_url())
///     .build()?;
/// let token = google.mint(
///     &TokenSpec::service_account("Alice@Example.com")
///         .audience("123-abc.apps.googleusercontent.com")
///         .claim("sub", "1234567890")
///         .hosted_domain("example.com"),
/// );
/// let user = SessionUser::from_id_token(&verifier.verify(&token).await?)?;
/// let stored = serde_json::to_string(&user)?; // what the session record holds
/// let caller = Caller::from_session(&serde_json::from_str(&stored)?);
/// assert_eq!(caller.to_string(), "user alice@example.com");
/// assert_eq!(caller.subject(), Some("1234567890"));
/// # google.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    email: String,
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hd: Option<String>,
}

impl SessionUser {
    /// The user a verified ID token names.
    ///
    /// # Errors
    ///
    /// [`IdentityError::NoVerifiedEmail`] without a verified email, [`IdentityError::InvalidEmail`] for an email
    /// that is not a plain ASCII address, and [`IdentityError::NotAUser`] when the token names a service account
    /// (service accounts do not sign in through a browser).
    pub fn from_id_token(token: &VerifiedIdToken) -> Result<Self, IdentityError> {
        match Caller::from_id_token(token)? {
            Caller::User(user) => Ok(Self {
                email: user.email().to_owned(),
                sub: user.subject().to_owned(),
                hd: user.hosted_domain().map(str::to_owned),
            }),
            _ => Err(IdentityError::NotAUser),
        }
    }

    /// The verified email, lowercased.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// `sub`: the account's stable unique ID.
    pub fn subject(&self) -> &str {
        &self.sub
    }

    /// `hd`: the Google Workspace domain, for Workspace accounts.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.hd.as_deref()
    }
}

impl fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionUser")
            .field("email", &self.email)
            .field("sub", &self.sub)
            .field("hd", &self.hd)
            .finish()
    }
}

impl Caller {
    /// The Google account a server-side sign-in session vouches for (see [`SessionUser`]): a [`Caller::User`].
    ///
    /// The email is normalized again (a record written by another version, or edited in the store, cannot smuggle
    /// in an upper-case or padded address that would compare differently from the allowlist's entries); one that is
    /// not a plain address is kept as-is and then matches no entry.
    pub fn from_session(user: &SessionUser) -> Self {
        let email = super::normalize_email(&user.email).unwrap_or_else(|| user.email.clone());
        Self::User(GoogleUser::new(
            email,
            user.sub.as_str(),
            user.hd.as_deref().map(str::to_ascii_lowercase),
        ))
    }
}
