//! [`SignIn`]: the configured sign-in, and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idgate_core::clock::{Clock, SystemClock};
use idgate_core::config::{AccessType, Config, DEFAULT_SCOPES};
use idgate_core::google::{Endpoints, HttpOptions};
use idgate_core::keys::{KeyCache, KeyDocumentFormat};
use idgate_core::policy::Allowlist;
use idgate_core::verify::OidcVerifier;
use tower_sessions::SessionStore;
use url::Url;

use crate::error::SignInError;
use crate::secret::ClientSecret;
use crate::session::AnySessionStore;
use crate::shared_state::{InProcess, SharedState};
use crate::tokens::TokenEncryptionKey;
use crate::{RequireSignInLayer, SignInLayer};

/// The default bound on sign-in attempts started and not yet redeemed, across all browsers.
pub const DEFAULT_MAX_PENDING_ATTEMPTS: u64 = 10_000;

/// The longest session lifetime [`SignInBuilder::build`] accepts: 30 days, as `[signin] session_lifetime_secs`.
const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The longest [`SignInBuilder::local_cache`] accepts: a minute, as `[signin.sessions] local_cache_ms`. (A copy is
/// re-read at least once a minute anyway, for the sliding expiry.)
const MAX_LOCAL_CACHE: Duration = Duration::from_secs(60);

/// The most live attempts one browser keeps (one per tab signing in at once); starting one more drops the others.
pub(crate) const MAX_ATTEMPTS_PER_BROWSER: usize = 5;

/// Everything the routes and layers share.
pub(crate) struct Shared {
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) redirect_url: Url,
    pub(crate) origin: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) hosted_domain: Option<String>,
    pub(crate) prompt: Option<String>,
    pub(crate) access_type: Option<AccessType>,
    pub(crate) fetch_userinfo: bool,
    pub(crate) endpoints: Endpoints,
    pub(crate) http: HttpOptions,
    pub(crate) verifier: OidcVerifier,
    pub(crate) allowlist: Allowlist,
    pub(crate) lifetime: Duration,
    pub(crate) idle: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) login_path: String,
    pub(crate) logout_path: String,
    pub(crate) secure: bool,
    pub(crate) session_cookie: &'static str,
    pub(crate) attempt_cookie_prefix: &'static str,
    /// Sign-in attempts and the per-user session index: in this process, or in Redis with the sessions.
    pub(crate) state: Arc<dyn SharedState>,
    pub(crate) store: AnySessionStore,
    /// How long a session's user is answered from `recent` (zero: never).
    pub(crate) local_cache: Duration,
    /// Seals the Google token a session keeps, so that the session store never holds it in clear.
    pub(crate) token_key: crate::secret::TokenKey,
    /// The most sign-in attempts kept at once in `state` ([`SignInBuilder::max_pending_attempts`]).
    pub(crate) max_pending_attempts: u64,
    /// Sessions' users as this process last read them from the store (see `session::RecentUser`), and the sessions
    /// this process ended or replaced (logout, sign-in), so that a read of one already in flight does not put a copy
    /// back.
    pub(crate) recent: crate::local_copy::LocalCopy<crate::session::RecentUser>,
    /// The users' Google tokens (encrypted at rest), when a token encryption key is configured.
    pub(crate) tokens: Option<crate::tokens::Tokens>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url.as_str())
            .field("scopes", &self.scopes)
            .field("login_path", &self.login_path)
            .field("logout_path", &self.logout_path)
            .field("lifetime", &self.lifetime)
            .field("idle", &self.idle)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// Sign in with Google, configured once: hand out its [`layer`](Self::layer) (sessions), its
/// [`router`](Self::router) (login, callback, logout) and [`require`](Self::require) (the gate on protected
/// routes). Cheap to clone. See the [crate docs](crate) for an example.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub(crate) shared: Arc<Shared>,
}

