//! The key cache: freshness from `Cache-Control`, single-flight fetches, rate-limited unknown-`kid` refetches and
//! stale-while-error, all timed by an injectable [`Clock`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use super::source::{FetchError, KeySource, TransportError};
use super::{KeySet, VerifyingKey};
use crate::clock::{self, Clock};

/// How a [`KeyCache`] times its fetches. The defaults suit Google's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCacheConfig {
    /// Lifetime of a set whose response had no `Cache-Control: max-age`. Default 5 minutes.
    pub default_lifetime: Duration,
    /// The shortest lifetime honoured, whatever the origin says (`max-age=0` must not mean "fetch on every
    /// request"). Default 60 seconds.
    pub min_lifetime: Duration,
    /// The longest lifetime honoured. Default 24 hours.
    pub max_lifetime: Duration,
    /// At most one refetch per this interval is caused by tokens whose `kid` is not in a fresh set, so random kids
    /// cannot make idgate hammer Google. Default 30 seconds.
    pub unknown_kid_interval: Duration,
    /// How long past its freshness a set is still served while refreshes fail (stale-while-error). Default 6 hours:
    /// Google keeps a key published for days after it stops signing with it.
    pub stale_bound: Duration,
    /// A fetch that has not completed in this time fails. Default 5 seconds.
    pub fetch_timeout: Duration,
    /// After a failed fetch, no new fetch starts for this long; callers get the stale set or
    /// [`KeysUnavailable`] at once instead of waiting on a dead endpoint. Default 5 seconds.
    pub failure_backoff: Duration,
    /// The `keys` label of this cache's [metrics](crate::metrics). Default: `oidc` for RS256 keys, `iap` for ES256
    /// keys; `service_account` for the caches of [`ServiceAccountKeys`](super::ServiceAccountKeys).
    pub metrics_label: Option<&'static str>,
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        Self {
            default_lifetime: Duration::from_secs(300),
            min_lifetime: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(24 * 3600),
            unknown_kid_interval: Duration::from_secs(30),
            stale_bound: Duration::from_secs(6 * 3600),
            fetch_timeout: Duration::from_secs(5),
            failure_backoff: Duration::from_secs(5),
            metrics_label: None,
        }
    }
}

/// No usable key set: the source failed and there is no earlier set within the stale bound.
///
/// Maps to `503 Service Unavailable` with `Retry-After: `[`KeysUnavailable::retry_after`]. Why the last fetch
/// failed is its [`source`](std::error::Error::source) (and [`reason`](Self::reason)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing keys are unavailable from {source_name}")]
pub struct KeysUnavailable {
    source_name: String,
    #[source]
    reason: FetchError,
    retry_after: Duration,
}

impl KeysUnavailable {
    /// Why the last fetch failed.
    pub fn reason(&self) -> &FetchError {
        &self.reason
    }

    /// When a retry may succeed (the cache will not fetch again before then).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// Why [`KeyCache::key`] found no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLookupError {
    /// The set is available but has no key with this `kid` (even after the rate-limited refetch).
    #[error("no signing key with this kid")]
    UnknownKeyId,
    /// No set is available at all.
    #[error(transparent)]
    Unavailable(#[from] KeysUnavailable),
}

/// A snapshot of a cache's state, for readiness checks and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCacheStatus {
    /// A set is held and within its freshness or the stale bound.
    pub ready: bool,
    /// The held set is past its freshness (being served under stale-while-error, or about to be refreshed).
    pub stale: bool,
    /// The number of keys in the held set.
    pub keys: usize,
    /// When the held set was fetched.
    pub fetched_at: Option<SystemTime>,
    /// Until when the held set is fresh (its fetch time plus its clamped `max-age - Age`).
    pub fresh_until: Option<SystemTime>,
    /// The number of fetches started since the cache was built.
    pub fetches: u64,
    /// The last fetch failure, if the last fetch failed.
    pub last_error: Option<FetchError>,
}

pub(super) struct Loaded {
    keys: KeySet,
    fetched_at: SystemTime,
    fresh_until: SystemTime,
}

type FlightResult = Result<Arc<Loaded>, FetchError>;

#[derive(Default)]
struct Flight {
    in_flight: Option<Shared<BoxFuture<'static, FlightResult>>>,
    last_started: Option<SystemTime>,
    /// The last fetch caused by an unknown kid: the rate limit counts only these, so a kid rotated in just after a
    /// regular fetch is still picked up on first sight.
    last_unknown_kid_fetch: Option<SystemTime>,
    last_failure: Option<(SystemTime, FetchError)>,
    fetches: u64,
}

struct Inner {
    source: Arc<dyn KeySource>,
    config: KeyCacheConfig,
    clock: Arc<dyn Clock>,
    current: ArcSwapOption<Loaded>,
    flight: Mutex<Flight>,
}

