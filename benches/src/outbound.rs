//! Outbound: attaching a cached ID token (reqwest-middleware against a local server; `AddIdTokenLayer` on a
//! `service_fn`), and 1,000 concurrent cold calls sharing one mint.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use idgate_client::{
    AddIdTokenLayer, CachedSource, IdTokenMiddleware, IdTokenSource, IdTokenSourceExt,
    MetadataServer, StaticToken,
};
use idgate_core::token::IdToken;
use idgate_emulator::Route;
use tower::{Service, ServiceBuilder, service_fn};

use crate::env::Env;
use crate::report::Report;
use crate::timing::{Op, interleaved, median, now};
use crate::verify::fmt_us;

const SECTION: &str = "Outbound (attaching a cached ID token)";

fn echo(req: http::Request<()>) -> std::future::Ready<Result<http::Request<()>, Infallible>> {
    std::future::ready(Ok(req))
}

fn reqwest_stack(env: &Env, report: &mut Report) {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
        addr
    });
    let token_str = env.oidc_tokens(2, 300_000).remove(0);
    let token = IdToken::new(token_str.clone()).expect("token");
    let source: CachedSource<StaticToken> = StaticToken::new(token).cached();
    let bare = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    let with = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdTokenMiddleware::new(source))
        .build();
    let url = format!("http://{addr}/");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bearer = format!("Bearer {token_str}");
    // The same depth of middleware chain as `with`, doing nothing: the hand-set header goes through it.
    let noop = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PassThrough)
        .build();
    let (bare_us, manual_us, with_us, carry, diffs) = client.block_on(async {
        let call = |req: reqwest_middleware::RequestBuilder| async move {
            let t = Instant::now();
            let r = req.send().await.expect("send");
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.expect("body");
            t.elapsed().as_nanos() as f64 / 1000.0
        };
        let plain = || call(bare.get(&url));
        let by_hand = || call(noop.get(&url).header(http::header::AUTHORIZATION, &bearer));
        let middleware = || call(with.get(&url));
        for _ in 0..500 {
            plain().await;
            by_hand().await;
            middleware().await;
        }
        // Rotate the order request by request, and take medians of paired differences: drift cancels out.
        let (mut p, mut h, mut m, mut carry, mut d) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..10_000 {
            let (x, y, z) = match i % 3 {
                0 => {
                    let x = plain().await;
                    let y = by_hand().await;
                    (x, y, middleware().await)
                }
                1 => {
                    let y = by_hand().await;
                    let z = middleware().await;
                    (plain().await, y, z)
                }
                _ => {
                    let z = middleware().await;
                    let x = plain().await;
                    (x, by_hand().await, z)
                }
            };
            p.push(x);
            h.push(y);
            m.push(z);
            carry.push(y - x);
            d.push(z - y);
        }
        (p, h, m, carry, d)
    });
    let (mb, mh, mw) = (median(&bare_us), median(&manual_us), median(&with_us));
    let (mc, md) = (median(&carry), median(&diffs));
    report.info(
        SECTION,
        "reqwest-middleware, bare: GET to a local axum hello-world, no token",
        format!("median {} per request", fmt_us(mb)),
    );
    report.info(
        SECTION,
        "reqwest-middleware with a pass-through middleware, the same `Authorization: Bearer` header set by hand",
        format!(
            "median {} per request; the header and one middleware level cost {} (median of paired differences)",
            fmt_us(mh),
            fmt_us(mc)
        ),
    );
    report.goal(
        SECTION,
        "reqwest-middleware + `IdTokenMiddleware` (cached token), GET to the local server: added over the same \
         header set by hand",
        format!(
            "median {} per request; median of paired differences {}",
            fmt_us(mw),
            fmt_us(md)
        ),
        "≤ 1 µs added",
        md <= 1.0,
    );
    report.note(
        SECTION,
        format!(
            "reqwest-middleware against the local server: {} requests of each kind over one keep-alive connection \
             per client, the three kinds rotating request by request; figures are medians of paired differences. \
             A loopback round trip (~{}) varies by several µs between requests, so these carry about ±0.5 µs of \
             noise. Carrying the token at all (an ~800-byte header to encode, copy through the kernel and parse on \
             the server) is paid whoever attaches it, so the middleware is compared with the same header set by \
             hand through a pass-through middleware (the same chain depth: entering reqwest-middleware's chain \
             boxes the request's future, which a client without middleware skips); the in-process rows (a terminal middleware answering at once, no I/O) measure the middleware \
             alone.",
            bare_us.len(),
            fmt_us(mb)
        ),
    );
    drop(server);
}

