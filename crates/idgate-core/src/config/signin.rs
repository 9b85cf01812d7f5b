//! The `[signin]` table: signing people in with Google (the OAuth 2.0 / OpenID Connect web flow of
//! `idgate-signin`), validated like every other table.

use std::path::{Path, PathBuf};

#[allow(unused_imports)]
use super::*;

/// The shortest `session_lifetime_secs` / `session_idle_timeout_secs` accepted: one minute.
const MIN_SESSION_SECS: u64 = 60;
/// The longest `session_lifetime_secs` accepted: 30 days.
const MAX_SESSION_SECS: u64 = 30 * 86_400;
/// The default `session_lifetime_secs`: 8 hours (a working day).
const DEFAULT_LIFETIME_SECS: u64 = 8 * 3600;
/// The default `session_idle_timeout_secs`: 1 hour.
const DEFAULT_IDLE_SECS: u64 = 3600;
/// The default scopes: who the user is (`openid`), their email and their profile (name, picture).
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Where the OAuth client secret comes from: never the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientSecretSource {
    /// `client_secret_env`: the name of an environment variable.
    Env(String),
    /// `client_secret_file`: a file holding the secret (a trailing newline is ignored).
    File(PathBuf),
}

/// Where the key that encrypts users' Google tokens at rest comes from (`token_encryption_key_env` or
/// `token_encryption_key_file`): never the file itself. The key is 32 random bytes, written in standard base64
/// (`openssl rand -base64 32`); it is read, and its length checked, when the sign-in is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKeySource {
    /// `token_encryption_key_env`: the name of an environment variable.
    Env(String),
    /// `token_encryption_key_file`: a file holding the key (a trailing newline is ignored).
    File(PathBuf),
}

/// `access_type`: whether Google also returns a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessType {
    /// `"online"`: no refresh token (Google's default).
    Online,
    /// `"offline"`: a refresh token too, the first time the user consents.
    Offline,
}

impl AccessType {
    /// The parameter value Google expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

const ACCESS_TYPE_CHOICES: &[(&str, AccessType)] = &[
    ("online", AccessType::Online),
    ("offline", AccessType::Offline),
];

/// The words Google's `prompt` parameter accepts (space-separated; `none` alone).
const PROMPT_WORDS: [&str; 3] = ["none", "consent", "select_account"];

/// The `[signin]` table: signing people in with Google.
///
/// ```
/// use idgate_core::config::{ClientSecretSource, Config};
///
/// let config = Config::from_toml_str(r#"
/// [signin]
/// client_id = "123-abc.apps.googleusercontent.com"
/// client_secret_env = "IDGATE_CLIENT_SECRET"      # or client_secret_file = "/secrets/client"
/// redirect_url = "https://app.example.com/auth/callback"
/// scopes = ["openid", "email", "profile"]         # the default
/// session_lifetime_secs = 28800                   # absolute maximum; the default
/// session_idle_timeout_secs = 3600                # sliding; the default
/// [signin.allow]
/// domains = ["example.com"]                        # and/or emails = [...], hosted_domains = [...]
/// "#).unwrap();
///
/// let signin = config.signin().unwrap();
/// assert_eq!(signin.client_id(), "123-abc.apps.googleusercontent.com");
/// assert_eq!(signin.client_secret(), &ClientSecretSource::Env("IDGATE_CLIENT_SECRET".into()));
/// assert_eq!(signin.callback_path(), "/auth/callback");
/// assert_eq!(signin.login_path(), "/auth/login");
/// assert_eq!(signin.logout_path(), "/auth/logout");
/// assert_eq!(signin.scopes(), ["openid", "email", "profile"]);
/// assert!(signin.secure_cookies());
/// assert_eq!(signin.session_lifetime().as_secs(), 28800);
/// assert!(!signin.allowlist().is_empty());
///
/// // The secret is never written in the file, and an allowlist that lists nobody is refused.
/// assert!(Config::from_toml_str("[signin]\nclient_secret = \"x\"\n").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct SignInConfig {
    pub(super) client_id: String,
    pub(super) client_secret: ClientSecretSource,
    pub(super) redirect_url: Url,
    pub(super) scopes: Vec<String>,
    pub(super) session_lifetime: Duration,
    pub(super) session_idle_timeout: Duration,
    pub(super) hosted_domain: Option<String>,
    pub(super) prompt: Option<String>,
    pub(super) access_type: Option<AccessType>,
    pub(super) token_encryption_key: Option<(TokenKeySource, Location)>,
    pub(super) fetch_userinfo: bool,
    pub(super) login_path: String,
    pub(super) logout_path: String,
    pub(super) exempt_paths: Vec<String>,
    pub(super) allowlist: Allowlist,
    pub(super) sessions: SessionStoreConfig,
    pub(super) local_cache: Duration,
}