/// A cache of one key source, shared by every verification that uses it. Cheap to clone.
///
/// - The hot path (a fresh set that has the `kid`) is one atomic load and a hash lookup: no lock, no await.
/// - **Single-flight**: any number of concurrent callers on a cold or expired cache share one fetch.
/// - **Unknown `kid`**: one refetch, then at most one per [`KeyCacheConfig::unknown_kid_interval`].
/// - **Stale-while-error**: an expired set keeps being served while it is refreshed, and while refreshes fail,
///   up to [`KeyCacheConfig::stale_bound`]; then [`KeysUnavailable`].
/// - Every fetch is bounded by [`KeyCacheConfig::fetch_timeout`]; after a failure, callers do not wait on the
///   source again for [`KeyCacheConfig::failure_backoff`].
///
/// Fetches run as tokio tasks, so a caller that gives up does not cancel the fetch the others are waiting on.
///
/// ```no_run
/// use idgate_core::keys::{HttpKeySource, KeyCache, KeyFormat};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let source = HttpKeySource::new("https://www.googleapis.com/oauth2/v3/certs".parse()?, KeyFormat::OidcJwks);
/// let cache = KeyCache::new(source);
/// cache.warm().await?; // at startup: fail fast, and be ready before the first request
/// assert!(cache.status().ready);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("source", &self.inner.source.describe())
            .field("status", &self.status())
            .finish()
    }
}

#[derive(Clone, Copy)]
pub(super) enum Reason {
    /// No set, or the set is past its freshness.
    Refresh,
    /// The set is fresh but lacks a requested kid.
    UnknownKid,
}

impl KeyCache {
    /// A cache over `source` with the default configuration and the system clock.
    pub fn new(source: impl KeySource) -> Self {
        Self::with_config(source, KeyCacheConfig::default(), clock::system())
    }

    /// A cache over `source` with an explicit configuration and clock.
    pub fn with_config(
        source: impl KeySource,
        config: KeyCacheConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::from_arc(Arc::new(source), config, clock)
    }

