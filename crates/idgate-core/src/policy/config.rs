//! The suite's TOML configuration: one file, validated at load, errors with line and column.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::allowlist::{Allowlist, AllowlistError, ListKind};
use crate::google::Endpoints;
use crate::identity::TrustedAppEngineFrontEnd;
use crate::keys::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
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

// ---------------------------------------------------------------------------------------------------------------
// Errors

/// A position in the configuration file, 1-based. Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Location {
    /// The line, starting at 1.
    pub line: usize,
    /// The column, starting at 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `src`.
    fn of(src: &str, offset: usize) -> Self {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML, or a value of the wrong type.
    Syntax,
    /// A key idgate does not know (often a typo).
    UnknownKey,
    /// Neither `[inbound]` nor `[iap]` is present: the file configures nothing.
    NothingConfigured,
    /// `[inbound]` without `audiences`, or with an empty list.
    MissingAudience,
    /// An audience that cannot be right (padded, or not a URL in origin mode).
    InvalidAudience,
    /// An empty string in a list.
    EmptyEntry,
    /// A `*` in a list: there are no wildcards.
    Wildcard,
    /// An entry with leading or trailing whitespace.
    Whitespace,
    /// A malformed project ID.
    InvalidProjectId,
    /// A `service_accounts` entry that is not an email on a `gserviceaccount.com` domain.
    InvalidServiceAccount,
    /// A malformed email.
    InvalidEmail,
    /// A malformed domain.
    InvalidDomain,
    /// A service-account domain (`gserviceaccount.com`, ...) listed as a user domain.
    ServiceAccountDomain,
    /// A consumer domain (`gmail.com`) listed as a hosted domain.
    ConsumerHostedDomain,
    /// An allowlist that lists nobody.
    EmptyAllowlist,
    /// `[iap]` with both or neither of `audience` and `discover_audience = true`.
    IapAudienceChoice,
    /// An IAP audience not of a shape Google documents.
    InvalidIapAudience,
    /// A leeway over 300 seconds.
    LeewayTooLarge,
    /// An exempt path that is not an exact absolute path.
    InvalidExemptPath,
    /// An endpoint that is not an absolute http(s) URL.
    InvalidUrl,
    /// A plain-http endpoint that is not on a loopback address.
    InsecureUrl,
    /// A setting that would have no effect as written.
    IneffectiveSetting,
    /// A `[proxy]` limit of zero (which would switch it off), or over its maximum.
    LimitOutOfRange,
}

/// Why a configuration was refused: what, where (line and column), and what to write instead.
///
/// `Display` renders `file:line:column: message` followed by a `help:` line.
#[derive(Debug)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
    help: Option<String>,
    location: Option<Location>,
    file: Option<PathBuf>,
    source: Option<std::io::Error>,
}

