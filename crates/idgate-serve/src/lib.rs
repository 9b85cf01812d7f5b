//! Serve an axum [`Router`] on a [`TcpListener`] with the limits a listener facing untrusted clients needs.
//!
//! `axum::serve` bounds nothing a client can hold: a connection that sends nothing, or a request head one byte at
//! a time, or an idle keep-alive connection stays open for as long as the client likes, and accepting goes on until
//! the process runs out of file descriptors (and then its legitimate clients, and its own outbound calls, fail).
//! [`serve`] is the same loop (HTTP/1.1 and cleartext HTTP/2, [`ConnectInfo`](axum::extract::ConnectInfo) in
//! every request) with these limits, set with [`ServerLimits`]:
//!
//! | limit | default | what it bounds |
//! |---|---|---|
//! | [header read timeout](ServerLimits::header_read_timeout) | 10 s | accept → first complete request head (a silent connection too); on an idle HTTP/1 connection, first byte → complete head of the next request; and a request body's wait on the client, which gets this plus one second per 500 bytes received (Apache `mod_reqtimeout`'s `MinRate=500`): a stalled or trickled body is cut, a slow but steady one is not |
//! | [idle timeout](ServerLimits::idle_timeout) | 60 s | a connection with no request in flight: HTTP/1 keep-alive between requests, HTTP/2 with no open stream; and a response that has data to send but makes no progress (the client stopped reading, or keeps its HTTP/2 window shut) |
//! | [max connections](ServerLimits::max_connections) | 1024 | connections served at once; the next client waits in the kernel's accept backlog, holding none of this process's descriptors. Lowered, with a warning, to fit under the open-file limit (`ulimit -n`) on Linux with 64 descriptors to spare, counting [descriptors per connection](ServerLimits::descriptors_per_connection) |
//! | [max request body](ServerLimits::max_request_body_bytes) | 32 MiB | a `Content-Length` over it is answered `413` before the router runs; a body of unknown length is cut where it passes it |
//! | [drain timeout](ServerLimits::drain_timeout) | 30 s | after the shutdown signal: how long requests in flight may take to finish |
//!
//! A request waiting on its handler or upstream is never cut by the timeouts: a slow handler or upstream takes as long
//! as it takes, and a response body waiting for data may pause for as long as it likes (it holds a connection slot
//! meanwhile). Only a response the client will not take is cut. Connections over a limit are closed without a response, as hyper's own
//! header timeout does. `accept` errors (out of descriptors, `EMFILE`) are logged and retried after a short,
//! growing pause; they never stop the server. Protocol upgrades (WebSocket, `CONNECT`) are not served.
//!
//! The head clock starts with the first read after a response, because the start of a head is all the watchdog
//! can see: hyper keeps what it read and has not parsed to itself. So the start of a next request that arrives in
//! the same read as a complete one (HTTP/1 pipelining) starts no clock, and if nothing more comes that half head is
//! timed as an idle connection: the idle timeout asks for a graceful close, which hyper cannot honour mid-head, and
//! the header timeout after it closes the connection. It is held for at most idle + header timeout (70 s by default),
//! the same order as an idle keep-alive connection any client may hold; one byte more starts the header clock.
//!
//! The limits cost one timer per connection, set for the earliest deadline and left alone while deadlines only move
//! later: a keep-alive connection serving requests back to back re-arms it a few times per header timeout, not on
//! every request.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use idgate_serve::ServerLimits;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/", get(|| async { "hello" }));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let limits = ServerLimits::default()
//!     .with_header_read_timeout(Duration::from_secs(5))?
//!     .with_max_connections(512)?;
//! // Send on `stop` (e.g. on SIGTERM) to stop accepting and let the requests in flight finish (at most
//! // `drain_timeout`); then `serve` returns.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! idgate_serve::serve(listener, app, limits, async {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! For a router that proxies, [`headers::remove_hop_by_hop`] is the hop-by-hop clean-up (RFC 9110 §7.6.1) both of
//! idgate's proxies apply to every request and response they forward, and [`headers::remove_where`] the one-pass removal
//! it and `idgate-proxy`'s other clean-up steps are written with.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod balance;
pub mod headers;
mod io;
mod limits;
mod service;
mod watchdog;

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use limits::{LimitError, MAX_TIMEOUT, ServerLimits};

