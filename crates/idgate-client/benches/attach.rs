//! The cost of attaching a cached token: the warm path of `AddIdTokenLayer` (ID tokens) and `AddAccessTokenLayer`
//! (access tokens) over a `service_fn` that answers at once, against the same stack without the layer. The futures are polled by hand with a no-op waker, so neither a
//! runtime nor I/O is measured; the difference between the two is the layer.
//!
//! `cargo bench -p idgate-client -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use idgate_client::tower::AddAccessTokenLayer;
use idgate_client::{
    AccessToken, AccessTokenSource, AddIdTokenLayer, BoxFuture, CachedSource, IdTokenSource,
    IdTokenSourceExt, Scopes, SourceError, StaticToken,
};
use idgate_core::token::IdToken;
use tower::{Service, ServiceBuilder, service_fn};

/// exp = 2100-01-01: always fresh.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.\
    eyJhdWQiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImVtYWlsIjoiY2FsbGVyQHAuaWFtLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJleHAiOjQxMDI0NDQ4MDAsImlhdCI6NDEwMjQ0MTIwMCwiaXNzIjoiaHR0cHM6Ly9hY2NvdW50cy5nb29nbGUuY29tIiwic3ViIjoiMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxIn0.\
    c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

/// Polls a future that must be ready at once (everything here is in memory).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked services never wait"),
    }
}

/// The inner service: consumes the request (as a real client would) and answers at once.
fn echo(req: http::Request<()>) -> std::future::Ready<Result<http::Request<()>, Infallible>> {
    std::future::ready(Ok(req))
}

fn warm_source() -> CachedSource<StaticToken> {
    let source = StaticToken::new(IdToken::new(TOKEN).expect("a JWT")).cached();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for audience in ["https://api.example.com", "https://api.example.com/fixed"] {
        runtime
            .block_on(source.id_token(audience))
            .expect("a token");
    }
    source
}

/// The inner service for the access-token layer, which reads the status (a 401 drops the token): consumes the
/// request and answers 200 at once.
fn answer(req: http::Request<()>) -> std::future::Ready<Result<http::Response<()>, Infallible>> {
    drop(black_box(req));
    std::future::ready(Ok(http::Response::new(())))
}

/// An access-token source that hands out one long-lived token: the cache in front of it is what is measured.
#[derive(Debug)]
struct Handed;

impl AccessTokenSource for Handed {
    fn access_token<'a>(
        &'a self,
        _: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        let token = AccessToken::new(
            "ya29.a0AfB_byC-benchmark-access-token-of-a-realistic-length-0123456789abcdefghijklmnopqrstuvwxyz",
            Some(std::time::Duration::from_secs(3600)),
        );
        Box::pin(std::future::ready(Ok(token)))
    }
}

fn bench(c: &mut Criterion) {
    let uri: http::Uri = "https://api.example.com/v1/jobs".parse().expect("a URI");
    let request = || http::Request::get(uri.clone()).body(()).expect("a request");
    let source = warm_source();

    let mut group = c.benchmark_group("attach");

    let mut bare = ServiceBuilder::new().service(service_fn(echo));
    group.bench_function("bare service_fn", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| bare.poll_ready(cx))).expect("ready");
            black_box(now(bare.call(request())).expect("answer"))
        });
    });

    let mut fixed = ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source.clone()).audience("https://api.example.com/fixed"))
        .service(service_fn(echo));
    group.bench_function("layer, warm, fixed audience", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| fixed.poll_ready(cx))).expect("ready");
            black_box(now(fixed.call(request())).expect("answer"))
        });
    });

    let mut derived = ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source.clone()))
        .service(service_fn(echo));
    group.bench_function("layer, warm, audience from the URI", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| derived.poll_ready(cx))).expect("ready");
            black_box(now(derived.call(request())).expect("answer"))
        });
    });

    let mut bare_answer = ServiceBuilder::new().service(service_fn(answer));
    group.bench_function("bare service_fn answering a response", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| bare_answer.poll_ready(cx))).expect("ready");
            black_box(now(bare_answer.call(request())).expect("answer"))
        });
    });

    let access = CachedSource::new(Handed);
    now(access.access_token(&Scopes::cloud_platform())).expect("a token");
    let mut access_layer = ServiceBuilder::new()
        .layer(AddAccessTokenLayer::new(access).allow_host("api.example.com"))
        .service(service_fn(answer));
    group.bench_function("access-token layer, warm, cloud-platform", |b| {
        b.iter(|| {
            now(std::future::poll_fn(|cx| access_layer.poll_ready(cx))).expect("ready");
            black_box(now(access_layer.call(request())).expect("answer"))
        });
    });

    group.bench_function("CachedSource::peek", |b| {
        b.iter(|| black_box(source.peek(black_box("https://api.example.com"))));
    });
    group.bench_function("CachedSource::id_token, warm", |b| {
        b.iter(|| {
            black_box(now(source.id_token(black_box("https://api.example.com"))).expect("a token"))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
