//! The suite's TOML configuration: one file, validated at load, errors with line and column.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::google::Endpoints;
use crate::identity::TrustedAppEngineFrontEnd;
use crate::keys::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
use crate::policy::{Allowlist, AllowlistError, ListKind};
use crate::verify::{
    AudienceMatch, BuildError, DEFAULT_LEEWAY, IapVerifier, IapVerifierBuilder, OidcVerifier,
    OidcVerifierBuilder,
};

/// The largest leeway accepted, in seconds (the verifiers refuse more).
const MAX_LEEWAY_SECS: u64 = 300;
/// The longest `[proxy]` timeout accepted, in seconds: one day (longer only keeps a silent client's descriptor).
const MAX_PROXY_TIMEOUT_SECS: u64 = 86_400;
/// The most `[proxy]` connections accepted: Linux's default ceiling on a process's open files (`fs.nr_open`).
const MAX_PROXY_CONNECTIONS: u64 = 1_048_576;

mod error;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

pub use error::{ConfigError, ConfigErrorKind, Location};
use error::{from_allowlist_error, from_toml_error};
use raw::*;
use validate::*;

/// The idgate configuration: one TOML file for the whole suite, validated when loaded.
///
/// Every table and key is optional except that at least one of `[inbound]` and `[iap]` must be present. Unknown
/// keys are errors (a typo must not silently turn a check off). Every error names the line and column and says
/// what to write instead.
///
/// ```
/// use idgate_core::config::Config;
///
/// let config = Config::from_toml_str(r#"
/// ## Service-to-service: Google-signed ID tokens (RequireIdentityLayer).
/// [inbound]
/// ## The audiences callers mint tokens for: your service URL and/or Cloud Run custom audiences.
/// audiences = ["https://my-service-abc123-uc.a.run.app"]
/// ## "exact" (default) or "origin": also accept tokens minted for any URL on an audience's origin.
/// audience_match = "exact"
/// ## Clock skew tolerated on exp/iat/nbf. Default 30, at most 300.
/// leeway_secs = 30
/// ## Honour X-Appengine-Inbound-Appid. ONLY when served by App Engine's front end: anywhere else anyone can send it.
/// trust_legacy_appengine_header = false
/// ## Accept tokens whose signature Cloud Run's invoker check removed (trusting that check instead).
/// trust_cloud_run_invoker_check = false
/// ## Exact paths that need no identity (health checks).
/// exempt_paths = ["/healthz"]
///
/// [inbound.allow]
/// ## A project ID admits its App Engine default service account (ID@appspot.gserviceaccount.com)
/// ## and the trusted legacy header naming it.
/// project_ids = ["other-app-id"]
/// service_accounts = ["runner@other-proj.iam.gserviceaccount.com"]
/// ## Opt-in: also admit every NAME@ID.iam.gserviceaccount.com of the listed projects.
/// all_service_accounts_of_listed_projects = false
///
/// ## Identity-Aware Proxy assertions (RequireIapLayer).
/// [iap]
/// ## Exactly one of `audience` and `discover_audience = true` (ask the metadata server at startup).
/// audience = "/projects/123456789/apps/my-project"
/// leeway_secs = 30
/// exempt_paths = ["/healthz"]
/// ## Read X-Goog-Authenticated-User-Email only to compare it with the verified assertion.
/// compare_plain_user_headers = false
///
/// ## Optional: without it every user IAP admits gets in (IAP's IAM policy is then the gate).
/// [iap.allow]
/// emails = ["alice@example.com"]
/// domains = ["example.com"]
/// hosted_domains = ["example.com"]
///
/// ## Optional endpoint overrides, for the emulator and tests.
/// [google]
/// ## Every endpoint under one URL, on Google's own paths (as idgate-emulator serves them)...
/// base_url = "http://127.0.0.1:8085"
/// ## ...and/or one by one. A key URL may serve a JWKS or a PEM map: the format is read from the document,
/// ## unless `*_keys_format` pins it ("jwks" or "pem"; "auto" is the default).
/// oidc_keys_url = "http://127.0.0.1:8085/oauth2/v1/certs"
/// iap_keys_url = "http://127.0.0.1:8085/iap/verify/public_key-jwk"
/// iap_keys_format = "jwks"
/// metadata_url = "http://127.0.0.1:8085/computeMetadata/v1/"
/// token_url = "http://127.0.0.1:8085/token"
/// iam_credentials_url = "http://127.0.0.1:8085/"
///
/// ## Optional: the limits `idgate proxy` puts on its listener (the defaults are shown). `idgate proxy` flags
/// ## override them.
/// [proxy]
/// ## A connection's request head (or, from a silent client, anything at all) must be complete within this.
/// header_read_timeout_secs = 10
/// ## A connection with no request in flight is closed after this.
/// idle_timeout_secs = 60
/// ## Connections served at once; more wait in the kernel's backlog.
/// max_connections = 1024
/// ## A larger Content-Length is answered 413; a larger streamed body is cut.
/// max_request_body_bytes = 33554432
/// ## Keep a front end's X-Forwarded-Host/-Proto and Forwarded (Cloud Run, a TLS load balancer) instead of
/// ## replacing them with what the proxy saw. Only when no client can reach the proxy directly.
/// trust_forwarded_headers = false
/// "#).unwrap();
///
/// let inbound = config.inbound().unwrap();
/// assert_eq!(inbound.audiences(), ["https://my-service-abc123-uc.a.run.app"]);
/// assert!(inbound.legacy_header_trust().is_none());
/// assert!(inbound.is_exempt("/healthz"));
/// // The OIDC key URL serves PEM certificates; with no `oidc_keys_format` the format is read from the document.
/// let (url, format) = config.google().oidc_keys();
/// assert_eq!(url.as_str(), "http://127.0.0.1:8085/oauth2/v1/certs");
/// assert_eq!(format, idgate_core::keys::KeyDocumentFormat::Detect(idgate_core::keys::KeyAlgorithm::Rs256));
/// assert!(config.iap().unwrap().allowlist().is_some());
/// assert_eq!(config.proxy().max_connections(), 1024);
/// assert!(!config.proxy().trust_forwarded_headers());
///
/// // Mistakes are reported with their position and a fix.
/// let err = Config::from_toml_str("[inbound]\naudiences = [\"https://a.example\"]\n[inbound.allow]\nproject_ids = [\"*\"]\n")
///     .unwrap_err();
/// assert_eq!((err.line(), err.column()), (Some(4), Some(16)));
/// assert!(err.to_string().contains("wildcard"));
/// ```
///
/// | key | meaning |
/// |---|---|
/// | `inbound.audiences` | required, non-empty; the `aud` values accepted |
/// | `inbound.audience_match` | `"exact"` (default) or `"origin"` (every audience must then be an http(s) URL) |
/// | `inbound.leeway_secs`, `iap.leeway_secs` | default 30, at most 300 |
/// | `inbound.trust_legacy_appengine_header` | default `false`; see [`TrustedAppEngineFrontEnd`] |
/// | `inbound.trust_cloud_run_invoker_check` | default `false` |
/// | `inbound.exempt_paths`, `iap.exempt_paths` | exact paths starting with `/` |
/// | `inbound.allow.project_ids` | project IDs (`my-app`, `example.com:my-app`) |
/// | `inbound.allow.service_accounts` | emails on `gserviceaccount.com` domains |
/// | `inbound.allow.all_service_accounts_of_listed_projects` | default `false` |
/// | `iap.audience` / `iap.discover_audience` | exactly one; the audience must be a documented IAP shape |
/// | `iap.compare_plain_user_headers` | default `false` |
/// | `iap.allow.emails`, `.domains`, `.hosted_domains` | users; if `[iap.allow]` is present it must list someone |
/// | `google.*` | endpoint overrides; plain `http` only on loopback addresses (except `metadata_url`) |
/// | `google.oidc_keys_format`, `google.iap_keys_format` | `"auto"` (default: JWKS or PEM, read from each document, as Google's libraries do), `"jwks"` or `"pem"` to pin one; the family (OIDC RS256, IAP ES256) is never read from the document |
/// | `proxy.header_read_timeout_secs` | default 10, 1 to 86400; see [`ProxySettings`] |
/// | `proxy.idle_timeout_secs` | default 60, 1 to 86400 |
/// | `proxy.max_connections` | default 1024, 1 to 1048576 |
/// | `proxy.max_request_body_bytes` | default 33554432 (32 MiB), at least 1 |
/// | `proxy.trust_forwarded_headers` | default `false`; `true` keeps a front end's `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` |
///
/// The `[inbound]` allowlist must admit someone: an empty one would deny every request.
#[derive(Debug, Clone)]
pub struct Config {
    inbound: Option<InboundConfig>,
    iap: Option<IapConfig>,
    google: GoogleConfig,
    /// `None` when the file has no `[proxy]` table.
    proxy: Option<ProxySettings>,
}

