//! The `metrics` feature: a recorder installed before the verifier is built sees exactly what happened. (A binary of
//! its own: the recorder is process-wide.)

use std::sync::Arc;
use std::time::Duration;

use idgate_core::clock::{Clock, ManualClock};
use idgate_core::metrics as names;
use idgate_core::verify::OidcVerifier;
use idgate_emulator::{Emulator, Fault, Route, TokenSpec};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";

/// One reading of the recorder. The debugging recorder drains what it reports (counters and gauges restart at zero,
/// histograms empty), so each check reads once and asserts what changed since the previous reading.
struct Reading(Vec<(String, Vec<(String, String)>, DebugValue)>);

impl Reading {
    fn take(snapshotter: &Snapshotter) -> Self {
        Self(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, _, _, value)| {
                    let key = key.key();
                    let labels = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    (key.name().to_owned(), labels, value)
                })
                .collect(),
        )
    }

    /// The series `name` whose labels include every pair of `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, value)| value)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.value(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.value(name, labels) {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        match self.value(name, labels) {
            Some(DebugValue::Histogram(samples)) => samples.len(),
            None => 0,
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn verification_and_key_metrics_count_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let emulator = Emulator::builder()
        .oidc_max_age(Duration::from_secs(300))
        .start()
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let verifier = OidcVerifier::builder()
        .audience(AUDIENCE)
        .clock(Arc::new(clock.clone()))
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .unwrap();
    let oidc = [("keys", "oidc")];
    let token = emulator.mint(
        &TokenSpec::service_account("caller@p.iam.gserviceaccount.com")
            .audience(AUDIENCE)
            .issued_at(clock.unix_seconds()),
    );

    // One full verification (a memo miss, a key fetch), then memo hits.
    for _ in 0..33 {
        verifier.verify(&token).await.unwrap();
    }
    let (hit, miss) = (
        [("verifier", "oidc"), ("result", "hit")],
        [("verifier", "oidc"), ("result", "miss")],
    );
    let r = Reading::take(&snapshotter);
    assert_eq!(r.counter(names::VERIFY_MEMO_LOOKUPS_TOTAL, &miss), 1);
    assert_eq!(r.counter(names::VERIFY_MEMO_LOOKUPS_TOTAL, &hit), 32);
    assert_eq!(
        r.histogram_count(
            names::VERIFY_SECONDS,
            &[("verifier", "oidc"), ("path", "full")]
        ),
        1
    );
    // Memo hits are timed one in 16.
    let sampled = r.histogram_count(
        names::VERIFY_SECONDS,
        &[("verifier", "oidc"), ("path", "memo")],
    );
    assert!(
        (1..=3).contains(&sampled),
        "{sampled} memo hits timed of 32"
    );
    assert_eq!(
        r.gauge(names::VERIFY_MEMO_ENTRIES, &[("verifier", "oidc")]),
        0.0,
        "empty at the miss"
    );
    assert_eq!(
        r.counter(
            names::KEY_FETCHES_TOTAL,
            &[("keys", "oidc"), ("result", "ok")]
        ),
        1
    );
    let fetched = r.gauge(names::KEY_SET_FETCHED_TIMESTAMP_SECONDS, &oidc);
    assert!(
        (fetched - clock.unix_seconds() as f64).abs() < 5.0,
        "{fetched}"
    );
    assert_eq!(r.gauge(names::KEY_SET_SERVING_STALE, &oidc), 0.0);

    // Tokens naming keys nobody publishes: the first causes a refetch, the next ones are suppressed.
    for kid in ["nope-1", "nope-2", "nope-3"] {
        let forged = emulator.mint(
            &TokenSpec::service_account("caller@p.iam.gserviceaccount.com")
                .audience(AUDIENCE)
                .issued_at(clock.unix_seconds())
                .kid(kid),
        );
        assert!(verifier.verify(&forged).await.is_err());
    }
    let r = Reading::take(&snapshotter);
    assert_eq!(
        r.counter(
            names::KEY_FETCHES_TOTAL,
            &[("keys", "oidc"), ("result", "ok")]
        ),
        1
    );
    assert_eq!(
        r.counter(names::KEY_UNKNOWN_KID_REFETCHES_SUPPRESSED_TOTAL, &oidc),
        2
    );
    assert_eq!(r.counter(names::VERIFY_MEMO_LOOKUPS_TOTAL, &miss), 3);
    assert_eq!(
        r.histogram_count(
            names::VERIFY_SECONDS,
            &[("verifier", "oidc"), ("path", "full")]
        ),
        3,
        "failures are timed too"
    );

    // The set goes stale and Google fails: the old set is served, and the gauges say so.
    clock.advance(Duration::from_secs(400));
    verifier.keys().record_metrics();
    let r = Reading::take(&snapshotter);
    let age = r.gauge(names::KEY_SET_AGE_SECONDS, &oidc);
    // The unknown-kid refetch renewed the set a moment after the first fetch.
    assert!((395.0..=400.0).contains(&age), "{age}");
    let fresh_for = r.gauge(names::KEY_SET_FRESH_FOR_SECONDS, &oidc);
    assert!((-100.0..=-95.0).contains(&fresh_for), "{fresh_for}");
    emulator.inject(Route::OidcJwks, Fault::Status(503), 10);
    let fresh = emulator.mint(
        &TokenSpec::service_account("other@p.iam.gserviceaccount.com")
            .audience(AUDIENCE)
            .issued_at(clock.unix_seconds()),
    );
    // The expired set triggers a refresh in the background; the caller is answered from the stale set.
    let _ = verifier.verify(&fresh).await;
    let mut errors = 0;
    let mut stale = 0.0;
    for _ in 0..100 {
        let r = Reading::take(&snapshotter);
        errors += r.counter(
            names::KEY_FETCHES_TOTAL,
            &[("keys", "oidc"), ("result", "error")],
        );
        if r.value(names::KEY_SET_SERVING_STALE, &oidc).is_some() {
            stale = f64::max(stale, r.gauge(names::KEY_SET_SERVING_STALE, &oidc));
        }
        if errors > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(errors, 1);
    assert_eq!(stale, 1.0);
}
