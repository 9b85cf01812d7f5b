//! The metrics idgate records, through the [`metrics`](https://docs.rs/metrics) facade: the application installs the
//! exporter it wants (Prometheus, StatsD, OpenTelemetry, ...) and idgate's counters, gauges and histograms go there.
//!
//! Recording is behind the **`metrics` feature** (off by default): without it this module holds only the names below,
//! nothing is recorded and the `metrics` crate is not a dependency. Install the recorder **before** building verifiers
//! and layers: they take their metric handles when they are built, as the facade recommends for hot paths.
//!
//! Labels have bounded values only (never an email, a token, a URL or a key ID), so a metric has a fixed, small number
//! of series.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `idgate_key_fetches_total` | counter | `keys`, `result` = `ok` \| `error` | fetches of a signing-key document |
//! | `idgate_key_set_fetched_timestamp_seconds` | gauge | `keys` | Unix time the current key set was fetched |
//! | `idgate_key_set_age_seconds` | gauge | `keys` | age of the current key set, as of the last [`KeyCache::record_metrics`](crate::keys::KeyCache::record_metrics) |
//! | `idgate_key_set_fresh_for_seconds` | gauge | `keys` | seconds until the current set goes stale (negative: stale for that long), same |
//! | `idgate_key_set_serving_stale` | gauge | `keys` | 1 while the last refresh failed and an expired set is served, else 0 |
//! | `idgate_key_unknown_kid_refetches_suppressed_total` | counter | `keys` | tokens with an unknown `kid` that did not cause a refetch (rate limit) |
//! | `idgate_verify_seconds` | histogram | `verifier`, `path` = `memo` \| `full` | time to verify a token: a memo hit (sampled: 1 in 16) or a full verification (every one, success or not) |
//! | `idgate_verify_memo_lookups_total` | counter | `verifier`, `result` = `hit` \| `miss` | lookups of the memo of verified tokens |
//! | `idgate_verify_memo_entries` | gauge | `verifier` | tokens held by the memo, as of the last miss |
//!
//! `keys` is `oidc` (Google ID tokens), `iap` (IAP assertions) or `service_account` (the keys of service accounts);
//! `verifier` is `oidc`, `iap` or `service_account`. The other crates' metrics (decisions, outbound tokens,
//! sessions) are listed in the repository's `docs/metrics.md`.

/// `idgate_key_fetches_total{keys, result}`.
pub const KEY_FETCHES_TOTAL: &str = "idgate_key_fetches_total";
/// `idgate_key_set_fetched_timestamp_seconds{keys}`.
pub const KEY_SET_FETCHED_TIMESTAMP_SECONDS: &str = "idgate_key_set_fetched_timestamp_seconds";
/// `idgate_key_set_age_seconds{keys}`.
pub const KEY_SET_AGE_SECONDS: &str = "idgate_key_set_age_seconds";
/// `idgate_key_set_fresh_for_seconds{keys}`.
pub const KEY_SET_FRESH_FOR_SECONDS: &str = "idgate_key_set_fresh_for_seconds";
/// `idgate_key_set_serving_stale{keys}`.
pub const KEY_SET_SERVING_STALE: &str = "idgate_key_set_serving_stale";
/// `idgate_key_unknown_kid_refetches_suppressed_total{keys}`.
pub const KEY_UNKNOWN_KID_REFETCHES_SUPPRESSED_TOTAL: &str =
    "idgate_key_unknown_kid_refetches_suppressed_total";
/// `idgate_verify_seconds{verifier, path}`.
pub const VERIFY_SECONDS: &str = "idgate_verify_seconds";
/// `idgate_verify_memo_lookups_total{verifier, result}`.
pub const VERIFY_MEMO_LOOKUPS_TOTAL: &str = "idgate_verify_memo_lookups_total";
/// `idgate_verify_memo_entries{verifier}`.
pub const VERIFY_MEMO_ENTRIES: &str = "idgate_verify_memo_entries";

/// Registers the description (Prometheus `# HELP`) and unit of each metric above with the installed recorder.
/// Optional: recording works without it. Call it once, after installing the recorder.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        KEY_FETCHES_TOTAL,
        "Fetches of a Google signing-key document, by key family and result."
    );
    describe_gauge!(
        KEY_SET_FETCHED_TIMESTAMP_SECONDS,
        Unit::Seconds,
        "Unix time the current key set was fetched."
    );
    describe_gauge!(
        KEY_SET_AGE_SECONDS,
        Unit::Seconds,
        "Age of the current key set."
    );
    describe_gauge!(
        KEY_SET_FRESH_FOR_SECONDS,
        Unit::Seconds,
        "Seconds until the current key set goes stale; negative: stale for that long."
    );
    describe_gauge!(
        KEY_SET_SERVING_STALE,
        "1 while the last key refresh failed and an expired key set is served, else 0."
    );
    describe_counter!(
        KEY_UNKNOWN_KID_REFETCHES_SUPPRESSED_TOTAL,
        "Tokens with an unknown key ID that did not cause a refetch (rate limit)."
    );
    describe_histogram!(
        VERIFY_SECONDS,
        Unit::Seconds,
        "Time to verify a token: memo hits (sampled 1 in 16) and full verifications."
    );
    describe_counter!(
        VERIFY_MEMO_LOOKUPS_TOTAL,
        "Lookups of the memo of verified tokens, by result."
    );
    describe_gauge!(
        VERIFY_MEMO_ENTRIES,
        "Tokens the verification memo holds, as of the last miss."
    );
}

