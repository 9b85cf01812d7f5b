//! One key's state (an audience's ID token, a scope set's access token): the current token, the single-flight gate,
//! and the refresh schedule; and how fresh a token is.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

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
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            gate: tokio::sync::Mutex::new(()),
            sched: Mutex::new(Sched::default()),
        }
    }
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
