//! The suite's TOML configuration: one file, validated at load, errors with line and column.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::audience::{Audience, MAX_AUDIENCE_LEN};
use crate::google::Endpoints;
use crate::identity::TrustedAppEngineFrontEnd;
use crate::keys::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
use crate::policy::{Allowlist, AllowlistError, BadShape, ListKind, check_shape};
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

mod admission;
mod error;
mod parse;
mod raw;
mod signin;
mod summary;
mod tables;
#[cfg(test)]
mod tests;
mod validate;

pub use admission::Admission;
use error::from_allowlist_error;
pub use error::{ConfigError, ConfigErrorKind, Location};
use raw::*;
pub use signin::{
    AccessType, ClientSecretSource, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_SCOPES, RedisSessionsConfig,
    RedisUrlSource, SessionStoreConfig, SignInConfig, TokenKeySource,
};
pub use tables::{
    GoogleConfig, IapAudience, IapConfig, InboundConfig, ProxySettings, TracingSettings,
};
use validate::*;

/// The idgate configuration: one TOML file for the whole suite, validated when loaded.
///
/// Every table and key is optional except that at least one of `[inbound]`, `[iap]` and `[signin]` must be present. Unknown
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
/// ## Optional: how the gates combine on the same routes. "all" (the default): a request must pass [inbound] AND
/// ## [iap]. "by_credential": an IAP assertion is judged by [iap] alone, else a bearer token by [inbound] alone
/// ## (else the [signin] session, when configured); a credential that fails is refused, never tried as another.
/// [admission]
/// mode = "all"
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
///
/// ## Optional: what idgate's tracing spans record. `enduser.id` (the verified caller's email or App Engine app ID)
/// ## is personal data: recorded only when this says so.
/// [tracing]
/// record_enduser_id = false
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
/// assert_eq!(config.admission(), idgate_core::config::Admission::All);
/// assert!(!config.proxy().trust_forwarded_headers());
/// assert!(!config.tracing().record_enduser_id());
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
/// | `signin.client_id`, `signin.redirect_url` | required; see [`SignInConfig`] |
/// | `signin.client_secret_env` / `signin.client_secret_file` | exactly one; the secret itself is never in the file |
/// | `signin.scopes` | default `["openid", "email", "profile"]`; must contain `openid` |
/// | `signin.session_lifetime_secs`, `signin.session_idle_timeout_secs` | default 28800 and 3600; 60 to 2592000, the idle timeout at most the lifetime |
/// | `signin.hosted_domain`, `signin.prompt`, `signin.access_type`, `signin.fetch_userinfo` | optional |
/// | `signin.token_encryption_key_env` / `signin.token_encryption_key_file` | at most one; required with `access_type = "offline"`; the key (32 bytes, base64) itself is never in the file |
/// | `signin.login_path`, `signin.logout_path` | default `/auth/login`, `/auth/logout`; the callback is `redirect_url`'s path |
/// | `signin.exempt_paths` | exact paths starting with `/`, let through without a signed-in user by a gate built from `[signin]` (e.g. `idgate proxy`) |
/// | `signin.allow.emails`, `.domains`, `.hosted_domains` | required: must list someone |
/// | `signin.sessions.store` | `"memory"` (default: one process) or `"redis"` (replicas share sessions); see [`SessionStoreConfig`] |
/// | `signin.sessions.url_env` / `signin.sessions.url` | Redis only, exactly one: `redis://` or `rediss://` (TLS); a password only through `url_env` |
/// | `signin.sessions.key_prefix`, `signin.sessions.timeout_ms` | Redis only: default `"idgate:signin:"` and 500 (10 to 10000) |
/// | `signin.sessions.ca_file` | Redis over TLS only: the server's CA (PEM) instead of the system's roots |
/// | `signin.sessions.local_cache_ms` | default 5000, 0 to 60000: how long a process answers from its own copy of a session's user |
/// | `admission.mode` | how the gates combine on the same routes: `"all"` (default: every configured gate must admit the request; refused when written with `[signin]` and another gate) or `"by_credential"` (the credential the request presents picks the one gate that judges it: IAP assertion, else bearer token, else session; needs two gates or more); see [`Admission`] |
/// | `google.*` | endpoint overrides; plain `http` only on loopback addresses (except `metadata_url`) |
/// | `google.oidc_keys_format`, `google.iap_keys_format` | `"auto"` (default: JWKS or PEM, read from each document, as Google's libraries do), `"jwks"` or `"pem"` to pin one; the family (OIDC RS256, IAP ES256) is never read from the document |
/// | `proxy.header_read_timeout_secs` | default 10, 1 to 86400; see [`ProxySettings`] |
/// | `proxy.idle_timeout_secs` | default 60, 1 to 86400 |
/// | `proxy.max_connections` | default 1024, 1 to 1048576 |
/// | `proxy.max_request_body_bytes` | default 33554432 (32 MiB), at least 1 |
/// | `proxy.trust_forwarded_headers` | default `false`; `true` keeps a front end's `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` |
/// | `tracing.record_enduser_id` | default `false`; `true` records the verified caller's email or app ID as `enduser.id` on every gate's `idgate.authenticate` span (personal data); see [`TracingSettings`] |
///
/// The `[inbound]` allowlist must admit someone: an empty one would deny every request.
#[derive(Debug, Clone)]
pub struct Config {
    inbound: Option<InboundConfig>,
    iap: Option<IapConfig>,
    google: GoogleConfig,
    /// `None` when the file has no `[proxy]` table.
    proxy: Option<ProxySettings>,
    signin: Option<SignInConfig>,
    admission: Admission,
    tracing: TracingSettings,
    /// Where each top-level table starts, for messages about a whole table.
    tables: Vec<(&'static str, Location)>,
}

impl Config {
    /// Parses and validates a configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] with the line and column of the first mistake and advice on what to write instead.
    pub fn from_toml_str(src: &str) -> Result<Self, ConfigError> {
        Validator { src }.config(parse::parse(src)?)
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

    /// The `[signin]` table (signing people in with Google), if present.
    pub fn signin(&self) -> Option<&SignInConfig> {
        self.signin.as_ref()
    }

    /// `[admission] mode`: how the gates combine on the same routes ([`Admission::All`] when absent).
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// The `[tracing]` table (the defaults when it is absent): what idgate's spans may record.
    pub fn tracing(&self) -> &TracingSettings {
        &self.tracing
    }

    /// Where the top-level table `name` (`"inbound"`, `"signin"`, `"admission"`, ...) starts in the file, when it
    /// is present: for a message about a whole table (e.g. `idgate proxy` refusing a combination).
    pub fn table_location(&self, name: &str) -> Option<Location> {
        self.tables
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
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
}
