use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, Request};
use idgate_core::token::IdToken;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::AddIdTokenError;
use crate::audience::Audience;
use crate::error::{AttachError, SourceError};
use crate::source::BoxFuture;

pin_project! {
    /// The response future of [`AddIdToken`](super::AddIdToken).
    ///
    /// # Panics
    ///
    /// Like the futures of `futures-util`, it panics if polled again after it completed.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Minting {
            token: BoxFuture<'static, Result<IdToken, SourceError>>,
            pending: Option<Pending<S, B>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Failed {
            error: Option<AttachError>,
        },
    }
}

/// What a minting future holds until the token arrives.
struct Pending<S, B> {
    inner: S,
    request: Request<B>,
    header: HeaderName,
    audience: Audience,
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    pub(super) fn called(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(super) fn failed(error: AttachError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }

    pub(super) fn minting(
        token: BoxFuture<'static, Result<IdToken, SourceError>>,
        inner: S,
        request: Request<B>,
        header: HeaderName,
        audience: Audience,
    ) -> Self {
        Self {
            state: State::Minting {
                token,
                pending: Some(Pending {
                    inner,
                    request,
                    header,
                    audience,
                }),
            },
        }
    }
}

impl<S: Service<Request<B>>, B> fmt::Debug for ResponseFuture<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Minting { .. } => "Minting",
            State::Calling { .. } => "Calling",
            State::Failed { .. } => "Failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

const POLLED_AFTER_COMPLETION: &str =
    "idgate_client::tower::ResponseFuture polled after completion";

impl<S: Service<Request<B>>, B> Future for ResponseFuture<S, B> {
    type Output = Result<S::Response, AddIdTokenError<S::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    return future.poll(cx).map_err(AddIdTokenError::Inner);
                }
                StateProj::Failed { error } => {
                    let error = error.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Err(AddIdTokenError::Attach(error)));
                }
                StateProj::Minting { token, pending } => {
                    let result = ready!(token.as_mut().poll(cx));
                    let Pending {
                        mut inner,
                        mut request,
                        header,
                        audience,
                    } = pending.take().expect(POLLED_AFTER_COMPLETION);
                    let value = result
                        .map_err(|error| AttachError::Source { audience, error })
                        .map(|token| token.bearer_header());
                    match value {
                        Ok(value) => {
                            request.headers_mut().insert(header, value);
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(error) => {
                            this.state.set(State::Failed { error: None });
                            return Poll::Ready(Err(AddIdTokenError::Attach(error)));
                        }
                    }
                }
            }
        }
    }
}
