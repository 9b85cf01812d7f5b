//! Fault injection: every mode, per endpoint, for the next N requests.

use std::time::Duration;

use idgate_emulator::{Fault, Route};
use reqwest::StatusCode;

use crate::helpers::emulator;

#[tokio::test]
async fn status_fault_for_the_next_n_requests_then_normal() {
    let emu = emulator().await;
    emu.inject(Route::OidcJwks, Fault::Status(503), 2);
    for _ in 0..2 {
        let resp = reqwest::get(emu.oidc_jwks_url()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let resp = reqwest::get(emu.oidc_jwks_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        emu.hits(Route::OidcJwks),
        3,
        "faulted requests are counted too"
    );
    // Other endpoints were untouched.
    assert_eq!(
        reqwest::get(emu.iap_jwks_url()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn faults_queue_in_order_and_can_be_cleared() {
    let emu = emulator().await;
    emu.inject(Route::IapPem, Fault::Status(500), 1);
    emu.inject(Route::IapPem, Fault::Garbage, 1);
    emu.inject(Route::IapPem, Fault::Status(404), 0);
    assert_eq!(
        reqwest::get(emu.iap_pem_url()).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let resp = reqwest::get(emu.iap_pem_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&resp.bytes().await.unwrap()).is_err());
    assert_eq!(
        reqwest::get(emu.iap_pem_url()).await.unwrap().status(),
        StatusCode::OK
    );
    emu.inject(Route::IapPem, Fault::Status(503), 10);
    emu.clear_faults();
    assert_eq!(
        reqwest::get(emu.iap_pem_url()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn garbage_keeps_the_content_type_and_breaks_the_body() {
    let emu = emulator().await;
    emu.inject(Route::OidcPemCerts, Fault::Garbage, 1);
    let resp = reqwest::get(emu.oidc_pem_certs_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(resp.json::<serde_json::Value>().await.is_err());
}

#[tokio::test]
async fn delay_then_normal_answer() {
    let emu = emulator().await;
    emu.inject(
        Route::OpenIdConfiguration,
        Fault::Delay(Duration::from_millis(50)),
        1,
    );
    let resp = reqwest::get(emu.openid_configuration_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["issuer"],
        "https://accounts.google.com"
    );
}

#[tokio::test]
async fn hang_never_answers_until_shutdown() {
    let emu = emulator().await;
    emu.inject(Route::OidcJwks, Fault::Hang, 1);
    let url = emu.oidc_jwks_url();
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    // Bounded: a request that never reaches the endpoint must fail the test, not hang it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while emu.hits(Route::OidcJwks) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never reached the OIDC JWKS endpoint within 10 s (pending finished: {})",
            pending.is_finished()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The request reached the endpoint and is held; other requests are served meanwhile.
    assert_eq!(
        reqwest::get(emu.iap_jwks_url()).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(!pending.is_finished());
    emu.shutdown().await;
    assert_eq!(
        pending.await.unwrap().unwrap(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn metadata_faults_keep_metadata_flavor_and_api_faults_keep_google_json() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 1);
    let resp = reqwest::Client::new()
        .get(emu.metadata_identity_url())
        .query(&[("audience", "a")])
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");

    emu.inject(Route::GenerateIdToken, Fault::Status(429), 1);
    let resp = reqwest::Client::new()
        .post(emu.generate_id_token_url("x@p.iam.gserviceaccount.com"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");

    emu.inject(Route::Token, Fault::Status(500), 1);
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn hit_counters_are_per_endpoint_and_resettable() {
    let emu = emulator().await;
    for _ in 0..3 {
        reqwest::get(emu.oidc_pem_certs_url()).await.unwrap();
    }
    assert_eq!(emu.hits(Route::OidcPemCerts), 3);
    assert_eq!(emu.hits(Route::OidcJwks), 0);
    emu.reset_hits();
    assert!(Route::ALL.iter().all(|e| emu.hits(*e) == 0));
}
