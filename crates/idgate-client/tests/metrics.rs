//! The `metrics` feature: a cache's lookups, mints, refreshes ahead of expiry and failures, as a recorder sees them.
//! (A binary of its own: the recorder is process-wide.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use idgate_client::metrics as names;
use idgate_client::{AccessToken, AccessTokenSource, BoxFuture, CachedSource, Scopes, SourceError};
use idgate_core::clock::{Clock, ManualClock};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Access tokens that live an hour, or a failure while `failing` is set.
#[derive(Debug, Default)]
struct Source {
    failing: AtomicBool,
}

impl AccessTokenSource for Source {
    fn access_token<'a>(
        &'a self,
        _: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        let failing = self.failing.load(Ordering::SeqCst);
        Box::pin(async move {
            if failing {
                Err(SourceError::Config {
                    reason: "the test says no".into(),
                })
            } else {
                Ok(AccessToken::new(
                    "ya29.token",
                    Some(Duration::from_secs(3600)),
                ))
            }
        })
    }

    fn source_name(&self) -> &'static str {
        "test_source"
    }
}

/// The counters and gauges of one reading (the debugging recorder drains what it reports).
fn read(snapshotter: &Snapshotter) -> Vec<(String, Vec<(String, String)>, DebugValue)> {
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
        .collect()
}

fn find<'a>(
    reading: &'a [(String, Vec<(String, String)>, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    reading
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
}

fn count(
    reading: &[(String, Vec<(String, String)>, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> u64 {
    match find(reading, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_caches_lookups_mints_and_refreshes_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let clock = ManualClock::starting_now();
    let cache = CachedSource::builder(Source::default())
        .clock(Arc::new(clock.clone()))
        .build();
    let scopes = Scopes::cloud_platform();
    let labels = |result| {
        [
            ("token", "access"),
            ("source", "test_source"),
            ("result", result),
        ]
    };

    // A miss and a mint, then fresh answers (the warm path's peek included).
    cache.access_token(&scopes).await.unwrap();
    assert!(cache.peek_access_token(&scopes).is_some());
    cache.access_token(&scopes).await.unwrap();
    let r = read(&snapshotter);
    assert_eq!(count(&r, names::TOKEN_LOOKUPS_TOTAL, &labels("miss")), 1);
    assert_eq!(count(&r, names::TOKEN_LOOKUPS_TOTAL, &labels("fresh")), 2);
    assert_eq!(count(&r, names::TOKENS_MINTED_TOTAL, &labels("ok")), 1);
    match find(
        &r,
        names::TOKEN_EXPIRY_TIMESTAMP_SECONDS,
        &[("token", "access")],
    ) {
        Some(DebugValue::Gauge(at)) => {
            let expected = (clock.now() + Duration::from_secs(3600))
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!((at.into_inner() - expected).abs() < 2.0, "{at}");
        }
        other => panic!("{other:?}"),
    }
    match find(&r, names::MINT_SECONDS, &[("token", "access")]) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 1),
        other => panic!("{other:?}"),
    }

    // Inside the refresh window: served while one caller refreshes ahead of expiry.
    clock.advance(Duration::from_secs(3600 - 60));
    cache.access_token(&scopes).await.unwrap();
    let r = read(&snapshotter);
    assert_eq!(count(&r, names::TOKEN_LOOKUPS_TOTAL, &labels("due")), 1);
    assert_eq!(
        count(
            &r,
            names::REFRESHES_AHEAD_TOTAL,
            &[("token", "access"), ("source", "test_source")]
        ),
        1
    );
    assert_eq!(count(&r, names::TOKENS_MINTED_TOTAL, &labels("ok")), 1);

    // Past expiry with the source failing: a miss, and a failed mint.
    cache.get_ref().failing.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(cache.access_token(&scopes).await.is_err());
    let r = read(&snapshotter);
    assert_eq!(count(&r, names::TOKEN_LOOKUPS_TOTAL, &labels("miss")), 1);
    assert_eq!(count(&r, names::TOKENS_MINTED_TOTAL, &labels("error")), 1);
}
