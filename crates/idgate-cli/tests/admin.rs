//! `--admin-listen` through the real binaries: `idgate proxy` serves a mixed run of callers, then its admin port's
//! `/metrics` must count exactly what was sent, by outcome and reason; `/readyz` follows the upstream; the proxied
//! port never serves the admin routes; no label carries an email or a token. `idgate emulator` counts its requests
//! by route template.

mod common;

use common::{ALLOWED, Scrape, free_port};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use idgate_emulator::{Emulator, TokenSpec};
use tokio::time::Instant;

/// A child process, killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Waits until `url` answers at all (any status), or fails with `log`.
async fn wait_for(url: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(url).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{url} never answered:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The upstream: counts what reaches it, by path.
#[derive(Default)]
struct Upstream {
    hits: AtomicUsize,
    metrics_path_hits: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_admin_port_counts_what_was_sent_and_reports_readiness() {
    let emulator = Emulator::start().await.unwrap();
    let seen = Arc::new(Upstream::default());
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream_listener.local_addr().unwrap();
    let router = {
        let seen = Arc::clone(&seen);
        Router::new().fallback(any(move |uri: http::Uri| {
            let seen = Arc::clone(&seen);
            async move {
                seen.hits.fetch_add(1, Ordering::SeqCst);
                if uri.path() == "/metrics" {
                    seen.metrics_path_hits.fetch_add(1, Ordering::SeqCst);
                }
                "upstream"
            }
        }))
    };
    let upstream_task = tokio::spawn(async move { axum::serve(upstream_listener, router).await });

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let audience = format!("http://{listen}");
    let dir = tempfile::tempdir().unwrap();
    let config =
        common::write_proxy_config(dir.path(), &audience, emulator.base_url().as_str(), "");
    let stderr: PathBuf = dir.path().join("stderr.log");
    let _proxy = Running(
        Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
            .args(["proxy", "--config"])
            .arg(&config)
            .args(["--listen", &listen.to_string()])
            .args(["--upstream", &format!("http://{upstream_addr}")])
            .args(["--admin-listen", &admin.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let admin_url = |path: &str| format!("http://{admin}{path}");
    wait_for(&admin_url("/healthz"), log).await;

    // Ready: the keys were fetched at startup and the upstream listens.
    let ready = get(&admin_url("/readyz")).await;
    assert_eq!(ready.status(), 200, "{}", log());
    assert_eq!(ready.headers()["cache-control"], "no-store");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "checks": {"keys": "ok", "upstream": "ok"}})
    );

    // The mixed run: 5 admitted, 3 without a credential, 2 refused by the allowlist, 4 for another audience,
    // 1 garbage token, 2 on the exempt path (no decision).
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{listen}{path}");
    let valid = emulator.mint(&TokenSpec::service_account(ALLOWED).audience(&audience));
    let outsider_email = "outsider@other-proj.iam.gserviceaccount.com";
    let outsider = emulator.mint(&TokenSpec::service_account(outsider_email).audience(&audience));
    let elsewhere =
        emulator.mint(&TokenSpec::service_account(ALLOWED).audience("https://elsewhere.example"));
    let mut sent: Vec<(Option<&str>, &str, u16)> = Vec::new();
    sent.extend(std::iter::repeat_n(
        (Some(valid.as_str()), "/hello", 200),
        5,
    ));
    sent.extend(std::iter::repeat_n((None, "/hello", 401), 3));
    sent.extend(std::iter::repeat_n(
        (Some(outsider.as_str()), "/hello", 403),
        2,
    ));
    sent.extend(std::iter::repeat_n(
        (Some(elsewhere.as_str()), "/hello", 401),
        4,
    ));
    sent.push((Some("not.a.token"), "/hello", 401));
    sent.extend(std::iter::repeat_n((None, "/healthz", 200), 2));
    for (token, path, status) in &sent {
        let mut request = client.get(url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), *status, "{path} {token:?}\n{}", log());
    }

    // The proxied port does not serve the admin routes: /metrics there is the upstream's path, behind the gate.
    let unauthenticated = client.get(url("/metrics")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let forwarded = client
        .get(url("/metrics"))
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.text().await.unwrap(), "upstream");
    assert_eq!(seen.metrics_path_hits.load(Ordering::SeqCst), 1);
    // 5 + 2 exempt + 1 forwarded /metrics.
    assert_eq!(seen.hits.load(Ordering::SeqCst), 8);

    let response = get(&admin_url("/metrics")).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.headers()
    );
    let scrape = Scrape::parse(response.text().await.unwrap());
    let decisions = |outcome: &str, reason: &str| {
        scrape.value(
            "idgate_decisions_total",
            &[
                ("layer", "require_identity"),
                ("outcome", outcome),
                ("reason", reason),
            ],
        )
    };
    // 5 admitted in the run, and the forwarded /metrics.
    assert_eq!(
        decisions("admitted", "authorization"),
        6.0,
        "{}",
        scrape.text
    );
    // 3 without a credential, and the unauthenticated /metrics.
    assert_eq!(
        decisions("rejected", "missing_credential"),
        4.0,
        "{}",
        scrape.text
    );
    assert_eq!(decisions("rejected", "not_allowed"), 2.0, "{}", scrape.text);
    assert_eq!(
        decisions("rejected", "wrong_audience"),
        4.0,
        "{}",
        scrape.text
    );
    assert_eq!(decisions("rejected", "malformed"), 1.0, "{}", scrape.text);
    // Nothing else was decided: the exempt path takes no decision, and no request was answered 5xx.
    assert_eq!(
        scrape.sum("idgate_decisions_total"),
        17.0,
        "{}",
        scrape.text
    );

    // The keys: fetched once at startup, fresh, not stale; their age gauge is set at the scrape.
    assert_eq!(
        scrape.value(
            "idgate_key_fetches_total",
            &[("keys", "oidc"), ("result", "ok")]
        ),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value("idgate_key_set_serving_stale", &[("keys", "oidc")]),
        0.0
    );
    assert!(scrape.value("idgate_key_set_fresh_for_seconds", &[("keys", "oidc")]) > 0.0);
    assert_eq!(scrape.series("idgate_key_set_age_seconds").len(), 1);
    // The memo: every token checked was looked up; histograms have buckets, and a description.
    let lookups = scrape.value(
        "idgate_verify_memo_lookups_total",
        &[("verifier", "oidc"), ("result", "hit")],
    ) + scrape.value(
        "idgate_verify_memo_lookups_total",
        &[("verifier", "oidc"), ("result", "miss")],
    );
    assert!(lookups >= 6.0, "{}", scrape.text);
    assert!(
        scrape
            .series("idgate_verify_seconds_bucket")
            .iter()
            .any(|labels| labels.get("path").map(String::as_str) == Some("full")),
        "{}",
        scrape.text
    );
    assert!(
        scrape.text.contains("# HELP idgate_decisions_total "),
        "{}",
        scrape.text
    );

    // Nothing personal or secret in any series: no email, no token, no audience.
    for needle in [
        ALLOWED,
        outsider_email,
        valid.as_str(),
        outsider.as_str(),
        elsewhere.as_str(),
        audience.as_str(),
    ] {
        assert!(!scrape.text.contains(needle), "{needle} in the scrape");
    }

    // The upstream goes away: not ready (the keys still are), yet alive.
    upstream_task.abort();
    let _ = upstream_task.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let response = get(&admin_url("/readyz")).await;
        if response.status() == 503 {
            break response.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "still ready without an upstream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["keys"], "ok");
    let why = body["checks"]["upstream"].as_str().unwrap();
    assert!(
        why.starts_with(&format!(
            "cannot connect to 127.0.0.1:{}",
            upstream_addr.port()
        )),
        "{why}"
    );
    assert_eq!(get(&admin_url("/healthz")).await.status(), 200);
    // An unknown admin path is a plain 404, not the upstream's.
    assert_eq!(get(&admin_url("/hello")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_admin_port_counts_requests_by_route_template() {
    let port = free_port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr.log");
    let _emulator = Running(
        Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
            .args(["emulator", "--port", &port.to_string()])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .arg("--key-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let admin_url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    wait_for(&admin_url("/healthz"), log).await;
    let ready: serde_json::Value = get(&admin_url("/readyz")).await.json().await.unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"ready": true, "checks": {"emulator": "ok"}})
    );

    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..3 {
        assert_eq!(get(&format!("{base}/oauth2/v3/certs")).await.status(), 200);
    }
    let client = reqwest::Client::new();
    let email = "someone@my-project.iam.gserviceaccount.com";
    let identity = client
        .get(format!(
            "{base}/computeMetadata/v1/instance/service-accounts/{email}/identity?audience=x"
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    let identity_status = identity.status().as_u16().to_string();
    assert_eq!(get(&format!("{base}/no/such/route")).await.status(), 404);

    let scrape = Scrape::parse(get(&admin_url("/metrics")).await.text().await.unwrap());
    let requests = |route: &str, status: &str| {
        scrape.value(
            "idgate_emulator_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/oauth2/v3/certs", "200"), 3.0, "{}", scrape.text);
    assert_eq!(
        requests(
            "/computeMetadata/v1/instance/service-accounts/{account}/identity",
            &identity_status
        ),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(requests("unmatched", "404"), 1.0, "{}", scrape.text);
    // The route template, never the path: the account's email is not a label.
    assert!(!scrape.text.contains(email), "{}", scrape.text);
}
