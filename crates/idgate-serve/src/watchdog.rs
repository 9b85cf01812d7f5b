//! The per-connection watchdog: what a connection is doing, and when it must be closed.
//!
//! hyper alone cannot bound all three ways a client holds a connection without using it: hyper-util's protocol
//! sniffing has no timeout (a connection that sends nothing waits forever), and hyper 1.12's HTTP/1
//! `header_read_timeout` also runs while a keep-alive connection waits for its next request, so it cannot coexist
//! with a longer idle timeout. The connection's reads and its requests report here instead, and
//! [`next_deadline`] turns that into the one deadline that applies.
//!
//! The watchdog's timer is lazy: it stays set for the earliest deadline known when it was set ([`State::armed`]).
//! A change that moves the deadline later (every request on a busy keep-alive connection does: a new head, a new
//! idle period) does nothing; the timer fires at the old time, the watchdog finds the deadline has moved, and sets
//! it again. Only a change that brings the deadline before the armed one wakes the watchdog. Waking it on every
//! change (four times a request) and re-registering its timer each time cost the `idgate proxy` about 3.5 µs of
//! CPU per request, ~14 % (`benches`' `probe-proxy`, with and without the watchdog, same build).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ServerLimits;

/// What to do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Close the connection now: nothing is in flight and the client is not finishing a request head.
    Close,
    /// Ask the protocol to close politely (HTTP/1 closes an idle connection at once; HTTP/2 sends GOAWAY).
    Shutdown,
}

/// A connection's state, as the watchdog sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct State {
    /// Requests whose response has not been sent completely yet.
    pub(crate) in_flight: usize,
    /// Whether any request has started on this connection.
    pub(crate) served: bool,
    /// The accept, or the moment `in_flight` last fell to zero.
    pub(crate) since: Instant,
    /// On an idle HTTP/1 connection, when the first byte of the next request arrived.
    pub(crate) head_started: Option<Instant>,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    pub(crate) http2: bool,
    /// Responses whose body has data for hyper to send (a frame produced, or not polled yet): hyper should be
    /// taking frames from them. A body waiting for data (a slow upstream) is not counted.
    pub(crate) sending: usize,
    /// When hyper last took a frame from a sending response, or one started sending.
    pub(crate) send_progress: Instant,
    /// When a graceful shutdown was asked for.
    pub(crate) shutdown_at: Option<Instant>,
    /// The deadline the watchdog's timer is set for (`None`: no timer, it waits to be told of a change). Never
    /// later than the deadline that applies: a change that would make it so wakes the watchdog.
    pub(crate) armed: Option<Instant>,
}

impl State {
    pub(crate) fn accepted(at: Instant) -> Self {
        Self {
            in_flight: 0,
            served: false,
            since: at,
            head_started: None,
            http2: false,
            sending: 0,
            send_progress: at,
            shutdown_at: None,
            armed: None,
        }
    }

