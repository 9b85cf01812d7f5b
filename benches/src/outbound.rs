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
use idgate_emulator::Endpoint;
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
    let token = IdToken::new(env.oidc_tokens(2, 300_000).remove(0)).expect("token");
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
    let (bare_us, with_us) = client.block_on(async {
        let call = |c: &reqwest_middleware::ClientWithMiddleware| {
            let req = c.get(&url);
            async move {
                let t = Instant::now();
                let r = req.send().await.expect("send");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.expect("body");
                t.elapsed().as_nanos() as f64 / 1000.0
            }
        };
        for _ in 0..200 {
            call(&bare).await;
            call(&with).await;
        }
        let (mut b, mut w) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            for _ in 0..250 {
                b.push(call(&bare).await);
            }
            for _ in 0..250 {
                w.push(call(&with).await);
            }
        }
        (b, w)
    });
    let (mb, mw) = (median(&bare_us), median(&with_us));
    report.info(
        SECTION,
        "reqwest-middleware, bare: GET to a local axum hello-world",
        format!("median {} per request", fmt_us(mb)),
    );
    let added = mw - mb;
    report.goal(
        SECTION,
        "reqwest-middleware + `IdTokenMiddleware` (cached token): added per request",
        format!("median {} per request, {} added", fmt_us(mw), fmt_us(added)),
        "≤ 1 µs added",
        added <= 1.0,
    );
    report.note(
        SECTION,
        format!(
            "reqwest-middleware: {} requests each, bare and with the middleware alternating in blocks of 250 over \
             one keep-alive connection per client; the difference of medians is within the noise of a loopback \
             round trip (~{}), so the `AddIdTokenLayer` figure is the precise one.",
            bare_us.len(),
            fmt_us(mb)
        ),
    );
    drop(server);
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
    let source = Arc::new(MetadataServer::with_base_url(&env.emulator.base_url()).cached());
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
    let mints = env.emulator.hits(Endpoint::MetadataIdentity);
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
    reqwest_stack(env, report);
    cold_mints(env, report);
}
