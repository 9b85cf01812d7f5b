//! Origin audience matching against non-canonical `aud` spellings.

use idgate_core::verify::{AudienceMatch, OidcVerifier};

use super::*;
use crate::support::*;

/// `audience_match = "origin"`: only an `aud` already in canonical form may stand for the configured origin
/// (issue #10, item 6). Each of these was folded into `AUD`'s origin by a lenient URL parser and admitted.
#[tokio::test]
async fn oidc_origin_mode_refuses_non_canonical_audiences() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let verifier = OidcVerifier::builder()
        .audience(AUD)
        .audience_match(AudienceMatch::Origin)
        .keys_url(emu.oidc_jwks_url())
        .build()
        .expect("verifier");
    let site = Site::oidc(verifier).await;
    let aud = |aud: &str| emu.mint(&sa().audience(aud));
    let host = AUD.trim_start_matches("https://");
    let cases = vec![
        token(
            "control: the configured origin",
            aud(AUD),
            200,
            "authorization",
        ),
        token(
            "control: a canonical URL on the origin",
            aud(&format!("{AUD}/jobs/run?x=1")),
            200,
            "authorization",
        ),
        token(
            "backslash userinfo trick",
            aud(&format!("{AUD}\\@evil.com/")),
            401,
            "wrong_audience",
        ),
        token(
            "scheme without slashes",
            aud(&format!("https:{host}/x")),
            401,
            "wrong_audience",
        ),
        token(
            "scheme with one slash",
            aud(&format!("https:/{host}/x")),
            401,
            "wrong_audience",
        ),
        token(
            "leading space",
            aud(&format!(" {AUD}/")),
            401,
            "wrong_audience",
        ),
        token(
            "trailing space",
            aud(&format!("{AUD}/ ")),
            401,
            "wrong_audience",
        ),
        token(
            "embedded tab in the path",
            aud(&format!("{AUD}/\tx")),
            401,
            "wrong_audience",
        ),
        token(
            "embedded tab in the host",
            aud("https://api.idgate-\te2e.test/"),
            401,
            "wrong_audience",
        ),
        token(
            "embedded newline",
            aud(&format!("{AUD}/\nx")),
            401,
            "wrong_audience",
        ),
        token(
            "default port spelled out",
            aud(&format!("{AUD}:443/")),
            401,
            "wrong_audience",
        ),
        token(
            "upper-case host",
            aud(&format!("https://{}/", host.to_uppercase())),
            401,
            "wrong_audience",
        ),
        token(
            "upper-case scheme",
            aud(&format!("HTTPS://{host}/")),
            401,
            "wrong_audience",
        ),
        token(
            "empty userinfo",
            aud(&format!("https://@{host}/")),
            401,
            "wrong_audience",
        ),
        token(
            "dot segments",
            aud(&format!("{AUD}/a/../b")),
            401,
            "wrong_audience",
        ),
        token(
            "unencoded space in the path",
            aud(&format!("{AUD}/a b")),
            401,
            "wrong_audience",
        ),
        token(
            "trailing dot host",
            aud(&format!("{AUD}./")),
            401,
            "wrong_audience",
        ),
        token(
            "another host with our host as a prefix",
            aud(&format!("{AUD}.evil.com/")),
            401,
            "wrong_audience",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
