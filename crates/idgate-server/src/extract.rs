//! axum extractors for the identity the layers verified.
//!
//! | extractor | what | provided by |
//! |---|---|---|
//! | [`VerifiedCaller`] | the [`Caller`]: service account, user, App Engine app or IAP user | [`RequireIdentityLayer`](crate::RequireIdentityLayer), [`RequireIapLayer`](crate::RequireIapLayer) |
//! | [`VerifiedIapUser`] | the IAP user: email, `sub`, `hd`, access levels | [`RequireIapLayer`](crate::RequireIapLayer) |
//! | [`UserEmail`] | the verified email of the signed-in user | [`RequireIapLayer`](crate::RequireIapLayer), or a user token through [`RequireIdentityLayer`](crate::RequireIdentityLayer) |
//!
//! Each reads what its layer put in the request extensions; none verifies anything itself. Used on a route its
//! layer does not cover, an extractor answers **500** with a body naming the layer to add
//! ([`IdentityRejection::MissingLayer`]), like axum's "Perhaps you forgot to add it?". `Option<_>` of each is
//! `None` instead (for routes where identity is optional, e.g. [exempt paths](crate::RequireIdentityLayer::exempt_path)).
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use idgate_server::extract::{UserEmail, VerifiedCaller};
//! use tower::ServiceExt as _;
//!
//! async fn hello(VerifiedCaller(caller): VerifiedCaller) -> String {
//!     format!("hello {caller}")
//! }
//!
//! async fn maybe(caller: Option<VerifiedCaller>, email: Option<UserEmail>) -> String {
//!     format!("{} {}", caller.is_some(), email.is_some())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // No layer on this router: the extractor says which one is missing.
//! let app = Router::new().route("/hello", get(hello)).route("/maybe", get(maybe));
//!
//! let request = http::Request::get("/hello").body(axum::body::Body::empty()).unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert!(std::str::from_utf8(&body).unwrap().contains("RequireIdentityLayer"));
//!
//! let request = http::Request::get("/maybe").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::OK);
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(&body[..], b"false false");
//! # }
//! ```

use std::convert::Infallible;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use idgate_core::identity::{self, Caller};

use crate::rejection::{IdentityRejection, log_rejection};

const EITHER_LAYER: &str = "RequireIdentityLayer` or `RequireIapLayer";

fn missing_layer(extractor: &'static str, layer: &'static str) -> IdentityRejection {
    let rejection = IdentityRejection::MissingLayer { extractor, layer };
    log_rejection("extract", &rejection, None);
    rejection
}

/// The verified caller of this request. See the [module docs](self).
///
/// ```
/// use idgate_server::extract::VerifiedCaller;
///
/// async fn handler(VerifiedCaller(caller): VerifiedCaller) -> String {
///     match caller.project() {
///         Some(project) => format!("{} from project {project}", caller.kind()),
///         None => caller.to_string(),
///     }
/// }
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct VerifiedCaller(pub Caller);

impl Deref for VerifiedCaller {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedCaller {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| missing_layer("VerifiedCaller", EITHER_LAYER))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedCaller {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().map(Self))
    }
}

/// The user Identity-Aware Proxy signed in, from a verified assertion. See the [module docs](self).
///
/// Derefs to [`identity::IapUser`] (the core's value, which this extractor wraps, as [`VerifiedCaller`] wraps a
/// [`Caller`]): `email()`, `subject()`, `hosted_domain()`, `access_levels()`.
///
/// ```
/// use idgate_server::extract::VerifiedIapUser;
///
/// async fn hello(user: VerifiedIapUser) -> String {
///     format!("hello {}", user.email())
/// }
/// # let _ = hello;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct VerifiedIapUser(pub identity::IapUser);

impl Deref for VerifiedIapUser {
    type Target = identity::IapUser;

    fn deref(&self) -> &identity::IapUser {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedIapUser {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<identity::IapUser>()
            .cloned()
            .map(Self)
            .ok_or_else(|| missing_layer("VerifiedIapUser", "RequireIapLayer"))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedIapUser {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<identity::IapUser>()
            .cloned()
            .map(Self))
    }
}

/// The verified email of the signed-in user: the IAP user's, or that of a Google account whose ID token
/// [`RequireIdentityLayer`](crate::RequireIdentityLayer) verified. See the [module docs](self).
///
/// A caller that is not a user (a service account, an App Engine app), or an IAP external identity whose email its
/// identity provider did not verify, gets **403** ([`IdentityRejection::NotAUser`]); `Option<UserEmail>` is `None`
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct UserEmail(pub String);

impl Deref for UserEmail {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl UserEmail {
    /// `Some(email)` of the signed-in user, `None` when the caller is not a user, `Err` when no layer ran.
    fn from_parts(parts: &Parts) -> Result<Option<Self>, ()> {
        // Only a verified email: an IAP external identity's unverified one is not the user's to claim.
        if let Some(user) = parts.extensions.get::<identity::IapUser>() {
            return Ok(user.email_verified().then(|| Self(user.email().to_owned())));
        }
        match parts.extensions.get::<Caller>() {
            Some(caller @ (Caller::User(_) | Caller::IapUser(_))) => {
                Ok(caller.email().map(|email| Self(email.to_owned())))
            }
            Some(_) => Ok(None),
            None => Err(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserEmail {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Self::from_parts(parts) {
            Ok(Some(email)) => Ok(email),
            Ok(None) => {
                let rejection = IdentityRejection::NotAUser;
                log_rejection("extract", &rejection, parts.extensions.get::<Caller>());
                Err(rejection)
            }
            Err(()) => Err(missing_layer("UserEmail", EITHER_LAYER)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for UserEmail {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Self::from_parts(parts).ok().flatten())
    }
}
