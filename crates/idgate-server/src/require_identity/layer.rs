//! [`RequireIdentityLayer`]: the configuration.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_core::policy::Allowlist;
use idgate_core::verify::{OidcVerifier, TrustedCloudRunInvokerCheck};
use tower_layer::Layer;

use super::RequireIdentity;

/// Requires a verified Google identity (service to service) on every request, and an allowlist decision.
///
/// Holds only configuration (an `Arc` inside, so `Clone` is cheap). See the [module docs](super) for the precedence
/// of credentials, the responses, and an example.
#[derive(Clone)]
pub struct RequireIdentityLayer {
    pub(crate) config: Arc<IdentityConfig>,
}

#[derive(Clone)]
pub(crate) struct IdentityConfig {
    pub(crate) verifier: OidcVerifier,
    pub(crate) allowlist: Option<Allowlist>,
    pub(crate) legacy: Option<TrustedAppEngineFrontEnd>,
    pub(crate) cloud_run: Option<TrustedCloudRunInvokerCheck>,
    pub(crate) exempt: HashSet<String>,
    pub(crate) admissions: Arc<crate::metrics::Admissions>,
    /// Record the admitted caller as `enduser.id` on the `idgate.authenticate` span.
    pub(crate) record_enduser_id: bool,
}

impl fmt::Debug for RequireIdentityLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("RequireIdentityLayer")
            .field("verifier", &c.verifier)
            .field("allowlist", &c.allowlist)
            .field("trust_legacy_header", &c.legacy.is_some())
            .field("trust_cloud_run_invoker_check", &c.cloud_run.is_some())
            .field("exempt_paths", &c.exempt)
            .field("record_enduser_id", &c.record_enduser_id)
            .finish()
    }
}

impl RequireIdentityLayer {
    /// Verifies ID tokens with `verifier`. Until [`allowlist`](Self::allowlist) is set, every caller is denied
    /// (403): an absent allowlist, like an empty one, admits nobody.
    pub fn new(verifier: OidcVerifier) -> Self {
        Self {
            config: Arc::new(IdentityConfig {
                verifier,
                allowlist: None,
                legacy: None,
                cloud_run: None,
                exempt: HashSet::new(),
                record_enduser_id: false,
                admissions: Arc::new(crate::metrics::Admissions::new(
                    super::service::LAYER,
                    &[
                        "authorization",
                        "x-serverless-authorization",
                        "cloud_run_invoker_check",
                        "legacy_appengine_header",
                    ],
                )),
            }),
        }
    }

    /// Admits the verified callers `allowlist` allows; denies (403) the others.
    #[must_use]
    pub fn allowlist(mut self, allowlist: Allowlist) -> Self {
        Arc::make_mut(&mut self.config).allowlist = Some(allowlist);
        self
    }

    /// Honours the legacy `X-Appengine-Inbound-Appid` header, ahead of any token, as the identity of the calling
    /// App Engine app.
    ///
    /// **Only** correct when this service is served by App Engine's front end on its `appspot.com` route, which
    /// strips the header from client requests; anywhere else anyone can send it. Hence the
    /// [`TrustedAppEngineFrontEnd`] marker. Without this call the header is ignored.
    #[must_use]
    pub fn trust_legacy_header(mut self, trust: TrustedAppEngineFrontEnd) -> Self {
        Arc::make_mut(&mut self.config).legacy = Some(trust);
        self
    }

    /// **Opt-in, read the risk.** Accepts tokens whose signature Cloud Run removed (`SIGNATURE_REMOVED_BY_GOOGLE`)
    /// on the strength of Cloud Run's own invoker IAM check, after checking their claims exactly like a verified
    /// token's (issuer, this layer's audiences, times, verified email; see
    /// [`OidcVerifier::verify_cloud_run_checked`]). The allowlist still applies.
    ///
    /// # The risk
    ///
    /// Such a token's signature cannot be checked here, so **anyone who can reach this service without passing
    /// through Cloud Run's invoker check can forge any caller** by sending `header.claims.SIGNATURE_REMOVED_BY_GOOGLE`.
    /// Turn this on only when the service is reachable **only** through Cloud Run with the invoker check on
    /// (`--no-allow-unauthenticated`, no `allUsers` invoker binding, ingress not bypassing it): that is the
    /// statement the [`TrustedCloudRunInvokerCheck`] value makes. The safe alternative is for callers to send the
    /// token in `X-Serverless-Authorization`, which Cloud Run checks and forwards intact, and which this layer
    /// verifies itself.
    #[must_use]
    pub fn trust_cloud_run_invoker_check(mut self, trust: TrustedCloudRunInvokerCheck) -> Self {
        Arc::make_mut(&mut self.config).cloud_run = Some(trust);
        self
    }

    /// Lets requests for exactly `path` (e.g. `/healthz`) through without any credential; the handler then sees no
    /// caller (`Option<VerifiedCaller>` is `None`). Matched against the request path exactly, without the query.
    #[must_use]
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).exempt.insert(path.into());
        self
    }

    /// Whether the legacy `X-Appengine-Inbound-Appid` header is trusted
    /// ([`trust_legacy_header`](Self::trust_legacy_header)): the service says it sits behind App Engine's front end.
    pub fn trusts_legacy_header(&self) -> bool {
        self.config.legacy.is_some()
    }

    /// Whether tokens whose signature Cloud Run removed are accepted on the strength of its invoker check
    /// ([`trust_cloud_run_invoker_check`](Self::trust_cloud_run_invoker_check)).
    pub fn trusts_cloud_run_invoker_check(&self) -> bool {
        self.config.cloud_run.is_some()
    }

    /// The verifier, e.g. for its key cache's readiness.
    pub fn verifier(&self) -> &OidcVerifier {
        &self.config.verifier
    }
}

impl RequireIdentityLayer {
    /// Records the admitted caller's verified email (an App Engine app's ID for the legacy header) as
    /// OpenTelemetry's `enduser.id` on the check's `idgate.authenticate` span (see [`crate::trace`]). Default
    /// `false`: an email is personal data, and spans often go to a tracing backend with other retention and access
    /// rules than the logs. `[tracing] record_enduser_id = true` in the configuration turns it on for
    /// [`from_config`](crate::from_config)'s layers.
    #[must_use]
    pub fn record_enduser_id(mut self, record: bool) -> Self {
        Arc::make_mut(&mut self.config).record_enduser_id = record;
        self
    }

    /// Whether `enduser.id` is recorded on spans ([`record_enduser_id`](Self::record_enduser_id)).
    pub fn records_enduser_id(&self) -> bool {
        self.config.record_enduser_id
    }
}

impl<S> Layer<S> for RequireIdentityLayer {
    type Service = RequireIdentity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireIdentity {
            inner,
            config: self.config.clone(),
        }
    }
}
