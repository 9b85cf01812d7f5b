//! Spoofed identity headers through `idgate_proxy`: the upstream must never see a client-sent copy of
//! `X-Idgate-Caller-*` or `X-Goog-Authenticated-User-*` (in any spelling), a legacy app ID idgate did not trust, a
//! credential idgate did not verify, or forwarding headers the client made up; rejected requests never reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use http::HeaderMap;
use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_proxy::ProxyOptions;
use idgate_server::{Layers, RequireIapLayer, RequireIdentityLayer};

use crate::support::{
    ALLOWED_SA, PROJECT, allowlist, client, emulator, iap_allowlist, iap_verifier, oidc_verifier,
    raw_status, sa, user,
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

/// A client that speaks HTTP/2 without TLS from the first byte (h2c prior knowledge), as a front end may.
pub(crate) fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client")
}

pub(crate) async fn proxy(upstream: &url::Url, layers: &Layers) -> SocketAddr {
    proxy_with(upstream, layers, ProxyOptions::default()).await
}

pub(crate) fn identity_layers(emu: &Emulator) -> Layers {
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

/// IAP's signed assertion reaches the upstream only when the proxy's IAP gate verified it and admitted the request.
/// A copy nobody checked (no `[iap]`, an exempt path, a request admitted by its ID token) never does: an upstream
/// that trusts the header as IAP's word, or one half-way through moving its checks to idgate, would take a user
/// idgate never saw as the caller. (Found by an outsider's attack on the binary: the assertion passed next to the
/// verified service account's caller headers.)
#[tokio::test]
async fn proxy_forwards_an_iap_assertion_only_when_its_iap_gate_admitted_the_request() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let oidc = proxy(&url, &identity_layers(&emu)).await;
    let iap = proxy(&url, &iap_layers(&emu, false)).await;
    let token = emu.mint(&sa());
    let assertion = emu.mint(&user());

    for (name, path, mut headers) in [
        (
            "admitted by its ID token",
            "/",
            vec![("authorization", format!("Bearer {token}"))],
        ),
        ("exempt path", "/healthz", Vec::new()),
    ] {
        headers.push(("x-goog-iap-jwt-assertion", assertion.clone()));
        let before = upstream.calls();
        assert_eq!(get(oidc, path, &headers).await, 200, "{name}");
        assert_eq!(upstream.calls(), before + 1, "{name}");
        let seen = upstream.last();
        assert!(
            values(&seen, "x-goog-iap-jwt-assertion").is_empty(),
            "{name}: an unchecked IAP assertion reached the upstream"
        );
        if path == "/" {
            assert_eq!(
                values(&seen, "x-idgate-caller-email"),
                [ALLOWED_SA],
                "{name}"
            );
            assert_eq!(
                values(&seen, "x-idgate-caller-credential"),
                ["id_token"],
                "{name}"
            );
        }
    }

    // Behind the IAP gate the assertion is the credential it verified, forwarded as it came.
    assert_eq!(
        get(iap, "/", &[("x-goog-iap-jwt-assertion", assertion.clone())]).await,
        200
    );
    let seen = upstream.last();
    assert_eq!(values(&seen, "x-goog-iap-jwt-assertion"), [assertion]);
    assert_eq!(
        values(&seen, "x-idgate-caller-credential"),
        ["iap_assertion"]
    );
}

/// HTTP/2 clients send each cookie as a field of its own; the HTTP/1.1 upstream gets them joined into one `Cookie`
/// header, as RFC 9113 §8.2.3 requires (two `Cookie` lines reach many frameworks as only the first or the last). The
/// same for an HTTP/1.1 client that sent two `Cookie` lines.
#[tokio::test]
async fn proxy_joins_cookie_fields_into_one_header_for_the_upstream() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let addr = proxy(&url, &identity_layers(&emu)).await;
    let token = emu.mint(&sa());
    let h2 = h2c_client();
    for (version, http) in [("HTTP/1.1", client()), ("HTTP/2", h2)] {
        let response = http
            .get(format!("http://{addr}/"))
            .bearer_auth(&token)
            .header("cookie", "a=1")
            .header("cookie", "b=2; c=3")
            .header("cookie", "d=4")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{version}");
        assert_eq!(
            values(&upstream.last(), "cookie"),
            ["a=1; b=2; c=3; d=4"],
            "{version}"
        );
    }
}

