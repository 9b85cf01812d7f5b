//! What the sign-in records through the [`metrics`](https://docs.rs/metrics) facade (feature **`metrics`**, off by
//! default: without it nothing is recorded and `metrics` is not a dependency). Install the exporter before building
//! the [`SignIn`](crate::SignIn): the store's handles are taken then.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `idgate_signin_sign_ins_total` | counter | | sign-ins completed (a session started) |
//! | `idgate_signin_callback_failures_total` | counter | `reason` | callbacks that did not sign anyone in, by [`SignInError::reason`](crate::SignInError::reason) (`access_denied`, `not_allowed`, `unknown_state`, `session_store`, ...) |
//! | `idgate_signin_sign_outs_total` | counter | `scope` = `session` \| `everywhere` | logouts completed |
//! | `idgate_signin_store_seconds` | histogram | `op` = `create` \| `save` \| `load` \| `delete` | time of each session-store operation, failed ones included |
//! | `idgate_signin_store_errors_total` | counter | `op` | session-store operations that failed |
//!
//! No label holds an email, a session ID or a token.

/// `idgate_signin_sign_ins_total`.
pub const SIGN_INS_TOTAL: &str = "idgate_signin_sign_ins_total";
/// `idgate_signin_callback_failures_total{reason}`.
pub const CALLBACK_FAILURES_TOTAL: &str = "idgate_signin_callback_failures_total";
/// `idgate_signin_sign_outs_total{scope}`.
pub const SIGN_OUTS_TOTAL: &str = "idgate_signin_sign_outs_total";
/// `idgate_signin_store_seconds{op}`.
pub const STORE_SECONDS: &str = "idgate_signin_store_seconds";
/// `idgate_signin_store_errors_total{op}`.
pub const STORE_ERRORS_TOTAL: &str = "idgate_signin_store_errors_total";

/// Registers the description (Prometheus `# HELP`) and unit of each metric above with the installed recorder.
/// Optional: recording works without it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(SIGN_INS_TOTAL, "Sign-ins completed (a session started).");
    describe_counter!(
        CALLBACK_FAILURES_TOTAL,
        "Sign-in callbacks that signed nobody in, by stable reason."
    );
    describe_counter!(
        SIGN_OUTS_TOTAL,
        "Logouts completed, by scope (session, everywhere)."
    );
    describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "Time of each session-store operation."
    );
    describe_counter!(STORE_ERRORS_TOTAL, "Session-store operations that failed.");
}

pub(crate) fn signed_in() {
    #[cfg(feature = "metrics")]
    metrics::counter!(SIGN_INS_TOTAL).increment(1);
}

pub(crate) fn callback_failed(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(CALLBACK_FAILURES_TOTAL, "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

pub(crate) fn signed_out(everywhere: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(SIGN_OUTS_TOTAL, "scope" => if everywhere { "everywhere" } else { "session" }).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = everywhere;
}

/// A store operation.
#[derive(Clone, Copy)]
pub(crate) enum StoreOp {
    Create = 0,
    Save = 1,
    Load = 2,
    Delete = 3,
}

/// The store's handles, taken when the store is wrapped (at build).
#[cfg(feature = "metrics")]
pub(crate) struct StoreMetrics {
    seconds: [metrics::Histogram; 4],
    errors: [metrics::Counter; 4],
}

#[cfg(not(feature = "metrics"))]
pub(crate) struct StoreMetrics;

const OPS: [&str; 4] = ["create", "save", "load", "delete"];

impl StoreMetrics {
    #[cfg(feature = "metrics")]
    pub(crate) fn new() -> Self {
        Self {
            seconds: OPS.map(|op| metrics::histogram!(STORE_SECONDS, "op" => op)),
            errors: OPS.map(|op| metrics::counter!(STORE_ERRORS_TOTAL, "op" => op)),
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new() -> Self {
        let _ = OPS;
        Self
    }

    /// Runs `op`, timing it.
    pub(crate) async fn time<T, E>(
        &self,
        op: StoreOp,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        #[cfg(feature = "metrics")]
        {
            let at = std::time::Instant::now();
            let out = work.await;
            self.seconds[op as usize].record(at.elapsed());
            if out.is_err() {
                self.errors[op as usize].increment(1);
            }
            out
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = op;
            work.await
        }
    }
}