use crate::balance::{Balancer, Handoff, Live, Share};
use crate::io::TrackedStream;
use crate::service::ConnectionService;
use crate::watchdog::{Action, Tracker};

/// The first pause after an `accept` error that is not about one connection (e.g. out of descriptors).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause between retries of a failing `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Descriptors the process needs besides its clients' (listener, runtime, outbound connections, files).
const DESCRIPTOR_RESERVE: u64 = 64;
/// Descriptors each thread of [`serve_on_threads`] holds besides its clients': its copy of the listener, its
/// runtime's epoll instance and waker, and its signal pipe's.
pub const DESCRIPTORS_PER_THREAD: usize = 4;

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish (at most [`ServerLimits::drain_timeout`]), and returns.
///
/// Every request carries [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo) in its extensions. See the
/// [crate docs](crate) for what each limit bounds.
///
/// # Errors
///
/// Only when the listener's local address cannot be read at startup: `accept` errors are logged and retried,
/// connection errors are the client's.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    let local_addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(connection_cap(local_addr, &limits, None)));
    accept_loop(
        listener,
        local_addr,
        router,
        Arc::new(limits),
        slots,
        None,
        shutdown,
    )
    .await;
    Ok(())
}

/// [`serve`] on `threads` threads of its own, each a single-threaded tokio runtime with a router of its own (made by
/// calling `router` on that thread), as nginx's workers share a listening socket. Every thread accepts from
/// `listener`; the thread that accepts a connection hands it to the thread serving the fewest (itself on a tie),
/// which serves it to its end: a connection moves at most once, when it is accepted, and what its requests start on
/// their own (an upstream connection from a per-thread pool, a spawned task, a timer) runs on that thread. This saves
/// what a work-stealing runtime spends handing tasks and wake-ups between threads: 13 % of the `idgate proxy`'s CPU
/// per request at 32 connections, 27 % at one (`benches`, `probe-proxy`). Prefer [`serve`] on your own runtime
/// unless the server's requests are this cheap.
///
/// The limits hold for the whole listener: [`ServerLimits::max_connections`] counts the connections of all the
/// threads (fitted under the open-file limit with [`DESCRIPTORS_PER_THREAD`] more to spare per thread:
/// [`ServerLimits::fitted_max_connections_on_threads`]), and after `shutdown` every thread stops accepting and
/// drains its requests in flight (at most [`ServerLimits::drain_timeout`]) before this returns. A thread that has
/// drained keeps its runtime running until all have: what one runtime registered may be in use on another thread
/// (a connection in a shared client's pool). `shutdown` is polled on the caller's runtime, which may be any.
/// Dropping the returned future before it completes stops the threads as a shutdown does, and they drain in the
/// background. The threads are named `idgate-serve-N`; a tracing subscriber set with `set_default` on the caller's
/// thread does not reach them (a global one does).
///
/// `router` is called once per thread, so a router may keep per-thread state (a connection pool) while sharing the
/// rest through `Arc`s.
///
/// ```no_run
/// use std::num::NonZeroUsize;
/// use axum::{Router, routing::get};
/// use idgate_serve::ServerLimits;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// let threads = std::thread::available_parallelism()?;
/// let router = || Router::new().route("/", get(|| async { "hello" }));
/// // Send on `stop` (e.g. on SIGTERM) to stop every thread's accepting and drain them.
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// idgate_serve::serve_on_threads(listener, threads, router, ServerLimits::default(), async {
///     let _ = stopped.await;
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// When the listener's local address cannot be read, a thread or its runtime cannot be started, or a thread's
/// `router` panicked: the threads already started are stopped (and drained) first.
pub async fn serve_on_threads<F, R>(
    listener: TcpListener,
    threads: NonZeroUsize,
    router: R,
    limits: ServerLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()>,
    R: Fn() -> Router + Send + Sync + 'static,
{
    let local_addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(connection_cap(
        local_addr,
        &limits,
        Some(threads),
    )));
    let limits = Arc::new(limits);
    let router = Arc::new(router);
    let listener = listener.into_std()?;
    // Dropped with this future, the sender stops the threads too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let ending = Arc::new(Ending {
        running: AtomicUsize::new(threads.get()),
        release: watch::Sender::new(false),
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<std::io::Result<()>>();
    let mut started = 0;
    let mut failure = None;
    for (index, share) in Balancer::shares(threads.get()).into_iter().enumerate() {
        let spawned = listener.try_clone().and_then(|listener| {
            let thread = ServeThread {
                share,
                local_addr,
                limits: Arc::clone(&limits),
                slots: Arc::clone(&slots),
                stop: stop_rx.clone(),
                release: ending.release.subscribe(),
            };
            let router = Arc::clone(&router);
            let (done, ending) = (done_tx.clone(), Arc::clone(&ending));
            std::thread::Builder::new()
                .name(format!("idgate-serve-{index}"))
                .spawn(move || {
                    // Made on the thread: a thread that could not be started sends no report.
                    let mut report = Report {
                        done,
                        ending,
                        sent: false,
                    };
                    thread.run(listener, router.as_ref(), &mut report);
                })
        });
        match spawned {
            Ok(_detached) => started += 1,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    drop((listener, done_tx));
    // The threads that were never started have nothing to drain.
    for _ in started..threads.get() {
        ending.reported();
    }
    if failure.is_none() {
        // Until the shutdown, or until a thread reports early: it could not serve (its runtime failed to start, its
        // router panicked), and the others are stopped rather than left serving a part of the load.
        tokio::select! {
            () = shutdown => {}
            early = done_rx.recv() => {
                failure = Some(match early {
                    Some(Err(error)) => error,
                    Some(Ok(())) | None => std::io::Error::other("a serving thread stopped before the shutdown"),
                });
            }
        }
    }
    let _ = stop_tx.send(true);
    // Each thread reports once it has drained, and drops its sender once every thread has drained and it has
    // dropped its runtime.
    while let Some(result) = done_rx.recv().await {
        if let Err(error) = result {
            failure.get_or_insert(error);
        }
    }
    failure.map_or(Ok(()), Err)
}

fn thread_panicked() -> std::io::Error {
    std::io::Error::other("a serving thread panicked (see the panic message above)")
}

/// How the threads of one [`serve_on_threads`] end together: each keeps its runtime running after it has drained,
/// until every one has, because what one runtime registered (a socket in a client's shared connection pool, a task
/// a cache spawned) may be in use by another thread's requests. Counted down by the threads themselves, so it works
/// even when nobody waits for [`serve_on_threads`] any more (its future was dropped).
struct Ending {
    /// Threads that have not reported yet.
    running: AtomicUsize,
    /// Set by the last report: every thread may drop its runtime now.
    release: watch::Sender<bool>,
}

impl Ending {
    fn reported(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.release.send_replace(true);
        }
    }
}

/// A thread's report to [`serve_on_threads`]: how its serving ended, sent once; a thread that panics before it
/// sent reports that.
struct Report {
    done: mpsc::UnboundedSender<std::io::Result<()>>,
    ending: Arc<Ending>,
    sent: bool,
}

impl Report {
    fn send(&mut self, result: std::io::Result<()>) {
        if std::mem::replace(&mut self.sent, true) {
            return;
        }
        let _ = self.done.send(result);
        self.ending.reported();
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.send(Err(thread_panicked()));
    }
}

/// What one thread of [`serve_on_threads`] shares with the others.
struct ServeThread {
    /// Its part in sharing out the connections.
    share: Share,
    local_addr: SocketAddr,
    limits: Arc<ServerLimits>,
    slots: Arc<Semaphore>,
    /// Stop accepting and drain.
    stop: watch::Receiver<bool>,
    /// Every thread has drained.
    release: watch::Receiver<bool>,
}

impl ServeThread {
    /// Serves its share of `listener` with a router made by `router`, on a runtime of its own, until stopped; reports
    /// how that ended, then keeps its runtime running until every thread has drained: what it registered (a
    /// socket in a client's connection pool, a spawned connection task) may be in use by another thread's
    /// requests.
    fn run<R>(self, listener: std::net::TcpListener, router: &R, report: &mut Report)
    where
        R: Fn() -> Router,
    {
        let Self {
            share,
            local_addr,
            limits,
            slots,
            mut stop,
            mut release,
        } = self;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => return report.send(Err(error)),
        };
        runtime.block_on(async {
            let served = match TcpListener::from_std(listener) {
                Ok(listener) => {
                    let stopped = async {
                        // A dropped sender stops the thread too.
                        let _ = stop.wait_for(|stop| *stop).await;
                    };
                    let router = router();
                    accept_loop(
                        listener,
                        local_addr,
                        router,
                        limits,
                        slots,
                        Some(share),
                        stopped,
                    )
                    .await;
                    Ok(())
                }
                Err(error) => Err(error),
            };
            report.send(served);
            let _ = release.wait_for(|release| *release).await;
        });
    }
}

