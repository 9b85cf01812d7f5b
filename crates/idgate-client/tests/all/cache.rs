//! The cache against the emulator, with an injected clock: single flight, refresh-ahead, fallback, never expired.

use std::sync::Arc;
use std::time::Duration;

use idgate_client::{
    AccessTokenSource, CachedSource, HttpOptions, IdTokenSource, MetadataServer, Scopes,
};
use idgate_core::clock::{Clock, ManualClock};
use idgate_emulator::{Fault, Route};

use crate::helpers::{emulator, quick_retry};

const AUD: &str = "https://receiver.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_calls_for_a_cold_audience_mint_once() {
    let emu = emulator().await;
    let cached = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let cached = cached.clone();
            tokio::spawn(async move { cached.id_token(AUD).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap());
    }
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
}

/// Access tokens are cached per scope set (in any order): a thousand concurrent calls over two scope sets, one of
/// them spelled in two orders, mint exactly once per set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_access_token_calls_mint_once_per_scope_set() {
    const STORAGE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
    const PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
    let emu = emulator().await;
    let cached = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let sets = [
        Scopes::new([STORAGE, PLATFORM]).unwrap(),
        Scopes::new([PLATFORM, STORAGE]).unwrap(),
        Scopes::new([PLATFORM]).unwrap(),
    ];
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let cached = cached.clone();
            let scopes = sets[i % 3].clone();
            tokio::spawn(async move { (i % 3, cached.access_token(&scopes).await) })
        })
        .collect();
    let mut by_set: [Vec<String>; 3] = Default::default();
    for call in calls {
        let (set, token) = call.await.unwrap();
        by_set[set].push(token.unwrap().as_str().to_owned());
    }
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);
    // Each set got one token; the two spellings of the first set got the same one; the sets got different ones.
    for tokens in &by_set {
        assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    }
    assert_eq!(by_set[0][0], by_set[1][0]);
    assert_ne!(by_set[0][0], by_set[2][0]);
}

#[tokio::test]
async fn refreshes_inside_the_window_and_never_hands_out_an_expired_token() {
    let emu = emulator().await;
    // The emulator mints with its real clock (exp = now + 1 h); ours starts there and is moved by hand.
    let clock = ManualClock::starting_now();
    let cached = CachedSource::builder(MetadataServer::from_base_url(&emu.base_url()))
        .clock(Arc::new(clock.clone()))
        .build();
    let first = cached.id_token(AUD).await.unwrap();
    let exp = first.unverified_expiry().unwrap();

    // Well before the window: cached.
    clock.set(exp - Duration::from_secs(5 * 60));
    assert_eq!(cached.id_token(AUD).await.unwrap(), first);
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);

    // Inside the window (3 min 45 s): one refresh, then the new token is reused.
    clock.set(exp - Duration::from_secs(3 * 60));
    let second = cached.id_token(AUD).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataIdentity), 2);
    assert_eq!(cached.id_token(AUD).await.unwrap(), second);
    assert_eq!(emu.hits(Route::MetadataIdentity), 2);

    // Far in the future, every token the emulator mints is already expired by our clock: it is refused rather
    // than handed out.
    clock.set(second.unverified_expiry().unwrap() + Duration::from_secs(3600));
    let err = cached.id_token(AUD).await.unwrap_err();
    assert!(err.is_expired(), "{err}");
    assert!(cached.peek(AUD).is_none());
}

#[tokio::test]
async fn a_failed_refresh_falls_back_to_the_still_valid_token() {
    let emu = emulator().await;
    let clock = ManualClock::starting_now();
    let source = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let cached = CachedSource::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let first = cached.id_token(AUD).await.unwrap();
    let exp = first.unverified_expiry().unwrap();

    emu.inject(Route::MetadataIdentity, Fault::Status(503), 100);
    clock.set(exp - Duration::from_secs(3 * 60));
    // The refresh fails (after its retries): the current token is still good for 3 minutes, so it is used.
    assert_eq!(cached.id_token(AUD).await.unwrap(), first);
    let after_first_failure = emu.hits(Route::MetadataIdentity);
    assert_eq!(after_first_failure, 1 + 3);
    // Backing off: the dead endpoint is not asked again on every call.
    for _ in 0..10 {
        assert_eq!(cached.id_token(AUD).await.unwrap(), first);
    }
    assert_eq!(emu.hits(Route::MetadataIdentity), after_first_failure);

    // After the backoff, with the endpoint back, the token is refreshed. (The emulator signs with its real clock, so
    // within the same second it may mint the very same token: count requests rather than compare tokens.)
    emu.clear_faults();
    clock.advance(Duration::from_secs(6));
    let fresh = cached.id_token(AUD).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataIdentity), after_first_failure + 1);
    assert!(fresh.unverified_expiry().unwrap() > clock.now());
}

#[tokio::test]
async fn with_the_endpoint_down_and_the_token_expiring_the_error_surfaces() {
    let emu = emulator().await;
    let clock = ManualClock::starting_now();
    let source = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let cached = CachedSource::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let first = cached.id_token(AUD).await.unwrap();
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 100);
    // 20 s before exp: inside the safety margin, so the old token is not an option.
    clock.set(first.unverified_expiry().unwrap() - Duration::from_secs(20));
    let err = cached.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
}