/// The `[inbound]` table: service-to-service verification of Google ID tokens.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    audiences: Vec<String>,
    audience_match: AudienceMatch,
    leeway: Duration,
    trust_legacy_appengine_header: bool,
    trust_cloud_run_invoker_check: bool,
    exempt_paths: Vec<String>,
    allowlist: Allowlist,
}

/// The `[iap]` table: verification of Identity-Aware Proxy assertions.
#[derive(Debug, Clone)]
pub struct IapConfig {
    audience: IapAudience,
    leeway: Duration,
    exempt_paths: Vec<String>,
    compare_plain_user_headers: bool,
    allowlist: Option<Allowlist>,
}

/// Where the IAP audience comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IapAudience {
    /// Written in the configuration (already checked against Google's documented shapes).
    Configured(String),
    /// To be discovered from the metadata server at startup (`discover_audience = true`).
    Discover,
}

impl IapAudience {
    /// The configured audience, if it is one.
    pub fn configured(&self) -> Option<&str> {
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
    endpoints: Endpoints,
    /// A format pinned by `oidc_keys_format`; `None` reads it from the document.
    oidc_keys_format: Option<KeyFormat>,
    /// A format pinned by `iap_keys_format`; `None` reads it from the document.
    iap_keys_format: Option<KeyFormat>,
}

/// The `[proxy]` table: the limits `idgate proxy` puts on its listener, so that slow, silent or numerous clients
/// cannot hold its connections and file descriptors. The defaults apply when the table (or a key) is absent;
/// `idgate proxy`'s flags override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    max_request_body_bytes: u64,
    trust_forwarded_headers: bool,
}

