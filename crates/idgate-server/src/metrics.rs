//! The decisions the layers take, through the [`metrics`](https://docs.rs/metrics) facade (feature **`metrics`**,
//! off by default: without it nothing is recorded and `metrics` is not a dependency). The application installs the
//! exporter, **before** building the layers: each layer takes its handles when it is built.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `idgate_decisions_total` | counter | `layer`, `outcome` = `admitted` \| `rejected` \| `unavailable`, `reason` | every decision a layer or an extractor takes |
//!
//! `layer`: `require_identity`, `require_iap`, `extract`. `reason`: for `admitted`, the credential that admitted the
//! request (`authorization`, `x-serverless-authorization`, `cloud_run_invoker_check`, `legacy_appengine_header`,
//! `iap_assertion`); otherwise the rejection's stable
//! [`reason()`](crate::IdentityRejection::reason) (`missing_credential`, `expired`, `not_allowed`, `keys_unavailable`,
//! ...). `unavailable` is a `5xx` answer (keys unavailable, a misconfigured route): alert on it. Never an email or a
//! token. The keys' and verification's own metrics are `idgate-core`'s (`idgate_core::metrics`).

/// `idgate_decisions_total{layer, outcome, reason}`.
pub const DECISIONS_TOTAL: &str = "idgate_decisions_total";

/// Registers the description (Prometheus `# HELP`) of each metric above with the installed recorder, and
/// `idgate-core`'s ([`idgate_core::metrics::describe`]). Optional: recording works without it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    idgate_core::metrics::describe();
    metrics::describe_counter!(
        DECISIONS_TOTAL,
        "Every admission decision, by layer, outcome (admitted, rejected, unavailable) and stable reason."
    );
}

/// The credentials a layer admits by, each with its counter taken when the layer was built.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct Admissions(Vec<(&'static str, metrics::Counter)>);

#[cfg(not(feature = "metrics"))]
#[derive(Debug)]
pub(crate) struct Admissions;

impl Admissions {
    /// Handles for `layer` admitting by each of `vias`.
    #[cfg(feature = "metrics")]
    pub(crate) fn new(layer: &'static str, vias: &[&'static str]) -> Self {
        Self(
            vias.iter()
                .map(|via| {
                    let counter = metrics::counter!(
                        DECISIONS_TOTAL, "layer" => layer, "outcome" => "admitted", "reason" => *via
                    );
                    (*via, counter)
                })
                .collect(),
        )
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_layer: &'static str, _vias: &[&'static str]) -> Self {
        Self
    }

    /// A request admitted by `via`.
    #[inline]
    pub(crate) fn admitted(&self, layer: &'static str, via: &'static str) {
        #[cfg(feature = "metrics")]
        match self.0.iter().find(|(v, _)| *v == via) {
            Some((_, counter)) => counter.increment(1),
            // A credential this layer was not built to expect: counted the slow way, never lost.
            None => metrics::counter!(
                DECISIONS_TOTAL, "layer" => layer, "outcome" => "admitted", "reason" => via
            )
            .increment(1),
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (layer, via);
    }
}

/// A rejection (rarer than admissions, so the handle is looked up each time).
#[inline]
pub(crate) fn rejected(layer: &'static str, reason: &'static str, server_error: bool) {
    #[cfg(feature = "metrics")]
    {
        let outcome = if server_error {
            "unavailable"
        } else {
            "rejected"
        };
        metrics::counter!(DECISIONS_TOTAL, "layer" => layer, "outcome" => outcome, "reason" => reason).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (layer, reason, server_error);
}
