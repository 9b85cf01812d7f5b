//! Every TokenSpec modifier produces the token it promises.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_emulator::{GOOGLE_ISSUER, HmacKeyMaterial, IAP_ISSUER, SIGNATURE_REMOVED, TokenSpec};
use serde_json::json;

use crate::helpers::{emulator, get_json, parts, verify};

const SA: &str = "svc@proj.iam.gserviceaccount.com";
const AUD: &str = "https://api.test";

fn sa() -> TokenSpec {
    TokenSpec::service_account(SA).audience(AUD)
}

#[tokio::test]
async fn good_token_header_and_claims() {
    let emu = emulator().await;
    let (h, c, _) = parts(&emu.mint(&sa()));
    assert_eq!(
        h,
        json!({"alg": "RS256", "kid": emu.signing_oidc_kid().unwrap(), "typ": "JWT"})
    );
    assert_eq!(c["iss"], GOOGLE_ISSUER);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["azp"], c["sub"]);
    assert_eq!(c["email_verified"], true);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );

    let (h, c, _) =
        parts(&emu.mint(&TokenSpec::iap_user("u@example.com").access_levels(["a", "b"])));
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["kid"], emu.signing_iap_kid().unwrap().as_str());
    assert_eq!(c["iss"], IAP_ISSUER);
    assert_eq!(c["google"]["access_levels"], json!(["a", "b"]));
    assert!(
        c["sub"]
            .as_str()
            .unwrap()
            .starts_with("accounts.google.com:")
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
}

#[tokio::test]
async fn time_modifiers() {
    let emu = emulator().await;
    let expired = emu.mint(&sa().expired());
    let err = verify(emu.oidc_jwks_url(), &expired, AUD, GOOGLE_ISSUER)
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    ));
    let (_, c, _) = parts(&emu.mint(&sa().issued_at(100).expires_at(200).not_before(150)));
    assert_eq!(
        (c["iat"].as_i64(), c["exp"].as_i64(), c["nbf"].as_i64()),
        (Some(100), Some(200), Some(150))
    );
    let (_, c, _) = parts(&emu.mint(&sa().lifetime(7200)));
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
}

#[tokio::test]
async fn claim_modifiers_still_sign_correctly() {
    let emu = emulator().await;
    let token = emu.mint(
        &sa()
            .issuer("accounts.google.com")
            .claim("custom", json!({"nested": [1, 2]}))
            .without_claim("email")
            .email_verified("true"),
    );
    let claims = verify(emu.oidc_jwks_url(), &token, AUD, "accounts.google.com")
        .await
        .unwrap();
    assert_eq!(claims["custom"]["nested"][1], 2);
    assert!(claims.get("email").is_none());
    assert_eq!(claims["email_verified"], "true");
    let (_, c, _) = parts(&emu.mint(&sa().email_verified(false)));
    assert_eq!(c["email_verified"], false);
}

#[tokio::test]
async fn header_modifiers() {
    let emu = emulator().await;
    let (h, _, _) = parts(
        &emu.mint(
            &sa()
                .header("jku", "https://evil.test/jwks")
                .header("crit", json!(["exp"])),
        ),
    );
    assert_eq!(h["jku"], "https://evil.test/jwks");
    assert_eq!(h["crit"], json!(["exp"]));
    let (h, _, _) = parts(&emu.mint(&sa().kid("nope")));
    assert_eq!(h["kid"], "nope");
    let (h, _, _) = parts(&emu.mint(&sa().without_kid()));
    assert!(h.get("kid").is_none());
}

#[tokio::test]
async fn bad_signatures_fail_verification() {
    let emu = emulator().await;
    for bad in [sa().tampered_signature(), sa().unknown_key()] {
        let token = emu.mint(&bad);
        assert!(
            verify(emu.oidc_jwks_url(), &token, AUD, GOOGLE_ISSUER)
                .await
                .is_err()
        );
    }
    let (h, _, _) = parts(&emu.mint(&sa().unknown_key()));
    assert!(
        !emu.oidc_kids()
            .contains(&h["kid"].as_str().unwrap().to_owned())
    );
    // Tampering keeps the length.
    let good = parts(&emu.mint(&sa())).2;
    let bad = parts(&emu.mint(&sa().tampered_signature())).2;
    assert_eq!(good.len(), bad.len());
}

#[tokio::test]
async fn alg_none_and_signature_removed() {
    let emu = emulator().await;
    let token = emu.mint(&sa().alg_none());
    assert!(token.ends_with('.'));
    assert_eq!(parts(&token).0["alg"], "none");
    let token = emu.mint(&sa().signature_removed());
    assert_eq!(parts(&token).2, SIGNATURE_REMOVED);
}

#[tokio::test]
async fn hs256_confusion_is_keyed_with_the_public_key() {
    let emu = emulator().await;
    let token = emu.mint(&sa().hs256_with_public_key());
    let (h, _, _) = parts(&token);
    assert_eq!(h["alg"], "HS256");
    // A naive verifier that feeds the published key's bytes to HMAC accepts it; reproduce that here.
    let kid = h["kid"].as_str().unwrap();
    let pem = spki_pem_for(&emu, kid).await;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&[AUD]);
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(pem.as_bytes()),
        &v,
    )
    .unwrap();
    // The published-PEM variant uses the v1 certificate text.
    let token = emu.mint(&sa().hs256_with_public_key_as(HmacKeyMaterial::PublishedPem));
    let certs = get_json(emu.oidc_pem_certs_url()).await;
    let cert = certs[kid].as_str().unwrap();
    jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(cert.as_bytes()),
        &v,
    )
    .unwrap();
}

/// The SPKI PEM of an OIDC key, rebuilt from its JWK with the certificate's key bytes.
async fn spki_pem_for(emu: &idgate_emulator::Emulator, kid: &str) -> String {
    use x509_cert::der::{DecodePem as _, EncodePem as _};
    let certs = get_json(emu.oidc_pem_certs_url()).await;
    let cert = x509_cert::Certificate::from_pem(certs[kid].as_str().unwrap().as_bytes()).unwrap();
    cert.tbs_certificate
        .subject_public_key_info
        .to_pem(x509_cert::der::pem::LineEnding::LF)
        .unwrap()
}

#[tokio::test]
async fn cross_algorithm_signing() {
    let emu = emulator().await;
    let token = emu.mint(&sa().sign_with_iap_key());
    let (h, c, _) = parts(&token);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["kid"], emu.signing_iap_kid().unwrap().as_str());
    assert_eq!(c["iss"], GOOGLE_ISSUER);
    // It is a genuine IAP-key signature over an OIDC-shaped payload.
    verify(emu.iap_jwks_url(), &token, AUD, GOOGLE_ISSUER)
        .await
        .unwrap();
    assert!(
        verify(emu.oidc_jwks_url(), &token, AUD, GOOGLE_ISSUER)
            .await
            .is_err()
    );

    let token = emu.mint(&TokenSpec::iap_user("u@example.com").sign_with_oidc_key());
    let (h, _, sig) = parts(&token);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap().len(), 256);
    verify(
        emu.oidc_jwks_url(),
        &token,
        &emu.iap_audience_app_engine(),
        IAP_ISSUER,
    )
    .await
    .unwrap();
}