/// How often a memo hit is timed: one in this many (timing costs two clock reads, more than the hit itself).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const MEMO_TIMING_SAMPLE: u32 = 16;

/// A verifier's metric handles, taken once when it is built.
#[cfg(feature = "metrics")]
pub(crate) struct VerifyMetrics {
    memo_hits: metrics::Counter,
    memo_misses: metrics::Counter,
    memo_entries: metrics::Gauge,
    memo_seconds: metrics::Histogram,
    full_seconds: metrics::Histogram,
}

/// A verifier's metric handles: nothing without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
pub(crate) struct VerifyMetrics;

/// When a verification started, if it is being timed.
#[cfg(feature = "metrics")]
pub(crate) struct Started(Option<std::time::Instant>);
#[cfg(not(feature = "metrics"))]
pub(crate) struct Started;

impl VerifyMetrics {
    #[cfg(feature = "metrics")]
    pub(crate) fn new(verifier: &'static str) -> Self {
        Self {
            memo_hits: metrics::counter!(VERIFY_MEMO_LOOKUPS_TOTAL, "verifier" => verifier, "result" => "hit"),
            memo_misses: metrics::counter!(VERIFY_MEMO_LOOKUPS_TOTAL, "verifier" => verifier, "result" => "miss"),
            memo_entries: metrics::gauge!(VERIFY_MEMO_ENTRIES, "verifier" => verifier),
            memo_seconds: metrics::histogram!(VERIFY_SECONDS, "verifier" => verifier, "path" => "memo"),
            full_seconds: metrics::histogram!(VERIFY_SECONDS, "verifier" => verifier, "path" => "full"),
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_verifier: &'static str) -> Self {
        Self
    }

    /// Called as a verification starts: times one in [`MEMO_TIMING_SAMPLE`] (a full verification is timed anyway,
    /// from [`full`](Self::full)).
    #[inline]
    pub(crate) fn start(&self) -> Started {
        #[cfg(feature = "metrics")]
        {
            thread_local! {
                static COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
            }
            let n = COUNT.with(|c| {
                let n = c.get().wrapping_add(1);
                c.set(n);
                n
            });
            Started(
                n.is_multiple_of(MEMO_TIMING_SAMPLE)
                    .then(std::time::Instant::now),
            )
        }
        #[cfg(not(feature = "metrics"))]
        Started
    }

    /// A memo (or per-thread cache) hit answered the verification.
    #[inline]
    pub(crate) fn memo_hit(&self, started: &Started) {
        #[cfg(feature = "metrics")]
        {
            self.memo_hits.increment(1);
            if let Some(at) = started.0 {
                self.memo_seconds.record(at.elapsed());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = started;
    }

    /// The memo did not have the token (`entries`: what it holds now).
    #[inline]
    pub(crate) fn memo_miss(&self, entries: u64) {
        #[cfg(feature = "metrics")]
        {
            self.memo_misses.increment(1);
            #[allow(clippy::cast_precision_loss)] // a count far below 2^52
            self.memo_entries.set(entries as f64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = entries;
    }

    /// Times a full verification (every one: they cost microseconds to milliseconds). Without the `metrics`
    /// feature, `verification` itself: an `async fn` wrapper would hold the inner future twice (as its argument and
    /// as the future it awaits), which doubled the size of every verification's future.
    pub(crate) fn full<T>(&self, verification: impl Future<Output = T>) -> impl Future<Output = T> {
        #[cfg(feature = "metrics")]
        {
            async move {
                let at = std::time::Instant::now();
                let out = verification.await;
                self.full_seconds.record(at.elapsed());
                out
            }
        }
        #[cfg(not(feature = "metrics"))]
        verification
    }
}

/// What a key cache records (rare events: each call looks its handle up, which costs nothing on the hot path).
pub(crate) mod keys {
    #[allow(unused_imports)]
    use super::*;

    pub(crate) fn fetched(label: &'static str, ok: bool, fetched_at_unix: f64) {
        #[cfg(feature = "metrics")]
        {
            let result = if ok { "ok" } else { "error" };
            metrics::counter!(KEY_FETCHES_TOTAL, "keys" => label, "result" => result).increment(1);
            if ok {
                metrics::gauge!(KEY_SET_FETCHED_TIMESTAMP_SECONDS, "keys" => label)
                    .set(fetched_at_unix);
                metrics::gauge!(KEY_SET_SERVING_STALE, "keys" => label).set(0.0);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (label, ok, fetched_at_unix);
    }

    pub(crate) fn serving_stale(label: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(KEY_SET_SERVING_STALE, "keys" => label).set(1.0);
        #[cfg(not(feature = "metrics"))]
        let _ = label;
    }

    pub(crate) fn unknown_kid_refetch_suppressed(label: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::counter!(KEY_UNKNOWN_KID_REFETCHES_SUPPRESSED_TOTAL, "keys" => label).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = label;
    }

    pub(crate) fn status(label: &'static str, age_secs: f64, fresh_for_secs: f64) {
        #[cfg(feature = "metrics")]
        {
            metrics::gauge!(KEY_SET_AGE_SECONDS, "keys" => label).set(age_secs);
            metrics::gauge!(KEY_SET_FRESH_FOR_SECONDS, "keys" => label).set(fresh_for_secs);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (label, age_secs, fresh_for_secs);
    }
}