impl ProxySettings {
    const DEFAULT: Self = Self {
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

impl Config {
    /// Parses and validates a configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] with the line and column of the first mistake and advice on what to write instead.
    pub fn from_toml_str(src: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(src).map_err(|e| from_toml_error(src, &e))?;
        Validator { src }.config(raw)
    }

    /// Reads, parses and validates the configuration file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::Io`] when the file cannot be read; otherwise as [`Config::from_toml_str`], with the file
    /// name in the message.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let with_file = |mut e: ConfigError| {
            e.file = Some(path.to_owned());
            e
        };
        let src = std::fs::read_to_string(path).map_err(|e| {
            // The I/O error is the source; ErrorChain prints it after this message.
            let mut err = ConfigError::new(ConfigErrorKind::Io, "cannot read the configuration");
            err.source = Some(e);
            with_file(err)
        })?;
        Self::from_toml_str(&src).map_err(with_file)
    }

    /// The `[inbound]` table, if present.
    pub fn inbound(&self) -> Option<&InboundConfig> {
        self.inbound.as_ref()
    }

    /// The `[iap]` table, if present.
    pub fn iap(&self) -> Option<&IapConfig> {
        self.iap.as_ref()
    }

    /// The `[google]` table (the real Google when absent).
    pub fn google(&self) -> &GoogleConfig {
        &self.google
    }

    /// Every endpoint, defaults overridden by the `[google]` table.
    pub fn endpoints(&self) -> Endpoints {
        self.google.endpoints.clone()
    }

    /// The `[proxy]` table's limits (the defaults when it is absent).
    pub fn proxy(&self) -> &ProxySettings {
        self.proxy.as_ref().unwrap_or(&ProxySettings::DEFAULT)
    }

    /// A readable summary of what this configuration lets in, for `idgate check-config` and startup logs.
    /// The same text as `Display`.
    pub fn effective_policy(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_policy(&mut out);
        out
    }

