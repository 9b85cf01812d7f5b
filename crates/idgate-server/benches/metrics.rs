//! What recording metrics adds to a request through `RequireIdentityLayer` (issue #16's goal: at most 50 ns).
//!
//! One process, one binary built with the `metrics` feature, two layers identical but for their metric handles:
//! `not recorded` is built before any recorder is installed (its handles are the facade's no-ops, what the feature
//! costs with no exporter), `recorded` after a Prometheus recorder is (what `idgate proxy --admin-listen` runs). The
//! same valid token goes through both (a memo hit: the path real traffic takes, and where a fixed cost weighs the
//! most). Without the feature the handles do not exist at all; `not recorded` is within noise of that.
//!
//! A difference of tens of nanoseconds is below this machine's run-to-run noise, so the two are measured in
//! alternating batches, the order flipped each round, and the median per-round difference is reported with the
//! spread of the rounds. The Prometheus recorder is rendered between rounds, as a scrape would.
//!
//! ```text
//! cargo bench -p idgate-server --features metrics --bench metrics
//! ```

// A bench's job is to print its figures.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use idgate_core::policy::Allowlist;
use idgate_core::verify::OidcVerifier;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::RequireIdentityLayer;
use tower::ServiceExt as _;

const AUDIENCE: &str = "https://bench.example.com";

fn guarded(emulator: &Emulator) -> Router {
    let verifier = OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .expect("verifier");
    let allowlist = Allowlist::builder()
        .project_id("caller-app")
        .build()
        .expect("allowlist");
    Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(RequireIdentityLayer::new(verifier).allowlist(allowlist))
}

/// Nanoseconds per request over `n` requests through `router`.
async fn per_request(router: &Router, bearer: &str, n: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let request = Request::get("/")
            .header(AUTHORIZATION, bearer)
            .body(Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    started.elapsed().as_nanos() as f64 / f64::from(n)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then one short round checks it runs.
    let benching = std::env::args().any(|a| a == "--bench");
    let (rounds, batch) = if benching { (41, 20_000) } else { (1, 100) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let emulator = rt.block_on(Emulator::start()).expect("emulator");
    let token = emulator.mint(
        &TokenSpec::service_account("caller-app@appspot.gserviceaccount.com").audience(AUDIENCE),
    );
    let bearer = format!("Bearer {token}");

    let not_recorded = guarded(&emulator);
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("recorder");
    let recorded = guarded(&emulator);

    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut added = Vec::new();
    rt.block_on(async {
        // Keys fetched, the memo primed, both paths warm.
        for router in [&not_recorded, &recorded] {
            per_request(router, &bearer, batch.min(1_000)).await;
        }
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = per_request(&not_recorded, &bearer, batch).await;
                (a, per_request(&recorded, &bearer, batch).await)
            } else {
                let b = per_request(&recorded, &bearer, batch).await;
                (per_request(&not_recorded, &bearer, batch).await, b)
            };
            off.push(a);
            on.push(b);
            added.push(b - a);
            let _scrape = prometheus.render();
        }
    });
    let scrape = prometheus.render();
    assert!(
        scrape.contains("idgate_decisions_total{layer=\"require_identity\",outcome=\"admitted\""),
        "the recorded layer recorded nothing:\n{scrape}"
    );
    let mut sorted_added = added.clone();
    sorted_added.sort_by(f64::total_cmp);
    let quartile = |q: usize| sorted_added[(sorted_added.len() - 1) * q / 4];
    println!(
        "metrics on vs off, RequireIdentityLayer, memo hit, {rounds} alternating rounds of {batch} requests:\n  \
         not recorded  {:>8.0} ns/request (median)\n  \
         recorded      {:>8.0} ns/request (median)\n  \
         added         {:>+8.0} ns/request (median of per-round differences; quartiles {:+.0} .. {:+.0})",
        median(&mut off),
        median(&mut on),
        median(&mut added),
        quartile(1),
        quartile(3),
    );
    drop(emulator);
}
