//! App identity: how long `AppIdentity` detection takes off Google Cloud, against the configured probe timeout, and
//! what a second detection costs on Google Cloud (the emulator playing the metadata server).
//!
//! Off Google Cloud two ways: a closed loopback port (connection refused at once) and a listener that accepts and
//! never answers (the slow case the probe timeout bounds: a firewall that drops, a half-open proxy). In the main
//! report (section `detect`), and alone with `cargo run --release -- detect [RUNS]`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use idgate_core::app::{Detector, Runtime};
use idgate_emulator::Route;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::env::Env;
use crate::report::Report;
use crate::timing::median;

const SECTION: &str = "App identity (`Detector::detect`)";
/// The probe timeout of the main report's off-Google-Cloud rows.
const SHORT_TIMEOUT: Duration = Duration::from_millis(100);
/// What detection may take beyond the probe timeout: the probe's own work before its timer starts (the process's
/// shared metadata HTTP client is built by the first probe: tens of ms on this machine, reported in the notes),
/// the timer's millisecond granularity, and a wake-up on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(50);

/// A loopback port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

/// A loopback listener that accepts every connection and never answers (the connections are held open for the
/// life of the process, on a thread of their own).
fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn detection_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `runs` detections, each by a fresh detector (one probe each) against the metadata server at `addr`: their
/// times in order, and the runtime the last one found.
fn time_detections(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    timeout: Duration,
    runs: usize,
) -> (Vec<Duration>, Runtime) {
    let url = format!("http://{addr}").parse().expect("url");
    let mut times = Vec::with_capacity(runs);
    let mut runtime = Runtime::Unknown;
    for _ in 0..runs {
        let detector = Detector::with_env([("K_SERVICE", "bench")])
            .metadata_url(&url)
            .probe_timeout(timeout);
        let started = Instant::now();
        let me = rt.block_on(detector.detect()).clone();
        times.push(started.elapsed());
        runtime = me.runtime;
    }
    (times, runtime)
}

/// Runs the measurement and prints one line per case.
pub(crate) fn run(runs: usize) {
    let rt = detection_runtime();
    let cases = [
        ("closed loopback port", closed_port()),
        ("silent listener", silent_listener()),
    ];
    println!(
        "AppIdentity::detect off Google Cloud ({runs} runs each, one probe per run, nothing else asked)"
    );
    println!();
    println!(
        "{:<22} {:>14} {:>10} {:>10} {:>10}  runtime",
        "metadata server", "probe timeout", "min ms", "median ms", "max ms"
    );
    for (name, addr) in cases {
        for timeout in [
            Duration::from_millis(100),
            idgate_core::google::PROBE_TIMEOUT,
        ] {
            let (mut times, runtime) = time_detections(&rt, addr, timeout, runs);
            times.sort();
            println!(
                "{name:<22} {:>11.0} ms {:>10.1} {:>10.1} {:>10.1}  {}",
                millis(timeout),
                millis(times[0]),
                millis(times[times.len() / 2]),
                millis(times[times.len() - 1]),
                runtime.description()
            );
        }
    }
}

/// A loopback TCP forwarder to `upstream` that counts the connections it accepts and every byte it carries, either
/// way: proof that a call did no I/O, whatever it would have asked.
struct CountingProxy {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(rt: &tokio::runtime::Runtime, upstream: SocketAddr) -> Self {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (c, b) = (connections.clone(), bytes.clone());
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, b.clone()));
                tokio::spawn(pump(server_read, client_write, b.clone()));
            }
        });
        Self {
            addr,
            connections,
            bytes,
        }
    }

    /// (connections accepted, bytes carried) so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.connections.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Every request the emulator has answered, on any of its endpoints.
fn emulator_requests(env: &Env) -> u64 {
    Route::ALL
        .iter()
        .map(|&route| env.emulator.hits(route))
        .sum()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", millis(d))
}