    fn write_policy(&self, out: &mut String) -> fmt::Result {
        if let Some(inbound) = &self.inbound {
            writeln!(out, "[inbound] service-to-service Google ID tokens")?;
            let mode = match inbound.audience_match {
                AudienceMatch::Origin => "exact, or any URL on the same origin",
                _ => "exact match",
            };
            writeln!(
                out,
                "  audiences ({mode}): {}",
                inbound.audiences.join(", ")
            )?;
            writeln!(out, "  leeway: {} s", inbound.leeway.as_secs())?;
            if inbound.trust_legacy_appengine_header {
                writeln!(
                    out,
                    "  legacy X-Appengine-Inbound-Appid: TRUSTED (only safe when served by App Engine's front end)"
                )?;
            } else {
                writeln!(out, "  legacy X-Appengine-Inbound-Appid: ignored")?;
            }
            if inbound.trust_cloud_run_invoker_check {
                writeln!(
                    out,
                    "  tokens whose signature Cloud Run removed: accepted on the strength of Cloud Run's invoker check"
                )?;
            } else {
                writeln!(out, "  tokens whose signature Cloud Run removed: rejected")?;
            }
            write_paths(out, &inbound.exempt_paths)?;
            writeln!(out, "  admitted:")?;
            write_indented(out, &inbound.allowlist.to_string())?;
        }
        if let Some(iap) = &self.iap {
            writeln!(out, "[iap] Identity-Aware Proxy assertions")?;
            match &iap.audience {
                IapAudience::Configured(aud) => writeln!(out, "  audience: {aud}")?,
                IapAudience::Discover => writeln!(
                    out,
                    "  audience: discovered from the metadata server at startup"
                )?,
            }
            writeln!(out, "  leeway: {} s", iap.leeway.as_secs())?;
            write_paths(out, &iap.exempt_paths)?;
            if iap.compare_plain_user_headers {
                writeln!(
                    out,
                    "  plain X-Goog-Authenticated-User-* headers: compared with the verified assertion"
                )?;
            } else {
                writeln!(out, "  plain X-Goog-Authenticated-User-* headers: ignored")?;
            }
            writeln!(out, "  admitted:")?;
            match &iap.allowlist {
                Some(allowlist) => write_indented(out, &allowlist.to_string())?,
                None => writeln!(
                    out,
                    "    every user IAP admits (IAP's IAM policy is the only gate)"
                )?,
            }
        }
        let google = &self.google;
        let (oidc_url, oidc_format) = google.oidc_keys();
        let (iap_url, iap_format) = google.iap_keys();
        writeln!(out, "Google endpoints")?;
        writeln!(out, "  OIDC keys: {oidc_url} ({oidc_format})")?;
        writeln!(out, "  IAP keys: {iap_url} ({iap_format})")?;
        writeln!(out, "  metadata server: {}", google.endpoints.metadata)?;
        writeln!(out, "  token endpoint: {}", google.endpoints.token)?;
        writeln!(
            out,
            "  IAM credentials: {}",
            google.endpoints.iam_credentials
        )?;
        if let Some(proxy) = &self.proxy {
            writeln!(out, "[proxy] limits on idgate proxy's listener")?;
            writeln!(
                out,
                "  request head within: {} s (a connection that sends nothing is closed then)",
                proxy.header_read_timeout.as_secs()
            )?;
            writeln!(
                out,
                "  idle connections closed after: {} s",
                proxy.idle_timeout.as_secs()
            )?;
            writeln!(
                out,
                "  connections at once: {} (more wait in the kernel's backlog)",
                proxy.max_connections
            )?;
            writeln!(
                out,
                "  request body at most: {} bytes",
                proxy.max_request_body_bytes
            )?;
            if proxy.trust_forwarded_headers {
                writeln!(
                    out,
                    "  X-Forwarded-Host/-Proto, Forwarded: KEPT from the front end (only safe if clients cannot reach the proxy directly)"
                )?;
            } else {
                writeln!(
                    out,
                    "  X-Forwarded-Host/-Proto, Forwarded: set from what the proxy saw"
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.effective_policy())
    }
}

fn write_paths(out: &mut String, paths: &[String]) -> fmt::Result {
    if paths.is_empty() {
        writeln!(out, "  exempt paths: none")
    } else {
        writeln!(
            out,
            "  exempt paths (no identity required): {}",
            paths.join(", ")
        )
    }
}

fn write_indented(out: &mut String, text: &str) -> fmt::Result {
    for line in text.lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(())
}

fn is_exempt(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| p == path)
}

impl InboundConfig {
    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
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
        audience: &str,
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
        audience: &str,
    ) -> Result<IapVerifier, BuildError> {
        self.iap_verifier_builder(google, audience).build()
    }
}
