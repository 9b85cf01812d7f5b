//! Hand-crafted bytes under a valid signature.

use super::*;
use crate::support::*;

/// Tokens signed over exactly the bytes written here (see [`RawSigner`]): what [`TokenSpec`] cannot express,
/// notably duplicate keys and non-JSON payloads under a *valid* signature.
#[tokio::test]
async fn crafted_tokens_under_valid_signatures() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let signer = RawSigner::new(&emu, "crafter@idgate-e2e.iam.gserviceaccount.com");
    let site = Site::oidc(oidc_verifier_with(signer.key_cache())).await;
    let header = signer.header();
    let t = now();
    let cases = vec![
        // Control: the signer's well-formed token for the allowed SA is admitted, so every refusal below is about
        // the bytes, not the key.
        token("control: crafted good token", signer.sign(&header, &payload(ALLOWED_SA, "")), 200, "authorization"),
        token("duplicate aud (good then other)", signer.sign(&header, &payload(ALLOWED_SA, r#","aud":"https://other.test""#)), 401, "malformed"),
        token("duplicate aud (other then good)", signer.sign(&header, &format!(r#"{{"aud":"https://other.test",{}"#, &payload(ALLOWED_SA, "")[1..])), 401, "malformed"),
        token("duplicate email (allowed then intruder)", signer.sign(&header, &payload(ALLOWED_SA, r#","email":"intruder@other-proj.iam.gserviceaccount.com""#)), 401, "malformed"),
        token("duplicate exp", signer.sign(&header, &payload(ALLOWED_SA, &format!(r#","exp":{}"#, t + 999_999))), 401, "malformed"),
        token("duplicate email_verified", signer.sign(&header, &payload(ALLOWED_SA, r#","email_verified":false"#)), 401, "malformed"),
        token("duplicate iss", signer.sign(&header, &payload(ALLOWED_SA, r#","iss":"https://evil.example""#)), 401, "malformed"),
        token("duplicate alg in a signed header", signer.sign(&format!(r#"{{"alg":"RS256","alg":"RS256","kid":"{}"}}"#, signer.kid), &payload(ALLOWED_SA, "")), 401, "malformed"),
        token("payload not JSON", signer.sign(&header, "not json"), 401, "malformed"),
        token("payload a JSON array", signer.sign(&header, "[]"), 401, "malformed"),
        token("payload JSON with trailing garbage", signer.sign(&header, &format!("{}x", payload(ALLOWED_SA, ""))), 401, "malformed"),
        token("payload truncated JSON", signer.sign(&header, &payload(ALLOWED_SA, "")[..40]), 401, "malformed"),
        token("payload with a BOM", signer.sign(&header, &format!("\u{feff}{}", payload(ALLOWED_SA, ""))), 401, "malformed"),
        token("payload with a lone surrogate escape in email", signer.sign(&header, &payload("\\ud800@idgate-e2e.iam.gserviceaccount.com", "")), 401, "malformed"),
        token("exp as a string", signer.sign(&header, &format!(r#"{{"aud":"{AUD}","email":"{ALLOWED_SA}","email_verified":true,"exp":"{}","iat":{t},"iss":"https://accounts.google.com","sub":"1"}}"#, t + 60)), 401, "malformed"),
        token("exp as 1e10", signer.sign(&header, &format!(r#"{{"aud":"{AUD}","email":"{ALLOWED_SA}","email_verified":true,"exp":1e10,"iat":{t},"iss":"https://accounts.google.com","sub":"1"}}"#)), 401, "malformed"),
        token("exp beyond u64", signer.sign(&header, &format!(r#"{{"aud":"{AUD}","email":"{ALLOWED_SA}","email_verified":true,"exp":99999999999999999999999,"iat":{t},"iss":"https://accounts.google.com","sub":"1"}}"#)), 401, "malformed"),
        token("email with an escaped NUL", signer.sign(&header, &payload("caller\\u0000@idgate-e2e.iam.gserviceaccount.com", "")), 401, "unknown_identity"),
        token("email with an escaped upper-case allowed SA", signer.sign(&header, &payload("\\u0043aller@idgate-e2e.iam.gserviceaccount.com", "")), 200, "authorization"),
        token("email_verified as the string \"true\"", signer.sign(&header, &format!(r#"{{"aud":"{AUD}","email":"{ALLOWED_SA}","email_verified":"true","exp":{},"iat":{t},"iss":"https://accounts.google.com","sub":"1"}}"#, t + 60)), 401, "malformed"),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
