//! idgate's comparative benchmarks, in one command:
//!
//! ```text
//! cd benches && cargo run --release
//! ```
//!
//! Starts the emulator (Google's key endpoints on 127.0.0.1), runs every comparison (verification against the
//! signature-check floor, jsonwebtoken, Rust peers, Python google-auth and Node google-auth-library; HTTP with wrk; outbound
//! attachment; key fetches; memory), prints the table and writes `benches/BENCHMARKS.md`.
//!
//! Needs `wrk` (installed with `apt-get` when missing and running as root), `python3` with `venv` and `node`/`npm`; the Python and Node libraries are
//! installed on first run into `benches/.venv` and `benches/.tools/node` (both git-ignored).

// A command-line report: printing is its job.
#![allow(clippy::print_stdout)]

mod detect;
mod env;
mod fetches;
mod foreign;
mod http_load;
mod machine;
mod memory;
mod metrics_cost;
mod outbound;
mod report;
mod sidecar;
mod signin;
mod timing;
mod verify;

use std::time::Instant;

const METHOD: &str = "\
- One process runs everything; figures compared with each other come from the same run, measured side by side \
  (interleaved rounds) on the same tokens and keys. Python and Node run in child processes on the same tokens, \
  right after the Rust single-thread figures.
- The machine is shared (other engineers build on it while this runs): absolute figures move by 10-30 % between \
  runs; the ratios are steadier because the contenders are interleaved. The load average at start and end is \
  reported above as a noise indicator.
- Rerun with `cd benches && cargo run --release`; `-- --quick` skips the Python/Node installs and the memory \
  child processes.";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("memory") {
        let kind = args.get(2).map_or("iap", String::as_str);
        let capacity = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(100_000);
        let tokens = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(100_000);
        memory::child(kind, capacity, tokens);
        return;
    }
    if args.get(1).map(String::as_str) == Some("probe") {
        let name = args.get(2).map_or("idgate_cold", String::as_str);
        let threads = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(2);
        let seconds = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(5);
        verify::probe(name, threads, seconds);
        return;
    }
    if args.get(1).map(String::as_str) == Some("probe-layer") {
        let which = args.get(2).map_or("identity", String::as_str);
        let seconds = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(5);
        http_load::probe_layer(which, seconds);
        return;
    }
    if args.get(1).map(String::as_str) == Some("probe-proxy") {
        let seconds = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(10);
        let connections = args.get(3).and_then(|c| c.parse().ok()).unwrap_or(32);
        sidecar::probe(seconds, connections);
        return;
    }
    if args.get(1).map(String::as_str) == Some("detect") {
        let runs = args
            .get(2)
            .and_then(|c| c.parse().ok())
            .unwrap_or(20)
            .max(1);
        detect::run(runs);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<&str> = args.iter().find_map(|a| a.strip_prefix("--only="));
    let wants = |s: &str| only.is_none_or(|o| o.split(',').any(|x| x == s));

    let started = Instant::now();
    let machine = machine::describe();
    eprintln!(
        "idgate-bench on {} × {} ({}), load {}",
        machine.nproc, machine.cpu, machine.rustc, machine.load_start
    );
    let env = env::Env::start();
    let mut report = report::Report::default();

    if wants("verify") || wants("scaling") {
        eprintln!("[{:>5.1}s] minting tokens", started.elapsed().as_secs_f64());
        let oidc = env.oidc_tokens(256, 0);
        let iap = env.iap_tokens(256, 0);
        let contenders = verify::Contenders::new(&env, &oidc, &iap);
        if wants("verify") {
            eprintln!(
                "[{:>5.1}s] verification, single thread",
                started.elapsed().as_secs_f64()
            );
            let cold = verify::single_thread(&contenders, &oidc, &iap, &mut report);
            if !quick {
                eprintln!(
                    "[{:>5.1}s] Python and Node",
                    started.elapsed().as_secs_f64()
                );
                foreign::compare(&env, &oidc, &iap, cold, &mut report);
            }
            eprintln!(
                "[{:>5.1}s] verification, 2 threads",
                started.elapsed().as_secs_f64()
            );
            verify::concurrent(&env, &contenders, &mut report);
        }
        if wants("scaling") {
            eprintln!(
                "[{:>5.1}s] verification, scaling with threads",
                started.elapsed().as_secs_f64()
            );
            verify::scaling(&env, &contenders, &mut report);
        }
    }
    if wants("http") {
        eprintln!("[{:>5.1}s] HTTP (wrk)", started.elapsed().as_secs_f64());
        http_load::run(&env, &mut report);
    }
    if wants("signin") {
        eprintln!("[{:>5.1}s] sign-in", started.elapsed().as_secs_f64());
        signin::run(&env, &mut report);
    }
    if wants("sidecar") {
        eprintln!(
            "[{:>5.1}s] sidecar vs nginx and haproxy (wrk)",
            started.elapsed().as_secs_f64()
        );
        sidecar::run(&env, &mut report);
    }
    if wants("outbound") {
        eprintln!("[{:>5.1}s] outbound", started.elapsed().as_secs_f64());
        outbound::run(&env, &mut report);
    }
    if wants("fetches") {
        eprintln!("[{:>5.1}s] key fetches", started.elapsed().as_secs_f64());
        fetches::run(&env, &mut report);
    }
    if wants("detect") {
        eprintln!("[{:>5.1}s] app identity", started.elapsed().as_secs_f64());
        detect::section(&env, &mut report);
    }
    if wants("memory") && !quick {
        eprintln!("[{:>5.1}s] memory", started.elapsed().as_secs_f64());
        memory::run(&mut report);
    }
    if wants("metrics") {
        eprintln!(
            "[{:>5.1}s] metrics on vs off",
            started.elapsed().as_secs_f64()
        );
        metrics_cost::run(quick, &mut report);
    }
    let load_end = machine::load_average();
    println!("{}", report.table());
    println!(
        "\nload average at start {} / end {load_end}; {:.0} s",
        machine.load_start,
        started.elapsed().as_secs_f64()
    );
    if only.is_none() && !quick {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        std::fs::write(&path, report.markdown(&machine, &load_end, METHOD))
            .expect("write BENCHMARKS.md");
        println!("wrote {}", path.display());
    }
}
