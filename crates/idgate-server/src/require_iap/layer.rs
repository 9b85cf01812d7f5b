//! [`RequireIapLayer`]: the configuration.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use idgate_core::policy::Allowlist;
use idgate_core::verify::IapVerifier;
use tower_layer::Layer;

use super::RequireIap;

/// Requires a verified Identity-Aware Proxy assertion (`x-goog-iap-jwt-assertion`) on every request, and
/// optionally an allowlist decision on the signed-in user.
///
/// Holds only configuration (an `Arc` inside, so `Clone` is cheap). See the [module docs](super).
#[derive(Clone)]
pub struct RequireIapLayer {
    pub(crate) config: Arc<IapLayerConfig>,
}

#[derive(Clone)]
pub(crate) struct IapLayerConfig {
    pub(crate) verifier: IapVerifier,
    pub(crate) allowlist: Option<Allowlist>,
    pub(crate) compare_plain_headers: bool,
    pub(crate) exempt: HashSet<String>,
    pub(crate) admissions: Arc<crate::metrics::Admissions>,
    /// Record the admitted caller as `enduser.id` on the `idgate.authenticate` span.
    pub(crate) record_enduser_id: bool,
}

impl fmt::Debug for RequireIapLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("RequireIapLayer")
            .field("verifier", &c.verifier)
            .field("allowlist", &c.allowlist)
            .field("compare_plain_user_headers", &c.compare_plain_headers)
            .field("exempt_paths", &c.exempt)
            .field("record_enduser_id", &c.record_enduser_id)
            .finish()
    }
}

impl RequireIapLayer {
    /// Verifies IAP assertions with `verifier` (which pins the audience). Every user IAP admitted and whose
    /// assertion verifies is let through until [`allowlist`](Self::allowlist) narrows it.
    pub fn new(verifier: IapVerifier) -> Self {
        Self {
            config: Arc::new(IapLayerConfig {
                verifier,
                allowlist: None,
                compare_plain_headers: false,
                exempt: HashSet::new(),
                record_enduser_id: false,
                admissions: Arc::new(crate::metrics::Admissions::new(
                    super::service::LAYER,
                    &["iap_assertion"],
                )),
            }),
        }
    }

    /// Admits only the users `allowlist` allows (emails, email domains, Workspace `hd`); denies (403) the others.
    #[must_use]
    pub fn allowlist(mut self, allowlist: Allowlist) -> Self {
        Arc::make_mut(&mut self.config).allowlist = Some(allowlist);
        self
    }

    /// Compares IAP's unsigned `X-Goog-Authenticated-User-Email` header, when present, with the verified
    /// assertion (after stripping its `accounts.google.com:` prefix) and answers 401 on a mismatch. Default off.
    ///
    /// The plain header is **never** identity by itself: anyone who reaches the service without passing through
    /// IAP can forge it. Turn this on to catch a forged or stale header that legacy code downstream still reads.
    #[must_use]
    pub fn compare_plain_user_headers(mut self, compare: bool) -> Self {
        Arc::make_mut(&mut self.config).compare_plain_headers = compare;
        self
    }

    /// Lets requests for exactly `path` through without an assertion (load-balancer health checks carry none).
    /// Matched against the request path exactly, without the query.
    #[must_use]
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).exempt.insert(path.into());
        self
    }

    /// The verifier, e.g. for its key cache's readiness.
    pub fn verifier(&self) -> &IapVerifier {
        &self.config.verifier
    }
}

impl RequireIapLayer {
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

impl<S> Layer<S> for RequireIapLayer {
    type Service = RequireIap<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireIap {
            inner,
            config: self.config.clone(),
        }
    }
}
