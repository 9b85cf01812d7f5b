//! Sign-in (`idgate-signin`): what a signed-in request adds in process (the in-memory store; Redis on loopback with
//! the default local copy; Redis strict, one read per request), beside loopback Redis GETs as the control; and the
//! sign-in end to end (login → the emulator's consent → callback), split into idgate's own work and the code
//! exchange at the emulator's token endpoint.
//!
//! The Redis rows run against a real `redis-server` on 127.0.0.1 (Debian's, installed with `apt-get` when missing
//! and running as root), started as a child process without persistence.

use std::future::Future;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderMap, Request, StatusCode};
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_core::policy::Allowlist;
use idgate_signin::{ClientSecret, RedisStore, SignIn};
use tower::ServiceExt as _;

use crate::env::Env;
use crate::http_load::{ensure_tool, hello};
use crate::report::Report;
use crate::timing::median;
use crate::verify::fmt_us;

const SECTION: &str = "Sign-in (`idgate-signin`, in process and against the emulator)";

/// The redirect URL registered with the emulator's OAuth client: https, so the cookies are `Secure` and
/// `__Host-`-prefixed as deployed. Nothing connects to it: the callback is sent to the app directly.
const REDIRECT: &str = "https://app.example.com/auth/callback";
/// The emulator's test user who signs in; the allowlist admits its domain.
const USER: &str = "alice@example.com";
/// Sign-ins timed end to end.
const SIGN_INS: usize = 200;
/// How long the paired batches of signed-in requests run.
const IN_PROCESS_BUDGET: Duration = Duration::from_secs(4);