    /// Like [`KeyCache::with_config`], for a source that is already shared.
    pub fn from_arc(
        source: Arc<dyn KeySource>,
        config: KeyCacheConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                config,
                clock,
                current: ArcSwapOption::empty(),
                flight: Mutex::new(Flight::default()),
            }),
        }
    }

    /// The key with this `kid`.
    ///
    /// # Errors
    ///
    /// [`KeyLookupError::UnknownKeyId`] when the (possibly just refreshed) set lacks the kid;
    /// [`KeyLookupError::Unavailable`] when there is no usable set.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyLookupError> {
        let now = self.inner.clock.now();
        let Some(loaded) = self.inner.current.load_full() else {
            // Cold: everyone waits on the one fetch.
            let loaded = self.refresh(Reason::Refresh, now).await?;
            return lookup(&loaded, kid);
        };
        let fresh = now < loaded.fresh_until;
        if !fresh {
            if now >= loaded.fresh_until + self.inner.config.stale_bound {
                // Past the stale bound: nothing may be served without a successful fetch.
                let loaded = self.refresh(Reason::Refresh, now).await?;
                return lookup(&loaded, kid);
            }
            // Expired but within the bound: serve what we have, refresh in the background.
            self.refresh_in_background(now);
        }
        if let Some(key) = loaded.keys.get(kid) {
            return Ok(key.clone());
        }
        // A kid we have not seen: perhaps Google rotated. Refetch, rate-limited.
        match self.refresh(Reason::UnknownKid, now).await {
            Ok(fresh) => lookup(&fresh, kid),
            Err(_) => Err(KeyLookupError::UnknownKeyId),
        }
    }

    /// The key with this `kid` when the held set is fresh at `now` and holds it; `None` in every other case, which
    /// [`key`](Self::key) handles (a stale set, a refresh, an unknown kid). No I/O, no await, no reference-count
    /// traffic on the set: the cold verification's fast path.
    pub(crate) fn fresh_key(&self, kid: &str, now: SystemTime) -> Option<Arc<VerifyingKey>> {
        let guard = self.inner.current.load();
        let loaded = guard.as_ref()?;
        if now < loaded.fresh_until {
            loaded.keys.get(kid).cloned()
        } else {
            None
        }
    }

    /// The key set to verify with now: the held set while fresh (or stale within the bound, refreshed in the
    /// background, as [`key`](Self::key) does), else a fetched one.
    ///
    /// # Errors
    ///
    /// [`KeysUnavailable`] when there is no usable set and the source cannot be read.
    pub async fn key_set(&self) -> Result<KeySet, KeysUnavailable> {
        let now = self.inner.clock.now();
        if let Some(loaded) = self.inner.current.load_full() {
            if now < loaded.fresh_until {
                return Ok(loaded.keys.clone());
            }
            if now < loaded.fresh_until + self.inner.config.stale_bound {
                self.refresh_in_background(now);
                return Ok(loaded.keys.clone());
            }
        }
        self.refresh(Reason::Refresh, now)
            .await
            .map(|loaded| loaded.keys.clone())
    }

    /// Fetches the set now unless a fresh one is held: call it at startup so the first request does not wait, and
    /// so a misconfigured key URL fails the deployment rather than the first caller.
    ///
    /// # Errors
    ///
    /// [`KeysUnavailable`] when the source cannot be read.
    pub async fn warm(&self) -> Result<(), KeysUnavailable> {
        let now = self.inner.clock.now();
        if self
            .inner
            .current
            .load()
            .as_ref()
            .is_some_and(|l| now < l.fresh_until)
        {
            return Ok(());
        }
        self.refresh(Reason::Refresh, now).await.map(|_| ())
    }

    /// The cache's state: whether it can serve, how old its set is, how many fetches it made.
    pub fn status(&self) -> KeyCacheStatus {
        let now = self.inner.clock.now();
        let current = self.inner.current.load_full();
        let flight = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
        KeyCacheStatus {
            ready: current
                .as_ref()
                .is_some_and(|l| now < l.fresh_until + self.inner.config.stale_bound),
            stale: current.as_ref().is_some_and(|l| now >= l.fresh_until),
            keys: current.as_ref().map_or(0, |l| l.keys.len()),
            fetched_at: current.as_ref().map(|l| l.fetched_at),
            fresh_until: current.as_ref().map(|l| l.fresh_until),
            fetches: flight.fetches,
            last_error: flight.last_failure.as_ref().map(|(_, e)| e.clone()),
        }
    }

    /// Whether `key` is still published at `now`: the held set, fresh or stale within the bound, holds it. Never
    /// waits on a fetch; a set past its freshness is refreshed in the background, so a key Google withdraws is
    /// noticed within one key-set lifetime even when every request is answered from the verifiers' memo.
    ///
    /// `now` comes from the caller (the verifier has just read its clock for `exp`): a second clock read would cost
    /// as much as the rest of a memo hit on machines whose clock is not read through the vDSO.
    pub(crate) fn still_publishes(&self, key: &Arc<VerifyingKey>, now: SystemTime) -> bool {
        // A guard, not `load_full`: no reference-count traffic on the memo's hot path.
        let guard = self.inner.current.load();
        let Some(loaded) = guard.as_ref() else {
            return false;
        };
        if now >= loaded.fresh_until {
            if now >= loaded.fresh_until + self.inner.config.stale_bound {
                return false;
            }
            self.refresh_in_background(now);
        }
        loaded.keys.holds(key)
    }

    /// The held key set, if any, whatever its freshness.
    pub fn current(&self) -> Option<KeySet> {
        self.inner.current.load().as_ref().map(|l| l.keys.clone())
    }

    /// The algorithm of every key this cache serves.
    pub fn algorithm(&self) -> super::KeyAlgorithm {
        self.inner.source.algorithm()
    }

    /// A description of the source, for logs.
    pub fn source_name(&self) -> String {
        self.inner.source.describe()
    }

    /// Sets this cache's age and freshness gauges (`idgate_key_set_age_seconds`, `idgate_key_set_fresh_for_seconds`)
    /// to their values now: call it before a metrics scrape (the admin listener of `idgate proxy` does). Without the
    /// `metrics` feature it does nothing.
    pub fn record_metrics(&self) {
        if let Some(loaded) = self.inner.current.load_full() {
            let now = self.inner.clock.now();
            let age = now.duration_since(loaded.fetched_at).unwrap_or_default();
            let fresh_for = match loaded.fresh_until.duration_since(now) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            crate::metrics::keys::status(self.metrics_label(), age.as_secs_f64(), fresh_for);
        }
    }

    /// The `keys` label of this cache's metrics.
    fn metrics_label(&self) -> &'static str {
        metrics_label(&self.inner)
    }

    fn refresh_in_background(&self, now: SystemTime) {
        // The fetch runs as its own task; nobody needs to await it here.
        let _ = self.start_or_join(Reason::Refresh, now);
    }

    pub(super) async fn refresh(
        &self,
        reason: Reason,
        now: SystemTime,
    ) -> Result<Arc<Loaded>, KeysUnavailable> {
        match self.start_or_join(reason, now) {
            Some(flight) => flight.await.map_err(|reason| self.unavailable(reason)),
            None => {
                // Rate-limited or backing off: report the last failure if there was one.
                let flight = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
                let reason = flight
                    .last_failure
                    .as_ref()
                    .map_or(FetchError::RateLimited, |(_, e)| e.clone());
                drop(flight);
                Err(self.unavailable(reason))
            }
        }
    }

    fn unavailable(&self, reason: FetchError) -> KeysUnavailable {
        let flight = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.inner.clock.now();
        let next = flight
            .last_started
            .map_or(now, |t| t + self.inner.config.failure_backoff);
        let retry_after = next
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        KeysUnavailable {
            source_name: self.inner.source.describe(),
            reason,
            retry_after,
        }
    }

    /// Joins the fetch in flight, or starts one if the rules allow; `None` when they do not.
    fn start_or_join(
        &self,
        reason: Reason,
        now: SystemTime,
    ) -> Option<Shared<BoxFuture<'static, FlightResult>>> {
        let mut flight = self.inner.flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(in_flight) = &flight.in_flight {
            return Some(in_flight.clone());
        }
        // The caller judged the set missing or expired before taking the lock; a fetch may have landed since. Without
        // this check, a caller that lost that race would start a second fetch for a burst that needs one.
        if matches!(reason, Reason::Refresh)
            && let Some(loaded) = self.inner.current.load_full()
            && now < loaded.fresh_until
        {
            return Some(futures_util::future::ready(Ok(loaded)).boxed().shared());
        }
        let since = |t: Option<SystemTime>| t.map(|t| now.duration_since(t).unwrap_or_default());
        if let Some((failed_at, _)) = &flight.last_failure
            && since(Some(*failed_at)).is_some_and(|d| d < self.inner.config.failure_backoff)
        {
            return None;
        }
        if matches!(reason, Reason::UnknownKid) {
            if since(flight.last_unknown_kid_fetch)
                .is_some_and(|d| d < self.inner.config.unknown_kid_interval)
            {
                crate::metrics::keys::unknown_kid_refetch_suppressed(self.metrics_label());
                return None;
            }
            flight.last_unknown_kid_fetch = Some(now);
        }
        flight.last_started = Some(now);
        flight.fetches += 1;
        let inner = self.inner.clone();
        let task = tokio::spawn(async move { fetch_and_store(inner).await });
        let shared = async move {
            match task.await {
                Ok(result) => result,
                // The fetch task panicked or was cancelled: no answer came back from the endpoint.
                Err(join) => Err(FetchError::Transport(TransportError::new(join))),
            }
        }
        .boxed()
        .shared();
        flight.in_flight = Some(shared.clone());
        Some(shared)
    }
}

