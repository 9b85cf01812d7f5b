//! `idgate_serve::serve` on loopback, with sub-second limits: every limit closes what it bounds, and nothing else.
//!
//! Bounds on "closed within" are generous (the machine may be loaded); bounds on "not closed before" are the
//! robust kind of timing assertion (being slow can only make them pass more easily, never fail).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idgate_serve::ServerLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the test server saw.
#[derive(Default)]
struct Seen {
    /// Requests whose handler ran.
    handled: AtomicUsize,
    /// Handlers running now, and the most at once.
    running: AtomicUsize,
    most_running: AtomicUsize,
    /// Bodies read completely by `/upload`.
    uploads: AtomicUsize,
}

fn app(seen: &Arc<Seen>, hold: &Arc<Semaphore>) -> Router {
    let count = {
        let seen = Arc::clone(seen);
        move || {
            seen.handled.fetch_add(1, Ordering::SeqCst);
        }
    };
    let hello = {
        let count = count.clone();
        move || async move {
            count();
            "hello"
        }
    };
    let peer = {
        let count = count.clone();
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            count();
            peer.to_string()
        }
    };
    let slow = {
        move || async move {
            count();
            tokio::time::sleep(Duration::from_millis(1200)).await;
            "slow"
        }
    };
    let held = {
        let (seen, hold) = (Arc::clone(seen), Arc::clone(hold));
        move || async move {
            seen.handled.fetch_add(1, Ordering::SeqCst);
            let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most_running.fetch_max(now, Ordering::SeqCst);
            let _released = hold.acquire().await;
            seen.running.fetch_sub(1, Ordering::SeqCst);
            "released"
        }
    };
    let upload = {
        let seen = Arc::clone(seen);
        move |body: Body| async move {
            seen.handled.fetch_add(1, Ordering::SeqCst);
            match body.collect().await {
                Ok(bytes) => {
                    seen.uploads.fetch_add(1, Ordering::SeqCst);
                    format!("got {} bytes", bytes.to_bytes().len())
                }
                Err(error) => format!("body error: {error}"),
            }
        }
    };
    // 64 MiB, streamed: more than the socket buffers and hyper's write buffer can hold for a client that reads
    // nothing.
    let big = || async {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        Body::from_stream(futures_util::stream::iter(
            (0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        ))
    };
    // The same, after a handler that takes longer than the tests' header timeout: the watchdog's first timer fires
    // while the request is in flight, so nothing is armed when the response starts sending.
    let slow_big = move || async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        big().await
    };
    // Three chunks with pauses longer than the tests' idle timeout: a body waiting for data.
    let drip = || async {
        Body::from_stream(futures_util::stream::unfold(0_u8, |i| async move {
            if i == 3 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + i])), i + 1))
        }))
    };
    Router::new()
        .route("/big", get(big))
        .route("/slow-big", get(slow_big))
        .route("/drip", get(drip))
        .route("/", get(hello))
        .route("/peer", get(peer))
        .route("/slow", get(slow))
        .route("/hold", get(held))
        .route("/upload", post(upload))
        .route(
            "/thread",
            get(|| async { std::thread::current().name().unwrap_or("").to_owned() }),
        )
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    hold: Arc<Semaphore>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn limits(header_ms: u64, idle_ms: u64) -> ServerLimits {
    ServerLimits::default()
        .with_header_read_timeout(ms(header_ms))
        .and_then(|l| l.with_idle_timeout(ms(idle_ms)))
        .unwrap()
}

async fn start(limits: ServerLimits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let hold = Arc::new(Semaphore::new(0));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(idgate_serve::serve(
        listener,
        app(&seen, &hold),
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        seen,
        hold,
        stop: Some(stop),
        task,
    }
}

/// [`start`] with [`idgate_serve::serve_on_threads`] on `threads` threads; also counts the routers made.
async fn start_on_threads(limits: ServerLimits, threads: usize) -> (Server, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let hold = Arc::new(Semaphore::new(0));
    let routers = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = oneshot::channel::<()>();
    let router = {
        let (seen, hold, routers) = (Arc::clone(&seen), Arc::clone(&hold), Arc::clone(&routers));
        move || {
            routers.fetch_add(1, Ordering::SeqCst);
            app(&seen, &hold)
        }
    };
    let task = tokio::spawn(idgate_serve::serve_on_threads(
        listener,
        std::num::NonZeroUsize::new(threads).unwrap(),
        router,
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    let server = Server {
        addr,
        seen,
        hold,
        stop: Some(stop),
        task,
    };
    (server, routers)
}

/// Reads until the peer closes (EOF or reset); returns what was read and when the close came, or `None` if it
/// did not come within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0_u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let at = tokio::time::timeout(within, read).await.ok()?;
    Some((seen, at))
}

/// One HTTP/1.1 request on its own connection; the status and body.
async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}Host: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    parse(&response)
}

