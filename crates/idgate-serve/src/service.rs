//! The per-connection hyper service: the peer address, the body limit and request tracking around the router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::Limited;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower::ServiceExt as _;
use tower::util::Oneshot;

use crate::watchdog::{InFlight, Tracker};

/// Serves one connection's requests with the router.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionService {
    pub(crate) router: Router,
    pub(crate) peer: SocketAddr,
    pub(crate) max_body: Option<u64>,
    /// A request body's time allowance before its first byte (see [`ReceivingBody`]).
    pub(crate) body_grace: std::time::Duration,
    pub(crate) tracker: Arc<Tracker>,
}

/// The slowest a client may send a request body, on average: like Apache's `mod_reqtimeout` (`MinRate=500`), a body
/// gets the header-read timeout, plus one second for every this many bytes received.
const MIN_BODY_BYTES_PER_SECOND: u64 = 500;

pin_project! {
    /// A request body that reports how long the handler has been waiting on the client for it. Only time spent
    /// waiting on the client counts (not a slow handler or upstream that does not read), against an allowance of
    /// the header-read timeout plus one second per [`MIN_BODY_BYTES_PER_SECOND`] received: a body that stalls, or
    /// trickles in a byte at a time, is cut; a slow but steady upload is not.
    pub(crate) struct ReceivingBody<B> {
        #[pin]
        body: B,
        watch: BodyWatch,
    }
}

/// What [`ReceivingBody`] knows of its client; clears the body's deadline when dropped.
#[derive(Debug)]
struct BodyWatch {
    tracker: Arc<Tracker>,
    id: u64,
    grace: std::time::Duration,
    received: u64,
    waited: std::time::Duration,
    waiting_since: Option<tokio::time::Instant>,
}

impl Drop for BodyWatch {
    fn drop(&mut self) {
        if self.waiting_since.is_some() {
            self.tracker.body_waits(self.id, None);
        }
    }
}

impl<B> ReceivingBody<B> {
    fn new(body: B, tracker: &Arc<Tracker>, grace: std::time::Duration) -> Self {
        Self {
            body,
            watch: BodyWatch {
                tracker: Arc::clone(tracker),
                id: tracker.body_id(),
                grace,
                received: 0,
                waited: std::time::Duration::ZERO,
                waiting_since: None,
            },
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for ReceivingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        let watch = this.watch;
        match &frame {
            Poll::Pending => {
                if watch.waiting_since.is_none() {
                    let now = tokio::time::Instant::now();
                    watch.waiting_since = Some(now);
                    let allowance = watch.grace
                        + std::time::Duration::from_secs(
                            watch.received / MIN_BODY_BYTES_PER_SECOND,
                        );
                    let left = allowance.saturating_sub(watch.waited);
                    watch.tracker.body_waits(watch.id, Some(now + left));
                }
            }
            Poll::Ready(ready) => {
                if let Some(since) = watch.waiting_since.take() {
                    watch.waited += since.elapsed();
                    watch.tracker.body_waits(watch.id, None);
                }
                if let Some(Ok(frame)) = ready
                    && let Some(data) = frame.data_ref()
                {
                    watch.received += data.len() as u64;
                }
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let in_flight = self
            .tracker
            .request_started(request.version() == http::Version::HTTP_2);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let request = match self.max_body {
            // A declared length over the limit is refused before anything reads the request.
            Some(limit) if request.body().size_hint().lower() > limit => {
                tracing::debug!(peer = %self.peer, limit, "request body over the limit: 413");
                return ResponseFuture::ready(too_large(limit), in_flight);
            }
            Some(limit) => request.map(|body| {
                Body::new(Limited::new(
                    ReceivingBody::new(body, &self.tracker, self.body_grace),
                    usize::try_from(limit).unwrap_or(usize::MAX),
                ))
            }),
            None => request
                .map(|body| Body::new(ReceivingBody::new(body, &self.tracker, self.body_grace))),
        };
        ResponseFuture {
            state: State::Routing {
                future: self.router.clone().oneshot(request),
            },
            in_flight: Some(in_flight),
        }
    }
}

fn too_large(limit: u64) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "payload too large: the request body may be at most {limit} bytes"
    )));
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pin_project! {
    #[project = StateProj]
    enum State {
        Ready { response: Option<Response<Body>> },
        Routing { #[pin] future: Oneshot<Router, Request<Body>> },
    }
}

pin_project! {
    /// The router's response, its body still counted as in flight until sent.
    pub(crate) struct ResponseFuture {
        #[pin]
        state: State,
        in_flight: Option<InFlight>,
    }
}

impl ResponseFuture {
    fn ready(response: Response<Body>, in_flight: InFlight) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
            in_flight: Some(in_flight),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.state.project() {
            StateProj::Ready { response } => match response.take() {
                Some(response) => response,
                None => Response::new(Body::empty()),
            },
            StateProj::Routing { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
        };
        let mut in_flight = this.in_flight.take();
        if let Some(in_flight) = &mut in_flight {
            // From here on hyper should be sending: a client that takes nothing is stalling it.
            in_flight.has_data();
        }
        Poll::Ready(Ok(response.map(|body| TrackedBody { body, in_flight })))
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until its last frame is sent.
    pub(crate) struct TrackedBody {
        #[pin]
        body: Body,
        in_flight: Option<InFlight>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        match (&frame, this.in_flight.as_mut()) {
            (Poll::Ready(None | Some(Err(_))), _) => {
                this.in_flight.take();
            }
            (Poll::Ready(Some(Ok(_))), Some(in_flight)) => in_flight.has_data(),
            (Poll::Pending, Some(in_flight)) => in_flight.awaits_data(),
            (_, None) => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
