//! `idgate proxy` as Cloud Run runs it (issue #16, "the sidecar as deployed"): listening on `PORT` when no
//! `--listen` is given, and logging one Cloud Logging JSON object per stderr line with `--log-format json`.

mod common;

use common::{ALLOWED, free_port};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use idgate_emulator::{Emulator, TokenSpec};
use serde_json::Value;

/// A child process, killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator, an upstream answering `/healthz` and `/hello`, and a config for a proxy in front of it.
struct Setup {
    emulator: Emulator,
    upstream: SocketAddr,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(audience: &str) -> Self {
        let emulator = Emulator::start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/hello", get(|| async { "hello" }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let dir = tempfile::tempdir().unwrap();
        let config =
            common::write_proxy_config(dir.path(), audience, emulator.base_url().as_str(), "");
        Self {
            emulator,
            upstream,
            config,
            dir,
        }
    }

    /// `idgate proxy --config .. --upstream ..` plus `args`, with `env`, stderr to `stderr.log` in the test's
    /// directory. RUST_LOG is set, so that the caller's environment cannot change what is logged.
    fn proxy(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin!("idgate"));
        command
            .args(["proxy", "--config"])
            .arg(&self.config)
            .args(["--upstream", &format!("http://{}", self.upstream)])
            .args(args)
            .env_remove("PORT")
            .env_remove("IDGATE_LOG_FORMAT")
            .env("RUST_LOG", "info,idgate::decision=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.stderr()).unwrap());
        command
    }

