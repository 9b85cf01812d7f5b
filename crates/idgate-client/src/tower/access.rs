//! [`AddAccessTokenLayer`]: attaches OAuth 2.0 access tokens to requests to Google APIs sent through any tower
//! client.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::AddIdTokenError;
use crate::attach::{AccessConfig, access_setters};
use crate::error::AttachError;
use crate::scopes::Scopes;
use crate::source::{AccessToken, AccessTokenSource, BoxFuture};

/// The error of an [`AddAccessToken`] service: the inner service's, or why no token could be attached (in which
/// case the inner service was not called). The same type as [`AddIdTokenError`].
pub type AddAccessTokenError<E> = AddIdTokenError<E>;

/// How an [`AddAccessToken`] service gets a second copy of a request, to send it again with a fresh token after
/// a 401. See [`AddAccessTokenLayer::replay_cloneable_bodies`].
pub trait ReplayRequest<B>: Clone + Send + Sync + 'static {
    /// A copy of `request`, or `None` when it cannot be replayed.
    fn replay(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Never replays: after a 401 the token is dropped from the cache (the next request gets a fresh one) and the
/// 401 is returned. The default, because most request bodies (streams) cannot be replayed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

impl<B> ReplayRequest<B> for NoReplay {
    fn replay(&self, _request: &Request<B>) -> Option<Request<B>> {
        None
    }
}

/// Replays requests whose body type is `Clone` (`String`, `Bytes`, `http_body_util::Full<Bytes>`, ...): after a
/// 401 the request is sent once more with a fresh token.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayRequest<B> for CloneBody {
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// Applies [`AddAccessToken`] to a service: `Authorization: Bearer <access token>` (marked sensitive) on every
/// request, for calling Google APIs.
///
/// - **Hosts**: only Google's APIs (`https` to `googleapis.com` and its subdomains) get the token, plus hosts named
///   with [`allow_host`](Self::allow_host) (the emulator's `127.0.0.1`, a private endpoint); any other request
///   passes through untouched, with no token and no mint. An access token opens every API the account may
///   call, so a client that also calls other URLs must not hand them one ([`allow_any_host`](Self::allow_any_host)
///   turns the check off).
/// - **Scopes**: a [`Scopes`] in the request's extensions, else the configured ones ([`scopes`](Self::scopes),
///   default `cloud-platform`).
/// - **Quota project**: `x-goog-user-project` when one is configured ([`quota_project`](Self::quota_project),
///   else the source's) and the request has none.
/// - **401**: the token is dropped from the cache; with
///   [`replay_cloneable_bodies`](Self::replay_cloneable_bodies) the request is sent once more with a fresh
///   token (never more than once).
///
/// Holds only the configuration; cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use idgate_client::tower::AddAccessTokenLayer;
/// use idgate_client::{AccessToken, AccessTokenSource, BoxFuture, CachedSource, Scopes, SourceError};
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// #[derive(Debug)]
/// struct Handed;
/// impl AccessTokenSource for Handed {
///     fn access_token<'a>(&'a self, _: &'a Scopes) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
///         Box::pin(std::future::ready(Ok(AccessToken::new("ya29.example", Some(Duration::from_secs(3600))))))
///     }
/// }
///
/// let svc = ServiceBuilder::new()
///     .layer(AddAccessTokenLayer::new(CachedSource::new(Handed)).quota_project("billed-project"))
///     .service_fn(|req: http::Request<()>| async move {
///         let auth = req.headers()["authorization"].clone();
///         let project = req.headers()["x-goog-user-project"].clone();
///         Ok::<_, std::convert::Infallible>(http::Response::new((auth, project)))
///     });
///
/// let req = http::Request::get("https://storage.googleapis.com/storage/v1/b?project=p").body(()).unwrap();
/// let (auth, project) = svc.oneshot(req).await.unwrap().into_body();
/// assert!(auth.is_sensitive());
/// assert_eq!(auth, "Bearer ya29.example");
/// assert_eq!(project, "billed-project");
/// # }
/// ```
#[derive(Debug)]
pub struct AddAccessTokenLayer<T, R = NoReplay> {
    source: Arc<T>,
    config: AccessConfig,
    replay: R,
}

impl<T, R: Clone> Clone for AddAccessTokenLayer<T, R> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            config: self.config.clone(),
            replay: self.replay.clone(),
        }
    }
}

