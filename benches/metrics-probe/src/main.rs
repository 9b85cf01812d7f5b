//! `idgate-bench-metrics [ROUNDS] [BATCH]`: what recording metrics adds to a request through
//! `RequireIdentityLayer` on its memoized path (issue #17's goal: at most 50 ns). Run by `idgate-bench` (section
//! `metrics`), which reads the one line of JSON it prints.
//!
//! Two layers identical but for their metric handles: `not recorded` is built before any recorder is installed
//! (its handles are the facade's no-ops: the feature compiled in, no exporter), `recorded` after a Prometheus
//! recorder is (what `idgate proxy --admin-listen` runs). The same valid token goes through both (a memo hit: the
//! path real traffic takes, where a fixed cost weighs the most). A difference of tens of nanoseconds is below the
//! machine's run-to-run noise, so the two run in alternating batches, the order flipped each round, and the
//! median of the per-round differences is the figure.

// The JSON line is this program's output.
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

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(41);
    let batch: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
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

    let (mut off, mut on, mut added) = (Vec::new(), Vec::new(), Vec::new());
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
    // The recorded layer did record (else the comparison would be of two no-op layers).
    let scrape = prometheus.render();
    let recorded_decisions =
        scrape.contains("idgate_decisions_total{layer=\"require_identity\",outcome=\"admitted\"");
    let recorded_memo_hits = scrape.contains("idgate_verify_memo_lookups_total");
    let (off, on, added) = (sorted(&off), sorted(&on), sorted(&added));
    let at = |v: &[f64], q: usize| v[(v.len() - 1) * q / 4];
    println!(
        "{}",
        serde_json::json!({
            "rounds": rounds,
            "batch": batch,
            "not_recorded_ns": at(&off, 2),
            "recorded_ns": at(&on, 2),
            "added_ns": at(&added, 2),
            "added_q1_ns": at(&added, 1),
            "added_q3_ns": at(&added, 3),
            "recorded_decisions": recorded_decisions,
            "recorded_memo_hits": recorded_memo_hits,
        })
    );
    drop(emulator);
}
