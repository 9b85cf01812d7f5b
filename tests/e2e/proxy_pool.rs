//! The proxy's upstream connections (#17): kept and reused across requests, driven by the request that uses them,
//! and never reused when an upstream closed one or a client left in the middle of a body. The upstream here is a raw
//! socket server, so the test sees every connection the proxy opens and when the proxy closes one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::proxy::{identity_layers, proxy};
use crate::support::{client, emulator, sa};

/// A big body's size, streamed in chunks of 16 KiB.
const BIG: usize = 1 << 20;

/// An HTTP/1.1 upstream on a raw socket that counts the connections it accepts and answers by path:
/// `/` a small body, `/empty` a 204, `/big` a chunked 1 MiB, `/then-close` a small body after which it closes the
/// connection (as an upstream's idle timeout does, without `Connection: close`), `/stall` a head and one chunk, then
/// nothing until the proxy closes the connection, which it reports on `closed`.
struct RawUpstream {
    url: url::Url,
    connections: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<&'static str>,
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let (report, closed) = mpsc::unbounded_channel();
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, report.clone()));
            }
        });
        Self {
            url: format!("http://{addr}/").parse().expect("url"),
            connections,
            closed,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request head (the proxy sends no body here); `None` when the proxy closed the connection.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn serve(mut stream: TcpStream, closed: mpsc::UnboundedSender<&'static str>) {
    while let Some(head) = read_head(&mut stream).await {
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        let written = match path.as_str() {
            "/empty" => stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await,
            "/big" => {
                let mut answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for _ in 0..BIG / 16_384 {
                    answer.extend_from_slice(b"4000\r\n");
                    answer.extend_from_slice(&[b'b'; 16_384]);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"0\r\n\r\n");
                stream.write_all(&answer).await
            }
            "/then-close" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                return;
            }
            "/stall" => {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                    )
                    .await;
                // Nothing more: the proxy is to close this connection once its client has gone.
                let mut rest = [0u8; 64];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                let _ = closed.send("/stall");
                return;
            }
            _ => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
            }
        };
        if written.is_err() {
            return;
        }
    }
}

async fn fetch(addr: SocketAddr, path: &str, token: &str) -> (u16, Vec<u8>) {
    let response = client()
        .get(format!("http://{addr}{path}"))
        .header("authorization", token)
        .send()
        .await
        .expect("the proxy answers");
    let status = response.status().as_u16();
    (
        status,
        response.bytes().await.expect("the whole body").to_vec(),
    )
}

/// Small bodies, empty answers and a big chunked body, one after the other: all on one upstream connection.
#[tokio::test]
async fn requests_one_after_another_share_one_upstream_connection() {
    let emu = emulator().await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let upstream = RawUpstream::start().await;
    let addr = proxy(&upstream.url, &identity_layers(&emu)).await;
    for round in 0..3 {
        for _ in 0..5 {
            assert_eq!(fetch(addr, "/", &token).await, (200, b"ok".to_vec()));
        }
        let (status, body) = fetch(addr, "/empty", &token).await;
        assert_eq!((status, body.len()), (204, 0), "round {round}");
        let (status, body) = fetch(addr, "/big", &token).await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), BIG, "round {round}");
        assert!(body.iter().all(|b| *b == b'b'));
    }
    assert_eq!(upstream.connections(), 1);
}

/// An upstream that closes a kept connection (its idle timeout) costs no request: the next one goes on a new
/// connection and is answered.
#[tokio::test]
async fn an_upstream_closing_a_kept_connection_costs_no_request() {
    let emu = emulator().await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let upstream = RawUpstream::start().await;
    let addr = proxy(&upstream.url, &identity_layers(&emu)).await;
    for _ in 0..3 {
        assert_eq!(
            fetch(addr, "/then-close", &token).await,
            (200, b"ok".to_vec())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fetch(addr, "/", &token).await, (200, b"ok".to_vec()));
    assert_eq!(upstream.connections(), 4);
}

/// A client that leaves while its response is still coming: the proxy closes that upstream connection (half a
/// response on it, it can carry nothing else) and the next request opens another.
#[tokio::test]
async fn a_connection_a_client_left_mid_body_is_closed_not_reused() {
    let emu = emulator().await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let mut upstream = RawUpstream::start().await;
    let addr = proxy(&upstream.url, &identity_layers(&emu)).await;
    let mut response = client()
        .get(format!("http://{addr}/stall"))
        .header("authorization", &token)
        .send()
        .await
        .expect("the head");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.chunk().await.expect("a chunk").as_deref(),
        Some(&b"first"[..])
    );
    drop(response);
    let closed = tokio::time::timeout(Duration::from_secs(5), upstream.closed.recv())
        .await
        .expect("the proxy closes the upstream connection its client left");
    assert_eq!(closed, Some("/stall"));
    assert_eq!(fetch(addr, "/", &token).await, (200, b"ok".to_vec()));
    assert_eq!(upstream.connections(), 2);
}

/// Many clients at once: each is answered, the connections opened are kept, and the next wave opens none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_answered_and_their_connections_kept() {
    let emu = emulator().await;
    let token = format!("Bearer {}", emu.mint(&sa()));
    let upstream = RawUpstream::start().await;
    let addr = proxy(&upstream.url, &identity_layers(&emu)).await;
    let wave = || async {
        let requests = (0..32).map(|i| {
            let token = token.clone();
            let path = if i % 4 == 0 { "/big" } else { "/" };
            tokio::spawn(async move { fetch(addr, path, &token).await })
        });
        for request in requests {
            let (status, body) = request.await.expect("the task");
            assert_eq!(status, 200);
            assert!(body == b"ok" || body.len() == BIG, "{} bytes", body.len());
        }
    };
    wave().await;
    let opened = upstream.connections();
    assert!((1..=32).contains(&opened), "{opened} connections");
    wave().await;
    wave().await;
    assert!(
        upstream.connections() <= 32,
        "{} connections after three waves of 32",
        upstream.connections()
    );
}