// ---- Issue #10, items 1 to 4: what an upstream could be fooled by. ----

async fn proxy_with(upstream: &url::Url, layers: &Layers, options: ProxyOptions) -> SocketAddr {
    let router = idgate_proxy::router_with_options(upstream, layers, options).expect("router");
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

/// The identity layer with the legacy header trusted (the App Engine migration case) and `/healthz` exempt.
fn legacy_layers(emu: &Emulator) -> Layers {
    Layers::new(
        Some(
            RequireIdentityLayer::new(oidc_verifier(emu))
                .allowlist(allowlist())
                .trust_legacy_header(TrustedAppEngineFrontEnd::assume_behind_app_engine())
                .exempt_path("/healthz"),
        ),
        None,
    )
}

/// Every header name the upstream got that is spelt with a byte other than a letter, a digit or `-`.
fn underscore_twins(seen: &HeaderMap) -> Vec<String> {
    seen.keys()
        .map(|n| n.as_str().to_owned())
        .filter(|n| n.bytes().any(|b| !b.is_ascii_alphanumeric() && b != b'-'))
        .collect()
}

/// Item 1: underscore spellings of the identity headers are folded into the real ones by CGI/WSGI stacks, so they
/// never reach the upstream, on any path. The caller here is a trusted legacy App Engine app, which has no email
/// of its own: a forged underscore email would be the only one the upstream saw.
#[tokio::test]
async fn proxy_strips_underscore_twins_of_identity_headers_on_every_path() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let legacy = proxy(&url, &legacy_layers(&emu)).await;
    let iap = proxy(&url, &iap_layers(&emu, false)).await;
    let twins = || {
        vec![
            ("X_Idgate_Caller_Email", "admin@corp.com".to_owned()),
            ("X_Idgate_Caller_Kind", "user".to_owned()),
            ("x-idgate_caller-project", "victim".to_owned()),
            (
                "X_Goog_Authenticated_User_Email",
                "accounts.google.com:admin@corp.com".to_owned(),
            ),
            (
                "X_Goog_Authenticated_User_Id",
                "accounts.google.com:1".to_owned(),
            ),
            ("X_Appengine_Inbound_Appid", "victim-app".to_owned()),
            (
                "X_Serverless_Authorization",
                "Bearer forged.token.here".to_owned(),
            ),
            (
                "X_Goog_Iap_Jwt_Assertion",
                "forged.assertion.here".to_owned(),
            ),
            ("X_Forwarded_Proto", "https".to_owned()),
            ("X_Forwarded_Host", "evil.example".to_owned()),
            // lighttpd folds every byte that is not a letter or digit (outside review, second round).
            ("X.Idgate.Caller.Project", "billing-prod".to_owned()),
            ("X~Idgate~Caller~Email", "admin@corp.com".to_owned()),
            (
                "X+Goog+Authenticated+User+Email",
                "accounts.google.com:admin@corp.com".to_owned(),
            ),
            ("X.Appengine.Inbound.Appid", "victim-app".to_owned()),
            ("X.Serverless.Authorization", "Bearer forged".to_owned()),
            ("X!Appengine!Cron", "true".to_owned()),
            ("X_Request_Id", "kept".to_owned()),
        ]
    };
    let with_twins = |mut headers: Vec<(&'static str, String)>| {
        headers.extend(twins());
        headers
    };
    for (name, addr, path, headers) in [
        (
            "legacy app admitted",
            legacy,
            "/",
            with_twins(vec![("x-appengine-inbound-appid", PROJECT.to_owned())]),
        ),
        (
            "token admitted",
            legacy,
            "/",
            with_twins(vec![(
                "authorization",
                format!("Bearer {}", emu.mint(&sa())),
            )]),
        ),
        ("exempt path", legacy, "/healthz", with_twins(Vec::new())),
        (
            "IAP admitted",
            iap,
            "/",
            with_twins(vec![("x-goog-iap-jwt-assertion", emu.mint(&user()))]),
        ),
    ] {
        let calls = upstream.calls();
        assert_eq!(get(addr, path, &headers).await, 200, "{name}");
        assert_eq!(upstream.calls(), calls + 1, "{name}");
        let seen = upstream.last();
        assert_eq!(
            underscore_twins(&seen),
            ["x_request_id"],
            "{name}: only the unrelated underscore header may pass"
        );
        let email = values(&seen, "x-idgate-caller-email");
        assert!(
            email.iter().all(|e| e != "admin@corp.com"),
            "{name}: {email:?}"
        );
    }
    // The legacy app is identified as itself, with no email at all.
    assert_eq!(
        get(
            legacy,
            "/",
            &with_twins(vec![("x-appengine-inbound-appid", PROJECT.to_owned())])
        )
        .await,
        200
    );
    let seen = upstream.last();
    assert_eq!(values(&seen, "x-idgate-caller-kind"), ["app_engine_app"]);
    assert!(values(&seen, "x-idgate-caller-email").is_empty());
}

