//! The authenticating sidecar as a library: a reverse proxy that puts idgate's [`Gates`] in front of any HTTP
//! upstream: the service-to-service and IAP [`Layers`], Sign in with Google ([`SignIn`], the oauth2-proxy model), or
//! both, admitted by the credential each request presents.
//!
//! [`serve`] accepts connections on a listener, runs every request through the gates, and forwards the admitted
//! ones to the upstream, streaming bodies both ways (a response whose `Content-Length` is at most 64 KiB is read up to
//! its first frame before its head is sent on, so head and body leave in one write; a streamed or larger one is
//! handed on at once). The upstream learns who called from these headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Idgate-Caller-Kind` | `service_account`, `user`, `app_engine_app` or `iap_user` |
//! | `X-Idgate-Caller-Email` | the verified email (absent for an App Engine app) |
//! | `X-Idgate-Caller-Project` | the caller's project ID or number, when its identity reveals one |
//! | `X-Idgate-Caller-Credential` | what admitted it: `id_token` (`Authorization`/`X-Serverless-Authorization`), `app_engine_header` (the trusted legacy header), `iap_assertion` or `session` (signed in through the proxy) |
//!
//! # Sign-in gateway
//!
//! With sign-in ([`Gates::from_signin`], or `[signin]` in the configuration), the proxy serves the login (`GET`),
//! callback (`GET`) and logout (`POST`) routes itself: they are never forwarded. Every other path is forwarded only
//! for a signed-in user the `[signin.allow]` list admits: a signed-out page navigation is sent to login (`302`, back
//! to the page afterwards), a script gets `401`, a refused account `403`, a session-store failure `503`. Paths in
//! `[signin] exempt_paths` ([`Gates::signin_exempt_path`]) are forwarded without sign-in (with the caller headers
//! when the browser happens to be signed in). The signed-in user reaches the upstream as `X-Idgate-Caller-Kind: user`
//! and `-Email`, like any other caller.
//!
//! idgate's own cookies never reach the upstream: the session cookie ([`SignIn::session_cookie_name`]) and the
//! sign-in attempt cookies ([`SignIn::attempt_cookie_prefix`]) are removed from the `Cookie` header on every
//! forwarded path, compared as the session layer reads them (percent-decoded, any case), so the upstream cannot
//! replay a user's session; other cookies pass unchanged. Nor can the upstream set them: its `Set-Cookie` headers
//! naming one of them are removed from its response (a planted session ID would be session fixation).
//!
//! [`SignIn::session_cookie_name`]: idgate_signin::SignIn::session_cookie_name
//! [`SignIn::attempt_cookie_prefix`]: idgate_signin::SignIn::attempt_cookie_prefix
//!
//! # Sign-in next to tokens and IAP: by credential
//!
//! One upstream can take browsers (a session), services (Google-signed ID tokens, `[inbound]`) and IAP users
//! (`[iap]`) at once with `[admission] mode = "by_credential"` ([`Admission::ByCredential`]): each request is judged by
//! the one gate its credential names, with that gate's allowlist alone: an IAP assertion by `[iap]`, else a bearer
//! token by `[inbound]`, else the session by `[signin]` (`302`/`401` without one). A credential that fails is a
//! refusal, never a fall-through: a forged token next to a valid session cookie is a `401`. See
//! [`idgate_server::by_credential`] for the precedence and why. Stacking sign-in with another gate
//! ([`Admission::All`], the default) is refused at startup ([`GatesError::StackedSignIn`], naming the line of
//! `[signin]`): no request carries a session and a token at once.
//!
//! With `[inbound]` configured, the bearer headers are idgate's: a request admitted by an IAP assertion or a session
//! reaches the upstream without any `Authorization` or `X-Serverless-Authorization` (none was verified).
//!
//! [`Admission::ByCredential`]: idgate_core::config::Admission::ByCredential
//! [`Admission::All`]: idgate_core::config::Admission::All
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
//! - IAP's signed `X-Goog-Iap-Jwt-Assertion` is removed unless the IAP gate verified it and admitted the request
//!   (then it is forwarded as it came, for an upstream that checks it again): only IAP sends it, so an unchecked
//!   copy is never the application's own, and an upstream that trusts it as IAP's word must not get one;
//! - `X-Appengine-Inbound-Appid` is removed unless the legacy header is trusted **and** was the credential that
//!   admitted this request: a legacy App Engine app behind the sidecar reads it before anything else;
//! - App Engine's other platform headers (`X-Appengine-Cron`, `-QueueName`, `-User-Email`, `-User-Is-Admin`, ...),
//!   by which legacy apps admit cron jobs, tasks and administrators, are removed unless the legacy header is
//!   trusted (the service then sits behind App Engine's front end, which strips client copies);
//! - the `Cookie` fields are joined into one header with `"; "` (HTTP/2 clients send a field per cookie; RFC 9113
//!   §8.2.3), without idgate's session and sign-in attempt cookies (see [Sign-in gateway](#sign-in-gateway));
//! - when `[inbound]` admitted the request, the upstream receives **only the credential header idgate verified**
//!   ([`CredentialHeader`](idgate_server::CredentialHeader)): admitted by `X-Serverless-Authorization`, the
//!   request's `Authorization` is removed; admitted by the legacy header, both bearer headers are removed; admitted
//!   by another credential (an IAP assertion, a session) while `[inbound]` is configured, both are removed. On
//!   exempt paths with no caller, and when `[inbound]` is not configured, `Authorization` and
//!   `X-Serverless-Authorization` are not idgate's and pass untouched.
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
//! # Tracing
//!
//! Every request runs in one server span, **`idgate.proxy.request`** (`INFO`, target `idgate::proxy`), named and
//! filled as OpenTelemetry's HTTP conventions ask, so `tracing-opentelemetry` exports it as the request's server
//! span; the gates' `idgate.authenticate` span ([`idgate_server::trace`]) and the upstream call's client span,
//! **`idgate.proxy.upstream`**, are its children.
//!
//! | span | field | value |
//! |---|---|---|
//! | `idgate.proxy.request` | `otel.name` | the method (`GET`), `HTTP` for a method outside the standard nine |
//! | | `otel.kind` | `server` |
//! | | `http.request.method` | the method, `_OTHER` for one outside the standard nine |
//! | | `url.path` | the path, **never the query** (it can hold an OAuth code or state) |
//! | | `network.protocol.version` | `1.0`, `1.1`, `2` |
//! | | `client.address` | the peer's IP address |
//! | | `user_agent.original` | `User-Agent`, at most 256 bytes |
//! | | `http.response.status_code` | the status, when the response head is ready |
//! | | `http.server.request.duration` | seconds (`f64`) from the request to the response head |
//! | | `otel.status_code` | `ERROR` on a 5xx |
//! | `idgate.proxy.upstream` | `otel.name`, `http.request.method` | as above |
//! | | `otel.kind` | `client` |
//! | | `server.address`, `server.port` | the upstream's host and port |
//! | | `http.response.status_code` | the upstream's status |
//! | | `otel.status_code` | `ERROR` on a 5xx or when the upstream did not answer |
//!
//! No span field holds a header value other than the user agent: no token, assertion, cookie or query. The
//! workspace's spans are listed together in `docs/tracing.md`.
//!
//! ```no_run
//! use idgate_core::config::Config;
//! use idgate_proxy::ProxyOptions;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_path("idgate.toml")?;
//! // [inbound], [iap] and [signin] as the file asks, keys prefetched, the combination checked.
//! let gates = idgate_proxy::Gates::from_config(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let upstream = "http://127.0.0.1:3000".parse()?;
//! // Send on `stop` (e.g. on SIGTERM) to stop accepting and drain the requests in flight.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! idgate_proxy::serve(listener, upstream, gates, ProxyOptions::default(), async {
//!     let _ = stopped.await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod caller;
mod clean;
mod forwarding;
mod gates;
mod pool;
#[cfg(test)]
mod tests;
mod trace;
mod upstream;

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::header::HeaderName;
use idgate_core::config::Admission;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use url::Url;

