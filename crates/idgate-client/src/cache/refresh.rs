//! Getting a token out of the cache: fresh, due (one caller refreshes), or unusable (everyone waits for one mint).

use std::sync::Arc;
use std::time::SystemTime;

use idgate_core::ErrorChain;
use idgate_core::token::IdToken;

use super::CachedSource;
use super::slot::{Current, Slot, State, lock};
use crate::error::{ResponseProblem, SourceError};
use crate::source::IdTokenSource;

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

    pub(super) async fn get(&self, audience: &str) -> Result<IdToken, SourceError> {
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
                    error = %ErrorChain(&error),
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

    pub(super) fn peek_token(&self, audience: &str) -> Option<IdToken> {
        let slot = self.inner.slots.get(audience)?;
        let current = slot.current.load();
        let current = current.as_ref()?;
        match self.inner.config.state(current, self.inner.clock.now()) {
            State::Fresh => Some(current.token.clone()),
            State::Due | State::Unusable => None,
        }
    }
}