/// Item 1, with the real part users have: Python's `wsgiref` (what the reviewer used), which folds `_` and `-` into
/// one `HTTP_*` variable. Behind the proxy it must see no forged identity in any spelling.
#[tokio::test]
async fn a_wsgi_upstream_sees_no_forged_identity_behind_the_proxy() {
    // python3 is a documented prerequisite (the google-auth fidelity test needs it too): no silent skip.
    let wsgi = WsgiUpstream::start().expect("python3 runs Python's wsgiref server");
    let emu = emulator().await;
    let legacy = proxy(&wsgi.url(), &legacy_layers(&emu)).await;
    let response = client()
        .get(format!("http://{legacy}/"))
        .header("x-appengine-inbound-appid", PROJECT)
        .header("X_Idgate_Caller_Email", "admin@corp.com")
        .header(
            "X_Goog_Authenticated_User_Email",
            "accounts.google.com:admin@corp.com",
        )
        .header("X_Appengine_Inbound_Appid", "victim-app")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let environ: serde_json::Value = response
        .json()
        .await
        .expect("the WSGI app's environ as JSON");
    assert_eq!(
        environ["HTTP_X_IDGATE_CALLER_KIND"], "app_engine_app",
        "{environ}"
    );
    assert_eq!(
        environ["HTTP_X_APPENGINE_INBOUND_APPID"], PROJECT,
        "{environ}"
    );
    for forged in [
        "HTTP_X_IDGATE_CALLER_EMAIL",
        "HTTP_X_GOOG_AUTHENTICATED_USER_EMAIL",
    ] {
        assert!(
            environ.get(forged).is_none(),
            "{forged} reached the WSGI app: {environ}"
        );
    }
}

/// Python's reference WSGI server on a loopback port, answering every request with its environ's `HTTP_*`
/// variables as JSON. Killed on drop.
struct WsgiUpstream {
    child: std::process::Child,
    port: u16,
}

impl WsgiUpstream {
    fn start() -> Option<Self> {
        const APP: &str = r#"
import json, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
class Quiet(WSGIRequestHandler):
    def log_message(self, *args): pass
def app(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", APP])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let stdout = child.stdout.take()?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).ok()?;
        let port = line
            .trim()
            .parse()
            .expect("the WSGI server prints its port");
        Some(Self { child, port })
    }

    fn url(&self) -> url::Url {
        format!("http://127.0.0.1:{}/", self.port)
            .parse()
            .expect("url")
    }
}

impl Drop for WsgiUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Item 2: a client's `X-Appengine-Inbound-Appid` reaches the upstream only when the legacy header is trusted and
/// was the credential that admitted the request.
#[tokio::test]
async fn proxy_forwards_the_legacy_appid_only_when_it_admitted_the_request() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let untrusted = proxy(&url, &identity_layers(&emu)).await;
    let trusted = proxy(&url, &legacy_layers(&emu)).await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let appid = |v: &str| ("x-appengine-inbound-appid", v.to_owned());
    for (name, addr, path, headers, forwarded) in [
        (
            "untrusted, admitted by token",
            untrusted,
            "/",
            vec![appid("victim-app"), ("authorization", token.clone())],
            None,
        ),
        (
            "untrusted, exempt path",
            untrusted,
            "/healthz",
            vec![appid("victim-app")],
            None,
        ),
        (
            "trusted, exempt path",
            trusted,
            "/healthz",
            vec![appid("victim-app")],
            None,
        ),
        (
            "trusted, admitted by token (empty legacy header)",
            trusted,
            "/",
            vec![appid(""), ("authorization", token.clone())],
            None,
        ),
        (
            "trusted, admitted by the legacy header",
            trusted,
            "/",
            vec![appid(PROJECT)],
            Some(PROJECT),
        ),
    ] {
        assert_eq!(get(addr, path, &headers).await, 200, "{name}");
        let seen = values(&upstream.last(), "x-appengine-inbound-appid");
        assert_eq!(
            seen,
            forwarded.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

/// Item 3: the credential the upstream receives is the one idgate verified. Hop-by-hop headers go before the layer
/// chooses (so `Connection: X-Serverless-Authorization` cannot swap the credential after the check), and the bearer
/// header that was not verified is not forwarded.
#[tokio::test]
async fn proxy_forwards_only_the_credential_it_verified() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let addr = proxy(&url, &identity_layers(&emu)).await;
    let valid = emu.mint(&sa());
    let forged = emu.mint(&sa().tampered_signature());

    // The reviewer's request: valid serverless token, forged Authorization, Connection naming the serverless header.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Serverless-Authorization: Bearer {valid}\r\n\
         Authorization: Bearer {forged}\r\nConnection: close, X-Serverless-Authorization\r\n\r\n"
    );
    assert_eq!(raw_status(addr, request.as_bytes()).await, 401);
    assert_eq!(
        upstream.calls(),
        0,
        "the forged Authorization was judged, and refused"
    );
    // Connection naming Authorization leaves the serverless token, which is what is verified and forwarded.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Serverless-Authorization: Bearer {valid}\r\n\
         Authorization: Bearer {forged}\r\nConnection: close, Authorization\r\n\r\n"
    );
    assert_eq!(raw_status(addr, request.as_bytes()).await, 200);
    let seen = upstream.last();
    assert_eq!(
        values(&seen, "x-serverless-authorization"),
        [format!("Bearer {valid}")]
    );
    assert!(values(&seen, "authorization").is_empty());