impl SignIn {
    /// Starts configuring a sign-in for the OAuth client `client_id` whose registered redirect URL is
    /// `redirect_url` (its path is the callback route).
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_url: Url,
    ) -> SignInBuilder {
        SignInBuilder {
            client_id: client_id.into(),
            client_secret,
            redirect_url,
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            hosted_domain: None,
            prompt: None,
            access_type: None,
            fetch_userinfo: false,
            endpoints: Endpoints::default(),
            keys: None,
            keys_url: None,
            http: HttpOptions::default(),
            allowlist: Allowlist::new(),
            lifetime: Duration::from_secs(8 * 3600),
            idle: Duration::from_secs(3600),
            clock: Arc::new(SystemClock),
            login_path: "/auth/login".to_owned(),
            logout_path: "/auth/logout".to_owned(),
            store: None,
            shared_state: None,
            local_cache: crate::session::RECENT_USER_TTL,
            max_pending_attempts: DEFAULT_MAX_PENDING_ATTEMPTS,
            token_key: None,
        }
    }

    /// A builder from the `[signin]` table (and `[google]`'s endpoints), the client secret read from the
    /// environment variable or file the table names. Change what tests need (store, clock, HTTP) before building.
    ///
    /// # Errors
    ///
    /// [`SignInError::NotConfigured`] without a `[signin]` table; [`SignInError::ClientSecretUnavailable`].
    pub fn builder_from_config(config: &Config) -> Result<SignInBuilder, SignInError> {
        let signin = config.signin().ok_or(SignInError::NotConfigured)?;
        let secret = ClientSecret::from_source(signin.client_secret())?;
        let (keys_url, keys_format) = config.google().oidc_keys();
        let mut builder = Self::builder(signin.client_id(), secret, signin.redirect_url().clone())
            .endpoints(config.google().endpoints())
            .keys_url_as(keys_url, keys_format)
            .scopes(signin.scopes().iter().cloned())
            .allowlist(signin.allowlist().clone())
            .session_lifetime(signin.session_lifetime())
            .idle_timeout(signin.session_idle_timeout())
            .fetch_userinfo(signin.fetch_userinfo())
            .login_path(signin.login_path())
            .logout_path(signin.logout_path())
            .local_cache(signin.local_cache());
        // Otherwise the in-memory store, the default.
        if let idgate_core::config::SessionStoreConfig::Redis(redis) = signin.sessions() {
            builder = with_redis(builder, redis)?;
        }
        if let Some(hd) = signin.hosted_domain() {
            builder = builder.hosted_domain(hd);
        }
        if let Some(prompt) = signin.prompt() {
            builder = builder.prompt(prompt);
        }
        if let Some(access_type) = signin.access_type() {
            builder = builder.access_type(access_type);
        }
        if let Some(source) = signin.token_encryption_key() {
            builder = builder.token_encryption_key(TokenEncryptionKey::from_source(
                source,
                signin.token_encryption_key_location(),
            )?);
        }
        Ok(builder)
    }

    /// [`builder_from_config`](Self::builder_from_config), built.
    ///
    /// # Errors
    ///
    /// As [`builder_from_config`](Self::builder_from_config) and [`SignInBuilder::build`].
    pub fn from_config(config: &Config) -> Result<Self, SignInError> {
        Self::builder_from_config(config)?.build()
    }

    /// The session layer: put it around the whole app (the sign-in routes, protected and public routes alike). It
    /// reads the session cookie, ends sessions past their idle timeout or absolute lifetime, and puts the
    /// [`SignedInUser`](crate::SignedInUser) and the [`Caller`](idgate_core::Caller) of an allowed user in the
    /// request extensions.
    pub fn layer(&self) -> SignInLayer {
        SignInLayer::new(self.shared.clone())
    }

    /// The gate for protected routes: see [`RequireSignInLayer`]. Needs [`layer`](Self::layer) outside it.
    pub fn require(&self) -> RequireSignInLayer {
        RequireSignInLayer::new(self.shared.clone())
    }

    /// The login (GET), callback (GET) and logout (POST) routes. Merge it into your app, inside
    /// [`layer`](Self::layer).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        crate::routes::router(&self.shared)
    }

    /// The login route's path (default `/auth/login`).
    pub fn login_path(&self) -> &str {
        &self.shared.login_path
    }

    /// The logout route's path (default `/auth/logout`; POST only).
    pub fn logout_path(&self) -> &str {
        &self.shared.logout_path
    }

    /// The callback route's path: the redirect URL's.
    pub fn callback_path(&self) -> &str {
        self.shared.redirect_url.path()
    }

    /// The name of the session cookie: `__Host-idgate_session` when cookies are `Secure`, `idgate_session` on
    /// plain-http loopback.
    pub fn session_cookie_name(&self) -> &'static str {
        self.shared.session_cookie
    }

    /// The prefix of the per-attempt sign-in cookies (`__Host-idgate_signin_` when cookies are `Secure`,
    /// `idgate_signin_` on plain-http loopback): each attempt's cookie is this prefix and a tag. A proxy strips
    /// these and the [session cookie](Self::session_cookie_name) from what it forwards.
    pub fn attempt_cookie_prefix(&self) -> &'static str {
        self.shared.attempt_cookie_prefix
    }

    /// The Google key set the ID tokens from the code exchange are verified against: what a readiness probe checks
    /// ([`KeyCache::status`]) and a metrics exporter refreshes ([`KeyCache::record_metrics`], feature `metrics` of
    /// `idgate-core`) before a scrape.
    pub fn keys(&self) -> &KeyCache {
        self.shared.verifier.keys()
    }

    /// The number of sign-in attempts started and not yet redeemed or expired (approximate) that this process
    /// keeps: zero when they are kept in Redis.
    pub fn pending_attempts(&self) -> u64 {
        self.shared.state.local_attempts()
    }

    /// Ends every session of the user whose Google `sub` is `subject` ("sign out everywhere": a lost laptop, an
    /// account being deprovisioned), and returns how many it ended. With `RedisStore` (the `redis` feature) this
    /// reaches the sessions made by every replica; other replicas stop answering from their local copy within
    /// [`SignInBuilder::local_cache`]. With the in-memory store (or a store passed to
    /// [`SignInBuilder::store`]) it reaches the sessions this process started. The logout route does the same for
    /// the signed-in user with `POST /auth/logout?everywhere=1`. Google's tokens of the other sessions are not
    /// revoked.
    ///
    /// # Errors
    ///
    /// [`SignInError::Session`] when the store failed (some sessions may have ended; calling again finishes).
    pub async fn sign_out_everywhere(&self, subject: &str) -> Result<usize, SignInError> {
        self.shared.sign_out_everywhere(subject).await
    }
}

