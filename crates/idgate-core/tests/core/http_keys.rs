//! Keys fetched over HTTP from the emulator: Cache-Control, single-flight, rotation, outages.

use std::sync::Arc;
use std::time::Duration;

use idgate_core::keys::{FetchError, HttpKeySource, KeyCache, KeyCacheConfig, KeyFormat};
use idgate_emulator::{Emulator, Fault, Route, TokenSpec};

use crate::support::{AUDIENCE, CALLER, World};

#[tokio::test]
async fn freshness_is_max_age_minus_age() {
    let emulator = Emulator::builder()
        .oidc_max_age(Duration::from_secs(1200))
        .age(Duration::from_secs(200))
        .start()
        .await
        .unwrap();
    let cache = KeyCache::new(HttpKeySource::new(
        emulator.oidc_jwks_url(),
        KeyFormat::OidcJwks,
    ));
    cache.warm().await.unwrap();
    let status = cache.status();
    let lifetime = status
        .fresh_until
        .unwrap()
        .duration_since(status.fetched_at.unwrap())
        .unwrap();
    assert_eq!(lifetime, Duration::from_secs(1000));
    assert_eq!(status.keys, emulator.oidc_kids().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_cold_verifications_fetch_the_keys_once() {
    let w = World::new().await;
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    let token = w.emulator.mint(
        &TokenSpec::service_account(CALLER)
            .audience(AUDIENCE)
            .issued_at(w.now()),
    );
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(w.emulator.hits(Route::OidcJwks), 1);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_on_first_sight_and_an_old_one_until_it_leaves() {
    let w = World::new().await;
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    let now = w.now();
    let old = w.emulator.mint(
        &TokenSpec::service_account(CALLER)
            .audience(AUDIENCE)
            .issued_at(now),
    );
    assert!(verifier.verify(&old).await.is_ok());
    let old_kid = w.emulator.signing_oidc_kid().unwrap();

    let new_kid = w.emulator.rotate_oidc_key().unwrap();
    let new = w.emulator.mint(
        &TokenSpec::service_account(CALLER)
            .audience(AUDIENCE)
            .issued_at(now + 1),
    );
    assert!(
        verifier.verify(&new).await.is_ok(),
        "new kid {new_kid} accepted after one refetch"
    );
    assert_eq!(w.emulator.hits(Route::OidcJwks), 2);
    assert!(
        verifier.verify(&old).await.is_ok(),
        "the old kid is still published"
    );
    assert_eq!(w.emulator.hits(Route::OidcJwks), 2);

    // Once Google retires the old key (and the rate-limit interval has passed), tokens signed with it fail.
    w.emulator.retire_oidc_key(&old_kid).unwrap();
    w.clock.advance(Duration::from_secs(31));
    let fresh = w.oidc_builder().memo_capacity(0).build().unwrap();
    assert_eq!(
        fresh.verify(&old).await.unwrap_err(),
        idgate_core::verify::VerifyError::UnknownKeyId
    );
}

/// A world whose emulator serves the OIDC keys with `max-age=300`, so a test can step past their freshness.
async fn world_with_five_minute_keys() -> World {
    let emulator = Emulator::builder()
        .oidc_max_age(Duration::from_secs(300))
        .start()
        .await
        .unwrap();
    World {
        emulator,
        clock: idgate_core::clock::ManualClock::starting_now(),
    }
}

/// A service account's token issued at `at`.
fn token_issued_at(at: i64) -> TokenSpec {
    TokenSpec::service_account(CALLER)
        .audience(AUDIENCE)
        .issued_at(at)
}

/// Waits for the background refresh of a stale key set to land. Generous: the loop ends as soon as it does; the
/// bound only matters if it never does.
async fn until_refreshed(verifier: &idgate_core::verify::OidcVerifier, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while verifier.keys().status().stale {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue #10, item 7: a remembered token was accepted from the memo until it expired, even after Google withdrew
/// the key that signed it. The memo now records the signing key and refuses the hit once the held key set (fresh,
/// or stale within the bound) no longer publishes it; a hit on a set past its freshness refreshes it in the
/// background, so the withdrawal is seen even when every request is a memo hit.
#[tokio::test]
async fn a_memo_hit_is_refused_once_its_signing_key_is_withdrawn() {
    let w = world_with_five_minute_keys().await;
    let verifier = w.oidc(); // memo on (the default)
    let spec = token_issued_at;
    let old = w.emulator.mint(&spec(w.now()));
    assert!(verifier.verify(&old).await.is_ok());
    let old_kid = w.emulator.signing_oidc_kid().unwrap();
    // While the key is published, the token is a memo hit: no fetch.
    assert!(verifier.verify(&old).await.is_ok());
    assert_eq!(w.emulator.hits(Route::OidcJwks), 1);

    w.emulator.rotate_oidc_key().unwrap();
    w.emulator.retire_oidc_key(&old_kid).unwrap();
    // Still fresh: the held set still publishes the old key, so the hit stands (Google's caches are no faster).
    assert!(verifier.verify(&old).await.is_ok());
    assert_eq!(w.emulator.hits(Route::OidcJwks), 1);

    // Past freshness: the hit is served from the stale set and starts a background refresh.
    w.clock.advance(Duration::from_secs(301));
    assert!(verifier.verify(&old).await.is_ok());
    until_refreshed(
        &verifier,
        "a memo hit on a stale set must refresh it in the background",
    )
    .await;
    assert_eq!(w.emulator.hits(Route::OidcJwks), 2);
    // The refreshed set no longer has the old key: the memo refuses the hit and full verification refuses the token.
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        idgate_core::verify::VerifyError::UnknownKeyId
    );
    // A token signed by the current key is unaffected, and is remembered again.
    let new = w.emulator.mint(&spec(w.now()));
    assert!(verifier.verify(&new).await.is_ok());
    let fetches = w.emulator.hits(Route::OidcJwks);
    assert!(verifier.verify(&new).await.is_ok());
    assert_eq!(w.emulator.hits(Route::OidcJwks), fetches);
}

#[tokio::test]
async fn an_outage_is_survived_with_stale_keys_and_a_cold_outage_is_unavailable() {
    let w = World::new().await;
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    verifier.keys().warm().await.unwrap();

    // Long past freshness, Google answers 503, then garbage: every verification still succeeds on the old set.
    w.clock.advance(Duration::from_secs(25_000));
    for (fault, expected) in [(Fault::Status(503), "503"), (Fault::Garbage, "JSON")] {
        w.emulator.inject(Route::OidcJwks, fault, 1000);
        w.clock.advance(Duration::from_secs(10)); // past the failure backoff: a new refresh is attempted
        for i in 0..20 {
            let token = w.emulator.mint(
                &TokenSpec::service_account(CALLER)
                    .audience(AUDIENCE)
                    .issued_at(w.now() + i),
            );
            assert!(verifier.verify(&token).await.is_ok());
        }
        // Let the background refresh finish, then look at what it recorded.
        for _ in 0..50 {
            if verifier
                .keys()
                .status()
                .last_error
                .is_some_and(|e| e.to_string().contains(expected))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = verifier.keys().status();
        assert!(status.ready && status.stale);
        let last_error = status.last_error.unwrap().to_string();
        assert!(last_error.contains(expected), "{last_error}");
        w.emulator.clear_faults();
    }

    // A cache that never got keys, facing a hanging endpoint, answers KeysUnavailable within its timeout.
    let mut config = KeyCacheConfig::default();
    config.fetch_timeout = Duration::from_millis(300);
    let cold = KeyCache::with_config(
        HttpKeySource::new(w.emulator.iap_jwks_url(), KeyFormat::IapJwks),
        config,
        Arc::new(w.clock.clone()),
    );
    w.emulator.inject(Route::IapJwks, Fault::Hang, 1);
    let err = cold.warm().await.unwrap_err();
    assert_eq!(
        err.reason(),
        &FetchError::Timeout(Duration::from_millis(300))
    );
    assert!(err.retry_after() >= Duration::from_secs(1));
}

/// The verifiers remember the header segments of accepted tokens so as not to decode them again
/// (`verify/known_headers.rs`); only the `kid` is remembered, and the key is looked up in the held set each time, so
/// a withdrawn key stops verifying tokens as soon as the set that drops it is held, known header or not.
#[tokio::test]
async fn a_known_header_does_not_outlive_its_key() {
    let w = world_with_five_minute_keys().await;
    // No memo: every verification is a full one, through the known header.
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    let spec = token_issued_at;
    let old = w.emulator.mint(&spec(w.now()));
    let old_kid = w.emulator.signing_oidc_kid().unwrap();
    assert!(verifier.verify(&old).await.is_ok());
    assert!(verifier.verify(&old).await.is_ok());

    w.emulator.rotate_oidc_key().unwrap();
    w.emulator.retire_oidc_key(&old_kid).unwrap();
    // Past freshness, the stale set still serves while it is refreshed in the background (as for any token)...
    w.clock.advance(Duration::from_secs(301));
    assert!(verifier.verify(&old).await.is_ok());
    until_refreshed(&verifier, "the stale set is refreshed").await;
    // ...and the refreshed set no longer holds the key: the known header does not keep it alive.
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        idgate_core::verify::VerifyError::UnknownKeyId
    );
    let new = w.emulator.mint(&spec(w.now()));
    assert!(verifier.verify(&new).await.is_ok());
    assert!(verifier.verify(&new).await.is_ok());
}
