//! Per-audience caching of ID tokens with refresh-ahead, single-flight minting and no background tasks.
//!
//! # When a token is refreshed
//!
//! For a token expiring at `exp`, with the default settings:
//!
//! ```text
//!  minted ........ fresh ........ | exp-3m45s .. refresh due .. | exp-30s .. unusable .. | exp
//!  returned as is                 | one caller refreshes; every | never returned: callers
//!                                 | other caller gets the       | wait for one mint
//!                                 | current token at once       |
//! ```
//!
//! - **Refresh window: 3 min 45 s** (Python's `REFRESH_THRESHOLD`, Go's 225 s). The metadata server caches a
//!   token until about 4 minutes before its expiry and hands out the cached one until then, so a window of 4
//!   minutes or more would make every refresh return the same token, still "due", and refresh again on every call:
//!   a request storm (apache/arrow-rs#6625). 3 min 45 s leaves 15 s of clock skew between this host and the
//!   metadata server. The window cannot be set to 4 minutes or more; and if a refresh ever returns a token that is
//!   itself already due (e.g. a skewed clock), the next refresh waits for the failure backoff instead of running on
//!   the next call.
//! - **Safety margin: 30 s.** A token with less left than that is never handed out: it would expire in flight or
//!   at a receiver whose clock runs ahead.
//! - **A failed refresh keeps the current token** while it is usable, and the next attempt waits 5 s, doubling up
//!   to 60 s, so a dead endpoint is not hammered.
//! - **Single flight.** Per audience, at most one mint runs at a time; callers without a usable token wait for it
//!   and share its result, success or error (1,000 concurrent callers of a cold audience cause one mint).
//! - **No background task.** Refreshes run inside the call that finds them due; dropping a [`CachedSource`] leaves
//!   nothing behind.
//! - **Every expiry decision asks the [`Clock`]**, so tests move time without sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use idgate_core::clock::{Clock, SystemClock};
use idgate_core::token::IdToken;

use crate::error::{ResponseProblem, SourceError};
use crate::source::{BoxFuture, IdTokenSource};

/// Default refresh window: tokens are refreshed when less than this is left before `exp`.
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(3 * 60 + 45);
/// The largest refresh window accepted: the metadata server's cache boundary (4 min) minus one second.
pub const MAX_REFRESH_WINDOW: Duration = Duration::from_secs(4 * 60 - 1);
/// Default safety margin: a token with less than this left is never returned.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(30);
/// Default bound on the number of audiences cached.
pub const DEFAULT_MAX_AUDIENCES: u64 = 1024;

/// Wraps an [`IdTokenSource`] and reuses its tokens per audience until shortly before they expire. See the
/// [module documentation](self) for the refresh rules.
///
/// Cheap to clone; clones share the cache. Build it with [`CachedSource::new`], [`CachedSource::builder`] or
/// [`IdTokenSourceExt::cached`](crate::IdTokenSourceExt::cached).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use idgate_client::{CachedSource, IdTokenSource, StaticToken};
/// use idgate_core::clock::ManualClock;
/// use idgate_core::token::IdToken;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// // A token with exp = 1_700_003_600.
/// let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDM2MDB9.c2ln").unwrap();
/// let clock = ManualClock::at_unix(1_700_000_000);
/// let cached = CachedSource::builder(StaticToken::new(token.clone()))
///     .clock(Arc::new(clock.clone()))
///     .build();
///
/// assert_eq!(cached.id_token("https://api.example.com").await.unwrap(), token);
/// assert!(cached.peek("https://api.example.com").is_some()); // fresh: no I/O needed
///
/// clock.advance(Duration::from_secs(3600)); // now past exp: never handed out
/// assert!(cached.peek("https://api.example.com").is_none());
/// assert!(cached.id_token("https://api.example.com").await.unwrap_err().is_expired());
/// # }
/// ```
pub struct CachedSource<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for CachedSource<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for CachedSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSource")
            .field("source", &self.inner.source)
            .field("refresh_window", &self.inner.config.refresh_window)
            .field("safety_margin", &self.inner.config.safety_margin)
            .field("audiences", &self.inner.slots.entry_count())
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    source: S,
    slots: moka::sync::Cache<Arc<str>, Arc<Slot>>,
    clock: Arc<dyn Clock>,
    config: Config,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    refresh_window: Duration,
    safety_margin: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