/// Accepts connections while `slots` has room and serves each with `router` until `shutdown` completes; then stops
/// accepting and lets the requests in flight finish (at most [`ServerLimits::drain_timeout`]). On a thread of
/// [`serve_on_threads`] (`share`), a connection accepted here may be handed to another thread, and ones the other
/// threads accepted may be handed here.
async fn accept_loop<F>(
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    limits: Arc<ServerLimits>,
    slots: Arc<Semaphore>,
    mut share: Option<Share>,
    shutdown: F,
) where
    F: Future<Output = ()>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog times request heads: hyper 1.12's own timer would also close idle keep-alive connections after
    // the header timeout, overriding a longer idle timeout.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .max_concurrent_streams(limits.max_concurrent_streams());
    let serving = Serving {
        router,
        limits: Arc::clone(&limits),
        builder: Arc::new(builder),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    // A slot first, then the accept: a client over the cap waits in the kernel's backlog.
    let mut slot = None;
    tokio::pin!(shutdown);

    loop {
        reap(&mut connections);
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(handoff) = handed_to(share.as_mut()) => {
                match TcpStream::from_std(handoff.stream) {
                    Ok(stream) => {
                        let held = Held { _slot: handoff.slot, _live: Some(handoff.live) };
                        connections.spawn(serving.connection(stream, handoff.peer, stop_rx.clone(), held));
                    }
                    Err(error) => tracing::debug!(
                        %local_addr,
                        error = &error as &dyn std::error::Error,
                        "a connection handed over from another thread could not be registered"
                    ),
                }
                continue;
            }
            acquired = Arc::clone(&slots).acquire_owned(), if slot.is_none() => match acquired {
                Ok(acquired) => {
                    slot = Some(acquired);
                    continue;
                }
                Err(_closed) => break, // never closed; no slot can be had either way
            },
            accepted = listener.accept(), if slot.is_some() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            // One client's connection failed before it was accepted; nothing is wrong with the listener.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Recorded as an error, not a string: the subscriber prints its sources too (idgate's error rule).
                tracing::warn!(
                    %local_addr,
                    error = &error as &dyn std::error::Error,
                    retry_in_ms = backoff.as_millis(),
                    "accept failed; retrying (out of file descriptors? lower max_connections or raise `ulimit -n`)"
                );
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Some(slot) = slot.take() else { continue };
        let live = match &share {
            None => None,
            Some(share) => {
                let live = share.assign();
                if live.thread != share.thread {
                    hand_over(share, stream, peer, slot, live);
                    continue;
                }
                Some(live)
            }
        };
        let held = Held {
            _slot: slot,
            _live: live,
        };
        connections.spawn(serving.connection(stream, peer, stop_rx.clone(), held));
    }

    drop(listener);
    if let Some(share) = &mut share {
        // Connections handed here from now on are closed by their sender; those already here are closed now, as the
        // listener's backlog is: this thread serves no new connection.
        share.inbox.close();
        while share.inbox.try_recv().is_ok() {}
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout(), async {
        while let Some(result) = connections.join_next().await {
            log_join(result);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            %local_addr,
            remaining = connections.len(),
            "requests still in flight after the drain timeout; closing their connections"
        );
        connections.shutdown().await;
    }
}

/// Hands a connection this thread accepted to the thread `live` counts it on: deregistered here, registered by the
/// thread that serves it. Closed instead when that thread has stopped accepting (the server is shutting down).
fn hand_over(
    share: &Share,
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    live: Live,
) {
    match stream.into_std() {
        Ok(stream) => {
            let _closed_if_unsent = share.hand_off(Handoff {
                stream,
                peer,
                slot,
                live,
            });
        }
        Err(error) => tracing::debug!(
            %peer,
            error = &error as &dyn std::error::Error,
            "an accepted connection could not be handed to another thread"
        ),
    }
}

/// The next connection another thread handed to this one; never, outside [`serve_on_threads`].
async fn handed_to(share: Option<&mut Share>) -> Option<Handoff> {
    match share {
        Some(share) => share.inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// What a connection holds while it lives: its slot under the connection cap, and on a thread of
/// [`serve_on_threads`] its count there.
struct Held {
    _slot: OwnedSemaphorePermit,
    _live: Option<Live>,
}

/// What every connection of an accept loop is served with.
struct Serving {
    router: Router,
    limits: Arc<ServerLimits>,
    builder: Arc<auto::Builder<TokioExecutor>>,
}

impl Serving {
    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
        held: Held,
    ) -> impl Future<Output = ()> + Send + 'static {
        connection(
            stream,
            peer,
            self.router.clone(),
            Arc::clone(&self.limits),
            Arc::clone(&self.builder),
            stop,
            held,
        )
    }
}

/// Serves one connection until it closes, closing it when the watchdog's deadline passes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<ServerLimits>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stop: watch::Receiver<bool>,
    _held: Held,
) {
    let tracker = Arc::new(Tracker::new(Instant::now(), Arc::clone(&limits)));
    let service = ConnectionService {
        router,
        peer,
        max_body: limits.max_request_body_bytes(),
        body_grace: limits.header_read_timeout(),
        tracker: Arc::clone(&tracker),
    };
    let io = TokioIo::new(TrackedStream::new(stream, Arc::clone(&tracker)));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // One timer for the connection's life, set again only when the deadline it is armed for changes (see the
    // watchdog's docs: later deadlines are found when it fires).
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut timer_at: Option<Instant> = None;
    let mut shutdown_asked = false;
    loop {
        let due = tracker.arm().map(|(at, _)| at);
        if due != timer_at {
            if let Some(at) = due {
                timer.as_mut().reset(at);
            }
            timer_at = due;
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(
                        %peer,
                        error = &*error as &dyn std::error::Error,
                        "connection ended with an error"
                    );
                }
                return;
            }
            () = tracker.changed() => {}
            () = timer.as_mut(), if timer_at.is_some() => {
                timer_at = None;
                // The deadline may have moved later since the timer was set: act only on one that has passed.
                let Some((at, action)) = tracker.arm() else {
                    continue;
                };
                if at > Instant::now() {
                    continue;
                }
                match action {
                    Action::Close => {
                        tracing::debug!(%peer, "closing a connection that did not finish a request head in time");
                        return;
                    }
                    Action::Shutdown => {
                        tracing::debug!(%peer, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        shutdown_asked = true;
                        tracker.shutdown_asked(Instant::now());
                    }
                }
            }
            _ = stop.changed(), if !shutdown_asked => {
                conn.as_mut().graceful_shutdown();
                shutdown_asked = true;
                tracker.shutdown_asked(Instant::now());
            }
        }
    }
}

