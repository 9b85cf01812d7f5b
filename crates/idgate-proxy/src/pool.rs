//! Upstream connections, each driven by the task of the request that uses it.
//!
//! hyper-util's pooled client runs every upstream connection in a task of its own: a request hands its head to
//! that task, which writes it, reads the answer and hands the response back, two wake-ups (across threads on a
//! multi-thread runtime) per request for no HTTP work. `perf` put about a quarter of the proxy's cycles there. Here
//! a connection has no task: the request's task polls it while it waits for the response head, and the response
//! body polls it while the client reads, so one task does both sides, as an nginx worker does. When the body is
//! read to the end, the connection goes back to the pool for the next request.
//!
//! Served on several threads ([`idgate_serve::serve_on_threads`]), each thread has a [`Pool`] of its own, since a
//! connection is best polled by the thread whose runtime registered its socket. The pools share one count of the
//! upstream connections open ([`Pools`]): a thread that must dial while the count is at the budget first closes an
//! idle connection of another thread's, so the budget bounds the process's upstream descriptors however the load
//! moves between threads (but for a connection being handed back at that very moment: then the new one goes over
//! until one of them closes).
//!
//! An idle connection is polled by nobody, so an upstream that closes it is noticed when it is next taken (polled
//! once: a closed one is dropped and the next one tried) and by the reaper, which drops connections idle for
//! longer than [`UPSTREAM_IDLE_TIMEOUT`] or closed by the upstream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;

/// How long an idle upstream connection is kept for reuse.
pub(crate) const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the reaper looks for idle connections to close.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// Why a request did not get a response head from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection could be opened.
    #[error("connecting to the upstream {authority}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed: the connection closed or the answer was not HTTP/1.
    #[error("exchanging with the upstream")]
    Http(#[source] hyper::Error),
}

/// One upstream connection: where requests go in, and the connection itself, polled by whoever waits on it.
struct Connection {
    sender: http1::SendRequest<Body>,
    /// `None` once it has finished (closed by either side, or failed): the sender then answers every request with
    /// an error.
    io: Option<http1::Connection<TokioIo<TcpStream>, Body>>,
    /// Counts it in [`Pools::open`] while it lives.
    _open: Open,
}

/// One connection counted in [`Pools::open`], until dropped.
struct Open(Arc<Pools>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// Polls the connection, making progress on whatever it has to read or write; `false` once it has finished.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(io) = &mut self.io
            && io.poll_without_shutdown(cx).is_ready()
        {
            // Done (the upstream closed it, or it failed): dropping it closes the socket and answers a request
            // still waiting on it with an error.
            self.io = None;
        }
        self.io.is_some()
    }

    /// Waits for `sending`, a request handed to this connection's sender, driving the connection meanwhile: no task
    /// of its own writes the request and reads the answer.
    async fn exchange<T>(&mut self, sending: impl Future<Output = T>) -> T {
        let mut sending = std::pin::pin!(sending);
        std::future::poll_fn(|cx| {
            self.drive(cx);
            sending.as_mut().poll(cx)
        })
        .await
    }

    /// Whether the connection can take a request now (it is polled first, to notice an upstream's close).
    fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }
}

struct Idle {
    connection: Box<Connection>,
    since: Instant,
}

/// What the pools of every serving thread share: the upstream's address, and the count of connections open to it
/// in all of them, held to `max_open`.
pub(crate) struct Pools {
    host: String,
    port: u16,
    /// The upstream's authority as the `Host` header: the one every forwarded request carries.
    host_header: HeaderValue,
    max_open: usize,
    /// Upstream connections open now, in use or idle, in every pool.
    open: AtomicUsize,
    /// Every thread's pool, to take an idle connection from when a new one would go over `max_open`.
    pools: Mutex<Vec<Weak<Pool>>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("max_open", &self.max_open)
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Pools {
    /// The pools for the upstream at `host` (an IPv6 address without brackets) and `port`, with at most `max_open`
    /// connections open in all of them; `authority` is the `Host` header requests carry.
    pub(crate) fn new(
        host: String,
        port: u16,
        authority: &http::uri::Authority,
        max_open: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            host,
            port,
            host_header: HeaderValue::from_str(authority.as_str())
                .expect("an authority is a valid header value"),
            max_open: max_open.max(1),
            open: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// A pool of its own for one serving thread's requests.
    pub(crate) fn pool(self: &Arc<Self>) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            shared: Arc::clone(self),
            idle: Mutex::new(VecDeque::new()),
            reaper: AtomicBool::new(false),
        });
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.retain(|pool| pool.strong_count() > 0);
        pools.push(Arc::downgrade(&pool));
        pool
    }

    /// Counts a connection about to be dialled. At `max_open`, closes the oldest idle connection of a pool that has
    /// one first. With the budget's share held and no connection yet, fewer than `max_open` are in use, so at the cap
    /// one is idle somewhere, unless it is being handed back right now (its request's share released, the
    /// connection not yet in its pool): after a few tries the new one is counted over the cap rather than refused.
    fn reserve(self: &Arc<Self>) -> Open {
        for _ in 0..3 {
            let open = self.open.load(Ordering::Relaxed);
            if open < self.max_open {
                if self
                    .open
                    .compare_exchange(open, open + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return Open(Arc::clone(self));
                }
                continue;
            }
            self.close_an_idle_one();
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(self))
    }

    /// Closes the oldest idle connection of the first pool that has one.
    fn close_an_idle_one(&self) {
        let pools: Vec<Arc<Pool>> = self
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for pool in pools {
            // Dropped outside the lock: closing a socket is a system call.
            let oldest = pool.lock().pop_front();
            if oldest.is_some() {
                return;
            }
        }
    }
}

