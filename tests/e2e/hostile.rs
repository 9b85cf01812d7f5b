//! Hostile input through the real layers, over HTTP, against the emulator.
//!
//! Every case is named and asserts three things: the exact status, that the inner handler was **not** called
//! (or, for the few control cases that must be admitted, called exactly once), and the reason the layer logged on
//! `idgate::decision` (so a 401 for the wrong reason, e.g. a signature failure where an algorithm check was meant,
//! does not pass). A table reports every failing case by name, not just the first.
//!
//! Time: the layers use the system clock, so boundary cases are minted relative to now at the leeway (30 s) ± 5 s,
//! a margin a slow run cannot cross. The core's own tests (`crates/idgate-core/tests/core`) cover ± 1 s with a
//! manual clock. The lifetime rule does not depend on the clock and is tested at ± 1 s here.

use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_core::verify::{AudienceMatch, OidcVerifier};
use idgate_emulator::{Emulator, HmacKeyMaterial, TokenSpec};
use serde_json::json;

use crate::support::{
    ALLOWED_SA, ALLOWED_USER, APPSPOT_SA, AUD, Decisions, PROJECT, RawSigner, Site, b64, client,
    emulator, iap_verifier, now, oidc_verifier, oidc_verifier_with, payload, raw_status, sa, user,
};

