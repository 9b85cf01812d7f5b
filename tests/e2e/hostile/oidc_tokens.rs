//! Bent OIDC tokens: each case changes one thing in an otherwise good token, so a refusal is about that thing.

use idgate_emulator::{HmacKeyMaterial, TokenSpec};
use serde_json::json;

use super::*;
use crate::support::*;

/// Algorithms, key IDs, header-supplied keys and signatures.
#[tokio::test]
async fn oidc_refuses_forged_algorithms_keys_and_signatures() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let good = mint(sa());
    let iap_kid = emu.signing_iap_kid().expect("IAP kid");
    let other_oidc_kid = emu
        .oidc_kids()
        .into_iter()
        .find(|k| Some(k) != emu.signing_oidc_kid().as_ref())
        .expect("a second published OIDC key");
    let cases = vec![
        // Control: the good token is admitted (proves every refusal below is about the one thing bent).
        token("control: good token", good.clone(), 200, "authorization"),
        // Algorithms.
        token(
            "alg none (empty signature: refused by shape first)",
            mint(sa().alg_none()),
            401,
            "malformed",
        ),
        token(
            "alg none with a copied RS256 signature",
            segments(&mint(sa().alg_none()), |s| {
                format!("{}.{}.{}", s[0], s[1], good.split('.').nth(2).unwrap_or(""))
            }),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with public key PEM",
            mint(sa().hs256_with_public_key_as(HmacKeyMaterial::PublicKeyPem)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with public key DER",
            mint(sa().hs256_with_public_key_as(HmacKeyMaterial::PublicKeyDer)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "HS256 keyed with published cert PEM",
            mint(sa().hs256_with_public_key_as(HmacKeyMaterial::PublishedPem)),
            401,
            "unsupported_algorithm",
        ),
        token(
            "ES256 (IAP key) on the OIDC path",
            mint(sa().sign_with_iap_key()),
            401,
            "unsupported_algorithm",
        ),
        token(
            "an IAP assertion as a bearer token",
            mint(user()),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg RS256 lowercase",
            mint(sa().header("alg", "rs256")),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg RS512",
            mint(sa().header("alg", "RS512")),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg PS256",
            mint(sa().header("alg", "PS256")),
            401,
            "unsupported_algorithm",
        ),
        token(
            "alg as a number",
            mint(sa().header("alg", 256)),
            401,
            "malformed",
        ),
        token(
            "alg missing",
            segments(&good, |s| {
                format!("{}.{}.{}", b64(r#"{"kid":"x","typ":"JWT"}"#), s[1], s[2])
            }),
            401,
            "malformed",
        ),
        // Key IDs.
        token("kid missing", mint(sa().without_kid()), 401, "missing_kid"),
        token(
            "kid null",
            mint(sa().header("kid", serde_json::Value::Null)),
            401,
            "missing_kid",
        ),
        token(
            "kid unknown",
            mint(sa().kid("no-such-key")),
            401,
            "unknown_kid",
        ),
        token(
            "signed by an unpublished key",
            mint(sa().unknown_key()),
            401,
            "unknown_kid",
        ),
        token(
            "kid path traversal",
            mint(sa().kid("../../../../etc/passwd")),
            401,
            "unknown_kid",
        ),
        token(
            "kid URL",
            mint(sa().kid("https://evil.example/jwks.json")),
            401,
            "unknown_kid",
        ),
        token(
            "kid huge (4000 chars)",
            mint(sa().kid("k".repeat(4000))),
            401,
            "unknown_kid",
        ),
        token("kid empty", mint(sa().kid("")), 401, "unknown_kid"),
        token(
            "kid a number",
            mint(sa().header("kid", 7)),
            401,
            "malformed",
        ),
        token(
            "kid an object",
            mint(sa().header("kid", json!({"kid": "x"}))),
            401,
            "malformed",
        ),
        token(
            "kid an array",
            mint(sa().header("kid", json!([iap_kid.clone()]))),
            401,
            "malformed",
        ),
        token(
            "kid of the IAP key on RS256",
            mint(sa().kid(iap_kid.clone())),
            401,
            "unknown_kid",
        ),
        token(
            "kid of another published OIDC key",
            mint(sa().kid(other_oidc_kid)),
            401,
            "invalid_signature",
        ),
        token(
            "kid with SQL",
            mint(sa().kid("' OR 1=1 --")),
            401,
            "unknown_kid",
        ),
        // Header-supplied keys and semantics.
        token(
            "jwk header",
            mint(sa().header("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}))),
            401,
            "forbidden_header",
        ),
        token(
            "jku header",
            mint(sa().header("jku", "https://evil.example/jwks.json")),
            401,
            "forbidden_header",
        ),
        token(
            "x5u header",
            mint(sa().header("x5u", "https://evil.example/cert.pem")),
            401,
            "forbidden_header",
        ),
        token(
            "x5c header",
            mint(sa().header("x5c", json!(["MIIB"]))),
            401,
            "forbidden_header",
        ),
        token(
            "crit header",
            mint(sa().header("crit", json!(["exp"]))),
            401,
            "forbidden_header",
        ),
        token(
            "jku null (presence is enough)",
            mint(sa().header("jku", serde_json::Value::Null)),
            401,
            "forbidden_header",
        ),
        // Signature.
        token(
            "tampered signature",
            mint(sa().tampered_signature()),
            401,
            "invalid_signature",
        ),
        token(
            "signature of another token",
            segments(&good, |s| {
                format!(
                    "{}.{}.{}",
                    s[0],
                    s[1],
                    mint(sa().audience("https://x.test"))
                        .split('.')
                        .nth(2)
                        .unwrap_or("")
                )
            }),
            401,
            "invalid_signature",
        ),
        token(
            "payload swapped under a good signature",
            segments(&good, |s| {
                format!("{}.{}.{}", s[0], b64(payload(APPSPOT_SA, "")), s[2])
            }),
            401,
            "invalid_signature",
        ),
        token(
            "signature truncated",
            segments(&good, |s| format!("{}.{}.{}", s[0], s[1], &s[2][..128])),
            401,
            "invalid_signature",
        ),
        token(
            "signature-removed (Cloud Run) token",
            mint(sa().signature_removed()),
            401,
            "signature_removed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}

/// Token structure, and claims of the wrong JSON type under a valid signature.
#[tokio::test]
async fn oidc_refuses_malformed_structure_and_claim_types() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let good = mint(sa());
    let cases = vec![
        // Control: the good token is admitted (proves every refusal below is about the one thing bent).
        token("control: good token", good.clone(), 200, "authorization"),
        // Structure.
        token(
            "2 segments",
            segments(&good, |s| format!("{}.{}", s[0], s[1])),
            401,
            "malformed",
        ),
        token(
            "4 segments",
            format!("{good}.{}", b64("x")),
            401,
            "malformed",
        ),
        token(
            "1 segment",
            segments(&good, |s| s[1].to_owned()),
            401,
            "malformed",
        ),
        token(
            "empty signature segment",
            segments(&good, |s| format!("{}.{}.", s[0], s[1])),
            401,
            "malformed",
        ),
        token(
            "empty header segment",
            segments(&good, |s| format!(".{}.{}", s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "padding in the header",
            segments(&good, |s| format!("{}=.{}.{}", s[0], s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "padding in the signature",
            format!("{good}=="),
            401,
            "malformed",
        ),
        token(
            "standard base64 '+' in the payload",
            segments(&good, |s| format!("{}.{}+.{}", s[0], s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "standard base64 '/' in the signature",
            segments(&good, |s| format!("{}.{}.{}/", s[0], s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "percent-encoding in a segment",
            segments(&good, |s| format!("{}%41.{}.{}", s[0], s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "header not JSON",
            segments(&good, |s| format!("{}.{}.{}", b64("not json"), s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "header a JSON array",
            segments(&good, |s| format!("{}.{}.{}", b64("[1,2]"), s[1], s[2])),
            401,
            "malformed",
        ),
        token(
            "header JSON with trailing garbage",
            segments(&good, |s| {
                format!("{}.{}.{}", b64(r#"{"alg":"RS256"}x"#), s[1], s[2])
            }),
            401,
            "malformed",
        ),
        token(
            "header with a duplicate alg (RS256 then none)",
            segments(&good, |s| {
                format!(
                    "{}.{}.{}",
                    b64(format!(
                        r#"{{"alg":"RS256","alg":"none","kid":"{}"}}"#,
                        emu.signing_oidc_kid().unwrap_or_default()
                    )),
                    s[1],
                    s[2]
                )
            }),
            401,
            "malformed",
        ),
        token(
            "header with a duplicate kid",
            segments(&good, |s| {
                format!(
                    "{}.{}.{}",
                    b64(format!(
                        r#"{{"alg":"RS256","kid":"x","kid":"{}"}}"#,
                        emu.signing_oidc_kid().unwrap_or_default()
                    )),
                    s[1],
                    s[2]
                )
            }),
            401,
            "malformed",
        ),
        token(
            "header not UTF-8",
            segments(&good, |s| {
                format!("{}.{}.{}", b64(b"{\"alg\":\"RS256\xff\"}"), s[1], s[2])
            }),
            401,
            "malformed",
        ),
        token(
            "payload not base64 JSON (good signature position)",
            segments(&good, |s| format!("{}.{}.{}", s[0], b64("{"), s[2])),
            401,
            "invalid_signature",
        ),
        token(
            "oversized token (16 KiB + 1 of payload)",
            segments(&good, |s| {
                format!("{}.{}.{}", s[0], "A".repeat(16 * 1024 + 1), s[2])
            }),
            401,
            "too_large",
        ),
        token(
            "just under the header limit but over the token limit",
            format!("{}.{}", "A".repeat(16 * 1024 - 3), "AA.AA"),
            401,
            "malformed",
        ),
        // Claim types (signature valid: the claims are what is wrong).
        token(
            "exp as a string",
            mint(sa().claim("exp", (now() + 3600).to_string())),
            401,
            "malformed",
        ),
        token(
            "exp as a float",
            mint(sa().claim("exp", json!((now() + 3600) as f64 + 0.5))),
            401,
            "malformed",
        ),
        token(
            "exp missing",
            mint(sa().without_claim("exp")),
            401,
            "malformed",
        ),
        token(
            "iat missing",
            mint(sa().without_claim("iat")),
            401,
            "malformed",
        ),
        token(
            "aud as a number",
            mint(sa().claim("aud", 42)),
            401,
            "malformed",
        ),
        token(
            "aud as an array holding the audience",
            mint(sa().claim("aud", json!([AUD]))),
            401,
            "malformed",
        ),
        token(
            "aud as an array of two",
            mint(sa().claim("aud", json!(["https://other.test", AUD]))),
            401,
            "malformed",
        ),
        token(
            "aud missing",
            mint(sa().without_claim("aud")),
            401,
            "malformed",
        ),
        token(
            "iss as a number",
            mint(sa().claim("iss", 1)),
            401,
            "malformed",
        ),
        token(
            "email_verified as the string \"true\"",
            mint(sa().email_verified("true")),
            401,
            "malformed",
        ),
        token(
            "email_verified as 1",
            mint(sa().email_verified(1)),
            401,
            "malformed",
        ),
        token(
            "email_verified false",
            mint(sa().email_verified(false)),
            401,
            "email_not_verified",
        ),
        token(
            "email_verified missing",
            mint(sa().without_claim("email_verified")),
            401,
            "email_not_verified",
        ),
        token(
            "email missing",
            mint(sa().without_claim("email")),
            401,
            "missing_email",
        ),
        token(
            "email empty",
            mint(sa().claim("email", "")),
            401,
            "missing_email",
        ),
        token(
            "email as a number",
            mint(sa().claim("email", 5)),
            401,
            "malformed",
        ),
        token(
            "sub missing",
            mint(sa().without_claim("sub")),
            401,
            "malformed",
        ),
        token(
            "payload a JSON array is refused",
            mint(sa().claim("exp", json!([1]))),
            401,
            "malformed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}

/// Issuer, audience and time claims.
#[tokio::test]
async fn oidc_refuses_wrong_issuers_audiences_and_times() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let good = mint(sa());
    let cases = vec![
        // Control: the good token is admitted (proves every refusal below is about the one thing bent).
        token("control: good token", good.clone(), 200, "authorization"),
        // Issuer.
        token(
            "iss with a trailing slash",
            mint(sa().issuer("https://accounts.google.com/")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss over http://",
            mint(sa().issuer("http://accounts.google.com")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss upper case",
            mint(sa().issuer("HTTPS://ACCOUNTS.GOOGLE.COM")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss the IAP issuer",
            mint(sa().issuer("https://cloud.google.com/iap")),
            401,
            "wrong_issuer",
        ),
        token(
            "iss a look-alike host",
            mint(sa().issuer("https://accounts.google.com.evil.example")),
            401,
            "wrong_issuer",
        ),
        token("iss empty", mint(sa().issuer("")), 401, "wrong_issuer"),
        // Audience.
        token(
            "aud another service",
            mint(sa().audience("https://other.idgate-e2e.test")),
            401,
            "wrong_audience",
        ),
        token(
            "aud with a trailing slash",
            mint(sa().audience(format!("{AUD}/"))),
            401,
            "wrong_audience",
        ),
        token(
            "aud with a path (exact mode)",
            mint(sa().audience(format!("{AUD}/v1/jobs"))),
            401,
            "wrong_audience",
        ),
        token(
            "aud upper-case host",
            mint(sa().audience(AUD.to_uppercase())),
            401,
            "wrong_audience",
        ),
        token(
            "aud as a prefix",
            mint(sa().audience("https://api.idgate-e2e.test.evil.example")),
            401,
            "wrong_audience",
        ),
        token("aud empty", mint(sa().audience("")), 401, "wrong_audience"),
        token(
            "aud with a NUL",
            mint(sa().audience(format!("{AUD}\u{0}"))),
            401,
            "wrong_audience",
        ),
        // Times.
        token("expired long ago", mint(sa().expired()), 401, "expired"),
        token(
            "exp 0",
            mint(sa().issued_at(0).expires_at(0)),
            401,
            "expired",
        ),
        token(
            "exp negative",
            mint(sa().issued_at(-3600).expires_at(-1)),
            401,
            "expired",
        ),
        token(
            "exp i64::MAX with iat now (lifetime)",
            mint(sa().expires_at(i64::MAX)),
            401,
            "lifetime_too_long",
        ),
        token(
            "iat i64::MIN",
            mint(sa().issued_at(i64::MIN).expires_at(now() + 60)),
            401,
            "lifetime_too_long",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
