//! Google OIDC ID tokens: what is accepted, and every way a token is refused.

use std::time::Duration;

use idgate_core::keys::KeyFormat;
use idgate_core::token::Malformed;
use idgate_core::verify::{AudienceMatch, BuildError, OidcVerifier, VerifyError};
use idgate_emulator::TokenSpec;
use serde_json::json;

use crate::support::{AUDIENCE, CALLER, World};

fn sa() -> TokenSpec {
    TokenSpec::service_account(CALLER).audience(AUDIENCE)
}

#[tokio::test]
async fn a_service_account_token_is_verified_with_both_google_key_formats() {
    let w = World::new().await;
    let token = w.emulator.mint(&sa().issued_at(w.now()));
    for verifier in [
        w.oidc(),
        w.oidc_builder()
            .keys_url_as(
                w.emulator.oidc_pem_certs_url(),
                KeyFormat::OidcPemCertificates,
            )
            .build()
            .unwrap(),
        // The format read from the document, as google-auth does with oauth2/v1/certs (issue #10, item 9).
        w.oidc_builder()
            .keys_url(w.emulator.oidc_pem_certs_url())
            .build()
            .unwrap(),
    ] {
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(verified.email(), Some(CALLER));
        assert!(verified.email_verified());
        assert_eq!(verified.audience(), AUDIENCE);
        assert_eq!(verified.issuer(), "https://accounts.google.com");
        assert!(verified.subject().bytes().all(|b| b.is_ascii_digit()));
        assert!(!format!("{verified:?}").contains(&token));
    }
}

async fn rejects(w: &World, spec: TokenSpec) -> VerifyError {
    rejected_by(&w.oidc(), w, spec).await
}

async fn rejected_by(verifier: &OidcVerifier, w: &World, spec: TokenSpec) -> VerifyError {
    let token = w.emulator.mint(&spec);
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(
        !err.to_string().contains(&token),
        "the error must not echo the token"
    );
    err
}

/// Each hostile header, to a verifier that has seen nothing, and to one that has just accepted a genuine token signed
/// with the same key (so it knows that token's header segment: `verify/known_headers.rs` must not let a header with
/// other bytes skip the rules).
#[tokio::test]
async fn hostile_headers_are_refused_before_any_key_is_used() {
    let w = World::new().await;
    let now = w.now();
    let warm = w.oidc();
    warm.verify(&w.emulator.mint(&sa().issued_at(now)))
        .await
        .unwrap();
    for verifier in [w.oidc(), warm] {
        let rejects = |spec| rejected_by(&verifier, &w, spec);
        // `alg: none` with an empty signature is refused on shape, with a signature on its algorithm: both before
        // any key.
        assert!(rejects(sa().issued_at(now).alg_none()).await.is_malformed());
        assert!(matches!(
            rejects(sa().issued_at(now).hs256_with_public_key()).await,
            VerifyError::UnsupportedAlgorithm { .. }
        ));
        assert!(matches!(
            rejects(sa().issued_at(now).sign_with_iap_key()).await,
            VerifyError::UnsupportedAlgorithm { .. }
        ));
        assert_eq!(
            rejects(sa().issued_at(now).without_kid()).await,
            VerifyError::MissingKeyId
        );
        for (name, value) in [
            ("jku", json!("https://evil.example/keys")),
            ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
            ("x5u", json!("https://evil.example/cert")),
            ("x5c", json!(["MIIB"])),
            ("crit", json!(["exp"])),
            ("jku", serde_json::Value::Null),
        ] {
            assert!(
                matches!(
                    rejects(sa().issued_at(now).header(name, value)).await,
                    VerifyError::ForbiddenHeader(_)
                ),
                "{name}"
            );
        }
        // A kid that is not a string is a malformed header, not a lookup.
        assert!(matches!(
            rejects(sa().issued_at(now).header("kid", json!(42))).await,
            VerifyError::Malformed(Malformed::BadHeader)
        ));
    }
}

#[tokio::test]
async fn keys_and_signatures() {
    let w = World::new().await;
    let now = w.now();
    assert_eq!(
        rejects(&w, sa().issued_at(now).unknown_key()).await,
        VerifyError::UnknownKeyId
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).kid("../../etc/passwd")).await,
        VerifyError::UnknownKeyId
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).kid("k".repeat(5000))).await,
        VerifyError::UnknownKeyId
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).tampered_signature()).await,
        VerifyError::InvalidSignature
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).signature_removed()).await,
        VerifyError::SignatureRemoved
    );
    assert!(
        rejects(&w, sa().issued_at(now).signature_removed())
            .await
            .is_signature_removed()
    );
}

