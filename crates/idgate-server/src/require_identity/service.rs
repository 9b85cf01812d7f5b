//! [`RequireIdentity`]: the middleware service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use idgate_core::identity::{AppEngineApp, Caller};
use idgate_core::policy::{Decision, DenyReason};
use idgate_core::token::is_signature_removed;
use tower_service::Service;

use super::ResponseFuture;
use super::layer::{IdentityConfig, RequireIdentityLayer};
use crate::credential::{self, BearerToken, CredentialHeader, Presented};
use crate::gate::{Admitted, Gate};
use crate::rejection::{IdentityRejection, log_allow, log_rejection};

pub(crate) const LAYER: &str = "require_identity";

/// Middleware that admits only verified, allowed service-to-service callers. Made by [`RequireIdentityLayer`];
/// see the [module docs](super).
#[derive(Clone)]
pub struct RequireIdentity<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<IdentityConfig>,
}

impl<S: fmt::Debug> fmt::Debug for RequireIdentity<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireIdentity")
            .field("inner", &self.inner)
            .field(
                "layer",
                &RequireIdentityLayer {
                    config: self.config.clone(),
                },
            )
            .finish()
    }
}

impl<S> RequireIdentity<S> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &RequireIdentityLayer) -> Self {
        Self {
            inner,
            config: layer.config.clone(),
        }
    }

    /// A layer that checks requests with `verifier`; the same as [`RequireIdentityLayer::new`], as tower-http services offer.
    ///
    /// ```
    /// use idgate_core::verify::OidcVerifier;
    /// use idgate_server::RequireIdentity;
    ///
    /// let verifier = OidcVerifier::builder().audience("https://svc.example").build()?;
    /// let _layer = RequireIdentity::<()>::layer(verifier);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layer(verifier: idgate_core::verify::OidcVerifier) -> RequireIdentityLayer {
        RequireIdentityLayer::new(verifier)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireIdentity<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was driven to readiness is the one that must be called; leave a clone in its place.
        // See https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = &self.config;

        if config.exempt.contains(request.uri().path()) {
            return ResponseFuture::new(Gate::calling(inner.call(request)));
        }
        let span = crate::trace::authenticate_span(LAYER);
        let entered = span.enter();
        let gate = match credential::presented(request.headers(), config.legacy.is_some()) {
            Err(rejection) => {
                log_rejection(LAYER, &rejection, None);
                crate::trace::record_reject(&span, &rejection);
                Gate::rejected(rejection)
            }
            Ok(Presented::Legacy(value)) => {
                crate::trace::record_credential(
                    &span,
                    CredentialHeader::AppEngineInboundAppid.name(),
                );
                match admit_legacy(config, &value) {
                    Ok(admitted) => {
                        crate::trace::record_allow(
                            &span,
                            admitted.reason,
                            &admitted.caller,
                            config.record_enduser_id,
                        );
                        admitted.insert_into(request.extensions_mut());
                        // The inner service runs outside the check's span.
                        drop(entered);
                        drop(span);
                        return ResponseFuture::new(Gate::calling(inner.call(request)));
                    }
                    Err(rejection) => {
                        crate::trace::record_reject(&span, &rejection);
                        Gate::rejected(rejection)
                    }
                }
            }
            Ok(Presented::Token(at)) => {
                crate::trace::record_credential(&span, at.header.name());
                let config = self.config.clone();
                let enduser_id = config.record_enduser_id;
                drop(entered);
                let check = Box::pin(async move { admit_token(&config, &at).await });
                return ResponseFuture::new(Gate::checking(
                    check, inner, request, span, enduser_id,
                ));
            }
        };
        ResponseFuture::new(gate)
    }
}

/// The trusted legacy header: an App Engine app, then the allowlist. Synchronous: nothing to verify.
fn admit_legacy(
    config: &IdentityConfig,
    value: &HeaderValue,
) -> Result<Admitted, IdentityRejection> {
    let Some(trust) = config.legacy else {
        // `presented` only returns the legacy header when it is trusted; stay closed regardless.
        let rejection = IdentityRejection::MissingCredential;
        log_rejection(LAYER, &rejection, None);
        return Err(rejection);
    };
    let caller = match AppEngineApp::from_trusted_header(value.as_bytes(), trust) {
        Ok(app) => Caller::from(app),
        Err(error) => {
            let rejection = IdentityRejection::UnknownIdentity(error);
            log_rejection(LAYER, &rejection, None);
            return Err(rejection);
        }
    };
    let mut admitted = authorize(config, caller, "legacy_appengine_header")?;
    admitted.via = Some(CredentialHeader::AppEngineInboundAppid);
    Ok(admitted)
}

/// A bearer token: verify (or, when opted in, accept Cloud Run's check), identify, authorize.
async fn admit_token(
    config: &IdentityConfig,
    at: &BearerToken,
) -> Result<Admitted, IdentityRejection> {
    let reject = |rejection: IdentityRejection| {
        log_rejection(LAYER, &rejection, None);
        rejection
    };
    let token = at.token();
    let (verified, via) = if is_signature_removed(token) {
        let Some(trust) = config.cloud_run else {
            return Err(reject(IdentityRejection::SignatureRemoved));
        };
        let verified = config
            .verifier
            .verify_cloud_run_checked(token, trust)
            .map_err(|e| reject(IdentityRejection::from_token_error(e)))?;
        (verified, "cloud_run_invoker_check")
    } else {
        let verified = config
            .verifier
            .verify(token)
            .await
            .map_err(|e| reject(IdentityRejection::from_token_error(e)))?;
        (verified, at.header.name())
    };
    let caller = Caller::from_id_token(&verified)
        .map_err(|e| reject(IdentityRejection::UnknownIdentity(e)))?;
    let mut admitted = authorize(config, caller, via)?;
    admitted.token = Some(verified);
    admitted.via = Some(at.header);
    Ok(admitted)
}

/// The allowlist decision, logged once either way.
fn authorize(
    config: &IdentityConfig,
    caller: Caller,
    via: &'static str,
) -> Result<Admitted, IdentityRejection> {
    let denied = match &config.allowlist {
        None => Some(DenyReason::NoAllowlistConfigured),
        Some(allowlist) => match allowlist.decide(&caller) {
            Decision::Allow { .. } => None,
            Decision::Deny { reason } => Some(reason),
        },
    };
    match denied {
        None => {
            log_allow(&config.admissions, LAYER, via, &caller);
            Ok(Admitted::caller(caller, via))
        }
        Some(reason) => {
            let rejection = IdentityRejection::NotAllowed(reason);
            log_rejection(LAYER, &rejection, Some(&caller));
            Err(rejection)
        }
    }
}