/// The default `[signin.sessions] key_prefix`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "idgate:signin:";
/// The default `[signin.sessions] timeout_ms`: how long one store operation may take.
const DEFAULT_STORE_TIMEOUT_MS: u64 = 500;
/// The default `[signin.sessions] local_cache_ms`.
const DEFAULT_LOCAL_CACHE_MS: u64 = 5_000;

/// `[signin.sessions]`: where sessions (and, with Redis, sign-in attempts and the index behind "sign out
/// everywhere") are kept.
///
/// ```
/// use idgate_core::config::{Config, RedisUrlSource, SessionStoreConfig};
///
/// let config = Config::from_toml_str(r#"
/// [signin]
/// client_id = "123-abc.apps.googleusercontent.com"
/// client_secret_env = "IDGATE_CLIENT_SECRET"
/// redirect_url = "https://app.example.com/auth/callback"
/// [signin.allow]
/// domains = ["example.com"]
/// [signin.sessions]
/// store = "redis"
/// url_env = "IDGATE_REDIS_URL"    # e.g. rediss://:PASSWORD@10.0.0.3:6378/0 (the password never in this file)
/// timeout_ms = 500                 # each store operation; the default
/// "#).unwrap();
///
/// let SessionStoreConfig::Redis(redis) = config.signin().unwrap().sessions() else { unreachable!() };
/// assert_eq!(redis.url(), &RedisUrlSource::Env("IDGATE_REDIS_URL".into()));
/// assert_eq!(redis.key_prefix(), "idgate:signin:");
/// assert_eq!(redis.timeout().as_millis(), 500);
///
/// // A password written in the file is refused, as every secret is.
/// let refused = config_with(r#"url = "redis://:hunter2@10.0.0.3:6379""#);
/// assert!(Config::from_toml_str(&refused).unwrap_err().to_string().contains("url_env"));
/// # fn config_with(line: &str) -> String {
/// #     format!("[signin]\nclient_id = \"a.apps.googleusercontent.com\"\nclient_secret_env = \"S\"\n\
/// #              redirect_url = \"https://app.example.com/cb\"\n[signin.allow]\ndomains = [\"example.com\"]\n\
/// #              [signin.sessions]\nstore = \"redis\"\n{line}\n")
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStoreConfig {
    /// `store = "memory"` (the default): in this process; sessions end when it stops, and replicas do not share
    /// them.
    Memory,
    /// `store = "redis"`: in Redis, shared by every replica.
    Redis(RedisSessionsConfig),
}

/// `[signin.sessions]` with `store = "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSessionsConfig {
    url: RedisUrlSource,
    key_prefix: String,
    timeout: Duration,
    ca_file: Option<PathBuf>,
}

impl RedisSessionsConfig {
    /// Where the server's URL comes from.
    pub fn url(&self) -> &RedisUrlSource {
        &self.url
    }

    /// `key_prefix` (default `"idgate:signin:"`): every key idgate writes starts with it.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// `timeout_ms` (default 500 ms): the most one store operation (connecting included) may take before the
    /// request is answered `503`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `ca_file`: a PEM file of the certificate authority that signed the server's TLS certificate, trusted instead
    /// of the system's roots (Memorystore for Redis with in-transit encryption: its server CA). `rediss://` only.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }
}

