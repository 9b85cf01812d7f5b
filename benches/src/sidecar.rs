//! The sidecar against what a user would deploy instead: the same bare axum hello-world upstream reached directly,
//! through Debian's `nginx` and `haproxy` as plain reverse proxies (no authentication at all), and through
//! `idgate_proxy::serve` with the identity layer (memoized token), and with sign-in sessions (`Gates::from_signin`,
//! in-memory and Redis stores, a signed-in browser's request), all driven by the same `wrk` run side by side.
//!
//! The upstream runs on its own one-worker tokio runtime. The proxies get both the machine's cores each, as deployed:
//! nginx `worker_processes auto`, haproxy `nbthread` = `nproc`, idgate's proxy `nproc` serving threads
//! (`idgate_proxy::serve`'s default, as the `idgate proxy` binary runs it: one single-threaded runtime per thread, as
//! nginx's workers). Both plain proxies keep upstream connections alive, and neither writes an access log.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::http_load::{Wrk, ensure_tool, hello, identity_layer, spawn_proxy, wrk};
use crate::report::Report;
use crate::verify::fmt_us;

const SECTION: &str = "Sidecar vs nginx and HAProxy (wrk on loopback, same upstream)";

/// The name (prefix) of idgate's proxy's serving threads, whose CPU is the proxy's.
const PROXY_THREADS: &str = "idgate-serve";

/// A proxy started as a child process, stopped (SIGTERM, then waited for) when dropped: nginx's master takes its
/// workers down with it on SIGTERM, not on SIGKILL.
struct ChildProxy {
    name: &'static str,
    child: Child,
    dir: PathBuf,
}

impl Drop for ChildProxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{}: did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port (bound, read, released: the child binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idgate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn nginx_config(dir: &Path, listen: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "daemon off;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    upstream bare {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://bare;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"
    )
}

fn haproxy_config(listen: u16, upstream: SocketAddr, threads: usize) -> String {
    format!(
        "global
    nbthread {threads}
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option forwardfor
frontend front
    bind 127.0.0.1:{listen}
    default_backend bare
backend bare
    http-reuse always
    server bare {upstream}
"
    )
}