    /// Whether the deadline that applies now comes before the one the watchdog's timer is set for.
    fn due_before_armed(&self, limits: &ServerLimits) -> bool {
        match (next_deadline(self, limits), self.armed) {
            (Some((at, _)), Some(armed)) => at < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The deadline that applies to a connection in `state`, and what to do then; `None` while a request is in flight
/// (a slow handler or upstream is never cut here). Once a graceful shutdown was asked for ([`State::shutdown_at`]),
/// a connection with nothing in flight gets one more `header_read_timeout` to close by itself.
pub(crate) fn next_deadline(state: &State, limits: &ServerLimits) -> Option<(Instant, Action)> {
    if state.in_flight > 0 {
        // A response that has data to send but makes no progress for the idle timeout is stalled by the client:
        // it stopped reading, or (HTTP/2) keeps its flow-control window shut. Without this, a client that never
        // reads would hold its connection slot forever. A response waiting for data is never cut.
        return (state.sending > 0)
            .then(|| (state.send_progress + limits.idle_timeout(), Action::Close));
    }
    let header = limits.header_read_timeout();
    let (at, action) = if !state.served {
        // The first request head (or, for a silent client, anything at all) is due within the header timeout.
        (state.since + header, Action::Close)
    } else if let Some(started) = state.head_started {
        (started + header, Action::Close)
    } else {
        (state.since + limits.idle_timeout(), Action::Shutdown)
    };
    let Some(asked) = state.shutdown_at else {
        return Some((at, action));
    };
    // The protocol is closing the connection; give it one header timeout to finish, but keep an earlier deadline
    // for a request head (the idle deadline is what asked for the shutdown, so it no longer counts).
    let grace = asked.max(state.since) + header;
    match action {
        Action::Close => Some((at.min(grace), Action::Close)),
        Action::Shutdown => Some((grace, Action::Close)),
    }
}

/// The earlier of the connection's deadline and a request body's (which closes: the client stopped sending).
fn earliest(
    connection: Option<(Instant, Action)>,
    body: Option<Instant>,
) -> Option<(Instant, Action)> {
    match (connection, body) {
        (Some((at, action)), Some(body)) if at <= body => Some((at, action)),
        (_, Some(body)) => Some((body, Action::Close)),
        (connection, None) => connection,
    }
}

/// Shared between a connection's IO, its requests and its watchdog.
#[derive(Debug)]
pub(crate) struct Tracker {
    state: Mutex<State>,
    limits: Arc<ServerLimits>,
    /// Request bodies waiting on the client now, each with the moment it runs out of time (see
    /// [`ReceivingBody`](crate::service)); keyed by a per-connection number.
    receiving: Mutex<Vec<(u64, Instant)>>,
    next_body: std::sync::atomic::AtomicU64,
    /// Wakes the watchdog: a change brought the deadline before its timer, or a request body started waiting.
    changed: Notify,
    /// Set while an HTTP/1 connection is idle and no byte of a next request has arrived: the next read marks the
    /// start of a request head. A plain load on every other read keeps the IO path cheap.
    watch_reads: AtomicBool,
}

impl Tracker {
    pub(crate) fn new(accepted: Instant, limits: Arc<ServerLimits>) -> Self {
        Self {
            state: Mutex::new(State::accepted(accepted)),
            limits,
            receiving: Mutex::new(Vec::new()),
            next_body: std::sync::atomic::AtomicU64::new(0),
            changed: Notify::new(),
            watch_reads: AtomicBool::new(false),
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        *self.lock()
    }

    /// The deadline that applies now (the connection's or a waiting body's, whichever is first), recorded as the
    /// one the watchdog's timer is set for. One lock for both, so a change either counts in the deadline or is
    /// compared with it.
    pub(crate) fn arm(&self) -> Option<(Instant, Action)> {
        let mut state = self.lock();
        let deadline = earliest(next_deadline(&state, &self.limits), self.receive_deadline());
        state.armed = deadline.map(|(at, _)| at);
        deadline
    }

    /// A graceful shutdown was asked for `at`.
    pub(crate) fn shutdown_asked(&self, at: Instant) {
        self.lock().shutdown_at = Some(at);
    }

    /// Applies `change`, and wakes the watchdog when the deadline now comes before its timer.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let wake = {
            let mut state = self.lock();
            change(&mut state);
            state.due_before_armed(&self.limits)
        };
        if wake {
            self.changed.notify_one();
        }
    }

    /// The earliest moment a request body waiting on the client runs out of time.
    fn receive_deadline(&self) -> Option<Instant> {
        self.receiving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, at)| *at)
            .min()
    }

    /// A number for a request body, to report its waits by.
    pub(crate) fn body_id(&self) -> u64 {
        self.next_body.fetch_add(1, Ordering::Relaxed)
    }