use idgate_server::{Layers, RequireIdentityLayer};
use idgate_signin::{RequireSignInLayer, SignIn};

pub use gates::{Gates, GatesError, describe};

use crate::clean::clean_before_layers;
use crate::pool::Pools;
use crate::upstream::{Upstream, forward};

/// Why the proxy could not start or stopped serving. Print it with [`idgate_core::ErrorChain`]: the cause is its
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The upstream URL is unusable; the [`UpstreamUrlError`] says why.
    #[error("invalid upstream URL")]
    Upstream(#[source] UpstreamUrlError),
    /// The [`Gates`] cannot guard an upstream; the [`GatesError`] says why.
    #[error(transparent)]
    Gates(#[from] GatesError),
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
/// The credential that admitted the caller (`id_token`, `app_engine_header`, `iap_assertion` or `session`), for
/// the upstream.
pub static X_IDGATE_CALLER_CREDENTIAL: HeaderName =
    HeaderName::from_static("x-idgate-caller-credential");

const CALLER_HEADER_PREFIX: &str = "x-idgate-caller-";

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
    threads: Option<NonZeroUsize>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            trust_forwarded_headers: false,
            limits: proxied(ServerLimits::default()),
            threads: None,
        }
    }
}

/// Descriptors one proxied connection may hold: the client's and an upstream one.
const DESCRIPTORS_PER_CONNECTION: NonZeroUsize = match NonZeroUsize::new(2) {
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

    /// How many threads [`serve`] serves on. Default: one per core the process may use
    /// ([`std::thread::available_parallelism`]), as `#[tokio::main]` starts workers.
    #[must_use]
    pub fn threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The threads [`serve`] serves on; see [`threads`](Self::threads).
    pub fn serving_threads(&self) -> NonZeroUsize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
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

/// Serves the authenticating proxy on `listener` with `options` (its limits among them) until `shutdown` completes,
/// then finishes the requests in flight (at most [`ServerLimits::drain_timeout`]).
///
/// It serves on threads of its own ([`ProxyOptions::threads`], one per core by default), each with a
/// single-threaded runtime, the connections it accepted and a pool of upstream connections
/// ([`idgate_serve::serve_on_threads`]), as nginx's workers do: the gates' caches, the sessions and the upstream
/// budget are shared. `shutdown` is polled on the caller's runtime.
///
/// `upstream` is an `http://` URL; its path, if any, prefixes every forwarded path. See the [module docs](self).
///
/// # Errors
///
/// [`ProxyError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`; [`ProxyError::Gates`]
/// for [`Gates`] that fail their [`check`](Gates::check); [`ProxyError::Io`] when serving fails.
pub async fn serve<F>(
    listener: TcpListener,
    upstream: Url,
    gates: impl Into<Gates>,
    options: ProxyOptions,
    shutdown: F,
) -> Result<(), ProxyError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = options.limits.clone();
    let threads = options.serving_threads();
    let proxy = Proxy::new(&upstream, gates.into(), options, Some(threads))?;
    idgate_serve::serve_on_threads(listener, threads, move || proxy.router(), limits, shutdown)
        .await?;
    Ok(())
}