/// How a case presents itself.
enum Input {
    /// The token in the layer's own header (`Authorization: Bearer` / `x-goog-iap-jwt-assertion`).
    Token(String),
    /// These headers, exactly (repeated names are sent repeatedly), on `GET /`.
    Headers(Vec<(&'static str, Vec<u8>)>),
    /// `GET path` with no credential.
    Path(&'static str),
    /// These header lines written raw over TCP on `GET /`.
    Raw(Vec<u8>),
}

struct Case {
    name: &'static str,
    input: Input,
    status: u16,
    /// The reason logged on `idgate::decision`; `None` when the request never reaches the layer (hyper refuses).
    reason: Option<&'static str>,
}

fn case(name: &'static str, input: Input, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        input,
        status,
        reason: Some(reason),
    }
}

fn token(name: &'static str, token: String, status: u16, reason: &'static str) -> Case {
    case(name, Input::Token(token), status, reason)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    Oidc,
    Iap,
}

/// Runs every case against `site`; panics listing every case that did not get its exact outcome.
async fn run(site: &Site, layer: Layer, decisions: &Decisions, cases: Vec<Case>) -> usize {
    let http = client();
    let mut failures = Vec::new();
    let n = cases.len();
    for c in cases {
        let hits_before = site.hits();
        let decisions_before = decisions.count();
        let status = match c.input {
            Input::Token(t) => {
                let (name, value) = match layer {
                    Layer::Oidc => ("authorization", format!("Bearer {t}")),
                    Layer::Iap => ("x-goog-iap-jwt-assertion", t),
                };
                send(&http, site, "/", vec![(name, value.into_bytes())]).await
            }
            Input::Headers(headers) => send(&http, site, "/", headers).await,
            Input::Path(path) => send(&http, site, path, Vec::new()).await,
            Input::Raw(lines) => {
                let mut request =
                    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
                request.extend_from_slice(&lines);
                request.extend_from_slice(b"\r\n");
                raw_status(site.addr, &request).await
            }
        };
        let called = site.hits() - hits_before;
        let admitted = c.status == 200;
        let expected_calls = usize::from(admitted);
        let decision = (decisions.count() > decisions_before)
            .then(|| decisions.last())
            .flatten();
        let reason = decision.as_ref().map(|d| d.reason.as_str());
        let reason_ok = match c.reason {
            None => decision.is_none(),
            Some(expected) => {
                reason == Some(expected)
                    && decision.as_ref().map(|d| d.outcome.as_str())
                        == Some(if admitted { "allow" } else { "reject" })
            }
        };
        if status != c.status || called != expected_calls || !reason_ok {
            failures.push(format!(
                "{}: status {status} (want {}), handler called {called}x (want {expected_calls}), reason {reason:?} (want {:?})",
                c.name, c.status, c.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

async fn send(
    http: &reqwest::Client,
    site: &Site,
    path: &str,
    headers: Vec<(&'static str, Vec<u8>)>,
) -> u16 {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_bytes(&value).expect("a sendable header value"),
        );
    }
    http.get(site.url(path))
        .headers(map)
        .send()
        .await
        .expect("the layer answers")
        .status()
        .as_u16()
}

/// `token` with its segments rearranged by `f`.
fn segments(token: &str, f: impl FnOnce(Vec<&str>) -> String) -> String {
    f(token.split('.').collect())
}

fn bearer(value: &str) -> (&'static str, Vec<u8>) {
    ("authorization", value.as_bytes().to_vec())
}

async fn oidc_site(emu: &Emulator) -> Site {
    Site::oidc(oidc_verifier(emu)).await
}

#[tokio::test]
async fn oidc_layer_refuses_hostile_tokens() {
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
    let n = run(&site, Layer::Oidc, &decisions, cases).await;
    assert!(n >= 90, "{n}");
}

#[tokio::test]
async fn oidc_time_boundaries_at_the_leeway_plus_minus_5_seconds() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let t = now();
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let leeway = 30;
    let cases = vec![
        token(
            "exp passed, within leeway (-25 s)",
            mint(
                sa().issued_at(t - 3600 + 5 - leeway)
                    .expires_at(t - leeway + 5),
            ),
            200,
            "authorization",
        ),
        token(
            "exp passed, beyond leeway (-35 s)",
            mint(
                sa().issued_at(t - 3600 - 5 - leeway)
                    .expires_at(t - leeway - 5),
            ),
            401,
            "expired",
        ),
        token(
            "iat in the future, within leeway (+25 s)",
            mint(sa().issued_at(t + leeway - 5)),
            200,
            "authorization",
        ),
        token(
            "iat in the future, beyond leeway (+35 s)",
            mint(sa().issued_at(t + leeway + 5)),
            401,
            "issued_in_future",
        ),
        token(
            "nbf in the future, within leeway (+25 s)",
            mint(sa().not_before(t + leeway - 5)),
            200,
            "authorization",
        ),
        token(
            "nbf in the future, beyond leeway (+35 s)",
            mint(sa().not_before(t + leeway + 5)),
            401,
            "not_yet_valid",
        ),
        token(
            "nbf far in the future",
            mint(sa().not_before(t + 86_400)),
            401,
            "not_yet_valid",
        ),
        token(
            "nbf as a string",
            mint(sa().claim("nbf", "0")),
            401,
            "malformed",
        ),
        // Lifetime (no clock involved): at most 3600 s + leeway.
        token(
            "lifetime 3630 s (the maximum)",
            mint(sa().issued_at(t - 60).lifetime(3600 + leeway)),
            200,
            "authorization",
        ),
        token(
            "lifetime 3631 s (one over)",
            mint(sa().issued_at(t - 60).lifetime(3600 + leeway + 1)),
            401,
            "lifetime_too_long",
        ),
        token(
            "lifetime a day",
            mint(sa().lifetime(86_400)),
            401,
            "lifetime_too_long",
        ),
        token(
            "exp before iat",
            mint(sa().issued_at(t).expires_at(t - 100)),
            401,
            "expired",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}

#[tokio::test]
async fn oidc_email_lookalikes_and_allowlist() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let mint = |email: &str| emu.mint(&TokenSpec::service_account(email).audience(AUD));
    let cases = vec![
        token(
            "control: allowed SA by email",
            mint(ALLOWED_SA),
            200,
            "authorization",
        ),
        token(
            "control: App Engine default SA of the listed project",
            mint(APPSPOT_SA),
            200,
            "authorization",
        ),
        token(
            "allowed SA in upper case (emails are case-insensitive)",
            mint(&ALLOWED_SA.to_uppercase()),
            200,
            "authorization",
        ),
        token(
            "allowed SA in mixed case",
            mint("Caller@IDGATE-E2E.iam.gserviceaccount.com"),
            200,
            "authorization",
        ),
        token(
            "appspot SA with a suffix domain",
            mint("idgate-e2e@appspot.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "x@appspot.gserviceaccount.com.evil.com",
            mint("x@appspot.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "x@evil-appspot.gserviceaccount.com",
            mint("x@evil-appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "listed project id in a subdomain",
            mint("idgate-e2e@evil.appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "allowed SA with a suffix domain",
            mint("caller@idgate-e2e.iam.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "allowed SA local part at another project",
            mint("caller@other-proj.iam.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "other user-managed SA of the listed project",
            mint("other@idgate-e2e.iam.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "another project's appspot SA",
            mint("other-proj@appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "a consumer account",
            mint("caller@gmail.com"),
            403,
            "not_allowed",
        ),
        token(
            "two @ signs",
            mint("caller@evil.com@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "Cyrillic a in appspot",
            mint("idgate-e2e@\u{430}ppspot.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "Greek omicron in .com",
            mint("caller@idgate-e2e.iam.gserviceaccount.c\u{3bf}m"),
            401,
            "unknown_identity",
        ),
        token(
            "fullwidth letter in the local part",
            mint("\u{ff43}aller@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "zero-width space in the email",
            mint("caller\u{200b}@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "trailing dot domain",
            mint("caller@idgate-e2e.iam.gserviceaccount.com."),
            403,
            "not_allowed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}

#[tokio::test]
async fn oidc_layer_refuses_hostile_credentials() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let good = emu.mint(&sa());
    let intruder = emu.mint(
        &TokenSpec::service_account("intruder@other-proj.iam.gserviceaccount.com").audience(AUD),
    );
    let bad_alg = emu.mint(&sa().tampered_signature());
    let removed = emu.mint(&sa().signature_removed());
    let h = |pairs: Vec<(&'static str, String)>| {
        Input::Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n, v.into_bytes()))
                .collect(),
        )
    };
    let cases = vec![
        case(
            "control: ID scheme",
            h(vec![("authorization", format!("ID {good}"))]),
            200,
            "authorization",
        ),
        case(
            "control: X-Serverless-Authorization",
            h(vec![(
                "x-serverless-authorization",
                format!("Bearer {good}"),
            )]),
            200,
            "x-serverless-authorization",
        ),
        case("no credential", Input::Path("/"), 401, "missing_credential"),
        case(
            "empty Bearer",
            Input::Headers(vec![bearer("Bearer ")]),
            401,
            "empty_token",
        ),
        case(
            "Bearer and only spaces",
            Input::Raw(b"Authorization: Bearer      \r\n".to_vec()),
            401,
            "empty_token",
        ),
        case(
            "empty Authorization",
            Input::Headers(vec![bearer("")]),
            401,
            "unsupported_scheme",
        ),
        case(
            "Basic scheme",
            Input::Headers(vec![bearer("Basic dXNlcjpwYXNz")]),
            401,
            "unsupported_scheme",
        ),
        case(
            "token without a scheme",
            Input::Headers(vec![("authorization", good.clone().into_bytes())]),
            401,
            "unsupported_scheme",
        ),
        case(
            "Bearer glued to the token",
            h(vec![("authorization", format!("Bearer{good}"))]),
            401,
            "unsupported_scheme",
        ),
        case(
            "two tokens in one header",
            h(vec![("authorization", format!("Bearer {good} {good}"))]),
            401,
            "extra_content",
        ),
        case(
            "comma-joined tokens",
            h(vec![(
                "authorization",
                format!("Bearer {good}, Bearer {good}"),
            )]),
            401,
            "extra_content",
        ),
        case(
            "duplicate Authorization (both good)",
            h(vec![
                ("authorization", format!("Bearer {good}")),
                ("authorization", format!("Bearer {good}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "duplicate Authorization (good then bad)",
            h(vec![
                ("authorization", format!("Bearer {good}")),
                ("authorization", format!("Bearer {bad_alg}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "duplicate X-Serverless-Authorization",
            h(vec![
                ("x-serverless-authorization", format!("Bearer {good}")),
                ("x-serverless-authorization", format!("Bearer {good}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "bad X-Serverless-Authorization wins over good Authorization",
            h(vec![
                ("x-serverless-authorization", format!("Bearer {bad_alg}")),
                ("authorization", format!("Bearer {good}")),
            ]),
            401,
            "invalid_signature",
        ),
        case(
            "signature-removed in X-Serverless-Authorization",
            h(vec![(
                "x-serverless-authorization",
                format!("Bearer {removed}"),
            )]),
            401,
            "signature_removed",
        ),
        case(
            "signature-removed Authorization next to nothing else",
            h(vec![("authorization", format!("Bearer {removed}"))]),
            401,
            "signature_removed",
        ),
        case(
            "non-UTF-8 bytes in Authorization (raw TCP)",
            Input::Raw(
                [
                    b"Authorization: Bearer ".as_slice(),
                    b"\xff\xfe\xfd.\xc3\x28.\x80",
                    b"\r\n",
                ]
                .concat(),
            ),
            401,
            "not_ascii",
        ),
        case(
            "obs-text bytes after a good token",
            Input::Headers(vec![(
                "authorization",
                [format!("Bearer {good}").as_bytes(), b"\xe9"].concat(),
            )]),
            401,
            "not_ascii",
        ),
        case(
            "UTF-8 letters in the token",
            h(vec![("authorization", format!("Bearer {good}\u{e9}"))]),
            401,
            "not_ascii",
        ),
        case(
            "oversized Authorization (64 KiB)",
            h(vec![(
                "authorization",
                format!("Bearer {}", "A".repeat(64 * 1024)),
            )]),
            401,
            "too_large",
        ),
        case(
            "legacy header naming the listed project, untrusted, no token",
            h(vec![("x-appengine-inbound-appid", PROJECT.to_owned())]),
            401,
            "missing_credential",
        ),
        case(
            "legacy header naming the listed project, untrusted, disallowed token",
            h(vec![
                ("x-appengine-inbound-appid", PROJECT.to_owned()),
                ("authorization", format!("Bearer {intruder}")),
            ]),
            403,
            "not_allowed",
        ),
        case(
            "spoofed X-Goog-Authenticated-User-Email alone",
            h(vec![(
                "x-goog-authenticated-user-email",
                format!("accounts.google.com:{ALLOWED_SA}"),
            )]),
            401,
            "missing_credential",
        ),
        case(
            "spoofed X-Idgate-Caller-Email alone",
            h(vec![("x-idgate-caller-email", ALLOWED_SA.to_owned())]),
            401,
            "missing_credential",
        ),
        case(
            "spoofed IAP assertion header on the OIDC layer",
            h(vec![("x-goog-iap-jwt-assertion", emu.mint(&user()))]),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a trailing slash is not exempt",
            Input::Path("/healthz/"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path upper case is not exempt",
            Input::Path("/HEALTHZ"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a double slash is not exempt",
            Input::Path("//healthz"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path percent-encoded is not exempt",
            Input::Path("/%68ealthz"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a dot segment is not exempt",
            Input::Path("/x/../healthz/."),
            401,
            "missing_credential",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;

    // Requests hyper refuses before any layer: exact status, no decision, handler not called.
    let hits = site.hits();
    let huge = [
        b"Authorization: Bearer ".as_slice(),
        &vec![b'A'; 1024 * 1024],
        b"\r\n",
    ]
    .concat();
    let control = [b"Authorization: Bearer ".as_slice(), b"a\x01b", b"\r\n"].concat();
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
    request.extend_from_slice(&huge);
    request.extend_from_slice(b"\r\n");
    assert_eq!(raw_status(site.addr, &request).await, 431, "1 MiB header");
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
    request.extend_from_slice(&control);
    request.extend_from_slice(b"\r\n");
    assert_eq!(raw_status(site.addr, &request).await, 400, "control byte");
    assert_eq!(site.hits(), hits);
}

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

/// A trusted legacy header that is present but empty is treated as absent, so a blank header cannot block a valid
/// bearer token; a non-empty value that is not an app ID stays a 401 (issue #10, item 8).
#[tokio::test]
async fn oidc_dual_mode_empty_and_malformed_legacy_headers() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let layer = idgate_server::RequireIdentityLayer::new(oidc_verifier(&emu))
        .allowlist(crate::support::allowlist())
        .trust_legacy_header(TrustedAppEngineFrontEnd::assume_behind_app_engine());
    let site = Site::start(|r| r.layer(layer)).await;
    let good = format!("Bearer {}", emu.mint(&sa()));
    let h = |headers: Vec<(&'static str, &str)>| {
        Input::Headers(
            headers
                .into_iter()
                .map(|(name, value)| (name, value.as_bytes().to_vec()))
                .collect(),
        )
    };
    let cases = vec![
        case(
            "control: the listed app by the legacy header",
            h(vec![("x-appengine-inbound-appid", PROJECT)]),
            200,
            "legacy_appengine_header",
        ),
        case(
            "control: a valid token alone",
            h(vec![("authorization", &good)]),
            200,
            "authorization",
        ),
        case(
            "empty legacy header and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("authorization", &good),
            ]),
            200,
            "authorization",
        ),
        case(
            "empty legacy header and a valid serverless token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("x-serverless-authorization", &good),
            ]),
            200,
            "x-serverless-authorization",
        ),
        case(
            "empty legacy header alone",
            h(vec![("x-appengine-inbound-appid", "")]),
            401,
            "missing_credential",
        ),
        case(
            "two empty legacy headers and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("x-appengine-inbound-appid", ""),
                ("authorization", &good),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "malformed legacy header and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", "not an app!"),
                ("authorization", &good),
            ]),
            401,
            "unknown_identity",
        ),
        case(
            "legacy header with a partition prefix",
            h(vec![("x-appengine-inbound-appid", "s~idgate-e2e")]),
            401,
            "unknown_identity",
        ),
        case(
            "unlisted app by the legacy header, valid token",
            h(vec![
                ("x-appengine-inbound-appid", "other-app"),
                ("authorization", &good),
            ]),
            403,
            "not_allowed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
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
