//! The key cache's rules, driven by a scripted in-memory source, a manual clock and tokio's paused time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::*;
use crate::clock::{Clock as _, ManualClock};

const OIDC_JWKS: &[u8] = include_bytes!("../../tests/fixtures/keys/oidc_v3_certs.json");
const KID_A: &str = "a3b1e9c4f7d2086b5e1c9a7f3d4b2e6c8a0f1d3e";
const KID_B: &str = "7c9e2f41b8d3a6e05f4c1b9d8e7a2c3f6b0d5e4a";

/// The fixture JWKS restricted to the given kids.
fn set_with(kids: &[&str]) -> KeySet {
    let mut doc: serde_json::Value = serde_json::from_slice(OIDC_JWKS).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| kids.contains(&k["kid"].as_str().unwrap()));
    KeySet::parse(KeyFormat::OidcJwks, doc.to_string().as_bytes()).unwrap()
}

#[derive(Clone)]
enum Step {
    Keys(KeySet, Option<Duration>),
    Fail(FetchError),
    Hang,
}

/// A source that answers from a script (the last step repeats) and counts fetches.
#[derive(Debug, Clone, Default)]
struct Scripted {
    steps: Arc<Mutex<VecDeque<Step>>>,
    fetches: Arc<AtomicU64>,
    delay: Duration,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Step")
    }
}

impl Scripted {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            ..Self::default()
        }
    }
    fn then(&self, step: Step) {
        let mut steps = self.steps.lock().unwrap();
        steps.clear();
        steps.push_back(step);
    }
    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl KeySource for Scripted {
    fn fetch(&self) -> BoxFuture<'_, Result<FetchedKeys, FetchError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let step = {
            let mut steps = self.steps.lock().unwrap();
            if steps.len() > 1 {
                steps.pop_front()
            } else {
                steps.front().cloned()
            }
        };
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            match step.expect("script exhausted") {
                Step::Keys(keys, max_age) => Ok(FetchedKeys { keys, max_age }),
                Step::Fail(e) => Err(e),
                Step::Hang => std::future::pending().await,
            }
        })
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Rs256
    }
}

fn cache(source: &Scripted, clock: &ManualClock) -> KeyCache {
    KeyCache::with_config(
        source.clone(),
        KeyCacheConfig::default(),
        Arc::new(clock.clone()),
    )
}

