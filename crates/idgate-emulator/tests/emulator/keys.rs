//! Key endpoints: exact shapes and headers; minted tokens verify against them.

use idgate_emulator::{Emulator, GOOGLE_ISSUER, IAP_ISSUER, Route, TokenSpec};
use std::time::Duration;

use crate::helpers::{emulator, get_json, verify};

#[tokio::test]
async fn oidc_jwks_has_google_shape_and_cache_headers() {
    let emu = Emulator::builder()
        .oidc_max_age(Duration::from_secs(19_876))
        .age(Duration::from_secs(42))
        .start()
        .await
        .unwrap();
    let resp = reqwest::get(emu.oidc_jwks_url()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=19876, must-revalidate, no-transform"
    );
    assert_eq!(resp.headers()["age"], "42");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "Google publishes two OIDC keys");
    for k in keys {
        let mut fields: Vec<_> = k.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["e"], "AQAB");
        assert_eq!(k["kid"].as_str().unwrap().len(), 40);
    }
    assert_eq!(emu.oidc_kids().len(), 2);
    assert_eq!(emu.hits(Route::OidcJwks), 1);
}

#[tokio::test]
async fn oidc_v1_certs_are_x509_over_the_same_keys() {
    let emu = emulator().await;
    let resp = reqwest::get(emu.oidc_pem_certs_url()).await.unwrap();
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=20000, must-revalidate, no-transform"
    );
    assert_eq!(resp.headers()["age"], "0");
    let certs: serde_json::Value = resp.json().await.unwrap();
    let map = certs.as_object().unwrap();
    assert_eq!(
        map.keys().cloned().collect::<Vec<_>>(),
        sorted(emu.oidc_kids())
    );
    let pem = map.values().next().unwrap().as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.trim_end().ends_with("-----END CERTIFICATE-----"));
    // The certificate wraps the same RSA key: a minted token verifies with the certificate's key.
    use x509_cert::der::DecodePem as _;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    assert!(
        cert.tbs_certificate
            .subject
            .to_string()
            .contains("federated-signon.system.gserviceaccount.com")
    );
    assert_eq!(
        cert.tbs_certificate.subject, cert.tbs_certificate.issuer,
        "self-signed"
    );
    let pkcs1 = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let key = jsonwebtoken::DecodingKey::from_rsa_der(pkcs1);
    let token = emu.mint(&TokenSpec::service_account("a@p.iam.gserviceaccount.com").audience("x"));
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&["x"]);
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
    assert_eq!(emu.hits(Route::OidcPemCerts), 1);
}

#[tokio::test]
async fn discovery_points_at_the_emulator() {
    let emu = emulator().await;
    let doc = get_json(emu.openid_configuration_url()).await;
    assert_eq!(doc["issuer"], "https://accounts.google.com");
    assert_eq!(doc["jwks_uri"], emu.oidc_jwks_url().as_str());
    assert_eq!(doc["token_endpoint"], emu.token_url().as_str());
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    assert_eq!(emu.hits(Route::OpenIdConfiguration), 1);
}

#[tokio::test]
async fn iap_keys_have_google_shapes() {
    let emu = Emulator::start().await.unwrap();
    let jwks = get_json(emu.iap_jwks_url()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        let mut fields: Vec<_> = k.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(
            (k["alg"].as_str(), k["crv"].as_str(), k["kty"].as_str()),
            (Some("ES256"), Some("P-256"), Some("EC"))
        );
    }
    let resp = reqwest::get(emu.iap_pem_url()).await.unwrap();
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let pems: serde_json::Value = resp.json().await.unwrap();
    let map = pems.as_object().unwrap();
    assert_eq!(
        map.keys().cloned().collect::<Vec<_>>(),
        sorted(emu.iap_kids())
    );
    for pem in map.values() {
        let pem = pem.as_str().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        // The PEM is the same key as the JWK: a minted assertion verifies with it.
        jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    }
    assert_eq!(emu.hits(Route::IapJwks), 1);
    assert_eq!(emu.hits(Route::IapPem), 1);
}

#[tokio::test]
async fn minted_tokens_verify_with_jsonwebtoken() {
    let emu = emulator().await;
    let sa = "caller@proj.iam.gserviceaccount.com";
    let token = emu.mint(&TokenSpec::service_account(sa).audience("https://api.test"));
    let claims = verify(
        emu.oidc_jwks_url(),
        &token,
        "https://api.test",
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(claims["email"], sa);
    assert_eq!(claims["sub"], idgate_emulator::numeric_id(sa));

    let iap = emu.mint(&TokenSpec::iap_user("user@example.com").hosted_domain("example.com"));
    let claims = verify(
        emu.iap_jwks_url(),
        &iap,
        &emu.iap_audience_app_engine(),
        IAP_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(claims["hd"], "example.com");
    assert_eq!(
        emu.iap_audience_app_engine(),
        format!(
            "/projects/{}/apps/{}",
            emu.project_number(),
            emu.project_id()
        )
    );
    // The SPKI PEM endpoint holds the same key.
    let pems = get_json(emu.iap_pem_url()).await;
    let kid = jsonwebtoken::decode_header(&iap).unwrap().kid.unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_ec_pem(pems[&kid].as_str().unwrap().as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[emu.iap_audience_app_engine()]);
    jsonwebtoken::decode::<serde_json::Value>(&iap, &key, &v).unwrap();
}

#[tokio::test]
async fn refuses_non_loopback_without_consent() {
    let err = Emulator::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        idgate_emulator::EmulatorError::NonLoopback(_)
    ));
}

#[tokio::test]
async fn stops_on_shutdown_and_on_drop() {
    let emu = emulator().await;
    let url = emu.oidc_jwks_url();
    emu.shutdown().await;
    assert!(reqwest::get(url).await.is_err());

    let emu = emulator().await;
    let url = emu.oidc_jwks_url();
    drop(emu);
    // Dropping signals the server; give the runtime a turn to close the listener.
    let mut closed = false;
    for _ in 0..100 {
        if reqwest::get(url.clone()).await.is_err() {
            closed = true;
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed);
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
