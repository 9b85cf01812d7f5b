//! The authenticating sidecar as a library: a reverse proxy that puts the [`Layers`] in front of any HTTP upstream.
//!
//! [`serve`] accepts connections on a listener, runs every request through the layers, and forwards the admitted
//! ones to the upstream, streaming bodies both ways. The upstream learns who called from three headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Idgate-Caller-Kind` | `service_account`, `user`, `app_engine_app` or `iap_user` |
//! | `X-Idgate-Caller-Email` | the verified email (absent for an App Engine app) |
//! | `X-Idgate-Caller-Project` | the caller's project ID or number, when its identity reveals one |
//!
//! Client-sent `X-Idgate-Caller-*` headers are **always** removed, on exempt paths too, so the upstream can trust
//! these headers exactly as far as it trusts that only the proxy reaches it. IAP's unsigned
//! `X-Goog-Authenticated-User-Email`/`-Id` are always removed too; when the IAP layer admitted the request they are
//! set again from the verified assertion (`accounts.google.com:EMAIL`, the assertion's `sub`), for upstreams written
//! against them. Rejected requests never reach the
//! upstream. Hop-by-hop headers (`Connection` and the headers it names, `Keep-Alive`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`, `Proxy-*`) are dropped in both directions, so protocol upgrades (WebSocket) are
//! not proxied. `Host` is set to the upstream's; the original goes in `X-Forwarded-Host`, and the peer address is
//! appended to `X-Forwarded-For`. An unreachable upstream is answered with 502.
//!
//! The listener is served by [`idgate_serve::serve`] under [`ServerLimits`]: a header-read timeout (a silent or
//! slow client is closed), an idle timeout, a connection cap (further clients wait in the kernel's backlog) and a
//! request-body limit (`413` for a larger `Content-Length`; a larger streamed body never reaches the upstream
//! whole). A request waiting on a slow upstream is never cut.
//!
//! ```no_run
//! use idgate_core::policy::Config;
//! use idgate_server::proxy::ServerLimits;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_path("idgate.toml")?;
//! let layers = idgate_server::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let upstream = "http://127.0.0.1:3000".parse()?;
//! // Send on `stop` (e.g. on SIGTERM) to stop accepting and drain the requests in flight.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! idgate_server::proxy::serve(listener, upstream, layers, ServerLimits::default(), async {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idgate_core::identity::Caller;
use tokio::net::TcpListener;
use url::Url;

use crate::{Layers, ServerError};

pub use idgate_serve::ServerLimits;

/// The caller's kind, for the upstream.
pub static X_IDGATE_CALLER_KIND: HeaderName = HeaderName::from_static("x-idgate-caller-kind");
/// The caller's verified email, for the upstream.
pub static X_IDGATE_CALLER_EMAIL: HeaderName = HeaderName::from_static("x-idgate-caller-email");
/// The caller's project, for the upstream.
pub static X_IDGATE_CALLER_PROJECT: HeaderName = HeaderName::from_static("x-idgate-caller-project");

const CALLER_HEADER_PREFIX: &str = "x-idgate-caller-";

/// Hop-by-hop headers (RFC 9110 §7.6.1), plus `Proxy-*` credentials meant for this hop.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

#[derive(Debug)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The upstream URL's path without its trailing `/`, prefixed to every request path.
    base_path: String,
}

/// Serves the authenticating proxy on `listener` under `limits` until `shutdown` completes, then finishes the
/// requests in flight (at most [`ServerLimits::drain_timeout`]).
///
/// `upstream` is an `http://` URL; its path, if any, prefixes every forwarded path. See the [module docs](self).
///
/// # Errors
///
/// [`ServerError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`; [`ServerError::Io`]
/// when serving fails.
pub async fn serve<F>(
    listener: TcpListener,
    upstream: Url,
    layers: Layers,
    limits: ServerLimits,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let router = router(&upstream, &layers)?;
    idgate_serve::serve(listener, router, limits, shutdown).await?;
    Ok(())
}