/// The main report's section: off Google Cloud within the probe bound; on the emulator, the second call without
/// I/O.
pub(crate) fn section(env: &Env, report: &mut Report) {
    let rt = detection_runtime();
    let closed = closed_port();
    let silent = silent_listener();
    let mut first_closed = None;
    for (name, addr, timeout, runs) in [
        ("a closed loopback port", closed, SHORT_TIMEOUT, 20),
        ("a listener that never answers", silent, SHORT_TIMEOUT, 20),
        (
            "a listener that never answers",
            silent,
            idgate_core::google::PROBE_TIMEOUT,
            6,
        ),
    ] {
        let (times, runtime) = time_detections(&rt, addr, timeout, runs);
        first_closed.get_or_insert(times[0]);
        let max = times.iter().max().copied().unwrap_or_default();
        let median_ms = median(&times.iter().map(|&t| millis(t)).collect::<Vec<_>>());
        report.goal(
            SECTION,
            format!(
                "off Google Cloud, {name}, probe timeout {:.0} ms: detection time ({runs} detections)",
                millis(timeout)
            ),
            format!(
                "median {median_ms:.1} ms, max {}; runtime: {}",
                ms(max),
                runtime.description()
            ),
            format!("≤ timeout + {:.0} ms", millis(MARGIN)),
            max <= timeout + MARGIN && runtime == Runtime::NotGoogleCloud,
        );
    }

    // On Google Cloud: the emulator's metadata server, behind a counting forwarder.
    let proxy = CountingProxy::start(&rt, env.emulator.local_addr());
    let url = format!("http://{}", proxy.addr).parse().expect("url");
    let detector = Detector::with_env([("K_SERVICE", "bench")]).metadata_url(&url);
    let requests_before = emulator_requests(env);
    let started = Instant::now();
    let first = rt.block_on(detector.detect()).clone();
    let first_time = started.elapsed();
    let (first_connections, first_bytes) = proxy.counts();
    let first_requests = emulator_requests(env) - requests_before;
    report.info(
        SECTION,
        "on the emulator's metadata server: first detection (probe, then every value at once)",
        format!(
            "{}; {first_requests} requests, {first_connections} connection(s), {first_bytes} bytes; found {} in \
             project {}",
            ms(first_time),
            first.runtime.description(),
            first.project_id().unwrap_or("(none)")
        ),
    );
    // The second call, alone, then many more: each polled once (a memoised answer is ready at once); one that is
    // not ready is finished on the runtime, and the counters below would show its I/O.
    let started = Instant::now();
    let second = crate::timing::run(&rt, detector.detect());
    let second_time = started.elapsed();
    std::hint::black_box(second);
    const LATER: usize = 100_000;
    const CHUNK: usize = 1000;
    let mut chunk_ns = Vec::with_capacity(LATER / CHUNK);
    for _ in 0..LATER / CHUNK {
        let t = Instant::now();
        for _ in 0..CHUNK {
            std::hint::black_box(crate::timing::run(&rt, detector.detect()));
        }
        chunk_ns.push(t.elapsed().as_nanos() as f64 / CHUNK as f64);
    }
    let (connections, bytes) = proxy.counts();
    let requests = emulator_requests(env) - requests_before - first_requests;
    let (new_connections, new_bytes) = (connections - first_connections, bytes - first_bytes);
    report.goal(
        SECTION,
        format!(
            "on the emulator: the second detection, then {LATER} more, on the same `Detector`: I/O and time"
        ),
        format!(
            "{requests} requests, {new_connections} connections, {new_bytes} bytes; second call {:.2} µs, later \
             calls median {:.0} ns",
            second_time.as_secs_f64() * 1e6,
            median(&chunk_ns)
        ),
        "no I/O (0 requests, 0 bytes)",
        requests == 0 && new_connections == 0 && new_bytes == 0,
    );
    report.note(
        SECTION,
        format!(
            "Off Google Cloud: each detection by a fresh `Detector` (so each probes once), timed around \
             `detect().await` on a 2-worker runtime; the probe is one GET with the probe timeout, no retries. The \
             goal allows {:.0} ms beyond the timeout for work outside the probe's timer and the wake-up on a loaded \
             machine; the first detection of the section (closed port) took {}, which includes building the \
             process's shared metadata HTTP client if no earlier section had. On the emulator: the detector asks \
             through a loopback forwarder that counts connections and bytes either way, and the emulator counts \
             requests on every endpoint; after the first detection nothing may move.",
            millis(MARGIN),
            ms(first_closed.unwrap_or_default())
        ),
    );
}
