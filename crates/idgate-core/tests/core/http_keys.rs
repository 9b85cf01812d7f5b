//! Keys fetched over HTTP from the emulator: Cache-Control, single-flight, rotation, outages.

use std::sync::Arc;
use std::time::Duration;

use idgate_core::keys::{FetchError, HttpKeySource, KeyCache, KeyCacheConfig, KeyFormat};
use idgate_emulator::{Emulator, Endpoint, Fault, TokenSpec};

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
    assert_eq!(w.emulator.hits(Endpoint::OidcJwks), 1);
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
    assert_eq!(w.emulator.hits(Endpoint::OidcJwks), 2);
    assert!(
        verifier.verify(&old).await.is_ok(),
        "the old kid is still published"
    );
    assert_eq!(w.emulator.hits(Endpoint::OidcJwks), 2);

    // Once Google retires the old key (and the rate-limit interval has passed), tokens signed with it fail.
    w.emulator.retire_oidc_key(&old_kid).unwrap();
    w.clock.advance(Duration::from_secs(31));
    let fresh = w.oidc_builder().memo_capacity(0).build().unwrap();
    assert_eq!(
        fresh.verify(&old).await.unwrap_err(),
        idgate_core::verify::VerifyError::UnknownKeyId
    );
}

#[tokio::test]
async fn an_outage_is_survived_with_stale_keys_and_a_cold_outage_is_unavailable() {
    let w = World::new().await;
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    verifier.keys().warm().await.unwrap();

    // Long past freshness, Google answers 503, then garbage: every verification still succeeds on the old set.
    w.clock.advance(Duration::from_secs(25_000));
    for (fault, expected) in [(Fault::Status(503), "503"), (Fault::Garbage, "JSON")] {
        w.emulator.inject(Endpoint::OidcJwks, fault, 1000);
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
    w.emulator.inject(Endpoint::IapJwks, Fault::Hang, 1);
    let err = cold.warm().await.unwrap_err();
    assert_eq!(
        err.reason(),
        &FetchError::Timeout(Duration::from_millis(300))
    );
    assert!(err.retry_after() >= Duration::from_secs(1));
}
