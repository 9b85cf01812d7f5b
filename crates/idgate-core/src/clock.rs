//! Time, injectable.
//!
//! Every expiry decision in idgate (token `exp`/`iat`/`nbf`, key-set freshness, the stale-while-error bound, the
//! verified-token memo) asks a [`Clock`] for the time, never the system directly, so tests can move time forward
//! without sleeping. Production code uses [`SystemClock`]; tests use [`ManualClock`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
///
/// Modelled on rustls' `TimeProvider`: small, object safe, shared as `Arc<dyn Clock>`.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch (the unit of JWT `exp`, `iat` and `nbf`).
    ///
    /// Times before the epoch read as 0.
    fn unix_seconds(&self) -> i64 {
        unix_seconds(self.now())
    }
}

/// Whole seconds since the Unix epoch; 0 for earlier times, saturating at `i64::MAX`.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Cheap to clone; clones share the same time.
///
/// ```
/// use idgate_core::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::at_unix(1_700_000_000);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.unix_seconds(), 1_700_000_090);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// A clock stopped at the given number of seconds after the Unix epoch.
    pub fn at_unix(seconds: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `to` (which may be earlier than its current time).
    pub fn set(&self, to: SystemTime) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The default clock as a shareable trait object.
pub(crate) fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
