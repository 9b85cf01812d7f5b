//! Both layers from one TOML [`Config`], key prefetch at startup, IAP audience discovery, and readiness.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use idgate_core::config::Config;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_path("idgate.toml")?;
//! let layers = idgate_server::from_config(&config).await?; // prefetches keys; fails fast
//! let app: Router = layers
//!     .apply(Router::new().route("/", get(|| async { "hello" })))
//!     // Outside the layers: readiness needs no identity.
//!     .route("/readyz", get(layers.readiness_handler()));
//! # let _ = app; Ok(()) }
//! ```

use std::future::Ready;
use std::time::Duration;

#[cfg(feature = "axum")]
use axum::Router;
use http::StatusCode;
use http::header::HeaderValue;
use idgate_core::config::{Admission, Config, IapAudience};
use idgate_core::google::{HttpOptions, MetadataClient};
use idgate_core::verify::{IapVerifier, OidcVerifier, TrustedCloudRunInvokerCheck};
use url::Url;

use crate::{ByCredentialLayer, RequireIapLayer, RequireIdentityLayer, ServerError};

/// How long each metadata-server request of [`discover_iap_audience`] may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// The layers a [`Config`] asks for, ready to apply. Cheap to clone.
///
/// Made by [`from_config`]. When both `[inbound]` and `[iap]` are configured, [`apply`](Self::apply) combines them
/// as the [`Admission`] mode says: stacked ([`Admission::All`], the default: a request must pass both), or by the
/// credential each request presents ([`Admission::ByCredential`]: see [`ByCredentialLayer`]).
#[derive(Debug, Clone)]
pub struct Layers {
    identity: Option<RequireIdentityLayer>,
    iap: Option<RequireIapLayer>,
    admission: Admission,
}

impl Layers {
    /// Layers from explicitly built parts (at least one should be `Some`, or [`apply`](Self::apply) admits all),
    /// stacked ([`Admission::All`]) until [`admission`](Self::admission) says otherwise.
    pub fn new(identity: Option<RequireIdentityLayer>, iap: Option<RequireIapLayer>) -> Self {
        Self {
            identity,
            iap,
            admission: Admission::All,
        }
    }

    /// How [`apply`](Self::apply) combines the layers (`[admission] mode`).
    #[must_use]
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Records the admitted caller as `enduser.id` on both layers' `idgate.authenticate` spans (see
    /// [`RequireIdentityLayer::record_enduser_id`]); [`from_config`] sets it from `[tracing] record_enduser_id`.
    #[must_use]
    pub fn record_enduser_id(mut self, record: bool) -> Self {
        self.identity = self.identity.map(|l| l.record_enduser_id(record));
        self.iap = self.iap.map(|l| l.record_enduser_id(record));
        self
    }

    /// The [`Admission`] mode.
    pub fn admission_mode(&self) -> Admission {
        self.admission
    }

    /// The layers as one [`ByCredentialLayer`], whatever the mode: add a gate for requests without a bearer token
    /// or an assertion (idgate-signin's `RequireSignInLayer`) with
    /// [`no_credential`](ByCredentialLayer::no_credential).
    pub fn by_credential(&self) -> ByCredentialLayer {
        ByCredentialLayer::new(self.identity.clone(), self.iap.clone())
    }

    /// The service-to-service layer, when `[inbound]` is configured.
    pub fn identity(&self) -> Option<&RequireIdentityLayer> {
        self.identity.as_ref()
    }

    /// The IAP layer, when `[iap]` is configured.
    pub fn iap(&self) -> Option<&RequireIapLayer> {
        self.iap.as_ref()
    }

    /// Wraps every route of `router` in the configured layers: stacked, IAP outermost ([`Admission::All`]), or one
    /// [`ByCredentialLayer`] ([`Admission::ByCredential`]).
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn apply<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if self.admission == Admission::ByCredential {
            return router.layer(self.by_credential());
        }
        let mut router = router;
        if let Some(identity) = &self.identity {
            router = router.layer(identity.clone());
        }
        if let Some(iap) = &self.iap {
            router = router.layer(iap.clone());
        }
        router
    }

    /// Whether every configured verifier holds a usable key set (fresh, or stale within the bound): what a
    /// readiness probe should report.
    pub fn ready(&self) -> bool {
        let oidc = self
            .identity
            .as_ref()
            .is_none_or(|l| l.verifier().keys().status().ready);
        let iap = self
            .iap
            .as_ref()
            .is_none_or(|l| l.verifier().keys().status().ready);
        oidc && iap
    }

    /// An axum handler answering `200 ready` or `503 keys unavailable` from [`ready`](Self::ready). Mount it
    /// outside the layers (or on an exempt path).
    pub fn readiness_handler(
        &self,
    ) -> impl Fn() -> Ready<(
        StatusCode,
        [(http::HeaderName, HeaderValue); 1],
        &'static str,
    )> + Clone
    + Send
    + Sync
    + 'static {
        let layers = self.clone();
        move || {
            let no_store = [(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            )];
            std::future::ready(if layers.ready() {
                (StatusCode::OK, no_store, "ready")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    no_store,
                    "keys unavailable",
                )
            })
        }
    }
}