/// Where the Redis URL comes from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisUrlSource {
    /// `url`: written in the file (without a password).
    Url(Url),
    /// `url_env`: the name of an environment variable holding the URL (which may carry a password).
    Env(String),
}

impl fmt::Debug for RedisUrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => f.debug_tuple("Url").field(&url.as_str()).finish(),
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
        }
    }
}

const STORE_CHOICES: &[(&str, bool)] = &[("memory", false), ("redis", true)];

impl SignInConfig {
    /// `[signin.sessions]`: where sessions are kept (default: in memory).
    pub fn sessions(&self) -> &SessionStoreConfig {
        &self.sessions
    }

    /// `[signin.sessions] local_cache_ms` (default 5 s; zero turns it off): how long a process answers a session
    /// from its own copy of the session's user instead of reading the store, and so how long a logout or "sign out
    /// everywhere" made by another replica may take to reach this one.
    pub fn local_cache(&self) -> Duration {
        self.local_cache
    }

    /// `client_id`: the OAuth client's ID (`….apps.googleusercontent.com`); the ID token's audience.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where the client secret is read from (`client_secret_env` or `client_secret_file`).
    pub fn client_secret(&self) -> &ClientSecretSource {
        &self.client_secret
    }

    /// `redirect_url`: where Google sends the browser back (registered with the OAuth client).
    pub fn redirect_url(&self) -> &Url {
        &self.redirect_url
    }

    /// The path of [`redirect_url`](Self::redirect_url): the callback route.
    pub fn callback_path(&self) -> &str {
        self.redirect_url.path()
    }

    /// `scopes` (default `["openid", "email", "profile"]`; always contains `openid`).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// `session_lifetime_secs` (default 8 h): the absolute maximum of a session, however active.
    pub fn session_lifetime(&self) -> Duration {
        self.session_lifetime
    }

    /// `session_idle_timeout_secs` (default 1 h, at most the lifetime): a session unused this long ends.
    pub fn session_idle_timeout(&self) -> Duration {
        self.session_idle_timeout
    }

    /// `hosted_domain`: sent to Google as `hd` and required of the ID token's `hd` claim.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.hosted_domain.as_deref()
    }

    /// `prompt`: `none`, or a space-separated set of `consent` and `select_account`.
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    /// `access_type`; Google's default (`online`) when absent.
    pub fn access_type(&self) -> Option<AccessType> {
        self.access_type
    }

    /// Where the key that encrypts the user's Google tokens in the session store is read from
    /// (`token_encryption_key_env` or `token_encryption_key_file`). Required with `access_type = "offline"`.
    pub fn token_encryption_key(&self) -> Option<&TokenKeySource> {
        self.token_encryption_key.as_ref().map(|(source, _)| source)
    }

    /// Where [`token_encryption_key`](Self::token_encryption_key) is written in the file, for messages about the
    /// key it names.
    pub fn token_encryption_key_location(&self) -> Option<Location> {
        self.token_encryption_key.as_ref().map(|(_, at)| *at)
    }

    /// `fetch_userinfo` (default `false`): also read the profile from the userinfo endpoint, not only the ID token.
    pub fn fetch_userinfo(&self) -> bool {
        self.fetch_userinfo
    }

    /// `login_path` (default `/auth/login`).
    pub fn login_path(&self) -> &str {
        &self.login_path
    }

    /// `logout_path` (default `/auth/logout`; POST only).
    pub fn logout_path(&self) -> &str {
        &self.logout_path
    }

    /// Whether cookies are `Secure` (and `__Host-` prefixed): always, except for a plain-http `redirect_url` on a
    /// loopback address (local development).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_url.scheme() == "https"
    }

    /// `exempt_paths`: exact paths a gate built from this table lets through without a signed-in user (health
    /// checks, a public page); e.g. `idgate proxy` forwards them without sign-in.
    pub fn exempt_paths(&self) -> &[String] {
        &self.exempt_paths
    }

    /// Whether `path` is exactly one of the [`exempt_paths`](Self::exempt_paths).
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt_paths.iter().any(|p| p == path)
    }

    /// Who may sign in (`[signin.allow]`); never empty.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }
}

