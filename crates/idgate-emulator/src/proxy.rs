//! [`IapProxy`]: Identity-Aware Proxy in front of any local upstream.
//!
//! Every request is forwarded to the upstream (any method, bodies streamed both ways) after the proxy
//! strips whatever `x-goog-iap-jwt-assertion` and `x-goog-authenticated-user-*` headers the client sent
//! (as IAP does) and adds its own: a freshly signed assertion for the configured user, and the plain
//! `x-goog-authenticated-user-email: accounts.google.com:EMAIL` / `-id: accounts.google.com:ID` headers.
//! Hop-by-hop headers (RFC 9110 §7.6.1, every header `Connection` names, `Proxy-Authorization` and
//! `Proxy-Authenticate`) are removed both ways, by the same [`remove_hop_by_hop`] as idgate's own proxy.
//!
//! The proxy mints an assertion for every request it forwards, so it keeps the emulator's Host rule (see the
//! [crate docs](crate#loopback-only)). Requests addressed to any other host get `403` and are not forwarded.
//!
//! ```
//! use idgate_emulator::{Emulator, IapProxy, IapUserSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start().await?;
//! // An upstream that echoes the assertion header back.
//! let app = axum::Router::new().route(
//!     "/",
//!     axum::routing::get(|h: axum::http::HeaderMap| async move {
//!         h.get("x-goog-iap-jwt-assertion").map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default()
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let upstream = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let proxy = IapProxy::start(&emulator, upstream, IapUserSpec::new("user@example.com")).await?;
//! let assertion = reqwest::Client::new()
//!     .get(proxy.url())
//!     .header("x-goog-iap-jwt-assertion", "forged")
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! assert_eq!(assertion.split('.').count(), 3);
//! assert_ne!(assertion, "forged");
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idgate_serve::headers::remove_hop_by_hop;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::emulator::{Emulator, ShutdownSignal};
use crate::error::EmulatorError;
use crate::host;
use crate::state::{Shared, read, write};
use crate::token::{TokenSpec, numeric_id};

/// The IAP assertion header.
pub const IAP_ASSERTION_HEADER: &str = "x-goog-iap-jwt-assertion";
/// IAP's plain email header (`accounts.google.com:EMAIL`).
pub const IAP_USER_EMAIL_HEADER: &str = "x-goog-authenticated-user-email";
/// IAP's plain user-id header (`accounts.google.com:ID`).
pub const IAP_USER_ID_HEADER: &str = "x-goog-authenticated-user-id";

/// The user an [`IapProxy`] authenticates every request as.
///
/// By default the assertion is a good one ([`TokenSpec::iap_user`] with the emulator's App Engine
/// audience); [`IapUserSpec::token`] lets a test bend it (expired, wrong audience, ...).
#[derive(Debug, Clone)]
#[must_use]
pub struct IapUserSpec {
    email: String,
    spec: TokenSpec,
}

impl IapUserSpec {
    /// The user `email`, with a good assertion.
    pub fn new(email: impl Into<String>) -> Self {
        let email = email.into();
        let spec = TokenSpec::iap_user(email.clone());
        Self { email, spec }
    }

    /// Adds `hd` to the assertion.
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.spec = self.spec.hosted_domain(domain);
        self
    }

    /// Adds `google.access_levels` to the assertion.
    pub fn access_levels<I, S>(mut self, levels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec = self.spec.access_levels(levels);
        self
    }

    /// Sets the assertion's `aud` (default: [`Emulator::iap_audience_app_engine`]).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.spec = self.spec.audience(audience);
        self
    }

    /// Bends the assertion with any [`TokenSpec`] modifier; the plain headers keep the user's email.
    pub fn token(mut self, bend: impl FnOnce(TokenSpec) -> TokenSpec) -> Self {
        self.spec = bend(self.spec);
        self
    }

    /// The user's email.
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }
}

#[derive(Debug)]
struct ProxyState {
    emulator: Arc<Shared>,
    upstream: Url,
    user: RwLock<IapUserSpec>,
    client: Client<HttpConnector, Body>,
}

