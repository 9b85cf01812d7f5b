//! The typed tables of a [`Config`](super::Config), and the verifiers they build.

#[allow(unused_imports)]
use super::*;

/// The `[inbound]` table: service-to-service verification of Google ID tokens.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub(super) audiences: Vec<Audience>,
    pub(super) audience_match: AudienceMatch,
    pub(super) leeway: Duration,
    pub(super) trust_legacy_appengine_header: bool,
    pub(super) trust_cloud_run_invoker_check: bool,
    pub(super) exempt_paths: Vec<String>,
    pub(super) allowlist: Allowlist,
}

/// The `[iap]` table: verification of Identity-Aware Proxy assertions.
#[derive(Debug, Clone)]
pub struct IapConfig {
    pub(super) audience: IapAudience,
    pub(super) leeway: Duration,
    pub(super) exempt_paths: Vec<String>,
    pub(super) compare_plain_user_headers: bool,
    pub(super) allowlist: Option<Allowlist>,
}

/// Where the IAP audience comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IapAudience {
    /// Written in the configuration (already checked against Google's documented shapes).
    Configured(Audience),
    /// To be discovered from the metadata server at startup (`discover_audience = true`).
    Discover,
}

impl IapAudience {
    /// The configured audience, if it is one.
    pub fn configured(&self) -> Option<&Audience> {
        match self {
            Self::Configured(aud) => Some(aud),
            Self::Discover => None,
        }
    }
}

/// The `[google]` table: which endpoints and key formats to use. The default is the real Google, each key
/// document's format read from the document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GoogleConfig {
    pub(super) endpoints: Endpoints,
    /// A format pinned by `oidc_keys_format`; `None` reads it from the document.
    pub(super) oidc_keys_format: Option<KeyFormat>,
    /// A format pinned by `iap_keys_format`; `None` reads it from the document.
    pub(super) iap_keys_format: Option<KeyFormat>,
}

/// The `[proxy]` table: the limits `idgate proxy` puts on its listener, so that slow, silent or numerous clients
/// cannot hold its connections and file descriptors. The defaults apply when the table (or a key) is absent;
/// `idgate proxy`'s flags override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_request_body_bytes: u64,
    pub(super) trust_forwarded_headers: bool,
}

impl ProxySettings {
    pub(super) const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 1024,
        max_request_body_bytes: 32 * 1024 * 1024,
        trust_forwarded_headers: false,
    };

    /// `header_read_timeout_secs` (default 10 s): how long a client may take to send a complete request head,
    /// counted from the accept (so a connection that sends nothing is closed then) or, on a keep-alive connection,
    /// from the first byte of its next request.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// `idle_timeout_secs` (default 60 s): how long a connection with no request in flight stays open.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// `max_connections` (default 1024): connections served at once; more clients wait in the kernel's backlog.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// `max_request_body_bytes` (default 32 MiB): a larger `Content-Length` is answered `413`, a larger streamed
    /// body is cut before it reaches the upstream whole.
    pub fn max_request_body_bytes(&self) -> u64 {
        self.max_request_body_bytes
    }

    /// `trust_forwarded_headers` (default `false`): keep the `X-Forwarded-Host`, `X-Forwarded-Proto` and
    /// `Forwarded` a front end (Cloud Run, a TLS-terminating load balancer) set, instead of replacing them with
    /// what the proxy saw. Only safe when no client can reach the proxy except through that front end.
    pub fn trust_forwarded_headers(&self) -> bool {
        self.trust_forwarded_headers
    }
}

/// The `[tracing]` table: what idgate's tracing spans may record (see `docs/tracing.md`). The defaults apply when
/// the table (or a key) is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingSettings {
    pub(super) record_enduser_id: bool,
}

impl TracingSettings {
    /// `record_enduser_id` (default `false`): record the verified caller's identity (an email, or an App Engine
    /// app ID) as `enduser.id` on the `idgate.authenticate` span. Off by default because an email is personal
    /// data, and spans often travel to a tracing backend with other retention and access rules than the logs.
    pub fn record_enduser_id(&self) -> bool {
        self.record_enduser_id
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl GoogleConfig {
    /// Every endpoint, defaults overridden by the `[google]` table.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Where the OIDC signing keys are fetched, and how the document is read (detected unless pinned).
    pub fn oidc_keys(&self) -> (Url, KeyDocumentFormat) {
        match self.oidc_keys_format {
            Some(format @ KeyFormat::OidcPemCertificates) => {
                (self.endpoints.oidc_pem.clone(), format.into())
            }
            Some(format) => (self.endpoints.oidc_jwks.clone(), format.into()),
            None => (self.endpoints.oidc_jwks.clone(), KeyAlgorithm::Rs256.into()),
        }
    }

    /// Where the IAP signing keys are fetched, and how the document is read (detected unless pinned).
    pub fn iap_keys(&self) -> (Url, KeyDocumentFormat) {
        match self.iap_keys_format {
            Some(format @ KeyFormat::IapPem) => (self.endpoints.iap_pem.clone(), format.into()),
            Some(format) => (self.endpoints.iap_jwks.clone(), format.into()),
            None => (self.endpoints.iap_jwks.clone(), KeyAlgorithm::Es256.into()),
        }
    }
}

fn is_exempt(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| p == path)
}

impl InboundConfig {
    /// The accepted audiences.
    pub fn audiences(&self) -> &[Audience] {
        &self.audiences
    }