/// Lets spawned fetch tasks run to completion.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_500_cold_lookups_causes_exactly_one_fetch() {
    let mut source = Scripted::new([Step::Keys(
        set_with(&[KID_A, KID_B]),
        Some(Duration::from_secs(3600)),
    )]);
    source.delay = Duration::from_millis(50);
    let cache = cache(&source, &ManualClock::starting_now());
    let lookups: Vec<_> = (0..500)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.key(if i % 2 == 0 { KID_A } else { KID_B }).await })
        })
        .collect();
    for lookup in lookups {
        assert!(lookup.await.unwrap().is_ok());
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(cache.status().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn random_unknown_kids_cause_at_most_one_refetch_per_interval() {
    let source = Scripted::new([Step::Keys(
        set_with(&[KID_A]),
        Some(Duration::from_secs(3600)),
    )]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    cache.warm().await.unwrap();
    assert_eq!(source.fetches(), 1);

    let lookups: Vec<_> = (0..1000)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.key(&format!("random-kid-{i}")).await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(
            lookup.await.unwrap().unwrap_err(),
            KeyLookupError::UnknownKeyId
        );
    }
    assert_eq!(source.fetches(), 2, "1,000 unknown kids: one refetch");

    clock.advance(Duration::from_secs(29));
    assert!(cache.key("yet-another").await.is_err());
    assert_eq!(source.fetches(), 2, "still inside the 30 s interval");

    clock.advance(Duration::from_secs(2));
    assert!(cache.key("one-more").await.is_err());
    assert_eq!(source.fetches(), 3, "the next interval allows one more");
    // Known kids never wait on any of this.
    assert!(cache.key(KID_A).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_rotated_in_kid_is_accepted_after_one_refetch() {
    let source = Scripted::new([
        Step::Keys(set_with(&[KID_A]), Some(Duration::from_secs(3600))),
        Step::Keys(set_with(&[KID_A, KID_B]), Some(Duration::from_secs(3600))),
    ]);
    let cache = cache(&source, &ManualClock::starting_now());
    assert!(cache.key(KID_A).await.is_ok());
    assert_eq!(cache.key(KID_B).await.unwrap().kid(), KID_B);
    assert_eq!(source.fetches(), 2);
    // And the old kid is still there until it leaves the set.
    assert!(cache.key(KID_A).await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_keys_are_served_through_an_outage_up_to_the_bound() {
    let source = Scripted::new([Step::Keys(
        set_with(&[KID_A]),
        Some(Duration::from_secs(300)),
    )]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    cache.warm().await.unwrap();

    source.then(Step::Fail(FetchError::Status(503)));
    clock.advance(Duration::from_secs(301));
    // Expired: served at once from the old set while a refresh runs (and fails) in the background.
    assert!(cache.key(KID_A).await.is_ok());
    settle().await;
    assert_eq!(source.fetches(), 2);
    let status = cache.status();
    assert!(status.ready && status.stale);
    assert_eq!(status.last_error, Some(FetchError::Status(503)));

    // Hours into the outage, still served (one failed refresh per backoff period, never a wait).
    for _ in 0..10 {
        clock.advance(Duration::from_secs(1800));
        assert!(cache.key(KID_A).await.is_ok());
        settle().await;
    }
    assert!(source.fetches() <= 12);

    // Past the stale bound (6 h after freshness ended), the keys are unavailable.
    clock.advance(Duration::from_secs(3 * 3600));
    let err = cache.key(KID_A).await.unwrap_err();
    let KeyLookupError::Unavailable(unavailable) = err else {
        panic!("expected unavailable, got {err:?}")
    };
    assert_eq!(unavailable.reason(), &FetchError::Status(503));
    assert!(!cache.status().ready);

    // Google comes back: the next attempt after the backoff recovers.
    source.then(Step::Keys(
        set_with(&[KID_A]),
        Some(Duration::from_secs(300)),
    ));
    clock.advance(Duration::from_secs(6));
    assert!(cache.key(KID_A).await.is_ok());
    assert!(!cache.status().stale);
}

#[tokio::test(start_paused = true)]
async fn a_cold_failure_is_unavailable_at_once_and_backs_off() {
    let source = Scripted::new([Step::Fail(FetchError::Transport(TransportError::new(
        "connection refused",
    )))]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    let err = cache.warm().await.unwrap_err();
    assert!(matches!(err.reason(), FetchError::Transport(_)));
    assert!(err.retry_after() >= Duration::from_secs(1));
    assert!(err.to_string().contains("scripted"));
    // Within the backoff nobody waits on the dead source again.
    for _ in 0..100 {
        assert!(matches!(
            cache.key(KID_A).await,
            Err(KeyLookupError::Unavailable(_))
        ));
    }
    assert_eq!(source.fetches(), 1);
    clock.advance(Duration::from_secs(5));
    source.then(Step::Keys(set_with(&[KID_A]), None));
    assert!(cache.key(KID_A).await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_source_times_out_instead_of_waiting_forever() {
    let source = Scripted::new([Step::Hang]);
    let cache = cache(&source, &ManualClock::starting_now());
    let started = tokio::time::Instant::now();
    let err = cache.key(KID_A).await.unwrap_err();
    let KeyLookupError::Unavailable(unavailable) = err else {
        panic!("expected unavailable")
    };
    assert_eq!(
        unavailable.reason(),
        &FetchError::Timeout(Duration::from_secs(5))
    );
    // Paused time: this measures the cache's own timeout, not the machine.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_clamped_and_defaulted() {
    // max-age=0 must not mean "fetch on every request": the minimum (60 s) applies.
    let source = Scripted::new([Step::Keys(set_with(&[KID_A]), Some(Duration::ZERO))]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    cache.warm().await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(cache.key(KID_A).await.is_ok());
    assert!(!cache.status().stale);
    assert_eq!(source.fetches(), 1);
    clock.advance(Duration::from_secs(2));
    assert!(cache.status().stale);
    assert!(cache.key(KID_A).await.is_ok());
    settle().await;
    assert_eq!(source.fetches(), 2);

    // No max-age at all: the default (5 minutes).
    let source = Scripted::new([Step::Keys(set_with(&[KID_A]), None)]);
    let cache = self::cache(&source, &clock);
    cache.warm().await.unwrap();
    clock.advance(Duration::from_secs(299));
    assert!(!cache.status().stale);
    clock.advance(Duration::from_secs(2));
    assert!(cache.status().stale);
}

#[tokio::test(start_paused = true)]
async fn a_garbage_document_never_replaces_a_good_set() {
    let source = Scripted::new([Step::Keys(
        set_with(&[KID_A]),
        Some(Duration::from_secs(60)),
    )]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    cache.warm().await.unwrap();
    source.then(Step::Fail(FetchError::Parse(KeySetError::Json(
        "expected value".into(),
    ))));
    clock.advance(Duration::from_secs(61));
    assert!(cache.key(KID_A).await.is_ok());
    settle().await;
    assert_eq!(cache.current().unwrap().len(), 1);
    assert!(matches!(
        cache.status().last_error,
        Some(FetchError::Parse(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_saw_no_keys_before_a_fetch_landed_does_not_fetch_again() {
    use super::cache::Reason;
    let source = Scripted::new([Step::Keys(
        set_with(&[KID_A]),
        Some(Duration::from_secs(3600)),
    )]);
    let clock = ManualClock::starting_now();
    let cache = cache(&source, &clock);
    // The caller looks at the cache (empty) at `seen`...
    let seen = clock.now();
    // ...meanwhile another caller's fetch completes...
    cache.warm().await.unwrap();
    // ...and only then does the first caller ask for a refresh: it must get the landed set, not a second fetch.
    assert!(cache.refresh(Reason::Refresh, seen).await.is_ok());
    assert_eq!(source.fetches(), 1);
}
