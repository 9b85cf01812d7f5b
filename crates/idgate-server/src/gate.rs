//! The state machine behind both layers' response futures: check the credential (maybe asynchronously), then
//! either call the inner service with the verified identity in the request extensions, or answer with the rejection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use http::{Extensions, Request, Response, StatusCode};
use idgate_core::identity::{Caller, IapUser};
use idgate_core::verify::{VerifiedIapAssertion, VerifiedIdToken};
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::Span;

use crate::credential::CredentialHeader;
use crate::rejection::IdentityRejection;

/// What an admitted request carries into the inner service's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) caller: Caller,
    pub(crate) token: Option<VerifiedIdToken>,
    pub(crate) iap: Option<VerifiedIapAssertion>,
    /// The header whose credential the identity layer verified (`None` for the IAP layer).
    pub(crate) via: Option<CredentialHeader>,
    /// What admitted the caller, as the decision log and the span's `idgate.reason` say it.
    pub(crate) reason: &'static str,
}

impl Admitted {
    pub(crate) fn caller(caller: Caller, reason: &'static str) -> Self {
        Self {
            caller,
            token: None,
            iap: None,
            via: None,
            reason,
        }
    }

    pub(crate) fn insert_into(self, extensions: &mut Extensions) {
        if let Some(via) = self.via {
            extensions.insert(via);
        }
        if let Caller::IapUser(user) = &self.caller {
            extensions.insert::<IapUser>(user.clone());
        }
        if let Some(token) = self.token {
            extensions.insert(token);
        }
        if let Some(iap) = self.iap {
            extensions.insert(iap);
        }
        extensions.insert(self.caller);
    }
}

/// The asynchronous part of a check: verification and the allowlist. Logs its own decision.
pub(crate) type Check = BoxFuture<'static, Result<Admitted, IdentityRejection>>;

pin_project! {
    /// See the module docs.
    #[project = GateProj]
    pub(crate) enum Gate<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Checking {
            check: Check,
            inner: Option<S>,
            request: Option<Request<ReqBody>>,
            // The `idgate.authenticate` span, entered while the check is polled; closed when the check ends.
            span: Span,
            enduser_id: bool,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            rejection: Option<IdentityRejection>,
        },
    }
}

impl<S, ReqBody> Gate<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// `span` is the check's `idgate.authenticate` span; `enduser_id`: record `enduser.id` on it.
    pub(crate) fn checking(
        check: Check,
        inner: S,
        request: Request<ReqBody>,
        span: Span,
        enduser_id: bool,
    ) -> Self {
        Self::Checking {
            check,
            inner: Some(inner),
            request: Some(request),
            span,
            enduser_id,
        }
    }

    pub(crate) fn calling(future: S::Future) -> Self {
        Self::Calling { future }
    }

    pub(crate) fn rejected(rejection: IdentityRejection) -> Self {
        Self::Rejected {
            rejection: Some(rejection),
        }
    }
}

/// The answer to a future polled after it completed (a caller bug); never a panic.
fn polled_after_completion<B: From<String>>() -> Response<B> {
    let mut response = Response::new(B::from(
        "idgate: response future polled after completion".to_owned(),
    ));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

impl<S, ReqBody, ResBody> Future for Gate<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                GateProj::Checking {
                    check,
                    inner,
                    request,
                    span,
                    enduser_id,
                } => {
                    let outcome = {
                        let _entered = span.enter();
                        ready!(check.as_mut().poll(cx))
                    };
                    match &outcome {
                        Ok(admitted) => crate::trace::record_allow(
                            span,
                            admitted.reason,
                            &admitted.caller,
                            *enduser_id,
                        ),
                        Err(rejection) => crate::trace::record_reject(span, rejection),
                    }
                    // The inner service is called outside the span (set below, which also closes it).
                    match (outcome, inner.take(), request.take()) {
                        (Ok(admitted), Some(mut inner), Some(mut request)) => {
                            admitted.insert_into(request.extensions_mut());
                            Self::Calling {
                                future: inner.call(request),
                            }
                        }
                        (Err(rejection), _, _) => {
                            return Poll::Ready(Ok(rejection.into_http_response()));
                        }
                        (Ok(_), _, _) => return Poll::Ready(Ok(polled_after_completion())),
                    }
                }
                GateProj::Calling { future } => return future.poll(cx),
                GateProj::Rejected { rejection } => {
                    return Poll::Ready(Ok(rejection.take().map_or_else(
                        polled_after_completion,
                        IdentityRejection::into_http_response,
                    )));
                }
            };
            self.set(next);
        }
    }
}
