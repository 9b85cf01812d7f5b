//! The real `idgate proxy` and `idgate emulator` binaries against clients that hold connections without using
//! them (issue #10, item 5): silent connections, request heads dribbled a byte at a time, idle keep-alive
//! connections, more connections than the cap, a 256-descriptor limit, oversized bodies. Each limit closes what it
//! bounds while callers with a valid token are still served, and a request waiting on a slow upstream is not cut.
//!
//! "Closed within" bounds are generous (a loaded 2-core CI machine); "not closed before" bounds can only pass more
//! easily on a slow machine.

mod common;

use common::{ALLOWED, free_port};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{any, get, post};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idgate_emulator::{Emulator, TokenSpec};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// A child process, killed if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What reached the upstream.
struct Upstream {
    /// Requests forwarded (readiness probes on /healthz excluded).
    hits: AtomicUsize,
    /// `/hold` handlers waiting now, and the most at once.
    holding: AtomicUsize,
    most_holding: AtomicUsize,
    /// `/upload` bodies that arrived whole, and the largest.
    uploads: AtomicUsize,
    largest_upload: AtomicUsize,
    /// `/hold` waits for a permit.
    release: Semaphore,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            hits: AtomicUsize::new(0),
            holding: AtomicUsize::new(0),
            most_holding: AtomicUsize::new(0),
            uploads: AtomicUsize::new(0),
            largest_upload: AtomicUsize::new(0),
            release: Semaphore::new(0),
        }
    }
}

fn upstream_router(seen: &Arc<Upstream>) -> Router {
    let hello = {
        let seen = Arc::clone(seen);
        move |headers: http::HeaderMap| async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            let caller = headers
                .get("x-idgate-caller-email")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_owned();
            format!("hello {caller}")
        }
    };
    let slow = {
        let seen = Arc::clone(seen);
        move || async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(secs(3)).await;
            "slow"
        }
    };
    let hold = {
        let seen = Arc::clone(seen);
        move || async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            let now = seen.holding.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most_holding.fetch_max(now, Ordering::SeqCst);
            let _permit = seen.release.acquire().await;
            seen.holding.fetch_sub(1, Ordering::SeqCst);
            "released"
        }
    };
    let upload = {
        let seen = Arc::clone(seen);
        move |body: Body| async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            let bytes = body
                .collect()
                .await
                .map_err(|_| (http::StatusCode::BAD_REQUEST, "cut"))?
                .to_bytes();
            seen.uploads.fetch_add(1, Ordering::SeqCst);
            seen.largest_upload.fetch_max(bytes.len(), Ordering::SeqCst);
            Ok::<_, (http::StatusCode, &str)>(format!("got {} bytes", bytes.len()))
        }
    };
    let pause = {
        let seen = Arc::clone(seen);
        move || async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(secs(1)).await;
            "paused"
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pause", get(pause))
        .route("/hello", any(hello))
        .route("/slow", get(slow))
        .route("/hold", get(hold))
        .route("/upload", post(upload))
}