    // Both present, no tricks: the serverless header wins (as on Cloud Run); the forged Authorization is dropped.
    let both = vec![
        ("x-serverless-authorization", format!("Bearer {valid}")),
        ("authorization", format!("Bearer {forged}")),
    ];
    assert_eq!(get(addr, "/", &both).await, 200);
    let seen = upstream.last();
    assert_eq!(
        values(&seen, "x-serverless-authorization"),
        [format!("Bearer {valid}")]
    );
    assert!(
        values(&seen, "authorization").is_empty(),
        "an unverified credential reached the upstream"
    );
    assert_eq!(values(&seen, "x-idgate-caller-email"), [ALLOWED_SA]);

    // Authorization alone is the verified credential, and is forwarded.
    assert_eq!(
        get(addr, "/", &[("authorization", format!("Bearer {valid}"))]).await,
        200
    );
    assert_eq!(
        values(&upstream.last(), "authorization"),
        [format!("Bearer {valid}")]
    );

    // On an exempt path nothing was verified and no caller headers are set: the bearer headers are the upstream's.
    assert_eq!(get(addr, "/healthz", &both).await, 200);
    let seen = upstream.last();
    assert_eq!(values(&seen, "authorization"), [format!("Bearer {forged}")]);
    assert!(values(&seen, "x-idgate-caller-email").is_empty());
}

/// Item 4: client-sent forwarding headers are replaced the same way over HTTP/1.1 and HTTP/2 (h2c), where the
/// authority arrives as `:authority` and there is no `Host` header.
#[tokio::test]
async fn proxy_sets_forwarding_headers_the_same_for_http1_and_http2() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let direct = proxy(&url, &identity_layers(&emu)).await;
    let behind_front_end = proxy_with(
        &url,
        &identity_layers(&emu),
        ProxyOptions::default().trust_forwarded_headers(true),
    )
    .await;
    let token = emu.mint(&sa());
    let h1 = client();
    let h2 = h2c_client();
    for (version, http) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        for (mode, addr) in [
            ("direct", direct),
            ("trusting the front end", behind_front_end),
        ] {
            let response = http
                .get(format!("http://{addr}/"))
                .bearer_auth(&token)
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-proto", "https")
                .header("forwarded", "for=192.0.2.1;host=evil.example;proto=https")
                .header("x-forwarded-for", "192.0.2.1")
                .send()
                .await
                .expect("answer");
            assert_eq!(response.status(), 200, "{version} {mode}");
            let seen = upstream.last();
            let name = format!("{version} {mode}");
            assert_eq!(
                values(&seen, "x-forwarded-for"),
                ["192.0.2.1, 127.0.0.1"],
                "{name}"
            );
            if mode == "direct" {
                assert_eq!(
                    values(&seen, "x-forwarded-host"),
                    [addr.to_string()],
                    "{name}"
                );
                assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{name}");
                assert!(values(&seen, "forwarded").is_empty(), "{name}");
            } else {
                assert_eq!(
                    values(&seen, "x-forwarded-host"),
                    ["evil.example"],
                    "{name}"
                );
                assert_eq!(values(&seen, "x-forwarded-proto"), ["https"], "{name}");
                assert_eq!(values(&seen, "forwarded").len(), 1, "{name}");
            }
        }
        // Without any forwarding headers, both modes fill them in from what the proxy saw.
        let response = http
            .get(format!("http://{behind_front_end}/"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        let seen = upstream.last();
        assert_eq!(
            values(&seen, "x-forwarded-host"),
            [behind_front_end.to_string()],
            "{version}"
        );
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{version}");
    }
}