/// A running IAP proxy on a loopback port; stops when dropped or on [`IapProxy::shutdown`].
/// See the [module docs](self) for an example.
#[derive(Debug)]
pub struct IapProxy {
    state: Arc<ProxyState>,
    local_addr: SocketAddr,
    url: Url,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl IapProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` as `user`, signing with `emulator`'s
    /// current IAP key.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Upstream`] unless `upstream` is an `http` URL with a host;
    /// [`EmulatorError::Bind`] if the socket cannot be bound.
    pub async fn start(
        emulator: &Emulator,
        upstream: Url,
        user: IapUserSpec,
    ) -> Result<Self, EmulatorError> {
        Self::start_with(
            emulator,
            upstream,
            user,
            |listener, app, shutdown| async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            },
        )
        .await
    }

    /// Like [`IapProxy::start`], but served by `serve` (see
    /// [`EmulatorBuilder::start_with`](crate::EmulatorBuilder::start_with)): `idgate emulator --iap-proxy` serves
    /// it with the same listener limits as the emulator.
    ///
    /// # Errors
    ///
    /// As [`IapProxy::start`].
    pub async fn start_with<S, F>(
        emulator: &Emulator,
        upstream: Url,
        user: IapUserSpec,
        serve: S,
    ) -> Result<Self, EmulatorError>
    where
        S: FnOnce(tokio::net::TcpListener, Router, ShutdownSignal) -> F,
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        if upstream.scheme() != "http"
            || upstream.host_str().is_none()
            || upstream.query().is_some()
        {
            return Err(EmulatorError::Upstream(upstream.to_string()));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let url = Url::parse(&format!("http://{local_addr}/"))?;
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let state = Arc::new(ProxyState {
            emulator: Arc::clone(&emulator.shared),
            upstream,
            user: RwLock::new(user),
            client,
        });
        // The proxy mints an assertion for every request, so it keeps the emulator's Host rule too.
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&emulator.shared.allowed_hosts),
                host::guard,
            ));
        let (shutdown_tx, mut stop) = watch::channel(false);
        let signal: ShutdownSignal = Box::pin(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        });
        let serving = serve(listener, app, signal);
        let task = tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::warn!(%error, "idgate IAP proxy stopped with an error");
            }
        });
        Ok(Self {
            state,
            local_addr,
            url,
            shutdown_tx,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// The address the proxy listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The upstream requests go to.
    #[must_use]
    pub fn upstream(&self) -> Url {
        self.state.upstream.clone()
    }

    /// Authenticates subsequent requests as `user`.
    pub fn set_user(&self, user: IapUserSpec) {
        *write(&self.state.user) = user;
    }

    /// Stops serving and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for IapProxy {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

fn bad_gateway(message: String) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The upstream URI for a request path and query.
fn upstream_uri(upstream: &Url, uri: &Uri) -> Result<Uri, String> {
    let base = upstream.as_str().trim_end_matches('/');
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{base}{path_and_query}")
        .parse::<Uri>()
        .map_err(|e| format!("cannot build the upstream URI: {e}"))
}

/// Whether `name` starts with `prefix` once every byte of `name` that is not a letter or digit is read as `-`.
fn folds_to_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| a == b || (b == b'-' && !a.is_ascii_alphanumeric()))
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let uri = match upstream_uri(&state.upstream, &parts.uri) {
        Ok(uri) => uri,
        Err(message) => return bad_gateway(message),
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    // Strip client-sent identity headers in every spelling an application could read as them (HeaderMap names are
    // already lowercase; CGI-style stacks fold `_`, lighttpd every byte that is not a letter or digit, into `-`).
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            folds_to_prefix(n, "x-goog-iap-jwt-assertion")
                || folds_to_prefix(n, "x-goog-authenticated-user-")
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let user = read(&state.user).clone();
    let assertion = match state.emulator.mint(&user.spec) {
        Ok(token) => token,
        Err(error) => return bad_gateway(format!("cannot mint the IAP assertion: {error}")),
    };
    let id = format!("accounts.google.com:{}", numeric_id(&user.email));
    let email = format!("accounts.google.com:{}", user.email);
    for (name, value) in [
        (IAP_ASSERTION_HEADER, assertion),
        (IAP_USER_EMAIL_HEADER, email),
        (IAP_USER_ID_HEADER, id),
    ] {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(name == IAP_ASSERTION_HEADER);
                headers.insert(name, v);
            }
            Err(_) => return bad_gateway(format!("cannot encode header {name}")),
        }
    }
    let request = http::Request::from_parts(parts, body);
    match state.client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => bad_gateway(format!("upstream request failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_joins_base_path_and_query() {
        let up = Url::parse("http://127.0.0.1:9/base/").expect("url");
        let uri: Uri = "/a/b?x=1".parse().expect("uri");
        assert_eq!(
            upstream_uri(&up, &uri).expect("joined").to_string(),
            "http://127.0.0.1:9/base/a/b?x=1"
        );
        let up = Url::parse("http://127.0.0.1:9").expect("url");
        assert_eq!(
            upstream_uri(&up, &"/".parse().expect("uri"))
                .expect("joined")
                .to_string(),
            "http://127.0.0.1:9/"
        );
    }
}