/// Configures a [`SignIn`]. Building does no I/O.
#[must_use]
pub struct SignInBuilder {
    client_id: String,
    client_secret: ClientSecret,
    redirect_url: Url,
    scopes: Vec<String>,
    hosted_domain: Option<String>,
    prompt: Option<String>,
    access_type: Option<AccessType>,
    fetch_userinfo: bool,
    endpoints: Endpoints,
    keys: Option<KeyCache>,
    keys_url: Option<(Url, KeyDocumentFormat)>,
    http: HttpOptions,
    allowlist: Allowlist,
    lifetime: Duration,
    idle: Duration,
    clock: Arc<dyn Clock>,
    login_path: String,
    logout_path: String,
    store: Option<AnySessionStore>,
    shared_state: Option<Arc<dyn SharedState>>,
    local_cache: Duration,
    max_pending_attempts: u64,
    token_key: Option<TokenEncryptionKey>,
}

impl fmt::Debug for SignInBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInBuilder")
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url.as_str())
            .finish_non_exhaustive()
    }
}

impl SignInBuilder {
    /// Google's endpoints (authorization, token, userinfo, revoke, and the OIDC keys unless
    /// [`keys`](Self::keys) says otherwise). Default: the real Google; [`Endpoints::under`] the emulator.
    pub fn endpoints(mut self, endpoints: &Endpoints) -> Self {
        self.endpoints = endpoints.clone();
        self
    }

    /// The key cache the ID token is verified with (share one with other verifiers). Default: a cache of the
    /// endpoints' `oidc_jwks`.
    pub fn keys(mut self, keys: KeyCache) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Reads the OIDC keys from `url` as `format` (what `[google] oidc_keys_url`/`oidc_keys_format` configure).
    pub fn keys_url_as(mut self, url: Url, format: impl Into<KeyDocumentFormat>) -> Self {
        self.keys_url = Some((url, format.into()));
        self
    }

