//! Unit tests of the cache: refresh window, backoff, single flight, clamping.

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
    fn id_token<'a>(&'a self, _audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
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

// Access tokens: the same machinery, keyed by the normalised scope set.

/// Mints access tokens living `lifetime`; counts mints; fails while `failing` is set. Implemented here, so the
/// counts are exact.
impl AccessTokenSource for Fake {
    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let n = self.mints.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) > 0 {
                return Err(SourceError::Status {
                    endpoint: Endpoint::OAuthToken,
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    attempts: 1,
                    detail: None,
                });
            }
            Ok(AccessToken::new(format!("ya29.{n}"), Some(self.lifetime))
                .with_scopes(scopes.clone()))
        })
    }
}

fn scopes(list: &[&str]) -> Scopes {
    Scopes::new(list).unwrap()
}

#[tokio::test]
async fn access_tokens_are_cached_per_scope_set_whatever_the_order() {
    let clock = ManualClock::at_unix(T0);
    let c = cached(&clock);
    let first = c.access_token(&scopes(&["a", "b"])).await.unwrap();
    let again = c.access_token(&scopes(&["b", "a", "b"])).await.unwrap();
    assert_eq!(first.as_str(), again.as_str());
    assert_eq!(mints(&c), 1);
    assert_eq!(
        c.peek_access_token(&scopes(&["b", "a"])).unwrap().as_str(),
        first.as_str()
    );
    // Another set is another token; ID tokens have their own entries.
    let other = c.access_token(&scopes(&["a"])).await.unwrap();
    assert_ne!(other.as_str(), first.as_str());
    assert_eq!(mints(&c), 2);
    c.id_token("a").await.unwrap();
    assert_eq!(mints(&c), 3);
    assert!(format!("{c:?}").contains("scope_sets"));
}

