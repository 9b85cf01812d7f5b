//! The upstream: its client and connection budget, and the handler that forwards an admitted request to it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body as _;
use idgate_core::identity::Caller;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use idgate_server::CredentialHeader;

use crate::caller::{AdmittedBy, insert_caller_headers};
use crate::clean::{
    forward_cookies, strip_hop_by_hop, strip_idgate_set_cookies, strip_unverified_bearers,
    strip_unverified_credentials,
};
use crate::forwarding::set_forwarding_headers;
use crate::pool::Pool;
use crate::{IdgateCookies, ProxyOptions};

#[derive(Debug)]
pub(crate) struct Upstream {
    /// The upstream's connections, driven by the requests that use them.
    pub(crate) pool: Arc<Pool>,
    pub(crate) authority: http::uri::Authority,
    /// The upstream URL's path without its trailing `/`, prefixed to every request path.
    pub(crate) base_path: String,
    /// Requests in flight to the upstream; see [`router_with_options`](crate::router_with_options).
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) options: ProxyOptions,
    /// The legacy header is trusted: the service says it sits behind App Engine's front end.
    pub(crate) behind_app_engine: bool,
    /// `[inbound]` is configured: the bearer headers are idgate's.
    pub(crate) inbound: bool,
    /// With sign-in: idgate's cookies, never forwarded.
    pub(crate) idgate_cookies: Option<IdgateCookies>,
}

pub(crate) async fn forward(
    State(upstream): State<Arc<Upstream>>,
    request: Request<Body>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);

    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    // Origin-form, as HTTP/1.1 sends it to an origin server; the pool sets `Host` to the upstream's authority.
    let uri = Uri::try_from(format!("{}{path_and_query}", upstream.base_path));
    let Ok(uri) = uri else {
        return plain(StatusCode::BAD_REQUEST, "bad request target");
    };

    let admitted_by = parts.extensions.get::<CredentialHeader>().copied();
    let credential = caller
        .as_ref()
        .map(|_| AdmittedBy::from_extensions(&parts.extensions));
    // The request target's authority when it has one (HTTP/2's `:authority`, an HTTP/1.1 absolute-form target:
    // RFC 9112 §3.2.2 says it wins over `Host`), else the `Host` header.
    let authority = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| parts.headers.get(header::HOST).cloned());
    let headers = &mut parts.headers;
    strip_unverified_credentials(
        headers,
        admitted_by,
        credential == Some(AdmittedBy::IapAssertion),
        upstream.behind_app_engine,
    );
    if upstream.inbound && caller.is_some() && admitted_by.is_none() {
        strip_unverified_bearers(headers);
    }
    forward_cookies(headers, upstream.idgate_cookies);
    set_forwarding_headers(
        headers,
        authority,
        peer,
        upstream.options.trust_forwarded_headers,
    );
    if let Some(caller) = &caller {
        insert_caller_headers(headers, caller, credential);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    parts.extensions = http::Extensions::new();
    // A body that fails while it is sent (malformed chunking, over the size limit) is the client's fault, not the
    // upstream's: watched, so the answer says so. A request without a body (most) is not wrapped.
    let client_failed = (!body.is_end_stream()).then(|| Arc::new(OnceLock::new()));
    let body = match &client_failed {
        Some(failed) => Body::new(ClientBody {
            body,
            failed: Arc::clone(failed),
        }),
        None => body,
    };

    // Wait for a share of the upstream budget (a request waiting holds no descriptor), at most the idle timeout.
    let wait = upstream.options.limits.idle_timeout();
    let Ok(Ok(share)) =
        tokio::time::timeout(wait, Arc::clone(&upstream.budget).acquire_owned()).await
    else {
        tracing::warn!(target: "idgate::proxy", "every upstream connection is busy; answering 503");
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable: the upstream is busy; retry later",
        );
    };
    let span = crate::trace::upstream_span(&parts.method, &upstream.authority);
    let answer = upstream
        .pool
        .send(Request::from_parts(parts, body))
        .instrument(span.clone())
        .await;
    crate::trace::record_upstream_status(&span, answer.as_ref().ok().map(Response::status));
    drop(span);
    match answer {
        Ok(response) => {
            let (mut parts, mut body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(cookies) = upstream.idgate_cookies {
                strip_idgate_set_cookies(&mut parts.headers, cookies);
            }
            // A small body of known length is read up to its first frame before the head is handed on, so the
            // client gets head and body in one write (one send, one wake-up less) rather than the head alone, then
            // the body once the upstream connection's task has read it. A body of unknown length (a stream, server-
            // sent events) or a large one is not waited for: its head goes out at once, as before.
            let first = match body.size_hint().exact() {
                Some(len) if len > 0 && len <= PREFETCH_MAX_BYTES => {
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
                _ => None,
            };
            // The upstream connection is busy until its response body is read or dropped: so is the share.
            Response::from_parts(
                parts,
                Body::new(Budgeted {
                    first,
                    body,
                    _share: share,
                }),
            )
        }
        Err(error) => match client_failed.as_ref().and_then(|failed| failed.get()) {
            Some(&ClientBodyError::TooLarge) => {
                tracing::debug!(target: "idgate::proxy", "the request body went over the limit: 413");
                plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload too large: the request body is over the limit",
                )
            }
            Some(&ClientBodyError::Unreadable) => {
                tracing::debug!(target: "idgate::proxy", "the request body could not be read: 400");
                plain(
                    StatusCode::BAD_REQUEST,
                    "bad request: the request body could not be read",
                )
            }
            None => {
                tracing::warn!(
                    target: "idgate::proxy",
                    error = %idgate_core::ErrorChain(&error),
                    "upstream request failed"
                );
                plain(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway: the upstream did not answer",
                )
            }
        },
    }
}

/// Why a client's request body failed on its way upstream.
#[derive(Debug, Clone, Copy)]
enum ClientBodyError {
    /// Over the listener's request body limit (`413`).
    TooLarge,
    /// Malformed (chunk framing), or the client's connection failed (`400`).
    Unreadable,
}

pin_project! {
    /// A client's request body on its way upstream, recording why it failed: the exchange with the upstream then
    /// fails too, and the client is told its body was the cause, not a `502` blaming the upstream.
    struct ClientBody {
        #[pin]
        body: Body,
        failed: Arc<OnceLock<ClientBodyError>>,
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &frame {
            let over_limit =
                std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            let _ = this.failed.set(if over_limit {
                ClientBodyError::TooLarge
            } else {
                ClientBodyError::Unreadable
            });
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The largest response body (by its `Content-Length`) whose first frame is read before the head is handed on.
const PREFETCH_MAX_BYTES: u64 = 64 * 1024;

pin_project! {
    /// An upstream response body with the share of the upstream budget its connection holds, given back when the
    /// body is read to the end or dropped; `first` is a frame already read from `body` (see [`forward`]), yielded
    /// before it.
    struct Budgeted<B: http_body::Body<Data = Bytes>> {
        first: Option<Result<http_body::Frame<B::Data>, B::Error>>,
        #[pin]
        body: B,
        _share: OwnedSemaphorePermit,
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for Budgeted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(first));
        }
        this.body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let hint = self.body.size_hint();
        let Some(Ok(first)) = &self.first else {
            return hint;
        };
        // The head's `Content-Length` is taken from this: the frame already read counts.
        let read = first.data_ref().map_or(0, |data| data.len() as u64);
        let mut total = http_body::SizeHint::new();
        total.set_lower(hint.lower().saturating_add(read));
        if let Some(upper) = hint.upper() {
            total.set_upper(upper.saturating_add(read));
        }
        total
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
