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
//!   `Transfer-Encoding`, `Upgrade`, every `Proxy-*`, and `Proxy`, which CGI turns into the `HTTP_PROXY` setting),
//!   so `Connection: X-Serverless-Authorization` cannot remove the credential the layer would verify after the
//!   layer chose it, leaving the upstream another one;
//! - every identity, credential or forwarding header in **another spelling** (`X_Idgate_Caller_Email`,
//!   `X.Serverless.Authorization`, `X+Appengine+Inbound+Appid`, `X_Goog_Authenticated_User_Email`,
//!   `X_Forwarded_Proto`, ...) is removed: CGI, WSGI and PHP fold `_` into `-`, and lighttpd's CGI/FastCGI/SCGI
//!   mapping folds every byte that is not a letter or digit, into one variable (`HTTP_X_IDGATE_CALLER_EMAIL`), so a
//!   twin would reach the application as the real header. Names are compared ignoring case, with any byte other
//!   than a letter or digit read as `-`;
//! - client-sent `X-Idgate-Caller-*` are removed.
//!
//! **After the layers** admitted it:
//! - IAP's unsigned `X-Goog-Authenticated-User-Email`/`-Id` are removed, and set again from the verified assertion
//!   (`accounts.google.com:EMAIL`, the assertion's `sub`) when the IAP layer admitted a Google account, for
//!   upstreams written against them;
//! - `X-Appengine-Inbound-Appid` is removed unless the legacy header is trusted **and** was the credential that
//!   admitted this request: a legacy App Engine app behind the sidecar reads it before anything else;
//! - App Engine's other platform headers (`X-Appengine-Cron`, `-QueueName`, `-User-Email`, `-User-Is-Admin`, ...),
//!   by which legacy apps admit cron jobs, tasks and administrators, are removed unless the legacy header is
//!   trusted (the service then sits behind App Engine's front end, which strips client copies);
//! - when `[inbound]` admitted the request, the upstream receives **only the credential header idgate verified**
//!   ([`CredentialHeader`]): admitted by `X-Serverless-Authorization`, the request's `Authorization` is removed;
//!   admitted by the legacy header, both bearer headers are removed. On exempt paths, and when only `[iap]` is
//!   configured, `Authorization` and `X-Serverless-Authorization` are not idgate's and pass untouched (no caller
//!   headers are set there, so nothing can be confused with a verified identity).
//!
//! Rejected requests never reach the upstream. Protocol upgrades (WebSocket) are not proxied. `X-CloudTasks-*` and
//! `X-CloudScheduler` are not identity anywhere but on App Engine: authenticate Cloud Tasks and Cloud Scheduler by
//! the OIDC token they can send, which `[inbound]` verifies.
//!
//! # Forwarding headers
//!
//! The same for HTTP/1.1 and HTTP/2: `Host` is set to the upstream's; `X-Forwarded-Host` to the authority the client
//! asked for (the request target's when it names one: HTTP/2's `:authority`, an absolute-form HTTP/1.1 target;
//! else `Host`); `X-Forwarded-Proto` to `http` (the proxy listens on plain TCP); the peer address is appended to
//! `X-Forwarded-For`; a client's `Forwarded`, `X-Real-IP` and other `X-Forwarded-*` (`-Port`, `-Prefix`, ...) are
//! removed. Behind a front end that sets these headers itself (Cloud Run, a load balancer terminating TLS), turn on
//! [`ProxyOptions::trust_forwarded_headers`]: the front end's headers are then kept, and `X-Forwarded-Host` and
//! `X-Forwarded-Proto` only filled in when absent.
//!
//! An unreachable upstream is answered with 502.
//!
//! The listener is served by [`idgate_serve::serve`] under [`ServerLimits`]: a header-read timeout (a silent or
//! slow client is closed), an idle timeout, a connection cap (further clients wait in the kernel's backlog) and a
//! request-body limit (`413` for a larger `Content-Length`; a larger streamed body never reaches the upstream
//! whole). A request waiting on a slow upstream is never cut.
//!
//! ```no_run
//! use idgate_core::config::Config;
//! use idgate_proxy::ProxyOptions;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_path("idgate.toml")?;
//! let layers = idgate_server::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let upstream = "http://127.0.0.1:3000".parse()?;
//! // Send on `stop` (e.g. on SIGTERM) to stop accepting and drain the requests in flight.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! idgate_proxy::serve(listener, upstream, layers, ProxyOptions::default(), async {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use idgate_core::identity::Caller;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use idgate_server::{CredentialHeader, Layers, RequireIdentityLayer};

