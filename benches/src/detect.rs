//! `cargo run --release -- detect [RUNS]`: how long `AppIdentity` detection takes off Google Cloud, against the
//! configured probe timeout. Two ways of being off Google Cloud: a closed loopback port (connection refused at
//! once) and a listener that accepts and never answers (the slow case the probe timeout bounds: a firewall that
//! drops, a half-open proxy).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use idgate_core::app::{Detector, Runtime};

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

/// Runs the measurement and prints one line per case.
pub(crate) fn run(runs: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
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
