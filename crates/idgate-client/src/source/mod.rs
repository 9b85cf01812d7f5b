//! Where ID tokens and access tokens come from.
//!
//! | source | ID tokens ([`IdTokenSource`]) | access tokens ([`AccessTokenSource`]) |
//! |---|---|---|
//! | [`MetadataServer`] | `instance/service-accounts/{default,EMAIL}/identity` (GCE, GKE, Cloud Run, App Engine, Functions) | `.../token?scopes=a,b` |
//! | [`ServiceAccountKey`] | a JWT-bearer assertion with `target_audience`, POSTed to the key file's `token_uri` | the same grant with `scope` (and `sub`: domain-wide delegation) |
//! | [`Impersonated`] | IAM Credentials `generateIdToken`, authorised by another credential's access token | `generateAccessToken`; with a subject, `signJwt` + the JWT-bearer grant (keyless domain-wide delegation) |
//! | [`AuthorizedUser`] | — (Google pins user ID tokens' `aud`) | the `refresh_token` grant |
//! | [`Adc`] | `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server | the same, plus `authorized_user` files and the quota project |
//! | [`StaticToken`] | a fixed token (tests, a token handed over by another process) | — |
//!
//! None of them caches: wrap the one you use in a [`CachedSource`](crate::CachedSource) (`source.cached()`), which
//! reuses ID tokens per audience and access tokens per scope set until shortly before they expire.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idgate_core::token::IdToken;

use crate::error::SourceError;
use crate::scopes::Scopes;

mod adc;
mod authorized_user;
mod impersonated;
pub(crate) mod key_file;
mod metadata;
mod service_account;

pub(crate) use adc::Resolved;
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

    /// A short, fixed name for this kind of source: the `source` label of the [metrics](crate::metrics) (never an
    /// account or an audience). The default is `custom`.
    fn source_name(&self) -> &'static str {
        "custom"
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for Arc<T> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
    fn source_name(&self) -> &'static str {
        (**self).source_name()
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for Box<T> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
    fn source_name(&self) -> &'static str {
        (**self).source_name()
    }
}

impl<T: IdTokenSource + ?Sized> IdTokenSource for &T {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        (**self).id_token(audience)
    }
    fn peek(&self, audience: &str) -> Option<IdToken> {
        (**self).peek(audience)
    }
    fn source_name(&self) -> &'static str {
        (**self).source_name()
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

/// An OAuth 2.0 access token, with its expiry and the scopes it was granted for.
///
/// `Debug` prints `AccessToken(<redacted>)`; there is no `Display`.
///
/// ```
/// use idgate_client::{AccessToken, Scopes};
/// use std::time::{Duration, SystemTime};
///
/// let token = AccessToken::new("ya29.secret", Some(Duration::from_secs(3599)))
///     .with_scopes(Scopes::cloud_platform());
/// assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
/// assert_eq!(token.lifetime(), Some(Duration::from_secs(3599)));
/// assert!(token.scopes().unwrap().contains("https://www.googleapis.com/auth/cloud-platform"));
/// ```
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    /// `Bearer <token>`, marked sensitive, built once (`None` when the token cannot be a header value): attaching
    /// it to a request is then a reference count, not a copy and check of the token per request.
    bearer: Option<http::HeaderValue>,
    lifetime: Option<Duration>,
    expires_at: Option<SystemTime>,
    scopes: Option<Scopes>,
}

impl AccessToken {
    /// Wraps a raw access token and the lifetime the server reported (`expires_in`), if any.
    pub fn new(value: impl Into<Arc<str>>, lifetime: Option<Duration>) -> Self {
        let value: Arc<str> = value.into();
        let bearer = idgate_core::token::bearer_header_value(&value);
        Self {
            value,
            bearer,
            lifetime,
            expires_at: None,
            scopes: None,
        }
    }

    /// The same token, with the absolute expiry the server reported (IAM's `expireTime`). When set, caches use it
    /// rather than the [`lifetime`](Self::lifetime).
    #[must_use]
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The same token, with the scopes it was granted for.
    #[must_use]
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// The raw token, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// `Bearer <token>` for an `Authorization` header, marked sensitive; `None` when the token holds characters a
    /// header value cannot.
    pub(crate) fn bearer_header(&self) -> Option<http::HeaderValue> {
        self.bearer.clone()
    }

    /// How long the token was valid for when it was minted (the server's `expires_in`), if it said.
    pub fn lifetime(&self) -> Option<Duration> {
        self.lifetime
    }

    /// When the token expires, if the server gave an absolute time (IAM's `expireTime`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The scopes the token was granted for, when known: the token endpoint's `scope`, or what IAM was asked for.
    /// `None` from the metadata server on Compute Engine and GKE, where the instance's scopes apply whatever was
    /// asked.
    pub fn scopes(&self) -> Option<&Scopes> {
        self.scopes.as_ref()
    }

