//! Hostile IAP assertions, and external identities whose email is not verified.

use idgate_emulator::{HmacKeyMaterial, TokenSpec};
use serde_json::json;

use super::*;
use crate::support::*;

#[tokio::test]
async fn iap_layer_refuses_hostile_assertions() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = Site::iap(iap_verifier(&emu)).await;
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let good = mint(user());
    let t = now();
    let oidc_kid = emu.signing_oidc_kid().expect("OIDC kid");
    let h = |pairs: Vec<(&'static str, String)>| {
        Input::Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n, v.into_bytes()))
                .collect(),
        )
    };
    let cases = vec![
        token(
            "control: good assertion",
            good.clone(),
            200,
            "iap_assertion",
        ),
        token(
            "control: allowed user in upper case",
            mint(TokenSpec::iap_user("ALICE@Example.COM")),
            200,
            "iap_assertion",
        ),
        case(
            "missing assertion",
            Input::Path("/"),
            401,
            "missing_iap_assertion",
        ),
        case(
            "only the plain IAP headers",
            h(vec![
                (
                    "x-goog-authenticated-user-email",
                    format!("accounts.google.com:{ALLOWED_USER}"),
                ),
                (
                    "x-goog-authenticated-user-id",
                    "accounts.google.com:1".to_owned(),
                ),
            ]),
            401,
            "missing_iap_assertion",
        ),
        case(
            "duplicate assertion headers",
            h(vec![
                ("x-goog-iap-jwt-assertion", good.clone()),
                ("x-goog-iap-jwt-assertion", good.clone()),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "assertion with a Bearer prefix",
            h(vec![("x-goog-iap-jwt-assertion", format!("Bearer {good}"))]),
            401,
            "malformed",
        ),
        case(
            "assertion in Authorization instead",
            h(vec![("authorization", format!("Bearer {good}"))]),
            401,
            "missing_iap_assertion",
        ),
        case(
            "non-UTF-8 assertion (raw TCP)",
            Input::Raw(
                [
                    b"x-goog-iap-jwt-assertion: ".as_slice(),
                    b"\xff\xfe.\x80\x81.\xc3",
                    b"\r\n",
                ]
                .concat(),
            ),
            401,
            "not_ascii",
        ),
        token(
            "RS256 (OIDC key) on the IAP path",
            mint(user().sign_with_oidc_key()),
            401,
            "unsupported_algorithm",
        ),
        token(
            "an OIDC ID token as the assertion",
            mint(TokenSpec::service_account(ALLOWED_SA).audience(emu.iap_audience_app_engine())),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg none (empty signature: refused by shape first)",
            mint(user().alg_none()),
            401,
            "malformed",
        ),
        token(
            "alg none with a copied ES256 signature",
            segments(&mint(user().alg_none()), |s| {
                format!("{}.{}.{}", s[0], s[1], good.split('.').nth(2).unwrap_or(""))
            }),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with public key PEM",
            mint(user().hs256_with_public_key_as(HmacKeyMaterial::PublicKeyPem)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with public key DER",
            mint(user().hs256_with_public_key_as(HmacKeyMaterial::PublicKeyDer)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with published PEM",
            mint(user().hs256_with_public_key_as(HmacKeyMaterial::PublishedPem)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg ES384",
            mint(user().header("alg", "ES384")),
            401,
            "unsupported_algorithm",
        ),
        token(
            "kid missing",
            mint(user().without_kid()),
            401,
            "missing_kid",
        ),
        token("kid unknown", mint(user().kid("nope")), 401, "unknown_kid"),
        token(
            "kid of the OIDC key",
            mint(user().kid(oidc_kid)),
            401,
            "unknown_kid",
        ),
        token(
            "signed by an unpublished EC key",
            mint(user().unknown_key()),
            401,
            "unknown_kid",
        ),
        token(
            "kid path traversal",
            mint(user().kid("../../public_key")),
            401,
            "unknown_kid",
        ),
        token(
            "jwk header",
            mint(user().header("jwk", json!({"kty": "EC"}))),
            401,
            "forbidden_header",
        ),
        token(
            "x5c header",
            mint(user().header("x5c", json!([]))),
            401,
            "forbidden_header",
        ),
        token(
            "tampered signature",
            mint(user().tampered_signature()),
            401,
            "invalid_signature",
        ),
        token(
            "signature-removed assertion",
            mint(user().signature_removed()),
            401,
            "signature_removed",
        ),
        token(
            "DER-encoded ES256 signature length",
            segments(&good, |s| {
                format!("{}.{}.{}", s[0], s[1], b64([0x30u8; 72]))
            }),
            401,
            "invalid_signature",
        ),
        token(
            "3 segments of garbage",
            "a.b.c".to_owned(),
            401,
            "malformed",
        ),
        token("expired", mint(user().expired()), 401, "expired"),
        token(
            "exp passed beyond the leeway (-35 s)",
            mint(user().issued_at(t - 600 - 35).expires_at(t - 35)),
            401,
            "expired",
        ),
        token(
            "exp passed within the leeway (-25 s)",
            mint(user().issued_at(t - 600 - 25).expires_at(t - 25)),
            200,
            "iap_assertion",
        ),
        token(
            "iat beyond the leeway (+35 s)",
            mint(user().issued_at(t + 35)),
            401,
            "issued_in_future",
        ),
        token(
            "lifetime 660 s (10 min + 2 x leeway)",
            mint(user().issued_at(t - 60).lifetime(660)),
            200,
            "iap_assertion",
        ),
        token(
            "lifetime 661 s",
            mint(user().issued_at(t - 60).lifetime(661)),
            401,
            "lifetime_too_long",
        ),
        token(
            "lifetime an hour (an OIDC lifetime)",
            mint(user().lifetime(3600)),
            401,
            "lifetime_too_long",
        ),
        token(
            "iss Google accounts",
            mint(user().issuer("https://accounts.google.com")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss with a trailing slash",
            mint(user().issuer("https://cloud.google.com/iap/")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss over http://",
            mint(user().issuer("http://cloud.google.com/iap")),
            401,
            "wrong_issuer",
        ),
        token(
            "aud another app",
            mint(user().audience(format!("/projects/{}/apps/other", emu.project_number()))),
            401,
            "wrong_audience",
        ),
        token(
            "aud another project number",
            mint(user().audience(format!("/projects/1/apps/{PROJECT}"))),
            401,
            "wrong_audience",
        ),
        token(
            "aud as an array",
            mint(user().claim("aud", json!([emu.iap_audience_app_engine()]))),
            401,
            "malformed",
        ),
        token(
            "email missing",
            mint(user().without_claim("email")),
            401,
            "malformed",
        ),
        token(
            "email empty",
            mint(user().claim("email", "")),
            401,
            "missing_email",
        ),
        token(
            "exp as a string",
            mint(user().claim("exp", (t + 600).to_string())),
            401,
            "malformed",
        ),
        token(
            "allowed email with a suffix domain",
            mint(TokenSpec::iap_user("alice@example.com.evil.com")),
            403,
            "not_allowed",
        ),
        token(
            "allowed local part at a look-alike domain",
            mint(TokenSpec::iap_user("alice@evil-example.com")),
            403,
            "not_allowed",
        ),
        token(
            "Cyrillic a in the allowed email",
            mint(TokenSpec::iap_user("\u{430}lice@example.com")),
            403,
            "not_allowed",
        ),
        token(
            "fullwidth letter in the allowed email",
            mint(TokenSpec::iap_user("alice@ex\u{ff41}mple.com")),
            403,
            "not_allowed",
        ),
        token(
            "another user",
            mint(TokenSpec::iap_user("mallory@example.com")),
            403,
            "not_allowed",
        ),
    ];
    run(&site, Layer::Iap, &decisions, cases).await;
}

/// IAP with external identities (Identity Platform, a `gcip` claim): with email/password sign-up anyone can
/// register any address, so an email the identity provider did not verify may match no `emails` or `domains` entry
/// (issue #10). Google accounts (no `gcip`) are unaffected: IAP admits only addresses Google verified.
#[tokio::test]
async fn iap_external_identities_need_a_verified_email_to_be_listed() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let allowlist = idgate_core::policy::Allowlist::builder()
        .user_email(ALLOWED_USER)
        .user_domain("corp.example")
        .hosted_domain("workspace.example")
        .build()
        .expect("allowlist");
    let layer = idgate_server::RequireIapLayer::new(iap_verifier(&emu)).allowlist(allowlist);
    let site = Site::start(|r| r.layer(layer)).await;
    let gcip = |email: &str, verified: Option<bool>| {
        let mut claim = json!({
            "auth_time": now(),
            "email": email,
            "firebase": {"sign_in_provider": "password", "tenant": "tenant-1"},
            "sub": "gcip-user-1",
        });
        if let Some(v) = verified {
            claim["email_verified"] = json!(v);
        }
        emu.mint(&TokenSpec::iap_user(email).claim("gcip", claim))
    };
    let cases = vec![
        token(
            "control: Google account, listed email",
            emu.mint(&user()),
            200,
            "iap_assertion",
        ),
        token(
            "external, listed email, verified",
            gcip(ALLOWED_USER, Some(true)),
            200,
            "iap_assertion",
        ),
        token(
            "external, listed email, not verified",
            gcip(ALLOWED_USER, Some(false)),
            403,
            "not_allowed",
        ),
        token(
            "external, listed email, no email_verified",
            gcip(ALLOWED_USER, None),
            403,
            "not_allowed",
        ),
        token(
            "external, listed domain, not verified",
            gcip("ceo@corp.example", Some(false)),
            403,
            "not_allowed",
        ),
        token(
            "external, listed domain, verified",
            gcip("ceo@corp.example", Some(true)),
            200,
            "iap_assertion",
        ),
        token(
            "external, unlisted, verified",
            gcip("x@other.example", Some(true)),
            403,
            "not_allowed",
        ),
        token(
            "external, email_verified as a string",
            emu.mint(
                &TokenSpec::iap_user(ALLOWED_USER).claim("gcip", json!({"email_verified": "true"})),
            ),
            401,
            "malformed",
        ),
        token(
            "external, not verified, but a listed signed hd",
            emu.mint(
                &TokenSpec::iap_user("bob@workspace.example")
                    .claim("hd", "workspace.example")
                    .claim("gcip", json!({"email_verified": false})),
            ),
            200,
            "iap_assertion",
        ),
    ];
    run(&site, Layer::Iap, &decisions, cases).await;
    // The denial says why, for operators: the email would have been listed, had it been verified.
    let http = client();
    let response = http
        .get(site.url("/"))
        .header("x-goog-iap-jwt-assertion", gcip(ALLOWED_USER, Some(false)))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 403);
    let denied = decisions.last().expect("decision");
    assert_eq!(denied.reason, "not_allowed");
    assert!(denied.detail.ends_with("email_not_verified"), "{denied:?}");
    let response = http
        .get(site.url("/"))
        .header(
            "x-goog-iap-jwt-assertion",
            gcip("x@other.example", Some(false)),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 403);
    assert!(
        decisions
            .last()
            .expect("decision")
            .detail
            .ends_with("not_listed")
    );
}