#[tokio::test]
async fn issuer_and_audience_are_exact() {
    let w = World::new().await;
    let now = w.now();
    let legacy = w
        .emulator
        .mint(&sa().issued_at(now).issuer("accounts.google.com"));
    assert!(
        w.oidc().verify(&legacy).await.is_ok(),
        "the legacy issuer form is Google's too"
    );
    for iss in [
        "https://accounts.google.com/",
        "http://accounts.google.com",
        "https://cloud.google.com/iap",
        "",
    ] {
        assert!(
            rejects(&w, sa().issued_at(now).issuer(iss))
                .await
                .is_wrong_issuer(),
            "{iss:?}"
        );
    }
    for aud in [
        "https://my-service-abc123-uc.a.run.app/",
        "https://my-service-abc123-uc.a.run.app/path",
        "https://other.a.run.app",
        "my-service-abc123-uc.a.run.app",
    ] {
        assert!(
            rejects(&w, sa().issued_at(now).audience(aud))
                .await
                .is_wrong_audience(),
            "{aud:?}"
        );
    }
    // Audience arrays are never issued by Google; one that smuggles ours in is malformed.
    assert!(matches!(
        rejects(
            &w,
            sa().issued_at(now)
                .claim("aud", json!([AUDIENCE, "https://other"]))
        )
        .await,
        VerifyError::Malformed(Malformed::BadClaims)
    ));
}

#[tokio::test]
async fn origin_matching_accepts_paths_on_the_configured_origin_only() {
    let w = World::new().await;
    let now = w.now();
    let verifier = w
        .oidc_builder()
        .audience_match(AudienceMatch::Origin)
        .build()
        .unwrap();
    for ok in [
        AUDIENCE,
        "https://my-service-abc123-uc.a.run.app/",
        "https://my-service-abc123-uc.a.run.app/jobs?x=1",
        "https://my-service-abc123-uc.a.run.app/a/b%20c#frag",
    ] {
        let token = w.emulator.mint(&sa().issued_at(now).audience(ok));
        assert!(verifier.verify(&token).await.is_ok(), "{ok}");
    }
    for bad in [
        "https://my-service-abc123-uc.a.run.app.evil.com/",
        "https://my-service-abc123-uc.a.run.app:8443/",
        "http://my-service-abc123-uc.a.run.app/",
        "https://user@my-service-abc123-uc.a.run.app/",
        // Non-canonical spellings a lenient parser folds into the configured origin (issue #10, item 6).
        "https://my-service-abc123-uc.a.run.app\\@evil.com/",
        "https:my-service-abc123-uc.a.run.app/x",
        "https:/my-service-abc123-uc.a.run.app/x",
        " https://my-service-abc123-uc.a.run.app/",
        "https://my-service-abc123-uc.a.run.app/\tx",
        "https://my-service-\tabc123-uc.a.run.app/",
        "https://my-service-abc123-uc.a.run.app:443/",
        "https://MY-SERVICE-abc123-uc.a.run.app/",
        "HTTPS://my-service-abc123-uc.a.run.app/",
        "https://my-service-abc123-uc.a.run.app/a b",
        "https://my-service-abc123-uc.a.run.app./",
        "https://my-service-abc123-uc.a.run.app/..//x/../",
        "https://:@my-service-abc123-uc.a.run.app/",
    ] {
        let token = w.emulator.mint(&sa().issued_at(now).audience(bad));
        assert!(
            verifier
                .verify(&token)
                .await
                .unwrap_err()
                .is_wrong_audience(),
            "{bad}"
        );
    }
    assert!(matches!(
        OidcVerifier::builder()
            .audience("not a url")
            .audience_match(AudienceMatch::Origin)
            .build(),
        Err(BuildError::InvalidAudience(..))
    ));
}

