//! Outbound Google identity: mint Google-signed ID tokens and attach them to the requests your service makes; mint
//! OAuth 2.0 access tokens for the Google APIs it calls.
//!
//! ```text
//! request -> IdTokenMiddleware (reqwest-middleware) / AddIdTokenLayer (tower)
//!              audience: per-request Audience extension > per-host override > fixed > the URL's origin
//!         -> CachedSource: fresh token for that audience? attach it. Due? one caller refreshes.
//!         -> a source mints: MetadataServer | ServiceAccountKey | Impersonated | Adc
//!         -> Authorization: Bearer <token> (or X-Serverless-Authorization), marked sensitive
//!
//! API call -> AccessTokenMiddleware (reqwest-middleware) / AddAccessTokenLayer (tower)
//!              scopes: per-request Scopes extension > configured (default cloud-platform)
//!          -> CachedSource: one access token per sorted scope set, same refresh rules
//!          -> a source mints: MetadataServer | ServiceAccountKey (+ subject: DWD) | Impersonated (+ subject:
//!             keyless DWD) | AuthorizedUser | Adc
//!          -> Authorization: Bearer <token> (sensitive) [+ x-goog-user-project]; a 401 drops it, retried once
//! ```
//!
//! | item | what it is |
//! |---|---|
//! | [`IdTokenSource`] | the trait every source implements (object safe) |
//! | [`MetadataServer`], [`ServiceAccountKey`], [`Impersonated`], [`Adc`], [`StaticToken`] | the sources |
//! | [`AccessTokenSource`], [`AccessToken`], [`Scopes`] | access tokens for a normalised scope set, from every source above and [`AuthorizedUser`] |
//! | [`CachedSource`] | per-audience (ID) and per-scope-set (access) cache with refresh-ahead, single flight, no background task |
//! | [`IdTokenMiddleware`], [`AccessTokenMiddleware`] | reqwest-middleware 0.5 adapters (feature `reqwest-middleware`) |
//! | [`AddIdTokenLayer`], [`AddAccessTokenLayer`] | tower adapters for hyper-util clients, tonic channels, ... (feature `tower`) |
//! | [`AttachConfig`] | the audience, header and overwrite rules both adapters share |
//! | [`HttpOptions`], [`RetryPolicy`] | the HTTP client, timeout and retries of every source |
//! | [`Signer`], [`SignedBlob`] | sign bytes and JWTs as a service account, locally (key file) or through IAM `signBlob`/`signJwt`, always with the key ID |
//! | [`SourceError`], [`AttachError`], [`KeyFileError`], [`ScopesError`], [`SignError`] | typed errors; none ever contains a token or a key; causes in `source()` |
//!
//! # Example: reqwest
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use idgate_client::{Adc, IdTokenMiddleware, IdTokenSourceExt};
//!
//! let source = Adc::new()?.cached(); // GOOGLE_APPLICATION_CREDENTIALS, else the metadata server
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(IdTokenMiddleware::new(source)) // audience = each request's origin
//!     .build();
//! let answer = client.get("https://my-service-abc123-uc.a.run.app/jobs").send().await?;
//! # let _ = answer;
//! # Ok(()) }
//! ```
//!
//! # Example: tower
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use idgate_client::{AddIdTokenLayer, IdTokenSourceExt, StaticToken};
//! use idgate_core::token::IdToken;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln").unwrap();
//! let source = StaticToken::new(token).cached();
//!
//! // Any `Service<http::Request<B>>`: a hyper-util client, a tonic channel. Here, an echo of the header.
//! let client = ServiceBuilder::new()
//!     .layer(AddIdTokenLayer::new(source).audience("https://api.example.com"))
//!     .service_fn(|req: http::Request<()>| async move {
//!         Ok::<_, std::convert::Infallible>(req.headers()["authorization"].clone())
//!     });
//!
//! let header = client.oneshot(http::Request::new(())).await.unwrap();
//! assert!(header.is_sensitive());
//! assert!(header.to_str().unwrap().starts_with("Bearer eyJ"));
//! # }
//! ```
//!
//! # Example: a Google API
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use idgate_client::{AccessTokenMiddleware, CachedSource, MetadataServer, Scopes};
//!
//! let storage = Scopes::new(["https://www.googleapis.com/auth/devstorage.read_only"])?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(AccessTokenMiddleware::new(CachedSource::new(MetadataServer::new())).scopes(storage))
//!     .build();
//! let buckets = client.get("https://storage.googleapis.com/storage/v1/b?project=my-project").send().await?;
//! # let _ = buckets;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `reqwest-middleware` | on | [`IdTokenMiddleware`] and [`AccessTokenMiddleware`], for reqwest-middleware 0.5 |
//! | `tower` | on | [`AddIdTokenLayer`], [`AddAccessTokenLayer`] and the [`tower`](mod@tower) module, for any tower client |
//!
//! With both off, the sources and [`CachedSource`] remain: call [`IdTokenSource::id_token`] or
//! [`AccessTokenSource::access_token`] yourself.
//!
//! # Tracing
//!
//! Each mint through a [`CachedSource`] (what the middleware and the tower layer use) runs in an
//! `idgate.token.mint` span (`INFO`, target `idgate::client`) with `idgate.token.kind` (`id`/`access`),
//! `idgate.token.source` (the source's `source_name()`), `idgate.token.ahead`, `idgate.outcome` (`ok`/`error`), a
//! coarse `error.type` and `otel.status_code = ERROR` on failure. No token, audience, scope or error text is a span
//! field. A token served from the cache opens no span. The workspace's spans are listed in `docs/tracing.md`.
//!
//! # Security
//!
//! - Tokens, assertions, private keys, refresh tokens and access tokens never appear in `Debug` output, errors or
//!   logs; header values are marked sensitive.
//! - The derived audience is the request URL's origin only (`scheme://host[:port]`), so a token minted for one
//!   host is never sent to another. A *fixed* audience is attached to every request of the client: use per-host
//!   overrides when one client talks to several services.
//! - reqwest drops `Authorization` on cross-host redirects but not `X-Serverless-Authorization`: disable redirects
//!   (or keep them same-host) when using the latter.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "reqwest-middleware")]
mod access_middleware;
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
mod attach;
mod audience;
pub mod cache;
mod error;
mod iam;
pub mod metrics;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod scopes;
mod sign;
pub mod source;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod transport;

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use access_middleware::AccessTokenMiddleware;
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
pub use attach::AttachConfig;
pub use audience::Audience;
pub use cache::{CachedSource, CachedSourceBuilder};
pub use error::{
    AttachError, ClaimsProblem, Endpoint, KeyFileError, KeyOrigin, ResponseProblem, SignError,
    SourceError, TOKEN_CREATOR_ROLE,
};
pub use idgate_core::google::{DEFAULT_TIMEOUT, HttpOptions, RetryPolicy};
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use middleware::IdTokenMiddleware;
pub use scopes::{CLOUD_PLATFORM_SCOPE, Scopes, ScopesError};
pub use sign::{SignedBlob, Signer};
pub use source::{
    AccessToken, AccessTokenSource, Adc, AdcBuilder, AdcKind, AuthorizedUser, BoxFuture, Format,
    IdTokenSource, IdTokenSourceExt, Impersonated, MetadataServer, ServiceAccountKey, StaticToken,
};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower::{
    AddAccessToken, AddAccessTokenError, AddAccessTokenLayer, AddIdToken, AddIdTokenError,
    AddIdTokenLayer,
};

/// Which header carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>` (the default).
    #[default]
    Authorization,
    /// `X-Serverless-Authorization: Bearer <token>`: Cloud Run checks it instead of `Authorization` and forwards
    /// `Authorization` untouched, so the application can use it for its own credentials.
    XServerlessAuthorization,
}

impl TokenHeader {
    /// The header's name.
    pub fn name(self) -> ::http::HeaderName {
        match self {
            Self::Authorization => ::http::header::AUTHORIZATION,
            Self::XServerlessAuthorization => {
                ::http::HeaderName::from_static("x-serverless-authorization")
            }
        }
    }
}
