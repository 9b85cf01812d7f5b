//! RequireIdentityLayer end to end: every status, both header precedences, the legacy header, Cloud Run.

use http::StatusCode;
use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_core::verify::TrustedCloudRunInvokerCheck;
use idgate_emulator::{Fault, Route, TokenSpec};
use idgate_server::RequireIdentityLayer;

use crate::{
    ALLOWED_SA, AUDIENCE, OTHER_SA, Seen, allowlist, client, emulator, oidc_verifier,
    recording_router, serve,
};

async fn app(
    layer: impl FnOnce(RequireIdentityLayer) -> RequireIdentityLayer,
    seen: &Seen,
) -> (idgate_emulator::Emulator, String) {
    let emulator = emulator().await;
    let layer = layer(RequireIdentityLayer::new(oidc_verifier(&emulator)).allowlist(allowlist()));
    let base = serve(recording_router(seen).layer(layer)).await;
    (emulator, base)
}

fn token(emulator: &idgate_emulator::Emulator, email: &str) -> String {
    emulator.mint(&TokenSpec::service_account(email).audience(AUDIENCE))
}

#[tokio::test]
async fn valid_token_is_admitted_with_the_caller() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(token(&emulator, ALLOWED_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        format!("service_account {ALLOWED_SA}")
    );
    assert_eq!(seen.calls(), 1);

    // The `ID` scheme and a lowercase `bearer` are read the same way.
    for scheme in ["ID", "bearer"] {
        let value = format!("{scheme} {}", token(&emulator, ALLOWED_SA));
        let response = client()
            .get(format!("{base}/"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn missing_credential_is_401_bearer() {
    let seen = Seen::default();
    let (_emulator, base) = app(|l| l, &seen).await;
    let response = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("missing credential")
    );
    assert_eq!(seen.calls(), 0);
}

#[tokio::test]
async fn invalid_tokens_are_401_invalid_token_with_a_generic_body() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let bad = [
        emulator.mint(
            &TokenSpec::service_account(ALLOWED_SA)
                .audience(AUDIENCE)
                .expired(),
        ),
        emulator
            .mint(&TokenSpec::service_account(ALLOWED_SA).audience("https://other.idgate.test")),
        emulator.mint(
            &TokenSpec::service_account(ALLOWED_SA)
                .audience(AUDIENCE)
                .alg_none(),
        ),
        emulator.mint(
            &TokenSpec::service_account(ALLOWED_SA)
                .audience(AUDIENCE)
                .tampered_signature(),
        ),
        "not-a-jwt".to_owned(),
    ];
    for token in bad {
        let response = client()
            .get(format!("{base}/"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        let body = response.text().await.unwrap();
        assert_eq!(body, "invalid token");
        assert!(!body.contains(&token));
    }
    assert_eq!(seen.calls(), 0);
}

#[tokio::test]
async fn unreadable_credentials_are_401_never_a_panic() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let good = token(&emulator, ALLOWED_SA);
    // Two Authorization headers: ambiguous.
    let response = client()
        .get(format!("{base}/"))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Not ASCII, oversized, wrong scheme.
    let non_ascii = http::HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap();
    let oversized = format!("Bearer {}", "a".repeat(40_000));
    for value in [
        non_ascii,
        oversized.parse().unwrap(),
        "Basic dXNlcjpwdw==".parse().unwrap(),
    ] {
        let response = client()
            .get(format!("{base}/"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }
    assert_eq!(seen.calls(), 0);
}

#[tokio::test]
async fn not_allowed_is_403() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(token(&emulator, OTHER_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("www-authenticate").is_none());
    assert!(response.text().await.unwrap().starts_with("forbidden"));
    assert_eq!(seen.calls(), 0);
}

#[tokio::test]
async fn serverless_authorization_wins_over_authorization() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let good = format!("Bearer {}", token(&emulator, ALLOWED_SA));
    let stripped = format!(
        "Bearer {}",
        emulator.mint(
            &TokenSpec::service_account(ALLOWED_SA)
                .audience(AUDIENCE)
                .signature_removed()
        )
    );
    // As on Cloud Run: the consumed Authorization arrives stripped, the X-Serverless-Authorization intact.
    let response = client()
        .get(format!("{base}/"))
        .header("authorization", &stripped)
        .header("x-serverless-authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The other way round, the X-Serverless-Authorization decides, and it is bad.
    let response = client()
        .get(format!("{base}/"))
        .header("authorization", &good)
        .header("x-serverless-authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn legacy_header_only_when_trusted() {
    let seen = Seen::default();
    let (_emulator, base) = app(|l| l, &seen).await;
    let response = client()
        .get(format!("{base}/"))
        .header("x-appengine-inbound-appid", "billing-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "untrusted: the header is ignored"
    );
    assert_eq!(seen.calls(), 0);

    let trusted = Seen::default();
    let (_emulator, base) = app(
        |l| l.trust_legacy_header(TrustedAppEngineFrontEnd::assume_behind_app_engine()),
        &trusted,
    )
    .await;
    let response = client()
        .get(format!("{base}/"))
        .header("x-appengine-inbound-appid", "billing-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "app_engine_app billing-prod"
    );
    let response = client()
        .get(format!("{base}/"))
        .header("x-appengine-inbound-appid", "other-proj")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client()
        .get(format!("{base}/"))
        .header("x-appengine-inbound-appid", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(trusted.calls(), 1);
}

#[tokio::test]
async fn signature_removed_is_401_with_advice_unless_opted_in() {
    let seen = Seen::default();
    let (emulator, base) = app(|l| l, &seen).await;
    let stripped = emulator.mint(
        &TokenSpec::service_account(ALLOWED_SA)
            .audience(AUDIENCE)
            .signature_removed(),
    );
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(&stripped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("X-Serverless-Authorization"), "{body}");
    assert!(body.contains("trust_cloud_run_invoker_check"), "{body}");
    assert_eq!(seen.calls(), 0);

    let trusting = Seen::default();
    let (emulator, base) = app(
        |l| {
            l.trust_cloud_run_invoker_check(
                TrustedCloudRunInvokerCheck::assume_only_reachable_through_cloud_run(),
            )
        },
        &trusting,
    )
    .await;
    let stripped = emulator.mint(
        &TokenSpec::service_account(ALLOWED_SA)
            .audience(AUDIENCE)
            .signature_removed(),
    );
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(&stripped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        format!("service_account {ALLOWED_SA}")
    );
    // The claims are still checked: wrong audience, expired, and the allowlist.
    for spec in [
        TokenSpec::service_account(ALLOWED_SA)
            .audience("https://other.idgate.test")
            .signature_removed(),
        TokenSpec::service_account(ALLOWED_SA)
            .audience(AUDIENCE)
            .expired()
            .signature_removed(),
    ] {
        let response = client()
            .get(format!("{base}/"))
            .bearer_auth(emulator.mint(&spec))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let other = emulator.mint(
        &TokenSpec::service_account(OTHER_SA)
            .audience(AUDIENCE)
            .signature_removed(),
    );
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(trusting.calls(), 1);
}

#[tokio::test]
async fn exempt_paths_need_no_credential() {
    let seen = Seen::default();
    let (_emulator, base) = app(|l| l.exempt_path("/healthz"), &seen).await;
    let response = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "anonymous");
    // Exact match only.
    let response = client()
        .get(format!("{base}/healthz/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    let seen = Seen::default();
    let emulator = emulator().await;
    // A cold cache (no warm-up) and a failing key endpoint.
    emulator.inject(Route::OidcJwks, Fault::Status(500), 100);
    let layer = RequireIdentityLayer::new(oidc_verifier(&emulator)).allowlist(allowlist());
    let base = serve(recording_router(&seen).layer(layer)).await;
    let response = client()
        .get(format!("{base}/"))
        .bearer_auth(token(&emulator, ALLOWED_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(seen.calls(), 0);
    assert!(emulator.hits(Route::OidcJwks) >= 1);
}

/// Issue #10, item 9: a key URL in the config is read in whichever format its document is (Google's libraries
/// default to `oauth2/v1/certs`, the IAP sample to `iap/verify/public_key`); the family never comes from the
/// document, so IAP's keys at the OIDC key URL fail the startup with a message that says so.
#[tokio::test]
async fn config_key_urls_are_read_in_the_format_their_documents_have() {
    let emulator = emulator().await;
    let config = |oidc_keys_url: &str| {
        idgate_core::config::Config::from_toml_str(&format!(
            r#"
            [inbound]
            audiences = ["{AUDIENCE}"]
            [inbound.allow]
            project_ids = ["billing-prod"]
            [google]
            oidc_keys_url = "{oidc_keys_url}"
            "#
        ))
        .unwrap()
    };
    for url in [emulator.oidc_pem_certs_url(), emulator.oidc_jwks_url()] {
        let layers = idgate_server::from_config(&config(url.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let seen = Seen::default();
        let base = serve(layers.apply(recording_router(&seen))).await;
        let response = client()
            .get(format!("{base}/"))
            .bearer_auth(token(&emulator, ALLOWED_SA))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(seen.calls(), 1);
    }
    for url in [emulator.iap_jwks_url(), emulator.iap_pem_url()] {
        // The key document's fault is the cause of the startup error: it is in the chain, not the top message.
        let error = idgate_server::from_config(&config(url.as_str()))
            .await
            .unwrap_err();
        let error = idgate_core::ErrorChain(&error).to_string();
        assert!(
            error.contains("ES256 keys, not the RS256 keys"),
            "{url}: {error}"
        );
    }
}