    /// How `aud` is compared with [`InboundConfig::audiences`].
    pub fn audience_match(&self) -> AudienceMatch {
        self.audience_match
    }

    /// The clock skew tolerated on `exp`, `iat` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Whether `trust_legacy_appengine_header = true`.
    pub fn trusts_legacy_appengine_header(&self) -> bool {
        self.trust_legacy_appengine_header
    }

    /// The marker that lets [`AppEngineApp::from_trusted_header`](crate::identity::AppEngineApp::from_trusted_header)
    /// read `X-Appengine-Inbound-Appid`, when the configuration says this service is behind App Engine's front
    /// end (`trust_legacy_appengine_header = true`); `None` otherwise, and then the header must be ignored.
    pub fn legacy_header_trust(&self) -> Option<TrustedAppEngineFrontEnd> {
        self.trust_legacy_appengine_header
            .then(TrustedAppEngineFrontEnd::assume_behind_app_engine)
    }

    /// Whether tokens whose signature Cloud Run's invoker check removed are accepted on the strength of that check.
    pub fn trusts_cloud_run_invoker_check(&self) -> bool {
        self.trust_cloud_run_invoker_check
    }

    /// The exact paths that need no identity.
    pub fn exempt_paths(&self) -> &[String] {
        &self.exempt_paths
    }

    /// Whether `path` is exactly one of the exempt paths.
    pub fn is_exempt(&self, path: &str) -> bool {
        is_exempt(&self.exempt_paths, path)
    }

    /// Who may call.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// A verifier builder with this table's audiences, audience match and leeway, and `google`'s OIDC keys.
    /// Add a clock or a shared key cache before building, if needed.
    pub fn oidc_verifier_builder(&self, google: &GoogleConfig) -> OidcVerifierBuilder {
        let (url, format) = google.oidc_keys();
        OidcVerifier::builder()
            .audiences(self.audiences.iter().cloned())
            .audience_match(self.audience_match)
            .leeway(self.leeway)
            .keys_url_as(url, format)
    }

    /// The verifier for this table.
    ///
    /// # Errors
    ///
    /// [`BuildError`]; cannot happen for a validated configuration, which already checked the same rules.
    pub fn oidc_verifier(&self, google: &GoogleConfig) -> Result<OidcVerifier, BuildError> {
        self.oidc_verifier_builder(google).build()
    }
}

impl IapConfig {
    /// Where the IAP audience comes from.
    pub fn audience(&self) -> &IapAudience {
        &self.audience
    }

    /// The clock skew tolerated on `exp`, `iat` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The exact paths that need no IAP assertion (load-balancer health checks carry none).
    pub fn exempt_paths(&self) -> &[String] {
        &self.exempt_paths
    }

    /// Whether `path` is exactly one of the exempt paths.
    pub fn is_exempt(&self, path: &str) -> bool {
        is_exempt(&self.exempt_paths, path)
    }

    /// Whether `X-Goog-Authenticated-User-Email` is read, only to compare it with the verified assertion.
    pub fn compare_plain_user_headers(&self) -> bool {
        self.compare_plain_user_headers
    }

    /// Who may call; `None` when `[iap.allow]` is absent and every user IAP admits is let in.
    pub fn allowlist(&self) -> Option<&Allowlist> {
        self.allowlist.as_ref()
    }

    /// A verifier builder for `audience` (the configured one, or the one discovered at startup), with this
    /// table's leeway and `google`'s IAP keys.
    pub fn iap_verifier_builder(
        &self,
        google: &GoogleConfig,
        audience: impl Into<Audience>,
    ) -> IapVerifierBuilder {
        let (url, format) = google.iap_keys();
        IapVerifier::builder()
            .audience(audience)
            .leeway(self.leeway)
            .keys_url_as(url, format)
    }

    /// The verifier for this table and `audience`.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when `audience` (e.g. a discovered one) is not of a documented IAP shape.
    pub fn iap_verifier(
        &self,
        google: &GoogleConfig,
        audience: impl Into<Audience>,
    ) -> Result<IapVerifier, BuildError> {
        self.iap_verifier_builder(google, audience).build()
    }
}
