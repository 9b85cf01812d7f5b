//! The part of verification shared by OIDC tokens and IAP assertions: structure, header rules, key lookup,
//! signature, the memo of verified tokens, and the time checks.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::claim_str::WireStr;
use super::error::{BuildError, VerifyError};
use super::known_headers::KnownHeaders;
use super::memo_key::{MemoKey, MemoKeyer};
use super::oidc::{DEFAULT_LEEWAY, DEFAULT_MEMO_CAPACITY};
use super::recent;
use crate::clock::{self, Clock};
use crate::keys::{
    HttpKeySource, KeyAlgorithm, KeyCache, KeyCacheConfig, KeyDocumentFormat, KeyLookupError,
    VerifyingKey, truncate,
};
use crate::metrics::VerifyMetrics;
use crate::token::{JwtParts, Malformed, SIGNATURE_REMOVED_BY_GOOGLE};

/// A header member whose mere presence (even as `null`) rejects the token.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Self(true))
    }
}

/// The JOSE header, its strings borrowed from the decoded bytes (copied only when JSON escapes them).
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<WireStr<'a>>,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
    #[serde(default)]
    crit: Present,
}

/// The claims every Google token has; implemented by the OIDC and IAP claim types. `Clone` so that each thread
/// keeps its own copy of a memoized token's claims (see [`Engine::verify`]).
pub(crate) trait TimedClaims: Clone + Send + Sync + 'static {
    /// The claims as parsed from the payload, before the token kind's check turns them into `Self`: a form that
    /// borrows from the decoded bytes, so that what the check refuses or drops is never copied; or `Self`.
    type Wire<'de>: Deserialize<'de>;

    fn exp(&self) -> i64;
    fn iat(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
    /// The key whose signature check these claims passed; `None` for claims never signature-checked (Cloud Run's
    /// stripped tokens, which are never memoized).
    fn signed_by(&self) -> Option<&Arc<VerifyingKey>>;
    fn set_signed_by(&mut self, key: Arc<VerifyingKey>);
}

/// Time rules: `exp` and `iat` required, `nbf` honoured, a leeway either way, and a maximum lifetime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeRules {
    pub(crate) leeway: i64,
    /// `exp - iat` may not exceed this (leeway already included).
    pub(crate) max_lifetime: i64,
}

impl TimeRules {
    pub(crate) fn check(&self, claims: &impl TimedClaims, now: i64) -> Result<(), VerifyError> {
        let (exp, iat) = (claims.exp(), claims.iat());
        // RFC 7519: the token must not be accepted on or after `exp`.
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired {
                expired_at: exp,
                now,
            });
        }
        if iat > now.saturating_add(self.leeway) {
            return Err(VerifyError::IssuedInFuture);
        }
        if claims
            .nbf()
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(VerifyError::NotYetValid);
        }
        if exp.saturating_sub(iat) > self.max_lifetime {
            return Err(VerifyError::LifetimeTooLong {
                max_secs: self.max_lifetime,
            });
        }
        Ok(())
    }
}

/// Verified claims, under their tokens' keys.
pub(crate) struct Memo<C> {
    verified: moka::sync::Cache<MemoKey, Arc<C>>,
    keys: MemoKeyer,
}

pub(crate) struct Engine<C> {
    pub(crate) keys: KeyCache,
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) times: TimeRules,
    pub(crate) memo: Option<Memo<C>>,
    /// The header segments of tokens this engine accepted, so that a token with a known header skips decoding it.
    pub(crate) known_headers: KnownHeaders,
    /// This engine's identity in the per-thread [`recent`](super::recent) cache.
    id: u64,
    metrics: VerifyMetrics,
}

impl<C: TimedClaims> Engine<C> {
    pub(crate) fn new(
        keys: KeyCache,
        algorithm: KeyAlgorithm,
        clock: Arc<dyn Clock>,
        times: TimeRules,
        memo_capacity: u64,
        verifier: &'static str,
    ) -> Self {
        let memo_keys = if memo_capacity == 0 {
            None
        } else {
            let keyer = MemoKeyer::random();
            if keyer.is_none() {
                tracing::warn!(target: "idgate::verify", verifier, "could not draw the memo's secret key: verifying without a memo");
            }
            keyer
        };
        let memo = memo_keys.map(|keys| Memo {
            verified: moka::sync::Cache::builder()
                .max_capacity(memo_capacity)
                // Reclaim memory no later than the longest a valid token can live; every hit is re-checked
                // against the injectable clock anyway, so this bound is only about memory.
                .time_to_live(Duration::from_secs(
                    u64::try_from(times.max_lifetime + times.leeway).unwrap_or(3600),
                ))
                .build(),
            keys,
        });
        Self {
            keys,
            algorithm,
            clock,
            times,
            memo,
            known_headers: KnownHeaders::new(),
            id: recent::next_verifier_id(),
            metrics: VerifyMetrics::new(verifier),
        }
    }

