//! One key's state (an audience's ID token, a scope set's access token): the current token, the single-flight gate,
//! and the refresh schedule; and how fresh a token is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;

use super::Config;
use crate::error::SourceError;

/// One key's state.
pub(super) struct Slot<T> {
    /// The latest token, readable without locking.
    pub(super) current: ArcSwapOption<Current<T>>,
    /// Held by whoever is minting; waiters queue on it (single flight).
    pub(super) gate: tokio::sync::Mutex<()>,
    pub(super) sched: Mutex<Sched>,
    /// When the slot was last asked for (Unix seconds, by the cache's clock), so that the map can let an idle or
    /// the least recently used key go. Written at most once a second, so readers on many cores do not contend.
    last_used: AtomicU64,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            gate: tokio::sync::Mutex::new(()),
            sched: Mutex::new(Sched::default()),
            last_used: AtomicU64::new(0),
        }
    }
}

impl<T> Slot<T> {
    /// Records a use at `now`. Stored whenever the second differs, not only when it is later: after the clock was
    /// set back, slots used before would otherwise keep their future seconds, never look idle, and always look newer
    /// than those used since.
    pub(super) fn touch(&self, now: SystemTime) {
        let now = unix_seconds(now);
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// When the slot was last used, in Unix seconds.
    pub(super) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Whether the slot has not been used for `idle` at `now`.
    pub(super) fn idle_for(&self, idle: Duration, now: SystemTime) -> bool {
        unix_seconds(now).saturating_sub(self.last_used()) >= idle.as_secs()
    }
}

/// Whole seconds since the Unix epoch (0 before it).
fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(super) struct Current<T> {
    pub(super) token: T,
    pub(super) expires_at: SystemTime,
}

#[derive(Default)]
pub(super) struct Sched {
    /// Completed mint attempts.
    pub(super) attempts: u64,
    /// The error of the last attempt, if it failed: shared with everyone who waited for it.
    pub(super) last_error: Option<SourceError>,
    /// No refresh of a still-usable token before this.
    pub(super) not_before: Option<SystemTime>,
    /// Consecutive failed refreshes.
    pub(super) failures: u32,
}

pub(super) enum State {
    Fresh,
    Due,
    Unusable,
}

impl Config {
    pub(super) fn state<T>(&self, current: &Current<T>, now: SystemTime) -> State {
        if now + self.refresh_window < current.expires_at {
            State::Fresh
        } else if now + self.safety_margin < current.expires_at {
            State::Due
        } else {
            State::Unusable
        }
    }

    pub(super) fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.retry_initial
            .saturating_mul(factor)
            .min(self.retry_max)
    }
}

pub(super) fn lock(m: &Mutex<Sched>) -> std::sync::MutexGuard<'_, Sched> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
