//! What the token caches record through the [`metrics`](https://docs.rs/metrics) facade (feature **`metrics`**, off by
//! default: without it nothing is recorded and `metrics` is not a dependency). The application installs the exporter;
//! install it before the first token is asked for (each cache takes its handles then).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `idgate_outbound_token_lookups_total` | counter | `token` = `id` \| `access`, `source`, `result` = `fresh` \| `due` \| `miss` | tokens asked of a [`CachedSource`](crate::CachedSource): served fresh, served while one caller refreshes ahead of expiry, or none usable (the caller waits for a mint) |
//! | `idgate_outbound_tokens_minted_total` | counter | `token`, `source`, `result` = `ok` \| `error` | tokens minted (asked of the source) |
//! | `idgate_outbound_refreshes_ahead_total` | counter | `token`, `source` | mints made ahead of expiry (the token in hand was still usable) |
//! | `idgate_outbound_mint_seconds` | histogram | `token`, `source` | time to mint, success or not |
//! | `idgate_outbound_token_expiry_timestamp_seconds` | gauge | `token`, `source` | Unix time the last minted token expires (`… - time()`: seconds left) |
//!
//! `source` is the source's [`source_name`](crate::IdTokenSource::source_name): `metadata`, `service_account_key`,
//! `impersonated`, `authorized_user`, or `custom` for sources of your own. No label holds an audience, a scope or an
//! email.

/// `idgate_outbound_token_lookups_total{token, source, result}`.
pub const TOKEN_LOOKUPS_TOTAL: &str = "idgate_outbound_token_lookups_total";
/// `idgate_outbound_tokens_minted_total{token, source, result}`.
pub const TOKENS_MINTED_TOTAL: &str = "idgate_outbound_tokens_minted_total";
/// `idgate_outbound_refreshes_ahead_total{token, source}`.
pub const REFRESHES_AHEAD_TOTAL: &str = "idgate_outbound_refreshes_ahead_total";
/// `idgate_outbound_mint_seconds{token, source}`.
pub const MINT_SECONDS: &str = "idgate_outbound_mint_seconds";
/// `idgate_outbound_token_expiry_timestamp_seconds{token, source}`.
pub const TOKEN_EXPIRY_TIMESTAMP_SECONDS: &str = "idgate_outbound_token_expiry_timestamp_seconds";

/// Registers the description (Prometheus `# HELP`) and unit of each metric above with the installed recorder.
/// Optional: recording works without it.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        TOKEN_LOOKUPS_TOTAL,
        "Outbound tokens asked of a cache, by token kind, source and result (fresh, due, miss)."
    );
    describe_counter!(
        TOKENS_MINTED_TOTAL,
        "Outbound tokens minted, by token kind, source and result."
    );
    describe_counter!(
        REFRESHES_AHEAD_TOTAL,
        "Outbound tokens minted while the cached one was still usable (refresh ahead of expiry)."
    );
    describe_histogram!(
        MINT_SECONDS,
        Unit::Seconds,
        "Time to mint an outbound token."
    );
    describe_gauge!(
        TOKEN_EXPIRY_TIMESTAMP_SECONDS,
        Unit::Seconds,
        "Unix time the last minted outbound token expires."
    );
}

/// One cache's handles for one kind of token.
#[cfg(feature = "metrics")]
pub(crate) struct TokenMetrics {
    fresh: metrics::Counter,
    due: metrics::Counter,
    miss: metrics::Counter,
    minted_ok: metrics::Counter,
    minted_error: metrics::Counter,
    ahead: metrics::Counter,
    mint_seconds: metrics::Histogram,
    expiry: metrics::Gauge,
}

#[cfg(not(feature = "metrics"))]
pub(crate) struct TokenMetrics;

/// How a lookup was answered.
#[derive(Clone, Copy)]
pub(crate) enum Lookup {
    Fresh,
    Due,
    Miss,
}

impl TokenMetrics {
    #[cfg(feature = "metrics")]
    pub(crate) fn new(token: &'static str, source: &'static str) -> Self {
        let lookup = |result: &'static str| metrics::counter!(TOKEN_LOOKUPS_TOTAL, "token" => token, "source" => source, "result" => result);
        let minted = |result: &'static str| metrics::counter!(TOKENS_MINTED_TOTAL, "token" => token, "source" => source, "result" => result);
        Self {
            fresh: lookup("fresh"),
            due: lookup("due"),
            miss: lookup("miss"),
            minted_ok: minted("ok"),
            minted_error: minted("error"),
            ahead: metrics::counter!(REFRESHES_AHEAD_TOTAL, "token" => token, "source" => source),
            mint_seconds: metrics::histogram!(MINT_SECONDS, "token" => token, "source" => source),
            expiry: metrics::gauge!(TOKEN_EXPIRY_TIMESTAMP_SECONDS, "token" => token, "source" => source),
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_token: &'static str, _source: &'static str) -> Self {
        Self
    }

    #[inline]
    pub(crate) fn lookup(&self, lookup: Lookup) {
        #[cfg(feature = "metrics")]
        match lookup {
            Lookup::Fresh => self.fresh.increment(1),
            Lookup::Due => self.due.increment(1),
            Lookup::Miss => self.miss.increment(1),
        }
        #[cfg(not(feature = "metrics"))]
        let _ = lookup;
    }

    /// A mint is starting; `ahead`: the token in hand is still usable.
    pub(crate) fn minting(&self, ahead: bool) -> Minting {
        #[cfg(feature = "metrics")]
        {
            if ahead {
                self.ahead.increment(1);
            }
            Minting(std::time::Instant::now())
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = ahead;
            Minting
        }
    }

    /// The mint that started at `minting` ended; `expires_at` when it succeeded.
    pub(crate) fn minted(&self, minting: Minting, expires_at: Option<std::time::SystemTime>) {
        #[cfg(feature = "metrics")]
        {
            self.mint_seconds.record(minting.0.elapsed());
            match expires_at {
                Some(at) => {
                    self.minted_ok.increment(1);
                    let unix = at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    self.expiry.set(unix);
                }
                None => self.minted_error.increment(1),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (minting, expires_at);
    }
}

/// When a mint started.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy)]
pub(crate) struct Minting(std::time::Instant);
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Copy)]
pub(crate) struct Minting;