/// The emulator, an upstream, and `idgate proxy` in front of it.
struct Setup {
    _emulator: Emulator,
    upstream: Arc<Upstream>,
    listen: SocketAddr,
    token: String,
    proxy: Running,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// Starts `idgate proxy` with `flags`, a config with `proxy_table` (TOML lines, may be empty) and, if given,
    /// under `ulimit -n`.
    async fn start(flags: &[&str], proxy_table: &str, open_files: Option<u32>) -> Self {
        let emulator = Emulator::start().await.unwrap();
        let upstream = Arc::new(Upstream::default());
        let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream_listener.local_addr().unwrap();
        let router = upstream_router(&upstream);
        tokio::spawn(async move { axum::serve(upstream_listener, router).await });

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let audience = format!("http://{listen}");
        let dir = tempfile::tempdir().unwrap();
        let config = common::write_proxy_config(
            dir.path(),
            &audience,
            emulator.base_url().as_str(),
            proxy_table,
        );
        let stderr = dir.path().join("stderr.log");
        let binary = assert_cmd::cargo::cargo_bin!("idgate");
        let mut command = match open_files {
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(binary);
                sh
            }
            None => Command::new(binary),
        };
        command
            .args(["proxy", "--config"])
            .arg(&config)
            .args([
                "--listen",
                &listen.to_string(),
                "--upstream",
                &format!("http://{upstream_addr}"),
            ])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let proxy = Running(command.spawn().unwrap());
        let token = emulator.mint(&TokenSpec::service_account(ALLOWED).audience(&audience));
        let setup = Self {
            _emulator: emulator,
            upstream,
            listen,
            token,
            proxy,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + secs(20);
        while client()
            .get(format!("http://{listen}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "idgate proxy did not come up:\n{}",
                setup.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        setup
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// A caller with a valid token: `GET /hello` through the proxy, on a fresh connection.
    async fn legit(&self) -> (u16, String) {
        let response = client()
            .get(self.url("/hello"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("a valid caller was not served: {e}\n{}", self.log()));
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    fn assert_alive(&mut self) {
        assert!(
            self.proxy.0.try_wait().unwrap().is_none(),
            "idgate proxy exited:\n{}",
            self.log()
        );
    }
}

/// No connection reuse: every request opens its own connection, so a server-side idle close never races a reuse.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn hello_ok() -> (u16, String) {
    (200, format!("hello {ALLOWED}"))
}

/// Reads until the peer closes (EOF or reset); when that came, or `None` if not within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Instant> {
    tokio::time::timeout(within, async {
        let mut buf = [0_u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Sends a request head one byte every 300 ms; whether the server closed the connection within `within`.
async fn dribble(addr: SocketAddr, within: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = format!(
        "GET /hello HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}",
        "a".repeat(200)
    );
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            return true;
        }
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut [0_u8; 256])).await
        {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
    }
    false
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: the status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut data = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if data.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned();
                return (status, body);
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slowloris_connections_are_closed_while_callers_are_served() {
    // The flag overrides the config's 30 s: without it nothing here would close within 5 s.
    let mut setup = Setup::start(
        &[
            "--header-read-timeout",
            "1",
            "--idle-timeout",
            "2",
            "--max-connections",
            "32",
        ],
        "[proxy]\nheader_read_timeout_secs = 30",
        None,
    )
    .await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(setup.listen).await.unwrap());
    }
    let slowloris: Vec<_> = (0..5)
        .map(|_| tokio::spawn(dribble(setup.listen, secs(8))))
        .collect();

    // Meanwhile, a caller with a valid token is served.
    assert_eq!(setup.legit().await, hello_ok());

    let deadline = opened + secs(6);
    for stream in &mut silent {
        let at = closed_within(stream, deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("a silent connection stayed open");
        assert!(at - opened >= Duration::from_millis(900), "closed early");
    }
    for slow in slowloris {
        assert!(slow.await.unwrap(), "a dribbled request head was not cut");
    }
    assert_eq!(setup.legit().await, hello_ok());
    assert_eq!(setup.upstream.hits.load(Ordering::SeqCst), 2);
    setup.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let setup = Setup::start(
        &["--header-read-timeout", "1", "--idle-timeout", "3"],
        "",
        None,
    )
    .await;
    let mut stream = TcpStream::connect(setup.listen).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /hello HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
                setup.listen, setup.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await, hello_ok());
    let answered = Instant::now();
    let closed = closed_within(&mut stream, secs(8))
        .await
        .expect("an idle keep-alive connection stayed open");
    // The idle timeout (3 s) closed it, not the 1 s header timeout (the margin absorbs a late read here).
    assert!(
        closed - answered >= secs(2),
        "closed {:?} after the response",
        closed - answered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_on_a_slow_upstream_is_answered() {
    let setup = Setup::start(
        &["--header-read-timeout", "1", "--idle-timeout", "1"],
        "",
        None,
    )
    .await;
    let started = Instant::now();
    let response = client()
        .get(setup.url("/slow"))
        .bearer_auth(&setup.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slow");
    assert!(started.elapsed() >= secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let setup = Setup::start(&["--max-connections", "4"], "", None).await;
    let holds: Vec<_> = (0..6)
        .map(|_| {
            let request = client()
                .get(setup.url("/hold"))
                .bearer_auth(&setup.token)
                .send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let deadline = Instant::now() + secs(10);
    while setup.upstream.holding.load(Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < deadline,
            "four requests were not forwarded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Four connections hold every slot: the fifth and sixth wait in the kernel's backlog, and so does a new caller.
    let caller = tokio::spawn({
        let request = client()
            .get(setup.url("/hello"))
            .bearer_auth(&setup.token)
            .send();
        async move { request.await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(setup.upstream.hits.load(Ordering::SeqCst), 4);
    assert!(!caller.is_finished());

    setup.upstream.release.add_permits(6);
    for hold in holds {
        assert_eq!(hold.await.unwrap().unwrap(), 200);
    }
    assert_eq!(caller.await.unwrap().unwrap(), 200);
    assert_eq!(setup.upstream.most_holding.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_256_descriptors_300_silent_connections_do_not_lock_callers_out() {
    let mut setup = Setup::start(
        &[
            "--header-read-timeout",
            "1",
            "--idle-timeout",
            "2",
            "--max-connections",
            "100",
        ],
        "",
        Some(256),
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(setup.listen).await.unwrap());
    }
    // 100 are served (and closed after 1 s), 200 wait in the backlog behind them, then this caller: served once
    // the silent ones ahead of it have timed out, a few header timeouts later.
    let started = Instant::now();
    let served = tokio::time::timeout(secs(20), setup.legit())
        .await
        .unwrap_or_else(|_| panic!("a valid caller was locked out:\n{}", setup.log()));
    assert_eq!(served, hello_ok());
    eprintln!(
        "served after {:?} behind 300 silent connections",
        started.elapsed()
    );
    setup.assert_alive();
    assert_eq!(setup.legit().await, hello_ok());
    let log = setup.log();
    assert!(
        !log.contains("accept failed"),
        "ran out of descriptors:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_never_reach_the_upstream() {
    // The limit comes from the config file.
    let setup = Setup::start(&[], "[proxy]\nmax_request_body_bytes = 1024", None).await;
    let post = |body: Vec<u8>| {
        client()
            .post(setup.url("/upload"))
            .bearer_auth(&setup.token)
            .body(body)
            .send()
    };
    let response = post(vec![b'a'; 10_000]).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(setup.upstream.hits.load(Ordering::SeqCst), 0);
    let response = post(vec![b'a'; 1000]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "got 1000 bytes");

    // A chunked body has no length to refuse up front: it is cut where it passes the limit, so the upstream never
    // receives it whole.
    let mut stream = TcpStream::connect(setup.listen).await.unwrap();
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        setup.listen, setup.token
    )
    .into_bytes();
    for _ in 0..10 {
        request.extend_from_slice(format!("200\r\n{}\r\n", "a".repeat(512)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let _ = stream.write_all(&request).await;
    let (status, _) = read_response(&mut stream).await;
    assert_ne!(status, 200);
    assert_eq!(setup.upstream.uploads.load(Ordering::SeqCst), 1);
    assert_eq!(setup.upstream.largest_upload.load(Ordering::SeqCst), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_prior_knowledge_caller_is_served() {
    let setup = Setup::start(&["--header-read-timeout", "1"], "", None).await;
    let stream = TcpStream::connect(setup.listen).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(setup.url("/hello"))
        .header("authorization", format!("Bearer {}", setup.token))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, hello_ok().1.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_closes_silent_connections_and_keeps_serving_keys() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
        .args(["emulator", "--port", &port.to_string(), "--key-dir"])
        .arg(dir.path())
        .args(["--header-read-timeout", "1"])
        // Its IAP proxy is an emulator listener too (never forwarding here: nothing is sent through it).
        .args(["--iap-proxy", "http://127.0.0.1:9/"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _emulator = Running(child);
    // The banner names the IAP proxy's address: `IAP proxy: http://127.0.0.1:PORT/ -> ...`.
    // Read on a thread that keeps draining: a closed pipe would fail the emulator's next print.
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("IAP proxy: http://") {
                let _ = found.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let iap_proxy = tokio::task::spawn_blocking(move || address.recv_timeout(secs(20)))
        .await
        .unwrap()
        .expect("the banner names the IAP proxy in time");
    let certs = format!("http://127.0.0.1:{port}/oauth2/v3/certs");
    let deadline = Instant::now() + secs(20);
    while client().get(&certs).send().await.is_err() {
        assert!(Instant::now() < deadline, "idgate emulator did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let response = client().get(&certs).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let jwks: serde_json::Value = response.json().await.unwrap();
    assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()));
    closed_within(&mut silent, secs(6))
        .await
        .expect("the emulator kept a silent connection open");
    let mut silent = TcpStream::connect(iap_proxy.as_str()).await.unwrap();
    closed_within(&mut silent, secs(6))
        .await
        .expect("the emulator's IAP proxy kept a silent connection open");
}

/// Outside review (high): one HTTP/2 connection could open an upstream connection per stream (200 by default), so
/// a few connections ran a proxy under `ulimit -n 256` out of descriptors (accept failures, 502s, callers locked out).
/// Streams per connection are capped, and requests in flight to the upstream never outnumber the connection cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_cannot_open_more_upstream_connections_than_the_budget() {
    let mut setup = Setup::start(&[], "", Some(256)).await;
    let token = setup.token.clone();
    let mut flood = Vec::new();
    // Three connections of 100 streams (the per-connection cap): 300 requests at once, more than 256 descriptors.
    for _ in 0..3 {
        let stream = TcpStream::connect(setup.listen).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        for _ in 0..100 {
            let mut sender = sender.clone();
            let request = http::Request::builder()
                .uri(setup.url("/pause"))
                .header("authorization", format!("Bearer {token}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            flood.push(tokio::spawn(async move {
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                Ok::<_, hyper::Error>(status)
            }));
        }
    }
    // While the flood waits for its turn, another caller is still served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = tokio::time::timeout(secs(20), setup.legit())
        .await
        .unwrap_or_else(|_| panic!("a valid caller was locked out:\n{}", setup.log()));
    assert_eq!(served, hello_ok());
    let mut statuses = std::collections::BTreeMap::new();
    for request in flood {
        let status = tokio::time::timeout(secs(60), request)
            .await
            .expect("every flood request is answered")
            .unwrap()
            .map_or(0, |status| status);
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        statuses,
        std::collections::BTreeMap::from([(200, 300)]),
        "{}",
        setup.log()
    );
    setup.assert_alive();
    let log = setup.log();
    assert!(
        !log.contains("accept failed") && !log.contains("upstream request failed"),
        "ran out of descriptors:\n{log}"
    );
}