    /// Body `id` waits on the client until `until` at the latest (`None`: it stopped waiting).
    pub(crate) fn body_waits(&self, id: u64, until: Option<Instant>) {
        {
            let mut receiving = self
                .receiving
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            receiving.retain(|(body, _)| *body != id);
            if let Some(until) = until {
                receiving.push((id, until));
            }
        }
        if until.is_some() {
            self.changed.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves after a change that brought the deadline before the armed one.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The connection read some bytes.
    pub(crate) fn bytes_read(&self) {
        if !self.watch_reads.load(Ordering::Relaxed)
            || !self.watch_reads.swap(false, Ordering::Relaxed)
        {
            return;
        }
        self.update(|state| {
            if state.in_flight == 0 && state.head_started.is_none() {
                state.head_started = Some(Instant::now());
            }
        });
    }

    /// A request head was parsed; the returned guard marks the request finished when dropped.
    pub(crate) fn request_started(self: &Arc<Self>, http2: bool) -> InFlight {
        // With a request in flight nothing is due (see `next_deadline`): never a reason to wake the watchdog.
        {
            let mut state = self.lock();
            state.in_flight += 1;
            state.served = true;
            state.http2 = http2;
            state.head_started = None;
        }
        self.watch_reads.store(false, Ordering::Relaxed);
        InFlight {
            tracker: Arc::clone(self),
            sending: false,
        }
    }

    fn sending_changed(&self, sending: bool) {
        self.update(|state| {
            if sending {
                state.sending += 1;
                state.send_progress = Instant::now();
            } else {
                state.sending = state.sending.saturating_sub(1);
            }
        });
    }

    fn send_progressed(&self) {
        self.lock().send_progress = Instant::now();
    }

    fn request_finished(&self) {
        let mut idle_http1 = false;
        self.update(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight > 0 {
                return;
            }
            state.since = Instant::now();
            state.head_started = None;
            idle_http1 = !state.http2;
        });
        if idle_http1 {
            self.watch_reads.store(true, Ordering::Relaxed);
        }
    }
}

/// One request in flight on a connection: from its parsed head until its response body is sent (or dropped).
#[derive(Debug)]
pub(crate) struct InFlight {
    tracker: Arc<Tracker>,
    /// Whether its response counts as [`State::sending`].
    sending: bool,
}

impl InFlight {
    /// Its response has data for hyper to send: a head just produced, or a frame its body yielded. The first call
    /// after a wait starts the stall clock; later ones record progress (hyper took a frame).
    pub(crate) fn has_data(&mut self) {
        if self.sending {
            self.tracker.send_progressed();
        } else {
            self.sending = true;
            self.tracker.sending_changed(true);
        }
    }