impl<T> AddAccessTokenLayer<T> {
    /// Attaches `cloud-platform` tokens from `source` (give it a [`CachedSource`](crate::CachedSource)).
    pub fn new(source: T) -> Self {
        Self::from_arc(Arc::new(source))
    }

    /// As [`AddAccessTokenLayer::new`], for a source that is already shared.
    pub fn from_arc(source: Arc<T>) -> Self {
        Self {
            source,
            config: AccessConfig::default(),
            replay: NoReplay,
        }
    }
}

impl<T, R> AddAccessTokenLayer<T, R> {
    access_setters!();

    /// After a 401, send the request once more with a fresh token; the request body type must be `Clone`
    /// ([`CloneBody`]).
    #[must_use]
    pub fn replay_cloneable_bodies(self) -> AddAccessTokenLayer<T, CloneBody> {
        self.replay_with(CloneBody)
    }

    /// After a 401, send the copy `replay` makes of the request once more with a fresh token.
    #[must_use]
    pub fn replay_with<R2>(self, replay: R2) -> AddAccessTokenLayer<T, R2> {
        AddAccessTokenLayer {
            source: self.source,
            config: self.config,
            replay,
        }
    }
}

impl<S, T, R: Clone> Layer<S> for AddAccessTokenLayer<T, R> {
    type Service = AddAccessToken<S, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AddAccessToken {
            inner,
            layer: self.clone(),
        }
    }
}

/// Attaches an access token to every request before calling the inner service. Built by
/// [`AddAccessTokenLayer`]; see it for an example.
pub struct AddAccessToken<S, T, R = NoReplay> {
    inner: S,
    layer: AddAccessTokenLayer<T, R>,
}

impl<S: Clone, T, R: Clone> Clone for AddAccessToken<S, T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T: fmt::Debug, R: fmt::Debug> fmt::Debug for AddAccessToken<S, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddAccessToken")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T> AddAccessToken<S, T> {
    /// Wraps `inner`, attaching `cloud-platform` tokens from `source`.
    pub fn new(inner: S, source: T) -> Self {
        AddAccessTokenLayer::new(source).layer(inner)
    }
}

impl<S, T, R> AddAccessToken<S, T, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

async fn token<T: AccessTokenSource>(
    source: &T,
    scopes: &Scopes,
) -> Result<AccessToken, AttachError> {
    match source.peek_access_token(scopes) {
        Some(token) => Ok(token),
        None => source
            .access_token(scopes)
            .await
            .map_err(|error| AttachError::AccessToken {
                scopes: scopes.clone(),
                error,
            }),
    }
}