/// Builds the layers `config` asks for, and prepares them to serve:
///
/// - `[inbound]`: an [`OidcVerifier`] on the configured audiences, the allowlist, the legacy-header trust, the
///   Cloud Run opt-in and the exempt paths;
/// - `[iap]`: an [`IapVerifier`] on the configured audience or, with `discover_audience = true`, the one
///   [`discover_iap_audience`] finds; the optional allowlist, the plain-header switch and the exempt paths;
/// - `[admission] mode`: how [`Layers::apply`] combines them;
/// - `[tracing] record_enduser_id`: [`Layers::record_enduser_id`];
/// - then prefetches every key set (`warm()`), so the first request does not wait and a wrong key URL fails the
///   deployment instead of the first caller.
///
/// Endpoints (keys, metadata server) come from `config.google()`.
///
/// # Errors
///
/// [`ServerError::Keys`] when a key set cannot be fetched, [`ServerError::IapAudienceDiscovery`] when the IAP
/// audience is neither configured nor discoverable, [`ServerError::Verifier`] for an unusable verifier
/// configuration, [`ServerError::NothingConfigured`] for a config without either table.
pub async fn from_config(config: &Config) -> Result<Layers, ServerError> {
    let google = config.google();
    let identity = match config.inbound() {
        None => None,
        Some(inbound) => {
            let verifier: OidcVerifier = inbound.oidc_verifier(google)?;
            verifier
                .keys()
                .warm()
                .await
                .map_err(|source| ServerError::Keys {
                    which: "OIDC",
                    source,
                })?;
            let mut layer =
                RequireIdentityLayer::new(verifier).allowlist(inbound.allowlist().clone());
            if let Some(trust) = inbound.legacy_header_trust() {
                tracing::warn!(
                    target: "idgate::config",
                    "trusting X-Appengine-Inbound-Appid: correct only behind App Engine's front end"
                );
                layer = layer.trust_legacy_header(trust);
            }
            if inbound.trusts_cloud_run_invoker_check() {
                tracing::warn!(
                    target: "idgate::config",
                    "trusting Cloud Run's invoker check for signature-removed tokens: safe only if this service \
                     is reachable exclusively through Cloud Run with the invoker check on"
                );
                layer = layer.trust_cloud_run_invoker_check(
                    TrustedCloudRunInvokerCheck::assume_only_reachable_through_cloud_run(),
                );
            }
            for path in inbound.exempt_paths() {
                layer = layer.exempt_path(path.clone());
            }
            Some(layer)
        }
    };
    let iap = match config.iap() {
        None => None,
        Some(iap_config) => {
            let audience = match iap_config.audience() {
                IapAudience::Configured(audience) => audience.clone(),
                IapAudience::Discover => discover_iap_audience(&google.endpoints().metadata)
                    .await?
                    .into(),
                other => {
                    return Err(ServerError::UnsupportedIapAudience(format!("{other:?}")));
                }
            };
            let verifier: IapVerifier = iap_config.iap_verifier(google, &audience)?;
            verifier
                .keys()
                .warm()
                .await
                .map_err(|source| ServerError::Keys {
                    which: "IAP",
                    source,
                })?;
            let mut layer = RequireIapLayer::new(verifier)
                .compare_plain_user_headers(iap_config.compare_plain_user_headers());
            if let Some(allowlist) = iap_config.allowlist() {
                layer = layer.allowlist(allowlist.clone());
            }
            for path in iap_config.exempt_paths() {
                layer = layer.exempt_path(path.clone());
            }
            Some(layer)
        }
    };
    if identity.is_none() && iap.is_none() {
        return Err(ServerError::NothingConfigured);
    }
    Ok(Layers {
        identity,
        iap,
        admission: config.admission(),
    }
    .record_enduser_id(config.tracing().record_enduser_id()))
}

/// The App Engine IAP audience, `/projects/NUMBER/apps/PROJECT_ID`, from the metadata server whose root is
/// `metadata`: `project/numeric-project-id` and `project/project-id`, through idgate-core's [`MetadataClient`]
/// (`Metadata-Flavor: Google` both ways, 3 s per request, retries on 5xx and 429). Call it once, at startup.
///
/// Other IAP deployments (load-balancer backend services, Cloud Run) have audiences the metadata server cannot
/// tell; configure those.
///
/// # Errors
///
/// [`ServerError::IapAudienceDiscovery`] saying which value could not be read, with the [`MetadataError`] as its
/// source.
///
/// [`MetadataError`]: idgate_core::google::MetadataError
pub async fn discover_iap_audience(metadata: &Url) -> Result<String, ServerError> {
    let client = MetadataClient::from_root(metadata.clone())
        .http(HttpOptions::new().timeout(METADATA_TIMEOUT));
    let number =
        client
            .numeric_project_id()
            .await
            .map_err(|source| ServerError::IapAudienceDiscovery {
                what: "project number",
                source,
            })?;
    let project_id =
        client
            .project_id()
            .await
            .map_err(|source| ServerError::IapAudienceDiscovery {
                what: "project ID",
                source,
            })?;
    Ok(format!("/projects/{number}/apps/{project_id}"))
}