    /// The expiry: [`expires_at`](Self::expires_at), else `minted_at` + [`lifetime`](Self::lifetime).
    /// `None` also when `minted_at` + the lifetime is past what `SystemTime` can hold (a custom source's
    /// `Duration::MAX`): such a token cannot be cached, and adding would panic.
    pub(crate) fn expiry_from(&self, minted_at: SystemTime) -> Option<SystemTime> {
        self.expires_at.or_else(|| {
            self.lifetime
                .and_then(|lifetime| minted_at.checked_add(lifetime))
        })
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Something that can mint an OAuth 2.0 access token for a set of [`Scopes`]: [`MetadataServer`],
/// [`ServiceAccountKey`], [`Impersonated`], [`AuthorizedUser`], [`Adc`], and
/// [`CachedSource`](crate::CachedSource) around any of them. It is also the *source credential* of an
/// [`Impersonated`] service account, which asks it for `cloud-platform`.
///
/// The source fixes the principal (and, for domain-wide delegation, the subject); the scopes are per call.
/// Object safe: `Arc<dyn AccessTokenSource>` is itself a source. Implementations do not cache;
/// [`CachedSource`](crate::CachedSource) does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use idgate_client::{AccessToken, AccessTokenSource, BoxFuture, Scopes, SourceError};
/// use std::time::{Duration, SystemTime};
///
/// /// Hands out a token another process obtained.
/// #[derive(Debug)]
/// struct Handed;
///
/// impl AccessTokenSource for Handed {
///     fn access_token<'a>(&'a self, scopes: &'a Scopes) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
///         let token = AccessToken::new("ya29.example", Some(Duration::from_secs(3600))).with_scopes(scopes.clone());
///         Box::pin(std::future::ready(Ok(token)))
///     }
/// }
///
/// let source: std::sync::Arc<dyn AccessTokenSource> = std::sync::Arc::new(Handed);
/// let token = source.access_token(&Scopes::cloud_platform()).await.unwrap();
/// assert_eq!(token.scopes(), Some(&Scopes::cloud_platform()));
/// # }
/// ```
pub trait AccessTokenSource: fmt::Debug + Send + Sync {
    /// Mints (or fetches) an access token for `scopes`.
    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>>;

    /// A token for `scopes` that can be used right now without any I/O, if the source holds one that is neither
    /// expired nor due for a refresh. The adapters call this first so the warm path makes no request.
    ///
    /// The default returns `None`; [`CachedSource`](crate::CachedSource) overrides it.
    fn peek_access_token(&self, scopes: &Scopes) -> Option<AccessToken> {
        let _ = scopes;
        None
    }

    /// Forgets `token` (for `scopes`) if the source holds it: an API answered 401 to it, so it was revoked or
    /// expired early. The next call mints afresh.
    ///
    /// The default does nothing; [`CachedSource`](crate::CachedSource) overrides it.
    fn invalidate_access_token(&self, scopes: &Scopes, token: &AccessToken) {
        let _ = (scopes, token);
    }

    /// The project billed for API calls made with these tokens (`x-goog-user-project`), when the credentials name
    /// one (`GOOGLE_CLOUD_QUOTA_PROJECT`, a file's `quota_project_id`).
    ///
    /// The default returns `None`; [`Adc`], the key-file sources and [`CachedSource`](crate::CachedSource)
    /// override it.
    fn quota_project(&self) -> Option<&str> {
        None
    }

    /// A short, fixed name for this kind of source: the `source` label of the [metrics](crate::metrics). The
    /// default is `custom`.
    fn source_name(&self) -> &'static str {
        "custom"
    }
}

macro_rules! forward_access_token_source {
    ($($ty:ty),*) => {$(
        impl<T: AccessTokenSource + ?Sized> AccessTokenSource for $ty {
            fn access_token<'a>(
                &'a self,
                scopes: &'a Scopes,
            ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
                (**self).access_token(scopes)
            }
            fn peek_access_token(&self, scopes: &Scopes) -> Option<AccessToken> {
                (**self).peek_access_token(scopes)
            }
            fn invalidate_access_token(&self, scopes: &Scopes, token: &AccessToken) {
                (**self).invalidate_access_token(scopes, token);
            }
            fn quota_project(&self) -> Option<&str> {
                (**self).quota_project()
            }
            fn source_name(&self) -> &'static str {
                (**self).source_name()
            }
        }
    )*};
}
forward_access_token_source!(Arc<T>, Box<T>, &T);

pub use crate::scopes::CLOUD_PLATFORM_SCOPE;

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

/// A domain-wide-delegation subject as configured: an empty one (an unset variable, a blank flag) is a
/// configuration error, never a token for the service account itself nor an empty `sub` sent to Google.
pub(crate) fn checked_subject(subject: Option<&str>) -> Result<Option<&str>, SourceError> {
    match subject {
        Some("") => Err(SourceError::Config {
            reason: "the domain-wide delegation subject (the Workspace user) is empty".to_owned(),
        }),
        other => Ok(other),
    }
}
