//! Getting a token out of the cache: fresh, due (one caller refreshes), or unusable (everyone waits for one mint).
//!
//! The machinery is generic over the token (an audience's [`IdToken`], a scope set's [`AccessToken`]): a
//! [`Flight`] runs it on one [`Slot`] with a `mint` function that returns the token and its expiry.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use idgate_core::ErrorChain;
use idgate_core::clock::Clock;
use idgate_core::token::IdToken;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::slot::{Current, Slot, State, lock};
use super::{CachedSource, Config};
use crate::error::{Endpoint, ResponseProblem, SourceError};
use crate::metrics::{Lookup, TokenMetrics};
use crate::scopes::Scopes;
use crate::source::{AccessToken, AccessTokenSource, IdTokenSource};

/// The cache rules applied to one slot: refresh-ahead, single flight, backoff, stale-while-error.
pub(super) struct Flight<'a> {
    pub(super) config: &'a Config,
    pub(super) clock: &'a dyn Clock,
    /// What the tokens are (`ID token`, `access token`), for the log.
    pub(super) kind: &'static str,
    /// `id` or `access`, and the source's name: the `idgate.token.mint` span's fields.
    pub(super) token: &'static str,
    pub(super) source: &'static str,
    pub(super) metrics: &'a TokenMetrics,
}

impl Flight<'_> {
    pub(super) async fn get<T, F, Fut>(
        &self,
        slot: &Slot<T>,
        key: &(dyn fmt::Display + Sync),
        mint: F,
    ) -> Result<T, SourceError>
    where
        T: Clone,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Current<T>, SourceError>>,
    {
        // The use was recorded when the slot was looked up (`Slots::get_or_add`, the only way here).
        let now = self.clock.now();
        let current = slot.current.load_full();
        if let Some(current) = &current {
            match self.config.state(current, now) {
                State::Fresh => {
                    self.metrics.lookup(Lookup::Fresh);
                    return Ok(current.token.clone());
                }
                State::Due => {
                    self.metrics.lookup(Lookup::Due);
                    return Ok(self.refresh_due(slot, key, current, now, &mint).await);
                }
                State::Unusable => {}
            }
        }
        self.metrics.lookup(Lookup::Miss);
        self.mint_blocking(slot, &mint).await
    }

    /// The token is due but usable: one caller refreshes, everyone else (and the refresher, on failure) gets the
    /// current token.
    async fn refresh_due<T, F, Fut>(
        &self,
        slot: &Slot<T>,
        key: &(dyn fmt::Display + Sync),
        current: &Arc<Current<T>>,
        now: SystemTime,
        mint: &F,
    ) -> T
    where
        T: Clone,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Current<T>, SourceError>>,
    {
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
            && matches!(self.config.state(&latest, self.clock.now()), State::Fresh)
        {
            return latest.token.clone();
        }
        match self.mint_and_store(slot, mint, true).await {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(
                    target: "idgate::client",
                    key = %key,
                    error = %ErrorChain(&error),
                    "{} refresh failed; using the current token until it is due to expire",
                    self.kind
                );
                current.token.clone()
            }
        }
    }

    /// No usable token: wait for the gate (single flight) and mint, unless someone else finished an attempt while
    /// we waited, in which case share its outcome.
    async fn mint_blocking<T, F, Fut>(&self, slot: &Slot<T>, mint: &F) -> Result<T, SourceError>
    where
        T: Clone,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Current<T>, SourceError>>,
    {
        let seen = lock(&slot.sched).attempts;
        let _gate = slot.gate.lock().await;
        if let Some(latest) = slot.current.load_full()
            && !matches!(
                self.config.state(&latest, self.clock.now()),
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
        self.mint_and_store(slot, mint, false).await
    }

    /// Mints (the gate is held), records the outcome, and stores a usable token. `ahead`: the token in hand is still
    /// usable (a refresh ahead of expiry).
    async fn mint_and_store<T, F, Fut>(
        &self,
        slot: &Slot<T>,
        mint: &F,
        ahead: bool,
    ) -> Result<T, SourceError>
    where
        T: Clone,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Current<T>, SourceError>>,
    {
        let minting = self.metrics.minting(ahead);
        let span = tracing::info_span!(
            target: "idgate::client",
            "idgate.token.mint",
            idgate.token.kind = self.token,
            idgate.token.source = self.source,
            idgate.token.ahead = ahead,
            idgate.outcome = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        let result = {
            let minted = if span.is_disabled() {
                mint().await
            } else {
                mint().instrument(span.clone()).await
            };
            let _entered = span.enter();
            self.checked(minted)
        };
        record_mint(&span, result.as_ref().err());
        self.metrics
            .minted(minting, result.as_ref().ok().map(|c| c.expires_at));
        let config = self.config;
        let now = self.clock.now();
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

    /// Refuses a token that expires within the safety margin.
    fn checked<T>(
        &self,
        minted: Result<Current<T>, SourceError>,
    ) -> Result<Current<T>, SourceError> {
        let current = minted?;
        let now = self.clock.now();
        if now + self.config.safety_margin >= current.expires_at {
            return Err(SourceError::Expired {
                expires_at: current.expires_at,
                now,
            });
        }
        tracing::debug!(target: "idgate::client", "minted an {}", self.kind);
        Ok(current)
    }

    /// The fresh token, if any, without I/O: what the adapters' warm path takes. Counted as a lookup only when it
    /// answers (otherwise the caller goes on to [`get`](Self::get), which counts).
    pub(super) fn peek<T: Clone>(&self, slot: &Slot<T>) -> Option<T> {
        let current = slot.current.load();
        let current = current.as_ref()?;
        let now = self.clock.now();
        match self.config.state(current, now) {
            State::Fresh => {
                slot.touch(now);
                self.metrics.lookup(Lookup::Fresh);
                Some(current.token.clone())
            }
            State::Due | State::Unusable => None,
        }
    }
}

/// The mint's outcome on its span: `ok`, or `error` with a coarse `error.type` (never the error's text, which may
/// name an audience or an account).
fn record_mint(span: &tracing::Span, error: Option<&SourceError>) {
    if span.is_disabled() {
        return;
    }
    let Some(error) = error else {
        span.record("idgate.outcome", "ok");
        return;
    };
    span.record("idgate.outcome", "error");
    span.record("otel.status_code", "ERROR");
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_transport() {
        "transport"
    } else if error.is_expired() {
        "expired"
    } else if error.is_invalid_response() {
        "invalid_response"
    } else if error.status().is_some() {
        "http_status"
    } else if error.is_config() || error.is_key_file() || error.is_no_credentials() {
        "credentials"
    } else {
        "_OTHER"
    };
    span.record("error.type", kind);
}

impl<S> CachedSource<S> {
    fn flight<'a>(
        &'a self,
        kind: &'static str,
        token: &'static str,
        source: &'static str,
        metrics: &'a TokenMetrics,
    ) -> Flight<'a> {
        Flight {
            config: &self.inner.config,
            clock: &*self.inner.clock,
            kind,
            token,
            source,
            metrics,
        }
    }
}