    /// The HTTP client, timeout and retries for Google's endpoints (the code exchange is never retried: a code is
    /// single-use).
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Where sessions are kept: any `tower-sessions` store (a database, ...). Default:
    /// [`MemorySessionStore`](crate::MemorySessionStore) (one process, sessions end with it; bounded, expiring).
    ///
    /// With such a store, sign-in attempts and the index behind "sign out everywhere" stay in this process: replicas
    /// then need the load balancer to send each browser's login and callback to the same instance. For replicas,
    /// prefer `redis_store` (the `redis` feature), which shares those too.
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(AnySessionStore::new(store));
        self.shared_state = None;
        self
    }

    /// Keeps sessions, sign-in attempts and the per-user session index in Redis, shared by every replica: see
    /// [`RedisStore`](crate::RedisStore).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_store(mut self, store: crate::RedisStore) -> Self {
        self.shared_state = Some(Arc::new(store.clone()));
        self.store = Some(AnySessionStore::new(store));
        self
    }

    /// How long this process answers a session from its own copy of the session's user instead of reading the
    /// store (default [`RECENT_USER_TTL`](crate::RECENT_USER_TTL), 5 s): the bound on how late a logout or "sign
    /// out everywhere" made by **another replica** takes effect here. `Duration::ZERO` reads the store on every
    /// request (one Redis round trip each). At most a minute: [`build`](Self::build) refuses more.
    pub fn local_cache(mut self, ttl: Duration) -> Self {
        self.local_cache = ttl;
        self
    }

    /// Who may sign in. Required: an empty allowlist is refused by [`build`](Self::build).
    pub fn allowlist(mut self, allowlist: Allowlist) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// The scopes asked for (default `openid email profile`; must contain `openid`).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sends `hd` to Google and requires the ID token's `hd` to be this domain.
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.hosted_domain = Some(domain.into().to_ascii_lowercase());
        self
    }

    /// Sends `prompt` (`none`, `consent`, `select_account`, or `consent select_account`).
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sends `access_type` (`offline` for a refresh token, which needs a
    /// [`token_encryption_key`](Self::token_encryption_key), feeds [`UserAccessToken`](crate::UserAccessToken) and
    /// is revoked at logout).
    pub fn access_type(mut self, access_type: AccessType) -> Self {
        self.access_type = Some(access_type);
        self
    }

    /// Keeps the user's Google tokens in the session encrypted with `key` (AES-256-GCM), and enables the
    /// [`UserAccessToken`](crate::UserAccessToken) extractor. Required with
    /// [`AccessType::Offline`]: a refresh token is never kept in clear. Without a key, the session keeps only the
    /// token logout revokes, in clear, as before.
    pub fn token_encryption_key(mut self, key: TokenEncryptionKey) -> Self {
        self.token_key = Some(key);
        self
    }

    /// Also reads the profile from the userinfo endpoint (default: the ID token's claims only).
    pub fn fetch_userinfo(mut self, yes: bool) -> Self {
        self.fetch_userinfo = yes;
        self
    }

    /// The absolute maximum of a session, however active (default 8 h; one minute to 30 days).
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// A session unused this long ends (default 1 h; sliding; at most the lifetime).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// The login route (default `/auth/login`).
    pub fn login_path(mut self, path: impl Into<String>) -> Self {
        self.login_path = path.into();
        self
    }

    /// The logout route (default `/auth/logout`).
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.logout_path = path.into();
        self
    }

    /// The clock every time decision uses (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The most sign-in attempts started and not yet redeemed, across all browsers (default 10,000; each lives at
    /// most 10 minutes); past that some are dropped (the cache's eviction policy picks them in memory). With
    /// `redis_store` (the `redis` feature) the bound holds in Redis, for all the replicas together (give them the
    /// same number), and the oldest are dropped first: a script calling the login route in a loop cannot fill Redis.
    pub fn max_pending_attempts(mut self, max: u64) -> Self {
        self.max_pending_attempts = max.max(1);
        self
    }

    /// Builds the sign-in.
    ///
    /// # Errors
    ///
    /// [`SignInError::InvalidConfig`] for an empty allowlist, scopes without `openid`, a redirect URL that is not
    /// https (or plain http on loopback), lifetimes out of range (a session lifetime or idle timeout under a
    /// minute, a lifetime over 30 days, a local cache over a minute), clashing route paths;
    /// [`SignInError::Verifier`] when the ID-token verifier cannot be built.
    pub fn build(self) -> Result<SignIn, SignInError> {
        let invalid = SignInError::InvalidConfig;
        if self.allowlist.is_empty() {
            return Err(invalid(
                "the allowlist is empty: list who may sign in (a sign-in that lets every Google account in is refused)",
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(invalid("the scopes must contain `openid`"));
        }
        let secure = match self.redirect_url.scheme() {
            "https" => true,
            "http" if is_loopback(&self.redirect_url) => false,
            _ => {
                return Err(invalid(
                    "the redirect URL must be https (plain http only on a loopback address)",
                ));
            }
        };
        if self.access_type == Some(AccessType::Offline) && self.token_key.is_none() {
            return Err(invalid(
                "offline access needs a token encryption key (`token_encryption_key`): a refresh token is only kept \
                 encrypted",
            ));
        }
        if self.lifetime < Duration::from_secs(60) || self.idle < Duration::from_secs(60) {
            return Err(invalid("session lifetimes must be at least one minute"));
        }
        // Beyond these the caches below (and the session's expiry date) would overflow: an error, not a panic.
        if self.lifetime > MAX_SESSION_LIFETIME {
            return Err(invalid("the session lifetime must be at most 30 days"));
        }
        if self.local_cache > MAX_LOCAL_CACHE {
            return Err(invalid(
                "the local cache of sessions must be at most one minute",
            ));
        }
        let idle = self.idle.min(self.lifetime);
        let callback = self.redirect_url.path();
        for path in [&self.login_path, &self.logout_path] {
            if !path.starts_with('/') || path.starts_with("//") {
                return Err(invalid("route paths must start with a single `/`"));
            }
        }
        if self.login_path == self.logout_path
            || self.login_path == callback
            || self.logout_path == callback
        {
            return Err(invalid(
                "the login, logout and callback routes need three different paths",
            ));
        }
        let verifier = OidcVerifier::builder()
            .audience(self.client_id.as_str())
            .clock(self.clock.clone());
        let verifier = match (self.keys, self.keys_url) {
            (Some(keys), _) => verifier.keys(keys),
            (None, Some((url, format))) => verifier.keys_url_as(url, format),
            (None, None) => verifier.keys_url(self.endpoints.oidc_jwks.clone()),
        }
        .build()
        .map_err(SignInError::Verifier)?;
        let origin = self.redirect_url.origin().ascii_serialization();
        let token_key = crate::secret::TokenKey::derive(&self.client_secret, &self.client_id);
        let forgotten = crate::local_copy::Forgotten::new(
            crate::session::RECENT_USER_CAPACITY,
            crate::session::FORGOTTEN_TTL,
        );
        Ok(SignIn {
            shared: Arc::new(Shared {
                client_id: self.client_id,
                client_secret: self.client_secret,
                redirect_url: self.redirect_url,
                origin,
                scopes: self.scopes,
                hosted_domain: self.hosted_domain,
                prompt: self.prompt,
                access_type: self.access_type,
                fetch_userinfo: self.fetch_userinfo,
                endpoints: self.endpoints,
                http: self.http,
                verifier,
                allowlist: self.allowlist,
                lifetime: self.lifetime,
                idle,
                clock: self.clock,
                login_path: self.login_path,
                logout_path: self.logout_path,
                secure,
                session_cookie: if secure {
                    "__Host-idgate_session"
                } else {
                    "idgate_session"
                },
                attempt_cookie_prefix: if secure {
                    "__Host-idgate_signin_"
                } else {
                    "idgate_signin_"
                },
                state: self.shared_state.unwrap_or_else(|| {
                    Arc::new(InProcess::new(self.max_pending_attempts, self.lifetime))
                }),
                local_cache: self.local_cache,
                max_pending_attempts: self.max_pending_attempts,
                token_key,
                store: self
                    .store
                    .unwrap_or_else(|| AnySessionStore::new(crate::MemorySessionStore::default()))
                    .refusing_forgotten(forgotten.clone()),
                recent: crate::local_copy::LocalCopy::new(
                    crate::session::RECENT_USER_CAPACITY,
                    self.local_cache.max(Duration::from_millis(1)),
                    forgotten,
                ),
                tokens: self.token_key.map(crate::tokens::Tokens::new),
            }),
        })
    }
}

/// Puts the configured Redis store in `builder`.
#[cfg(feature = "redis")]
fn with_redis(
    builder: SignInBuilder,
    config: &idgate_core::config::RedisSessionsConfig,
) -> Result<SignInBuilder, SignInError> {
    use idgate_core::config::RedisUrlSource;
    let url = match config.url() {
        RedisUrlSource::Url(url) => url.as_str().to_owned(),
        RedisUrlSource::Env(name) => std::env::var(name).map_err(|_| {
            SignInError::RedisUnavailable(format!(
                "the environment variable {name} (`[signin.sessions] url_env`) is not set"
            ))
        })?,
        // `RedisUrlSource` is non-exhaustive.
        #[allow(unreachable_patterns)]
        _ => return Err(SignInError::InvalidConfig("unknown Redis URL source")),
    };
    let mut store = crate::RedisStore::open(&url)
        .and_then(|s| s.key_prefix(config.key_prefix()))
        .and_then(|s| s.timeout(config.timeout()))
        .map_err(|e| SignInError::RedisUnavailable(e.to_string()))?;
    if let Some(path) = config.ca_file() {
        let pem = std::fs::read(path).map_err(|e| {
            SignInError::RedisUnavailable(format!(
                "cannot read `[signin.sessions] ca_file` {}: {e}",
                path.display()
            ))
        })?;
        store = store
            .ca_certificate(pem)
            .map_err(|e| SignInError::RedisUnavailable(e.to_string()))?;
    }
    Ok(builder.redis_store(store))
}

#[cfg(not(feature = "redis"))]
fn with_redis(
    _: SignInBuilder,
    _: &idgate_core::config::RedisSessionsConfig,
) -> Result<SignInBuilder, SignInError> {
    Err(SignInError::InvalidConfig(
        "`[signin.sessions] store = \"redis\"` needs idgate-signin's `redis` feature",
    ))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
