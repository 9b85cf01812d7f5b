//! Faults, through the real layer over HTTP (server side) and through the real sources and middleware (client
//! side). No timing is asserted: every wait is bounded by a generous `tokio::time::timeout` that must not fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use http::HeaderMap;
use idgate_client::{
    CachedSource, HttpOptions, IdTokenMiddleware, IdTokenSource, MetadataServer, RetryPolicy,
    StaticToken,
};
use idgate_core::clock::{self, ManualClock};
use idgate_core::keys::{HttpKeySource, KeyCache, KeyCacheConfig, KeyFormat};
use idgate_core::token::IdToken;
use idgate_emulator::{Fault, Route};

use crate::support::{AUD, Site, client, emulator, now, oidc_verifier, oidc_verifier_with, sa};

/// Far longer than anything here should take; firing means a hang.
const BOUND: Duration = Duration::from_secs(30);

async fn status(site: &Site, token: &str) -> (u16, Option<String>) {
    let response =
        tokio::time::timeout(BOUND, client().get(site.url("/")).bearer_auth(token).send())
            .await
            .expect("the layer answered within the bound (no hang)")
            .expect("HTTP");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), retry_after)
}

fn cache_config(fetch_timeout: Duration) -> KeyCacheConfig {
    let mut config = KeyCacheConfig::default();
    config.fetch_timeout = fetch_timeout;
    config.unknown_kid_interval = Duration::ZERO;
    config
}

#[tokio::test]
async fn key_endpoint_down_while_keys_are_cached_serves_every_valid_request() {
    let emu = emulator().await;
    let verifier = oidc_verifier(&emu);
    verifier.keys().warm().await.expect("warm");
    let site = Site::oidc(verifier).await;
    emu.inject(Route::OidcJwks, Fault::Status(503), 1000);
    let mut served = 0;
    for i in 0..20 {
        // Distinct tokens (no memo help), interleaved with unknown kids that make the cache try the dead endpoint.
        let token = emu.mint(&sa().claim("n", i));
        let (code, _) = status(&site, &token).await;
        served += usize::from(code == 200);
        let (code, _) = status(&site, &emu.mint(&sa().kid(format!("rotated-{i}")))).await;
        assert_eq!(code, 401, "unknown kid {i}");
    }
    assert_eq!(
        served, 20,
        "every valid request is served from the cached keys"
    );
    assert_eq!(site.hits(), 20);
}

#[tokio::test]
async fn key_endpoint_down_at_a_cold_start_is_a_quick_503_with_retry_after() {
    let emu = emulator().await;
    emu.inject(Route::OidcJwks, Fault::Status(503), 1000);
    let site = Site::oidc(oidc_verifier(&emu)).await; // never warmed
    let token = emu.mint(&sa());
    for _ in 0..3 {
        let (code, retry_after) = status(&site, &token).await;
        assert_eq!(code, 503);
        let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
        assert!(secs >= 1);
    }
    assert_eq!(site.hits(), 0);
}

#[tokio::test]
async fn a_hanging_key_endpoint_at_a_cold_start_is_a_503_not_a_hang() {
    let emu = emulator().await;
    emu.inject(Route::OidcJwks, Fault::Hang, 1000);
    let keys = KeyCache::with_config(
        HttpKeySource::new(emu.oidc_jwks_url(), KeyFormat::OidcJwks),
        cache_config(Duration::from_millis(300)),
        Arc::new(clock::SystemClock),
    );
    let site = Site::oidc(oidc_verifier_with(keys)).await;
    let (code, retry_after) = status(&site, &emu.mint(&sa())).await;
    assert_eq!(code, 503);
    assert!(retry_after.is_some());
    assert_eq!(site.hits(), 0);
}