impl Validator<'_> {
    pub(crate) fn signin(&self, table: Spanned<RawSignin>) -> Result<SignInConfig, ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        if let Some(inline) = &raw.client_secret {
            // Never echo the value: it is a secret.
            return Err(self
                .error(
                    ConfigErrorKind::InlineSecret,
                    &inline.span(),
                    "the client secret may not be written in the configuration file",
                )
                .with_help(
                    "remove `client_secret` and name where to read it: `client_secret_env = \
                     \"IDGATE_CLIENT_SECRET\"` (an environment variable) or `client_secret_file = \
                     \"/secrets/client\"`",
                ));
        }
        if let Some(inline) = &raw.token_encryption_key {
            return Err(self
                .error(
                    ConfigErrorKind::InlineSecret,
                    &inline.span(),
                    "the token encryption key may not be written in the configuration file",
                )
                .with_help(
                    "remove `token_encryption_key` and name where to read it: `token_encryption_key_env = \
                     \"IDGATE_TOKEN_KEY\"` or `token_encryption_key_file = \"/secrets/token-key\"`; make a key with \
                     `openssl rand -base64 32`",
                ));
        }
        let client_id = self.client_id(&header, raw.client_id.as_ref())?;
        let client_secret = self.client_secret_source(&header, &raw)?;
        let Some(redirect) = &raw.redirect_url else {
            return Err(self
                .error(ConfigErrorKind::MissingKey, &header, "[signin] has no `redirect_url`")
                .with_help(
                    "add `redirect_url = \"https://app.example.com/auth/callback\"`, exactly as registered \
                     with the OAuth client",
                ));
        };
        let redirect_url = self.url(redirect, Plain::LoopbackOnly)?;
        if redirect_url.fragment().is_some() || redirect_url.query().is_some() {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidUrl,
                    &redirect.span(),
                    "`redirect_url` may not carry a query or a fragment",
                )
                .with_help(
                    "write the callback URL alone, e.g. \"https://app.example.com/auth/callback\"",
                ));
        }
        let scopes = self.scopes(&raw.scopes)?;
        let session_lifetime = self.session_secs(
            raw.session_lifetime_secs.as_ref(),
            DEFAULT_LIFETIME_SECS,
            MAX_SESSION_SECS,
            "session_lifetime_secs",
        )?;
        let session_idle_timeout = self.session_secs(
            raw.session_idle_timeout_secs.as_ref(),
            DEFAULT_IDLE_SECS.min(session_lifetime),
            session_lifetime,
            "session_idle_timeout_secs",
        )?;
        let hosted_domain = match &raw.hosted_domain {
            None => None,
            Some(hd) => {
                let mut check = Allowlist::new();
                check
                    .insert(ListKind::HostedDomains, hd.get_ref())
                    .map_err(|e| from_allowlist_error(self.src, &hd.span(), &e))?;
                check.hosted_domains().next().map(str::to_owned)
            }
        };
        let prompt = raw.prompt.as_ref().map(|p| self.prompt(p)).transpose()?;
        let access_type = self.choice(raw.access_type.as_ref(), ACCESS_TYPE_CHOICES)?;
        let token_encryption_key = self.token_key_source(&raw)?;
        if let (Some(AccessType::Offline), None, Some(at)) =
            (access_type, &token_encryption_key, &raw.access_type)
        {
            return Err(self
                .error(
                    ConfigErrorKind::TokenEncryptionKeyChoice,
                    &at.span(),
                    "`access_type = \"offline\"` needs a token encryption key: the user's refresh token is only kept \
                     encrypted in the session store",
                )
                .with_help(
                    "add `token_encryption_key_env = \"IDGATE_TOKEN_KEY\"` (an environment variable) or \
                     `token_encryption_key_file = \"/secrets/token-key\"` holding 32 random bytes in base64, made \
                     with `openssl rand -base64 32`",
                ));
        }
        let login_path = self.route_path(raw.login_path.as_ref(), "/auth/login")?;
        let logout_path = self.route_path(raw.logout_path.as_ref(), "/auth/logout")?;
        let exempt_paths = self.exempt_paths(&raw.exempt_paths)?;
        let callback_path = redirect_url.path();
        let clash = if login_path == logout_path {
            Some((
                &login_path,
                raw.logout_path.as_ref().or(raw.login_path.as_ref()),
            ))
        } else if login_path == callback_path {
            Some((&login_path, raw.login_path.as_ref()))
        } else if logout_path == callback_path {
            Some((&logout_path, raw.logout_path.as_ref()))
        } else {
            None
        };
        if let Some((path, key)) = clash {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidRoutePath,
                    &key.map_or_else(|| redirect.span(), Spanned::span),
                    format!("the sign-in routes must differ, but {path:?} is used twice"),
                )
                .with_help(
                    "give `login_path`, `logout_path` and the path of `redirect_url` three different paths",
                ));
        }

        let mut allowlist = Allowlist::new();
        let mut allow_span = header;
        if let Some(allow) = raw.allow {
            allow_span = allow.span();
            let allow = allow.into_inner();
            self.fill(&mut allowlist, ListKind::UserEmails, &allow.emails)?;
            self.fill(&mut allowlist, ListKind::UserDomains, &allow.domains)?;
            self.fill(
                &mut allowlist,
                ListKind::HostedDomains,
                &allow.hosted_domains,
            )?;
        }
        if allowlist.is_empty() {
            return Err(self
                .error(
                    ConfigErrorKind::EmptyAllowlist,
                    &allow_span,
                    "the [signin] allowlist is empty: every Google account would be denied (and letting every \
                     account in is not an option)",
                )
                .with_help(
                    "add a [signin.allow] table with `domains = [\"example.com\"]`, `emails = \
                     [\"alice@example.com\"]` and/or `hosted_domains = [\"example.com\"]` (Workspace)",
                ));
        }
        let (sessions, local_cache) = match raw.sessions {
            Some(table) => self.sessions(table)?,
            None => (
                SessionStoreConfig::Memory,
                Duration::from_millis(DEFAULT_LOCAL_CACHE_MS),
            ),
        };
        Ok(SignInConfig {
            sessions,
            local_cache,
            client_id,
            client_secret,
            redirect_url,
            scopes,
            session_lifetime: Duration::from_secs(session_lifetime),
            session_idle_timeout: Duration::from_secs(session_idle_timeout),
            hosted_domain,
            prompt,
            access_type,
            token_encryption_key,
            fetch_userinfo: raw.fetch_userinfo.unwrap_or(false),
            login_path,
            logout_path,
            exempt_paths,
            allowlist,
        })
    }

    fn sessions(
        &self,
        table: Spanned<RawSessions>,
    ) -> Result<(SessionStoreConfig, Duration), ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        // A logout made by another replica reaches this one within this bound (0: every request reads the store).
        let local_cache = self.millis(
            raw.local_cache_ms.as_ref(),
            0..=60_000,
            DEFAULT_LOCAL_CACHE_MS,
            "local_cache_ms",
        )?;
        let redis = self
            .choice(raw.store.as_ref(), STORE_CHOICES)?
            .unwrap_or(false);
        if !redis {
            let stray = [&raw.url, &raw.url_env, &raw.key_prefix, &raw.ca_file]
                .into_iter()
                .flatten()
                .map(Spanned::span)
                .chain(raw.timeout_ms.as_ref().map(Spanned::span))
                .next();
            if let Some(span) = stray {
                return Err(self
                    .error(
                        ConfigErrorKind::SessionStore,
                        &span,
                        "this setting is for a Redis store, but sessions are kept in memory",
                    )
                    .with_help("add `store = \"redis\"`, or remove the setting"));
            }
            return Ok((SessionStoreConfig::Memory, local_cache));
        }
        let url = match (&raw.url, &raw.url_env) {
            (Some(_), Some(env)) => {
                return Err(self
                    .error(
                        ConfigErrorKind::SessionStore,
                        &env.span(),
                        "[signin.sessions] has both `url` and `url_env`",
                    )
                    .with_help("keep exactly one"));
            }
            (None, None) => {
                return Err(self
                    .error(
                        ConfigErrorKind::SessionStore,
                        &header,
                        "[signin.sessions] with `store = \"redis\"` does not say where Redis is",
                    )
                    .with_help(
                        "add `url_env = \"IDGATE_REDIS_URL\"` (an environment variable holding \
                         redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss:// for TLS) or, without a password, \
                         `url = \"redis://10.0.0.3:6379\"`",
                    ));
            }
            (None, Some(env)) => RedisUrlSource::Env(self.env_name(
                env,
                ConfigErrorKind::SessionStore,
                "IDGATE_REDIS_URL",
            )?),
            (Some(url), None) => {
                let parsed = Url::parse(url.get_ref()).ok().filter(|u| {
                    matches!(u.scheme(), "redis" | "rediss")
                        && u.host_str().is_some_and(|h| !h.is_empty())
                        && u.query().is_none()
                        && u.fragment().is_none()
                });
                let Some(parsed) = parsed else {
                    return Err(self
                        .error(
                            ConfigErrorKind::SessionStore,
                            &url.span(),
                            "`url` is not a redis:// or rediss:// URL with a host",
                        )
                        .with_help("write e.g. \"redis://10.0.0.3:6379/0\" (rediss:// for TLS)"));
                };
                if parsed.password().is_some() {
                    // Never echo the value: it holds a secret.
                    return Err(self
                        .error(
                            ConfigErrorKind::InlineSecret,
                            &url.span(),
                            "the Redis password may not be written in the configuration file",
                        )
                        .with_help(
                            "remove `url` and put the whole URL in an environment variable named by \
                             `url_env = \"IDGATE_REDIS_URL\"`",
                        ));
                }
                RedisUrlSource::Url(parsed)
            }
        };
        let ca_file = match &raw.ca_file {
            None => None,
            Some(file) if file.get_ref().trim().is_empty() => {
                return Err(self
                    .error(
                        ConfigErrorKind::SessionStore,
                        &file.span(),
                        "`ca_file` is empty",
                    )
                    .with_help(
                        "write the path of the PEM file of the server's certificate authority",
                    ));
            }
            Some(file) => {
                if let RedisUrlSource::Url(url) = &url
                    && url.scheme() != "rediss"
                {
                    return Err(self
                        .error(
                            ConfigErrorKind::SessionStore,
                            &file.span(),
                            "`ca_file` is for TLS, but `url` is plain redis://",
                        )
                        .with_help("write the URL as rediss://, or remove `ca_file`"));
                }
                Some(PathBuf::from(file.get_ref()))
            }
        };
        let key_prefix = match &raw.key_prefix {
            None => DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            Some(prefix) => {
                let value = prefix.get_ref();
                if value.is_empty()
                    || value.len() > 128
                    || !value.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(self
                        .error(
                            ConfigErrorKind::SessionStore,
                            &prefix.span(),
                            format!("{value:?} is not a key prefix (1 to 128 printable characters, no spaces)"),
                        )
                        .with_help(format!("write e.g. {DEFAULT_REDIS_KEY_PREFIX:?}")));
                }
                value.clone()
            }
        };
        let timeout = self.millis(
            raw.timeout_ms.as_ref(),
            10..=10_000,
            DEFAULT_STORE_TIMEOUT_MS,
            "timeout_ms",
        )?;
        Ok((
            SessionStoreConfig::Redis(RedisSessionsConfig {
                url,
                key_prefix,
                timeout,
                ca_file,
            }),
            local_cache,
        ))
    }

    /// An environment variable's name (`*_env`): letters, digits and `_`, not starting with a digit.
    fn env_name(
        &self,
        env: &Spanned<String>,
        kind: ConfigErrorKind,
        example: &str,
    ) -> Result<String, ConfigError> {
        let name = env.get_ref();
        let ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !ok {
            return Err(self
                .error(
                    kind,
                    &env.span(),
                    format!("{name:?} is not an environment variable name"),
                )
                .with_help(format!(
                    "write a name such as {example:?} (letters, digits, `_`)"
                )));
        }
        Ok(name.clone())
    }

    /// A number of milliseconds in `range` (`key` names it in the message), or `default` when absent.
    fn millis(
        &self,
        raw: Option<&Spanned<u64>>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let Some(ms) = raw else {
            return Ok(Duration::from_millis(default));
        };
        if !range.contains(ms.get_ref()) {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &ms.span(),
                    format!(
                        "`{key} = {}` is outside {} to {}",
                        ms.get_ref(),
                        range.start(),
                        range.end()
                    ),
                )
                .with_help(format!(
                    "write a number of milliseconds from {} to {}; the default is {default}",
                    range.start(),
                    range.end()
                )));
        }
        Ok(Duration::from_millis(*ms.get_ref()))
    }

    fn client_id(
        &self,
        header: &Range<usize>,
        raw: Option<&Spanned<String>>,
    ) -> Result<String, ConfigError> {
        const HELP: &str = "write the OAuth client ID from the Google Cloud console's Credentials page, e.g. \
                            `client_id = \"123-abc.apps.googleusercontent.com\"`";
        let Some(raw) = raw else {
            return Err(self
                .error(
                    ConfigErrorKind::MissingKey,
                    header,
                    "[signin] has no `client_id`",
                )
                .with_help(HELP));
        };
        let value = raw.get_ref();
        let ok = !value.is_empty()
            && value.len() <= 256
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidClientId,
                    &raw.span(),
                    format!("{value:?} is not an OAuth client ID (letters, digits, `-`, `.` and `_` only)"),
                )
                .with_help(HELP));
        }
        Ok(value.clone())
    }

    fn client_secret_source(
        &self,
        header: &Range<usize>,
        raw: &RawSignin,
    ) -> Result<ClientSecretSource, ConfigError> {
        match (&raw.client_secret_env, &raw.client_secret_file) {
            (Some(_), Some(file)) => Err(self
                .error(
                    ConfigErrorKind::ClientSecretChoice,
                    &file.span(),
                    "[signin] has both `client_secret_env` and `client_secret_file`",
                )
                .with_help("keep exactly one")),
            (None, None) => Err(self
                .error(
                    ConfigErrorKind::ClientSecretChoice,
                    header,
                    "[signin] does not say where to read the client secret",
                )
                .with_help(
                    "add `client_secret_env = \"IDGATE_CLIENT_SECRET\"` (an environment variable) or \
                     `client_secret_file = \"/secrets/client\"`; the secret itself never goes in the file",
                )),
            (Some(env), None) => Ok(ClientSecretSource::Env(self.env_name(
                env,
                ConfigErrorKind::ClientSecretChoice,
                "IDGATE_CLIENT_SECRET",
            )?)),
            (None, Some(file)) => {
                if file.get_ref().trim().is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::ClientSecretChoice,
                            &file.span(),
                            "`client_secret_file` is empty",
                        )
                        .with_help("write the path of the file that holds the secret"));
                }
                Ok(ClientSecretSource::File(PathBuf::from(file.get_ref())))
            }
        }
    }

    fn token_key_source(
        &self,
        raw: &RawSignin,
    ) -> Result<Option<(TokenKeySource, Location)>, ConfigError> {
        const HELP: &str = "name an environment variable (`token_encryption_key_env = \"IDGATE_TOKEN_KEY\"`) or a file \
                            (`token_encryption_key_file = \"/secrets/token-key\"`) holding 32 random bytes in base64, \
                            made with `openssl rand -base64 32`";
        match (
            &raw.token_encryption_key_env,
            &raw.token_encryption_key_file,
        ) {
            (None, None) => Ok(None),
            (Some(_), Some(file)) => Err(self
                .error(
                    ConfigErrorKind::TokenEncryptionKeyChoice,
                    &file.span(),
                    "[signin] has both `token_encryption_key_env` and `token_encryption_key_file`",
                )
                .with_help("keep exactly one")),
            (Some(env), None) => {
                let name = self.env_name(
                    env,
                    ConfigErrorKind::TokenEncryptionKeyChoice,
                    "IDGATE_TOKEN_KEY",
                )?;
                let at = Location::of(self.src, env.span().start);
                Ok(Some((TokenKeySource::Env(name), at)))
            }
            (None, Some(file)) => {
                if file.get_ref().trim().is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::TokenEncryptionKeyChoice,
                            &file.span(),
                            "`token_encryption_key_file` is empty",
                        )
                        .with_help(HELP));
                }
                let at = Location::of(self.src, file.span().start);
                Ok(Some((
                    TokenKeySource::File(PathBuf::from(file.get_ref())),
                    at,
                )))
            }
        }
    }

    fn scopes(&self, list: &List) -> Result<Vec<String>, ConfigError> {
        let Some(spanned) = list else {
            return Ok(DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        };
        let mut scopes: Vec<String> = Vec::new();
        for scope in spanned.get_ref() {
            let value = scope.get_ref();
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(self
                    .error(
                        ConfigErrorKind::InvalidScope,
                        &scope.span(),
                        format!("{value:?} is not a scope (one word, no spaces)"),
                    )
                    .with_help(
                        "write one scope per string, e.g. [\"openid\", \"email\", \"profile\"]",
                    ));
            }
            if !scopes.contains(value) {
                scopes.push(value.clone());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidScope,
                    &spanned.span(),
                    "`scopes` lacks \"openid\": without it Google returns no ID token, so nobody can be identified",
                )
                .with_help("add \"openid\" (the default is [\"openid\", \"email\", \"profile\"])"));
        }
        Ok(scopes)
    }

    fn session_secs(
        &self,
        value: Option<&Spanned<u64>>,
        default: u64,
        max: u64,
        key: &str,
    ) -> Result<u64, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let n = *value.get_ref();
        if !(MIN_SESSION_SECS..=max).contains(&n) {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &value.span(),
                    format!("`{key} = {n}` is outside {MIN_SESSION_SECS} to {max} seconds"),
                )
                .with_help(format!(
                    "write a number of seconds from {MIN_SESSION_SECS} to {max} (the idle timeout at most the \
                     lifetime); the default is {default}"
                )));
        }
        Ok(n)
    }

    fn prompt(&self, raw: &Spanned<String>) -> Result<String, ConfigError> {
        let value = raw.get_ref();
        let words: Vec<&str> = value.split(' ').collect();
        let known = words.iter().all(|w| PROMPT_WORDS.contains(w));
        let none_alone = !words.contains(&"none") || words.len() == 1;
        if !known || !none_alone {
            return Err(self
                .error(
                    ConfigErrorKind::Syntax,
                    &raw.span(),
                    format!("unknown prompt {value:?}"),
                )
                .with_help(
                    "write \"none\", \"consent\", \"select_account\" or \"consent select_account\" (one space \
                     between words; \"none\" alone)",
                ));
        }
        Ok(value.clone())
    }

    fn route_path(
        &self,
        raw: Option<&Spanned<String>>,
        default: &str,
    ) -> Result<String, ConfigError> {
        let Some(raw) = raw else {
            return Ok(default.to_owned());
        };
        let value = raw.get_ref();
        let ok = value.starts_with('/')
            && !value.starts_with("//")
            && value.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'?' | b'#' | b'\\' | b'*' | b'{' | b'}' | b'%')
            });
        if !ok {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidRoutePath,
                    &raw.span(),
                    format!("{value:?} is not a route path: it must start with one `/` and contain no query, \
                             fragment, pattern or whitespace"),
                )
                .with_help(format!("write an exact path such as {default:?}")));
        }
        Ok(value.clone())
    }
}
