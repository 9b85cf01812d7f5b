//! The opt-in trust in Cloud Run's invoker check: claims of a token whose signature Cloud Run removed, checked by
//! the same rules as a verified token except the signature (which Cloud Run checked and then destroyed).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_core::clock::{Clock, SystemClock};
use idgate_core::keys::{KeyCache, KeyFormat, KeySet, StaticKeySource};
use idgate_core::token::{decode_unverified, is_signature_removed};
use idgate_core::verify::{
    AudienceMatch, GOOGLE_ISSUERS, OidcVerifier, VerifiedIdToken, VerifyError,
};

use crate::ServerError;
use crate::rejection::IdentityRejection;

/// The `kid` of the per-process key that re-signs claims Cloud Run vouched for.
const VOUCHED_KID: &str = "idgate-cloud-run-invoker-check";

/// Trust in Cloud Run's invoker check (see `RequireIdentityLayer::trust_cloud_run_invoker_check`).
///
/// idgate's `Caller` can only be made from a `VerifiedIdToken`, and rightly so. A token whose signature Cloud Run
/// removed is first checked here by the verifier's claim rules (`check`); its claims are then re-signed with a
/// per-process RSA key that never leaves memory and verified by an `OidcVerifier` bound to that key alone and to
/// the configured audiences, which applies every claim rule a second time and yields the `VerifiedIdToken`.
/// PKCS#1 v1.5 signatures are deterministic, so a repeated token hits the verifier's memo.
#[derive(Clone)]
pub(crate) struct CloudRunTrust {
    inner: Arc<Inner>,
}

struct Inner {
    /// The audiences the cheap pre-check compares exactly; empty in origin mode, where only the verifier judges.
    audiences: Vec<String>,
    audience_match: AudienceMatch,
    key: KeyPair,
    rng: SystemRandom,
    verifier: OidcVerifier,
    clock: SystemClock,
}

impl fmt::Debug for CloudRunTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudRunTrust")
            .field("audiences", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

impl CloudRunTrust {
    pub(crate) fn new(
        audiences: Vec<String>,
        audience_match: AudienceMatch,
    ) -> Result<Self, ServerError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| ServerError::CloudRunKey)?;
        let public = key.public_key();
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": VOUCHED_KID,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]});
        let keys = KeySet::parse(KeyFormat::OidcJwks, jwks.to_string().as_bytes())
            .map_err(|_| ServerError::CloudRunKey)?;
        let verifier = OidcVerifier::builder()
            .audiences(audiences.iter().cloned())
            .audience_match(audience_match)
            .keys(KeyCache::new(StaticKeySource::new(keys)))
            .build()
            .map_err(ServerError::Verifier)?;
        Ok(Self {
            inner: Arc::new(Inner {
                audiences,
                audience_match,
                key,
                rng: SystemRandom::new(),
                verifier,
                clock: SystemClock,
            }),
        })
    }

    /// Checks a signature-removed token's claims and returns them as a verified token.
    pub(crate) async fn verify(&self, token: &str) -> Result<VerifiedIdToken, IdentityRejection> {
        let inner = &*self.inner;
        let exact =
            (inner.audience_match == AudienceMatch::Exact).then_some(inner.audiences.as_slice());
        check(token, exact, inner.clock.unix_seconds())?;
        let payload = token.split('.').nth(1).unwrap_or_default();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"RS256","kid":"{VOUCHED_KID}","typ":"JWT"}}"#
        ));
        let signing_input = format!("{header}.{payload}");
        let mut signature = vec![0u8; inner.key.public_modulus_len()];
        inner
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &inner.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| IdentityRejection::InvalidToken(VerifyError::InvalidSignature))?;
        let resigned = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        inner
            .verifier
            .verify(&resigned)
            .await
            .map_err(IdentityRejection::from_token_error)
    }
}

/// Leeway on `exp`/`iat`, as the verifiers' default.
const LEEWAY_SECS: i64 = 30;
/// Google ID tokens live one hour.
const MAX_LIFETIME_SECS: i64 = 3600;

