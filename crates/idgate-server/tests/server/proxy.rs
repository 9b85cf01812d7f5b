//! The proxy: identity forwarded to the upstream, spoofed identity headers stripped, rejections kept out.

use http::StatusCode;
use idgate_emulator::TokenSpec;
use idgate_server::{Layers, RequireIdentityLayer};

use crate::{
    ALLOWED_SA, AUDIENCE, OTHER_SA, Seen, allowlist, client, emulator, oidc_verifier,
    recording_router, serve,
};

#[tokio::test]
async fn forwards_identity_and_strips_spoofed_headers() {
    let emulator = emulator().await;
    let upstream_seen = Seen::default();
    let upstream = serve(recording_router(&upstream_seen)).await;

    let layer = RequireIdentityLayer::new(oidc_verifier(&emulator))
        .allowlist(allowlist())
        .exempt_path("/healthz");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(idgate_server::proxy::serve(
        listener,
        upstream.parse().unwrap(),
        Layers::new(Some(layer), None),
        idgate_server::proxy::ProxyOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let token = emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience(AUDIENCE));
    let response = client()
        .get(format!("{proxy}/"))
        .bearer_auth(&token)
        .header("x-idgate-caller-email", "ceo@example.com")
        .header("x-idgate-caller-kind", "user")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_seen.last_headers();
    assert_eq!(headers["x-idgate-caller-kind"], "service_account");
    assert_eq!(headers["x-idgate-caller-email"], ALLOWED_SA);
    assert_eq!(headers["x-idgate-caller-project"], "billing-prod");
    assert_eq!(headers.get_all("x-idgate-caller-email").iter().count(), 1);
    assert!(headers.get("x-hop").is_none());
    assert!(headers.get("x-forwarded-for").is_some());
    assert_eq!(upstream_seen.calls(), 1);

    // Rejected requests never reach the upstream.
    let other = emulator.mint(&TokenSpec::service_account(OTHER_SA).audience(AUDIENCE));
    let response = client()
        .get(format!("{proxy}/"))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client()
        .get(format!("{proxy}/"))
        .header("x-idgate-caller-email", ALLOWED_SA)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream_seen.calls(), 1);

    // Exempt paths are forwarded without identity, and spoofed identity headers are stripped there too.
    let response = client()
        .get(format!("{proxy}/healthz"))
        .header("x-idgate-caller-email", "ceo@example.com")
        .header("x-idgate-caller-project", "billing-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_seen.last_headers();
    assert!(
        headers
            .keys()
            .all(|name| !name.as_str().starts_with("x-idgate-")),
        "{headers:?}"
    );
    assert_eq!(upstream_seen.calls(), 2);

    // Graceful shutdown.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let emulator = emulator().await;
    let layer = RequireIdentityLayer::new(oidc_verifier(&emulator)).allowlist(allowlist());
    let router = idgate_server::proxy::router(
        &"http://127.0.0.1:9".parse().unwrap(),
        &Layers::new(Some(layer), None),
    )
    .unwrap();
    let proxy = serve(router).await;
    let token = emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience(AUDIENCE));
    let response = client()
        .get(format!("{proxy}/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
}
