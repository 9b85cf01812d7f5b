//! `--admin-listen ADDR`: the operator's port, separate from the one that serves traffic.
//!
//! | path | answer |
//! |---|---|
//! | `GET /metrics` | every idgate metric (`docs/metrics.md`) in the Prometheus text format |
//! | `GET /healthz` | `200 ok` while the process serves: liveness |
//! | `GET /readyz` | `200` when every check passes, else `503`; a JSON body names each check and its result |
//!
//! The admin routes are never served on the proxied port: a client of the service cannot read the metrics or
//! probe readiness, and an upstream path named `/metrics` is the upstream's. Bind it to loopback, or to an address
//! only the platform's probes and the metrics scraper reach.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::net::TcpListener;

use super::Error;

/// Histogram buckets of every `_seconds` histogram, in seconds: a memo hit (µs) to a slow Google round trip (s).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorder's upkeep runs (it bounds the memory histograms hold between scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// How long a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus recorder, installed as the process's global `metrics` recorder.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    handle: PrometheusHandle,
}

impl Recorder {
    /// Installs the recorder and registers the descriptions of idgate's metrics. Call it before building the gates:
    /// layers and verifiers take their metric handles when they are built.
    pub(crate) fn install() -> Result<Self, Error> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .map_err(|e| format!("configuring the metrics recorder: {e}"))?
            .install_recorder()
            .map_err(|e| format!("installing the metrics recorder: {e}"))?;
        idgate_server::metrics::describe();
        idgate_signin::metrics::describe();
        idgate_client::metrics::describe();
        describe_own();
        Ok(Self { handle })
    }
}

/// The binary's own metrics (the emulator's requests).
pub(crate) const EMULATOR_REQUESTS_TOTAL: &str = "idgate_emulator_requests_total";

fn describe_own() {
    metrics::describe_counter!(
        EMULATOR_REQUESTS_TOTAL,
        "Requests the emulator answered, by route (its path template) and status code."
    );
}

/// One readiness check's outcome: `Ok` or why not, for a person.
pub(crate) type CheckResult = Result<(), String>;

/// A readiness check, run on every `/readyz`.
pub(crate) type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = CheckResult> + Send>> + Send + Sync>;

/// What the admin routes serve from.
#[derive(Clone)]
pub(crate) struct Admin {
    recorder: Recorder,
    /// Run before each scrape: refreshes gauges computed from state (a key set's age), not from events.
    before_scrape: Arc<dyn Fn() + Send + Sync>,
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field(
                "checks",
                &self.checks.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Admin {
    pub(crate) fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            before_scrape: Arc::new(|| {}),
            checks: Vec::new(),
        }
    }

    pub(crate) fn before_scrape(mut self, refresh: impl Fn() + Send + Sync + 'static) -> Self {
        self.before_scrape = Arc::new(refresh);
        self
    }

    /// Adds a readiness check named `name`.
    pub(crate) fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .route(
                "/healthz",
                get(|| async { no_store((StatusCode::OK, "ok")) }),
            )
            .route("/readyz", get(readiness))
            .with_state(Arc::new(self))
    }

    /// Binds `addr` now (a taken port fails the start, not the first scrape) and serves the admin routes until
    /// `shutdown`, with the recorder's upkeep alongside. Returns the bound address.
    pub(crate) async fn start(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<SocketAddr, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding --admin-listen {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let handle = self.recorder.handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
        let router = self.router();
        // The admin port gets the same protection as any listener facing a network: a silent client is closed.
        let limits = idgate_serve::ServerLimits::default();
        tokio::spawn(async move {
            if let Err(error) = idgate_serve::serve(listener, router, limits, shutdown).await {
                tracing::error!(%error, "the admin listener stopped");
            }
        });
        tracing::info!(admin_listen = %local, "admin listener ready: /metrics, /healthz, /readyz");
        Ok(local)
    }
}

fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn scrape(State(admin): State<Arc<Admin>>) -> Response {
    (admin.before_scrape)();
    let body = admin.recorder.handle.render();
    no_store((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    ))
}

async fn readiness(State(admin): State<Arc<Admin>>) -> Response {
    let mut results = serde_json::Map::new();
    let mut ready = true;
    // Concurrently: a slow upstream check does not delay the others.
    let outcomes = futures_util::future::join_all(admin.checks.iter().map(|(name, check)| {
        let check = Arc::clone(check);
        async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
            };
            (*name, outcome)
        }
    }))
    .await;
    for (name, outcome) in outcomes {
        let value = match outcome {
            Ok(()) => "ok".to_owned(),
            Err(why) => {
                ready = false;
                why
            }
        };
        results.insert(name.to_owned(), value.into());
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": ready, "checks": results }).to_string();
    no_store((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    ))
}

/// A readiness check that a TCP connection to `host:port` opens: the upstream is listening. (Not an HTTP request:
/// the upstream's paths are its own, and a probe must not have effects there.)
pub(crate) async fn tcp_reachable(host: String, port: u16) -> CheckResult {
    match tokio::net::TcpStream::connect((host.as_str(), port)).await {
        Ok(_) => Ok(()),
        Err(error) => Err(format!("cannot connect to {host}:{port}: {error}")),
    }
}