/// An IAP external identity whose email its identity provider did not verify is admitted when IAP's policy is the
/// only gate (no allowlist), but the upstream is never told that unverified email as the caller's.
#[tokio::test]
async fn proxy_never_passes_an_unverified_external_email_as_the_callers() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let layers = Layers::new(None, Some(RequireIapLayer::new(iap_verifier(&emu))));
    let addr = proxy(&url, &layers).await;
    let external = |verified: bool| {
        emu.mint(&TokenSpec::iap_user("ceo@corp.example").claim(
            "gcip",
            serde_json::json!({"email_verified": verified, "firebase": {"tenant": "t-1"}}),
        ))
    };
    assert_eq!(
        get(addr, "/", &[("x-goog-iap-jwt-assertion", external(false))]).await,
        200
    );
    let seen = upstream.last();
    assert_eq!(values(&seen, "x-idgate-caller-kind"), ["iap_user"]);
    assert!(
        values(&seen, "x-idgate-caller-email").is_empty(),
        "{seen:?}"
    );
    assert!(
        values(&seen, "x-goog-authenticated-user-email").is_empty(),
        "{seen:?}"
    );

    assert_eq!(
        get(addr, "/", &[("x-goog-iap-jwt-assertion", external(true))]).await,
        200
    );
    assert_eq!(
        values(&upstream.last(), "x-idgate-caller-email"),
        ["ceo@corp.example"]
    );
}

/// Outside review, second round: App Engine's platform headers (by which legacy apps admit cron jobs, tasks and
/// administrators) reach the upstream only behind App Engine's front end; `Proxy` (httpoxy) and every `Proxy-*` never
/// do; nor do a client's `X-Forwarded-Port`/`-Prefix` and `X-Real-IP`; and `X-Forwarded-Host` follows an
/// absolute-form request target over `Host`.
#[tokio::test]
async fn proxy_strips_platform_proxy_and_forwarding_headers_a_client_cannot_own() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let direct = proxy(&url, &identity_layers(&emu)).await;
    let behind_app_engine = proxy(&url, &legacy_layers(&emu)).await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let platform = || {
        vec![
            ("authorization", token.clone()),
            ("x-appengine-cron", "true".to_owned()),
            ("x-appengine-user-is-admin", "1".to_owned()),
            ("x-appengine-queuename", "default".to_owned()),
            ("proxy", "http://evil.example:1".to_owned()),
            ("proxy-foo", "bar".to_owned()),
            ("x-forwarded-port", "443".to_owned()),
            ("x-forwarded-prefix", "/admin".to_owned()),
            ("x-real-ip", "192.0.2.7".to_owned()),
        ]
    };
    for (name, addr, app_engine_kept) in [
        ("direct", direct, false),
        ("behind App Engine", behind_app_engine, true),
    ] {
        for path in ["/", "/healthz"] {
            assert_eq!(get(addr, path, &platform()).await, 200, "{name} {path}");
            let seen = upstream.last();
            for header in [
                "proxy",
                "proxy-foo",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-real-ip",
            ] {
                assert!(values(&seen, header).is_empty(), "{name} {path}: {header}");
            }
            for header in [
                "x-appengine-cron",
                "x-appengine-user-is-admin",
                "x-appengine-queuename",
            ] {
                assert_eq!(
                    !values(&seen, header).is_empty(),
                    app_engine_kept,
                    "{name} {path}: {header}"
                );
            }
        }
    }
    // An absolute-form target names the authority the client asked for; `Host` does not override it.
    let request = format!(
        "GET http://asked.example/ HTTP/1.1\r\nHost: hostheader.example\r\nAuthorization: {token}\r\n\
         Connection: close\r\n\r\n"
    );
    assert_eq!(raw_status(direct, request.as_bytes()).await, 200);
    assert_eq!(
        values(&upstream.last(), "x-forwarded-host"),
        ["asked.example"]
    );
}

