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
//! # What the upstream can trust
//!
//! The upstream can trust these headers exactly as far as it trusts that only the proxy reaches it. To make that
//! hold, every request is cleaned in two steps, on every path (exempt ones included):
//!
//! **Before the layers** see it:
//! - hop-by-hop headers are removed (`Connection` and every header it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-*`), so `Connection: X-Serverless-Authorization` cannot remove the
//!   credential the layer would verify after the layer chose it, leaving the upstream another one;
//! - every identity or credential header in an **underscore spelling** (`X_Idgate_Caller_Email`,
//!   `X_Serverless_Authorization`, `X_Appengine_Inbound_Appid`, `X_Goog_Authenticated_User_Email`, ...) is removed:
//!   CGI, WSGI, PHP and many other stacks fold `_` and `-` into one variable (`HTTP_X_IDGATE_CALLER_EMAIL`), so a
//!   twin would reach the application as the real header. Names are compared with `_` read as `-`, ignoring case;
//! - client-sent `X-Idgate-Caller-*` are removed.
//!
//! **After the layers** admitted it:
//! - IAP's unsigned `X-Goog-Authenticated-User-Email`/`-Id` are removed, and set again from the verified assertion
//!   (`accounts.google.com:EMAIL`, the assertion's `sub`) when the IAP layer admitted the request, for upstreams
//!   written against them;
//! - `X-Appengine-Inbound-Appid` is removed unless the legacy header is trusted **and** was the credential that
//!   admitted this request: a legacy App Engine app behind the sidecar reads it before anything else;
//! - when `[inbound]` admitted the request, the upstream receives **only the credential header idgate verified**
//!   ([`CredentialHeader`]): admitted by `X-Serverless-Authorization`, the request's `Authorization` is removed;
//!   admitted by the legacy header, both bearer headers are removed. On exempt paths, and when only `[iap]` is
//!   configured, `Authorization` and `X-Serverless-Authorization` are not idgate's and pass untouched (no caller
//!   headers are set there, so nothing can be confused with a verified identity).
//!
//! Rejected requests never reach the upstream. Protocol upgrades (WebSocket) are not proxied.
//!
//! # Forwarding headers
//!
//! The same for HTTP/1.1 and HTTP/2 (where the authority arrives as `:authority`, not `Host`): `Host` is set to the
//! upstream's; `X-Forwarded-Host` is set to the authority the client asked for; `X-Forwarded-Proto` to `http` (the
//! proxy listens on plain TCP); the peer address is appended to `X-Forwarded-For`; a client's `Forwarded` is removed.
//! Behind a front end that sets these headers itself (Cloud Run, a load balancer terminating TLS), turn on
//! [`ProxyOptions::trust_forwarded_headers`]: the front end's `X-Forwarded-Host`, `X-Forwarded-Proto` and
//! `Forwarded` are then kept (and only filled in when absent).
//!
//! An unreachable upstream is answered with 502.
//!
//! The listener is served by [`idgate_serve::serve`] under [`ServerLimits`]: a header-read timeout (a silent or
//! slow client is closed), an idle timeout, a connection cap (further clients wait in the kernel's backlog) and a
//! request-body limit (`413` for a larger `Content-Length`; a larger streamed body never reaches the upstream
//! whole). A request waiting on a slow upstream is never cut.
//!
//! ```no_run
//! use idgate_core::policy::Config;
//! use idgate_server::proxy::ProxyOptions;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_path("idgate.toml")?;
//! let layers = idgate_server::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let upstream = "http://127.0.0.1:3000".parse()?;
//! // Send on `stop` (e.g. on SIGTERM) to stop accepting and drain the requests in flight.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! idgate_server::proxy::serve(listener, upstream, layers, ProxyOptions::default(), async {
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

use crate::credential::{
    CredentialHeader, X_APPENGINE_INBOUND_APPID, X_GOOG_AUTHENTICATED_USER_EMAIL,
};
use crate::{Layers, ServerError};

pub use idgate_serve::{LimitError, ServerLimits};

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

/// How the proxy serves: its listener's [`ServerLimits`], and whether it trusts a front end's forwarding headers.
/// The default suits a proxy that clients reach directly.
///
/// ```
/// use std::time::Duration;
/// use idgate_server::proxy::{ProxyOptions, ServerLimits};
///
/// let options = ProxyOptions::default()
///     .limits(ServerLimits::default().with_idle_timeout(Duration::from_secs(30))?)
///     .trust_forwarded_headers(true); // only behind Cloud Run or a TLS-terminating load balancer
/// assert!(options.trusts_forwarded_headers());
/// # Ok::<(), idgate_server::proxy::LimitError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    trust_forwarded_headers: bool,
    limits: ServerLimits,
}