    /// Verifies structure, header, key and signature; then `check` applies the token kind's own claim rules to the
    /// parsed claims and makes the claims kept (compacted for the memo, see
    /// [`ClaimStr`](super::claim_str::ClaimStr)); then the times.
    /// A token that passes is remembered, so the next presentation costs a hash and a lookup.
    pub(crate) async fn verify(
        &self,
        token: &str,
        check: impl Fn(C::Wire<'_>) -> Result<C, VerifyError>,
    ) -> Result<Arc<C>, VerifyError> {
        let token = token.trim_ascii();
        if token.len() > crate::token::MAX_TOKEN_BYTES {
            return Err(Malformed::TooLarge.into());
        }
        let started = self.metrics.start();
        // With the memo on, first the tokens this thread just verified: an exact byte comparison, no hashing.
        if self.memo.is_some()
            && let Some(claims) = recent::get::<C>(self.id, token)
        {
            let now = self.clock.now();
            if clock::unix_seconds(now) < claims.exp().saturating_add(self.times.leeway)
                && self.still_signed(&claims, now)
            {
                self.metrics.memo_hit(&started);
                return Ok(claims);
            }
        }
        let memo_key = self
            .memo
            .as_ref()
            .map(|memo| memo.keys.key(token.as_bytes()));
        // Then this thread's copy of the shared memo: no state shared with other threads.
        if let Some(memo_key) = &memo_key
            && let Some(claims) = recent::get_by_key::<C>(self.id, memo_key)
        {
            let now = self.clock.now();
            if clock::unix_seconds(now) < claims.exp().saturating_add(self.times.leeway)
                && self.still_signed(&claims, now)
            {
                self.metrics.memo_hit(&started);
                return Ok(claims);
            }
            // Expired or its key withdrawn: the shared memo decides below, exactly as without this copy.
            recent::forget_key(self.id, memo_key);
        }
        if let (Some(memo), Some(memo_key)) = (&self.memo, &memo_key) {
            match memo.verified.get(memo_key) {
                Some(claims) => {
                    // Everything but time and the key's publication was settled when the token was first verified,
                    // by this same verifier.
                    let at = self.clock.now();
                    let now = clock::unix_seconds(at);
                    if now >= claims.exp().saturating_add(self.times.leeway) {
                        memo.verified.invalidate(memo_key);
                        return Err(VerifyError::Expired {
                            expired_at: claims.exp(),
                            now,
                        });
                    }
                    if self.still_signed(&claims, at) {
                        // From here on this thread answers from a copy of its own. Sharing the memo's `Arc` would
                        // make every hit on every thread increment and decrement one reference count: one cache
                        // line all cores write, bounced between them on each request when many threads serve one
                        // caller's token. The copy costs a few small allocations, once per token per thread.
                        let claims = Arc::new(C::clone(&claims));
                        recent::put(self.id, token, claims.clone());
                        recent::put_by_key(self.id, *memo_key, claims.clone());
                        self.metrics.memo_hit(&started);
                        return Ok(claims);
                    }
                    // The signing key has been withdrawn (or no usable key set is held): forget the token and
                    // verify it afresh, which refetches the keys (rate-limited) and refuses it if its key is gone.
                    memo.verified.invalidate(memo_key);
                }
                None => self.metrics.memo_miss(memo.verified.entry_count()),
            }
        }
        self.metrics
            .full(self.verify_full(token, memo_key, check))
            .await
    }

    /// The whole verification, for a token the memo did not answer.
    async fn verify_full(
        &self,
        token: &str,
        memo_key: Option<MemoKey>,
        check: impl Fn(C::Wire<'_>) -> Result<C, VerifyError>,
    ) -> Result<Arc<C>, VerifyError> {
        // The alphabet is checked as each segment is decoded, all of them before any signature check.
        let parts = JwtParts::segments(token)?;
        // A header segment a token already verified with needs no decoding: its rules held for the same bytes.
        let (lookup, header_known) = match self
            .known_headers
            .with_kid(parts.header, |kid| self.held_key(&parts, Some(kid)))
        {
            Some(lookup) => (lookup?, true),
            None => (
                self.checked_header(&parts, |kid| self.held_key(&parts, kid))??,
                false,
            ),
        };
        let (key, now) = match lookup {
            KeyLookup::Held(key, now) => (key, now),
            // Not in the fresh set: the cache's full path (a fetch, a refresh, or its refusal). The kid was copied
            // out so that no decoded bytes live across the await. Boxed: that future holds an HTTP request's state,
            // and inline it made every verification's future (memo hits included) about 900 bytes to move.
            KeyLookup::Fetch(kid) => {
                let key = Box::pin(self.keys.key(&kid)).await.map_err(|e| match e {
                    KeyLookupError::UnknownKeyId => VerifyError::UnknownKeyId,
                    KeyLookupError::Unavailable(u) => VerifyError::KeysUnavailable(u),
                })?;
                (key, self.clock.now())
            }
        };
        let claims = self.verify_signed(token, &parts, key, now, memo_key, check)?;
        if !header_known && let Some(key) = claims.signed_by() {
            self.known_headers.remember(parts.header, key.kid_shared());
        }
        Ok(claims)
    }

    /// The rules between the header and the key: the signature is not Cloud Run's marker, and a usable `kid`
    /// names a key; the key comes straight from the held set when it is fresh and holds it, with the time read.
    fn held_key(&self, parts: &JwtParts<'_>, kid: Option<&str>) -> Result<KeyLookup, VerifyError> {
        if parts.signature == SIGNATURE_REMOVED_BY_GOOGLE {
            return Err(VerifyError::SignatureRemoved);
        }
        let kid = kid.ok_or(VerifyError::MissingKeyId)?;
        if kid.is_empty() || kid.len() > 256 {
            return Err(VerifyError::UnknownKeyId);
        }
        let now = self.clock.now();
        Ok(match self.keys.fresh_key(kid, now) {
            Some(key) => KeyLookup::Held(key, now),
            None => KeyLookup::Fetch(kid.into()),
        })
    }

    /// Algorithm, signature, claims and times, once the key is known; `now` was read at the key lookup. Not async,
    /// so the decoding buffers on its stack never become part of the verification's future. The claims segment is
    /// decoded before the signature is checked, so a segment that is not base64url is refused without one.
    fn verify_signed(
        &self,
        token: &str,
        parts: &JwtParts<'_>,
        key: Arc<VerifyingKey>,
        now: SystemTime,
        memo_key: Option<MemoKey>,
        check: impl Fn(C::Wire<'_>) -> Result<C, VerifyError>,
    ) -> Result<Arc<C>, VerifyError> {
        if key.algorithm() != self.algorithm {
            return Err(VerifyError::UnsupportedAlgorithm {
                expected: self.algorithm,
            });
        }
        let mut claims = parts.with_payload(|payload| {
            let signed = parts.with_signature(|signature| {
                key.verify(parts.signing_input.as_bytes(), signature)
            })?;
            if !signed {
                return Err(VerifyError::InvalidSignature);
            }
            check(serde_json::from_slice(payload).map_err(|_| Malformed::BadClaims)?)
        })??;
        self.times.check(&claims, clock::unix_seconds(now))?;
        claims.set_signed_by(key);
        let claims = Arc::new(claims);
        if let (Some(memo), Some(memo_key)) = (&self.memo, memo_key) {
            memo.verified.insert(memo_key, claims.clone());
            recent::put(self.id, token, claims.clone());
            recent::put_by_key(self.id, memo_key, claims.clone());
        }
        Ok(claims)
    }
}

/// Where a token's key comes from: the held, fresh set (with the time it was read at), or the cache's full path.
enum KeyLookup {
    Held(Arc<VerifyingKey>, SystemTime),
    Fetch(Box<str>),
}

impl<C: TimedClaims> Engine<C> {
    /// Whether the key that verified `claims` is still published (fresh, or stale within the bound), so that a
    /// remembered token stops being accepted once Google withdraws its key. A pointer comparison on the hot path.
    fn still_signed(&self, claims: &C, now: SystemTime) -> bool {
        claims
            .signed_by()
            .is_some_and(|key| self.keys.still_publishes(key, now))
    }

    /// The header rules every path applies: no member that lets the token pick its key, and exactly our algorithm.
    /// Then `then` is given the header's `kid`, borrowed from the header decoded on the stack.
    fn checked_header<R>(
        &self,
        parts: &JwtParts<'_>,
        then: impl FnOnce(Option<&str>) -> R,
    ) -> Result<R, VerifyError> {
        parts
            .with_header(|bytes| {
                let header: Header<'_> =
                    serde_json::from_slice(bytes).map_err(|_| Malformed::BadHeader)?;
                for (present, name) in [
                    (header.jwk.0, "jwk"),
                    (header.jku.0, "jku"),
                    (header.x5u.0, "x5u"),
                    (header.x5c.0, "x5c"),
                    (header.crit.0, "crit"),
                ] {
                    if present {
                        return Err(VerifyError::ForbiddenHeader(name));
                    }
                }
                if header.alg != self.algorithm.name() {
                    return Err(VerifyError::UnsupportedAlgorithm {
                        expected: self.algorithm,
                    });
                }
                Ok(then(header.kid.as_deref()))
            })
            .map_err(VerifyError::from)?
    }

    /// Every rule but the signature, for a token whose signature segment is Cloud Run's
    /// `SIGNATURE_REMOVED_BY_GOOGLE` (the caller has decided to trust Cloud Run's invoker check). Never memoized:
    /// a memo entry would let the same token through [`Engine::verify`] on a verifier shared with a layer that does
    /// not trust Cloud Run.
    pub(crate) fn verify_signature_removed(
        &self,
        token: &str,
        check: impl Fn(C::Wire<'_>) -> Result<C, VerifyError>,
    ) -> Result<Arc<C>, VerifyError> {
        // `segments` refuses oversized tokens itself; nothing is hashed on this path, so no earlier check is needed.
        let parts = JwtParts::segments(token.trim_ascii())?;
        self.checked_header(&parts, |_| ())?;
        if parts.signature != SIGNATURE_REMOVED_BY_GOOGLE {
            // A token that still has its signature must be verified, not trusted.
            return Err(VerifyError::InvalidSignature);
        }
        let claims = parts.with_payload(|payload| {
            check(serde_json::from_slice(payload).map_err(|_| Malformed::BadClaims)?)
        })??;
        self.times.check(&claims, self.clock.unix_seconds())?;
        Ok(Arc::new(claims))
    }
}

/// Where a verifier's keys come from, resolved at `build()` so the clock set on the builder applies.
#[derive(Debug)]
pub(crate) enum KeysChoice {
    Cache(KeyCache),
    Url(url::Url, KeyDocumentFormat),
}

impl KeysChoice {
    pub(crate) fn resolve(
        choice: Option<Self>,
        default: (url::Url, KeyDocumentFormat),
        clock: &Arc<dyn Clock>,
    ) -> KeyCache {
        let (url, format) = match choice {
            Some(Self::Cache(cache)) => return cache,
            Some(Self::Url(url, format)) => (url, format),
            None => default,
        };
        KeyCache::with_config(
            HttpKeySource::new(url, format),
            KeyCacheConfig::default(),
            clock.clone(),
        )
    }
}

/// The options both verifier builders share, and how they become an [`Engine`].
#[derive(Debug, Default)]
pub(crate) struct EngineOptions {
    pub(crate) leeway: Option<Duration>,
    pub(crate) keys: Option<KeysChoice>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) memo_capacity: Option<u64>,
}

impl EngineOptions {
    /// An engine bound to `algorithm`, reading `default_keys` unless told otherwise; `max_lifetime` gives the token
    /// kind's largest `exp - iat` for a leeway.
    pub(crate) fn build<C: TimedClaims>(
        self,
        verifier: &'static str,
        algorithm: KeyAlgorithm,
        default_keys: (url::Url, KeyDocumentFormat),
        max_lifetime: impl Fn(i64) -> i64,
    ) -> Result<Engine<C>, BuildError> {
        let leeway = checked_leeway(self.leeway)?;
        let clock = self.clock.unwrap_or_else(clock::system);
        let keys = KeysChoice::resolve(self.keys, default_keys, &clock);
        if keys.algorithm() != algorithm {
            return Err(BuildError::WrongKeyAlgorithm {
                expected: algorithm,
                got: keys.algorithm(),
            });
        }
        let times = TimeRules {
            leeway,
            max_lifetime: max_lifetime(leeway),
        };
        Ok(Engine::new(
            keys,
            algorithm,
            clock,
            times,
            self.memo_capacity.unwrap_or(DEFAULT_MEMO_CAPACITY),
            verifier,
        ))
    }
}

pub(crate) fn checked_leeway(leeway: Option<Duration>) -> Result<i64, BuildError> {
    let leeway = leeway.unwrap_or(DEFAULT_LEEWAY).as_secs();
    if leeway > 300 {
        return Err(BuildError::LeewayTooLarge(leeway));
    }
    Ok(i64::try_from(leeway).unwrap_or(300))
}

/// Checks `got` against an exact set; the error carries a truncated copy of what the token said.
pub(crate) fn wrong_issuer(got: &str) -> VerifyError {
    VerifyError::WrongIssuer { got: truncate(got) }
}

pub(crate) fn wrong_audience(got: &str) -> VerifyError {
    VerifyError::WrongAudience { got: truncate(got) }
}
