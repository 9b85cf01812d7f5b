//! [`RequireIap`]: the middleware service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use idgate_core::identity::Caller;
use idgate_core::policy::Decision;
use idgate_core::token::CredentialError;
use tower_service::Service;

use super::ResponseFuture;
use super::layer::{IapLayerConfig, RequireIapLayer};
use crate::credential::{X_GOOG_AUTHENTICATED_USER_EMAIL, X_GOOG_IAP_JWT_ASSERTION, single};
use crate::gate::{Admitted, Gate};
use crate::rejection::{IdentityRejection, log_allow, log_rejection};

pub(crate) const LAYER: &str = "require_iap";

/// The namespace prefix of IAP's unsigned identity headers.
const ACCOUNTS_PREFIX: &str = "accounts.google.com:";

/// Middleware that admits only requests with a verified IAP assertion. Made by [`RequireIapLayer`]; see the
/// [module docs](super).
#[derive(Clone)]
pub struct RequireIap<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<IapLayerConfig>,
}

impl<S: fmt::Debug> fmt::Debug for RequireIap<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireIap")
            .field("inner", &self.inner)
            .field(
                "layer",
                &RequireIapLayer {
                    config: self.config.clone(),
                },
            )
            .finish()
    }
}

impl<S> RequireIap<S> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &RequireIapLayer) -> Self {
        Self {
            inner,
            config: layer.config.clone(),
        }
    }

    /// A layer that checks requests with `verifier`; the same as [`RequireIapLayer::new`], as tower-http services offer.
    ///
    /// ```
    /// use idgate_core::verify::IapVerifier;
    /// use idgate_server::RequireIap;
    ///
    /// let verifier = IapVerifier::builder().audience("/projects/123456789/apps/my-app").build()?;
    /// let _layer = RequireIap::<()>::layer(verifier);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layer(verifier: idgate_core::verify::IapVerifier) -> RequireIapLayer {
        RequireIapLayer::new(verifier)
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireIap<S>
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Call the service that was driven to readiness; leave a clone in its place.
        // See https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        if self.config.exempt.contains(request.uri().path()) {
            return ResponseFuture::new(Gate::calling(inner.call(request)));
        }
        let span = crate::trace::authenticate_span(LAYER);
        let presented = {
            let _entered = span.enter();
            let presented = presented(request.headers(), self.config.compare_plain_headers);
            match &presented {
                Err(rejection) => {
                    log_rejection(LAYER, rejection, None);
                    crate::trace::record_reject(&span, rejection);
                }
                Ok(_) => crate::trace::record_credential(&span, X_GOOG_IAP_JWT_ASSERTION.as_str()),
            }
            presented
        };
        let gate = match presented {
            Err(rejection) => Gate::rejected(rejection),
            Ok((assertion, plain_email)) => {
                let config = self.config.clone();
                let enduser_id = config.record_enduser_id;
                let check = async move { admit(&config, &assertion, plain_email.as_ref()).await };
                Gate::checking(Box::pin(check), inner, request, span, enduser_id)
            }
        };
        ResponseFuture::new(gate)
    }
}

/// The assertion header (exactly one) and, when comparison is on, the plain email header (at most one).
type Presented = (HeaderValue, Option<HeaderValue>);

fn presented(
    headers: &http::HeaderMap,
    compare_plain: bool,
) -> Result<Presented, IdentityRejection> {
    let assertion = single(headers, &X_GOOG_IAP_JWT_ASSERTION)?
        .ok_or(IdentityRejection::MissingIapAssertion)?;
    let plain = if compare_plain {
        single(headers, &X_GOOG_AUTHENTICATED_USER_EMAIL)
            .map_err(|_| IdentityRejection::IapHeaderMismatch)?
            .cloned()
    } else {
        None
    };
    Ok((assertion.clone(), plain))
}

async fn admit(
    config: &IapLayerConfig,
    assertion: &HeaderValue,
    plain_email: Option<&HeaderValue>,
) -> Result<Admitted, IdentityRejection> {
    let reject = |rejection: IdentityRejection, caller: Option<&Caller>| {
        log_rejection(LAYER, &rejection, caller);
        rejection
    };
    let Ok(assertion) = assertion.to_str() else {
        return Err(reject(
            IdentityRejection::MalformedCredential(CredentialError::NotAscii),
            None,
        ));
    };
    let verified = config
        .verifier
        .verify(assertion)
        .await
        .map_err(|e| reject(IdentityRejection::from_iap_error(e), None))?;
    let caller = Caller::from_iap(&verified);
    if let Some(plain) = plain_email
        && !plain_email_matches(plain, verified.email())
    {
        return Err(reject(IdentityRejection::IapHeaderMismatch, Some(&caller)));
    }
    if let Some(allowlist) = &config.allowlist
        && let Decision::Deny { reason } = allowlist.decide(&caller)
    {
        return Err(reject(IdentityRejection::NotAllowed(reason), Some(&caller)));
    }
    log_allow(&config.admissions, LAYER, "iap_assertion", &caller);
    Ok(Admitted {
        caller,
        token: None,
        iap: Some(verified),
        via: None,
        reason: "iap_assertion",
    })
}

/// `accounts.google.com:alice@example.com` (or a bare address) names the same mailbox as the verified email.
fn plain_email_matches(plain: &HeaderValue, verified: &str) -> bool {
    let Ok(plain) = plain.to_str() else {
        return false;
    };
    let plain = plain.trim();
    let plain = plain.strip_prefix(ACCOUNTS_PREFIX).unwrap_or(plain);
    !plain.is_empty() && plain.eq_ignore_ascii_case(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header_comparison() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(plain_email_matches(
            &v("accounts.google.com:alice@example.com"),
            "alice@example.com"
        ));
        assert!(plain_email_matches(
            &v("Alice@Example.com"),
            "alice@example.com"
        ));
        assert!(!plain_email_matches(
            &v("accounts.google.com:bob@example.com"),
            "alice@example.com"
        ));
        assert!(!plain_email_matches(
            &v("accounts.google.com:"),
            "alice@example.com"
        ));
        assert!(!plain_email_matches(
            &v("evil.com:alice@example.com"),
            "alice@example.com"
        ));
    }
}