fn metrics_label(inner: &Inner) -> &'static str {
    inner
        .config
        .metrics_label
        .unwrap_or(match inner.source.algorithm() {
            super::KeyAlgorithm::Rs256 => "oidc",
            super::KeyAlgorithm::Es256 => "iap",
        })
}

fn lookup(loaded: &Loaded, kid: &str) -> Result<Arc<VerifyingKey>, KeyLookupError> {
    loaded
        .keys
        .get(kid)
        .cloned()
        .ok_or(KeyLookupError::UnknownKeyId)
}

async fn fetch_and_store(inner: Arc<Inner>) -> FlightResult {
    let timeout = inner.config.fetch_timeout;
    let result = match tokio::time::timeout(timeout, inner.source.fetch()).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(timeout)),
    };
    let now = inner.clock.now();
    let mut flight = inner.flight.lock().unwrap_or_else(|p| p.into_inner());
    flight.in_flight = None;
    match result {
        Ok(fetched) => {
            let lifetime = fetched
                .max_age
                .unwrap_or(inner.config.default_lifetime)
                .clamp(inner.config.min_lifetime, inner.config.max_lifetime);
            let loaded = Arc::new(Loaded {
                keys: fetched.keys,
                fetched_at: now,
                fresh_until: now + lifetime,
            });
            tracing::debug!(
                target: "idgate::keys",
                source = %inner.source.describe(),
                keys = loaded.keys.len(),
                lifetime_secs = lifetime.as_secs(),
                "fetched signing keys"
            );
            inner.current.store(Some(loaded.clone()));
            flight.last_failure = None;
            crate::metrics::keys::fetched(
                metrics_label(&inner),
                true,
                now.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
            Ok(loaded)
        }
        Err(error) => {
            let stale = inner
                .current
                .load()
                .as_ref()
                .is_some_and(|l| now < l.fresh_until + inner.config.stale_bound);
            crate::metrics::keys::fetched(metrics_label(&inner), false, 0.0);
            if stale {
                crate::metrics::keys::serving_stale(metrics_label(&inner));
                tracing::warn!(
                    target: "idgate::keys",
                    source = %inner.source.describe(),
                    error = %crate::ErrorChain(&error),
                    "key refresh failed; serving the previous key set"
                );
            } else {
                tracing::error!(
                    target: "idgate::keys",
                    source = %inner.source.describe(),
                    error = %crate::ErrorChain(&error),
                    "key fetch failed; no usable key set"
                );
            }
            flight.last_failure = Some((now, error.clone()));
            Err(error)
        }
    }
}
