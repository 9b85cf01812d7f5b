//! Per-audience caching of ID tokens, and per-scope-set caching of access tokens, with refresh-ahead,
//! single-flight minting and no background tasks.
//!
//! [`CachedSource`] wraps any source: it is an [`IdTokenSource`] when the source is one (tokens keyed by audience)
//! and an [`AccessTokenSource`] when the source is one (tokens keyed by the normalised [`Scopes`], so `a,b` and
//! `b,a` share one entry; the source fixes the principal and the subject). Both follow the rules below.
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
//! - **Single flight.** Per audience (per scope set), at most one mint runs at a time; callers without a usable
//!   token wait for it and share its result, success or error (1,000 concurrent callers of a cold audience cause
//!   one mint).
//! - **A refused access token is dropped.** [`AccessTokenSource::invalidate_access_token`] (what the adapters call
//!   when an API answers 401) forgets that token, so the next call mints a new one.
//! - **No background task.** Refreshes run inside the call that finds them due; dropping a [`CachedSource`] leaves
//!   nothing behind.
//! - **Every expiry decision asks the [`Clock`]**, so tests move time without sleeping.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idgate_core::clock::{Clock, SystemClock};
use idgate_core::token::IdToken;

use crate::error::SourceError;
use crate::scopes::Scopes;
use crate::source::{AccessToken, AccessTokenSource, BoxFuture, IdTokenSource};

mod refresh;
mod slot;
mod slots;
#[cfg(test)]
mod tests;

use slots::Slots;

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
            .field("audiences", &self.inner.slots.len())
            .field("scope_sets", &self.inner.access_slots.len())
            .finish_non_exhaustive()
    }
}

struct Inner<S> {
    source: S,
    /// The metric handles of ID tokens and access tokens, taken at the first lookup of each.
    id_metrics: std::sync::OnceLock<crate::metrics::TokenMetrics>,
    access_metrics: std::sync::OnceLock<crate::metrics::TokenMetrics>,
    slots: Slots<Arc<str>, IdToken>,
    access_slots: Slots<Scopes, AccessToken>,
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

    /// At most `n` audiences are cached (default 1,024), and at most `n` scope sets. Adding one at the bound lets
    /// the least recently used go (one a caller is minting or using right now is kept while another can go); a key
    /// unused for two hours is let go when the next key is added. There is no background task: memory stays
    /// bounded by `n` slots.
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
        // Slots nobody asked for in a while hold only expired tokens: the map lets them go (`slots::IDLE`).
        let capacity = usize::try_from(self.max_audiences).unwrap_or(usize::MAX);
        let slots = Slots::new(capacity);
        let access_slots = Slots::new(capacity);
        CachedSource {
            inner: Arc::new(Inner {
                source: self.source,
                id_metrics: std::sync::OnceLock::new(),
                access_metrics: std::sync::OnceLock::new(),
                slots,
                access_slots,
                clock: self.clock,
                config,
            }),
        }
    }
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
        self.inner.slots.clear();
        self.inner.access_slots.clear();
    }
}

impl<S: IdTokenSource> IdTokenSource for CachedSource<S> {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.get(audience))
    }

    fn peek(&self, audience: &str) -> Option<IdToken> {
        self.peek_token(audience)
    }

    fn source_name(&self) -> &'static str {
        self.inner.source.source_name()
    }
}

/// Access tokens per normalised scope set, with the same refresh rules as ID tokens.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use idgate_client::{AccessToken, AccessTokenSource, BoxFuture, CachedSource, Scopes, SourceError};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
///
/// #[derive(Debug, Default)]
/// struct Counting(AtomicUsize);
///
/// impl AccessTokenSource for Counting {
///     fn access_token<'a>(&'a self, _: &'a Scopes) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
///         let n = self.0.fetch_add(1, Ordering::SeqCst);
///         Box::pin(async move { Ok(AccessToken::new(format!("ya29.{n}"), Some(Duration::from_secs(3600)))) })
///     }
/// }
///
/// let cached = CachedSource::new(Counting::default());
/// let ab = Scopes::new(["a", "b"]).unwrap();
/// let ba = Scopes::new(["b", "a"]).unwrap();
/// let first = cached.access_token(&ab).await.unwrap();
/// let second = cached.access_token(&ba).await.unwrap(); // same set: same entry, no mint
/// assert_eq!(first.as_str(), second.as_str());
/// assert_eq!(cached.get_ref().0.load(Ordering::SeqCst), 1);
///
/// cached.invalidate_access_token(&ab, &first); // an API answered 401 to it
/// assert_ne!(cached.access_token(&ab).await.unwrap().as_str(), first.as_str());
/// # }
/// ```
impl<S: AccessTokenSource> AccessTokenSource for CachedSource<S> {
    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(self.get_access_token(scopes))
    }

    fn peek_access_token(&self, scopes: &Scopes) -> Option<AccessToken> {
        self.peek_access(scopes)
    }

    fn invalidate_access_token(&self, scopes: &Scopes, token: &AccessToken) {
        self.invalidate_access(scopes, token);
    }

    fn quota_project(&self) -> Option<&str> {
        self.inner.source.quota_project()
    }

    fn source_name(&self) -> &'static str {
        self.inner.source.source_name()
    }
}
