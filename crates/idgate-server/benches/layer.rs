//! The cost of `RequireIdentityLayer` on an axum hello-world router, in process: bare vs behind the layer with a
//! valid token (answered from the verifier's memo after the first request). Goal: at least 90 % of bare throughput.
//! `by_credential`: the same token through `ByCredentialLayer` (ID-token and IAP gates), the dispatch's own cost.
//!
//! ```text
//! cargo bench -p idgate-server -- --warm-up-time 1 --measurement-time 3
//! ```

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use idgate_core::policy::Allowlist;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::{ByCredentialLayer, RequireIapLayer, RequireIdentityLayer};
use tower::ServiceExt as _;

const AUDIENCE: &str = "https://bench.example.com";

fn hello() -> Router {
    Router::new().route("/", get(|| async { "hello" }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (emulator, token) = rt.block_on(async {
        let emulator = Emulator::start().await.expect("emulator");
        let token = emulator.mint(
            &TokenSpec::service_account("caller-app@appspot.gserviceaccount.com")
                .audience(AUDIENCE),
        );
        (emulator, token)
    });
    let verifier = OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .expect("verifier");
    let allowlist = Allowlist::builder()
        .project_id("caller-app")
        .build()
        .expect("allowlist");
    let iap = IapVerifier::builder()
        .audience(emulator.iap_audience_app_engine())
        .keys_url(emulator.iap_jwks_url())
        .build()
        .expect("IAP verifier");
    let identity = RequireIdentityLayer::new(verifier).allowlist(allowlist);
    let bare = hello();
    let guarded = hello().layer(identity.clone());
    let by_credential = hello().layer(ByCredentialLayer::new(
        Some(identity),
        Some(RequireIapLayer::new(iap)),
    ));
    let bearer = format!("Bearer {token}");

    // Prime the key cache and the memo, and make sure both routers answer 200.
    rt.block_on(async {
        for router in [&bare, &guarded, &by_credential] {
            let request = Request::get("/")
                .header(AUTHORIZATION, &bearer)
                .body(Body::empty())
                .expect("request");
            let response = router.clone().oneshot(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
        }
    });

    let mut group = c.benchmark_group("hello");
    for (name, router) in [
        ("bare", &bare),
        ("require_identity", &guarded),
        ("by_credential", &by_credential),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let request = Request::get("/")
                    .header(AUTHORIZATION, &bearer)
                    .body(Body::empty())
                    .expect("request");
                router.clone().oneshot(request).await.expect("response")
            });
        });
    }
    group.finish();
    drop(emulator);
}

criterion_group!(benches, bench);
criterion_main!(benches);
