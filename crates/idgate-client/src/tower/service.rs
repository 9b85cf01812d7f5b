use std::fmt;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use super::{AddIdTokenError, AddIdTokenLayer, ResponseFuture};
use crate::audience::Audience;
use crate::source::IdTokenSource;

/// Attaches an ID token to every request before calling the inner service. Built by [`AddIdTokenLayer`].
///
/// See the [module docs](super) for an example.
pub struct AddIdToken<S, T> {
    inner: S,
    layer: AddIdTokenLayer<T>,
}

impl<S: Clone, T> Clone for AddIdToken<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T: fmt::Debug> fmt::Debug for AddIdToken<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddIdToken")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T> AddIdToken<S, T> {
    pub(crate) fn from_layer(inner: S, layer: AddIdTokenLayer<T>) -> Self {
        Self { inner, layer }
    }

    /// Wraps `inner`, attaching tokens from `source` (see [`AddIdTokenLayer::new`]).
    pub fn new(inner: S, source: T) -> Self {
        Self::from_layer(inner, AddIdTokenLayer::new(source))
    }

    /// A layer with this service's configuration.
    pub fn layer(source: T) -> AddIdTokenLayer<T> {
        AddIdTokenLayer::new(source)
    }

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

impl<S, T, B> Service<Request<B>> for AddIdToken<S, T>
where
    S: Service<Request<B>> + Clone,
    T: IdTokenSource + 'static,
{
    type Response = S::Response;
    type Error = AddIdTokenError<S::Error>;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AddIdTokenError::Inner)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(name) = self.layer.config.header_for(req.headers()) else {
            return ResponseFuture::called(self.inner.call(req));
        };
        let audience = match self
            .layer
            .config
            .policy()
            .resolve_uri(req.extensions().get::<Audience>(), req.uri())
        {
            Ok(audience) => audience,
            Err(error) => return ResponseFuture::failed(error),
        };
        if let Some(token) = self.layer.source.peek(audience.as_str()) {
            req.headers_mut().insert(name, token.bearer_header());
            return ResponseFuture::called(self.inner.call(req));
        }
        // Mint first. The service that was polled ready goes into the future; a clone takes its place here
        // (https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let source = std::sync::Arc::clone(&self.layer.source);
        let minting_for = audience.clone();
        let token = Box::pin(async move { source.id_token(minting_for.as_str()).await });
        ResponseFuture::minting(token, inner, req, name, audience)
    }
}