/// The proxy as an axum [`Router`] (the gates applied, the sign-in routes served), for embedding or testing.
/// `gates` is a [`Gates`] or an [`idgate_server::Layers`]. Needs `into_make_service_with_connect_info::<SocketAddr>()`
/// to fill `X-Forwarded-For`.
///
/// # Errors
///
/// [`ProxyError::Upstream`] for an upstream URL that is not `http://host[:port][/path]`; [`ProxyError::Gates`]
/// for [`Gates`] that fail their [`check`](Gates::check).
pub fn router(upstream: &Url, gates: impl Into<Gates>) -> Result<Router, ProxyError> {
    router_with_options(upstream, gates, ProxyOptions::default())
}

/// [`router`] with explicit [`ProxyOptions`].
///
/// # Errors
///
/// As [`router`].
pub fn router_with_options(
    upstream: &Url,
    gates: impl Into<Gates>,
    options: ProxyOptions,
) -> Result<Router, ProxyError> {
    Ok(Proxy::new(upstream, gates.into(), options, None)?.router())
}

/// A checked proxy configuration, from which each serving thread makes its [`Router`]: the gates and the upstream's
/// budget are shared, the upstream connection pool is the thread's own.
struct Proxy {
    guard: Guard,
    /// The legacy header is trusted: the service says it sits behind App Engine's front end.
    behind_app_engine: bool,
    /// `[inbound]` is configured: the bearer headers are idgate's.
    inbound: bool,
    /// With sign-in: idgate's cookies, never forwarded.
    idgate_cookies: Option<IdgateCookies>,
    pools: Arc<Pools>,
    authority: http::uri::Authority,
    base_path: String,
    budget: Arc<Semaphore>,
    options: ProxyOptions,
}

