//! Where ID tokens come from.
//!
//! | source | mints with |
//! |---|---|
//! | [`MetadataServer`] | the metadata server's `instance/service-accounts/default/identity` (GCE, GKE, Cloud Run, App Engine, Functions) |
//! | [`ServiceAccountKey`] | a service-account key file: a signed JWT-bearer assertion with `target_audience`, POSTed to its `token_uri` |
//! | [`Impersonated`] | IAM Credentials `generateIdToken`, authorised by another credential's access token |
//! | [`Adc`] | Application Default Credentials for ID tokens: `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server |
//! | [`StaticToken`] | a fixed token (tests, a token handed over by another process) |
//!
//! None of them caches: wrap the one you use in a [`CachedSource`](crate::CachedSource) (`source.cached()`), which
//! reuses tokens per audience until shortly before they expire.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use idgate_core::token::IdToken;

use crate::error::SourceError;

mod adc;
mod authorized_user;
mod impersonated;
pub(crate) mod key_file;
mod metadata;
mod service_account;

pub use adc::{Adc, AdcBuilder, AdcKind};
pub use authorized_user::AuthorizedUser;
pub use impersonated::Impersonated;
pub use metadata::{Format, MetadataServer};
pub use service_account::ServiceAccountKey;

/// A boxed, `Send` future: what [`IdTokenSource`] and [`AccessTokenSource`] return, so both stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can mint a Google-signed ID token for an audience.
///
/// Object safe: `Arc<dyn IdTokenSource>` is itself a source. Implementations do not cache; [`CachedSource`]
/// does.
///
/// ```
/// use idgate_client::{BoxFuture, IdTokenSource, SourceError};
/// use idgate_core::token::IdToken;
///
/// /// A source that asks another process for tokens.
/// #[derive(Debug)]
/// struct Sidecar;
///
/// impl IdTokenSource for Sidecar {
///     fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
///         Box::pin(async move {
///             let _ = audience;
///             Err(SourceError::Config { reason: "no sidecar in this example".into() })
///         })
///     }
/// }
/// let source: std::sync::Arc<dyn IdTokenSource> = std::sync::Arc::new(Sidecar);
/// # let _ = source;
/// ```
///
/// [`CachedSource`]: crate::CachedSource
pub trait IdTokenSource: fmt::Debug + Send + Sync {
    /// Mints (or fetches) an ID token whose `aud` is `audience`.
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>>;

    /// A token for `audience` that can be used right now without any I/O, if the source holds one that is neither
    /// expired nor due for a refresh. The adapters call this first so the warm path allocates nothing.
    ///
    /// The default returns `None`; [`CachedSource`](crate::CachedSource) overrides it.
    fn peek(&self, audience: &str) -> Option<IdToken> {
        let _ = audience;
        None
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for Arc<T> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for Box<T> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for &T {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
}

/// Adds [`cached`](IdTokenSourceExt::cached) to every [`IdTokenSource`].
pub trait IdTokenSourceExt: IdTokenSource + Sized {
    /// Wraps the source in a [`CachedSource`](crate::CachedSource) with the default settings.
    ///
    /// ```
    /// use idgate_client::{IdTokenSourceExt, MetadataServer};
    ///
    /// let source = MetadataServer::new().cached();
    /// # let _ = source;
    /// ```
    fn cached(self) -> crate::CachedSource<Self> {
        crate::CachedSource::new(self)
    }
}

impl<T: IdTokenSource + Sized> IdTokenSourceExt for T {}

/// An OAuth 2.0 access token: the credential a source presents to IAM Credentials to impersonate a service account.
///
/// `Debug` prints `AccessToken(<redacted>)`; there is no `Display`.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    lifetime: Option<Duration>,
}

impl AccessToken {
    /// Wraps a raw access token and the lifetime the server reported (`expires_in`), if any.
    pub fn new(value: impl Into<Arc<str>>, lifetime: Option<Duration>) -> Self {
        Self {
            value: value.into(),
            lifetime,
        }
    }

    /// The raw token, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// How long the token was valid for when it was minted (the server's `expires_in`), if it said.
    pub fn lifetime(&self) -> Option<Duration> {
        self.lifetime
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Something that can mint an OAuth 2.0 access token (scope `cloud-platform`): the *source credential* for
/// [`Impersonated`]. Implemented by [`MetadataServer`], [`ServiceAccountKey`] and [`AuthorizedUser`].
pub trait AccessTokenSource: fmt::Debug + Send + Sync {
    /// Mints (or fetches) an access token.
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, SourceError>>;
}

impl<T: AccessTokenSource + ?Sized> AccessTokenSource for Arc<T> {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, SourceError>> {
        (**self).access_token()
    }
}

impl<T: AccessTokenSource + ?Sized> AccessTokenSource for Box<T> {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, SourceError>> {
        (**self).access_token()
    }
}

/// The OAuth 2.0 scope idgate asks for when it needs an access token: enough to call IAM Credentials.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A source that always returns the same token, whatever the audience. For tests, benchmarks, and tokens obtained
/// out of band (`idgate token`, `gcloud auth print-identity-token`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use idgate_client::{IdTokenSource, StaticToken};
/// use idgate_core::token::IdToken;
///
/// let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln").unwrap();
/// let source = StaticToken::new(token.clone());
/// assert_eq!(source.id_token("https://any").await.unwrap(), token);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StaticToken {
    token: IdToken,
}

impl StaticToken {
    /// A source returning `token`.
    pub fn new(token: IdToken) -> Self {
        Self { token }
    }
}

impl IdTokenSource for StaticToken {
    fn id_token<'a>(&'a self, _audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        let token = self.token.clone();
        Box::pin(std::future::ready(Ok(token)))
    }
}