/// Where the signed-in app keeps its sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Store<'a> {
    /// The default in-memory store.
    Memory,
    /// Redis at this URL, each process answering from its copy of a session's user for up to 5 s (the default).
    Redis(&'a str),
    /// Redis, every request reading the session (`local_cache(Duration::ZERO)`): one round trip each.
    RedisStrict(&'a str),
}

/// A sign-in against the emulator (its endpoints and keys, an OAuth client registered for [`REDIRECT`], users of
/// `example.com` allowed) keeping sessions in `store`.
pub(crate) fn build(env: &Env, store: Store<'_>) -> SignIn {
    let client = env.emulator.create_oauth_client(&[REDIRECT]);
    let builder = SignIn::builder(
        client.client_id(),
        ClientSecret::new(client.client_secret()),
        REDIRECT.parse().expect("redirect URL"),
    )
    .endpoints(&Endpoints::under(&env.emulator.base_url()))
    .keys_url_as(env.emulator.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(
        Allowlist::builder()
            .user_domain("example.com")
            .build()
            .expect("allowlist"),
    );
    let builder = match store {
        Store::Memory => builder,
        Store::Redis(url) => builder.redis_store(RedisStore::open(url).expect("Redis URL")),
        Store::RedisStrict(url) => builder
            .redis_store(RedisStore::open(url).expect("Redis URL"))
            .local_cache(Duration::ZERO),
    };
    builder.build().expect("sign-in")
}

/// The signed-in app: the hello-world behind `require()`, the sign-in routes, all behind `layer()`.
fn app(signin: &SignIn) -> Router {
    Router::new()
        .merge(hello().layer(signin.require()))
        .merge(signin.router())
        .layer(signin.layer())
}

/// A `redis-server` child process on a loopback port, no persistence; killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts Debian's `redis-server` (installing it when missing and running as root); the error says why not.
    pub(crate) fn start() -> Result<Self, String> {
        if !ensure_tool("redis-server", &["--version"], "redis-server") {
            return Err(
                "`redis-server` not found and could not be installed (`apt-get install redis-server`)"
                    .into(),
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir =
            std::env::temp_dir().join(format!("idgate-bench-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start `redis-server`: {e}"))?;
        let mut server = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("`redis-server` exited at startup ({status})"));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("`redis-server` did not listen within 10 s".into())
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Redis's count of commands processed since it started.
    pub(crate) fn commands_processed(&self) -> u64 {
        self.connect().commands_processed()
    }

    /// A plain blocking connection: one command, one reply, no client library.
    fn connect(&self) -> Resp {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to Redis");
        stream.set_nodelay(true).expect("nodelay");
        Resp {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal RESP client on a blocking socket: the raw round trip, the control of the strict row.
struct Resp {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// A RESP reply, reduced to what this harness reads.
#[derive(Debug)]
enum Reply {
    Status,
    /// An error reply (a GET of a key holding a set, say).
    Error,
    Bulk(Option<Vec<u8>>),
    Array(Vec<Self>),
}

impl Resp {
    fn command(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).expect("write to Redis");
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read from Redis");
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1);
        match kind {
            "$" => {
                let Ok(n) = usize::try_from(rest.parse::<i64>().expect("length")) else {
                    return Reply::Bulk(None);
                };
                let mut buf = vec![0; n + 2];
                self.reader.read_exact(&mut buf).expect("read from Redis");
                buf.truncate(n);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n = rest.parse::<i64>().expect("length").max(0);
                Reply::Array((0..n).map(|_| self.read()).collect())
            }
            "-" => Reply::Error,
            _ => Reply::Status,
        }
    }

    /// Redis's count of commands processed since it started (`INFO stats`).
    fn commands_processed(&mut self) -> u64 {
        let Reply::Bulk(Some(info)) = self.command(&[b"INFO", b"stats"]) else {
            panic!("INFO answered no text");
        };
        String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_commands_processed")
    }

    /// The longest string value stored under any key (the session record, once a user signed in); keys of other
    /// types (the sessions' index sets) answer GET with an error and are passed over.
    fn longest_value(&mut self) -> Vec<u8> {
        let Reply::Array(keys) = self.command(&[b"KEYS", b"*"]) else {
            panic!("KEYS answered no array");
        };
        let mut longest = Vec::new();
        for key in keys {
            if let Reply::Bulk(Some(key)) = key
                && let Reply::Bulk(Some(value)) = self.command(&[b"GET", &key])
                && value.len() > longest.len()
            {
                longest = value;
            }
        }
        longest
    }
}

/// Wakes the thread that drives a future by hand.
struct Unpark {
    thread: std::thread::Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// A future's output, the time this thread spent polling it (its own work) and the time it waited for a wake-up
/// (I/O done elsewhere: the connection tasks on the runtime's worker, the emulator on its own).
struct Driven<T> {
    output: T,
    working: Duration,
    waiting: Duration,
    waits: u32,
}

/// Drives `future` on this thread inside `runtime`'s context (so what it spawns, its sockets and timers, run on
/// the runtime), timing each poll and each wait between polls.
fn drive<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> Driven<F::Output> {
    let _guard = runtime.enter();
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let (mut working, mut waiting, mut waits) = (Duration::ZERO, Duration::ZERO, 0);
    loop {
        let start = Instant::now();
        let poll = future.as_mut().poll(&mut cx);
        working += start.elapsed();
        if let Poll::Ready(output) = poll {
            return Driven {
                output,
                working,
                waiting,
                waits,
            };
        }
        let start = Instant::now();
        while !unpark.woken.swap(false, Ordering::AcqRel) {
            std::thread::park();
        }
        waiting += start.elapsed();
        waits += 1;
    }
}

fn get_request(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.body(Body::empty()).expect("request")
}

/// The `name=value` of the first `Set-Cookie` whose name starts with `prefix`.
pub(crate) fn set_cookie(headers: &HeaderMap, prefix: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// One sign-in through the app, timed.
struct SignInTimes {
    total: Duration,
    consent: Duration,
    /// Login and callback, polled on this thread.
    idgate: Duration,
    /// The callback waiting for a wake-up: the token endpoint's answer.
    exchange: Duration,
    /// Waits during login and callback.
    waits: u32,
}

/// Signs [`USER`] in through `app` by tower `oneshot` (login → the emulator's consent → callback); the session
/// cookie (`name=value`) and the timings.
fn sign_in(
    runtime: &tokio::runtime::Runtime,
    app: &Router,
    env: &Env,
    signin: &SignIn,
) -> (String, SignInTimes) {
    let start = Instant::now();
    let login = drive(
        runtime,
        app.clone().oneshot(get_request("/auth/login", None)),
    );
    let response = login.output.expect("login");
    assert_eq!(response.status(), StatusCode::FOUND, "login");
    let attempt =
        set_cookie(response.headers(), signin.attempt_cookie_prefix()).expect("an attempt cookie");
    let authorization = authorization_url(response.headers());
    let consent_start = Instant::now();
    let back = env.emulator.consent(&authorization, USER).expect("consent");
    let consent = consent_start.elapsed();
    let path = path_and_query(&back);
    let callback = drive(
        runtime,
        app.clone().oneshot(get_request(path, Some(&attempt))),
    );
    let total = start.elapsed();
    let response = callback.output.expect("callback");
    assert_eq!(response.status(), StatusCode::FOUND, "callback");
    let session =
        set_cookie(response.headers(), signin.session_cookie_name()).expect("a session cookie");
    let times = SignInTimes {
        total,
        consent,
        idgate: login.working + callback.working,
        exchange: login.waiting + callback.waiting,
        waits: login.waits + callback.waits,
    };
    (session, times)
}

/// Where the login sent the browser: Google's (the emulator's) authorization URL, from `Location`.
fn authorization_url(headers: &HeaderMap) -> url::Url {
    headers[LOCATION]
        .to_str()
        .expect("location")
        .parse()
        .expect("authorization URL")
}

/// The path and query of the callback URL the consent sent the browser back to.
fn path_and_query(url: &url::Url) -> &str {
    &url.as_str()[url.origin().ascii_serialization().len()..]
}

/// Signs [`USER`] in through `addr` (an `idgate_proxy` with sign-in) over HTTP; the session cookie, checked to
/// answer 200 on `/`.
pub(crate) fn sign_in_over_http(env: &Env, addr: std::net::SocketAddr, signin: &SignIn) -> String {
    env.runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let login = client
            .get(format!("http://{addr}/auth/login"))
            .send()
            .await
            .expect("login");
        assert_eq!(login.status(), StatusCode::FOUND, "login");
        let attempt =
            set_cookie(login.headers(), signin.attempt_cookie_prefix()).expect("an attempt cookie");
        let authorization = authorization_url(login.headers());
        let back = env.emulator.consent(&authorization, USER).expect("consent");
        let path = path_and_query(&back);
        let callback = client
            .get(format!("http://{addr}{path}"))
            .header(COOKIE, &attempt)
            .send()
            .await
            .expect("callback");
        assert_eq!(callback.status(), StatusCode::FOUND, "callback");
        let session =
            set_cookie(callback.headers(), signin.session_cookie_name()).expect("a session cookie");
        let check = client
            .get(format!("http://{addr}/"))
            .header(COOKIE, &session)
            .send()
            .await
            .expect("signed-in request");
        assert_eq!(
            check.status(),
            StatusCode::OK,
            "signed in through the proxy"
        );
        session
    })
}

pub(crate) fn run(env: &Env, report: &mut Report) {
    // The app's runtime: one worker, which runs the Redis client's connection task and reqwest's connections; the
    // measured requests are polled on this thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("signin")
        .enable_all()
        .build()
        .expect("sign-in runtime");
    let redis = RedisServer::start();
    signed_in_requests(env, &rt, redis.as_ref(), report);
    callback_end_to_end(env, &rt, report);
    drop(redis);
    drop(rt);
}

/// One contender of the in-process comparison: a name and one request (or one control operation).
type Contender<'a> = (&'static str, usize, Box<dyn FnMut() + 'a>);

/// Alternate batches: for each contender in turn, a batch of the bare request, then a batch of the contender;
/// repeated until `budget` is spent. Per contender, the per-op ns of each of its batches and of the bare batch just
/// before it.
fn paired_batches(
    bare: &mut dyn FnMut(),
    bare_batch: usize,
    contenders: &mut [Contender<'_>],
    budget: Duration,
) -> Vec<Vec<(f64, f64)>> {
    // A first round unrecorded: connections opened, caches and branch predictors warm.
    for (_, n, op) in contenders.iter_mut() {
        batch(bare, bare_batch);
        batch(op.as_mut(), *n);
    }
    let mut pairs = vec![Vec::new(); contenders.len()];
    let start = Instant::now();
    while start.elapsed() < budget || pairs[0].len() < 10 {
        for ((_, n, op), pairs) in contenders.iter_mut().zip(&mut pairs) {
            let b = batch(bare, bare_batch);
            let c = batch(op.as_mut(), *n);
            pairs.push((b, c));
        }
    }
    pairs
}

/// Per-op nanoseconds of `n` consecutive calls of `op`.
fn batch(op: &mut dyn FnMut(), n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// tower-sessions alone (its cookie, its in-memory store, one read of a profile-sized value per request), no
/// sign-in logic: the attribution control of the in-memory row. The router and its session cookie.
fn sessions_only(rt: &tokio::runtime::Runtime) -> (Router, String) {
    let router = Router::new()
        .route(
            "/",
            get(|session: tower_sessions::Session| async move {
                let _ = session.get::<serde_json::Value>("user").await;
                "hello"
            }),
        )
        .route(
            "/seed",
            get(|session: tower_sessions::Session| async move {
                // The shape and size of a signed-in user's record.
                let user = serde_json::json!({
                    "user": {"sub": "109876543210987654321", "email": USER, "hd": "example.com"},
                    "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
                    "picture": "http://127.0.0.1:40000/picture/109876543210987654321",
                    "signed_in_at": 1_700_000_000, "expires_at": 1_700_028_800, "seen_at": 1_700_000_000,
                });
                session.insert("user", user).await.expect("insert");
                "seeded"
            }),
        )
        .route("/untouched", get(|| async { "hello" }))
        .layer(
            tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
                .with_secure(true),
        );
    let seeded =
        crate::timing::run(rt, router.clone().oneshot(get_request("/seed", None))).expect("seed");
    let cookie = set_cookie(seeded.headers(), "").expect("a session cookie");
    (router, cookie)
}

fn signed_in_requests(
    env: &Env,
    rt: &tokio::runtime::Runtime,
    redis: Result<&RedisServer, &String>,
    report: &mut Report,
) {
    let _guard = rt.enter();
    let memory_signin = build(env, Store::Memory);
    let memory_app = app(&memory_signin);
    let (memory_cookie, _) = sign_in(rt, &memory_app, env, &memory_signin);
    let (sessions_router, sessions_cookie) = sessions_only(rt);
    let bare = hello();

    let redis_apps = redis.ok().map(|server| {
        let url = server.url();
        let cached = build(env, Store::Redis(&url));
        let strict = build(env, Store::RedisStrict(&url));
        let (cached_app, strict_app) = (app(&cached), app(&strict));
        let cached_cookie = sign_in(rt, &cached_app, env, &cached).0;
        let strict_cookie = sign_in(rt, &strict_app, env, &strict).0;
        (cached_app, cached_cookie, strict_app, strict_cookie)
    });

    let call_at = |router: &Router, uri: &str, cookie: &str| {
        let response =
            crate::timing::run(rt, router.clone().oneshot(get_request(uri, Some(cookie))))
                .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        std::hint::black_box(response);
    };
    let call = |router: &Router, cookie: &str| call_at(router, "/", cookie);

    // Redis commands per signed-in request, counted by Redis itself over 1,000 requests (less the INFO that reads
    // the count): the strict row's round trips, and the local copy's.
    let mut commands = Vec::new();
    let mut control = None;
    if let (Ok(server), Some((cached_app, cached_cookie, strict_app, strict_cookie))) =
        (redis, &redis_apps)
    {
        let mut resp = server.connect();
        for (name, router, cookie) in [
            ("local copy", cached_app, cached_cookie),
            ("strict", strict_app, strict_cookie),
        ] {
            call(router, cookie);
            let before = resp.commands_processed();
            for _ in 0..1000 {
                call(router, cookie);
            }
            let after = resp.commands_processed();
            commands.push((name, (after - before - 1) as f64 / 1000.0));
        }
        // The control's value: as long as the longest record stored (the session's).
        let value = resp.longest_value();
        let _ = resp.command(&[b"SET", b"idgate-bench:control", &value]);
        let manager = rt
            .block_on(async {
                redis::Client::open(server.url())?
                    .get_connection_manager()
                    .await
            })
            .expect("redis-rs connection manager");
        control = Some((resp, manager, value.len()));
    }

    let mut bare_call = || call(&bare, &memory_cookie);
    let mut contenders: Vec<Contender<'_>> = vec![
        (
            "memory",
            256,
            Box::new(|| call(&memory_app, &memory_cookie)),
        ),
        (
            "sessions",
            256,
            Box::new(|| call(&sessions_router, &sessions_cookie)),
        ),
        (
            "session manager",
            256,
            Box::new(|| call_at(&sessions_router, "/untouched", &sessions_cookie)),
        ),
    ];
    if let Some((cached_app, cached_cookie, strict_app, strict_cookie)) = &redis_apps {
        contenders.push(("redis", 256, Box::new(|| call(cached_app, cached_cookie))));
        contenders.push(("strict", 16, Box::new(|| call(strict_app, strict_cookie))));
    }
    if let Some((resp, manager, _)) = &mut control {
        contenders.push((
            "raw GET",
            16,
            Box::new(|| {
                let reply = resp.command(&[b"GET", b"idgate-bench:control"]);
                assert!(matches!(reply, Reply::Bulk(Some(_))));
            }),
        ));
        contenders.push((
            "redis-rs GET",
            16,
            Box::new(|| {
                let value: Vec<u8> = crate::timing::run(
                    rt,
                    redis::cmd("GET")
                        .arg("idgate-bench:control")
                        .query_async(&mut *manager),
                )
                .expect("GET");
                std::hint::black_box(value);
            }),
        ));
    }
    let pairs = paired_batches(&mut bare_call, 256, &mut contenders, IN_PROCESS_BUDGET);
    let names: Vec<&str> = contenders.iter().map(|(n, _, _)| *n).collect();
    drop(contenders);
    let of = |name: &str| {
        let k = names.iter().position(|n| *n == name)?;
        let p = &pairs[k];
        Some(Paired {
            bare: median(&p.iter().map(|(b, _)| b / 1000.0).collect::<Vec<_>>()),
            op: median(&p.iter().map(|(_, c)| c / 1000.0).collect::<Vec<_>>()),
            added: median(&p.iter().map(|(b, c)| (c - b) / 1000.0).collect::<Vec<_>>()),
            ratio: median(&p.iter().map(|(b, c)| c / b).collect::<Vec<_>>()),
            batches: p.len(),
        })
    };
    let memory = of("memory").expect("memory row");
    let sessions = of("sessions").expect("sessions row");
    let manager = of("session manager").expect("session manager row");
    report.info(
        SECTION,
        "in process, no sockets: bare handler, one request (the same `Cookie` header)",
        fmt_us(memory.bare),
    );
    report.goal(
        SECTION,
        "in process: signed in (`SignIn::layer()` + `require()`), in-memory store: added over bare",
        format!(
            "{} ({} vs bare {}; median of {} paired batches)",
            fmt_us(memory.added),
            fmt_us(memory.op),
            fmt_us(memory.bare),
            memory.batches
        ),
        "≤ 2 µs added",
        memory.added <= 2.0,
    );
    report.info(
        SECTION,
        "control: tower-sessions alone (its cookie, in-memory store, one read of a user-sized value): added over bare",
        format!(
            "{} ({} vs bare {})",
            fmt_us(sessions.added),
            fmt_us(sessions.op),
            fmt_us(sessions.bare)
        ),
    );
    report.info(
        SECTION,
        "control: tower-sessions' session manager alone (its cookie parse and session, the session not read): added over bare",
        format!(
            "{} ({} vs bare {})",
            fmt_us(manager.added),
            fmt_us(manager.op),
            fmt_us(manager.bare)
        ),
    );
    match (&redis, of("redis"), of("strict")) {
        (Ok(_), Some(cached), Some(strict)) => {
            let per_request = |name: &str| {
                commands
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(f64::NAN, |(_, c)| *c)
            };
            report.info(
                SECTION,
                "in process: signed in, Redis on loopback, the default 5 s local copy: added over bare",
                format!(
                    "{} = {:.2} × bare ({} vs bare {}); {:.3} Redis commands per request",
                    fmt_us(cached.added),
                    cached.ratio,
                    fmt_us(cached.op),
                    fmt_us(cached.bare),
                    per_request("local copy")
                ),
            );
            let strict_commands = per_request("strict");
            report.info(
                SECTION,
                "in process: signed in, Redis strict (`local_cache(Duration::ZERO)`): added over bare",
                format!(
                    "{} = {:.1} × bare ({} vs bare {})",
                    fmt_us(strict.added),
                    strict.ratio,
                    fmt_us(strict.op),
                    fmt_us(strict.bare),
                ),
            );
            report.goal(
                SECTION,
                "Redis strict: Redis commands per signed-in request (counted by Redis, 1,000 requests)",
                format!("{strict_commands:.3}"),
                "1 (one round trip)",
                (strict_commands - 1.0).abs() < 0.01,
            );
            if let (Some(raw), Some(client)) = (of("raw GET"), of("redis-rs GET")) {
                let value_len = control.as_ref().map_or(0, |(_, _, len)| *len);
                report.info(
                    SECTION,
                    format!(
                        "control: one loopback Redis GET of a {value_len}-byte value (the session record's size), raw RESP on a blocking socket"
                    ),
                    fmt_us(raw.op),
                );
                report.info(
                    SECTION,
                    "control: the same GET through redis-rs's `ConnectionManager` (the store's client), same executor as the strict row",
                    fmt_us(client.op),
                );
                report.note(
                    SECTION,
                    format!(
                        "Redis strict reads the session on every request: Redis counted {strict_commands:.3} commands \
                         per request (the local copy: {:.3}). Its {} added over bare is one loopback round trip — a \
                         raw GET of a record of the session's size takes {} on a blocking socket, {} through \
                         redis-rs's `ConnectionManager` (its driver task on the runtime's worker, the request \
                         parked on this thread until the reply: two thread hand-offs) — plus {} of the store's own \
                         work (the key, the record's JSON, the session check) and the layer's in-memory path. With \
                         the default 5 s local copy, a process answers from its copy and Redis costs what the \
                         in-memory store costs.",
                        per_request("local copy"),
                        fmt_us(strict.added),
                        fmt_us(raw.op),
                        fmt_us(client.op),
                        fmt_us(strict.added - client.op),
                    ),
                );
            }
        }
        (Err(e), _, _) => {
            report.info(
                SECTION,
                "in process: signed in, Redis on loopback (default local copy, and strict)",
                "not measured: no `redis-server` (see notes)",
            );
            report.note(SECTION, format!("The Redis rows were skipped: {e}."));
        }
        _ => {}
    }
    let mut note = format!(
        "Signed-in requests in process, no sockets: the same `GET /` with the session cookie through a cloned \
         router (tower `oneshot`, polled on this thread; a request that waits — Redis — is finished on a one-worker \
         runtime), the bare handler receiving the same `Cookie` header. Alternate batches for {} s: a batch of \
         bare requests (256), then a batch of the contender (256; 16 for the Redis round trips), again and again; \
         the added cost is the median over batch pairs of (contender − the bare batch just before it), the ratio \
         the median of the per-pair ratios. The user signed in once beforehand against the emulator (login → \
         consent → callback), so every request carries a real session.",
        IN_PROCESS_BUDGET.as_secs()
    );
    {
        let verdict = if memory.added > 2.0 {
            "misses ≤ 2 µs here"
        } else {
            "meets ≤ 2 µs"
        };
        note.push_str(&format!(
            " The in-memory row {verdict}. `SignIn::layer()` runs tower-sessions' session manager on every \
             request, which alone (its cookie parse and session, the session not read) adds {} over bare in the \
             same run, {:.0} % of the {} the sign-in adds; the rest ({}) is idgate's own: the user answered from \
             the process's copy instead of a store read and the record's JSON (which tower-sessions alone with one \
             read costs {}), the expiry and idle checks, the allowlist decision and the user in the request's \
             extensions. The copy's lookup is a comparison of session IDs in the thread's last few answers; the \
             shared cache behind them (moka, about 150 ns a lookup even uncontended) is read only when this thread \
             has not answered the session since the copy was last written. That front \
             (`idgate-signin/src/local_copy.rs`) took the in-memory row from 2.03 to 1.79 µs and the Redis one \
             with the local copy from 1.97 to 1.75 µs (`--only=signin` before and after it, back to back, this \
             machine).",
            fmt_us(manager.added),
            100.0 * manager.added / memory.added,
            fmt_us(memory.added),
            fmt_us(memory.added - manager.added),
            fmt_us(sessions.added),
        ));
    }
    report.note(SECTION, note);
}

#[derive(Debug, Clone, Copy)]
struct Paired {
    bare: f64,
    op: f64,
    added: f64,
    ratio: f64,
    batches: usize,
}

/// The loopback transport of a token exchange alone: a POST of a form through a fresh reqwest client to a server
/// that answers at once with a canned JSON the size of a token response (an access token and an RS256 ID token),
/// driven and timed like the callback. Median waiting time per POST.
fn instant_token_endpoint(rt: &tokio::runtime::Runtime, samples: usize) -> (f64, usize) {
    let answer = serde_json::json!({
        "access_token": "ya29.".to_owned() + &"a".repeat(160),
        "expires_in": 3599,
        "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
        "token_type": "Bearer",
        "id_token": "e".repeat(1100),
    })
    .to_string();
    let size = answer.len();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("token-endpoint")
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route(
            "/token",
            post(move || {
                let answer = answer.clone();
                async move { ([(http::header::CONTENT_TYPE, "application/json")], answer) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        addr
    });
    let client = {
        let _guard = rt.enter();
        reqwest::Client::new()
    };
    // A form the size of the callback's (the code, the client's ID and secret, the PKCE verifier).
    let (code, client_id, secret, verifier) = (
        "c".repeat(70),
        "i".repeat(60),
        "s".repeat(35),
        "v".repeat(43),
    );
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let mut waiting = Vec::with_capacity(samples);
    for k in 0..=samples {
        let posted = drive(rt, async {
            let response = client
                .post(format!("http://{addr}/token"))
                .header(http::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
                .expect("POST");
            response.bytes().await.expect("body")
        });
        assert_eq!(posted.output.len(), size);
        // The first POST connects; the rest reuse the pooled connection, as the callbacks' exchanges do.
        if k > 0 {
            waiting.push(posted.waiting.as_secs_f64() * 1e6);
        }
    }
    drop(server);
    (median(&waiting), size)
}

fn callback_end_to_end(env: &Env, rt: &tokio::runtime::Runtime, report: &mut Report) {
    let signin = build(env, Store::Memory);
    let app = app(&signin);
    // Warm: the sign-in's Google keys fetched, reqwest's connection to the emulator pooled.
    let _ = sign_in(rt, &app, env, &signin);
    let times: Vec<SignInTimes> = (0..SIGN_INS)
        .map(|_| sign_in(rt, &app, env, &signin).1)
        .collect();
    let med = |f: fn(&SignInTimes) -> Duration| {
        median(
            &times
                .iter()
                .map(|t| f(t).as_secs_f64() * 1e6)
                .collect::<Vec<_>>(),
        )
    };
    let (total, consent, idgate, exchange) = (
        med(|t| t.total),
        med(|t| t.consent),
        med(|t| t.idgate),
        med(|t| t.exchange),
    );
    let waits = median(&times.iter().map(|t| f64::from(t.waits)).collect::<Vec<_>>());
    let (transport, answer_size) = instant_token_endpoint(rt, SIGN_INS);
    report.info(
        SECTION,
        format!("sign-in end to end: login → the emulator's consent → callback (in-memory store), median of {SIGN_INS}"),
        fmt_us(total),
    );
    report.info(
        SECTION,
        "… of which the emulator's consent (Google's account chooser: not idgate's)",
        fmt_us(consent),
    );
    report.info(
        SECTION,
        "… of which the code exchange: the callback waiting on the emulator's token endpoint (loopback round trip and its work)",
        format!("{} (median {waits:.0} waits per sign-in)", fmt_us(exchange)),
    );
    report.info(
        SECTION,
        "… of which idgate's own work: login and callback, polled on the calling thread (the code exchange excluded)",
        fmt_us(idgate),
    );
    report.info(
        SECTION,
        format!(
            "control: a loopback POST answered at once with a canned {answer_size}-byte token response (transport alone)"
        ),
        fmt_us(transport),
    );
    report.note(
        SECTION,
        format!(
            "The callback end to end: {SIGN_INS} sign-ins of the same user through the app in process (login → \
             `Emulator::consent`, which plays Google's account chooser → callback, by tower `oneshot`), after one \
             unrecorded sign-in (keys fetched, connection to the emulator pooled). The login and callback futures \
             are polled by hand on the measuring thread inside a one-worker runtime's context, each poll and each \
             wait timed: time in `poll` is idgate's own work (the attempt, PKCE and cookies at login; at the \
             callback the attempt's redemption, the form, the ID token's verification with warm keys, the \
             allowlist, the session written to the in-memory store, and the HTTP client's share of the request); \
             time between a `Pending` and the wake-up is the code exchange: reqwest's connection task on the \
             runtime's worker sending the POST, the emulator's token endpoint (on its own runtime) checking the \
             code and PKCE verifier and minting the RS256 ID token, and the answer coming back. Nothing else waits \
             (memory store, warm keys: the login never pends). The consent is timed on its own and is not idgate's. \
             The control row, driven the same way, is the exchange's transport alone (a server that answers a \
             POST at once with a canned token-sized JSON): the exchange minus it ({}) is the emulator's own work on \
             the code.",
            fmt_us(exchange - transport)
        ),
    );
}