impl ProxyOptions {
    /// Keep the client's `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` (filling them in only when absent)
    /// instead of replacing them with what the proxy saw. Turn it on only when every request comes through a front
    /// end that sets them (Cloud Run, a TLS-terminating load balancer); a client that reaches the proxy directly
    /// could otherwise claim any host and scheme. Default `false`.
    #[must_use]
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.trust_forwarded_headers = trust;
        self
    }

    /// The listener's limits (header-read and idle timeouts, connection cap, body limit). Default
    /// [`ServerLimits::default`].
    #[must_use]
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether a front end's forwarding headers are kept; see [`trust_forwarded_headers`](Self::trust_forwarded_headers).
    pub fn trusts_forwarded_headers(&self) -> bool {
        self.trust_forwarded_headers
    }

    /// The listener's limits.
    pub fn server_limits(&self) -> &ServerLimits {
        &self.limits
    }
}

#[derive(Debug)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The upstream URL's path without its trailing `/`, prefixed to every request path.
    base_path: String,
    options: ProxyOptions,
}

/// Serves the authenticating proxy on `listener` with `options` (its limits among them) until `shutdown` completes,
/// then finishes the requests in flight (at most [`ServerLimits::drain_timeout`]).
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
    options: ProxyOptions,
    shutdown: F,
) -> Result<(), ServerError>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Each proxied connection may hold two descriptors: the client's and a pooled upstream connection's.
    let limits = options
        .limits
        .clone()
        .with_descriptors_per_connection(std::num::NonZeroUsize::MIN.saturating_add(1));
    let router = router_with_options(&upstream, &layers, options)?;
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
    router_with_options(upstream, layers, ProxyOptions::default())
}

/// [`router`] with explicit [`ProxyOptions`].
///
/// # Errors
///
/// [`ServerError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`.
pub fn router_with_options(
    upstream: &Url,
    layers: &Layers,
    options: ProxyOptions,
) -> Result<Router, ServerError> {
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
        options,
    });
    // `layer` after `apply`: the clean-up runs before the layers see the request.
    Ok(layers
        .apply(Router::new().fallback(forward).with_state(state))
        .layer(axum::middleware::map_request(clean_before_layers)))
}

