//! RequireIapLayer end to end: the assertion, the plain header, the allowlist, audience discovery.

use http::StatusCode;
use idgate_core::config::Config;
use idgate_core::policy::Allowlist;
use idgate_core::verify::IapVerifier;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::RequireIapLayer;
use idgate_server::extract::{UserEmail, VerifiedIapUser};

use crate::{Seen, client, emulator, recording_router, serve};

fn layer(emulator: &Emulator) -> RequireIapLayer {
    let verifier = IapVerifier::builder()
        .audience(emulator.iap_audience_app_engine())
        .keys_url(emulator.iap_jwks_url())
        .build()
        .unwrap();
    RequireIapLayer::new(verifier)
}

fn assertion(emulator: &Emulator, email: &str) -> String {
    emulator.mint(&TokenSpec::iap_user(email).audience(emulator.iap_audience_app_engine()))
}

#[tokio::test]
async fn verified_assertion_is_admitted_and_extracted() {
    let emulator = emulator().await;
    async fn whoami(user: VerifiedIapUser, email: UserEmail) -> String {
        format!(
            "{} {} {} {:?}",
            user.email(),
            &*email,
            user.hosted_domain().unwrap_or("-"),
            user.access_levels()
        )
    }
    let router = axum::Router::new()
        .route("/", axum::routing::get(whoami))
        .layer(layer(&emulator));
    let base = serve(router).await;
    let token = emulator.mint(
        &TokenSpec::iap_user("alice@example.com")
            .audience(emulator.iap_audience_app_engine())
            .hosted_domain("example.com")
            .access_levels(["accessPolicies/1/accessLevels/corp"]),
    );
    let response = client()
        .get(format!("{base}/"))
        .header("x-goog-iap-jwt-assertion", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        r#"alice@example.com alice@example.com example.com ["accessPolicies/1/accessLevels/corp"]"#
    );
}

#[tokio::test]
async fn spoofed_plain_header_is_never_identity() {
    let emulator = emulator().await;
    let seen = Seen::default();
    let base = serve(recording_router(&seen).layer(layer(&emulator))).await;
    // Without an assertion the plain header gets nowhere.
    let response = client()
        .get(format!("{base}/"))
        .header(
            "x-goog-authenticated-user-email",
            "accounts.google.com:ceo@example.com",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("x-goog-iap-jwt-assertion")
    );
    // With comparison off, the assertion decides and the plain header is ignored.
    let response = client()
        .get(format!("{base}/"))
        .header(
            "x-goog-iap-jwt-assertion",
            assertion(&emulator, "alice@example.com"),
        )
        .header(
            "x-goog-authenticated-user-email",
            "accounts.google.com:ceo@example.com",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        seen.last_caller().as_deref(),
        Some("iap_user alice@example.com")
    );
    assert_eq!(seen.calls(), 1);

    // With comparison on, a mismatch is a 401 and a match passes.
    let seen = Seen::default();
    let base =
        serve(recording_router(&seen).layer(layer(&emulator).compare_plain_user_headers(true)))
            .await;
    let send = |plain: &'static str| {
        client()
            .get(format!("{base}/"))
            .header(
                "x-goog-iap-jwt-assertion",
                assertion(&emulator, "alice@example.com"),
            )
            .header("x-goog-authenticated-user-email", plain)
            .send()
    };
    assert_eq!(
        send("accounts.google.com:ceo@example.com")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send("accounts.google.com:alice@example.com")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn invalid_assertions_and_allowlist() {
    let emulator = emulator().await;
    let seen = Seen::default();
    let allow = Allowlist::builder()
        .user_domain("example.com")
        .build()
        .unwrap();
    let base = serve(
        recording_router(&seen).layer(layer(&emulator).allowlist(allow).exempt_path("/healthz")),
    )
    .await;
    let expired = emulator.mint(
        &TokenSpec::iap_user("alice@example.com")
            .audience(emulator.iap_audience_app_engine())
            .expired(),
    );
    let oidc_signed = emulator.mint(
        &TokenSpec::iap_user("alice@example.com")
            .audience(emulator.iap_audience_app_engine())
            .sign_with_oidc_key(),
    );
    for bad in [expired, oidc_signed] {
        let response = client()
            .get(format!("{base}/"))
            .header("x-goog-iap-jwt-assertion", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.text().await.unwrap(), "invalid IAP assertion");
    }
    let response = client()
        .get(format!("{base}/"))
        .header(
            "x-goog-iap-jwt-assertion",
            assertion(&emulator, "mallory@evil.example"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(seen.calls(), 0);
    // Health checks carry no assertion.
    let response = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn audience_is_discovered_from_the_metadata_server() {
    let emulator = emulator().await;
    let metadata = emulator.metadata_base_url();
    let audience = idgate_server::discover_iap_audience(&metadata)
        .await
        .unwrap();
    assert_eq!(audience, "/projects/424242424242/apps/host-project");
    assert_eq!(audience, emulator.iap_audience_app_engine());

    // Through the configuration: discover_audience = true, endpoints under the emulator.
    let toml = format!(
        r#"
        [iap]
        discover_audience = true
        [google]
        base_url = "{}"
        metadata_url = "{}"
        "#,
        emulator.base_url(),
        metadata,
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let layers = idgate_server::from_config(&config).await.unwrap();
    assert!(layers.ready());
    let seen = Seen::default();
    let base = serve(layers.apply(recording_router(&seen))).await;
    let response = client()
        .get(format!("{base}/"))
        .header(
            "x-goog-iap-jwt-assertion",
            assertion(&emulator, "alice@example.com"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // No metadata server: a clear startup error.
    let error = idgate_server::discover_iap_audience(
        &"http://127.0.0.1:9/computeMetadata/v1/".parse().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("IAP audience"), "{error}");
    // The metadata client's error is the source, typed.
    match &error {
        idgate_server::ServerError::IapAudienceDiscovery { what, source } => {
            assert_eq!(*what, "project number");
            assert!(source.is_not_on_google_cloud(), "{source}");
        }
        other => panic!("unexpected error: {other}"),
    }
}
