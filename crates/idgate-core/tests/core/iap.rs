//! Identity-Aware Proxy assertions.

use std::sync::Arc;

use idgate_core::keys::KeyFormat;
use idgate_core::verify::{BuildError, IapVerifier, VerifyError};
use idgate_emulator::TokenSpec;

use crate::support::World;

fn user(w: &World) -> TokenSpec {
    TokenSpec::iap_user("alice@example.com")
        .audience(w.emulator.iap_audience_app_engine())
        .issued_at(w.now())
}

#[tokio::test]
async fn an_iap_assertion_is_verified_with_both_iap_key_formats() {
    let w = World::new().await;
    let assertion = w.emulator.mint(
        &user(&w)
            .hosted_domain("example.com")
            .access_levels(["accessPolicies/1/accessLevels/corp"]),
    );
    let pem = IapVerifier::builder()
        .audience(w.emulator.iap_audience_app_engine())
        .clock(Arc::new(w.clock.clone()))
        .keys_url_as(w.emulator.iap_pem_url(), KeyFormat::IapPem)
        .build()
        .unwrap();
    for verifier in [w.iap(), pem] {
        let verified = verifier.verify(&assertion).await.unwrap();
        assert_eq!(verified.email(), "alice@example.com");
        assert!(verified.subject().starts_with("accounts.google.com:"));
        assert_eq!(verified.hosted_domain(), Some("example.com"));
        assert_eq!(
            verified.access_levels(),
            ["accessPolicies/1/accessLevels/corp"]
        );
        assert_eq!(verified.audience(), "/projects/123456789/apps/my-project");
    }
}

#[tokio::test]
async fn iap_rules() {
    let w = World::new().await;
    let now = w.now();
    let verifier = w.iap();
    let check = |spec: TokenSpec| {
        let token = w.emulator.mint(&spec);
        let verifier = verifier.clone();
        async move { verifier.verify(&token).await }
    };
    // Neither OIDC issuer (both are read as known issuers) is IAP's, and an RS256 token is not an IAP assertion.
    for issuer in ["https://accounts.google.com", "accounts.google.com"] {
        assert!(
            check(user(&w).issuer(issuer))
                .await
                .unwrap_err()
                .is_wrong_issuer(),
            "{issuer}"
        );
    }
    assert!(matches!(
        check(user(&w).sign_with_oidc_key()).await.unwrap_err(),
        VerifyError::UnsupportedAlgorithm { .. }
    ));
    assert!(
        check(user(&w).audience("/projects/123456789/apps/other"))
            .await
            .unwrap_err()
            .is_wrong_audience()
    );
    assert!(
        check(user(&w).audience("/projects/999/global/backendServices/1"))
            .await
            .unwrap_err()
            .is_wrong_audience()
    );
    // Lifetime: 10 minutes plus twice the leeway, no more.
    assert!(check(user(&w).lifetime(600 + 60)).await.is_ok());
    assert!(matches!(
        check(user(&w).lifetime(600 + 61)).await.unwrap_err(),
        VerifyError::LifetimeTooLong { .. }
    ));
    assert!(
        check(user(&w).issued_at(now - 700).lifetime(600))
            .await
            .unwrap_err()
            .is_expired()
    );
    assert_eq!(
        check(user(&w).tampered_signature()).await.unwrap_err(),
        VerifyError::InvalidSignature
    );
    assert_eq!(
        check(user(&w).unknown_key()).await.unwrap_err(),
        VerifyError::UnknownKeyId
    );
    assert!(check(user(&w).alg_none()).await.unwrap_err().is_malformed());
}

#[test]
fn iap_audiences_must_have_a_documented_shape() {
    assert_eq!(
        IapVerifier::builder().build().unwrap_err(),
        BuildError::NoAudience
    );
    for bad in [
        "my-project",
        "/projects/my-project/apps/my-project",
        "https://my-project.appspot.com",
    ] {
        assert!(
            matches!(
                IapVerifier::builder().audience(bad).build(),
                Err(BuildError::InvalidAudience(..))
            ),
            "{bad}"
        );
    }
}