/// `X-Appengine-Inbound-Appid`: the legacy App Identity header.
static X_APPENGINE_INBOUND_APPID: HeaderName = HeaderName::from_static("x-appengine-inbound-appid");
/// `X-Goog-Authenticated-User-Email`: IAP's unsigned convenience header, rebuilt from a verified assertion.
static X_GOOG_AUTHENTICATED_USER_EMAIL: HeaderName =
    HeaderName::from_static("x-goog-authenticated-user-email");

/// Why the proxy could not start or stopped serving. Print it with [`idgate_core::ErrorChain`]: the cause is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The upstream URL is unusable; the [`UpstreamUrlError`] says why.
    #[error("invalid upstream URL")]
    Upstream(#[source] UpstreamUrlError),
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why an upstream URL is not `http://host[:port][/path]`.
///
/// ```
/// use idgate_core::ErrorChain;
/// use idgate_proxy::{ProxyError, UpstreamUrlError};
///
/// let error = ProxyError::Upstream(UpstreamUrlError::QueryOrFragment);
/// assert_eq!(
///     ErrorChain(&error).to_string(),
///     "invalid upstream URL: the upstream URL may not have a query or fragment"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamUrlError {
    /// Not `http`: the upstream is a local plain-http service (the scheme is named).
    #[error("scheme {0:?} is not supported; the upstream is a local http:// service")]
    Scheme(String),
    /// A user name or password in the URL.
    #[error("credentials in the upstream URL are not supported")]
    Credentials,
    /// A query or a fragment in the URL.
    #[error("the upstream URL may not have a query or fragment")]
    QueryOrFragment,
    /// No host in the URL.
    #[error("no host")]
    NoHost,
    /// The host and port do not make a request authority.
    #[error("the host and port are not a valid authority")]
    Authority(#[source] http::uri::InvalidUri),
}

pub use idgate_serve::{LimitError, ServerLimits};

/// The caller's kind, for the upstream.
pub static X_IDGATE_CALLER_KIND: HeaderName = HeaderName::from_static("x-idgate-caller-kind");
/// The caller's verified email, for the upstream.
pub static X_IDGATE_CALLER_EMAIL: HeaderName = HeaderName::from_static("x-idgate-caller-email");
/// The caller's project, for the upstream.
pub static X_IDGATE_CALLER_PROJECT: HeaderName = HeaderName::from_static("x-idgate-caller-project");

const CALLER_HEADER_PREFIX: &str = "x-idgate-caller-";

/// Hop-by-hop headers (RFC 9110 §7.6.1). Every `Proxy-*` header (credentials and settings meant for this hop) and
/// `Proxy` itself (which CGI turns into `HTTP_PROXY`, an outbound proxy setting: "httpoxy") go too.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy",
];

/// The prefix of every `Proxy-*` header.
const PROXY_HEADER_PREFIX: &str = "proxy-";

/// How the proxy serves: its listener's [`ServerLimits`], and whether it trusts a front end's forwarding headers.
/// The default suits a proxy that clients reach directly.
///
/// ```
/// use std::time::Duration;
/// use idgate_proxy::{ProxyOptions, ServerLimits};
///
/// let options = ProxyOptions::default()
///     .limits(ServerLimits::default().with_idle_timeout(Duration::from_secs(30))?)
///     .trust_forwarded_headers(true); // only behind Cloud Run or a TLS-terminating load balancer
/// assert!(options.trusts_forwarded_headers());
/// # Ok::<(), idgate_proxy::LimitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    trust_forwarded_headers: bool,
    limits: ServerLimits,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            trust_forwarded_headers: false,
            limits: proxied(ServerLimits::default()),
        }
    }
}

/// Descriptors one proxied connection may hold: the client's and an upstream one.
const DESCRIPTORS_PER_CONNECTION: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(2) {
    Some(n) => n,
    None => unreachable!(),
};

/// `limits` for a proxy: see [`DESCRIPTORS_PER_CONNECTION`].
fn proxied(limits: ServerLimits) -> ServerLimits {
    limits.with_descriptors_per_connection(DESCRIPTORS_PER_CONNECTION)
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
        self.limits = proxied(limits);
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
    /// Requests in flight to the upstream; see [`router_with_options`].
    budget: Arc<Semaphore>,
    options: ProxyOptions,
    /// The legacy header is trusted: the service says it sits behind App Engine's front end.
    behind_app_engine: bool,
}