/// Passes every request on untouched.
#[derive(Debug)]
struct PassThrough;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for PassThrough {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        next.run(req, extensions).await
    }
}

/// Answers every request at once, without I/O: the bottom of a reqwest-middleware stack measured in process.
#[derive(Debug)]
struct Canned;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Canned {
    async fn handle(
        &self,
        req: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        black_box(req);
        Ok(reqwest::Response::from(http::Response::new("hello")))
    }
}

fn reqwest_in_process(env: &Env, report: &mut Report) {
    let token = IdToken::new(env.oidc_tokens(2, 300_020).remove(0)).expect("token");
    let source: CachedSource<StaticToken> = StaticToken::new(token).cached();
    let bare = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(Canned)
        .build();
    let with = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdTokenMiddleware::new(source))
        .with(Canned)
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let url = "https://api.example.com/v1/jobs";
    let send = |c: &reqwest_middleware::ClientWithMiddleware| {
        let r = crate::timing::run(&rt, c.get(url).send()).expect("send");
        black_box(r);
    };
    send(&with);
    let mut ops: Vec<Op<'_>> = vec![
        ("bare", Box::new(|_| send(&bare))),
        ("with", Box::new(|_| send(&with))),
    ];
    let samples = interleaved(&mut ops, 5, Duration::from_millis(300), 64);
    let (b, w) = (samples[0].median_us(), samples[1].median_us());
    report.info(
        SECTION,
        "reqwest-middleware in process (terminal middleware answers at once, no I/O), bare",
        fmt_us(b),
    );
    report.goal(
        SECTION,
        "reqwest-middleware in process + `IdTokenMiddleware` (cached token, audience from the URL): added per request",
        format!("{} per request, {} added", fmt_us(w), fmt_us(w - b)),
        "≤ 1 µs added",
        w - b <= 1.0,
    );
}

fn tower_layer(env: &Env, report: &mut Report) {
    let token = IdToken::new(env.oidc_tokens(2, 300_010).remove(0)).expect("token");
    let source = StaticToken::new(token).cached();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(source.id_token("https://api.example.com"))
        .expect("warm");
    let uri: http::Uri = "https://api.example.com/v1/jobs".parse().expect("uri");
    let request = || http::Request::get(uri.clone()).body(()).expect("request");
    let mut bare = ServiceBuilder::new().service(service_fn(echo));
    let mut layered = ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source).audience("https://api.example.com"))
        .service(service_fn(echo));
    let mut ops: Vec<Op<'_>> = vec![
        (
            "bare",
            Box::new(|_| {
                now(std::future::poll_fn(|cx| bare.poll_ready(cx))).expect("ready");
                black_box(now(bare.call(request())).expect("answer"));
            }),
        ),
        (
            "layer",
            Box::new(|_| {
                now(std::future::poll_fn(|cx| layered.poll_ready(cx))).expect("ready");
                let r = black_box(now(layered.call(request())).expect("answer"));
                debug_assert!(r.headers().contains_key(http::header::AUTHORIZATION));
            }),
        ),
    ];
    let samples = interleaved(&mut ops, 5, Duration::from_millis(300), 256);
    let (b, l) = (samples[0].median_us(), samples[1].median_us());
    report.info(
        SECTION,
        "tower: bare `service_fn` (request built and consumed)",
        fmt_us(b),
    );
    report.goal(
        SECTION,
        "tower: `AddIdTokenLayer` (cached token, fixed audience): added per request",
        format!("{} per request, {} added", fmt_us(l), fmt_us(l - b)),
        "≤ 1 µs added",
        l - b <= 1.0,
    );
}

fn cold_mints(env: &Env, report: &mut Report) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let source = Arc::new(MetadataServer::from_base_url(&env.emulator.base_url()).cached());
    env.emulator.reset_hits();
    let (ok, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(
                    async move { source.id_token("https://backend.example.com").await.is_ok() },
                )
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.expect("task"));
        }
        (ok, start.elapsed())
    });
    let mints = env.emulator.hits(Route::MetadataIdentity);
    report.goal(
        SECTION,
        "1,000 concurrent cold calls (metadata-server source, one audience): mints",
        format!(
            "{mints} mint(s); {ok}/1000 calls got a token in {}",
            fmt_us(elapsed.as_secs_f64() * 1e6)
        ),
        "exactly 1",
        mints == 1 && ok == 1000,
    );
}

pub(crate) fn run(env: &Env, report: &mut Report) {
    tower_layer(env, report);
    reqwest_in_process(env, report);
    reqwest_stack(env, report);
    cold_mints(env, report);
}