/// The first step of the clean-up (see the [module docs](self)): what no layer may see and no upstream may get.
async fn clean_before_layers(mut request: Request<Body>) -> Request<Body> {
    let headers = request.headers_mut();
    strip_hop_by_hop(headers);
    strip_spoofable(headers);
    request
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

    let admitted_by = parts.extensions.get::<CredentialHeader>().copied();
    // For HTTP/2 the authority is the URI's (`:authority`); for HTTP/1.1, the `Host` header.
    let authority = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = &mut parts.headers;
    strip_unverified_credentials(headers, admitted_by);
    set_forwarding_headers(
        headers,
        authority,
        peer,
        upstream.options.trust_forwarded_headers,
    );
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

/// Names (already lower case, as `http` stores them) whose meaning an upstream could confuse with identity, by prefix.
const PROTECTED_PREFIXES: [&str; 2] = [CALLER_HEADER_PREFIX, IAP_PLAIN_HEADER_PREFIX];

/// ... and exactly: credentials, the legacy identity header, and the forwarding headers the proxy sets itself.
const PROTECTED_NAMES: [&str; 7] = [
    "authorization",
    "x-serverless-authorization",
    "x-appengine-inbound-appid",
    "x-goog-iap-jwt-assertion",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-for",
];

/// Whether `name` is `protected` once `_` is read as `-` (the folding CGI-style stacks apply). `name` is lower case.
fn folds_to_protected(name: &str) -> bool {
    let folds_to = |target: &str, prefix: bool| {
        let n = name.len();
        let t = target.len();
        (if prefix { n >= t } else { n == t })
            && name
                .bytes()
                .zip(target.bytes())
                .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
    };
    PROTECTED_PREFIXES.iter().any(|p| folds_to(p, true))
        || PROTECTED_NAMES.iter().any(|p| folds_to(p, false))
}

/// Removes what no client may send in any spelling: our caller headers, and the underscore twin of every
/// identity, credential or forwarding header (see the [module docs](self)).
fn strip_spoofable(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with(CALLER_HEADER_PREFIX)
                || (name.contains('_') && folds_to_protected(name))
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// After the layers: IAP's plain headers always go (they are set again from a verified assertion); the legacy
/// header and the bearer headers stay only when they are the credential idgate verified.
fn strip_unverified_credentials(headers: &mut HeaderMap, admitted_by: Option<CredentialHeader>) {
    let plain: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(IAP_PLAIN_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in plain {
        headers.remove(name);
    }
    if admitted_by != Some(CredentialHeader::AppEngineInboundAppid) {
        headers.remove(&X_APPENGINE_INBOUND_APPID);
    }
    if let Some(verified) = admitted_by {
        for bearer in [
            CredentialHeader::ServerlessAuthorization,
            CredentialHeader::Authorization,
        ] {
            if bearer != verified {
                headers.remove(bearer.header_name());
            }
        }
    }
}

/// `X-Forwarded-Host`, `-Proto`, `-For` and `Forwarded`, the same way for HTTP/1.1 and HTTP/2.
fn set_forwarding_headers(
    headers: &mut HeaderMap,
    authority: Option<HeaderValue>,
    peer: Option<SocketAddr>,
    trust_client: bool,
) {
    let forwarded_host = HeaderName::from_static("x-forwarded-host");
    let forwarded_proto = HeaderName::from_static("x-forwarded-proto");
    headers.remove(header::HOST);
    if !trust_client {
        headers.remove(&forwarded_host);
        headers.remove(&forwarded_proto);
        headers.remove(header::FORWARDED);
    }
    if let Some(authority) = authority
        && !headers.contains_key(&forwarded_host)
    {
        headers.insert(forwarded_host, authority);
    }
    if !headers.contains_key(&forwarded_proto) {
        headers.insert(forwarded_proto, HeaderValue::from_static("http"));
    }
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer);
    }
}

fn insert_caller_headers(headers: &mut HeaderMap, caller: &Caller) {
    headers.insert(
        X_IDGATE_CALLER_KIND.clone(),
        HeaderValue::from_static(caller.kind().as_str()),
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
    // Google accounts only: IAP names external identities in another namespace, and their email may be unverified.
    if let Caller::IapUser(user) = caller
        && !user.is_external_identity()
    {
        let email = HeaderValue::from_str(&format!("accounts.google.com:{}", user.email()));
        let id = HeaderValue::from_str(user.subject());
        if let (Ok(email), Ok(id)) = (email, id) {
            headers.insert(X_GOOG_AUTHENTICATED_USER_EMAIL.clone(), email);
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
    fn underscore_twins_of_protected_names_fold_and_others_do_not() {
        for twin in [
            "x_idgate_caller_email",
            "x-idgate_caller-kind",
            "x_goog_authenticated_user_email",
            "x_goog_authenticated_user_anything",
            "x_appengine_inbound_appid",
            "x_serverless_authorization",
            "x_goog_iap_jwt_assertion",
            "x_forwarded_host",
            "x_forwarded_proto",
            "x_forwarded_for",
        ] {
            assert!(folds_to_protected(twin), "{twin}");
        }
        for other in [
            "x_request_id",
            "x_appengine_inbound_appid_extra",
            "x_serverless_authorizatio",
            "authorization_x",
            "x_goog_authenticated_use",
        ] {
            assert!(!folds_to_protected(other), "{other}");
        }
        let mut h = HeaderMap::new();
        h.insert("x_idgate_caller_email", HeaderValue::from_static("a@b.c"));
        h.insert("x_request_id", HeaderValue::from_static("1"));
        h.insert("x-appengine-inbound-appid", HeaderValue::from_static("app"));
        strip_spoofable(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key("x_request_id"));
        assert!(
            h.contains_key("x-appengine-inbound-appid"),
            "the layer decides on the real name"
        );
    }

    #[test]
    fn only_the_verified_credential_stays() {
        let all = || {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_static("Bearer a"));
            h.insert(
                "x-serverless-authorization",
                HeaderValue::from_static("Bearer s"),
            );
            h.insert("x-appengine-inbound-appid", HeaderValue::from_static("app"));
            h.insert(
                "x-goog-authenticated-user-email",
                HeaderValue::from_static("accounts.google.com:x@y.z"),
            );
            h
        };
        let kept = |admitted_by| {
            let mut h = all();
            strip_unverified_credentials(&mut h, admitted_by);
            let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            names.sort_unstable();
            names.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(
            kept(Some(CredentialHeader::ServerlessAuthorization)),
            ["x-serverless-authorization"]
        );
        assert_eq!(
            kept(Some(CredentialHeader::Authorization)),
            ["authorization"]
        );
        assert_eq!(
            kept(Some(CredentialHeader::AppEngineInboundAppid)),
            ["x-appengine-inbound-appid"]
        );
        assert_eq!(
            kept(None),
            ["authorization", "x-serverless-authorization"],
            "exempt paths and IAP-only: bearer headers are not idgate's"
        );
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
        strip_spoofable(&mut h);
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
