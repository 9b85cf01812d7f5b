//! Both adapters end to end: emulator-minted tokens attached to requests that reach a loopback echo server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use idgate_client::{
    AddIdTokenLayer, AttachError, Audience, CachedSource, HttpOptions, IdTokenMiddleware,
    IdTokenSourceExt, MetadataServer, TokenHeader,
};
use idgate_emulator::{Fault, Route};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};

use crate::helpers::{Echo, METADATA_SA, bearer, claims, emulator, quick_retry};

fn reqwest_client(
    middleware: IdTokenMiddleware<CachedSource<MetadataServer>>,
) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(middleware)
        .build()
}

async fn echoed(response: reqwest::Response) -> Value {
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

#[tokio::test]
async fn reqwest_middleware_attaches_a_token_for_the_origin() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    let source = MetadataServer::from_base_url(&emu.base_url()).cached();
    let client = reqwest_client(IdTokenMiddleware::new(source));

    let seen = echoed(client.get(echo.url("/v1/jobs?x=1")).send().await.unwrap()).await;
    let token = bearer(&seen["authorization"]);
    let c = claims(&token);
    assert_eq!(c["aud"], echo.origin());
    assert_eq!(c["email"], METADATA_SA);
    assert!(seen["x-serverless-authorization"].is_null());

    // Warm: the same token, no new mint.
    let again = echoed(client.post(echo.url("/other")).send().await.unwrap()).await;
    assert_eq!(bearer(&again["authorization"]), token);
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
}

#[tokio::test]
async fn reqwest_middleware_audience_overrides() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    let source = MetadataServer::from_base_url(&emu.base_url()).cached();

    // Per host.
    let client = reqwest_client(
        IdTokenMiddleware::new(source.clone()).audience_for_host("127.0.0.1", "https://custom"),
    );
    let seen = echoed(client.get(echo.url("/")).send().await.unwrap()).await;
    assert_eq!(
        claims(&bearer(&seen["authorization"]))["aud"],
        "https://custom"
    );

    // Fixed, with the per-host override winning for its host only.
    let client = reqwest_client(
        IdTokenMiddleware::new(source.clone())
            .audience("https://fixed")
            .audience_for_host("elsewhere.example", "x"),
    );
    let seen = echoed(client.get(echo.url("/")).send().await.unwrap()).await;
    assert_eq!(
        claims(&bearer(&seen["authorization"]))["aud"],
        "https://fixed"
    );

    // Per request, over everything.
    let seen = echoed(
        client
            .get(echo.url("/"))
            .with_extension(Audience::new("https://per-request"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        claims(&bearer(&seen["authorization"]))["aud"],
        "https://per-request"
    );
}

#[tokio::test]
async fn reqwest_middleware_header_choice_and_existing_headers() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    let source = MetadataServer::from_base_url(&emu.base_url()).cached();

    let client = reqwest_client(
        IdTokenMiddleware::new(source.clone()).header(TokenHeader::XServerlessAuthorization),
    );
    let seen = echoed(
        client
            .get(echo.url("/"))
            .header("authorization", "Bearer app-own")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Bearer app-own");
    assert_eq!(
        claims(&bearer(&seen["x-serverless-authorization"]))["aud"],
        echo.origin()
    );

    // An existing Authorization is left alone, and nothing is minted for it.
    let before = emu.hits(Route::MetadataIdentity);
    let client =
        reqwest_client(IdTokenMiddleware::new(source.clone()).audience("https://never-minted"));
    let seen = echoed(
        client
            .get(echo.url("/"))
            .header("authorization", "Basic dTpw")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Basic dTpw");
    assert_eq!(emu.hits(Route::MetadataIdentity), before);

    // Unless configured otherwise.
    let client = reqwest_client(IdTokenMiddleware::new(source).overwrite_existing(true));
    let seen = echoed(
        client
            .get(echo.url("/"))
            .header("authorization", "Basic dTpw")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        claims(&bearer(&seen["authorization"]))["aud"],
        echo.origin()
    );
}

#[tokio::test]
async fn reqwest_middleware_surfaces_source_failures_as_typed_errors() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 100);
    let source = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()))
        .cached();
    let client = reqwest_client(IdTokenMiddleware::new(source));
    let err = client.get(echo.url("/")).send().await.unwrap_err();
    assert!(err.is_middleware());
    let reqwest_middleware::Error::Middleware(inner) = err else {
        unreachable!("checked above")
    };
    let attach = inner.downcast_ref::<AttachError>().expect("an AttachError");
    assert!(attach.is_source());
    let source_error = attach.source_error().unwrap();
    assert_eq!(
        source_error.status(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(source_error.attempts(), Some(3));
    // The request was never sent.
    assert_eq!(echo.hits(), 0);
}

type Body = Full<Bytes>;

fn hyper_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn echoed_hyper(response: http::Response<hyper::body::Incoming>) -> Value {
    assert!(response.status().is_success());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn tower_layer_over_a_hyper_client() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    let source = MetadataServer::from_base_url(&emu.base_url()).cached();
    let client = ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source.clone()))
        .service(hyper_client());

    let request = |path: &str| {
        http::Request::get(echo.url(path))
            .body(Body::default())
            .unwrap()
    };
    let seen = echoed_hyper(client.clone().oneshot(request("/a")).await.unwrap()).await;
    let token = bearer(&seen["authorization"]);
    assert_eq!(claims(&token)["aud"], echo.origin());
    // Warm path: same token, one mint.
    let seen = echoed_hyper(client.clone().oneshot(request("/b")).await.unwrap()).await;
    assert_eq!(bearer(&seen["authorization"]), token);
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);

    // Per-request audience and X-Serverless-Authorization.
    let client = ServiceBuilder::new()
        .layer(
            AddIdTokenLayer::new(source)
                .audience("https://fixed")
                .header(TokenHeader::XServerlessAuthorization),
        )
        .service(hyper_client());
    let seen = echoed_hyper(client.clone().oneshot(request("/c")).await.unwrap()).await;
    assert_eq!(
        claims(&bearer(&seen["x-serverless-authorization"]))["aud"],
        "https://fixed"
    );
    let mut req = request("/d");
    req.extensions_mut()
        .insert(Audience::new("https://per-request"));
    let seen = echoed_hyper(client.oneshot(req).await.unwrap()).await;
    assert_eq!(
        claims(&bearer(&seen["x-serverless-authorization"]))["aud"],
        "https://per-request"
    );
}

#[tokio::test]
async fn tower_layer_errors_are_typed_and_the_inner_service_is_not_called() {
    let emu = emulator().await;
    let echo = Echo::start().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 100);
    let source = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()))
        .cached();
    let client = ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source))
        .service(hyper_client());
    let err = client
        .clone()
        .oneshot(
            http::Request::get(echo.url("/"))
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_attach());
    assert_eq!(
        err.attach_error()
            .and_then(AttachError::source_error)
            .and_then(|e| e.status()),
        Some(http::StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(echo.hits(), 0);

    // The inner service's own errors come back as `Inner`.
    let port = crate::helpers::closed_port().await;
    emu.clear_faults();
    let err = client
        .oneshot(
            http::Request::get(format!("http://127.0.0.1:{port}/"))
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.is_inner(), "{err}");
}