impl ConfigError {
    fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            help: None,
            location: None,
            file: None,
            source: None,
        }
    }

    fn at(mut self, src: &str, span: &Range<usize>) -> Self {
        self.location = Some(Location::of(src, span.start));
        self
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// Where the mistake is, when it is in the file.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The 1-based line of the mistake.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    /// The 1-based column of the mistake.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to write instead, when there is advice.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The file the configuration came from ([`Config::from_path`]).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.location) {
            (Some(file), Some(loc)) => write!(f, "{}:{loc}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(loc)) => write!(f, "line {}, column {}: ", loc.line, loc.column)?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

fn from_toml_error(src: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let (kind, help) = if message.starts_with("unknown field") {
        (
            ConfigErrorKind::UnknownKey,
            Some(
                "remove the key or fix its spelling (the keys this table accepts are listed above)",
            ),
        )
    } else if message.starts_with("unknown variant") {
        (
            ConfigErrorKind::Syntax,
            Some("use one of the values listed above"),
        )
    } else if message.starts_with("duplicate key") {
        (
            ConfigErrorKind::Syntax,
            Some("write each key and each table once"),
        )
    } else {
        (ConfigErrorKind::Syntax, None)
    };
    let mut err = ConfigError::new(kind, message);
    if let Some(span) = error.span() {
        err = err.at(src, &span);
    }
    if let Some(help) = help {
        err = err.with_help(help);
    }
    err
}

fn from_allowlist_error(src: &str, span: &Range<usize>, error: &AllowlistError) -> ConfigError {
    let kind = match error {
        AllowlistError::EmptyEntry { .. } => ConfigErrorKind::EmptyEntry,
        AllowlistError::Wildcard { .. } => ConfigErrorKind::Wildcard,
        AllowlistError::Whitespace { .. } => ConfigErrorKind::Whitespace,
        AllowlistError::InvalidProjectId { .. } => ConfigErrorKind::InvalidProjectId,
        AllowlistError::NotAServiceAccount { .. } => ConfigErrorKind::InvalidServiceAccount,
        AllowlistError::InvalidEmail { .. } => ConfigErrorKind::InvalidEmail,
        AllowlistError::InvalidDomain { .. } => ConfigErrorKind::InvalidDomain,
        AllowlistError::ServiceAccountDomain { .. } => ConfigErrorKind::ServiceAccountDomain,
        AllowlistError::ConsumerHostedDomain { .. } => ConfigErrorKind::ConsumerHostedDomain,
    };
    ConfigError::new(kind, error.to_string())
        .at(src, span)
        .with_help(error.help())
}

// ---------------------------------------------------------------------------------------------------------------
// The file, as written

type List = Option<Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    inbound: Option<Spanned<RawInbound>>,
    iap: Option<Spanned<RawIap>>,
    google: Option<Spanned<RawGoogle>>,
    proxy: Option<Spanned<RawProxy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    audiences: List,
    audience_match: Option<RawAudienceMatch>,
    leeway_secs: Option<Spanned<u64>>,
    trust_legacy_appengine_header: Option<Spanned<bool>>,
    trust_cloud_run_invoker_check: Option<bool>,
    exempt_paths: List,
    allow: Option<Spanned<RawInboundAllow>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawAudienceMatch {
    Exact,
    Origin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInboundAllow {
    project_ids: List,
    service_accounts: List,
    all_service_accounts_of_listed_projects: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIap {
    audience: Option<Spanned<String>>,
    discover_audience: Option<Spanned<bool>>,
    leeway_secs: Option<Spanned<u64>>,
    exempt_paths: List,
    compare_plain_user_headers: Option<bool>,
    allow: Option<Spanned<RawIapAllow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIapAllow {
    emails: List,
    domains: List,
    hosted_domains: List,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoogle {
    base_url: Option<Spanned<String>>,
    oidc_keys_url: Option<Spanned<String>>,
    oidc_keys_format: Option<RawKeysFormat>,
    iap_keys_url: Option<Spanned<String>>,
    iap_keys_format: Option<RawKeysFormat>,
    metadata_url: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
    iam_credentials_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    header_read_timeout_secs: Option<Spanned<u64>>,
    idle_timeout_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
    max_request_body_bytes: Option<Spanned<u64>>,
    trust_forwarded_headers: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKeysFormat {
    /// Read from each document (the default).
    Auto,
    Jwks,
    Pem,
}

fn entries(list: &List) -> &[Spanned<String>] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
}

// ---------------------------------------------------------------------------------------------------------------
// The validated configuration

/// The idgate configuration: one TOML file for the whole suite, validated when loaded.
///
/// Every table and key is optional except that at least one of `[inbound]` and `[iap]` must be present. Unknown
/// keys are errors (a typo must not silently turn a check off). Every error names the line and column and says
/// what to write instead.
///
/// ```
/// use idgate_core::policy::Config;
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
            let mut err = ConfigError::new(
                ConfigErrorKind::Io,
                format!("cannot read the configuration: {e}"),
            );
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
    pub fn trust_cloud_run_invoker_check(&self) -> bool {
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

// ---------------------------------------------------------------------------------------------------------------
// Validation

struct Validator<'a> {
    src: &'a str,
}

impl Validator<'_> {
    fn error(
        &self,
        kind: ConfigErrorKind,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(kind, message).at(self.src, span)
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.inbound.is_none() && raw.iap.is_none() {
            return Err(self
                .error(
                    ConfigErrorKind::NothingConfigured,
                    &(0..0),
                    "the configuration has neither an [inbound] nor an [iap] table, so it configures nothing",
                )
                .with_help(
                    "add [inbound] with `audiences = [...]` and an [inbound.allow] list to verify service-to-service \
                     ID tokens, and/or [iap] with `audience = \"/projects/NUMBER/...\"` to verify IAP assertions",
                ));
        }
        let inbound = raw.inbound.map(|t| self.inbound(t)).transpose()?;
        let iap = raw.iap.map(|t| self.iap(t)).transpose()?;
        let google = raw
            .google
            .map(|t| self.google(t.get_ref()))
            .transpose()?
            .unwrap_or_default();
        let proxy = raw.proxy.map(|t| self.proxy(t.get_ref())).transpose()?;
        Ok(Config {
            inbound,
            iap,
            google,
            proxy,
        })
    }

    fn proxy(&self, raw: &RawProxy) -> Result<ProxySettings, ConfigError> {
        let defaults = ProxySettings::DEFAULT;
        let timeout = |value: Option<&Spanned<u64>>, default: Duration, what: &str| {
            self.limit(
                value,
                default.as_secs(),
                MAX_PROXY_TIMEOUT_SECS,
                what,
                "seconds",
            )
            .map(Duration::from_secs)
        };
        let header_read_timeout = timeout(
            raw.header_read_timeout_secs.as_ref(),
            defaults.header_read_timeout,
            "header_read_timeout_secs",
        )?;
        let idle_timeout = timeout(
            raw.idle_timeout_secs.as_ref(),
            defaults.idle_timeout,
            "idle_timeout_secs",
        )?;
        let max_connections = self.limit(
            raw.max_connections.as_ref(),
            defaults.max_connections as u64,
            MAX_PROXY_CONNECTIONS,
            "max_connections",
            "connections",
        )?;
        let max_request_body_bytes = self.limit(
            raw.max_request_body_bytes.as_ref(),
            defaults.max_request_body_bytes,
            u64::MAX,
            "max_request_body_bytes",
            "bytes",
        )?;
        Ok(ProxySettings {
            header_read_timeout,
            idle_timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_request_body_bytes,
            trust_forwarded_headers: raw.trust_forwarded_headers.unwrap_or(false),
        })
    }

    /// A `[proxy]` limit: `default` when absent, else 1 to `max`.
    fn limit(
        &self,
        value: Option<&Spanned<u64>>,
        default: u64,
        max: u64,
        key: &str,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let n = *value.get_ref();
        if n == 0 {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &value.span(),
                    format!("`{key} = 0` would switch the limit off"),
                )
                .with_help(format!(
                    "write a positive number of {unit}, e.g. the default `{key} = {default}`, or remove the key"
                )));
        }
        if n > max {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &value.span(),
                    format!("`{key} = {n}` is over the maximum of {max} {unit}"),
                )
                .with_help(format!("write at most {max}; the default is {default}")));
        }
        Ok(n)
    }

    fn inbound(&self, table: Spanned<RawInbound>) -> Result<InboundConfig, ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        let audience_match = match raw.audience_match {
            Some(RawAudienceMatch::Origin) => AudienceMatch::Origin,
            Some(RawAudienceMatch::Exact) | None => AudienceMatch::Exact,
        };
        let audiences = self.audiences(&header, raw.audiences.as_ref(), audience_match)?;
        let leeway = self.leeway(raw.leeway_secs.as_ref())?;
        let exempt_paths = self.exempt_paths(&raw.exempt_paths)?;

        let mut allowlist = Allowlist::new();
        let mut allow_span = header;
        if let Some(allow) = raw.allow {
            allow_span = allow.span();
            let allow = allow.into_inner();
            self.fill(&mut allowlist, ListKind::ProjectIds, &allow.project_ids)?;
            self.fill(
                &mut allowlist,
                ListKind::ServiceAccounts,
                &allow.service_accounts,
            )?;
            if let Some(flag) = &allow.all_service_accounts_of_listed_projects {
                if *flag.get_ref() && entries(&allow.project_ids).is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::IneffectiveSetting,
                            &flag.span(),
                            "`all_service_accounts_of_listed_projects = true` has no effect without `project_ids`",
                        )
                        .with_help("list the projects whose service accounts may call in `project_ids`, or remove the flag"));
                }
                allowlist.set_all_service_accounts_of_listed_projects(*flag.get_ref());
            }
        }
        if allowlist.is_empty() {
            return Err(self
                .error(
                    ConfigErrorKind::EmptyAllowlist,
                    &allow_span,
                    "the [inbound] allowlist is empty, so every request would be denied",
                )
                .with_help(
                    "add an [inbound.allow] table with `project_ids = [\"calling-project-id\"]` (admits that \
                     project's App Engine default service account) and/or `service_accounts = \
                     [\"name@project-id.iam.gserviceaccount.com\"]`",
                ));
        }
        let trust_legacy = raw
            .trust_legacy_appengine_header
            .as_ref()
            .is_some_and(|f| *f.get_ref());
        if let (true, Some(flag)) = (trust_legacy, &raw.trust_legacy_appengine_header)
            && allowlist.project_ids().next().is_none()
        {
            return Err(self
                .error(
                    ConfigErrorKind::IneffectiveSetting,
                    &flag.span(),
                    "`trust_legacy_appengine_header = true` has no effect: the header names an app ID, and \
                     [inbound.allow] lists no `project_ids`",
                )
                .with_help("list the calling apps' IDs in `project_ids`, or remove the flag"));
        }
        Ok(InboundConfig {
            audiences,
            audience_match,
            leeway,
            trust_legacy_appengine_header: trust_legacy,
            trust_cloud_run_invoker_check: raw.trust_cloud_run_invoker_check.unwrap_or(false),
            exempt_paths,
            allowlist,
        })
    }

    fn audiences(
        &self,
        header: &Range<usize>,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        mode: AudienceMatch,
    ) -> Result<Vec<String>, ConfigError> {
        const HELP: &str = "write the audience callers mint their tokens for, e.g. `audiences = \
                            [\"https://my-service-abc123-uc.a.run.app\"]` (the service URL or a Cloud Run custom \
                            audience)";
        let Some(list) = list else {
            return Err(self
                .error(
                    ConfigErrorKind::MissingAudience,
                    header,
                    "[inbound] has no `audiences`: idgate always checks a token's `aud`, so it must know yours",
                )
                .with_help(HELP));
        };
        if list.get_ref().is_empty() {
            return Err(self
                .error(
                    ConfigErrorKind::MissingAudience,
                    &list.span(),
                    "`audiences` is empty: idgate always checks a token's `aud`, so it must know yours",
                )
                .with_help(HELP));
        }
        let mut audiences = Vec::new();
        for aud in list.get_ref() {
            let span = aud.span();
            let value = aud.get_ref();
            if value.trim().is_empty() {
                return Err(self
                    .error(
                        ConfigErrorKind::EmptyEntry,
                        &span,
                        "an audience may not be empty",
                    )
                    .with_help("remove the empty string"));
            }
            if value.contains('*') {
                return Err(self
                    .error(
                        ConfigErrorKind::Wildcard,
                        &span,
                        format!("{value:?} is a wildcard; audiences are compared exactly and a wildcard would accept \
                                 tokens minted for any service"),
                    )
                    .with_help("list every audience explicitly"));
            }
            if value.trim() != value {
                return Err(self
                    .error(
                        ConfigErrorKind::Whitespace,
                        &span,
                        format!("{value:?} has leading or trailing whitespace"),
                    )
                    .with_help(format!("write {:?}", value.trim())));
            }
            if mode == AudienceMatch::Origin && !is_origin_url(value) {
                return Err(self
                    .error(
                        ConfigErrorKind::InvalidAudience,
                        &span,
                        format!("{value:?} is not an absolute http(s) URL, which `audience_match = \"origin\"` needs"),
                    )
                    .with_help("write the service URL, e.g. \"https://my-service-abc123-uc.a.run.app\", or use \
                           `audience_match = \"exact\"` for custom audiences"));
            }
            audiences.push(value.clone());
        }
        Ok(audiences)
    }

    fn leeway(&self, leeway: Option<&Spanned<u64>>) -> Result<Duration, ConfigError> {
        let Some(leeway) = leeway else {
            return Ok(DEFAULT_LEEWAY);
        };
        let secs = *leeway.get_ref();
        if secs > MAX_LEEWAY_SECS {
            return Err(self
                .error(
                    ConfigErrorKind::LeewayTooLarge,
                    &leeway.span(),
                    format!(
                        "a leeway of {secs} s is larger than the maximum of {MAX_LEEWAY_SECS} s"
                    ),
                )
                .with_help(
                    "use the default 30 (Google's IAP documentation) or fix the server's clock",
                ));
        }
        Ok(Duration::from_secs(secs))
    }

    fn exempt_paths(&self, list: &List) -> Result<Vec<String>, ConfigError> {
        let mut paths = Vec::new();
        for path in entries(list) {
            let span = path.span();
            let value = path.get_ref();
            if value.is_empty() {
                return Err(self
                    .error(
                        ConfigErrorKind::EmptyEntry,
                        &span,
                        "an exempt path may not be empty",
                    )
                    .with_help("remove the empty string"));
            }
            if value.contains('*') {
                return Err(self
                    .error(
                        ConfigErrorKind::Wildcard,
                        &span,
                        format!("{value:?} is a wildcard; exempt paths are exact, and a pattern could exempt more than \
                                 you meant"),
                    )
                    .with_help("list every exempt path exactly, e.g. \"/healthz\""));
            }
            let bad_char = value
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'));
            if !value.starts_with('/') || bad_char.is_some() {
                let help = if bad_char.is_some() {
                    "write only the path, without query, fragment or spaces, e.g. \"/healthz\""
                        .to_owned()
                } else {
                    format!("write \"/{value}\"")
                };
                return Err(self
                    .error(
                        ConfigErrorKind::InvalidExemptPath,
                        &span,
                        format!("{value:?} is not an exact path: it must start with `/` and contain no query, \
                                 fragment or whitespace"),
                    )
                    .with_help(help));
            }
            paths.push(value.clone());
        }
        Ok(paths)
    }

    fn fill(
        &self,
        allowlist: &mut Allowlist,
        kind: ListKind,
        list: &List,
    ) -> Result<(), ConfigError> {
        for entry in entries(list) {
            allowlist
                .insert(kind, entry.get_ref())
                .map_err(|e| from_allowlist_error(self.src, &entry.span(), &e))?;
        }
        Ok(())
    }

    fn iap(&self, table: Spanned<RawIap>) -> Result<IapConfig, ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        let discover = raw.discover_audience.as_ref().filter(|d| *d.get_ref());
        let audience = match (&raw.audience, discover) {
            (Some(_), Some(discover)) => {
                return Err(self
                    .error(
                        ConfigErrorKind::IapAudienceChoice,
                        &discover.span(),
                        "[iap] has both `audience` and `discover_audience = true`",
                    )
                    .with_help("keep exactly one: the audience written out, or discovery from the metadata server"));
            }
            (None, None) => {
                return Err(self
                    .error(
                        ConfigErrorKind::IapAudienceChoice,
                        &header,
                        "[iap] has neither `audience` nor `discover_audience = true`: idgate always checks `aud`",
                    )
                    .with_help("add `audience = \"/projects/PROJECT_NUMBER/apps/PROJECT_ID\"` (App Engine), \
                           `\"/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID\"` (load balancer), ... or \
                           `discover_audience = true` on App Engine"));
            }
            (Some(aud), None) => IapAudience::Configured(self.iap_audience(aud)?),
            (None, Some(_)) => IapAudience::Discover,
        };
        let leeway = self.leeway(raw.leeway_secs.as_ref())?;
        let exempt_paths = self.exempt_paths(&raw.exempt_paths)?;
        let allowlist = match raw.allow {
            None => None,
            Some(allow) => {
                let span = allow.span();
                let allow = allow.into_inner();
                let mut allowlist = Allowlist::new();
                self.fill(&mut allowlist, ListKind::UserEmails, &allow.emails)?;
                self.fill(&mut allowlist, ListKind::UserDomains, &allow.domains)?;
                self.fill(
                    &mut allowlist,
                    ListKind::HostedDomains,
                    &allow.hosted_domains,
                )?;
                if allowlist.is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::EmptyAllowlist,
                            &span,
                            "[iap.allow] lists nobody, so every IAP user would be denied",
                        )
                        .with_help("list `emails`, `domains` or `hosted_domains`, or remove [iap.allow] to admit every \
                               user IAP lets through (IAP's IAM policy is then the only gate)"));
                }
                Some(allowlist)
            }
        };
        Ok(IapConfig {
            audience,
            leeway,
            exempt_paths,
            compare_plain_user_headers: raw.compare_plain_user_headers.unwrap_or(false),
            allowlist,
        })
    }

    fn iap_audience(&self, aud: &Spanned<String>) -> Result<String, ConfigError> {
        let value = aud.get_ref();
        let span = aud.span();
        if value.contains('*') {
            return Err(self
                .error(ConfigErrorKind::Wildcard, &span, format!("{value:?} is a wildcard; the IAP audience is exact"))
                .with_help("write the audience from the IAP console, e.g. \"/projects/123456789/apps/my-project\""));
        }
        crate::verify::check_iap_audience(value).map_err(|help| {
            self.error(
                ConfigErrorKind::InvalidIapAudience,
                &span,
                format!("{value:?} is not an IAP audience of a shape Google documents"),
            )
            .with_help(help)
        })?;
        Ok(value.clone())
    }

    fn google(&self, raw: &RawGoogle) -> Result<GoogleConfig, ConfigError> {
        let mut endpoints = match &raw.base_url {
            Some(base) => Endpoints::under(&self.url(base, Plain::LoopbackOnly)?),
            None => Endpoints::default(),
        };
        let oidc_pem = raw.oidc_keys_format == Some(RawKeysFormat::Pem);
        let iap_pem = raw.iap_keys_format == Some(RawKeysFormat::Pem);
        if let Some(url) = &raw.oidc_keys_url {
            let url = self.url(url, Plain::LoopbackOnly)?;
            if oidc_pem {
                endpoints.oidc_pem = url;
            } else {
                endpoints.oidc_jwks = url;
            }
        }
        if let Some(url) = &raw.iap_keys_url {
            let url = self.url(url, Plain::LoopbackOnly)?;
            if iap_pem {
                endpoints.iap_pem = url;
            } else {
                endpoints.iap_jwks = url;
            }
        }
        if let Some(url) = &raw.metadata_url {
            // The metadata server is plain HTTP by design (metadata.google.internal, 169.254.169.254).
            endpoints.metadata = with_trailing_slash(self.url(url, Plain::Anywhere)?);
        }
        if let Some(url) = &raw.token_url {
            endpoints.token = self.url(url, Plain::LoopbackOnly)?;
        }
        if let Some(url) = &raw.iam_credentials_url {
            endpoints.iam_credentials = with_trailing_slash(self.url(url, Plain::LoopbackOnly)?);
        }
        Ok(GoogleConfig {
            endpoints,
            oidc_keys_format: match raw.oidc_keys_format {
                None | Some(RawKeysFormat::Auto) => None,
                Some(RawKeysFormat::Jwks) => Some(KeyFormat::OidcJwks),
                Some(RawKeysFormat::Pem) => Some(KeyFormat::OidcPemCertificates),
            },
            iap_keys_format: match raw.iap_keys_format {
                None | Some(RawKeysFormat::Auto) => None,
                Some(RawKeysFormat::Jwks) => Some(KeyFormat::IapJwks),
                Some(RawKeysFormat::Pem) => Some(KeyFormat::IapPem),
            },
        })
    }

    fn url(&self, raw: &Spanned<String>, plain: Plain) -> Result<Url, ConfigError> {
        let value = raw.get_ref();
        let span = raw.span();
        let invalid = || {
            self.error(
                ConfigErrorKind::InvalidUrl,
                &span,
                format!("{value:?} is not an absolute http(s) URL"),
            )
            .with_help(
                "write a full URL such as \"https://www.googleapis.com/oauth2/v3/certs\" or \
                       \"http://127.0.0.1:8085\" for the emulator",
            )
        };
        let url = Url::parse(value).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidUrl,
                    &span,
                    "endpoint URLs may not carry credentials",
                )
                .with_help("remove the `user:password@` part"));
        }
        if url.scheme() == "http" && plain == Plain::LoopbackOnly && !is_loopback(&url) {
            return Err(self
                .error(
                    ConfigErrorKind::InsecureUrl,
                    &span,
                    format!("{value:?} uses plain http on a non-loopback host: anyone on the path could substitute \
                             signing keys or read credentials"),
                )
                .with_help("use https, or a loopback address (127.0.0.1, [::1], localhost) for the emulator"));
        }
        Ok(url)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plain {
    Anywhere,
    LoopbackOnly,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// An absolute http(s) URL with a host and no credentials: what origin matching can compare.
fn is_origin_url(s: &str) -> bool {
    Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    })
}

#[cfg(test)]
mod tests;