fn reap(connections: &mut JoinSet<()>) {
    while let Some(result) = connections.try_join_next() {
        log_join(result);
    }
}

fn log_join(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result
        && error.is_panic()
    {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "a connection task panicked"
        );
    }
}

/// Errors of one incoming connection (reset or aborted before `accept` returned it), not of the listener.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// `max_connections`, lowered to leave [`DESCRIPTOR_RESERVE`] descriptors under the open-file limit when it is
/// known (Linux): a cap the process cannot reach would not stop clients from exhausting its descriptors.
fn connection_cap(
    local_addr: SocketAddr,
    limits: &ServerLimits,
    threads: Option<NonZeroUsize>,
) -> usize {
    let max_connections = limits.max_connections();
    let cap = limits.fitted_with_threads(threads.map_or(0, NonZeroUsize::get));
    if cap < max_connections {
        tracing::warn!(
            %local_addr,
            max_connections,
            lowered_to = cap,
            "max_connections does not fit under the open-file limit (`ulimit -n`) with {DESCRIPTOR_RESERVE} \
             descriptors to spare; serving at most {cap} connections at once. Raise `ulimit -n` to serve more"
        );
    }
    cap
}

pub(crate) fn fit_under_descriptor_limit(
    max_connections: usize,
    soft_limit: Option<u64>,
    per_connection: usize,
) -> usize {
    let Some(soft_limit) = soft_limit else {
        return max_connections;
    };
    let room = if soft_limit > 2 * DESCRIPTOR_RESERVE {
        soft_limit - DESCRIPTOR_RESERVE
    } else {
        (soft_limit / 2).max(1)
    };
    let per_connection = u64::try_from(per_connection.max(1)).unwrap_or(u64::MAX);
    let room = (room / per_connection).max(1);
    max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
pub(crate) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127431               127431               processes \n\
                      Max open files            256                  524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(256));
        assert_eq!(
            parse_open_file_limit("Max open files  unlimited  unlimited  files\n"),
            None
        );
        assert_eq!(parse_open_file_limit(""), None);
    }

    #[test]
    fn the_cap_leaves_descriptors_to_spare() {
        assert_eq!(fit_under_descriptor_limit(1024, None, 1), 1024);
        assert_eq!(fit_under_descriptor_limit(1024, Some(1_048_576), 1), 1024);
        assert_eq!(fit_under_descriptor_limit(1024, Some(1024), 1), 960);
        assert_eq!(fit_under_descriptor_limit(100, Some(256), 1), 100);
        assert_eq!(fit_under_descriptor_limit(1024, Some(256), 1), 192);
        assert_eq!(fit_under_descriptor_limit(1024, Some(64), 1), 32);
        assert_eq!(fit_under_descriptor_limit(1024, Some(1), 1), 1);
        // A reverse proxy: a client's descriptor and an upstream one per connection.
        assert_eq!(fit_under_descriptor_limit(1024, Some(1024), 2), 480);
        assert_eq!(fit_under_descriptor_limit(100, Some(256), 2), 96);
        assert_eq!(fit_under_descriptor_limit(1024, Some(1_048_576), 2), 1024);
        assert_eq!(fit_under_descriptor_limit(1024, Some(1), 2), 1);
    }
}