/// Serves the authenticating proxy on `listener` with `options` (its limits among them) until `shutdown` completes,
/// then finishes the requests in flight (at most [`ServerLimits::drain_timeout`]).
///
/// `upstream` is an `http://` URL; its path, if any, prefixes every forwarded path. See the [module docs](self).
///
/// # Errors
///
/// [`ProxyError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`; [`ProxyError::Io`]
/// when serving fails.
pub async fn serve<F>(
    listener: TcpListener,
    upstream: Url,
    layers: Layers,
    options: ProxyOptions,
    shutdown: F,
) -> Result<(), ProxyError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = options.limits.clone();
    let router = router_with_options(&upstream, &layers, options)?;
    idgate_serve::serve(listener, router, limits, shutdown).await?;
    Ok(())
}

/// The proxy as an axum [`Router`] (the layers applied), for embedding or testing. Needs
/// `into_make_service_with_connect_info::<SocketAddr>()` to fill `X-Forwarded-For`.
///
/// # Errors
///
/// [`ProxyError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`.
pub fn router(upstream: &Url, layers: &Layers) -> Result<Router, ProxyError> {
    router_with_options(upstream, layers, ProxyOptions::default())
}

/// [`router`] with explicit [`ProxyOptions`].
///
/// # Errors
///
/// [`ProxyError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`.
pub fn router_with_options(
    upstream: &Url,
    layers: &Layers,
    options: ProxyOptions,
) -> Result<Router, ProxyError> {
    if upstream.scheme() != "http" {
        return Err(ProxyError::Upstream(UpstreamUrlError::Scheme(
            upstream.scheme().to_owned(),
        )));
    }
    if !upstream.username().is_empty() || upstream.password().is_some() {
        return Err(ProxyError::Upstream(UpstreamUrlError::Credentials));
    }
    if upstream.query().is_some() || upstream.fragment().is_some() {
        return Err(ProxyError::Upstream(UpstreamUrlError::QueryOrFragment));
    }
    let host = upstream
        .host_str()
        .ok_or(ProxyError::Upstream(UpstreamUrlError::NoHost))?;
    let authority = match upstream.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let authority = authority
        .parse()
        .map_err(|e| ProxyError::Upstream(UpstreamUrlError::Authority(e)))?;
    // Upstream connections are budgeted like client ones: no more requests in flight to the upstream (and so no
    // more upstream connections, in use or idle) than the connection cap, however many HTTP/2 streams the clients
    // open. Without it one client could open an upstream connection per stream and run the process out of
    // descriptors.
    let budget = options.limits.fitted_max_connections();
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(budget)
        .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build_http();
    let state = Arc::new(Upstream {
        client,
        budget: Arc::new(Semaphore::new(budget)),
        scheme: http::uri::Scheme::HTTP,
        authority,
        base_path: upstream.path().trim_end_matches('/').to_owned(),
        options,
        behind_app_engine: layers
            .identity()
            .is_some_and(RequireIdentityLayer::trusts_legacy_header),
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
    // The request target's authority when it has one (HTTP/2's `:authority`, an HTTP/1.1 absolute-form target:
    // RFC 9112 §3.2.2 says it wins over `Host`), else the `Host` header.
    let authority = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| parts.headers.get(header::HOST).cloned());
    let headers = &mut parts.headers;
    strip_unverified_credentials(headers, admitted_by, upstream.behind_app_engine);
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
    match upstream
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // The upstream connection is busy until its response body is read or dropped: so is the share.
            Response::from_parts(
                parts,
                Body::new(Budgeted {
                    body,
                    _share: share,
                }),
            )
        }
        Err(error) => {
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
    }
}

/// How long an idle upstream connection is kept for reuse.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pin_project! {
    /// An upstream response body with the share of the upstream budget its connection holds, given back when the
    /// body is read to the end or dropped.
    struct Budgeted<B> {
        #[pin]
        body: B,
        _share: OwnedSemaphorePermit,
    }
}

impl<B: http_body::Body> http_body::Body for Budgeted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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
    remove_where(headers, |name| name.starts_with(PROXY_HEADER_PREFIX));
}

/// Removes every header whose (lower-case) name satisfies `doomed`.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// IAP's unsigned identity headers (`X-Goog-Authenticated-User-Email` / `-Id`): forgeable by anyone who reaches the
/// service without passing through IAP, so a client's copies never reach the upstream.
const IAP_PLAIN_HEADER_PREFIX: &str = "x-goog-authenticated-user-";

/// App Engine's platform headers (`X-Appengine-Cron`, `-QueueName`, `-User-Email`, `-User-Is-Admin`,
/// `-Inbound-Appid`, ...): legacy apps admit cron and task handlers and administrators by them, and only App
/// Engine's front end (which strips client copies) makes them true.
const APP_ENGINE_HEADER_PREFIX: &str = "x-appengine-";

/// The prefix of `X-Forwarded-Host`, `-Proto`, `-For`, `-Port`, `-Prefix`, ...
const FORWARDED_HEADER_PREFIX: &str = "x-forwarded-";