#[tokio::test]
async fn times_are_checked_at_the_leeway_boundary() {
    let w = World::new().await;
    let now = w.now();
    let leeway = 30;
    let ok = |spec: TokenSpec| {
        let token = w.emulator.mint(&spec);
        let verifier = w.oidc();
        async move { verifier.verify(&token).await }
    };
    // exp: accepted until exp + leeway.
    assert!(
        ok(sa().issued_at(now - 3600).expires_at(now - leeway + 1))
            .await
            .is_ok()
    );
    assert!(
        ok(sa().issued_at(now - 3600).expires_at(now - leeway))
            .await
            .unwrap_err()
            .is_expired()
    );
    assert!(
        ok(sa().issued_at(now - 3600).expires_at(now - leeway - 1))
            .await
            .unwrap_err()
            .is_expired()
    );
    // iat: up to leeway in the future.
    assert!(ok(sa().issued_at(now + leeway)).await.is_ok());
    assert_eq!(
        ok(sa().issued_at(now + leeway + 1)).await.unwrap_err(),
        VerifyError::IssuedInFuture
    );
    // nbf: honoured with the same leeway.
    assert!(
        ok(sa().issued_at(now).not_before(now + leeway))
            .await
            .is_ok()
    );
    assert_eq!(
        ok(sa().issued_at(now).not_before(now + leeway + 1))
            .await
            .unwrap_err(),
        VerifyError::NotYetValid
    );
    // Lifetime: at most one hour plus the leeway.
    assert!(
        ok(sa().issued_at(now).lifetime(3600 + leeway))
            .await
            .is_ok()
    );
    assert!(matches!(
        ok(sa().issued_at(now).lifetime(3600 + leeway + 1))
            .await
            .unwrap_err(),
        VerifyError::LifetimeTooLong { .. }
    ));
    assert!(ok(sa().expired()).await.unwrap_err().is_expired());
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_malformed() {
    let w = World::new().await;
    let now = w.now();
    for (name, value) in [
        ("exp", json!((now + 600).to_string())),
        ("exp", json!(1.5)),
        ("iat", json!(null)),
        ("aud", json!(12345)),
        ("email_verified", json!("true")),
        ("email", json!(["a@b.c"])),
        ("iss", json!({"x": 1})),
    ] {
        assert_eq!(
            rejects(&w, sa().issued_at(now).claim(name, value.clone())).await,
            VerifyError::Malformed(Malformed::BadClaims),
            "{name}={value}"
        );
    }
    for missing in ["exp", "iat", "sub", "aud", "iss"] {
        assert_eq!(
            rejects(&w, sa().issued_at(now).without_claim(missing)).await,
            VerifyError::Malformed(Malformed::BadClaims),
            "{missing}"
        );
    }
}

#[tokio::test]
async fn an_email_is_trusted_only_when_verified() {
    let w = World::new().await;
    let now = w.now();
    assert_eq!(
        rejects(&w, sa().issued_at(now).email_verified(false)).await,
        VerifyError::EmailNotVerified
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).without_claim("email_verified")).await,
        VerifyError::EmailNotVerified
    );
    assert_eq!(
        rejects(&w, sa().issued_at(now).without_claim("email")).await,
        VerifyError::MissingEmail
    );
    // Opting out of the requirement still never exposes an unverified email.
    let verifier = w
        .oidc_builder()
        .require_verified_email(false)
        .build()
        .unwrap();
    let token = w.emulator.mint(&sa().issued_at(now).email_verified(false));
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.email(), None);
    assert!(!verified.email_verified());
}

#[tokio::test]
async fn structurally_broken_tokens() {
    let w = World::new().await;
    let verifier = w.oidc();
    let good = w.emulator.mint(&sa().issued_at(w.now()));
    // Warm: the good token memoized, its header known; none of the cases may be answered from either.
    assert!(verifier.verify(&good).await.is_ok());
    assert!(verifier.verify(&format!(" {good}\r\n")).await.is_ok());
    let (head, rest) = good.split_once('.').unwrap();
    let cases = [
        (String::new(), Malformed::SegmentCount),
        ("a.b".to_owned(), Malformed::SegmentCount),
        (format!("{good}.extra"), Malformed::SegmentCount),
        (format!("{head}==.{rest}"), Malformed::NotBase64Url),
        (
            format!("{head}.{}", rest.replacen('.', "+.", 1)),
            Malformed::NotBase64Url,
        ),
        (format!("{}.{rest}", "e30"), Malformed::BadHeader),
        (format!("bm90IGpzb24.{rest}"), Malformed::BadHeader),
        (
            format!("{good}{}", "A".repeat(16 * 1024)),
            Malformed::TooLarge,
        ),
        // Only ASCII whitespace around a token is HTTP's; anything else is part of it.
        (format!("{good}\u{a0}"), Malformed::NotBase64Url),
        (format!("\u{3000}{good}"), Malformed::NotBase64Url),
        (format!("{good}\u{200b}"), Malformed::NotBase64Url),
    ];
    for (token, expected) in cases {
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            VerifyError::Malformed(expected)
        );
    }
}