/// [`idgate_proxy::serve`] on a loopback port of its own in front of `url`, as `idgate proxy` runs it, until
/// `shutdown`; its address and its task.
async fn serve_proxy(
    url: url::Url,
    layers: Layers,
    options: ProxyOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<(), idgate_proxy::ProxyError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(idgate_proxy::serve(
        listener, url, layers, options, shutdown,
    ));
    (addr, server)
}

/// [`serve_proxy`] with the identity layers in front of a recording [`Upstream`], until `stop` is sent.
async fn serve_identity_proxy(
    emu: &Emulator,
) -> (
    Upstream,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), idgate_proxy::ProxyError>>,
) {
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_proxy(url, identity_layers(emu), ProxyOptions::default(), async {
        let _ = stopped.await;
    })
    .await;
    (upstream, addr, stop, server)
}

/// The sidecar as `idgate proxy` runs it: [`idgate_proxy::serve`] (the listener limits, graceful shutdown), the
/// caller forwarded, rejections kept out, exempt paths forwarded without identity.
#[tokio::test]
async fn serve_forwards_identity_keeps_rejections_out_and_shuts_down_gracefully() {
    let emu = emulator().await;
    let (upstream, addr, stop, server) = serve_identity_proxy(&emu).await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    assert_eq!(
        get(
            addr,
            "/",
            &[
                ("authorization", token),
                ("x-idgate-caller-email", "ceo@example.com".to_owned()),
                ("connection", "keep-alive, x-hop".to_owned()),
                ("x-hop", "1".to_owned()),
            ]
        )
        .await,
        200
    );
    let seen = upstream.last();
    assert_eq!(values(&seen, "x-idgate-caller-email"), [ALLOWED_SA]);
    assert_eq!(values(&seen, "x-idgate-caller-project"), [PROJECT]);
    assert!(values(&seen, "x-hop").is_empty());
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    let intruder = TokenSpec::service_account("x@other-proj.iam.gserviceaccount.com")
        .audience(crate::support::AUD);
    let refused = [("authorization", format!("Bearer {}", emu.mint(&intruder)))];
    assert_eq!(get(addr, "/", &refused).await, 403);
    assert_eq!(get(addr, "/", &[]).await, 401);
    assert_eq!(upstream.calls(), 1, "rejections never reach the upstream");
    assert_eq!(get(addr, "/healthz", &[]).await, 200);
    assert_eq!(upstream.calls(), 2);

    stop.send(()).expect("the proxy is running");
    server
        .await
        .expect("joined")
        .expect("a clean stop after the shutdown signal");
}

/// A `HEAD` answer carries no body, over HTTP/1.1 and HTTP/2, whether the proxy refused the request or the upstream
/// answered it. axum drops a `HEAD` body only where a method router answers, and hyper's HTTP/2 server sends
/// whatever body it is given, which an h2 client takes as a protocol error and resets the stream. Regression: at
/// bc52a36 the proxy's stack was served through `Router::fallback_service`, past axum's method router, and a refused
/// `HEAD` over h2c went out with its 401 text as DATA.
#[tokio::test]
async fn head_requests_get_no_body_over_http1_and_http2() {
    let emu = emulator().await;
    let (upstream, addr, stop, server) = serve_identity_proxy(&emu).await;
    let token = emu.mint(&sa());
    let h2 = h2c_client();
    for (version, http) in [("HTTP/1.1", client()), ("HTTP/2", h2)] {
        let refused = http
            .head(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version}: a refused HEAD: {e:?}"));
        assert_eq!(refused.status(), 401, "{version}");
        let body = refused.bytes().await;
        assert!(body.is_ok_and(|b| b.is_empty()), "{version}");

        let admitted = http
            .head(format!("http://{addr}/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version}: an admitted HEAD: {e:?}"));
        assert_eq!(admitted.status(), 200, "{version}");
        // The length a GET's body would have (`upstream`), as the upstream announced it.
        assert_eq!(
            admitted
                .headers()
                .get("content-length")
                .map(|v| v.as_bytes()),
            Some(&b"8"[..]),
            "{version}"
        );
        let body = admitted.bytes().await;
        assert!(body.is_ok_and(|b| b.is_empty()), "{version}");
    }
    assert_eq!(upstream.calls(), 2, "only the admitted HEADs reached it");
    stop.send(()).expect("the proxy is running");
    server.await.expect("joined").expect("a clean stop");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    let emu = emulator().await;
    let addr = proxy(
        &"http://127.0.0.1:9/".parse().expect("url"),
        &identity_layers(&emu),
    )
    .await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    assert_eq!(get(addr, "/", &[("authorization", token)]).await, 502);
}