/// One serving thread's upstream connections: idle ones kept for reuse, newest last (taken first, so the oldest age
/// out).
pub(crate) struct Pool {
    shared: Arc<Pools>,
    idle: Mutex<VecDeque<Idle>>,
    reaper: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Sends `request` (origin-form target) on an idle connection, or a new one, and drives that connection in this
    /// task until the response head arrives. The body it returns drives the connection on and gives it back to the
    /// pool once read to the end.
    ///
    /// A request an idle connection did not take (the upstream closed it just then) is sent again on a new
    /// connection: it was never written, so this is safe for any method.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<Upstreamed>, UpstreamError> {
        request
            .headers_mut()
            .insert(header::HOST, self.shared.host_header.clone());
        // The cold paths (dialling, sending again) are boxed: inline, their futures would make this one, which every
        // request builds and moves, several KiB (the connection is boxed for the same reason).
        let (mut connection, reused) =
            match std::future::poll_fn(|cx| Poll::Ready(self.take(cx))).await {
                Some(connection) => (connection, true),
                None => (Box::pin(self.dial()).await?, false),
            };
        let sending = connection.sender.try_send_request(request);
        let (response, connection) = match connection.exchange(sending).await {
            Ok(response) => (response, connection),
            Err(mut unsent) if reused => match unsent.take_message() {
                Some(request) => Box::pin(self.send_on_a_new_connection(request)).await?,
                None => return Err(UpstreamError::Http(unsent.into_error())),
            },
            Err(failed) => return Err(UpstreamError::Http(failed.into_error())),
        };
        // A response without a body (`204`, `304`, `Content-Length: 0`) is complete with its head: the server will not
        // poll a body that says it has ended, so the connection goes back now.
        let connection = if response.body().is_end_stream() {
            self.give_back(connection);
            None
        } else {
            Some(connection)
        };
        Ok(response.map(|body| Upstreamed {
            body,
            connection,
            pool: Arc::downgrade(self),
        }))
    }

    /// Sends `request` again on a new connection: an idle one did not take it (the upstream closed it just then).
    async fn send_on_a_new_connection(
        &self,
        request: Request<Body>,
    ) -> Result<(Response<Incoming>, Box<Connection>), UpstreamError> {
        tracing::debug!(target: "idgate::proxy", "an idle upstream connection closed; sending on a new one");
        let mut connection = self.dial().await?;
        let sending = connection.sender.send_request(request);
        let response = connection
            .exchange(sending)
            .await
            .map_err(UpstreamError::Http)?;
        Ok((response, connection))
    }

    /// The newest idle connection that can take a request now; closed and expired ones met on the way are dropped.
    fn take(&self, cx: &mut Context<'_>) -> Option<Box<Connection>> {
        loop {
            let idle = self.lock().pop_back()?;
            if idle.since.elapsed() >= UPSTREAM_IDLE_TIMEOUT {
                // The newest has expired, so have all the others.
                self.lock().clear();
                return None;
            }
            let mut connection = idle.connection;
            if connection.ready(cx) {
                return Some(connection);
            }
        }
    }

    async fn dial(&self) -> Result<Box<Connection>, UpstreamError> {
        let shared = &self.shared;
        let connect_error = |source| UpstreamError::Connect {
            authority: shared.host_header.to_str().unwrap_or_default().to_owned(),
            source,
        };
        // Counted from before the connect: a connect under way holds a descriptor too.
        let open = shared.reserve();
        let stream = TcpStream::connect((shared.host.as_str(), shared.port))
            .await
            .map_err(connect_error)?;
        // Heads and small bodies go out as soon as they are written, not after the upstream's delayed ACK.
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, io) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        Ok(Box::new(Connection {
            sender,
            io: Some(io),
            _open: open,
        }))
    }

    /// Keeps `connection` for the next request, if it can take one and the pool has room.
    fn give_back(self: &Arc<Self>, mut connection: Box<Connection>) {
        // Polled without a waker: whoever takes it next polls it with theirs.
        if !connection.ready(&mut Context::from_waker(Waker::noop())) {
            return;
        }
        {
            let mut idle = self.lock();
            if idle.len() >= self.shared.max_open {
                return;
            }
            idle.push_back(Idle {
                connection,
                since: Instant::now(),
            });
        }
        if !self.reaper.swap(true, Ordering::Relaxed)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(reap(Arc::downgrade(self)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // Nothing is left half-done under this lock: a panic elsewhere leaves a usable list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes idle connections that expired or that the upstream closed, until the pool is gone.
async fn reap(pool: Weak<Pool>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        // Dropped outside the lock: closing sockets is a system call each.
        let closed: Vec<Idle> = {
            let mut idle = pool.lock();
            let (keep, close): (Vec<Idle>, Vec<Idle>) =
                std::mem::take(&mut *idle).into_iter().partition(|idle| {
                    idle.since.elapsed() < UPSTREAM_IDLE_TIMEOUT && idle.connection.io.is_some()
                });
            *idle = keep.into();
            // Polled without a waker: this only reads what the upstream already sent (its close).
            let mut cx = Context::from_waker(Waker::noop());
            for idle in idle.iter_mut() {
                idle.connection.drive(&mut cx);
            }
            idle.retain(|idle| idle.connection.io.is_some());
            close
        };
        drop(closed);
    }
}

pin_project! {
    /// An upstream response body. Polling it drives its connection, which goes back to the pool once the body has
    /// been read to the end (dropped early, the connection is closed: its response is only partly read).
    pub(crate) struct Upstreamed {
        #[pin]
        body: Incoming,
        connection: Option<Box<Connection>>,
        pool: Weak<Pool>,
    }
}

impl http_body::Body for Upstreamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        if let Some(connection) = this.connection.as_mut() {
            connection.drive(cx);
        }
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        match &frame {
            // The response has been read whole. The server polls no further than a frame after which the body says
            // it has ended (its `Content-Length` reached), so that is the moment, not only the end of the stream.
            Some(Ok(_)) if !this.body.is_end_stream() => {}
            None | Some(Ok(_)) => {
                if let (Some(connection), Some(pool)) =
                    (this.connection.take(), this.pool.upgrade())
                {
                    pool.give_back(connection);
                }
            }
            Some(Err(_)) => *this.connection = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A keep-alive upstream that answers every request head with `ok`; counts the connections it has open.
    async fn upstream() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&open);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let open = Arc::clone(&counted);
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0_u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await
                        && n > 0
                    {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (port, open)
    }

    async fn get(pool: &Arc<Pool>) {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = pool.send(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two threads' pools under a budget of one connection: the second thread's request closes the first thread's
    /// idle connection before it dials, so the process never holds more upstream connections than the budget.
    #[tokio::test]
    async fn the_pools_of_every_thread_hold_at_most_the_budget_together() {
        let (port, upstream_open) = upstream().await;
        let authority: http::uri::Authority = format!("127.0.0.1:{port}").parse().unwrap();
        let pools = Pools::new("127.0.0.1".to_owned(), port, &authority, 1);
        let (first, second) = (pools.pool(), pools.pool());

        get(&first).await;
        get(&first).await;
        assert_eq!(
            pools.open.load(Ordering::SeqCst),
            1,
            "reused, not dialled again"
        );
        assert_eq!(first.lock().len(), 1, "kept idle for the next request");

        get(&second).await;
        assert_eq!(pools.open.load(Ordering::SeqCst), 1);
        assert!(
            first.lock().is_empty(),
            "the other thread's idle connection was closed"
        );
        assert_eq!(second.lock().len(), 1);
        eventually("the upstream saw the first connection close", || {
            upstream_open.load(Ordering::SeqCst) == 1
        })
        .await;

        // Under the budget nothing is taken from another pool.
        let roomy = Pools::new("127.0.0.1".to_owned(), port, &authority, 2);
        let (first, second) = (roomy.pool(), roomy.pool());
        get(&first).await;
        get(&second).await;
        assert_eq!(roomy.open.load(Ordering::SeqCst), 2);
        assert_eq!((first.lock().len(), second.lock().len()), (1, 1));

        // A connection's end uncounts it.
        drop((first, second));
        assert_eq!(roomy.open.load(Ordering::SeqCst), 0);
    }
}