/// Starts `program args` and waits until `http://127.0.0.1:port/` answers 200; the error says why not.
fn start(
    name: &'static str,
    dir: PathBuf,
    program: &str,
    args: &[&str],
    port: u16,
    runtime: &tokio::runtime::Runtime,
) -> Result<ChildProxy, String> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: could not start `{program}`: {e}"))?;
    let mut proxy = ChildProxy { name, child, dir };
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut e) = proxy.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            return Err(format!(
                "{name} exited at startup ({status}): {}",
                stderr.trim()
            ));
        }
        let ok = runtime.block_on(async {
            reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
        });
        if ok {
            // Its stderr is no longer read: nothing may block on a full pipe.
            drop(proxy.child.stderr.take());
            return Ok(proxy);
        }
        if Instant::now() > deadline {
            return Err(format!("{name} did not answer 200 on {url} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_nginx(
    upstream: SocketAddr,
    runtime: &tokio::runtime::Runtime,
) -> Result<(ChildProxy, u16), String> {
    if !ensure_tool("nginx", &["-v"], "nginx-light") {
        return Err(
            "nginx not found and could not be installed (`apt-get install nginx-light`)".into(),
        );
    }
    let dir = temp_dir("nginx");
    let port = free_port();
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(&dir, port, upstream)).expect("nginx.conf");
    let (config, prefix) = (config.display().to_string(), dir.display().to_string());
    let proxy = start(
        "nginx",
        dir,
        "nginx",
        &["-p", &prefix, "-c", &config],
        port,
        runtime,
    )?;
    Ok((proxy, port))
}

fn start_haproxy(
    upstream: SocketAddr,
    threads: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<(ChildProxy, u16), String> {
    if !ensure_tool("haproxy", &["-v"], "haproxy") {
        return Err(
            "haproxy not found and could not be installed (`apt-get install haproxy`)".into(),
        );
    }
    let dir = temp_dir("haproxy");
    let port = free_port();
    let config = dir.join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(port, upstream, threads)).expect("haproxy.cfg");
    let config = config.display().to_string();
    // `-db`: foreground, no daemon; `-W` is not needed with one process.
    let proxy = start(
        "haproxy",
        dir,
        "haproxy",
        &["-db", "-f", &config],
        port,
        runtime,
    )?;
    Ok((proxy, port))
}

/// The upstream (one worker) and idgate's proxy (`threads` workers) on runtimes of their own; the proxy's address.
pub(crate) struct Servers {
    pub(crate) upstream: SocketAddr,
    pub(crate) proxy: SocketAddr,
    _upstream_rt: tokio::runtime::Runtime,
    _proxy_rt: tokio::runtime::Runtime,
}

pub(crate) fn servers(env: &Env, threads: usize) -> Servers {
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("upstream")
        .enable_all()
        .build()
        .expect("upstream runtime");
    // Only runs the proxy's `serve` future (its shutdown): the proxy serves on `threads` threads of its own
    // (`idgate-serve-N`).
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("proxy-holder")
        .enable_all()
        .build()
        .expect("proxy runtime");
    let upstream = upstream_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, hello()).await.expect("serve") });
        addr
    });
    let identity = identity_layer(env);
    let threads = std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN);
    let proxy = proxy_rt.block_on(spawn_proxy(upstream, identity, threads));
    Servers {
        upstream,
        proxy,
        _upstream_rt: upstream_rt,
        _proxy_rt: proxy_rt,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

fn medians(runs: &[Wrk]) -> Wrk {
    Wrk {
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_us: median(runs.iter().map(|r| r.p50_us).collect()),
        p99_us: median(runs.iter().map(|r| r.p99_us).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// `IDGATE_BENCH_PROXY_TRACING=1`: a global subscriber at `INFO` writing to a sink, as the `idgate proxy` binary's
/// default filter enables the proxy's spans. Global, so it is set only on request (a run of this section alone).
fn tracing_on() -> bool {
    if std::env::var_os("IDGATE_BENCH_PROXY_TRACING").is_none_or(|v| v.is_empty() || v == "0") {
        return false;
    }
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .try_init()
        .is_ok()
}

pub(crate) fn run(env: &Env, report: &mut Report) {
    if !ensure_tool("wrk", &["--version"], "wrk") {
        report.info(SECTION, "all", "not measured: `wrk` not found");
        return;
    }
    let traced = tracing_on();
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let servers = servers(env, threads);
    let token = env.oidc_tokens(2, 200_000).remove(0);
    let headers = [format!("Authorization: Bearer {token}")];

    let mut targets: Vec<(String, SocketAddr)> =
        vec![("bare hello-world".into(), servers.upstream)];
    let mut children = Vec::new();
    let mut nginx_pid = None;
    match start_nginx(servers.upstream, &env.runtime) {
        Ok((child, port)) => {
            nginx_pid = Some(child.child.id());
            children.push(child);
            targets.push((
                "nginx → bare (plain proxy, no authentication)".into(),
                SocketAddr::from(([127, 0, 0, 1], port)),
            ));
        }
        Err(e) => report.note(SECTION, format!("nginx skipped: {e}")),
    }
    let nginx = targets.iter().position(|(n, _)| n.starts_with("nginx"));
    match start_haproxy(servers.upstream, threads, &env.runtime) {
        Ok((child, port)) => {
            children.push(child);
            targets.push((
                "haproxy → bare (plain proxy, no authentication)".into(),
                SocketAddr::from(([127, 0, 0, 1], port)),
            ));
        }
        Err(e) => report.note(SECTION, format!("haproxy skipped: {e}")),
    }
    let idgate_name = if traced {
        "`idgate_proxy::serve` (identity layer, memoized token) → bare, INFO subscriber to a sink"
    } else {
        "`idgate_proxy::serve` (identity layer, memoized token) → bare"
    };
    targets.push((idgate_name.into(), servers.proxy));
    let idgate = targets.len() - 1;
    // Every target gets the bearer token but the sign-in proxies, which get a signed-in browser's navigation.
    let mut target_headers = vec![headers.to_vec(); targets.len()];
    let signin = signin_targets(env, &servers, threads, report);
    let signin_rows: Vec<(usize, &'static str)> = signin
        .targets
        .iter()
        .map(|(name, short, addr, headers)| {
            targets.push(((*name).into(), *addr));
            target_headers.push(headers.clone());
            (targets.len() - 1, *short)
        })
        .collect();

    // Sanity and warm-up (key cache, memo, pooled upstream connections): every target answers 200.
    env.runtime.block_on(async {
        let client = reqwest::Client::new();
        for ((name, addr), headers) in targets.iter().zip(&target_headers) {
            let mut request = client.get(format!("http://{addr}/"));
            for header in headers {
                let (key, value) = header.split_once(": ").expect("`Name: value`");
                request = request.header(key, value);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200, "{name}");
        }
    });

    let redis_commands_before = signin
        .redis
        .as_ref()
        .map(crate::signin::RedisServer::commands_processed);
    let rounds: usize = std::env::var("IDGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let (loaded_secs, single_secs, connections) = (3, 2, 32);
    let mut loaded = vec![Vec::new(); targets.len()];
    let mut single = vec![Vec::new(); targets.len()];
    // The CPU each proxied request cost idgate's proxy threads and nginx's processes, µs, one figure per round (the
    // loaded runs): what the throughput ratio comes from, on cores the proxies share with wrk and the upstream.
    let proxy_ticks = |k: usize| match (k == idgate, nginx == Some(k), nginx_pid) {
        (true, _, _) => Some(cpu_ticks(PROXY_THREADS)),
        (_, true, Some(pid)) => Some(process_tree_ticks(pid)),
        _ => None,
    };
    let mut cpu_per_request: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 0..rounds {
        eprintln!("  sidecar round {}/{rounds}", round + 1);
        // Rotated each round: no target always runs right after the same other.
        for i in 0..targets.len() {
            let k = (i + round) % targets.len();
            let ticks_before = proxy_ticks(k);
            match wrk(
                &format!("http://{}/", targets[k].1),
                &target_headers[k],
                connections,
                loaded_secs,
            ) {
                Ok(r) => {
                    if let (Some(before), Some(after)) = (ticks_before, proxy_ticks(k)) {
                        cpu_per_request[k]
                            .push(ticks_to_us(after - before) / (r.rps * f64::from(loaded_secs)));
                    }
                    loaded[k].push(r);
                }
                Err(e) => {
                    report.info(SECTION, "all", "not measured (see notes)");
                    report.note(SECTION, e);
                    return;
                }
            }
        }
        for i in 0..targets.len() {
            let k = (i + round) % targets.len();
            match wrk(
                &format!("http://{}/", targets[k].1),
                &target_headers[k],
                1,
                single_secs,
            ) {
                Ok(r) => single[k].push(r),
                Err(e) => {
                    report.info(SECTION, "all", "not measured (see notes)");
                    report.note(SECTION, e);
                    return;
                }
            }
        }
    }
    drop(children);
    // Redis's own count while wrk drove the Redis proxy (no other target touches it), less the INFO reading it.
    let redis_commands = signin
        .redis
        .as_ref()
        .zip(redis_commands_before)
        .map(|(redis, before)| redis.commands_processed() - before - 1);
    drop(signin);

    // Whether any of idgate's goal rows against nginx missed: then the note on where the time goes.
    let mut missed = false;
    for (runs, label) in [
        (&loaded, format!("{connections} connections")),
        (&single, "1 connection".to_owned()),
    ] {
        for (k, (name, _)) in targets.iter().enumerate() {
            let m = medians(&runs[k]);
            let errors = if m.errors > 0 {
                format!(" (**{} non-2xx/socket errors**)", m.errors)
            } else {
                String::new()
            };
            report.info(
                SECTION,
                format!("{name}: {label}"),
                format!(
                    "{:.0} req/s, p50 {}, p99 {}{errors}",
                    m.rps,
                    fmt_us(m.p50_us),
                    fmt_us(m.p99_us)
                ),
            );
        }
        let Some(nginx) = nginx else { continue };
        // Per round, idgate over nginx in that same round; the median over rounds.
        let per_round = |f: fn(&Wrk) -> f64| -> Vec<f64> {
            runs[idgate]
                .iter()
                .zip(&runs[nginx])
                .map(|(i, n)| f(i) / f(n))
                .collect()
        };
        let share = per_round(|w| w.rps);
        let p50 = per_round(|w| w.p50_us);
        let p99 = per_round(|w| w.p99_us);
        let list = |v: &[f64], scale: f64, digits: usize| {
            v.iter()
                .map(|x| format!("{:.digits$}", x * scale))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let s = median(share.clone());
        missed |= s < 0.9;
        report.goal(
            SECTION,
            format!("idgate proxy: share of nginx's throughput ({label})"),
            format!(
                "{:.1} % (median of {rounds} rounds: {} %)",
                s * 100.0,
                list(&share, 100.0, 0)
            ),
            "≥ 90 %",
            s >= 0.9,
        );
        let r50 = median(p50.clone());
        missed |= r50 > 1.2;
        report.goal(
            SECTION,
            format!("idgate proxy: p50 over nginx's ({label})"),
            format!("{r50:.2} × (rounds: {})", list(&p50, 1.0, 2)),
            "≤ 1.2 ×",
            r50 <= 1.2,
        );
        let r99 = median(p99.clone());
        missed |= r99 > 1.2;
        report.goal(
            SECTION,
            format!("idgate proxy: p99 over nginx's ({label})"),
            format!("{r99:.2} × (rounds: {})", list(&p99, 1.0, 2)),
            "≤ 1.2 ×",
            r99 <= 1.2,
        );
        for (k, short) in &signin_rows {
            let over_nginx = |f: fn(&Wrk) -> f64| -> f64 {
                median(
                    runs[*k]
                        .iter()
                        .zip(&runs[nginx])
                        .map(|(s, n)| f(s) / f(n))
                        .collect(),
                )
            };
            report.info(
                SECTION,
                format!("idgate proxy with sign-in, {short}: against nginx ({label})"),
                format!(
                    "{:.1} % of its throughput, p50 {:.2} ×, p99 {:.2} × (medians of per-round ratios)",
                    over_nginx(|w| w.rps) * 100.0,
                    over_nginx(|w| w.p50_us),
                    over_nginx(|w| w.p99_us)
                ),
            );
        }
    }
    report.note(
        SECTION,
        format!(
            "`wrk -t1 -c{connections} -d{loaded_secs}s --latency` and `wrk -t1 -c1 -d{single_secs}s --latency` \
             against each target, {rounds} rounds, the targets' order rotated each round; figures are medians over \
             the rounds, ratios the median of per-round ratios. Every request carries the same valid `Authorization: \
             Bearer` ID token (only idgate checks it). The upstream is one axum hello-world on a one-worker tokio \
             runtime; nginx (`worker_processes auto`, upstream `keepalive 64`, HTTP/1.1 to the upstream, access log \
             off, `X-Forwarded-For`/`-Proto` set) and haproxy (`nbthread {threads}`, `http-reuse always`, \
             `option forwardfor`, no log) are Debian's, started as child processes; idgate's proxy runs on a \
             {threads}-worker runtime in this process, with the identity layer (memoized token) and its default \
             limits. wrk, the upstream and the proxy share the machine's {threads} cores."
        ),
    );
    let cpu = nginx.map(|nginx| {
        (
            median(cpu_per_request[idgate].clone()),
            median(cpu_per_request[nginx].clone()),
        )
    });
    if let Some((idgate_cpu, nginx_cpu)) = cpu {
        report.info(
            SECTION,
            format!("CPU per proxied request ({connections} connections): idgate proxy vs nginx"),
            format!(
                "{} vs {} ({:.2} ×; proxy threads' and nginx processes' user + system time over the requests wrk \
                 counted, medians of rounds)",
                fmt_us(idgate_cpu),
                fmt_us(nginx_cpu),
                idgate_cpu / nginx_cpu
            ),
        );
    }
    if missed {
        let measured = cpu.map_or_else(String::new, |(idgate_cpu, nginx_cpu)| {
            format!(
                " In this run idgate's proxy threads spent {} of CPU per request and nginx's processes {} ({:.2} ×).",
                fmt_us(idgate_cpu),
                fmt_us(nginx_cpu),
                idgate_cpu / nginx_cpu
            )
        });
        report.note(
            SECTION,
            format!(
                "Where idgate's proxy misses nginx: wrk, the upstream and the proxy share this machine's cores, so \
                 throughput follows the CPU each proxied request costs.{measured} The verification is a memo hit \
                 (under 1 µs). The gap is in user space: over 4 s of this load (2026-12-03, this machine, before the \
                 three changes below) the proxy threads spent 41.6 µs of user and 30.7 µs of system time per \
                 request, nginx's workers 11.2 and 25.2 µs, for the same system calls (strace: one `recvfrom` and one \
                 `writev` per request on each of the two connections, a few `epoll_wait`). Counted in instructions \
                 (callgrind, `benches/scripts/proxy-instructions.sh`, which this machine's noise does not move), the \
                 proxy threads executed 70.9 k per request and the hello-world upstream's thread 22.5 k (3.14 ×); \
                 three changes took the proxy to 58.7 k (2.58 ×, -17 %): the upstream connection and the rare \
                 dial and resend paths boxed (the forwarding future was 5.7 KiB, moved several times a request: \
                 `memmove` was the top symbol, 6 % of samples), the gates stacked with `ServiceBuilder` and applied \
                 at once, two `Router` levels instead of four (each level boxes and clones per request), and the headers cleaned \
                 in passes over their names instead of some twenty removals by name. In CPU time, the proxy's over \
                 the upstream's in the same wrk runs went from 3.2 to 2.75 (medians of four interleaved \
                 `probe-proxy` pairs). Earlier: upstream connections driven by the request's own task \
                 (`idgate-proxy/src/pool.rs`) rather than hyper-util's pooled client (a cross-thread wake-up each \
                 way): 10-15 % less CPU per request; the connection watchdog woken only by a deadline earlier than \
                 its timer's: 1-4 µs; a single-threaded runtime per core, each with its own connections and \
                 upstream pool, new connections handed to the least busy thread (as nginx's workers): 13 % less CPU \
                 at 32 connections, 27 % at 1, and the throughput at 32 connections up 20 %. What is left is mostly \
                 hyper's: two HTTP/1 codecs per request (the client side and the server side, each about the \
                 upstream's 22 k instructions), tokio's readiness and the header map, against nginx's \
                 buffer-to-buffer proxying. Closing it needs an HTTP/1 forwarding path of idgate's own \
                 (request-smuggling-sensitive parsing, with a hostile-input suite of its own), not a fix in the \
                 layers, and is left for its own issue."
            ),
        );
    }
    if !signin_rows.is_empty() {
        report.note(
            SECTION,
            "The sign-in rows: `idgate_proxy::serve` with `Gates::from_signin` (the proxy serves the sign-in routes and \
             forwards only a signed-in, allowed user), on a runtime of its own with as many workers as the identity \
             proxy's, in front of the same upstream; its sessions in the in-memory store, or in a `redis-server` on \
             loopback (Debian's, no persistence) with the default 5 s local copy. A user signed in once over HTTP \
             beforehand (login → the emulator's consent → callback, through the proxy); wrk then sends what a \
             browser sends on a navigation to the app: the session `Cookie`, `Accept`, `Accept-Language`, \
             `Accept-Encoding`, a Chrome `User-Agent`, the `Sec-Fetch-*` headers and `Upgrade-Insecure-Requests` (no \
             `Authorization`). The proxy strips its session cookie from what it forwards.",
        );
    }
    if let Some(commands) = redis_commands
        && let Some((k, _)) = signin_rows
            .iter()
            .find(|(_, short)| short.starts_with("Redis"))
    {
        let requests: f64 = loaded[*k]
            .iter()
            .map(|w| w.rps * f64::from(loaded_secs))
            .chain(single[*k].iter().map(|w| w.rps * f64::from(single_secs)))
            .sum();
        report.note(
            SECTION,
            format!(
                "With Redis sessions and the default local copy, Redis processed {commands} commands while wrk sent \
                 ~{requests:.0} signed-in requests through that proxy ({:.5} per request): the proxy answers the \
                 session from its copy and reads Redis once per 5 s per session and process.",
                commands as f64 / requests
            ),
        );
    }
}

/// The sign-in proxies of the table, stopped when dropped (their runtime, and the Redis server).
struct SignInTargets {
    /// Row name, short name, address, and the headers wrk sends.
    targets: Vec<(&'static str, &'static str, SocketAddr, Vec<String>)>,
    _runtime: tokio::runtime::Runtime,
    redis: Option<crate::signin::RedisServer>,
}

/// `idgate_proxy::serve` with `Gates::from_signin` in front of the upstream, with the in-memory store and with Redis
/// (when a `redis-server` can be started; a note says why not), a user signed in to each.
fn signin_targets(
    env: &Env,
    servers: &Servers,
    threads: usize,
    report: &mut Report,
) -> SignInTargets {
    use crate::signin::{RedisServer, Store, build, sign_in_over_http};

    // Only runs the proxies' `serve` futures (their shutdowns): each serves on threads of its own.
    let threads = std::num::NonZeroUsize::new(threads).unwrap_or(std::num::NonZeroUsize::MIN);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("proxy-holder")
        .enable_all()
        .build()
        .expect("proxy runtime");
    let redis = match RedisServer::start() {
        Ok(redis) => Some(redis),
        Err(e) => {
            report.note(
                SECTION,
                format!("idgate proxy with Redis sessions skipped: {e}"),
            );
            None
        }
    };
    let redis_url = redis.as_ref().map(RedisServer::url);
    let mut stores = vec![(
        "`idgate_proxy::serve` with sign-in (`Gates::from_signin`, in-memory sessions) → bare, signed-in browser request",
        "in-memory sessions",
        Store::Memory,
    )];
    if let Some(url) = &redis_url {
        stores.push((
            "`idgate_proxy::serve` with sign-in (`Gates::from_signin`, Redis sessions, 5 s local copy) → bare, signed-in browser request",
            "Redis sessions",
            Store::Redis(url),
        ));
    }
    let upstream: url::Url = format!("http://{}/", servers.upstream)
        .parse()
        .expect("url");
    let targets = stores
        .into_iter()
        .map(|(name, short, store)| {
            let signin = build(env, store);
            let gates = idgate_proxy::Gates::from_signin(signin.clone());
            let upstream = upstream.clone();
            let addr = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                tokio::spawn(async move {
                    idgate_proxy::serve(
                        listener,
                        upstream,
                        gates,
                        idgate_proxy::ProxyOptions::default().threads(threads),
                        std::future::pending(),
                    )
                    .await
                    .expect("proxy");
                });
                addr
            });
            let cookie = sign_in_over_http(env, addr, &signin);
            (name, short, addr, browser_headers(&cookie))
        })
        .collect();
    SignInTargets {
        targets,
        _runtime: runtime,
        redis,
    }
}

/// What a browser sends on a navigation to the app, signed in: the session cookie and the usual headers.
fn browser_headers(cookie: &str) -> Vec<String> {
    vec![
        format!("Cookie: {cookie}"),
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8".into(),
        "Accept-Language: en-US,en;q=0.9".into(),
        "Accept-Encoding: gzip, deflate, br, zstd".into(),
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into(),
        "Sec-Fetch-Dest: document".into(),
        "Sec-Fetch-Mode: navigate".into(),
        "Sec-Fetch-Site: same-origin".into(),
        "Sec-Fetch-User: ?1".into(),
        "Upgrade-Insecure-Requests: 1".into(),
    ]
}

/// `idgate-bench probe-proxy <seconds> <connections>`: idgate's proxy in front of the bare upstream under `wrk`, for
/// `perf record` (the proxy's threads are named `idgate-serve-N`, the upstream's `upstream`), then nginx in front of the same
/// upstream under the same load, each with its CPU per request. `IDGATE_BENCH_PROXY_THREADS` sets the proxy's serving
/// threads.
pub(crate) fn probe(seconds: u32, connections: u32) {
    let env = Env::start();
    // `IDGATE_BENCH_PROXY_THREADS`: the proxy's serving threads (default `nproc`, as `idgate proxy`).
    let threads = std::env::var("IDGATE_BENCH_PROXY_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
        .max(1);
    let servers = servers(&env, threads);
    let token = env.oidc_tokens(2, 200_000).remove(0);
    let headers = [format!("Authorization: Bearer {token}")];
    let url = format!("http://{}/", servers.proxy);
    // The memo and the pool warmed by the first, unmeasured second.
    probe_one(
        &format!("idgate proxy, {connections} connections"),
        "proxy threads",
        &url,
        &headers,
        (connections, seconds),
        || cpu_ticks(PROXY_THREADS),
    );
    // nginx in front of the same upstream, the same load: its CPU per request is the bar idgate's is held to.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (nginx, port) = match start_nginx(servers.upstream, &runtime) {
        Ok(started) => started,
        Err(why) => {
            eprintln!("nginx: {why}");
            return;
        }
    };
    let nginx_pid = nginx.child.id();
    probe_one(
        &format!("nginx, {connections} connections"),
        "nginx processes",
        &format!("http://127.0.0.1:{port}/"),
        &headers,
        (connections, seconds),
        || process_tree_ticks(nginx_pid),
    );
}

/// One second of `wrk` against `url` to warm it, then `seconds` measured: throughput, latency, and the CPU per
/// request of the proxy (`proxy_ticks`, called `what`) and of the upstream, printed after `name`.
fn probe_one(
    name: &str,
    what: &str,
    url: &str,
    headers: &[String],
    (connections, seconds): (u32, u32),
    proxy_ticks: impl Fn() -> u64,
) {
    wrk(url, headers, connections, 1).expect("wrk");
    let (proxy_before, upstream_before) = (proxy_ticks(), cpu_ticks("upstream"));
    let r = wrk(url, headers, connections, seconds).expect("wrk");
    let (proxy_after, upstream_after) = (proxy_ticks(), cpu_ticks("upstream"));
    let requests = r.rps * f64::from(seconds);
    let per_request = |ticks: u64| ticks_to_us(ticks) / requests;
    eprintln!(
        "{name}: {:.0} req/s, p50 {}, p99 {}, {} errors; CPU per request: {what} {}, upstream {}",
        r.rps,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        r.errors,
        fmt_us(per_request(proxy_after - proxy_before)),
        fmt_us(per_request(upstream_after - upstream_before)),
    );
}

/// User and system clock ticks of process `pid` and its children (nginx's master and its workers), from `/proc`.
fn process_tree_ticks(pid: u32) -> u64 {
    let ticks = |pid: &str| -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let own = pid.to_string();
    children
        .split_whitespace()
        .chain(std::iter::once(own.as_str()))
        .filter_map(ticks)
        .sum()
}

/// Clock ticks in µs: they are 10 ms on Linux (`getconf CLK_TCK` = 100).
fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 10_000.0
}

/// User and system clock ticks of this process's threads whose name starts with `name` (`/proc/self/task`).
fn cpu_ticks(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            // `pid (comm) state ppid ...`: utime and stime are fields 14 and 15, counted after the `)`.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            if !comm.starts_with(name) {
                return None;
            }
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}
