//! Key rotation and retirement, for both key sets.

use idgate_emulator::{EmulatorError, GOOGLE_ISSUER, IAP_ISSUER, TokenSpec};

use crate::helpers::{emulator, get_json, verify};

#[tokio::test]
async fn oidc_rotation_publishes_then_retires() {
    let emu = emulator().await;
    let spec = TokenSpec::service_account("a@p.iam.gserviceaccount.com").audience("x");
    let old_kid = emu.signing_oidc_kid().unwrap();
    let old_token = emu.mint(&spec);

    let new_kid = emu.rotate_oidc_key().unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(emu.signing_oidc_kid().as_deref(), Some(new_kid.as_str()));
    assert_eq!(emu.oidc_kids(), [old_kid.clone(), new_kid.clone()]);
    let jwks = get_json(emu.oidc_jwks_url()).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let certs = get_json(emu.oidc_pem_certs_url()).await;
    assert!(certs.get(&new_kid).is_some() && certs.get(&old_kid).is_some());

    let new_token = emu.mint(&spec);
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    // Both verify while both are published.
    verify(emu.oidc_jwks_url(), &old_token, "x", GOOGLE_ISSUER)
        .await
        .unwrap();
    verify(emu.oidc_jwks_url(), &new_token, "x", GOOGLE_ISSUER)
        .await
        .unwrap();

    emu.retire_oidc_key(&old_kid).unwrap();
    assert_eq!(emu.oidc_kids(), std::slice::from_ref(&new_kid));
    assert!(
        verify(emu.oidc_jwks_url(), &old_token, "x", GOOGLE_ISSUER)
            .await
            .is_err()
    );
    verify(emu.oidc_jwks_url(), &new_token, "x", GOOGLE_ISSUER)
        .await
        .unwrap();
    assert!(matches!(
        emu.retire_oidc_key(&old_kid),
        Err(EmulatorError::UnknownKey(_))
    ));

    emu.retire_oidc_key(&new_kid).unwrap();
    assert!(matches!(
        emu.try_mint(&spec),
        Err(EmulatorError::NoSigningKey(_))
    ));
    assert_eq!(
        get_json(emu.oidc_jwks_url()).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn iap_rotation_publishes_then_retires() {
    let emu = emulator().await;
    let spec = TokenSpec::iap_user("u@example.com");
    let old_kid = emu.signing_iap_kid().unwrap();
    let new_kid = emu.rotate_iap_key().unwrap();
    let token = emu.mint(&spec);
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.unwrap(),
        new_kid
    );
    let pem = get_json(emu.iap_pem_url()).await;
    assert!(pem.get(&new_kid).is_some() && pem.get(&old_kid).is_some());
    emu.retire_iap_key(&old_kid).unwrap();
    assert_eq!(emu.iap_kids(), [new_kid]);
    verify(
        emu.iap_jwks_url(),
        &token,
        &emu.iap_audience_app_engine(),
        IAP_ISSUER,
    )
    .await
    .unwrap();
    assert!(emu.retire_iap_key("missing").is_err());
}
