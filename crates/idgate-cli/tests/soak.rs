//! A bounded soak of the real `idgate proxy` binary on loopback: mixed valid and invalid traffic, every decision
//! checked, no 5xx for valid callers, the proxy's memory flat, and a graceful exit on SIGTERM.
//!
//! `cargo test -p idgate-cli --test soak` runs it for 30 s (what `.ci/run` runs). For the long run:
//! `IDGATE_SOAK_SECS=600 cargo test -p idgate-cli --release --test soak -- --nocapture`.

mod common;

use common::{ALLOWED, free_port};

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::any;
use idgate_emulator::{Emulator, TokenSpec};

const DENIED: &str = "intruder@other-proj.iam.gserviceaccount.com";

/// The proxy process; killed if the test fails before it exits by itself.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    wrong: AtomicU64,
    valid_5xx: AtomicU64,
    admitted: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_through_idgate_proxy() {
    let secs: u64 = std::env::var("IDGATE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let emulator = Emulator::start().await.unwrap();

    // The upstream counts what reaches it and checks every request carries the verified caller.
    let reached = Arc::new(AtomicU64::new(0));
    let unverified = Arc::new(AtomicU64::new(0));
    let upstream = {
        let (reached, unverified) = (reached.clone(), unverified.clone());
        Router::new().fallback(any(move |uri: http::Uri, headers: http::HeaderMap| {
            let (reached, unverified) = (reached.clone(), unverified.clone());
            async move {
                if uri.path() == "/healthz" {
                    return "ok"; // the exempt readiness probe: forwarded without identity, by design
                }
                reached.fetch_add(1, Ordering::Relaxed);
                if headers
                    .get("x-idgate-caller-email")
                    .and_then(|v| v.to_str().ok())
                    != Some(ALLOWED)
                {
                    unverified.fetch_add(1, Ordering::Relaxed);
                }
                "ok"
            }
        }))
    };
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(upstream_listener, upstream).await });

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let audience = format!("http://{listen}");
    let dir = tempfile::tempdir().unwrap();
    let config =
        common::write_proxy_config(dir.path(), &audience, emulator.base_url().as_str(), "");
    let child = Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
        .args(["proxy", "--config"])
        .arg(&config)
        .args([
            "--listen",
            &listen.to_string(),
            "--upstream",
            &format!("http://{upstream_addr}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut proxy = Proxy(child);
    let pid = proxy.0.id();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{audience}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "idgate proxy did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 200 distinct valid tokens (the memo sees many callers), and the ways to be refused.
    let valid: Vec<String> = (0..200)
        .map(|i| {
            emulator.mint(
                &TokenSpec::service_account(ALLOWED)
                    .audience(&audience)
                    .claim("nonce", i),
            )
        })
        .collect();
    let tampered = emulator.mint(
        &TokenSpec::service_account(ALLOWED)
            .audience(&audience)
            .tampered_signature(),
    );
    let denied = emulator.mint(&TokenSpec::service_account(DENIED).audience(&audience));
    let expired = emulator.mint(
        &TokenSpec::service_account(ALLOWED)
            .audience(&audience)
            .expired(),
    );
    let replayed =
        emulator.mint(&TokenSpec::service_account(ALLOWED).audience("https://elsewhere.example"));
    let cases: Arc<Vec<(Option<String>, u16)>> = Arc::new(
        valid
            .into_iter()
            .map(|t| (Some(t), 200))
            .chain([
                (Some(tampered), 401),
                (Some(denied), 403),
                (Some(expired), 401),
                (Some(replayed), 401),
                (None, 401),
            ])
            .collect(),
    );

    let tally = Arc::new(Tally::default());
    let end = Instant::now() + Duration::from_secs(secs);
    let mut rss = Vec::new();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (client, cases, tally, url) = (
                client.clone(),
                cases.clone(),
                tally.clone(),
                format!("{audience}/work"),
            );
            tokio::spawn(async move {
                let mut i = w * 7919;
                while Instant::now() < end {
                    // Every fourth request is a refusal case; the rest are valid callers.
                    i += 1;
                    let (token, want) = if i % 4 == 0 {
                        &cases[200 + (i / 4) % (cases.len() - 200)]
                    } else {
                        &cases[i % 200]
                    };
                    let mut request = client.get(&url);
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    let status = match request.send().await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 599,
                    };
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    if status == 200 {
                        tally.admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    if status != *want {
                        tally.wrong.fetch_add(1, Ordering::Relaxed);
                        if *want == 200 && status >= 500 {
                            tally.valid_5xx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        rss.push(rss_kib(pid));
    }
    for worker in workers {
        worker.await.unwrap();
    }

    let requests = tally.requests.load(Ordering::Relaxed);
    let (first, last) = (rss[rss.len() / 3], *rss.last().unwrap());
    eprintln!(
        "soak: {secs} s, {requests} requests ({:.0}/s), {} admitted, {} wrong, {} valid 5xx, proxy RSS {} KiB at a third, \
         {} KiB at the end (peak {} KiB)",
        requests as f64 / secs as f64,
        tally.admitted.load(Ordering::Relaxed),
        tally.wrong.load(Ordering::Relaxed),
        tally.valid_5xx.load(Ordering::Relaxed),
        first,
        last,
        rss.iter().max().unwrap()
    );
    assert!(requests > 100, "the soak hardly ran: {requests} requests");
    assert_eq!(tally.wrong.load(Ordering::Relaxed), 0, "wrong decisions");
    assert_eq!(
        tally.valid_5xx.load(Ordering::Relaxed),
        0,
        "5xx for valid callers"
    );
    assert_eq!(
        reached.load(Ordering::Relaxed),
        tally.admitted.load(Ordering::Relaxed),
        "only admitted requests reach the upstream"
    );
    assert_eq!(
        unverified.load(Ordering::Relaxed),
        0,
        "every forwarded request carries the verified caller"
    );
    assert!(
        last < first + 16 * 1024,
        "proxy RSS grew from {first} KiB to {last} KiB: something is unbounded"
    );
    assert_eq!(
        emulator.hits(idgate_emulator::Route::OidcJwks),
        1,
        "keys fetched once at startup"
    );

    // SIGTERM: the proxy finishes what is in flight and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = proxy.0.try_wait().unwrap() {
            assert!(exit.success(), "idgate proxy exited with {exit} on SIGTERM");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idgate proxy did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