    /// Its response body is waiting for data (a slow handler or upstream): not the client's to be cut for.
    pub(crate) fn awaits_data(&mut self) {
        if self.sending {
            self.sending = false;
            self.tracker.sending_changed(false);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.awaits_data();
        self.tracker.request_finished();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits::default()
            .with_header_read_timeout(Duration::from_secs(10))
            .and_then(|l| l.with_idle_timeout(Duration::from_secs(60)))
            .unwrap()
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_new_connection_must_deliver_its_first_head_within_the_header_timeout() {
        let t0 = Instant::now();
        let state = State::accepted(t0);
        assert_eq!(
            next_deadline(&state, &limits()),
            Some((t0 + s(10), Action::Close))
        );
    }

    #[test]
    fn nothing_is_due_while_a_request_is_in_flight() {
        let t0 = Instant::now();
        let state = State {
            in_flight: 1,
            served: true,
            ..State::accepted(t0)
        };
        assert_eq!(next_deadline(&state, &limits()), None);
        // Not even after a graceful shutdown was asked for: the request finishes first.
        assert_eq!(
            next_deadline(
                &State {
                    shutdown_at: Some(t0),
                    ..state
                },
                &limits()
            ),
            None
        );
    }

    #[test]
    fn an_idle_connection_gets_the_idle_timeout_and_a_started_head_the_header_timeout() {
        let t0 = Instant::now();
        let idle = State {
            served: true,
            since: t0 + s(5),
            ..State::accepted(t0)
        };
        assert_eq!(
            next_deadline(&idle, &limits()),
            Some((t0 + s(65), Action::Shutdown))
        );
        // The next request's first byte 50 s into the idle period: its head is due 10 s later.
        let reading = State {
            head_started: Some(t0 + s(55)),
            ..idle
        };
        assert_eq!(
            next_deadline(&reading, &limits()),
            Some((t0 + s(65), Action::Close))
        );
        let late = State {
            head_started: Some(t0 + s(64)),
            ..idle
        };
        assert_eq!(
            next_deadline(&late, &limits()),
            Some((t0 + s(74), Action::Close))
        );
    }

    #[test]
    fn after_a_graceful_shutdown_an_unfinished_connection_is_closed_within_the_header_timeout() {
        let t0 = Instant::now();
        let idle = State {
            served: true,
            since: t0,
            ..State::accepted(t0)
        };
        // Shut down 30 s into an idle period: closed 10 s later at the latest.
        assert_eq!(
            next_deadline(
                &State {
                    shutdown_at: Some(t0 + s(30)),
                    ..idle
                },
                &limits()
            ),
            Some((t0 + s(40), Action::Close))
        );
        // The idle timeout asked for the shutdown: the protocol gets its grace after it, not an immediate close.
        assert_eq!(
            next_deadline(
                &State {
                    shutdown_at: Some(t0 + s(60)),
                    ..idle
                },
                &limits()
            ),
            Some((t0 + s(70), Action::Close))
        );
        // A request that finished after the shutdown was asked for gets its own grace.
        let finished_later = State {
            since: t0 + s(35),
            ..idle
        };
        assert_eq!(
            next_deadline(
                &State {
                    shutdown_at: Some(t0 + s(30)),
                    ..finished_later
                },
                &limits()
            ),
            Some((t0 + s(45), Action::Close))
        );
        // An earlier header deadline still applies.
        let fresh = State::accepted(t0);
        assert_eq!(
            next_deadline(
                &State {
                    shutdown_at: Some(t0 + s(5)),
                    ..fresh
                },
                &limits()
            ),
            Some((t0 + s(10), Action::Close))
        );
    }

    #[tokio::test]
    async fn the_tracker_follows_requests_and_reads() {
        let t0 = Instant::now();
        let tracker = Arc::new(Tracker::new(t0, Arc::new(limits())));
        // Reads before the first request do not move anything: the first head is due from the accept.
        tracker.bytes_read();
        assert!(tracker.state().head_started.is_none());

        let first = tracker.request_started(false);
        let second = tracker.request_started(false);
        assert_eq!(tracker.state().in_flight, 2);
        drop(first);
        assert_eq!(tracker.state().in_flight, 1);
        drop(second);
        let state = tracker.state();
        assert_eq!((state.in_flight, state.served), (0, true));
        assert!(state.since >= t0);
        // The watchdog is told the connection went idle.
        tokio::time::timeout(Duration::from_secs(5), tracker.changed())
            .await
            .unwrap();

        // The first read after that starts the next head's clock; later reads do not move it.
        tracker.bytes_read();
        let started = tracker.state().head_started.unwrap();
        tracker.bytes_read();
        assert_eq!(tracker.state().head_started, Some(started));
        tokio::time::timeout(Duration::from_secs(5), tracker.changed())
            .await
            .unwrap();

        // HTTP/2 reads (pings, window updates) are not request heads.
        let h2 = Arc::new(Tracker::new(t0, Arc::new(limits())));
        drop(h2.request_started(true));
        h2.bytes_read();
        assert!(h2.state().head_started.is_none());
        assert!(h2.state().http2);
    }

    /// Whether the watchdog has been woken (a permit is waiting), without waiting for one.
    async fn woken(tracker: &Tracker) -> bool {
        tokio::time::timeout(Duration::from_millis(20), tracker.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn only_a_deadline_before_the_armed_one_wakes_the_watchdog() {
        let t0 = Instant::now();
        let tracker = Arc::new(Tracker::new(t0, Arc::new(limits())));
        // Armed for the first head: due 10 s after the accept.
        assert_eq!(tracker.arm(), Some((t0 + s(10), Action::Close)));

        // A request, its response sent, the connection idle again: every deadline on the way is later than the
        // armed one (none while in flight, the stall clock 60 s out, then the idle timeout), so no wake-up.
        let mut request = tracker.request_started(false);
        request.has_data();
        drop(request);
        assert!(!woken(&tracker).await);
        assert_eq!(tracker.state().armed, Some(t0 + s(10)));

        // The timer fires and the watchdog re-arms for what applies now: the idle timeout.
        let (idle_at, action) = tracker.arm().unwrap();
        assert_eq!(action, Action::Shutdown);
        assert!(idle_at >= t0 + s(60));
        // The next request's first byte makes its head due in 10 s: before the idle deadline, so it wakes.
        tracker.bytes_read();
        assert!(woken(&tracker).await);
        let (head_at, action) = tracker.arm().unwrap();
        assert_eq!(action, Action::Close);
        assert!(head_at < idle_at);

        // Nothing armed (a request in flight, waiting on its upstream): going idle must wake it.
        drop(tracker.request_started(false));
        assert!(!woken(&tracker).await); // idle deadline later than the armed head deadline
        let in_flight = tracker.request_started(false);
        assert_eq!(tracker.arm(), None);
        drop(in_flight);
        assert!(woken(&tracker).await);

        // A request body waiting on the client always wakes it (its deadline is not in the state).
        tracker.arm();
        let id = tracker.body_id();
        tracker.body_waits(id, Some(Instant::now() + s(100)));
        assert!(woken(&tracker).await);
    }
}
