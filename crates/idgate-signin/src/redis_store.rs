//! [`RedisStore`]: sessions, sign-in attempts and the per-user session index in Redis, shared by every replica.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, ExistenceCheck, SetExpiry, SetOptions};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use crate::flow::Attempt;
use crate::shared_state::{AttemptRecord, SharedState};

/// The default bound on one Redis operation, connecting included.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Keeps an attempt and bounds how many are kept: `KEYS[1]` the attempt's key, `KEYS[2]` the sorted set of live
/// attempts; `ARGV`: the record, its TTL (s), when it started (Unix ms), the most attempts kept, its member (the
/// state hash in hex), and the prefix of attempt keys. Attempts older than the TTL leave the set; past the bound
/// the oldest are deleted. One script, so that no interleaving of replicas lets the set and the keys disagree.
/// (`SETEX`, not `SET`: a Redis user may be allowed attempts without being allowed to write sessions.)
const PUT_ATTEMPT: &str = r"
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('SETEX', KEYS[1], ttl, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', ARGV[6] .. oldest[i])
  end
end
redis.call('EXPIRE', KEYS[2], ttl)
return 0
";

/// Adds a session to its user's index and ends the oldest past the most a user may have: `KEYS[1]` the user's
/// sorted set of session IDs (scored by when they were added); `ARGV`: the session ID, now (Unix ms), the index's
/// TTL (s), the most sessions per user, and the prefix of session keys. Returns the IDs it ended. One script, so
/// that a session leaves the index only together with its record: none escapes "sign out everywhere".
const ADD_SESSION: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
local ended = {}
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', ARGV[5] .. oldest[i])
    table.insert(ended, oldest[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return ended
";

/// How many times `create` draws a new session ID when the drawn one exists (128 random bits: never, in practice).
const CREATE_ATTEMPTS: usize = 8;

/// Why a [`RedisStore`] could not be made from a URL. The URL itself is never part of the message (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// Not a `redis://` or `rediss://` URL the client accepts.
    #[error("not a usable redis:// or rediss:// URL ({0})")]
    InvalidUrl(String),
    /// The key prefix is empty, longer than 128 bytes, or holds a space or a control character.
    #[error("the key prefix must be 1 to 128 printable characters without spaces")]
    InvalidKeyPrefix,
    /// A timeout of zero.
    #[error("the timeout must be more than zero")]
    ZeroTimeout,
    /// A CA certificate for a URL that is not `rediss://`, or one that is not PEM.
    #[error("the CA certificate cannot be used: {0}")]
    CaCertificate(String),
}

/// Sessions in Redis, shared by every replica of a service: with it, a user signed in through one replica is
/// signed in on all of them, a logout on one ends the session on all (within
/// [`SignInBuilder::local_cache`](crate::SignInBuilder::local_cache), 5 s by default), a login may start on one
/// replica and its callback land on another, and "sign out everywhere" reaches every session of a user.
///
/// Pass it to [`SignInBuilder::redis_store`](crate::SignInBuilder::redis_store), or configure it in TOML:
/// `[signin.sessions] store = "redis"`, `url_env = "IDGATE_REDIS_URL"`.
///
/// | key | value | expires |
/// |---|---|---|
/// | `{prefix}session:{id}` | the session record (JSON: the user's profile, never a token in clear) | with the session (`EXAT`) |
/// | `{prefix}attempt:{sha256(state)}` | a sign-in attempt (nonce, PKCE verifier, return URL); taken with `GETDEL`, so redeemed once | 10 minutes |
/// | `{prefix}attempts` | a sorted set of the live attempts' hashes: at most [`SignInBuilder::max_pending_attempts`](crate::SignInBuilder::max_pending_attempts) attempts are kept, the oldest dropped first | 10 minutes after the last login |
/// | `{prefix}user:{sha256(client, sub)}` | a sorted set of the user's session IDs, for "sign out everywhere"; at most 256: a sign-in past that ends the oldest session | with the session lifetime |
///
/// - **TLS and AUTH by URL**: `rediss://` is TLS (rustls, the system's roots), `redis://user:password@host/db`
///   authenticates (`AUTH`) and selects a database.
/// - **Bounded**: every operation, connecting included, gives up after the timeout (default
///   [`DEFAULT_REDIS_TIMEOUT`]); the sign-in then answers `503` (never lets anyone in, never panics) and recovers
///   by itself when Redis answers again (the connection is re-established on the next operation).
/// - **Never half-written**: a session is one `SET` of the whole record. A save never brings a deleted session
///   back (`SET ... XX`): a request still in flight on one replica cannot undo a logout made on another.
/// - Connecting is lazy: building the store does no I/O, so a service starts while Redis is still coming up.
///
/// ```no_run
/// use idgate_signin::{ClientSecret, RedisStore, SignIn};
/// use idgate_core::policy::Allowlist;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisStore::open(&std::env::var("IDGATE_REDIS_URL")?)?; // rediss://:PASSWORD@10.0.0.3:6378/0
/// let signin = SignIn::builder(
///     "123-abc.apps.googleusercontent.com",
///     ClientSecret::new(std::env::var("IDGATE_CLIENT_SECRET")?),
///     "https://app.example.com/auth/callback".parse()?,
/// )
/// .allowlist(Allowlist::builder().user_domain("example.com").build()?)
/// .redis_store(redis)
/// .build()?;
/// # let _ = signin; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    connection: std::sync::Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    /// Where the server is, for `Debug` and logs: host and port only (never a password).
    server: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for the server at `url` (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS), with
    /// the default key prefix (`idgate:signin:`) and timeout. Does no I/O.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidUrl`] for a URL the client refuses.
    pub fn open(url: &str) -> Result<Self, RedisStoreError> {
        let parsed =
            url::Url::parse(url).map_err(|e| RedisStoreError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(RedisStoreError::InvalidUrl(format!(
                "scheme {:?}",
                parsed.scheme()
            )));
        }
        // redis-rs reads `#insecure` as "do not check the server's certificate": never from a URL.
        if parsed.fragment().is_some() || parsed.query().is_some() {
            return Err(RedisStoreError::InvalidUrl(
                "a query or a fragment (`#insecure` would turn certificate checks off)".into(),
            ));
        }
        let server = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}", parsed.scheme()),
            (None, _) => return Err(RedisStoreError::InvalidUrl("no host".into())),
        };
        let client = redis::Client::open(url)
            .map_err(|e| RedisStoreError::InvalidUrl(format!("{:?}", e.kind())))?;
        Ok(Self {
            client,
            connection: std::sync::Arc::default(),
            prefix: idgate_core::config::DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            server,
        })
    }

    /// Every key this store writes starts with `prefix` (default `idgate:signin:`): several services can share one
    /// Redis.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::InvalidKeyPrefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Result<Self, RedisStoreError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.len() > 128 || !prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RedisStoreError::InvalidKeyPrefix);
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Trusts `pem` (one or more PEM certificates) instead of the system's roots for the server's TLS certificate:
    /// what Memorystore for Redis with in-transit encryption needs (its instance's server CA). `rediss://` only.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::CaCertificate`] for a `redis://` URL or a `pem` without a certificate.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Result<Self, RedisStoreError> {
        let pem = pem.into();
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(RedisStoreError::CaCertificate(
                "no PEM certificate in it".into(),
            ));
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        };
        self.client =
            redis::Client::build_with_tls(self.client.get_connection_info().clone(), certificates)
                .map_err(|e| {
                    RedisStoreError::CaCertificate(match e.kind() {
                        redis::ErrorKind::InvalidClientConfig => {
                            "the URL is not rediss:// (TLS)".to_owned()
                        }
                        kind => format!("{kind:?}"),
                    })
                })?;
        self.connection = std::sync::Arc::default();
        Ok(self)
    }

    /// The most one operation may take, connecting included (default [`DEFAULT_REDIS_TIMEOUT`]).
    ///
    /// # Errors
    ///
    /// [`RedisStoreError::ZeroTimeout`].
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, RedisStoreError> {
        if timeout.is_zero() {
            return Err(RedisStoreError::ZeroTimeout);
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The server, as `redis://host:port` (no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn session_key(&self, id: &Id) -> String {
        format!("{}session:{id}", self.prefix)
    }

    fn attempt_key(&self, key: &[u8; 32]) -> String {
        format!("{}attempt:{}", self.prefix, hex(key))
    }

    /// The sorted set of live attempts (their hashes, scored by when they started), which bounds how many there are.
    fn attempts_key(&self) -> String {
        format!("{}attempts", self.prefix)
    }

    fn user_key(&self, user: &[u8; 32]) -> String {
        format!("{}user:{}", self.prefix, hex(user))
    }

    /// Runs `op` on the shared connection, the whole of it (connecting included) bounded by the timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> session_store::Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self
                .connection
                .get_or_try_init(|| async {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(2)
                        .set_max_delay(self.timeout);
                    ConnectionManager::new_with_config(self.client.clone(), config).await
                })
                .await?
                .clone();
            op(connection).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(session_store::Error::Backend(format!(
                "Redis {what} failed: {}",
                describe(&e)
            ))),
            Err(_) => Err(session_store::Error::Backend(format!(
                "Redis {what} took longer than {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// A Redis error without anything that could echo a credential: its kind, and the detail only for server errors.
fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".to_owned()
    } else {
        format!("{:?}", e.kind())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The Unix second a record expires at, or `None` when it already has.
fn expires_at(record: &Record) -> Option<u64> {
    let at = record.expiry_date.unix_timestamp();
    (record.expiry_date > OffsetDateTime::now_utc())
        .then(|| u64::try_from(at).ok())
        .flatten()
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let Some(at) = expires_at(record) else {
            return Ok(());
        };
        for _ in 0..CREATE_ATTEMPTS {
            let key = self.session_key(&record.id);
            let value = encode(record)?;
            let options = SetOptions::default()
                .conditional_set(ExistenceCheck::NX)
                .with_expiration(SetExpiry::EXAT(at));
            let created: Option<String> = self
                .run("create", |mut c| async move {
                    c.set_options(key, value, options).await
                })
                .await?;
            if created.is_some() {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(
            "Redis create: no free session ID".to_owned(),
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let key = self.session_key(&record.id);
        let Some(at) = expires_at(record) else {
            return self
                .run("delete", |mut c| async move { c.del(key).await })
                .await;
        };
        let value = encode(record)?;
        // XX: only a session that still exists is saved. One deleted meanwhile (a logout on another replica, "sign
        // out everywhere") stays deleted.
        let options = SetOptions::default()
            .conditional_set(ExistenceCheck::XX)
            .with_expiration(SetExpiry::EXAT(at));
        let _: Option<String> = self
            .run("save", |mut c| async move {
                c.set_options(key, value, options).await
            })
            .await?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let key = self.session_key(session_id);
        let value: Option<Vec<u8>> = self
            .run("load", |mut c| async move { c.get(key).await })
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&value)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        // A record under another key's name is not this session (a store written by hand, or tampered with).
        if record.id != *session_id {
            return Ok(None);
        }
        Ok(Some(record))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let key = self.session_key(session_id);
        self.run("delete", |mut c| async move { c.del(key).await })
            .await
    }
}

#[async_trait::async_trait]
impl SharedState for RedisStore {
    async fn put_attempt(
        &self,
        key: &[u8; 32],
        attempt: &Attempt,
        max_pending: u64,
    ) -> session_store::Result<()> {
        let member = hex(key);
        let keys = [self.attempt_key(key), self.attempts_key()];
        let value = serde_json::to_string(&AttemptRecord::from(attempt))
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let ttl = crate::flow::ATTEMPT_TTL.as_secs();
        let now_ms = attempt
            .created
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let attempt_prefix = format!("{}attempt:", self.prefix);
        self.run("attempt write", |mut c| async move {
            redis::cmd("EVAL")
                .arg(PUT_ATTEMPT)
                .arg(2)
                .arg(&keys)
                .arg(value)
                .arg(ttl)
                .arg(now_ms)
                .arg(max_pending.max(1))
                .arg(member)
                .arg(attempt_prefix)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn take_attempt(&self, key: &[u8; 32]) -> session_store::Result<Option<Attempt>> {
        let member = hex(key);
        let (attempt_key, attempts_key) = (self.attempt_key(key), self.attempts_key());
        // GETDEL: of two callbacks with the same state on two replicas, one gets the attempt.
        let (value,): (Option<Vec<u8>>,) = self
            .run("attempt read", |mut c| async move {
                redis::pipe()
                    .atomic()
                    .get_del(&attempt_key)
                    .zrem(&attempts_key, member)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        value
            .map(|v| {
                let record: AttemptRecord = serde_json::from_slice(&v)
                    .map_err(|e| session_store::Error::Decode(e.to_string()))?;
                Attempt::try_from(record)
            })
            .transpose()
    }

    async fn add_session(
        &self,
        user: &[u8; 32],
        id: Id,
        ttl: Duration,
    ) -> session_store::Result<Vec<Id>> {
        let key = self.user_key(user);
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let session_prefix = format!("{}session:", self.prefix);
        let pushed_out: Vec<String> = self
            .run("index write", |mut c| async move {
                redis::cmd("EVAL")
                    .arg(ADD_SESSION)
                    .arg(1)
                    .arg(key)
                    .arg(id.to_string())
                    .arg(now_ms)
                    .arg(ttl)
                    .arg(crate::shared_state::MAX_SESSIONS_PER_USER)
                    .arg(session_prefix)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(pushed_out.iter().filter_map(|m| m.parse().ok()).collect())
    }

    async fn take_sessions(&self, user: &[u8; 32]) -> session_store::Result<Vec<Id>> {
        let key = self.user_key(user);
        let (members,): (Vec<String>,) = self
            .run("index read", |mut c| async move {
                redis::pipe()
                    .atomic()
                    .zrange(&key, 0, -1)
                    .del(&key)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    fn local_attempts(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_without_echoing_them() {
        assert!(RedisStore::open("redis://127.0.0.1:6379/0").is_ok());
        assert!(RedisStore::open("rediss://:pw@redis.internal:6378").is_ok());
        let e = RedisStore::open("http://:hunter2@127.0.0.1:6379").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(RedisStore::open("not a url").is_err());
        assert!(RedisStore::open("rediss://127.0.0.1:6379/#insecure").is_err());
        assert!(RedisStore::open("rediss://127.0.0.1:6379/?insecure=1").is_err());
        let plain = RedisStore::open("redis://127.0.0.1:6379").unwrap();
        assert!(matches!(
            plain.ca_certificate(
                b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".to_vec()
            ),
            Err(RedisStoreError::CaCertificate(_))
        ));
        let tls = RedisStore::open("rediss://127.0.0.1:6379").unwrap();
        assert!(tls.ca_certificate(b"not pem".to_vec()).is_err());
        let store = RedisStore::open("redis://user:hunter2@127.0.0.1:6379").unwrap();
        assert_eq!(store.server(), "redis://127.0.0.1:6379");
        assert!(!format!("{store:?}").contains("hunter2"));
        assert!(store.clone().key_prefix("a b").is_err());
        assert!(store.clone().key_prefix("").is_err());
        assert!(store.clone().timeout(Duration::ZERO).is_err());
        let store = store.key_prefix("app:").unwrap();
        assert_eq!(
            store.session_key(&Id(1)),
            "app:session:AQAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            store.attempt_key(&[0xab; 32]).len(),
            "app:attempt:".len() + 64
        );
    }
}