#[tokio::test]
async fn garbage_key_documents_keep_the_old_keys() {
    let emu = emulator().await;
    let keys = KeyCache::with_config(
        HttpKeySource::new(emu.oidc_jwks_url(), KeyFormat::OidcJwks),
        cache_config(Duration::from_secs(5)),
        Arc::new(clock::SystemClock),
    );
    let site = Site::oidc(oidc_verifier_with(keys.clone())).await;
    let old = emu.mint(&sa());
    assert_eq!(status(&site, &old).await.0, 200);
    let old_unseen = emu.mint(&sa().claim("n", 1));
    emu.rotate_oidc_key().expect("rotate");
    emu.inject(Route::OidcJwks, Fault::Garbage, 1000);
    // The new kid cannot be fetched (garbage): refused; the old keys still serve.
    assert_eq!(status(&site, &emu.mint(&sa())).await.0, 401);
    assert_eq!(status(&site, &old_unseen).await.0, 200);
    assert_eq!(keys.current().expect("a set").len(), 2);
    assert!(keys.status().last_error.is_some());
    assert_eq!(site.hits(), 2);
}

#[tokio::test]
async fn rotation_new_kid_on_first_sight_old_kid_until_it_leaves_the_set() {
    let emu = emulator().await;
    let keys = KeyCache::with_config(
        HttpKeySource::new(emu.oidc_jwks_url(), KeyFormat::OidcJwks),
        cache_config(Duration::from_secs(5)),
        Arc::new(clock::SystemClock),
    );
    let site = Site::oidc(oidc_verifier_with(keys)).await;
    let old_a = emu.mint(&sa().claim("n", "a"));
    let old_b = emu.mint(&sa().claim("n", "b"));
    let old_kid = emu.signing_oidc_kid().expect("kid");
    assert_eq!(status(&site, &emu.mint(&sa())).await.0, 200); // warm through a request
    let fetches_before = emu.hits(Route::OidcJwks);

    let new_kid = emu.rotate_oidc_key().expect("rotate");
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        status(&site, &emu.mint(&sa().claim("n", "new"))).await.0,
        200,
        "new kid on first sight"
    );
    assert_eq!(emu.hits(Route::OidcJwks), fetches_before + 1, "one refetch");
    assert_eq!(
        status(&site, &old_a).await.0,
        200,
        "old kid still published"
    );

    emu.retire_oidc_key(&old_kid).expect("retire");
    // A token with an unknown kid makes the cache refetch; the old kid has then left the set.
    assert_eq!(status(&site, &emu.mint(&sa().kid("unknown"))).await.0, 401);
    assert_eq!(status(&site, &old_b).await.0, 401, "old kid gone");
    assert_eq!(site.hits(), 3);
}

/// An upstream that decodes the bearer token of every request and counts those whose `exp` has passed.
#[derive(Clone, Default)]
struct ExpChecker {
    requests: Arc<AtomicUsize>,
    expired: Arc<AtomicUsize>,
}

impl ExpChecker {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let me = me.clone();
            async move {
                me.requests.fetch_add(1, Ordering::SeqCst);
                let exp = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .and_then(|t| idgate_core::token::decode_unverified(t).ok())
                    .and_then(|p| p.claims["exp"].as_i64());
                if exp.is_none_or(|exp| exp <= now()) {
                    me.expired.fetch_add(1, Ordering::SeqCst);
                }
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

fn middleware_client<S: IdTokenSource + 'static>(
    source: S,
) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(client())
        .with(IdTokenMiddleware::new(source).audience(AUD))
        .build()
}