fn parse(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

async fn fetch(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\n"), b"").await
}

/// `count` connections that send nothing, on a server with a 300 ms header timeout: each is closed without a
/// response, not before the timeout, while a request on another connection is served.
async fn silent_connections_closed(server: &Server, count: usize) {
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..count {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    assert_eq!(fetch(server.addr, "/").await, (200, "hello".to_owned()));
    for stream in &mut silent {
        let (bytes, at) = closed_within(stream, Duration::from_secs(5))
            .await
            .expect("a silent connection stayed open");
        assert!(bytes.is_empty(), "closed without a response");
        assert!(at - opened >= ms(250), "closed before the header timeout");
    }
    assert_eq!(fetch(server.addr, "/").await.0, 200);
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_header_read_timeout_while_others_are_served() {
    silent_connections_closed(&start(limits(300, 10_000)).await, 10).await;
}

#[tokio::test]
async fn a_request_head_dribbled_a_byte_at_a_time_is_closed() {
    let server = start(limits(400, 10_000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        // A close shows up as EOF on the read side.
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(ms(50), stream.read(&mut [0_u8; 64])).await
        {
            closed = true;
            break;
        }
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "the slow head was not cut"
        );
    }
    assert!(closed, "the whole head went through without a close");
    assert!(opened.elapsed() >= ms(350));
    assert_eq!(server.seen.handled.load(Ordering::SeqCst), 0);
}

/// `GET /` on an open keep-alive connection; the status and body.
async fn keep_alive_get(stream: &mut TcpStream) -> (u16, String) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0_u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0, "the connection was closed under the request");
    parse(&buf[..n])
}

/// `requests` requests 300 ms apart on one keep-alive connection (header timeout 200 ms, idle timeout 1 s), each
/// answered; then the connection is closed by the idle timeout after the last one, not before.
async fn idle_close_after(requests: usize) {
    let server = start(limits(200, 1000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for i in 0..requests {
        if i > 0 {
            tokio::time::sleep(ms(300)).await;
        }
        assert_eq!(
            keep_alive_get(&mut stream).await,
            (200, "hello".to_owned()),
            "request {i}"
        );
    }
    let answered = Instant::now();
    let (_, at) = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection stayed open");
    // Not the 200 ms header timeout (the margin absorbs a late read of the response here).
    assert!(
        at - answered >= ms(600),
        "closed {:?} after the last response: before the idle timeout",
        at - answered
    );
    assert_eq!(server.seen.handled.load(Ordering::SeqCst), requests);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_by_the_idle_timeout_not_the_header_timeout() {
    idle_close_after(1).await;
}

/// The watchdog's timer is lazy (set for the earliest deadline known, re-read when it fires): on a connection that
/// keeps serving requests, gaps longer than the header timeout but shorter than the idle timeout fire it again and
/// again, and each time it must re-arm, neither cutting the connection nor losing the idle deadline after the last.
#[tokio::test]
async fn a_keep_alive_connection_in_steady_use_stays_open_and_its_last_idle_period_is_timed() {
    idle_close_after(8).await;
}

#[tokio::test]
async fn the_next_request_head_on_a_keep_alive_connection_gets_the_header_timeout() {
    let server = start(limits(300, 30_000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(keep_alive_get(&mut stream).await.0, 200);
    // Half a head, then nothing: the idle timeout (30 s) no longer applies.
    stream.write_all(b"GET / HT").await.unwrap();
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an unfinished second head was not cut");
}

/// The one gap in the head clock, pinned to its bound: when the start of the next request arrives in the same read
/// as a complete one (pipelining), no read follows to start its header clock, and hyper keeps the bytes where
/// nothing outside it can see them. That half head is timed as an idle connection: the idle timeout asks for a
/// graceful close, which hyper cannot honour mid-head, and the header timeout after that closes it. Held for at most
/// idle + header timeout, never for as long as the client likes; any byte more starts the header clock at once.
#[tokio::test]
async fn a_pipelined_half_head_is_closed_within_the_idle_and_header_timeouts() {
    let server = start(limits(300, 1000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let sent = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET / HT")
        .await
        .unwrap();
    let (bytes, at) = closed_within(&mut stream, Duration::from_secs(6))
        .await
        .expect("a pipelined half head held its connection past idle + header timeout");
    let (status, body) = parse(&bytes);
    assert_eq!(
        (status, body.as_str()),
        (200, "hello"),
        "the complete request was answered"
    );
    assert_eq!(server.seen.handled.load(Ordering::SeqCst), 1);
    // Not before the header timeout: the clock starts no earlier than the bytes arrived.
    assert!(at - sent >= ms(250), "closed after {:?}", at - sent);
}

/// The same half head with one more byte a little later: that read starts the header clock, so the idle timeout
/// (30 s) does not apply.
#[tokio::test]
async fn a_pipelined_half_head_that_goes_on_gets_the_header_timeout() {
    let server = start(limits(300, 30_000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET / HT")
        .await
        .unwrap();
    let mut buf = [0_u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert_eq!(parse(&buf[..n]).0, 200);
    stream.write_all(b"T").await.unwrap();
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("a dribbled pipelined head was not cut by the header timeout");
}

#[tokio::test]
async fn a_request_in_flight_outlives_both_timeouts() {
    let server = start(limits(200, 300)).await;
    let started = Instant::now();
    assert_eq!(fetch(server.addr, "/slow").await, (200, "slow".to_owned()));
    assert!(started.elapsed() >= ms(1200));
}

/// Five clients of `/hold` on a server capped at two connections: two handlers start, the other three clients wait
/// in the backlog (not in a handler) until the first are released; never more than two at once. `counted`: requests
/// the server had counted as handled before.
async fn two_served_three_wait(server: &Server, counted: usize) {
    let requests: Vec<_> = (0..5)
        .map(|_| tokio::spawn(fetch(server.addr, "/hold")))
        .collect();
    eventually("the first two were not served", || {
        server.seen.running.load(Ordering::SeqCst) >= 2
    })
    .await;
    tokio::time::sleep(ms(300)).await;
    assert_eq!(server.seen.handled.load(Ordering::SeqCst), counted + 2);
    server.hold.add_permits(5);
    for request in requests {
        assert_eq!(request.await.unwrap(), (200, "released".to_owned()));
    }
    assert_eq!(server.seen.most_running.load(Ordering::SeqCst), 2);
}

/// Waits (polling, at most 5 s) until `check` holds; fails with `what` otherwise.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(ms(10)).await;
    }
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let server = start(limits(5_000, 5_000).with_max_connections(2).unwrap()).await;
    two_served_three_wait(&server, 0).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_by_length_and_cut_when_streamed() {
    let server = start(
        limits(5_000, 5_000)
            .with_max_request_body_bytes(16)
            .unwrap(),
    )
    .await;
    let at_limit = [b'a'; 16];
    assert_eq!(
        request(
            server.addr,
            "POST /upload HTTP/1.1\r\nContent-Length: 16\r\n",
            &at_limit
        )
        .await,
        (200, "got 16 bytes".to_owned())
    );
    let (status, body) = request(
        server.addr,
        "POST /upload HTTP/1.1\r\nContent-Length: 17\r\n",
        &[b'a'; 17],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 16 bytes"), "{body}");
    assert_eq!(
        server.seen.handled.load(Ordering::SeqCst),
        1,
        "the handler never saw the refused request"
    );

    // Chunked: no length to refuse up front, so the handler reads an error where the body passes the limit.
    let chunked = b"a\r\naaaaaaaaaa\r\na\r\naaaaaaaaaa\r\n0\r\n\r\n";
    let (status, body) = request(
        server.addr,
        "POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
        chunked,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.starts_with("body error"), "{body}");
    assert_eq!(server.seen.uploads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http2_prior_knowledge_gets_connect_info_and_an_idle_goaway() {
    let server = start(limits(300, 1000)).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(format!("http://{}/peer", server.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, local.to_string().as_bytes());
    let answered = Instant::now();
    // No stream open: after the idle timeout the server sends GOAWAY and the connection ends.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap()
        .unwrap();
    assert!(answered.elapsed() >= ms(600), "{:?}", answered.elapsed());
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let mut server = start(limits(5_000, 5_000)).await;
    let slow = tokio::spawn(fetch(server.addr, "/slow"));
    while server.seen.handled.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(ms(10)).await;
    }
    server.stop.take().unwrap().send(()).unwrap();
    assert_eq!(slow.await.unwrap(), (200, "slow".to_owned()));
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve did not return")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_drain_timeout() {
    let mut server = start(limits(5_000, 5_000).with_drain_timeout(ms(200)).unwrap()).await;
    let mut held = TcpStream::connect(server.addr).await.unwrap();
    held.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    while server.seen.running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(ms(10)).await;
    }
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve waited past the drain timeout")
        .unwrap()
        .unwrap();
    let (response, _) = closed_within(&mut held, Duration::from_secs(5))
        .await
        .expect("the held request's connection stayed open");
    assert!(response.is_empty(), "closed under the request, unanswered");
}

/// Asks for `path` (a 64 MiB response) on a server with a 500 ms header timeout and a 1 s idle timeout, reads
/// nothing for `wait`, then asserts the server had cut the connection before sending it all.
async fn never_read(path: &str, wait: Duration) -> Server {
    let server = start(limits(500, 1000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(wait).await;
    let (seen, _) = closed_within(&mut stream, ms(10_000))
        .await
        .expect("the stalled connection was never cut");
    assert!(
        seen.len() < 64 * 1024 * 1024,
        "the whole response was sent: the stalled connection was never cut"
    );
    server
}

/// Outside review: a client that never reads its response held its connection slot forever (a request in flight was
/// never cut). A response with data to send that makes no progress for the idle timeout is now closed.
#[tokio::test]
async fn a_client_that_never_reads_its_response_is_cut_after_the_idle_timeout() {
    // Longer than the idle timeout, plus a generous margin for a loaded machine.
    let server = never_read("/big", ms(4000)).await;
    assert!(fetch(server.addr, "/").await.0 == 200, "others are served");
}

/// The same hold after a slow handler: the watchdog's timer fired while the request was in flight (nothing was due),
/// so only the response starting to send can arm the stall deadline again.
#[tokio::test]
async fn a_client_that_never_reads_a_slow_handlers_response_is_cut_after_the_idle_timeout() {
    // The handler answers after 1.2 s; then longer than the idle timeout, with the same margin.
    never_read("/slow-big", ms(5000)).await;
}

/// The HTTP/2 form of the same hold: a client whose flow-control window stays shut (SETTINGS_INITIAL_WINDOW_SIZE
/// 0, no WINDOW_UPDATE) can never be sent the body.
#[tokio::test]
async fn an_http2_client_that_keeps_its_window_shut_is_cut_after_the_idle_timeout() {
    let server = start(limits(500, 1000)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/", server.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the head is sent; the body cannot be"
    );
    // The response body is never read, so no WINDOW_UPDATE is ever sent.
    let ended = tokio::time::timeout(ms(10_000), connection).await;
    assert!(
        ended.is_ok(),
        "the stalled HTTP/2 connection was never closed"
    );
}

/// A response body that waits for data (a slow upstream) is the server's, not the client's: never cut.
#[tokio::test]
async fn a_response_waiting_for_data_is_never_cut() {
    let server = start(limits(500, 1000)).await;
    let (status, body) = fetch(server.addr, "/drip").await;
    // Chunked, complete: every chunk and the terminating one.
    assert_eq!(
        (status, body.as_str()),
        (200, "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
    );
}

/// Outside review: a request body trickled in a byte at a time was never cut (a request in flight was never
/// timed). Only time spent waiting on the client counts, against the header-read timeout plus one second per
/// 500 bytes received: a trickle is cut, a slow but steady upload is not.
#[tokio::test]
async fn a_request_body_trickled_in_is_cut_and_a_steady_one_is_not() {
    let server = start(limits(500, 1000)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..100 {
            if stream.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(ms(100)).await;
        }
    };
    let started = Instant::now();
    let _ = tokio::time::timeout(ms(12_000), trickle).await;
    assert!(
        started.elapsed() < ms(9_000),
        "a body trickled at 10 bytes/s was still being read after {:?}",
        started.elapsed()
    );
    assert_eq!(server.seen.uploads.load(Ordering::SeqCst), 0);

    // 8,000 bytes at 4,000 bytes/s, in pauses longer than the header-read timeout between bursts: received whole.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        stream.write_all(&[b'y'; 2000]).await.unwrap();
        tokio::time::sleep(ms(500)).await;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    assert_eq!(parse(&response), (200, "got 8000 bytes".to_owned()));
}

#[tokio::test]
async fn on_threads_each_thread_serves_with_its_own_router_and_the_cap_counts_them_all() {
    let (server, routers) =
        start_on_threads(limits(5_000, 5_000).with_max_connections(2).unwrap(), 3).await;
    let (status, thread) = fetch(server.addr, "/thread").await;
    assert_eq!(status, 200);
    assert!(thread.starts_with("idgate-serve-"), "served on {thread:?}");
    // One router per thread, each made as its thread starts (one may start after the first request is served).
    eventually("not every thread made its router", || {
        routers.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert_eq!(routers.load(Ordering::SeqCst), 3);
    // Three threads accepting, two connections allowed in all (`/thread` is not counted as handled).
    two_served_three_wait(&server, 0).await;
}

#[tokio::test]
async fn on_threads_the_limits_hold_on_every_thread() {
    let (server, _) = start_on_threads(limits(300, 10_000), 2).await;
    silent_connections_closed(&server, 6).await;
}

#[tokio::test]
async fn on_threads_shutdown_drains_every_thread_then_returns() {
    let (mut server, _) = start_on_threads(limits(5_000, 5_000), 2).await;
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(fetch(server.addr, "/slow")))
        .collect();
    while server.seen.handled.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(ms(10)).await;
    }
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(ms(100)).await;
    assert!(
        !server.task.is_finished(),
        "returned while requests were in flight"
    );
    for slow in slow {
        assert_eq!(slow.await.unwrap(), (200, "slow".to_owned()));
    }
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve_on_threads did not return")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

/// A router that panics on one thread: `serve_on_threads` stops the others and says so, instead of serving a part of
/// the load or hanging.
#[tokio::test]
async fn on_threads_a_router_that_panics_is_an_error_not_a_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let made = Arc::new(AtomicUsize::new(0));
    let router = {
        let made = Arc::clone(&made);
        move || {
            if made.fetch_add(1, Ordering::SeqCst) == 1 {
                panic!("the second router cannot be made");
            }
            Router::new().route("/", get(|| async { "hello" }))
        }
    };
    let served = tokio::time::timeout(
        Duration::from_secs(10),
        idgate_serve::serve_on_threads(
            listener,
            std::num::NonZeroUsize::new(2).unwrap(),
            router,
            ServerLimits::default(),
            std::future::pending(),
        ),
    )
    .await
    .expect("serve_on_threads hung after a thread panicked");
    let error = served.expect_err("a panicked thread is an error");
    assert!(error.to_string().contains("panicked"), "{error}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

/// Connections opened at once are shared out evenly, whichever thread wins the race to accept them: each goes to the
/// thread serving the fewest.
#[tokio::test]
async fn on_threads_connections_opened_at_once_are_shared_out_evenly() {
    let (server, _) = start_on_threads(limits(5_000, 5_000), 2).await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut served_on = std::collections::BTreeMap::<String, usize>::new();
    for stream in &mut streams {
        stream
            .write_all(b"GET /thread HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0_u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let (status, thread) = parse(&buf[..n]);
        assert_eq!(status, 200);
        *served_on.entry(thread).or_default() += 1;
    }
    // Every connection is still open, so the split is exact.
    assert_eq!(
        served_on.into_values().collect::<Vec<_>>(),
        [4, 4],
        "eight open connections not split 4/4 between two threads"
    );
}

/// Dropping `serve_on_threads`' future (a `select!` that took another branch, an aborted task) stops its threads as a
/// shutdown does: they stop accepting, let the requests in flight finish, and close the listener.
#[tokio::test]
async fn on_threads_a_dropped_future_stops_the_threads() {
    let (server, _) = start_on_threads(limits(5_000, 5_000), 2).await;
    assert_eq!(fetch(server.addr, "/").await.0, 200);
    let slow = tokio::spawn(fetch(server.addr, "/slow"));
    while server.seen.handled.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(ms(10)).await;
    }
    server.task.abort();
    assert_eq!(slow.await.unwrap(), (200, "slow".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting after the future was dropped"
        );
        tokio::time::sleep(ms(20)).await;
    }
}