#[tokio::test]
async fn access_tokens_refresh_ahead_and_a_failed_refresh_keeps_the_valid_one() {
    let clock = ManualClock::at_unix(T0);
    let c = cached(&clock);
    let s = scopes(&["a"]);
    let first = c.access_token(&s).await.unwrap();
    // Just before the window: cached.
    clock.advance(Duration::from_secs(3600) - DEFAULT_REFRESH_WINDOW - Duration::from_secs(1));
    assert_eq!(c.access_token(&s).await.unwrap().as_str(), first.as_str());
    assert_eq!(mints(&c), 1);
    // Inside the window, with the source down: the still-valid token is served, and the next try backs off.
    clock.advance(Duration::from_secs(2));
    assert!(c.peek_access_token(&s).is_none());
    c.get_ref().failing.store(1, Ordering::SeqCst);
    assert_eq!(c.access_token(&s).await.unwrap().as_str(), first.as_str());
    assert_eq!(c.access_token(&s).await.unwrap().as_str(), first.as_str());
    assert_eq!(mints(&c), 2);
    // Back up: the next attempt after the backoff refreshes.
    c.get_ref().failing.store(0, Ordering::SeqCst);
    clock.advance(Duration::from_secs(6));
    let second = c.access_token(&s).await.unwrap();
    assert_ne!(second.as_str(), first.as_str());
    assert_eq!(mints(&c), 3);
    // Past the safety margin an old token is never returned.
    clock.advance(Duration::from_secs(3600 - 29));
    let third = c.access_token(&s).await.unwrap();
    assert_ne!(third.as_str(), second.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_access_token_calls_mint_once() {
    let clock = ManualClock::at_unix(T0);
    let c = cached(&clock);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let c = c.clone();
            // Half ask in one order, half in the other: one key.
            let s = if i % 2 == 0 {
                scopes(&["x", "y"])
            } else {
                scopes(&["y", "x"])
            };
            tokio::spawn(async move { c.access_token(&s).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(mints(&c), 1);
}

#[tokio::test]
async fn invalidating_drops_only_the_refused_token() {
    let clock = ManualClock::at_unix(T0);
    let c = cached(&clock);
    let s = scopes(&["a"]);
    let first = c.access_token(&s).await.unwrap();
    c.invalidate_access_token(&s, &first);
    assert!(c.peek_access_token(&s).is_none());
    let second = c.access_token(&s).await.unwrap();
    assert_ne!(second.as_str(), first.as_str());
    // A late 401 for the old token leaves the new one alone.
    c.invalidate_access_token(&s, &first);
    assert_eq!(c.peek_access_token(&s).unwrap().as_str(), second.as_str());
    // Unknown scope sets: nothing to do.
    c.invalidate_access_token(&scopes(&["zzz"]), &first);
}

#[tokio::test]
async fn access_tokens_without_expiry_or_expiring_are_refused() {
    #[derive(Debug)]
    struct Odd(Option<Duration>);
    impl AccessTokenSource for Odd {
        fn access_token<'a>(
            &'a self,
            _: &'a Scopes,
        ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
            Box::pin(std::future::ready(Ok(AccessToken::new("ya29.x", self.0))))
        }
    }
    let s = scopes(&["a"]);
    let err = CachedSource::new(Odd(None))
        .access_token(&s)
        .await
        .unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    let err = CachedSource::new(Odd(Some(Duration::from_secs(5))))
        .access_token(&s)
        .await
        .unwrap_err();
    assert!(err.is_expired(), "{err}");
}

/// A full cache lets the least recently used audience go when another is added; the others keep their tokens.
#[tokio::test]
async fn a_full_cache_drops_the_least_recently_used_audience() {
    let clock = ManualClock::at_unix(T0);
    let fake = Arc::new(Fake::new(&clock));
    let c = CachedSource::builder(Arc::clone(&fake))
        .clock(Arc::new(clock.clone()))
        .max_audiences(2)
        .build();
    let a = c.id_token("a").await.unwrap();
    clock.advance(Duration::from_secs(1));
    let b = c.id_token("b").await.unwrap();
    clock.advance(Duration::from_secs(1));
    // `a` is used again (the adapters' warm path), so `b` is now the least recently used.
    assert_eq!(c.peek("a"), Some(a.clone()));
    clock.advance(Duration::from_secs(1));
    c.id_token("c").await.unwrap();
    assert_eq!(mints(&c), 3);

    assert_eq!(c.peek("a"), Some(a), "the recently used audience stays");
    assert_eq!(c.peek("b"), None, "the least recently used one went");
    assert_ne!(c.id_token("b").await.unwrap(), b);
    assert_eq!(mints(&c), 4, "b was minted again");
    assert!(format!("{c:?}").contains("audiences: 2"), "{c:?}");
}

/// An audience nobody asked for in two hours is dropped when the next one is added, even below capacity.
#[tokio::test]
async fn an_idle_audience_is_dropped_when_the_next_is_added() {
    let clock = ManualClock::at_unix(T0);
    let mut fake = Fake::new(&clock);
    fake.lifetime = Duration::from_secs(24 * 3600);
    let c = CachedSource::builder(Arc::new(fake))
        .clock(Arc::new(clock.clone()))
        .build();
    let idle = c.id_token("idle").await.unwrap();
    let busy = c.id_token("busy").await.unwrap();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(c.peek("busy"), Some(busy.clone()));
    clock.advance(Duration::from_secs(3600));
    // Still held (nothing was added), though idle for two hours.
    assert!(format!("{c:?}").contains("audiences: 2"), "{c:?}");
    clock.advance(Duration::from_secs(1));
    c.id_token("new").await.unwrap();
    assert_eq!(c.peek("busy"), Some(busy), "used an hour ago: kept");
    assert!(format!("{c:?}").contains("audiences: 2"), "{c:?}");
    assert_ne!(
        c.id_token("idle").await.unwrap(),
        idle,
        "idle for 2 h: minted afresh"
    );
}

/// `clear` forgets every token, ID and access; the next call mints.
#[tokio::test]
async fn clear_forgets_every_token() {
    let clock = ManualClock::at_unix(T0);
    let c = cached(&clock);
    c.id_token("a").await.unwrap();
    let s = scopes(&["a"]);
    c.access_token(&s).await.unwrap();
    c.clear();
    assert_eq!(c.peek("a"), None);
    assert!(c.peek_access_token(&s).is_none());
    c.id_token("a").await.unwrap();
    c.access_token(&s).await.unwrap();
    assert_eq!(mints(&c), 4);
}

/// Mints like [`Fake`], but a mint for `slow` waits until the test lets it go.
#[derive(Debug)]
struct Gated {
    fake: Fake,
    slow: tokio::sync::Semaphore,
}

impl IdTokenSource for Gated {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(async move {
            if audience == "slow" {
                let _ = self.slow.acquire().await;
            }
            self.fake.id_token(audience).await
        })
    }
}

/// At the bound, a slot whose mint is in flight is kept though it is the least recently used: dropping it would
/// orphan the mint, and the next caller would mint again.
#[tokio::test]
async fn a_full_cache_keeps_the_audience_being_minted() {
    let clock = ManualClock::at_unix(T0);
    let source = Arc::new(Gated {
        fake: Fake::new(&clock),
        slow: tokio::sync::Semaphore::new(0),
    });
    let c = CachedSource::builder(Arc::clone(&source))
        .clock(Arc::new(clock.clone()))
        .max_audiences(2)
        .build();
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.id_token("slow").await }
    });
    // Until the mint for `slow` is under way: its slot in the map, the mint waiting on the gate.
    while !format!("{c:?}").contains("audiences: 1") {
        tokio::task::yield_now().await;
    }
    clock.advance(Duration::from_secs(1));
    c.id_token("fast").await.unwrap();
    clock.advance(Duration::from_secs(1));
    // Full: adding `new` lets one go. `slow` is the least recently used, but its mint is in flight.
    c.id_token("new").await.unwrap();
    source.slow.add_permits(1);
    let minted = slow.await.unwrap().unwrap();
    assert_eq!(c.peek("slow"), Some(minted), "the minted token is cached");
    assert_eq!(c.peek("fast"), None, "the free one went instead");
    assert_eq!(source.fake.mints.load(Ordering::SeqCst), 3);
}
