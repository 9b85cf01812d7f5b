//! The key lifecycle through the real layer: a remembered (memoized) token stops being admitted once Google withdraws
//! the key that signed it (issue #10, item 7).

use std::time::Duration;

use idgate_core::keys::{HttpKeySource, KeyCache, KeyCacheConfig, KeyFormat};
use idgate_emulator::Emulator;

use crate::support::{Decisions, PROJECT, Site, client, oidc_verifier_with, sa};

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_key_is_withdrawn() {
    let (decisions, _guard) = Decisions::capture();
    // Keys that go stale after a second, so the test can watch a withdrawal arrive on the wall clock.
    let emu = Emulator::builder()
        .project_id(PROJECT)
        .oidc_max_age(Duration::from_secs(1))
        .start()
        .await
        .expect("emulator");
    let mut config = KeyCacheConfig::default();
    config.min_lifetime = Duration::from_secs(1);
    let keys = KeyCache::with_config(
        HttpKeySource::new(emu.oidc_jwks_url(), KeyFormat::OidcJwks),
        config,
        std::sync::Arc::new(idgate_core::clock::SystemClock),
    );
    let site = Site::oidc(oidc_verifier_with(keys.clone())).await;
    let http = client();
    let token = emu.mint(&sa());
    let get = || http.get(site.url("/")).bearer_auth(&token).send();

    // Verified once, then answered from the memo.
    for _ in 0..3 {
        assert_eq!(get().await.expect("answer").status(), 200);
    }
    assert_eq!(site.hits(), 3);

    let old_kid = emu.signing_oidc_kid().expect("signing kid");
    emu.rotate_oidc_key().expect("rotate");
    emu.retire_oidc_key(&old_kid).expect("retire");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The held set is stale now; this memo hit may still be served from it, and starts the refresh.
    let _ = get().await.expect("answer");
    keys.warm().await.expect("refreshed keys");
    assert!(!keys.status().stale);

    let hits = site.hits();
    let response = get().await.expect("answer");
    assert_eq!(response.status(), 401);
    assert_eq!(site.hits(), hits, "the handler is not called");
    let decision = decisions.last().expect("a decision was logged");
    assert_eq!(decision.outcome, "reject");
    assert_eq!(decision.reason, "unknown_kid");

    // A token from the current key is admitted.
    let fresh = emu.mint(&sa());
    let response = http
        .get(site.url("/"))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
}