/// An upstream on a raw socket that answers each request with `head`, then holds the body until `release` fires,
/// then sends `body`: a slow upstream, to see when the proxy hands on a response head.
async fn held_body_upstream(
    head: &'static str,
    body: &'static str,
    release: tokio::sync::oneshot::Receiver<()>,
) -> url::Url {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the proxy closed before sending a request head");
            request.extend_from_slice(&buf[..n]);
        }
        stream.write_all(head.as_bytes()).await.expect("head");
        let _ = release.await;
        stream.write_all(body.as_bytes()).await.expect("body");
        let _ = stream.shutdown().await;
    });
    format!("http://{addr}/").parse().expect("url")
}

/// A streamed response (no `Content-Length`: server-sent events, a long download) has its head handed on at once,
/// before any of its body exists; a small one of known length arrives whole, with its length, in one piece.
#[tokio::test]
async fn proxy_hands_on_a_streamed_head_at_once_and_small_bodies_whole() {
    let emu = emulator().await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let (release, held) = tokio::sync::oneshot::channel();
    let url = held_body_upstream(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        held,
    )
    .await;
    let addr = proxy(&url, &identity_layers(&emu)).await;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client()
            .get(format!("http://{addr}/events"))
            .header("authorization", &token)
            .send(),
    )
    .await
    .expect("the head of a streamed response must not wait for its body")
    .expect("response");
    assert_eq!(response.status(), 200);
    release.send(()).expect("upstream waiting");
    assert_eq!(response.text().await.expect("body"), "hello");

    // Known lengths, under and over the size whose first frame is read before the head goes on.
    for len in [1, 10_000, 200_000] {
        let upstream = Router::new().fallback(move || async move { "a".repeat(len) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let upstream_addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, upstream).await;
        });
        let url = format!("http://{upstream_addr}/").parse().expect("url");
        let addr = proxy(&url, &identity_layers(&emu)).await;
        let response = client()
            .get(format!("http://{addr}/"))
            .header("authorization", &token)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.content_length(), Some(len as u64), "{len} bytes");
        let body = response.bytes().await.expect("body");
        assert_eq!(body.len(), len);
        assert!(body.iter().all(|b| *b == b'a'));
    }
}

/// A request body that fails on its way upstream is the client's fault: malformed chunking is a `400` and a streamed
/// body over the limit a `413`, not a `502` that blames the upstream (an outside attack found the `502`). A good
/// chunked body still goes through.
#[tokio::test]
async fn a_client_body_that_fails_on_its_way_upstream_is_the_clients_error_not_a_502() {
    let emu = emulator().await;
    let upstream = Upstream::default();
    let url = upstream.start().await;
    let limits = idgate_proxy::ServerLimits::default()
        .with_max_request_body_bytes(16)
        .expect("limit");
    let (addr, _server) = serve_proxy(
        url,
        identity_layers(&emu),
        ProxyOptions::default().limits(limits),
        std::future::pending(),
    )
    .await;
    let token = emu.mint(&sa());
    let chunked = |chunks: &str| {
        format!(
            "POST /upload HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
             Transfer-Encoding: chunked\r\n\r\n{chunks}"
        )
    };
    // A chunk size that overflows.
    let malformed = chunked("ffffffffffffffffff\r\n");
    assert_eq!(raw_status(addr, malformed.as_bytes()).await, 400);
    // 40 bytes streamed against a 16-byte limit.
    let over = chunked(&format!(
        "14\r\n{}\r\n14\r\n{}\r\n0\r\n\r\n",
        "a".repeat(20),
        "b".repeat(20)
    ));
    assert_eq!(raw_status(addr, over.as_bytes()).await, 413);
    // Within the limit: forwarded.
    let fine = chunked("5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(raw_status(addr, fine.as_bytes()).await, 200);
}
