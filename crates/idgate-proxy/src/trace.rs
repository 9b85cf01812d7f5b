//! The proxy's spans: one OpenTelemetry-style server span per request, and a client span around the upstream call.
//! See the [crate docs](crate#tracing) for the fields.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::ConnectInfo;
use http::{Method, Request, Response, Version};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

/// The tracing target of the proxy's spans.
pub(crate) const TARGET: &str = "idgate::proxy";

/// The most bytes of `User-Agent` recorded.
pub(crate) const MAX_USER_AGENT: usize = 256;

/// OpenTelemetry's method name: a known method as itself, anything else `_OTHER` (a client chooses the method, and
/// a span name must not take any value a client sends).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// The span name OpenTelemetry asks for: the method, or `HTTP` for an unknown one.
fn span_name(method: &'static str) -> &'static str {
    if method == "_OTHER" { "HTTP" } else { method }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

/// `value` cut to at most `max` bytes, on a character boundary.
fn truncated(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The server span for `request`: method, path (never the query: it may hold an OAuth code or state), protocol,
/// peer and user agent. Status and duration are recorded by [`ServerSpanFuture`].
fn server_span<B>(request: &Request<B>) -> Span {
    let method = method_name(request.method());
    // The macro evaluates the field values only when the span is enabled: nothing below runs otherwise.
    tracing::info_span!(
        target: TARGET,
        "idgate.proxy.request",
        otel.name = span_name(method),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        url.path = request.uri().path(),
        network.protocol.version = protocol_version(request.version()),
        client.address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| display(peer.ip())),
        user_agent.original = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|agent| truncated(agent, MAX_USER_AGENT)),
        http.response.status_code = Empty,
        http.server.request.duration = Empty,
    )
}

/// Wraps the whole proxy (gates, sign-in routes, forwarding) in the server span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerSpanLayer;

impl<S> Layer<S> for ServerSpanLayer {
    type Service = ServerSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerSpan { inner }
    }
}

/// See [`ServerSpanLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ServerSpan<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for ServerSpan<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ServerSpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = server_span(&request);
        // No clock read when nobody records the span.
        let start = (!span.is_disabled()).then(Instant::now);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ServerSpanFuture {
            future,
            span,
            start,
        }
    }
}

pin_project! {
    /// Polls the inner future inside the server span; records the status and the duration when the response head
    /// is ready.
    pub(crate) struct ServerSpanFuture<F> {
        #[pin]
        future: F,
        span: Span,
        start: Option<Instant>,
    }
}

impl<F, ResBody, E> Future for ServerSpanFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let output = ready!(this.future.poll(cx));
        if let Some(start) = this.start.take() {
            if let Ok(response) = &output {
                record_status(this.span, response.status());
            }
            this.span.record(
                "http.server.request.duration",
                start.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(output)
    }
}

/// `http.response.status_code`, and `otel.status_code = ERROR` for a 5xx.
fn record_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The client span around the upstream call: the method, the upstream's host and port. The status is recorded by
/// [`record_upstream_status`].
pub(crate) fn upstream_span(method: &Method, authority: &http::uri::Authority) -> Span {
    let method = method_name(method);
    tracing::info_span!(
        target: TARGET,
        "idgate.proxy.upstream",
        otel.name = span_name(method),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = authority.host(),
        server.port = authority.port_u16().unwrap_or(80),
        http.response.status_code = Empty,
    )
}

/// Records the upstream's answer (`None`: it did not answer) on its client span.
pub(crate) fn record_upstream_status(span: &Span, status: Option<http::StatusCode>) {
    if span.is_disabled() {
        return;
    }
    match status {
        Some(status) => record_status(span, status),
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method_name(&Method::GET), "GET");
        let custom = Method::from_bytes(b"SECRETMETHOD").unwrap();
        assert_eq!(method_name(&custom), "_OTHER");
        assert_eq!(span_name(method_name(&custom)), "HTTP");
        assert_eq!(span_name("PATCH"), "PATCH");
    }

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("curl/8", MAX_USER_AGENT), "curl/8");
        let long = "é".repeat(200);
        let cut = truncated(&long, MAX_USER_AGENT);
        assert!(cut.len() <= MAX_USER_AGENT && cut.len() >= MAX_USER_AGENT - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