impl<S: IdTokenSource> CachedSource<S> {
    fn id_metrics(&self) -> &TokenMetrics {
        self.inner
            .id_metrics
            .get_or_init(|| TokenMetrics::new("id", self.inner.source.source_name()))
    }
}

impl<S: AccessTokenSource> CachedSource<S> {
    fn access_metrics(&self) -> &TokenMetrics {
        self.inner
            .access_metrics
            .get_or_init(|| TokenMetrics::new("access", self.inner.source.source_name()))
    }
}

impl<S: IdTokenSource> CachedSource<S> {
    fn slot(&self, audience: &str) -> Arc<Slot<IdToken>> {
        self.inner.slots.get_or_add(
            audience,
            |audience: &str| Arc::from(audience),
            self.inner.clock.now(),
        )
    }

    pub(super) async fn get(&self, audience: &str) -> Result<IdToken, SourceError> {
        let slot = self.slot(audience);
        let mint = || async {
            let token = self.inner.source.id_token(audience).await?;
            let expires_at =
                token
                    .unverified_expiry()
                    .map_err(|_| SourceError::InvalidResponse {
                        endpoint: Endpoint::CustomSource,
                        problem: ResponseProblem::NoExpiry,
                    })?;
            Ok(Current { token, expires_at })
        };
        self.flight(
            "ID token",
            "id",
            self.inner.source.source_name(),
            self.id_metrics(),
        )
        .get(&slot, &audience, mint)
        .await
    }

    pub(super) fn peek_token(&self, audience: &str) -> Option<IdToken> {
        let flight = self.flight(
            "ID token",
            "id",
            self.inner.source.source_name(),
            self.id_metrics(),
        );
        self.inner
            .slots
            .with(audience, |slot| flight.peek(slot))
            .flatten()
    }
}

impl<S: AccessTokenSource> CachedSource<S> {
    fn access_slot(&self, scopes: &Scopes) -> Arc<Slot<AccessToken>> {
        self.inner
            .access_slots
            .get_or_add(scopes, Scopes::clone, self.inner.clock.now())
    }

    pub(super) async fn get_access_token(
        &self,
        scopes: &Scopes,
    ) -> Result<AccessToken, SourceError> {
        let slot = self.access_slot(scopes);
        let mint = || async {
            let minted_at = self.inner.clock.now();
            let token = self.inner.source.access_token(scopes).await?;
            // A token without an expiry cannot be cached safely.
            let expires_at =
                token
                    .expiry_from(minted_at)
                    .ok_or_else(|| SourceError::InvalidResponse {
                        endpoint: Endpoint::CustomSource,
                        problem: ResponseProblem::MissingField("expires_in"),
                    })?;
            Ok(Current { token, expires_at })
        };
        self.flight(
            "access token",
            "access",
            self.inner.source.source_name(),
            self.access_metrics(),
        )
        .get(&slot, scopes, mint)
        .await
    }

    pub(super) fn peek_access(&self, scopes: &Scopes) -> Option<AccessToken> {
        let flight = self.flight(
            "access token",
            "access",
            self.inner.source.source_name(),
            self.access_metrics(),
        );
        self.inner
            .access_slots
            .with(scopes, |slot| flight.peek(slot))
            .flatten()
    }

    pub(super) fn invalidate_access(&self, scopes: &Scopes, token: &AccessToken) {
        let Some(slot) = self.inner.access_slots.get(scopes) else {
            return;
        };
        // Only the token that was refused: a fresher one minted meanwhile stays.
        let _ = slot.current.rcu(|current| match current {
            Some(c) if c.token.as_str() == token.as_str() => None,
            other => other.clone(),
        });
    }
}