#[tokio::test]
async fn metadata_503s_are_retried_then_the_request_succeeds() {
    let emu = emulator().await;
    let upstream = ExpChecker::default();
    let url = upstream.start().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 2);
    let source = CachedSource::new(
        MetadataServer::from_base_url(&emu.base_url())
            .http(HttpOptions::new().retry(quick_retry())),
    );
    let http = middleware_client(source);
    let response = tokio::time::timeout(BOUND, http.get(&url).send())
        .await
        .expect("bounded")
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(emu.hits(Route::MetadataIdentity), 3);
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.expired.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_still_valid_token_is_used_when_refresh_fails_and_errors_are_typed_when_nothing_works() {
    let emu = emulator().await;
    let clock = ManualClock::starting_now();
    let source = CachedSource::builder(
        MetadataServer::from_base_url(&emu.base_url())
            .http(HttpOptions::new().retry(quick_retry())),
    )
    .clock(Arc::new(clock.clone()))
    .build();
    let first = source.id_token(AUD).await.expect("mint");
    let exp = first.unverified_expiry().expect("exp");

    // Inside the refresh window, the endpoint fails: the current (still valid) token is returned.
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 1000);
    clock.set(exp - Duration::from_secs(120));
    assert_eq!(source.id_token(AUD).await.expect("current token"), first);

    // Past the safety margin nothing works: a clear, typed error, never the old token.
    clock.set(exp - Duration::from_secs(10));
    let err = source.id_token(AUD).await.expect_err("no usable token");
    assert!(err.is_transient() || err.is_expired(), "{err}");
    assert!(source.peek(AUD).is_none());

    // A cold audience with a dead endpoint: typed, with the status and the attempts.
    let cold = CachedSource::new(
        MetadataServer::from_base_url(&emu.base_url())
            .http(HttpOptions::new().retry(quick_retry())),
    );
    let err = cold.id_token(AUD).await.expect_err("dead endpoint");
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.attempts(), Some(3));
}

#[tokio::test]
async fn never_an_expired_token_on_the_wire() {
    let emu = emulator().await;
    let upstream = ExpChecker::default();
    let url = upstream.start().await;

    // A source that can only offer an expired token: the request fails before it is sent.
    let expired = IdToken::new(emu.mint(&sa().expired())).expect("JWT");
    let http = middleware_client(CachedSource::new(StaticToken::new(expired)));
    let err = http.get(&url).send().await.expect_err("refused");
    assert!(!err.to_string().is_empty());

    // A token 10 s from expiry (inside the 30 s safety margin) is not sent either.
    let nearly = IdToken::new(emu.mint(&sa().issued_at(now() - 3590).lifetime(3600))).expect("JWT");
    let http = middleware_client(CachedSource::new(StaticToken::new(nearly)));
    assert!(http.get(&url).send().await.is_err());

    // A real source under intermittent faults: every request that goes out carries a live token. With three
    // attempts per token fetch the outcome of each request is known: request 0 meets three of the five 503s
    // and is not sent; request 1 meets the two left and gets its token on the third attempt; every later
    // request reuses the cached token, so the faults queued before requests 3, 6 and 9 are never reached.
    let source = CachedSource::new(
        MetadataServer::from_base_url(&emu.base_url())
            .http(HttpOptions::new().retry(quick_retry().max_attempts(3))),
    );
    let http = middleware_client(source);
    // `None`: the middleware refused to send the request (no usable token); `Some(status)`: it was answered.
    let mut outcomes: Vec<Option<u16>> = Vec::new();
    for i in 0..10u32 {
        if i % 3 == 0 {
            emu.inject(Route::MetadataIdentity, Fault::Status(503), 5);
        }
        let sent = tokio::time::timeout(BOUND, http.get(format!("{url}/{i}")).send())
            .await
            .expect("bounded");
        outcomes.push(match sent {
            Ok(response) => Some(response.status().as_u16()),
            Err(reqwest_middleware::Error::Middleware(_)) => None,
            Err(e) => panic!("request {i} failed in transport, not for want of a token: {e}"),
        });
    }
    let mut expected = vec![Some(200); 10];
    expected[0] = None;
    assert_eq!(outcomes, expected, "each request's outcome");
    assert_eq!(
        upstream.requests.load(Ordering::SeqCst),
        9,
        "the upstream saw every request that was sent, and only those"
    );
    assert_eq!(
        emu.hits(Route::MetadataIdentity),
        6,
        "3 + 2 faulted attempts, then the one mint every later request reused"
    );
    assert_eq!(
        upstream.expired.load(Ordering::SeqCst),
        0,
        "an expired token reached the upstream"
    );
}