/// The proxy as an axum [`Router`] (the layers applied), for embedding or testing. Needs
/// `into_make_service_with_connect_info::<SocketAddr>()` to fill `X-Forwarded-For`.
///
/// # Errors
///
/// [`ServerError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`.
pub fn router(upstream: &Url, layers: &Layers) -> Result<Router, ServerError> {
    if upstream.scheme() != "http" {
        return Err(ServerError::Upstream(format!(
            "scheme {:?} is not supported; the upstream is a local http:// service",
            upstream.scheme()
        )));
    }
    if !upstream.username().is_empty() || upstream.password().is_some() {
        return Err(ServerError::Upstream(
            "credentials in the upstream URL are not supported".to_owned(),
        ));
    }
    if upstream.query().is_some() || upstream.fragment().is_some() {
        return Err(ServerError::Upstream(
            "the upstream URL may not have a query or fragment".to_owned(),
        ));
    }
    let host = upstream
        .host_str()
        .ok_or_else(|| ServerError::Upstream("no host".to_owned()))?;
    let authority = match upstream.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let authority = authority
        .parse()
        .map_err(|e| ServerError::Upstream(format!("authority: {e}")))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let state = Arc::new(Upstream {
        client,
        scheme: http::uri::Scheme::HTTP,
        authority,
        base_path: upstream.path().trim_end_matches('/').to_owned(),
    });
    Ok(layers.apply(Router::new().fallback(forward).with_state(state)))
}

async fn forward(State(upstream): State<Arc<Upstream>>, request: Request<Body>) -> Response<Body> {
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
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{path_and_query}", upstream.base_path))
        .build();
    let Ok(uri) = uri else {
        return plain(StatusCode::BAD_REQUEST, "bad request target");
    };

    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    strip_caller_headers(headers);
    if let Some(host) = headers.remove(header::HOST) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer);
    }
    if let Some(caller) = &caller {
        insert_caller_headers(headers, caller);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    parts.extensions = http::Extensions::new();

    match upstream
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => {
            tracing::warn!(target: "idgate::proxy", %error, "upstream request failed");
            plain(
                StatusCode::BAD_GATEWAY,
                "bad gateway: the upstream did not answer",
            )
        }
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// IAP's unsigned identity headers (`X-Goog-Authenticated-User-Email` / `-Id`): forgeable by anyone who reaches the
/// service without passing through IAP, so a client's copies never reach the upstream.
const IAP_PLAIN_HEADER_PREFIX: &str = "x-goog-authenticated-user-";

/// Removes every identity header a client could have forged: ours (`X-Idgate-Caller-*`) and IAP's unsigned ones.
fn strip_caller_headers(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            name.as_str().starts_with(CALLER_HEADER_PREFIX)
                || name.as_str().starts_with(IAP_PLAIN_HEADER_PREFIX)
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

fn insert_caller_headers(headers: &mut HeaderMap, caller: &Caller) {
    headers.insert(
        X_IDGATE_CALLER_KIND.clone(),
        HeaderValue::from_static(caller.kind()),
    );
    if let Some(email) = caller.email().and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(X_IDGATE_CALLER_EMAIL.clone(), email);
    }
    if let Some(project) = caller
        .project()
        .and_then(|p| HeaderValue::from_str(&p.to_string()).ok())
    {
        headers.insert(X_IDGATE_CALLER_PROJECT.clone(), project);
    }
    // For an upstream written against IAP's plain headers: the same values IAP sends, taken from the verified
    // assertion (never from the client).
    if let Caller::IapUser(user) = caller {
        let email = HeaderValue::from_str(&format!("accounts.google.com:{}", user.email()));
        let id = HeaderValue::from_str(user.subject());
        if let (Ok(email), Ok(id)) = (email, id) {
            headers.insert(
                HeaderName::from_static("x-goog-authenticated-user-email"),
                email,
            );
            headers.insert(HeaderName::from_static("x-goog-authenticated-user-id"), id);
        }
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn strips_every_spoofed_caller_header() {
        let mut h = HeaderMap::new();
        h.append(
            "x-idgate-caller-email",
            HeaderValue::from_static("admin@evil.example"),
        );
        h.append(
            "x-idgate-caller-email",
            HeaderValue::from_static("root@evil.example"),
        );
        h.insert("X-Idgate-Caller-Kind", HeaderValue::from_static("user"));
        h.insert("x-idgate-caller-anything", HeaderValue::from_static("x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_caller_headers(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn rejects_unusable_upstreams() {
        let layers = Layers::new(None, None);
        for bad in [
            "https://example.com",
            "http://user:pw@127.0.0.1:1",
            "http://127.0.0.1:1/?q=1",
        ] {
            assert!(router(&bad.parse().unwrap(), &layers).is_err(), "{bad}");
        }
        assert!(router(&"http://127.0.0.1:1/base/".parse().unwrap(), &layers).is_ok());
    }
}