/// Configures a [`CachedSource`].
pub struct CachedSourceBuilder<S> {
    source: S,
    clock: Arc<dyn Clock>,
    config: Config,
    max_audiences: u64,
}

impl<S: fmt::Debug> fmt::Debug for CachedSourceBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSourceBuilder")
            .field("source", &self.source)
            .field("clock", &self.clock)
            .field("config", &self.config)
            .field("max_audiences", &self.max_audiences)
            .finish()
    }
}

impl<S> CachedSourceBuilder<S> {
    /// Refresh tokens when less than `window` is left before `exp` (default 3 min 45 s). Clamped to
    /// [`MAX_REFRESH_WINDOW`] (see the [module documentation](self) for why) and to at least the safety margin.
    #[must_use]
    pub fn refresh_window(mut self, window: Duration) -> Self {
        self.config.refresh_window = window.min(MAX_REFRESH_WINDOW);
        self
    }

    /// Never return a token with less than `margin` left (default 30 s). Clamped to at most the refresh window.
    #[must_use]
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.config.safety_margin = margin;
        self
    }

    /// After a failed refresh, wait `initial` before the next attempt, doubling up to `max` (default 5 s → 60 s).
    /// Only applies while the current token is still usable; without one, every call tries (one at a time).
    #[must_use]
    pub fn refresh_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_initial = initial;
        self.config.retry_max = max.max(initial);
        self
    }

    /// At most `n` audiences are cached (default 1,024); the least useful are evicted beyond that.
    #[must_use]
    pub fn max_audiences(mut self, n: u64) -> Self {
        self.max_audiences = n.max(1);
        self
    }

    /// The clock every expiry decision asks (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> CachedSource<S> {
        let mut config = self.config;
        config.safety_margin = config.safety_margin.min(config.refresh_window);
        let slots = moka::sync::Cache::builder()
            .max_capacity(self.max_audiences)
            // Slots nobody asked for in a while hold only expired tokens; let them go.
            .time_to_idle(Duration::from_secs(2 * 3600))
            .build();
        CachedSource {
            inner: Arc::new(Inner {
                source: self.source,
                slots,
                clock: self.clock,
                config,
            }),
        }
    }
}

/// One audience's state.
#[derive(Default)]
struct Slot {
    /// The latest token, readable without locking.
    current: ArcSwapOption<Current>,
    /// Held by whoever is minting; waiters queue on it (single flight).
    gate: tokio::sync::Mutex<()>,
    sched: Mutex<Sched>,
}

struct Current {
    token: IdToken,
    expires_at: SystemTime,
}

#[derive(Default)]
struct Sched {
    /// Completed mint attempts.
    attempts: u64,
    /// The error of the last attempt, if it failed: shared with everyone who waited for it.
    last_error: Option<SourceError>,
    /// No refresh of a still-usable token before this.
    not_before: Option<SystemTime>,
    /// Consecutive failed refreshes.
    failures: u32,
}

enum State {
    Fresh,
    Due,
    Unusable,
}

impl Config {
    fn state(&self, current: &Current, now: SystemTime) -> State {
        if now + self.refresh_window < current.expires_at {
            State::Fresh
        } else if now + self.safety_margin < current.expires_at {
            State::Due
        } else {
            State::Unusable
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.retry_initial
            .saturating_mul(factor)
            .min(self.retry_max)
    }
}

fn lock(m: &Mutex<Sched>) -> std::sync::MutexGuard<'_, Sched> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S> CachedSource<S> {
    /// Caches `source` with the default settings.
    pub fn new(source: S) -> Self {
        Self::builder(source).build()
    }

    /// A builder, to change the refresh window, safety margin, capacity or clock.
    pub fn builder(source: S) -> CachedSourceBuilder<S> {
        CachedSourceBuilder {
            source,
            clock: Arc::new(SystemClock),
            config: Config {
                refresh_window: DEFAULT_REFRESH_WINDOW,
                safety_margin: DEFAULT_SAFETY_MARGIN,
                retry_initial: Duration::from_secs(5),
                retry_max: Duration::from_secs(60),
            },
            max_audiences: DEFAULT_MAX_AUDIENCES,
        }
    }