/// Checks the claims of a signature-removed token: `iss` one of Google's, `aud` one of `audiences` (exactly),
/// (`audiences: None` leaves `aud` to the verifier, for origin matching), `exp`/`iat` with 30 s leeway and at most 1 h apart, `email` present with `email_verified: true`.
pub(crate) fn check(
    token: &str,
    audiences: Option<&[String]>,
    now: i64,
) -> Result<(), IdentityRejection> {
    let invalid = |e: VerifyError| IdentityRejection::InvalidToken(e);
    if !is_signature_removed(token) {
        // Only tokens Cloud Run vouched for take this path; anything else must be verified.
        return Err(invalid(VerifyError::InvalidSignature));
    }
    let parts = decode_unverified(token).map_err(|e| invalid(e.into()))?;
    if parts.header.get("alg").and_then(serde_json::Value::as_str) != Some("RS256") {
        return Err(invalid(VerifyError::UnsupportedAlgorithm {
            expected: idgate_core::keys::KeyAlgorithm::Rs256,
        }));
    }
    let claims = &parts.claims;
    let str_claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let iss = str_claim("iss").unwrap_or_default();
    if !GOOGLE_ISSUERS.contains(&iss) {
        return Err(invalid(VerifyError::WrongIssuer { got: truncate(iss) }));
    }
    let aud = str_claim("aud").unwrap_or_default();
    if aud.is_empty() || audiences.is_some_and(|list| !list.iter().any(|a| a == aud)) {
        return Err(invalid(VerifyError::WrongAudience { got: truncate(aud) }));
    }
    let int_claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    let (Some(exp), Some(iat)) = (int_claim("exp"), int_claim("iat")) else {
        return Err(invalid(VerifyError::Malformed(
            idgate_core::token::Malformed::BadClaims,
        )));
    };
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(invalid(VerifyError::Expired {
            expired_at: exp,
            now,
        }));
    }
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(invalid(VerifyError::IssuedInFuture));
    }
    if exp.saturating_sub(iat) > MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(invalid(VerifyError::LifetimeTooLong {
            max_secs: MAX_LIFETIME_SECS + LEEWAY_SECS,
        }));
    }
    if str_claim("email").is_none_or(str::is_empty) {
        return Err(invalid(VerifyError::MissingEmail));
    }
    if claims
        .get("email_verified")
        .and_then(serde_json::Value::as_bool)
        != Some(true)
    {
        return Err(invalid(VerifyError::EmailNotVerified));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn token(claims: &serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{c}.SIGNATURE_REMOVED_BY_GOOGLE")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://accounts.google.com", "aud": "https://svc.example", "sub": "1",
            "email": "caller@proj.iam.gserviceaccount.com", "email_verified": true,
            "iat": NOW - 10, "exp": NOW + 3590,
        })
    }

    fn auds() -> Vec<String> {
        vec!["https://svc.example".to_owned()]
    }

    #[test]
    fn accepts_good_claims() {
        check(&token(&good()), Some(&auds()), NOW).unwrap();
    }

    #[test]
    fn rejects_each_broken_rule() {
        let cases: [(&str, serde_json::Value, &str); 5] = [
            (
                "iss",
                serde_json::json!("https://evil.example"),
                "wrong_issuer",
            ),
            (
                "aud",
                serde_json::json!("https://other.example"),
                "wrong_audience",
            ),
            ("exp", serde_json::json!(NOW - 100), "expired"),
            (
                "email_verified",
                serde_json::json!(false),
                "email_not_verified",
            ),
            ("email", serde_json::json!(""), "missing_email"),
        ];
        for (claim, value, reason) in cases {
            let mut c = good();
            c[claim] = value;
            assert_eq!(
                check(&token(&c), Some(&auds()), NOW).unwrap_err().reason(),
                reason,
                "{claim}"
            );
        }
        // No audiences configured: fail closed.
        assert_eq!(
            check(&token(&good()), Some(&[]), NOW).unwrap_err().reason(),
            "wrong_audience"
        );
        // A token with a real-looking signature never takes this path.
        let signed = token(&good()).replace("SIGNATURE_REMOVED_BY_GOOGLE", "c2ln");
        assert_eq!(
            check(&signed, Some(&auds()), NOW).unwrap_err().reason(),
            "invalid_signature"
        );
    }
}