    fn stderr(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `GET http://addr/healthz` answers 200 (the path is exempt: the upstream answers it).
async fn wait_until_up(addr: SocketAddr, stderr: &Path) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(format!("http://{addr}/healthz")).send().await {
            assert_eq!(response.status(), 200, "{}", read(stderr));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "idgate proxy did not come up on {addr}:\n{}",
            read(stderr)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every line of `log` parsed as a JSON object that has a string `severity` and a string `message`.
fn json_lines(log: &str) -> Vec<serde_json::Map<String, Value>> {
    assert!(!log.is_empty(), "nothing was logged");
    log.lines()
        .map(|line| {
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
                panic!("a stderr line is not one JSON object: {line:?}\n{log}");
            };
            assert!(object["severity"].is_string(), "{line}");
            assert!(object["message"].is_string(), "{line}");
            object
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_logs_one_cloud_logging_json_object_per_line() {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let audience = format!("http://{listen}");
    let setup = Setup::new(&audience).await;
    let _proxy = Running(
        setup
            .proxy(
                &["--listen", &listen.to_string(), "--log-format", "json"],
                &[],
            )
            .spawn()
            .unwrap(),
    );
    wait_until_up(listen, &setup.stderr()).await;

    let client = reqwest::Client::new();
    let token = setup
        .emulator
        .mint(&TokenSpec::service_account(ALLOWED).audience(&audience));
    let admitted = client
        .get(format!("http://{listen}/hello?q=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(admitted.status(), 200);
    // Hostile: a User-Agent and a path built to close the JSON string and start a new object, and a bearer
    // value that is not a token.
    let hostile = client
        .get(format!(
            "http://{listen}/%22%7D%7B%22severity%22:%22ERROR%22?x=%22%0A"
        ))
        .header(
            "user-agent",
            "\"}{\"severity\":\"ERROR\",\"message\":\"injected",
        )
        .header("authorization", "Bearer \"},{\"severity\":\"ERROR\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 401);

    let log = read(&setup.stderr());
    let lines = json_lines(&log);
    let ready = lines
        .iter()
        .find(|line| line["message"] == "idgate proxy ready")
        .unwrap_or_else(|| panic!("no ready line:\n{log}"));
    assert_eq!(ready["severity"], "INFO", "{log}");
    assert_eq!(ready["listen"], listen.to_string(), "{log}");
    // Numbers and booleans stay JSON numbers and booleans.
    assert!(ready["max_connections"].is_u64(), "{log}");
    assert!(ready["trust_forwarded_headers"].is_boolean(), "{log}");
    assert!(ready["time"].is_string(), "{log}");
    // Both decisions were logged, on the decision target, and nothing the caller sent became a severity.
    let decisions: Vec<_> = lines
        .iter()
        .filter(|line| line["target"] == "idgate::decision")
        .collect();
    assert!(
        decisions.iter().any(|line| line["outcome"] == "allow"),
        "{log}"
    );
    assert!(
        decisions.iter().any(|line| line["outcome"] == "reject"),
        "{log}"
    );
    assert!(
        lines.iter().all(|line| line["severity"] != "ERROR"),
        "{log}"
    );
    // Each decision carries its request as Cloud Logging's httpRequest, from the proxy's per-request span: the
    // method, the path without its query, the peer, the protocol, and a hostile User-Agent kept whole, as data.
    let admitted_request = &decisions
        .iter()
        .find(|line| line["outcome"] == "allow")
        .unwrap()["httpRequest"];
    assert_eq!(admitted_request["requestMethod"], "GET", "{log}");
    assert_eq!(admitted_request["requestUrl"], "/hello", "{log}");
    assert_eq!(admitted_request["remoteIp"], "127.0.0.1", "{log}");
    assert_eq!(admitted_request["protocol"], "HTTP/1.1", "{log}");
    let hostile_request = &decisions
        .iter()
        .find(|line| line["outcome"] == "reject")
        .unwrap()["httpRequest"];
    assert_eq!(
        hostile_request["requestUrl"], "/%22%7D%7B%22severity%22:%22ERROR%22",
        "{log}"
    );
    assert_eq!(
        hostile_request["userAgent"], "\"}{\"severity\":\"ERROR\",\"message\":\"injected",
        "{log}"
    );
    // Query strings never reach the logs.
    assert!(!log.contains("q=1") && !log.contains("x=%22"), "{log}");
    // Where a line carries the request (the proxy's per-request span, OpenTelemetry-named fields), httpRequest has
    // Cloud Logging's types: the path without its query, the status a number, the latency a Duration string.
    for request in lines.iter().filter_map(|line| line.get("httpRequest")) {
        if let Some(url) = request.get("requestUrl") {
            assert!(
                url.as_str().is_some_and(|url| url.starts_with('/')),
                "{log}"
            );
        }
        if let Some(status) = request.get("status") {
            assert!(status.is_u64(), "{log}");
        }
        if let Some(latency) = request.get("latency") {
            let seconds = latency.as_str().and_then(|l| l.strip_suffix('s'));
            assert!(seconds.is_some_and(|s| s.parse::<f64>().is_ok()), "{log}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_listens_on_every_interface_at_port_when_no_listen_is_given() {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let setup = Setup::new(&format!("http://{listen}")).await;
    // IDGATE_LOG_FORMAT chooses the format as --log-format does.
    let _proxy = Running(
        setup
            .proxy(
                &[],
                &[("PORT", &port.to_string()), ("IDGATE_LOG_FORMAT", "json")],
            )
            .spawn()
            .unwrap(),
    );
    wait_until_up(listen, &setup.stderr()).await;
    let log = read(&setup.stderr());
    let lines = json_lines(&log);
    let ready = lines
        .iter()
        .find(|line| line["message"] == "idgate proxy ready")
        .unwrap_or_else(|| panic!("no ready line:\n{log}"));
    assert_eq!(ready["listen"], format!("0.0.0.0:{port}"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_is_not_a_port_number_stops_the_proxy_unless_listen_is_given() {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let setup = Setup::new(&format!("http://{listen}")).await;
    for bad in ["http", "0", "70000", ""] {
        let output = tokio::task::spawn_blocking({
            let mut command = setup.proxy(&[], &[("PORT", bad)]);
            command.stderr(Stdio::piped());
            move || command.output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "PORT={bad:?}: {stderr}");
        assert!(
            stderr.contains("PORT") && stderr.contains(&format!("{bad:?}")),
            "PORT={bad:?}: {stderr}"
        );
    }
    // --listen always wins: the same bad PORT is not even read.
    let _proxy = Running(
        setup
            .proxy(&["--listen", &listen.to_string()], &[("PORT", "http")])
            .spawn()
            .unwrap(),
    );
    wait_until_up(listen, &setup.stderr()).await;
    // Text, the default: the ready line is not JSON.
    let log = read(&setup.stderr());
    assert!(log.contains("idgate proxy ready"), "{log}");
    assert!(!log.trim_start().starts_with('{'), "{log}");
}

#[test]
fn help_says_where_the_proxy_listens_and_which_log_formats_exist() {
    let output = Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(help.contains("0.0.0.0:$PORT"), "{help}");
    assert!(help.contains("--log-format"), "{help}");
    assert!(help.contains("IDGATE_LOG_FORMAT"), "{help}");
}

/// The repository root (this crate is `crates/idgate-cli`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_deploy_example_config_is_valid() {
    let config = repo_root().join("examples/deploy/idgate.toml");
    let output = Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("every request must pass [inbound]"),
        "{stdout}"
    );
}

#[test]
fn the_dockerfile_builds_with_the_workspace_msrv_toolchain() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .expect("rust-version in the workspace manifest")
        .trim_matches('"');
    let dockerfile =
        std::fs::read_to_string(repo_root().join("examples/deploy/Dockerfile")).unwrap();
    let build_image = format!("FROM rust:{msrv}-slim-bookworm AS build");
    assert!(
        dockerfile.lines().any(|line| line == build_image),
        "the Dockerfile's build stage should be `{build_image}`:\n{dockerfile}"
    );
    // The build stage runs the script CI runs.
    assert!(
        dockerfile.contains("RUN examples/deploy/build.sh /out"),
        "{dockerfile}"
    );
}