impl<S, T, R, B, ResB> Service<Request<B>> for AddAccessToken<S, T, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    T: AccessTokenSource + 'static,
    R: ReplayRequest<B>,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = AddAccessTokenError<S::Error>;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AddIdTokenError::Inner)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The service that was polled ready goes into the future; a clone takes its place here
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !self
            .layer
            .config
            .wants_token(req.uri().scheme_str(), req.uri().host(), req.headers())
        {
            let future = inner.call(req);
            return Box::pin(async move { future.await.map_err(AddIdTokenError::Inner) });
        }
        let layer = self.layer.clone();
        Box::pin(async move {
            let config = &layer.config;
            let source = &*layer.source;
            let scopes = config.scopes_for(req.extensions().get::<Scopes>()).clone();
            let first = token(source, &scopes)
                .await
                .map_err(AddIdTokenError::Attach)?;
            config
                .apply(req.headers_mut(), &first, source.quota_project())
                .map_err(AddIdTokenError::Attach)?;
            let again = layer.replay.replay(&req);
            let response = inner.call(req).await.map_err(AddIdTokenError::Inner)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            source.invalidate_access_token(&scopes, &first);
            let Some(mut again) = again else {
                return Ok(response);
            };
            drop(response);
            tracing::debug!(
                target: "idgate::client",
                "the API refused the access token (401); retrying once with a fresh one"
            );
            let fresh = token(source, &scopes)
                .await
                .map_err(AddIdTokenError::Attach)?;
            config
                .apply(again.headers_mut(), &fresh, source.quota_project())
                .map_err(AddIdTokenError::Attach)?;
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(AddIdTokenError::Inner)?;
            inner.call(again).await.map_err(AddIdTokenError::Inner)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::CachedSource;
    use crate::attach::test_source::Counting;

    type Seen = Arc<Mutex<Vec<String>>>;

    /// An API that records the Authorization it got and refuses `refuse` with 401.
    fn api(
        seen: &Seen,
        refuse: &'static [&'static str],
    ) -> impl Service<
        Request<String>,
        Response = Response<()>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let seen = Arc::clone(seen);
        tower::service_fn(move |req: Request<String>| {
            let seen = Arc::clone(&seen);
            async move {
                let auth = req.headers()[http::header::AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let refused = refuse.iter().any(|r| auth.ends_with(r));
                seen.lock().unwrap().push(auth);
                let mut response = Response::new(());
                if refused {
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                }
                Ok::<_, Infallible>(response)
            }
        })
    }

    fn request() -> Request<String> {
        Request::post("https://storage.googleapis.com/upload")
            .body("payload".to_owned())
            .unwrap()
    }

    #[tokio::test]
    async fn a_401_is_retried_once_when_the_body_replays() {
        let seen = Seen::default();
        let layer = AddAccessTokenLayer::new(CachedSource::new(Counting::default()))
            .replay_cloneable_bodies();
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(api(&seen, &["ya29.0"]));
        let response = svc.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(*seen.lock().unwrap(), ["Bearer ya29.0", "Bearer ya29.1"]);

        // Never a loop: refused twice, the second 401 is the answer.
        let seen = Seen::default();
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(api(&seen, &["ya29.1", "ya29.2"]));
        let response = svc.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn without_replay_a_401_drops_the_token_for_the_next_request() {
        let seen = Seen::default();
        let svc = ServiceBuilder::new()
            .layer(AddAccessTokenLayer::new(CachedSource::new(
                Counting::default(),
            )))
            .service(api(&seen, &["ya29.0"]));
        let response = svc.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = svc.oneshot(request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(*seen.lock().unwrap(), ["Bearer ya29.0", "Bearer ya29.1"]);
    }

    /// Requests to hosts other than Google's APIs (or allowed ones) pass through with no token and no mint.
    #[tokio::test]
    async fn other_hosts_get_no_token() {
        let source = Arc::new(CachedSource::new(Counting::default()));
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let recorded = Arc::clone(&seen);
        let svc = ServiceBuilder::new()
            .layer(AddAccessTokenLayer::from_arc(Arc::clone(&source)).allow_host("localhost"))
            .service_fn(move |req: Request<String>| {
                let auth = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_owned());
                recorded.lock().unwrap().push(auth);
                async { Ok::<_, Infallible>(Response::new(())) }
            });
        for uri in [
            "https://attacker.example/hook",
            "http://storage.googleapis.com/x",
            "https://storage.googleapis.com.attacker.example/",
            "/relative",
            "https://LOCALHOST:8443/x",
            "https://pubsub.googleapis.com/v1/x",
        ] {
            let req = Request::get(uri).body(String::new()).unwrap();
            svc.clone().oneshot(req).await.unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen[..4], [None, None, None, None]);
        assert_eq!(seen[4].as_deref(), Some("Bearer ya29.0"));
        assert_eq!(seen[5].as_deref(), Some("Bearer ya29.0"));
    }

    #[tokio::test]
    async fn per_request_scopes_and_existing_headers() {
        let seen = Seen::default();
        let source = Arc::new(CachedSource::new(Counting::default()));
        let svc = ServiceBuilder::new()
            .layer(AddAccessTokenLayer::from_arc(Arc::clone(&source)))
            .service(api(&seen, &[]));
        svc.clone().oneshot(request()).await.unwrap();
        let mut req = request();
        req.extensions_mut().insert(Scopes::new(["x"]).unwrap());
        svc.clone().oneshot(req).await.unwrap();
        svc.clone().oneshot(request()).await.unwrap();
        let mut req = request();
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer mine"),
        );
        svc.oneshot(req).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "Bearer ya29.0",
                "Bearer ya29.1",
                "Bearer ya29.0",
                "Bearer mine"
            ]
        );
    }
}