#[tokio::test]
async fn the_memo_rechecks_expiry_against_the_clock() {
    let w = World::new().await;
    let verifier = w.oidc();
    let token = w.emulator.mint(&sa().issued_at(w.now()).lifetime(600));
    assert!(verifier.verify(&token).await.is_ok());
    assert!(verifier.verify(&token).await.is_ok(), "memo hit");
    w.clock.advance(Duration::from_secs(600 + 30));
    assert!(
        verifier.verify(&token).await.unwrap_err().is_expired(),
        "a memoized token still expires"
    );
    // A token that differs by one byte is never answered from the memo.
    let tampered = w
        .emulator
        .mint(&sa().issued_at(w.now()).tampered_signature());
    assert_eq!(
        verifier.verify(&tampered).await.unwrap_err(),
        VerifyError::InvalidSignature
    );
}

#[test]
fn a_verifier_always_has_an_audience() {
    assert_eq!(
        OidcVerifier::builder().build().unwrap_err(),
        BuildError::NoAudience
    );
    assert!(matches!(
        OidcVerifier::builder().audience("").build(),
        Err(BuildError::InvalidAudience(..))
    ));
    assert_eq!(
        OidcVerifier::builder()
            .audience(AUDIENCE)
            .leeway(Duration::from_secs(301))
            .build()
            .unwrap_err(),
        BuildError::LeewayTooLarge(301)
    );
}

#[tokio::test]
async fn cloud_run_checked_tokens_need_the_marker_and_never_leak_into_the_memo() {
    use idgate_core::verify::TrustedCloudRunInvokerCheck;
    let w = World::new().await;
    let now = w.now();
    let verifier = w.oidc();
    let trust = TrustedCloudRunInvokerCheck::assume_only_reachable_through_cloud_run();
    let stripped = w.emulator.mint(&sa().issued_at(now).signature_removed());

    let verified = verifier.verify_cloud_run_checked(&stripped, trust).unwrap();
    assert_eq!(verified.email(), Some(CALLER));
    // Accepting it on Cloud Run's word must not teach the memo to accept it on the normal path.
    assert_eq!(
        verifier.verify(&stripped).await.unwrap_err(),
        VerifyError::SignatureRemoved
    );

    // Every claim rule still applies.
    for spec in [
        sa().issued_at(now)
            .audience("https://other.a.run.app")
            .signature_removed(),
        sa().issued_at(now)
            .issuer("https://evil.example")
            .signature_removed(),
        sa().expired().signature_removed(),
        sa().issued_at(now)
            .email_verified(false)
            .signature_removed(),
        sa().issued_at(now).alg_none(),
        sa().issued_at(now)
            .header("jku", json!("https://evil.example"))
            .signature_removed(),
    ] {
        assert!(
            verifier
                .verify_cloud_run_checked(&w.emulator.mint(&spec), trust)
                .is_err()
        );
    }
    // A token that still has a signature is verified, never trusted.
    let signed = w.emulator.mint(&sa().issued_at(now).tampered_signature());
    assert_eq!(
        verifier
            .verify_cloud_run_checked(&signed, trust)
            .unwrap_err(),
        VerifyError::InvalidSignature
    );
}

#[tokio::test]
async fn a_token_one_verifier_just_accepted_is_judged_afresh_by_another() {
    let w = World::new().await;
    let mine = w.oidc();
    let theirs = OidcVerifier::builder()
        .audience("https://another-service.a.run.app")
        .clock(std::sync::Arc::new(w.clock.clone()))
        .keys(mine.keys().clone())
        .build()
        .unwrap();
    let token = w.emulator.mint(&sa().issued_at(w.now()));
    for _ in 0..3 {
        // Same thread, same token, in and out of the per-thread cache of recent tokens.
        assert!(mine.verify(&token).await.is_ok());
        assert!(theirs.verify(&token).await.unwrap_err().is_wrong_audience());
    }
}

