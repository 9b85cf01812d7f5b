//! The `metrics` feature: sign-ins, refused callbacks by reason, sign-outs and the store's operations, counted
//! through HTTP on loopback with the emulator playing Google. (A binary of its own: the recorder is process-wide.)

mod common;

use common::{Google, Public};
use http::StatusCode;
use idgate_signin::metrics as names;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_refusals_sign_outs_and_store_operations_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let google = Google::start().await;
    let app = common::App::serve(&google, Public::Loopback, |b| b).await;

    // Alice signs in and out; Mallory (not on the allowlist) is refused; Bob cancels at Google; Carol signs in and
    // out everywhere.
    let mut alice = app.browser();
    assert_eq!(
        alice
            .sign_in(&google, "/books", "alice@example.com")
            .await
            .status,
        StatusCode::FOUND
    );
    assert_eq!(
        alice.logout(Some(&app.origin)).await.status,
        StatusCode::SEE_OTHER
    );
    let mut mallory = app.browser();
    assert_eq!(
        mallory
            .sign_in(&google, "/", "mallory@gmail.com")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mut bob = app.browser();
    let authorization = bob.login("/").await;
    let cancelled = bob.page(google.deny(&authorization).as_str()).await;
    assert_eq!(cancelled.status, StatusCode::FORBIDDEN);
    let mut carol = app.browser();
    assert_eq!(
        carol
            .sign_in(&google, "/", "carol@other.example")
            .await
            .status,
        StatusCode::FOUND
    );
    let everywhere = carol
        .send(
            http::Method::POST,
            "/auth/logout?everywhere=1",
            &[("origin", app.origin.as_str())],
        )
        .await;
    assert_eq!(everywhere.status, StatusCode::SEE_OTHER);

    let reading = snapshotter.snapshot().into_vec();
    let value = |name: &str, label: Option<(&str, &str)>| {
        reading
            .iter()
            .find(|(key, _, _, _)| {
                let key = key.key();
                key.name() == name
                    && label
                        .is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|(_, _, _, value)| value)
    };
    let counter = |name: &str, label: Option<(&str, &str)>| match value(name, label) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(counter(names::SIGN_INS_TOTAL, None), 2);
    assert_eq!(
        counter(
            names::CALLBACK_FAILURES_TOTAL,
            Some(("reason", "not_allowed"))
        ),
        1
    );
    assert_eq!(
        counter(
            names::CALLBACK_FAILURES_TOTAL,
            Some(("reason", "access_denied"))
        ),
        1
    );
    assert_eq!(
        counter(names::SIGN_OUTS_TOTAL, Some(("scope", "session"))),
        1
    );
    assert_eq!(
        counter(names::SIGN_OUTS_TOTAL, Some(("scope", "everywhere"))),
        1
    );
    // Two sessions created, and each sign-in saved its session before answering.
    match value(names::STORE_SECONDS, Some(("op", "create"))) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(counter(names::STORE_ERRORS_TOTAL, Some(("op", "load"))), 0);
}
