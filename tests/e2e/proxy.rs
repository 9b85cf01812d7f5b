//! Spoofed identity headers through `idgate_server::proxy`: the upstream must never see a client-sent copy of
//! `X-Idgate-Caller-*` or `X-Goog-Authenticated-User-*`, and rejected requests must never reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use http::HeaderMap;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::{Layers, RequireIapLayer, RequireIdentityLayer};

use crate::support::{
    ALLOWED_SA, PROJECT, allowlist, client, emulator, iap_allowlist, iap_verifier, oidc_verifier,
    sa, user,
};

/// An upstream that records the headers of every request it gets.
#[derive(Clone, Default)]
struct Upstream(Arc<Mutex<Vec<HeaderMap>>>);

impl Upstream {
    async fn start(&self) -> url::Url {
        let seen = self.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.0.lock().expect("lock").push(headers);
                "upstream"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/").parse().expect("url")
    }

    fn calls(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    fn last(&self) -> HeaderMap {
        self.0
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

async fn proxy(upstream: &url::Url, layers: &Layers) -> SocketAddr {
    let router = idgate_server::proxy::router(upstream, layers).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

fn identity_layers(emu: &Emulator) -> Layers {
    Layers::new(
        Some(
            RequireIdentityLayer::new(oidc_verifier(emu))
                .allowlist(allowlist())
                .exempt_path("/healthz"),
        ),
        None,
    )
}

fn iap_layers(emu: &Emulator, compare_plain: bool) -> Layers {
    Layers::new(
        None,
        Some(
            RequireIapLayer::new(iap_verifier(emu))
                .allowlist(iap_allowlist())
                .compare_plain_user_headers(compare_plain),
        ),
    )
}

/// Every spoofable identity header, twice, with values naming someone else.
fn spoofed() -> Vec<(&'static str, &'static str)> {
    vec![
        ("x-idgate-caller-kind", "user"),
        ("x-idgate-caller-kind", "app_engine_app"),
        ("x-idgate-caller-email", "admin@evil.example"),
        ("X-Idgate-Caller-Email", "root@evil.example"),
        ("x-idgate-caller-project", "victim-project"),
        ("x-idgate-caller-anything", "x"),
        (
            "x-goog-authenticated-user-email",
            "accounts.google.com:admin@evil.example",
        ),
        ("x-goog-authenticated-user-id", "accounts.google.com:1"),
        (
            "X-Goog-Authenticated-User-Email",
            "accounts.google.com:root@evil.example",
        ),
    ]
}

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> u16 {
    let mut request = client().get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request
        .send()
        .await
        .expect("proxy answers")
        .status()
        .as_u16()
}

fn with_spoofed(mut headers: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    headers.extend(spoofed().into_iter().map(|(n, v)| (n, v.to_owned())));
    headers
}

#[tokio::test]
async fn proxy_replaces_spoofed_idgate_caller_headers_with_the_verified_ones() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let addr = proxy(&upstream.start().await, &identity_layers(&emu)).await;
    let token = emu.mint(&sa());
    let status = get(
        addr,
        "/v1",
        &with_spoofed(vec![("authorization", format!("Bearer {token}"))]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(upstream.calls(), 1);
    let seen = upstream.last();
    assert_eq!(values(&seen, "x-idgate-caller-email"), [ALLOWED_SA]);
    assert_eq!(values(&seen, "x-idgate-caller-kind"), ["service_account"]);
    assert_eq!(values(&seen, "x-idgate-caller-project"), [PROJECT]);
    assert!(values(&seen, "x-idgate-caller-anything").is_empty());

    // On an exempt path the spoofed headers are dropped and none are added.
    assert_eq!(get(addr, "/healthz", &with_spoofed(Vec::new())).await, 200);
    let seen = upstream.last();
    for name in [
        "x-idgate-caller-kind",
        "x-idgate-caller-email",
        "x-idgate-caller-project",
        "x-idgate-caller-anything",
    ] {
        assert!(
            values(&seen, name).is_empty(),
            "{name} reached the upstream on an exempt path"
        );
    }
}

#[tokio::test]
async fn proxy_rejected_requests_with_spoofed_headers_never_reach_the_upstream() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let oidc = proxy(&url, &identity_layers(&emu)).await;
    let iap = proxy(&url, &iap_layers(&emu, true)).await;
    let cases: Vec<(&str, SocketAddr, Vec<(&'static str, String)>, u16)> = vec![
        ("identity: spoofed headers only", oidc, Vec::new(), 401),
        (
            "identity: tampered token",
            oidc,
            vec![(
                "authorization",
                format!("Bearer {}", emu.mint(&sa().tampered_signature())),
            )],
            401,
        ),
        (
            "identity: disallowed caller",
            oidc,
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    emu.mint(
                        &TokenSpec::service_account("x@other-proj.iam.gserviceaccount.com")
                            .audience(crate::support::AUD)
                    )
                ),
            )],
            403,
        ),
        (
            "identity: signature-removed token",
            oidc,
            vec![(
                "authorization",
                format!("Bearer {}", emu.mint(&sa().signature_removed())),
            )],
            401,
        ),
        ("iap: spoofed headers only", iap, Vec::new(), 401),
        // With plain-header comparison on, a good assertion next to a forged plain email is refused.
        (
            "iap: good assertion, forged plain email",
            iap,
            vec![("x-goog-iap-jwt-assertion", emu.mint(&user()))],
            401,
        ),
    ];
    for (name, addr, headers, want) in cases {
        assert_eq!(get(addr, "/", &with_spoofed(headers)).await, want, "{name}");
        assert_eq!(upstream.calls(), 0, "{name} reached the upstream");
    }
}

/// The plain IAP headers are identity only when IAP itself set them; idgate's proxy cannot tell, so a client-sent
/// copy must never reach the upstream, where legacy code may read it as identity (GOOGLE-IDENTITY §6.2).
#[tokio::test]
async fn proxy_never_forwards_client_sent_goog_authenticated_user_headers() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let oidc = proxy(&url, &identity_layers(&emu)).await;
    let iap = proxy(&url, &iap_layers(&emu, false)).await;
    let token = emu.mint(&sa());
    let assertion = emu.mint(&user());
    for (name, addr, headers) in [
        (
            "identity layer",
            oidc,
            vec![("authorization", format!("Bearer {token}"))],
        ),
        (
            "iap layer, comparison off",
            iap,
            vec![("x-goog-iap-jwt-assertion", assertion)],
        ),
        ("identity layer, exempt path", oidc, Vec::new()),
    ] {
        let path = if headers.is_empty() { "/healthz" } else { "/" };
        assert_eq!(get(addr, path, &with_spoofed(headers)).await, 200, "{name}");
        let seen = upstream.last();
        for header in [
            "x-goog-authenticated-user-email",
            "x-goog-authenticated-user-id",
        ] {
            let forwarded = values(&seen, header);
            assert!(
                forwarded
                    .iter()
                    .all(|v| !v.contains("evil.example") && v != "accounts.google.com:1"),
                "{name}: client-sent {header} reached the upstream: {forwarded:?}"
            );
        }
        // Behind the IAP layer the upstream still gets IAP's plain headers, rebuilt from the verified assertion.
        let email = values(&seen, "x-goog-authenticated-user-email");
        if name.starts_with("iap") {
            assert_eq!(email.len(), 1, "{name}: {email:?}");
            assert!(
                email[0].starts_with("accounts.google.com:") && !email[0].contains("evil"),
                "{name}: {email:?}"
            );
            let id = values(&seen, "x-goog-authenticated-user-id");
            assert!(
                id.len() == 1 && id[0].starts_with("accounts.google.com:"),
                "{name}: {id:?}"
            );
        } else {
            assert!(email.is_empty(), "{name}: {email:?}");
        }
    }
}