#[tokio::test]
async fn cached_callers_never_mix_tokens_up() {
    use idgate_core::identity::Caller;
    let w = World::new().await;
    let verifier = w.oidc();
    let emails = [
        "a@proj-a.iam.gserviceaccount.com",
        "b@proj-b.iam.gserviceaccount.com",
    ];
    // More tokens than the per-thread caches hold, presented in turn on one thread, each several times.
    let tokens: Vec<(String, &str)> = (0..6)
        .map(|i| {
            let email = emails[i % 2];
            let token = TokenSpec::service_account(email)
                .audience(AUDIENCE)
                .issued_at(w.now() - i64::try_from(i).unwrap());
            (w.emulator.mint(&token), email)
        })
        .collect();
    for _ in 0..4 {
        for (token, email) in &tokens {
            let caller = Caller::from_id_token(&verifier.verify(token).await.unwrap()).unwrap();
            assert_eq!(caller.email(), Some(*email));
        }
    }
}

/// `segment` with its last character's unused low bits set: the same bytes to a lenient decoder, so a second
/// spelling of the same token. Strict decoding refuses it. `None` for a segment whose length leaves no unused bits.
fn with_trailing_bits_set(segment: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if segment.len().is_multiple_of(4) {
        return None;
    }
    let last = segment.as_bytes()[segment.len() - 1];
    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
    let changed = ALPHABET[value | 1] as char;
    Some(format!("{}{changed}", &segment[..segment.len() - 1]))
}

/// A header segment a verifier has accepted is not decoded again (`verify/known_headers.rs`); everything else about
/// a token still is checked: every other segment decoded strictly, the signature, the claims. What someone holding
/// one genuine token can try with its header: graft another payload or signature under it, respell a segment, or
/// break its encoding.
#[tokio::test]
async fn a_known_header_vouches_for_its_own_bytes_only() {
    let w = World::new().await;
    let verifier = w.oidc_builder().memo_capacity(0).build().unwrap();
    let genuine = w.emulator.mint(&sa().issued_at(w.now()));
    verifier.verify(&genuine).await.unwrap();
    // Again, now through the known header.
    verifier.verify(&genuine).await.unwrap();
    let mut segments = genuine.split('.');
    let (header, payload, signature) = (
        segments.next().unwrap(),
        segments.next().unwrap(),
        segments.next().unwrap(),
    );

    // Another token's claims under the known header and this token's signature.
    let other = w.emulator.mint(
        &sa()
            .issued_at(w.now())
            .claim("email", "admin@my-project.iam.gserviceaccount.com"),
    );
    let other_payload = other.split('.').nth(1).unwrap();
    assert_eq!(
        verifier
            .verify(&format!("{header}.{other_payload}.{signature}"))
            .await
            .unwrap_err(),
        VerifyError::InvalidSignature
    );
    // A genuine token under the same header bytes, for another audience, is still judged on its claims.
    let elsewhere = w.emulator.mint(
        &TokenSpec::service_account(CALLER)
            .audience("https://elsewhere.example.com")
            .issued_at(w.now()),
    );
    assert_eq!(elsewhere.split('.').next(), Some(header));
    assert!(matches!(
        verifier.verify(&elsewhere).await.unwrap_err(),
        VerifyError::WrongAudience { .. }
    ));

    // An RSA-2048 signature is 342 characters: 4 unused bits.
    let respelled = with_trailing_bits_set(signature).unwrap();
    let mut refused = vec![
        // The same signature bytes spelled another way: a lenient decoder would accept this second token.
        format!("{header}.{payload}.{respelled}"),
        // A length no encoding has, and bytes outside the alphabet, in each segment after the known header.
        format!("{header}.{payload}.{}", &signature[1..]),
        format!(
            "{header}.{payload}{}.{signature}",
            "A".repeat((5 - payload.len() % 4) % 4)
        ),
        format!("{header}.{payload}.{}+", &signature[..signature.len() - 1]),
        format!("{header}.{payload}/.{signature}"),
        format!("{header}.{payload}.{signature}="),
    ];
    if let Some(respelled) = with_trailing_bits_set(payload) {
        refused.push(format!("{header}.{respelled}.{signature}"));
    }
    for token in refused {
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            VerifyError::Malformed(Malformed::NotBase64Url),
            "{token}"
        );
    }
    // The genuine token is still accepted after all that.
    verifier.verify(&genuine).await.unwrap();
}
