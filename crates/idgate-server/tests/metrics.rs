//! The `metrics` feature: after a mixed run through the real layer over HTTP, `idgate_decisions_total` holds exactly
//! what was sent, by outcome and reason. (A binary of its own: the recorder is process-wide.)

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use idgate_core::policy::Allowlist;
use idgate_core::verify::OidcVerifier;
use idgate_emulator::{Emulator, Fault, Route, TokenSpec};
use idgate_server::RequireIdentityLayer;
use idgate_server::metrics::DECISIONS_TOTAL;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const AUDIENCE: &str = "https://jobs.idgate.test";
const ALLOWED_SA: &str = "billing-prod@appspot.gserviceaccount.com";
const OTHER_SA: &str = "intruder@other-proj.iam.gserviceaccount.com";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

fn layer(emulator: &Emulator) -> RequireIdentityLayer {
    let verifier = OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .unwrap();
    RequireIdentityLayer::new(verifier).allowlist(
        Allowlist::builder()
            .project_id("billing-prod")
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_are_counted_by_layer_outcome_and_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let emulator = Emulator::start().await.unwrap();
    let base = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer(&emulator)),
    )
    .await;
    // A second service whose keys cannot be fetched: 503.
    let broken = Emulator::start().await.unwrap();
    broken.inject(Route::OidcJwks, Fault::Status(503), 100);
    let broken_base = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer(&broken)),
    )
    .await;

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let allowed = emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience(AUDIENCE));
    let other = emulator.mint(&TokenSpec::service_account(OTHER_SA).audience(AUDIENCE));
    let wrong_aud =
        emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience("https://elsewhere.test"));
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(
            http.get(&base)
                .bearer_auth(&allowed)
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    for _ in 0..2 {
        let status = http
            .get(&base)
            .header("x-serverless-authorization", format!("Bearer {allowed}"))
            .send()
            .await
            .unwrap()
            .status();
        sent.push(status);
    }
    for _ in 0..3 {
        sent.push(http.get(&base).send().await.unwrap().status());
    }
    sent.push(
        http.get(&base)
            .bearer_auth(&other)
            .send()
            .await
            .unwrap()
            .status(),
    );
    sent.push(
        http.get(&base)
            .bearer_auth(&wrong_aud)
            .send()
            .await
            .unwrap()
            .status(),
    );
    sent.push(
        http.get(&broken_base)
            .bearer_auth(&allowed)
            .send()
            .await
            .unwrap()
            .status(),
    );
    let count = |status: StatusCode| sent.iter().filter(|s| **s == status).count();
    assert_eq!(
        (
            count(StatusCode::OK),
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::FORBIDDEN)
        ),
        (7, 4, 1)
    );
    assert_eq!(count(StatusCode::SERVICE_UNAVAILABLE), 1);

    let mut decisions: Vec<(String, String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == DECISIONS_TOTAL)
        .filter_map(|(key, _, _, value)| {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap()
            };
            assert_eq!(label("layer"), "require_identity");
            match value {
                DebugValue::Counter(0) => None,
                DebugValue::Counter(n) => Some((label("outcome"), label("reason"), n)),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    decisions.sort();
    let expected = [
        ("admitted", "authorization", 5),
        ("admitted", "x-serverless-authorization", 2),
        ("rejected", "missing_credential", 3),
        ("rejected", "not_allowed", 1),
        ("rejected", "wrong_audience", 1),
        ("unavailable", "keys_unavailable", 1),
    ]
    .map(|(o, r, n)| (o.to_owned(), r.to_owned(), n));
    assert_eq!(decisions, expected);
}
