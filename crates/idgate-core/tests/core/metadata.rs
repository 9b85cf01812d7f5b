//! The metadata-server client against the emulator: facts, the probe, retries, and the error families.

use std::time::Duration;

use idgate_core::ErrorChain;
use idgate_core::google::{HttpOptions, MetadataClient, RetryPolicy};
use idgate_emulator::{Emulator, Fault, Route};

fn quick() -> HttpOptions {
    HttpOptions::new().retry(
        RetryPolicy::default()
            .initial_delay(Duration::from_millis(5))
            .max_delay(Duration::from_millis(20)),
    )
}

#[tokio::test]
async fn facts_probe_and_json() {
    let emulator = Emulator::builder()
        .project_id("host-project")
        .project_number(424_242_424_242)
        .start()
        .await
        .unwrap();
    let metadata = MetadataClient::from_base_url(&emulator.base_url()).http(quick());
    assert_eq!(metadata.project_id().await.unwrap(), "host-project");
    assert_eq!(
        metadata.numeric_project_id().await.unwrap(),
        424_242_424_242
    );
    assert_eq!(
        metadata.service_account_email().await.unwrap(),
        emulator.metadata_service_account()
    );
    let token: serde_json::Value = metadata
        .get_json("instance/service-accounts/default/token", &[])
        .await
        .unwrap();
    assert!(token["access_token"].is_string());
    assert!(metadata.is_available().await);
    assert_eq!(emulator.hits(Route::MetadataRoot), 1);

    // The same server through GCE_METADATA_HOST's form.
    let by_host = MetadataClient::from_host(emulator.metadata_host()).http(quick());
    assert_eq!(by_host.project_id().await.unwrap(), "host-project");

    // A missing value: an error status, not retried.
    emulator.inject(Route::MetadataEmail, Fault::Status(404), 10);
    let err = metadata.service_account_email().await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND), "{err}");
    assert!(!err.is_not_on_google_cloud());
    assert_eq!(emulator.hits(Route::MetadataEmail), 2);
    emulator.clear_faults();
}

#[tokio::test]
async fn transient_failures_are_retried_and_bounded() {
    let emulator = Emulator::start().await.unwrap();
    let metadata = MetadataClient::from_base_url(&emulator.base_url()).http(quick());
    emulator.inject(Route::MetadataProjectId, Fault::Status(503), 2);
    metadata.project_id().await.unwrap();
    assert_eq!(emulator.hits(Route::MetadataProjectId), 3);

    emulator.inject(Route::MetadataProjectId, Fault::Status(429), 10);
    let err = metadata.project_id().await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(err.attempts(), Some(3));
    assert!(err.is_transient());

    emulator.clear_faults();
    emulator.inject(Route::MetadataNumericProjectId, Fault::Garbage, 10);
    let err = metadata.numeric_project_id().await.unwrap_err();
    assert!(err.is_unusable_answer(), "{err}");
    assert!(
        ErrorChain(&err).to_string().contains("numeric-project-id"),
        "{err}"
    );
    emulator.clear_faults();
    emulator.inject(Route::MetadataProjectId, Fault::Hang, 10);
    let err = metadata
        .clone()
        .http(
            quick()
                .timeout(Duration::from_millis(100))
                .retry(RetryPolicy::none()),
        )
        .project_id()
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_not_on_google_cloud(), "{err}");
    emulator.clear_faults();
}

#[tokio::test]
async fn nothing_listening_is_not_on_google_cloud() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let metadata = MetadataClient::from_host(format!("127.0.0.1:{port}")).http(quick());
    assert!(!metadata.is_available().await);
    let err = metadata.project_id().await.unwrap_err();
    assert!(
        err.is_unreachable() && err.is_not_on_google_cloud(),
        "{err}"
    );
    assert_eq!(err.attempts(), Some(3));
    // The cause is in the chain, not in the message.
    assert!(!err.to_string().contains("error sending request"), "{err}");
    assert!(ErrorChain(&err).to_string().len() > err.to_string().len());

    let err = MetadataClient::from_host("bad host/x")
        .project_id()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}
