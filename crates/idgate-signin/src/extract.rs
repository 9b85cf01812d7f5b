//! [`SignedInUser`]: the person signed in, in your handlers.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::pages;
use crate::session::{SignInState, StoredUser};

/// The Google account signed in to this session, allowed by the allowlist: `sub`, email, name, given and family
/// name, picture, `hd`. From the ID token the user signed in with (and the userinfo endpoint, when configured).
///
/// As an extractor it needs [`SignIn::layer`](crate::SignIn::layer); a signed-out (or no longer allowed) user gets
/// `401`. `Option<SignedInUser>` is `None` for them instead, for pages that greet signed-in users and show a
/// "Login" link to others. Cheap to clone.
///
/// ```
/// use idgate_signin::SignedInUser;
///
/// async fn hello(user: SignedInUser) -> String {
///     format!("Hello {}", user.name().unwrap_or(user.email()))
/// }
///
/// async fn home(user: Option<SignedInUser>) -> String {
///     match user {
///         Some(user) => format!("Signed in as {}", user.email()),
///         None => "Login".to_owned(),
///     }
/// }
/// # let _ = (hello, home);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SignedInUser(Arc<Profile>);

#[derive(PartialEq, Eq)]
struct Profile {
    sub: String,
    email: String,
    hd: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    signed_in_at: i64,
    expires_at: i64,
}

impl SignedInUser {
    pub(crate) fn from_stored(stored: StoredUser) -> Self {
        Self(Arc::new(Profile {
            sub: stored.user.subject().to_owned(),
            email: stored.user.email().to_owned(),
            hd: stored.user.hosted_domain().map(str::to_owned),
            name: stored.name,
            given_name: stored.given_name,
            family_name: stored.family_name,
            picture: stored.picture,
            signed_in_at: stored.signed_in_at,
            expires_at: stored.expires_at,
        }))
    }

    /// `sub`: the account's stable unique ID. Key your data on this (an email can change hands).
    pub fn subject(&self) -> &str {
        &self.0.sub
    }

    /// The verified email, lowercased.
    pub fn email(&self) -> &str {
        &self.0.email
    }

    /// `hd`: the Google Workspace domain, for Workspace accounts.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.0.hd.as_deref()
    }

    /// `name`: the full name (needs the `profile` scope).
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// `given_name`.
    pub fn given_name(&self) -> Option<&str> {
        self.0.given_name.as_deref()
    }

    /// `family_name`.
    pub fn family_name(&self) -> Option<&str> {
        self.0.family_name.as_deref()
    }

    /// `picture`: the URL of the profile picture.
    pub fn picture(&self) -> Option<&str> {
        self.0.picture.as_deref()
    }

    /// When the user signed in (Unix seconds).
    pub fn signed_in_at(&self) -> i64 {
        self.0.signed_in_at
    }

    /// When the session ends at the latest (Unix seconds), however active.
    pub fn session_expires_at(&self) -> i64 {
        self.0.expires_at
    }
}

impl fmt::Debug for SignedInUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedInUser")
            .field("sub", &self.0.sub)
            .field("email", &self.0.email)
            .field("hd", &self.0.hd)
            .field("name", &self.0.name)
            .finish_non_exhaustive()
    }
}

/// Why [`SignedInUser`] could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedInUserRejection {
    /// Nobody (allowed) is signed in: `401`.
    #[error("sign-in required")]
    NotSignedIn,
    /// [`SignIn::layer`](crate::SignIn::layer) is not around this route: `500`, naming the layer to add.
    #[error("SignedInUser needs SignIn::layer() around the router")]
    MissingLayer,
}

impl IntoResponse for SignedInUserRejection {
    fn into_response(self) -> Response {
        match self {
            Self::NotSignedIn => pages::not_signed_in(false),
            Self::MissingLayer => pages::missing_layer("SignedInUser"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedInUser {
    type Rejection = SignedInUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Self>() {
            return Ok(user.clone());
        }
        match parts.extensions.get::<SignInState>() {
            Some(_) => Err(SignedInUserRejection::NotSignedIn),
            None => Err(SignedInUserRejection::MissingLayer),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for SignedInUser {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}
