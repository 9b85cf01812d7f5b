//! The Host rule against DNS rebinding: only requests addressed to a loopback name (or an allowed one) are
//! answered, by the emulator and by its IAP proxy; the others get a 403, mint nothing and count nowhere.
//! Requests go over real loopback TCP with hand-written HTTP/1.1 (reqwest would not send most of these Host
//! headers) and, for `:authority`, hyper's HTTP/2 client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idgate_emulator::{Emulator, EmulatorError, IapProxy, IapUserSpec, Route};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::emulator;

/// Far longer than a loopback answer takes; reaching it means a hang.
const BOUND: Duration = Duration::from_secs(10);

const IDENTITY: &str =
    "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x.test";

/// One answer, as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `GET target` with `host_lines` (whole header lines, e.g. `"Host: a\r\n"`) over a fresh connection.
async fn get(addr: SocketAddr, target: &str, host_lines: &str) -> Answer {
    let request = format!(
        "GET {target} HTTP/1.1\r\n{host_lines}Metadata-Flavor: Google\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        response
    };
    let response = tokio::time::timeout(BOUND, exchange)
        .await
        .expect("answered within the bound");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn host(value: &str) -> String {
    format!("Host: {value}\r\n")
}

fn assert_refused(answer: &Answer, case: &str) {
    assert_eq!(answer.status, 403, "{case}: {answer:?}");
    assert!(
        answer
            .head
            .contains("content-type: text/plain; charset=utf-8"),
        "{case}: {answer:?}"
    );
    assert!(
        answer.body.contains("Host is not allowed") && answer.body.contains("--allow-host"),
        "{case}: {answer:?}"
    );
    assert!(!answer.body.contains("eyJ"), "{case}: nothing minted");
}

fn total_hits(emu: &Emulator) -> u64 {
    Route::ALL.iter().map(|e| emu.hits(*e)).sum()
}

#[tokio::test]
async fn requests_for_other_hosts_are_refused_before_counting_or_minting() {
    let emu = emulator().await;
    let addr = emu.local_addr();
    let port = addr.port();
    let cases: Vec<(&str, String, String)> = vec![
        ("another name", IDENTITY.to_owned(), host("evil.example")),
        (
            "another name with the emulator's port",
            IDENTITY.to_owned(),
            host(&format!("evil.example:{port}")),
        ),
        (
            "a name starting like a loopback address",
            IDENTITY.to_owned(),
            host(&format!("127.0.0.1.evil.example:{port}")),
        ),
        (
            "a name starting with localhost",
            IDENTITY.to_owned(),
            host("localhost.evil.example"),
        ),
        (
            "junk after an IPv6 literal",
            IDENTITY.to_owned(),
            host(&format!("[::1].evil:{port}")),
        ),
        (
            "an empty Host",
            IDENTITY.to_owned(),
            "Host: \r\n".to_owned(),
        ),
        ("no Host", IDENTITY.to_owned(), String::new()),
        (
            "a second, foreign Host",
            IDENTITY.to_owned(),
            host(&format!("127.0.0.1:{port}")) + &host("evil.example"),
        ),
        (
            "the same Host twice",
            IDENTITY.to_owned(),
            host(&format!("127.0.0.1:{port}")) + &host(&format!("127.0.0.1:{port}")),
        ),
        (
            "userinfo before a loopback address",
            IDENTITY.to_owned(),
            host(&format!("a@127.0.0.1:{port}")),
        ),
        (
            "an absolute-form target naming another host",
            format!("http://evil.example:{port}{IDENTITY}"),
            host(&format!("127.0.0.1:{port}")),
        ),
        (
            "a key endpoint",
            "/oauth2/v3/certs".to_owned(),
            host("evil.example"),
        ),
        (
            "an unknown path",
            "/nowhere".to_owned(),
            host("evil.example"),
        ),
    ];
    for (case, target, lines) in &cases {
        assert_refused(&get(addr, target, lines).await, case);
    }
    assert_eq!(total_hits(&emu), 0, "refused requests are counted nowhere");

    // The same request, addressed to the emulator, mints: the refusals above were about the Host alone.
    let answer = get(addr, IDENTITY, &host(&format!("127.0.0.1:{port}"))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body.split('.').count(), 3, "a JWT: {answer:?}");
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
    assert_eq!(total_hits(&emu), 1);
}

#[tokio::test]
async fn loopback_hosts_are_answered_with_or_without_a_port() {
    let emu = emulator().await;
    let addr = emu.local_addr();
    let port = addr.port();
    let hosts = [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        format!("127.0.0.2:{port}"),
        format!("localhost:{port}"),
        "LocalHost".to_owned(),
        format!("[::1]:{port}"),
        "[::1]".to_owned(),
    ];
    for h in &hosts {
        let answer = get(addr, "/oauth2/v3/certs", &host(h)).await;
        assert_eq!(answer.status, 200, "{h}: {answer:?}");
    }
    assert_eq!(emu.hits(Route::OidcJwks), hosts.len() as u64);
    // The emulator's own URLs (what every client here uses) carry an allowed Host.
    let jwks = reqwest::get(emu.oidc_jwks_url()).await.unwrap();
    assert_eq!(jwks.status(), 200);
}

#[tokio::test]
async fn allow_host_adds_names_and_allow_any_host_answers_every_name() {
    let emu = Emulator::builder()
        .allow_host("emulator.internal")
        .allow_host("10.1.2.3")
        .start()
        .await
        .unwrap();
    let addr = emu.local_addr();
    for ok in [
        "emulator.internal",
        "Emulator.Internal:8085",
        "10.1.2.3:8085",
        "localhost",
    ] {
        assert_eq!(
            get(addr, "/oauth2/v3/certs", &host(ok)).await.status,
            200,
            "{ok}"
        );
    }
    for bad in [
        "other.internal",
        "emulator.internal.evil.example",
        "10.1.2.4",
    ] {
        assert_refused(&get(addr, "/oauth2/v3/certs", &host(bad)).await, bad);
    }
    assert_eq!(emu.hits(Route::OidcJwks), 4);

    let open = Emulator::builder().allow_any_host().start().await.unwrap();
    let answer = get(open.local_addr(), IDENTITY, &host("evil.example")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(open.hits(Route::MetadataIdentity), 1);
}

#[tokio::test]
async fn an_allowed_host_with_a_port_or_a_scheme_is_a_start_error() {
    for entry in [
        "emulator.internal:8085",
        "http://emulator.internal",
        "",
        "a@b",
    ] {
        let err = Emulator::builder()
            .allow_host(entry)
            .start()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EmulatorError::AllowedHost(e) if e == entry),
            "{entry:?}: {err}"
        );
    }
}

