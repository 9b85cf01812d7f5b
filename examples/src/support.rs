//! What every example needs and none is about: serving a router in the background, reading the emulator's
//! address from the environment, logging, Ctrl-C, and the self-tests' checks.

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use http::StatusCode;
use idgate_core::google::Endpoints;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

/// The examples' error type: anything, with a message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The examples' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The environment variable that points the examples at `idgate emulator` (e.g. `http://127.0.0.1:8085/`), as
/// for the `idgate` CLI. Unset: the real Google.
pub const GOOGLE_BASE_URL_VAR: &str = "IDGATE_GOOGLE_BASE_URL";

/// The environment variable that, set to `1`, runs an example's self-test instead of the example (as
/// `--self-test` does).
pub const SELF_TEST_VAR: &str = "IDGATE_EXAMPLES_SELF_TEST";

/// Whether the example was asked to check itself: `--self-test` on the command line, or
/// `IDGATE_EXAMPLES_SELF_TEST=1`.
pub fn self_test_requested() -> bool {
    std::env::args().any(|arg| arg == "--self-test")
        || std::env::var_os(SELF_TEST_VAR).is_some_and(|v| v == "1")
}

/// The command-line arguments after the program name, without `--self-test`.
pub fn args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|arg| arg != "--self-test")
        .collect()
}

/// Google's endpoints: all under `IDGATE_GOOGLE_BASE_URL` when it is set (the emulator), else the real Google.
///
/// # Errors
///
/// When `IDGATE_GOOGLE_BASE_URL` is set but not a URL.
pub fn google_endpoints() -> Result<Endpoints> {
    Ok(google_base_url()?.map_or_else(Endpoints::default, |base| Endpoints::under(&base)))
}

/// `IDGATE_GOOGLE_BASE_URL`, parsed, when it is set.
///
/// # Errors
///
/// When it is set but not a URL.
pub fn google_base_url() -> Result<Option<Url>> {
    match std::env::var(GOOGLE_BASE_URL_VAR) {
        Ok(base) if !base.is_empty() => Url::parse(&base)
            .map(Some)
            .map_err(|e| format!("{GOOGLE_BASE_URL_VAR}={base:?}: {e}").into()),
        _ => Ok(None),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: idgate's decisions and warnings, e.g. "reject
/// reason=audience_mismatch").
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,idgate=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Ends an example: on success, says so when it was a self-test; on failure, prints the error and its causes to
/// stderr and exits 1.
pub fn report(example: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => {
            if self_test_requested() {
                eprintln!("{example}: self-test passed");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{example}: error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C.
pub async fn shutdown_signal() {
    // If the handler cannot be installed, serve until killed.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Serves `app` on `listener` until Ctrl-C.
///
/// # Errors
///
/// When serving fails.
pub async fn serve_until_ctrl_c(listener: TcpListener, app: Router) -> Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// A router served in the background on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` on `listener` in a background task.
    ///
    /// # Errors
    ///
    /// When the listener has no local address.
    pub fn spawn(listener: TcpListener, app: Router) -> Result<Self> {
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).into_future().await;
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT`: the origin, and so the audience callers mint tokens for.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on `127.0.0.1:0`, for the self-tests.
///
/// # Errors
///
/// When no port can be bound.
pub async fn loopback_listener() -> Result<TcpListener> {
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

/// A self-test check: `Ok` when `what` answered `want`, else an error saying what happened instead.
///
/// # Errors
///
/// When `got != want`.
pub fn expect_status(what: &str, got: StatusCode, want: StatusCode) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected HTTP {want}, got HTTP {got}").into())
    }
}

/// A self-test check on a response body.
///
/// # Errors
///
/// When `body != want`.
pub fn expect_body(what: &str, body: &str, want: &str) -> Result<()> {
    if body == want {
        Ok(())
    } else {
        Err(format!("{what}: expected body {want:?}, got {body:?}").into())
    }
}