impl Proxy {
    /// `threads`: how many threads it serves on ([`idgate_serve::serve_on_threads`]), `None` for the caller's
    /// runtime; they hold descriptors too, so they lower the upstream budget.
    fn new(
        upstream: &Url,
        gates: Gates,
        options: ProxyOptions,
        threads: Option<NonZeroUsize>,
    ) -> Result<Self, ProxyError> {
        gates.check()?;
        let layers = gates.layers.as_ref();
        let behind_app_engine = layers
            .and_then(|l| l.identity())
            .is_some_and(RequireIdentityLayer::trusts_legacy_header);
        let inbound = layers.is_some_and(|l| l.identity().is_some());
        let idgate_cookies = gates.signin.as_ref().map(|(signin, _)| IdgateCookies {
            session: signin.session_cookie_name(),
            attempt_prefix: signin.attempt_cookie_prefix(),
        });
        let guard = match (gates.layers, gates.signin) {
            (Some(layers), None) => Guard::Layers(layers),
            (None, Some((signin, gate))) => Guard::SignIn(signin, gate),
            // `check` made sure the mode is by credential: the sign-in gate takes requests without a token.
            (Some(layers), Some((signin, gate))) => Guard::ByCredential(layers, signin, gate),
            (None, None) => return Err(GatesError::NothingConfigured.into()),
        };
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
        // more upstream connections, in use or idle, in every thread's pool) than the connection cap, however many
        // HTTP/2 streams the clients open. Without it one client could open an upstream connection per stream and run
        // the process out of descriptors.
        let budget = match threads {
            Some(threads) => options.limits.fitted_max_connections_on_threads(threads),
            None => options.limits.fitted_max_connections(),
        };
        let dial_host = match upstream.host() {
            // Bracketed in the URL and in `Host`, bare where a socket address is made of it.
            Some(url::Host::Ipv6(address)) => address.to_string(),
            _ => host.to_owned(),
        };
        let port = upstream.port_or_known_default().unwrap_or(80);
        Ok(Self {
            guard,
            behind_app_engine,
            inbound,
            idgate_cookies,
            pools: Pools::new(dial_host, port, &authority, budget),
            budget: Arc::new(Semaphore::new(budget)),
            authority,
            base_path: upstream.path().trim_end_matches('/').to_owned(),
            options,
        })
    }

    /// The proxy's router, with an upstream connection pool of its own.
    fn router(&self) -> Router {
        let state = Arc::new(Upstream {
            pool: self.pools.pool(),
            budget: Arc::clone(&self.budget),
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            options: self.options.clone(),
            behind_app_engine: self.behind_app_engine,
            inbound: self.inbound,
            idgate_cookies: self.idgate_cookies,
        });
        // The handler stays a method router's (`fallback`, not `fallback_service`): axum finishes a response only
        // there, emptying a `HEAD` response's body and filling in `Content-Length`, and hyper's HTTP/2 server does
        // not drop a `HEAD` body itself. The layers are applied inside it.
        let forwarding = Router::new().fallback(forward).with_state(state);
        // Stacked with `ServiceBuilder` and applied at once: each `Router::layer` wraps the handler's route in one
        // more boxed service, cloned and boxed again for every request, and axum's `map_request` boxes and clones
        // besides. The clean-up runs before the layers see the request; the server span covers all of it.
        let outer = ServiceBuilder::new()
            .layer(trace::ServerSpanLayer)
            .map_request(clean_before_layers::<Body>);
        match &self.guard {
            Guard::Layers(layers) if layers.admission_mode() == Admission::ByCredential => {
                forwarding.layer(outer.layer(layers.by_credential()))
            }
            // Stacked as `Layers::apply` stacks them: IAP outermost.
            Guard::Layers(layers) => forwarding.layer(
                outer
                    .option_layer(layers.iap().cloned())
                    .option_layer(layers.identity().cloned()),
            ),
            // The sign-in routes are the proxy's own, outside the gate and never forwarded; the session layer wraps
            // them and the gate alike.
            Guard::SignIn(signin, gate) => forwarding
                .layer(gate.clone())
                .merge(signin.router())
                .layer(outer.layer(signin.layer())),
            Guard::ByCredential(layers, signin, gate) => forwarding
                .layer(layers.by_credential().no_credential(gate.clone()))
                .merge(signin.router())
                .layer(outer.layer(signin.layer())),
        }
    }
}

/// What a [`Proxy`] admits requests by: [`Gates`] after their [`check`](Gates::check), never none.
enum Guard {
    Layers(Layers),
    SignIn(SignIn, RequireSignInLayer),
    ByCredential(Layers, SignIn, RequireSignInLayer),
}

/// idgate's own cookies, never forwarded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdgateCookies {
    pub(crate) session: &'static str,
    pub(crate) attempt_prefix: &'static str,
}