/// HTTP/2 carries the authority in `:authority` (the request URI), not in a Host header.
#[tokio::test]
async fn http2_authority_is_checked_like_host() {
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let emu = emulator().await;
    let addr = emu.local_addr();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("the emulator speaks HTTP/2 with prior knowledge");
    tokio::spawn(connection);
    let mut send = |authority: String| {
        let request = http::Request::builder()
            .version(http::Version::HTTP_2)
            .uri(format!("http://{authority}{IDENTITY}"))
            .header("metadata-flavor", "Google")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = sender.send_request(request);
        async move {
            let response = tokio::time::timeout(BOUND, response)
                .await
                .expect("bounded")
                .expect("an answer");
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    for bad in [
        format!("evil.example:{}", addr.port()),
        "localhost.evil.example".to_owned(),
    ] {
        let (status, body) = send(bad.clone()).await;
        assert_eq!(status, 403, "{bad}: {body}");
        assert!(body.contains("Host is not allowed"), "{bad}: {body}");
    }
    assert_eq!(total_hits(&emu), 0);
    let (status, body) = send(addr.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.split('.').count(), 3, "a JWT: {body}");
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
}

/// The IAP proxy mints an assertion for every request it forwards, so it keeps the emulator's Host rule.
#[tokio::test]
async fn the_iap_proxy_refuses_other_hosts_before_minting_or_forwarding() {
    let emu = Emulator::builder()
        .allow_host("app.test")
        .start()
        .await
        .unwrap();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&forwarded);
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            headers
                .get("x-goog-iap-jwt-assertion")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let proxy = IapProxy::start(&emu, upstream, IapUserSpec::new("alice@example.com"))
        .await
        .unwrap();
    let addr = proxy.local_addr();

    for bad in [
        "evil.example".to_owned(),
        format!("evil.example:{}", addr.port()),
        format!("a@127.0.0.1:{}", addr.port()),
    ] {
        assert_refused(&get(addr, "/", &host(&bad)).await, &bad);
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 0, "nothing was forwarded");

    for ok in [format!("127.0.0.1:{}", addr.port()), "app.test".to_owned()] {
        let answer = get(addr, "/", &host(&ok)).await;
        assert_eq!(answer.status, 200, "{ok}: {answer:?}");
        assert_eq!(
            answer.body.split('.').count(),
            3,
            "an assertion: {answer:?}"
        );
    }
    assert_eq!(forwarded.load(Ordering::SeqCst), 2);
}