/// Names (already lower case, as `http` stores them) whose meaning an upstream could confuse with identity, by prefix.
const PROTECTED_PREFIXES: [&str; 4] = [
    CALLER_HEADER_PREFIX,
    IAP_PLAIN_HEADER_PREFIX,
    APP_ENGINE_HEADER_PREFIX,
    FORWARDED_HEADER_PREFIX,
];

/// ... and exactly: credentials, and the forwarding headers the proxy sets itself.
const PROTECTED_NAMES: [&str; 5] = [
    "authorization",
    "x-serverless-authorization",
    "x-goog-iap-jwt-assertion",
    "x-real-ip",
    "forwarded",
];

/// Whether `name` (lower case) is another spelling of a protected name: the same letters and digits, with any other
/// byte standing where the protected name has `-`. CGI, WSGI and PHP read `_` as `-`; lighttpd's CGI/FastCGI/SCGI
/// mapping reads every byte that is not a letter or digit as `_`, so `X.Idgate.Caller.Email` and
/// `X+Idgate+Caller+Email` reach the application as `HTTP_X_IDGATE_CALLER_EMAIL` too.
fn folds_to_protected(name: &str) -> bool {
    let folds_to = |target: &str, prefix: bool| {
        let n = name.len();
        let t = target.len();
        (if prefix { n >= t } else { n == t })
            && name
                .bytes()
                .zip(target.bytes())
                .all(|(a, b)| a == b || (b == b'-' && !a.is_ascii_alphanumeric()))
    };
    PROTECTED_PREFIXES.iter().any(|p| folds_to(p, true))
        || PROTECTED_NAMES.iter().any(|p| folds_to(p, false))
}

/// Whether `name` (lower case) is spelt with a byte other than a letter, a digit or `-`.
fn is_respelled(name: &str) -> bool {
    name.bytes()
        .any(|b| !b.is_ascii_alphanumeric() && b != b'-')
}

/// Removes what no client may send in any spelling: our caller headers, and every other spelling of an identity,
/// credential or forwarding header (see the [module docs](self)). The canonical spellings are for the layers to
/// read and for the second step of the clean-up to judge.
fn strip_spoofable(headers: &mut HeaderMap) {
    remove_where(headers, |name| {
        name.starts_with(CALLER_HEADER_PREFIX) || (is_respelled(name) && folds_to_protected(name))
    });
}

/// After the layers: IAP's plain headers always go (they are set again from a verified assertion); the legacy
/// header and the bearer headers stay only when they are the credential idgate verified. App Engine's other
/// platform headers stay only behind App Engine's front end (`behind_app_engine`: the legacy header is trusted),
/// which strips client copies.
fn strip_unverified_credentials(
    headers: &mut HeaderMap,
    admitted_by: Option<CredentialHeader>,
    behind_app_engine: bool,
) {
    remove_where(headers, |name| name.starts_with(IAP_PLAIN_HEADER_PREFIX));
    if !behind_app_engine {
        remove_where(headers, |name| {
            name.starts_with(APP_ENGINE_HEADER_PREFIX) && name != X_APPENGINE_INBOUND_APPID.as_str()
        });
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
        // Proxy-fix middleware builds URLs from any of these (`-Port`, `-Prefix`, `X-Real-IP`): none is the client's
        // to set. `X-Forwarded-For` is a chain the peer is appended to.
        remove_where(headers, |name| {
            (name.starts_with(FORWARDED_HEADER_PREFIX) && name != "x-forwarded-for")
                || name == "x-real-ip"
                || name == "forwarded"
        });
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
            "x.idgate.caller.email",
            "x+goog+authenticated+user+email",
            "x~appengine~inbound~appid",
            "x.serverless.authorization",
            "x_appengine_cron",
            "x.appengine.user.is.admin",
            "x_forwarded_port",
            "x_real_ip",
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
            "x.request.id",
            "xappengine-cron",
            "x-idgatecaller-email",
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
            let behind_app_engine = admitted_by == Some(CredentialHeader::AppEngineInboundAppid);
            strip_unverified_credentials(&mut h, admitted_by, behind_app_engine);
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
        // App Engine's platform headers: only behind its front end, which strips client copies.
        for (behind_app_engine, kept) in [(false, 0), (true, 2)] {
            let mut h = HeaderMap::new();
            h.insert("x-appengine-cron", HeaderValue::from_static("true"));
            h.insert("x-appengine-user-is-admin", HeaderValue::from_static("1"));
            strip_unverified_credentials(&mut h, None, behind_app_engine);
            assert_eq!(h.len(), kept, "behind App Engine: {behind_app_engine}");
        }
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