    /// The wrapped source.
    pub fn get_ref(&self) -> &S {
        &self.inner.source
    }

    /// Forgets every cached token (e.g. after the credentials were rotated).
    pub fn clear(&self) {
        self.inner.slots.invalidate_all();
    }
}

impl<S: IdTokenSource> CachedSource<S> {
    fn slot(&self, audience: &str) -> Arc<Slot> {
        match self.inner.slots.get(audience) {
            Some(slot) => slot,
            None => self
                .inner
                .slots
                .get_with(Arc::from(audience), || Arc::new(Slot::default())),
        }
    }

    async fn get(&self, audience: &str) -> Result<IdToken, SourceError> {
        let slot = self.slot(audience);
        let config = &self.inner.config;
        let now = self.inner.clock.now();
        let current = slot.current.load_full();
        if let Some(current) = &current {
            match config.state(current, now) {
                State::Fresh => return Ok(current.token.clone()),
                State::Due => return Ok(self.refresh_due(&slot, audience, current, now).await),
                State::Unusable => {}
            }
        }
        self.mint_blocking(&slot, audience).await
    }

    /// The token is due but usable: one caller refreshes, everyone else (and the refresher, on failure) gets the
    /// current token.
    async fn refresh_due(
        &self,
        slot: &Slot,
        audience: &str,
        current: &Arc<Current>,
        now: SystemTime,
    ) -> IdToken {
        if lock(&slot.sched).not_before.is_some_and(|t| now < t) {
            return current.token.clone();
        }
        let Ok(_gate) = slot.gate.try_lock() else {
            // Someone is minting right now.
            return current.token.clone();
        };
        // Someone may have refreshed between our read and taking the gate.
        if let Some(latest) = slot.current.load_full()
            && !Arc::ptr_eq(&latest, current)
            && matches!(
                self.inner.config.state(&latest, self.inner.clock.now()),
                State::Fresh
            )
        {
            return latest.token.clone();
        }
        match self.mint_and_store(slot, audience).await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(
                    target: "idgate::client",
                    audience,
                    %error,
                    "ID token refresh failed; using the current token until it is due to expire"
                );
                current.token.clone()
            }
        }
    }

    /// No usable token: wait for the gate (single flight) and mint, unless someone else finished an attempt while
    /// we waited, in which case share its outcome.
    async fn mint_blocking(&self, slot: &Slot, audience: &str) -> Result<IdToken, SourceError> {
        let seen = lock(&slot.sched).attempts;
        let _gate = slot.gate.lock().await;
        if let Some(latest) = slot.current.load_full()
            && !matches!(
                self.inner.config.state(&latest, self.inner.clock.now()),
                State::Unusable
            )
        {
            return Ok(latest.token.clone());
        }
        {
            let sched = lock(&slot.sched);
            if sched.attempts != seen
                && let Some(error) = &sched.last_error
            {
                return Err(error.clone());
            }
        }
        self.mint_and_store(slot, audience).await
    }

    /// Mints (the gate is held), records the outcome, and stores a usable token.
    async fn mint_and_store(&self, slot: &Slot, audience: &str) -> Result<IdToken, SourceError> {
        let result = self.mint(audience).await;
        let config = &self.inner.config;
        let now = self.inner.clock.now();
        let mut sched = lock(&slot.sched);
        sched.attempts += 1;
        match result {
            Ok(current) => {
                let token = current.token.clone();
                if matches!(config.state(&current, now), State::Fresh) {
                    sched.failures = 0;
                    sched.not_before = None;
                } else {
                    // Already due on arrival (the endpoint serves a cached token, or clocks disagree): do not ask
                    // again on the very next call.
                    sched.failures = sched.failures.saturating_add(1);
                    sched.not_before = Some(now + config.backoff(sched.failures));
                }
                sched.last_error = None;
                slot.current.store(Some(Arc::new(current)));
                Ok(token)
            }
            Err(error) => {
                sched.failures = sched.failures.saturating_add(1);
                sched.not_before = Some(now + config.backoff(sched.failures));
                sched.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    async fn mint(&self, audience: &str) -> Result<Current, SourceError> {
        let token = self.inner.source.id_token(audience).await?;
        let expires_at = token
            .unverified_expiry()
            .map_err(|_| SourceError::InvalidResponse {
                endpoint: crate::error::Endpoint::CustomSource,
                problem: ResponseProblem::NoExpiry,
            })?;
        let now = self.inner.clock.now();
        if now + self.inner.config.safety_margin >= expires_at {
            return Err(SourceError::Expired { expires_at, now });
        }
        tracing::debug!(target: "idgate::client", audience, "minted an ID token");
        Ok(Current { token, expires_at })
    }

    fn peek_token(&self, audience: &str) -> Option<IdToken> {
        let slot = self.inner.slots.get(audience)?;
        let current = slot.current.load();
        let current = current.as_ref()?;
        match self.inner.config.state(current, self.inner.clock.now()) {
            State::Fresh => Some(current.token.clone()),
            State::Due | State::Unusable => None,
        }
    }
}

impl<S: IdTokenSource> IdTokenSource for CachedSource<S> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.get(audience))
    }

    fn peek(&self, audience: &str) -> Option<IdToken> {
        self.peek_token(audience)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    use base64::Engine as _;
    use idgate_core::clock::ManualClock;

    use super::*;
    use crate::error::Endpoint;

    const T0: u64 = 1_700_000_000;

    fn token_expiring_at(exp: u64, serial: usize) -> IdToken {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        IdToken::new(format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"exp":{exp},"n":{serial}}}"#))
        ))
        .unwrap()
    }

    /// Mints tokens living `lifetime` from the clock's now; counts mints; fails while `failing` is set.
    #[derive(Debug)]
    struct Fake {
        clock: ManualClock,
        lifetime: Duration,
        mints: AtomicUsize,
        failing: AtomicU32,
    }

    impl Fake {
        fn new(clock: &ManualClock) -> Self {
            Self {
                clock: clock.clone(),
                lifetime: Duration::from_secs(3600),
                mints: AtomicUsize::new(0),
                failing: AtomicU32::new(0),
            }
        }
    }

    impl IdTokenSource for Fake {
        fn id_token<'a>(
            &'a self,
            _audience: &'a str,
        ) -> BoxFuture<'a, Result<IdToken, SourceError>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                let n = self.mints.fetch_add(1, Ordering::SeqCst);
                if self.failing.load(Ordering::SeqCst) > 0 {
                    return Err(SourceError::Status {
                        endpoint: Endpoint::MetadataServer,
                        status: http::StatusCode::SERVICE_UNAVAILABLE,
                        attempts: 1,
                        detail: None,
                    });
                }
                let exp = self.clock.unix_seconds() as u64 + self.lifetime.as_secs();
                Ok(token_expiring_at(exp, n))
            })
        }
    }

    fn cached(clock: &ManualClock) -> CachedSource<Arc<Fake>> {
        let fake = Arc::new(Fake::new(clock));
        CachedSource::builder(fake)
            .clock(Arc::new(clock.clone()))
            .build()
    }

    fn mints(c: &CachedSource<Arc<Fake>>) -> usize {
        c.get_ref().mints.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn reuses_until_the_refresh_window() {
        let clock = ManualClock::at_unix(T0);
        let c = cached(&clock);
        let first = c.id_token("a").await.unwrap();
        assert_eq!(c.id_token("a").await.unwrap(), first);
        assert_eq!(c.peek("a"), Some(first.clone()));
        assert_eq!(mints(&c), 1);
        // Another audience is another token.
        assert_ne!(c.id_token("b").await.unwrap(), first);
        assert_eq!(mints(&c), 2);
        // Just before the window: still cached.
        clock.advance(Duration::from_secs(3600) - DEFAULT_REFRESH_WINDOW - Duration::from_secs(1));
        assert_eq!(c.id_token("a").await.unwrap(), first);
        assert_eq!(mints(&c), 2);
        // Inside the window: refreshed once.
        clock.advance(Duration::from_secs(2));
        assert!(c.peek("a").is_none());
        let second = c.id_token("a").await.unwrap();
        assert_ne!(second, first);
        assert_eq!(mints(&c), 3);
        assert_eq!(c.id_token("a").await.unwrap(), second);
        assert_eq!(mints(&c), 3);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_the_valid_token_and_backs_off() {
        let clock = ManualClock::at_unix(T0);
        let c = cached(&clock);
        let first = c.id_token("a").await.unwrap();
        c.get_ref().failing.store(1, Ordering::SeqCst);
        clock.advance(Duration::from_secs(3600 - 200)); // due, still usable
        assert_eq!(c.id_token("a").await.unwrap(), first);
        assert_eq!(mints(&c), 2);
        // Backing off: no new attempt on the next calls.
        assert_eq!(c.id_token("a").await.unwrap(), first);
        assert_eq!(mints(&c), 2);
        clock.advance(Duration::from_secs(6));
        assert_eq!(c.id_token("a").await.unwrap(), first);
        assert_eq!(mints(&c), 3);
        // Past the safety margin the token is never returned: the error surfaces.
        clock.advance(Duration::from_secs(200 - 6 - 30));
        let err = c.id_token("a").await.unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        // Recovery.
        c.get_ref().failing.store(0, Ordering::SeqCst);
        let fresh = c.id_token("a").await.unwrap();
        assert_ne!(fresh, first);
    }

    #[tokio::test]
    async fn never_returns_an_expired_token() {
        let clock = ManualClock::at_unix(T0);
        let c = cached(&clock);
        let first = c.id_token("a").await.unwrap();
        clock.advance(Duration::from_secs(3600 - 29));
        assert!(c.peek("a").is_none());
        let next = c.id_token("a").await.unwrap();
        assert_ne!(next, first);
        let exp = next.unverified_expiry().unwrap();
        assert!(exp > clock.now() + DEFAULT_SAFETY_MARGIN);
    }

    #[tokio::test]
    async fn a_token_already_due_does_not_cause_a_storm() {
        let clock = ManualClock::at_unix(T0);
        let mut fake = Fake::new(&clock);
        // The endpoint hands out tokens with only 3 minutes left (as a metadata server serving its cache would if
        // our window were too wide).
        fake.lifetime = Duration::from_secs(180);
        let c = CachedSource::builder(Arc::new(fake))
            .clock(Arc::new(clock.clone()))
            .build();
        c.id_token("a").await.unwrap();
        for _ in 0..100 {
            c.id_token("a").await.unwrap();
        }
        assert_eq!(mints(&c), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn single_flight_for_cold_audiences_and_shared_errors() {
        let clock = ManualClock::at_unix(T0);
        let c = cached(&clock);
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.id_token("cold").await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(mints(&c), 1);

        c.get_ref().failing.store(1, Ordering::SeqCst);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.id_token("down").await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        // Waiters share the outcome of the attempt they waited for; far fewer than 200 attempts.
        assert!(mints(&c) - 1 < 200, "{} mints", mints(&c) - 1);
    }

    #[tokio::test]
    async fn window_is_clamped_below_the_metadata_cache() {
        let clock = ManualClock::at_unix(T0);
        let c = CachedSource::builder(Fake::new(&clock))
            .refresh_window(Duration::from_secs(600))
            .build();
        assert_eq!(c.inner.config.refresh_window, MAX_REFRESH_WINDOW);
        let c = CachedSource::builder(Fake::new(&clock))
            .refresh_window(Duration::from_secs(10))
            .safety_margin(Duration::from_secs(60))
            .build();
        assert_eq!(c.inner.config.safety_margin, Duration::from_secs(10));
    }

    #[tokio::test]
    async fn tokens_without_exp_are_rejected() {
        #[derive(Debug)]
        struct NoExp;
        impl IdTokenSource for NoExp {
            fn id_token<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
                Box::pin(async { Ok(IdToken::new("eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap()) })
            }
        }
        let err = CachedSource::new(NoExp).id_token("a").await.unwrap_err();
        assert!(err.is_invalid_response(), "{err}");
    }
}
