//! The IAP proxy: assertion added, spoofed headers stripped, bodies streamed, any method.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use idgate_emulator::{IAP_ISSUER, IapProxy, IapUserSpec, numeric_id};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{emulator, verify};

/// An upstream that answers with the method, path, identity headers and the body's length + checksum;
/// `/stream` streams the request body back.
async fn upstream() -> url::Url {
    async fn inspect(request: Request) -> axum::Json<Value> {
        let method = request.method().to_string();
        let uri = request.uri().to_string();
        let headers: HeaderMap = request.headers().clone();
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap();
        let all = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        axum::Json(json!({
            "method": method,
            "uri": uri,
            "assertion": all("x-goog-iap-jwt-assertion"),
            "email": all("x-goog-authenticated-user-email"),
            "id": all("x-goog-authenticated-user-id"),
            "other": all("x-goog-authenticated-user-extra"),
            "respelled": headers
                .keys()
                .filter(|name| name.as_str().contains(['_', '.']))
                .map(|name| name.as_str().to_owned())
                .collect::<Vec<_>>(),
            "len": body.len(),
            "sum": body.iter().map(|b| u64::from(*b)).sum::<u64>(),
        }))
    }
    async fn echo(request: Request) -> Body {
        Body::new(request.into_body())
    }
    let app = Router::new()
        .route("/base/stream", axum::routing::post(echo))
        .fallback(inspect);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/base/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn adds_a_fresh_assertion_and_strips_spoofed_headers() {
    let emu = emulator().await;
    let proxy = IapProxy::start(
        &emu,
        upstream().await,
        IapUserSpec::new("alice@example.com")
            .hosted_domain("example.com")
            .access_levels(["lvl"]),
    )
    .await
    .unwrap();
    let seen: Value = reqwest::Client::new()
        .get(proxy.url().join("some/path?q=1").unwrap())
        .header("X-Goog-IAP-JWT-Assertion", "forged.token.here")
        .header(
            "x-goog-authenticated-user-email",
            "accounts.google.com:mallory@evil.test",
        )
        .header("X-GOOG-AUTHENTICATED-USER-ID", "accounts.google.com:666")
        .header("X-Goog-Authenticated-User-Extra", "spoof")
        // Other spellings an application may read as the same headers (CGI folds `_`, lighttpd any non-alphanumeric).
        .header(
            "X_Goog_Authenticated_User_Email",
            "accounts.google.com:mallory@evil.test",
        )
        .header("X.Goog.Iap.Jwt.Assertion", "forged.token.here")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["uri"], "/base/some/path?q=1");
    assert_eq!(
        seen["email"],
        json!(["accounts.google.com:alice@example.com"])
    );
    assert_eq!(
        seen["id"],
        json!([format!(
            "accounts.google.com:{}",
            numeric_id("alice@example.com")
        )])
    );
    assert_eq!(seen["other"], json!([]));
    assert_eq!(seen["respelled"], json!([]));
    let assertions = seen["assertion"].as_array().unwrap();
    assert_eq!(assertions.len(), 1);
    let claims = verify(
        emu.iap_jwks_url(),
        assertions[0].as_str().unwrap(),
        &emu.iap_audience_app_engine(),
        IAP_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["hd"], "example.com");
    assert_eq!(claims["google"]["access_levels"], json!(["lvl"]));
    assert_eq!(
        claims["sub"],
        format!("accounts.google.com:{}", numeric_id("alice@example.com"))
    );

    // Switching user takes effect on the next request; a bent assertion is passed through as-is.
    proxy.set_user(IapUserSpec::new("bob@example.com").token(|t| t.expired()));
    let seen: Value = reqwest::get(proxy.url())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen["email"],
        json!(["accounts.google.com:bob@example.com"])
    );
    let expired = seen["assertion"][0].as_str().unwrap();
    assert!(
        verify(
            emu.iap_jwks_url(),
            expired,
            &emu.iap_audience_app_engine(),
            IAP_ISSUER
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn any_method_and_bodies_stream_both_ways() {
    let emu = emulator().await;
    let proxy = IapProxy::start(&emu, upstream().await, IapUserSpec::new("a@example.com"))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let seen: Value = client
            .request(method.parse().unwrap(), proxy.url().join("x").unwrap())
            .body(vec![7u8; 1000])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["method"], method);
        assert_eq!(
            (seen["len"].as_u64(), seen["sum"].as_u64()),
            (Some(1000), Some(7000))
        );
    }
    // A multi-megabyte body, sent in chunks, streams through and back.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64u8).map(|i| Ok(vec![i; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_stream(chunks));
    let resp = client
        .post(proxy.url().join("stream").unwrap())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let back = resp.bytes().await.unwrap();
    assert_eq!(back.len(), 64 * 64 * 1024);
    assert!(
        back.chunks(64 * 1024)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i))
    );
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(items)
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_bad_upstreams_are_refused() {
    let emu = emulator().await;
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let proxy = IapProxy::start(&emu, dead, IapUserSpec::new("a@example.com"))
        .await
        .unwrap();
    assert_eq!(
        reqwest::get(proxy.url()).await.unwrap().status(),
        StatusCode::BAD_GATEWAY
    );
    proxy.shutdown().await;
    let https = url::Url::parse("https://example.com/").unwrap();
    assert!(
        IapProxy::start(&emu, https, IapUserSpec::new("a@example.com"))
            .await
            .is_err()
    );
}
