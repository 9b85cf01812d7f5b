//! Fuzzing on stable with proptest: every parser idgate-core exposes to untrusted input must never panic, and its
//! errors must be sane.
//!
//! | target | input |
//! |---|---|
//! | `token::decode_unverified`, `IdToken::new`, `IdToken::unverified_expiry` | arbitrary strings, JWT-shaped strings with arbitrary segments |
//! | `token::parse_authorization` | arbitrary bytes, `Bearer`-prefixed arbitrary bytes |
//! | `KeySet::parse` (all four formats) | arbitrary bytes, and Google's documents with members replaced by arbitrary JSON |
//! | `Config::from_toml_str` | arbitrary strings, and a valid config with bytes deleted/inserted/replaced; every error's line:column must lie inside the input |
//! | `OidcVerifier::verify` / `IapVerifier::verify` | arbitrary strings and JWT-shaped strings, on a `StaticKeySource` cache (no network) |
//!
//! The default case count (256 per property) keeps the whole binary well under 20 s in a debug build. To fuzz
//! longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p idgate-core --test fuzz --release
//! ```
//!
//! Failures are persisted by proptest under `tests/fuzz/main.proptest-regressions` and replayed first.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_core::config::Config;
use idgate_core::keys::{KeyCache, KeyFormat, KeySet, StaticKeySource};
use idgate_core::token::{IdToken, decode_unverified, parse_authorization};
use idgate_core::verify::{IapVerifier, OidcVerifier};
use proptest::prelude::*;
use serde_json::{Value, json};

const OIDC_JWKS: &[u8] = include_bytes!("../fixtures/keys/oidc_v3_certs.json");
const OIDC_PEM: &[u8] = include_bytes!("../fixtures/keys/oidc_v1_certs.json");
const IAP_JWKS: &[u8] = include_bytes!("../fixtures/keys/iap_public_key-jwk.json");
const IAP_PEM: &[u8] = include_bytes!("../fixtures/keys/iap_public_key.json");
const CONFIG: &str = include_str!("../fixtures/config/example.toml");

const FORMATS: [(KeyFormat, &[u8]); 4] = [
    (KeyFormat::OidcJwks, OIDC_JWKS),
    (KeyFormat::OidcPemCertificates, OIDC_PEM),
    (KeyFormat::IapJwks, IAP_JWKS),
    (KeyFormat::IapPem, IAP_PEM),
];

fn config() -> ProptestConfig {
    // Respects PROPTEST_CASES when set; 256 otherwise.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<u64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[A-Za-z0-9_-]{0,400}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JWT-ish string: three (or some other number of) segments, each base64url of arbitrary JSON or bytes, or raw.
fn jwtish() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        json_value().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        "[A-Za-z0-9_=+/.-]{0,60}",
        Just("SIGNATURE_REMOVED_BY_GOOGLE".to_owned()),
        header().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
    ];
    prop::collection::vec(segment, 1..5).prop_map(|s| s.join("."))
}

/// A header that gets past the cheap checks often: RS256/ES256 with a fixture kid, sometimes with extra members.
fn header() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("RS256"), Just("ES256"), Just("none"), Just("HS256")],
        prop_oneof![
            Just("f9R3yg".to_owned()),
            Just(first_kid(OIDC_JWKS)),
            ".{0,10}"
        ],
        prop::option::of(json_value()),
    )
        .prop_map(|(alg, kid, extra)| {
            let mut h = json!({"alg": alg, "kid": kid});
            if let Some(extra) = extra {
                h["x"] = extra;
            }
            h
        })
}

fn first_kid(jwks: &[u8]) -> String {
    let v: Value = serde_json::from_slice(jwks).expect("fixture JSON");
    v["keys"][0]["kid"].as_str().unwrap_or_default().to_owned()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn verifiers() -> &'static (OidcVerifier, IapVerifier) {
    static V: OnceLock<(OidcVerifier, IapVerifier)> = OnceLock::new();
    V.get_or_init(|| {
        let cache = |format, doc| {
            KeyCache::new(StaticKeySource::new(
                KeySet::parse(format, doc).expect("fixture keys"),
            ))
        };
        let oidc = OidcVerifier::builder()
            .audience("https://fuzz.example")
            .keys(cache(KeyFormat::OidcJwks, OIDC_JWKS))
            .build()
            .expect("oidc verifier");
        let iap = IapVerifier::builder()
            .audience("/projects/1/apps/fuzz")
            .keys(cache(KeyFormat::IapJwks, IAP_JWKS))
            .build()
            .expect("iap verifier");
        (oidc, iap)
    })
}

/// The location of a config error must point inside the input (or one past its end).
fn assert_sane_location(src: &str, err: &idgate_core::config::ConfigError) {
    let lines: Vec<&str> = src.split('\n').collect();
    if let Some(line) = err.line() {
        assert!(
            line >= 1 && line <= lines.len(),
            "line {line} outside 1..={}",
            lines.len()
        );
        let column = err.column().expect("a line comes with a column");
        let width = lines[line - 1].chars().count();
        assert!(
            column >= 1 && column <= width + 1,
            "column {column} outside 1..={} on line {line}",
            width + 1
        );
    }
    assert!(!err.to_string().is_empty());
    let _ = format!("{err:?}");
}

/// Applies one structural mutation to `src` at char positions derived from `a` and `b`.
fn mutate(src: &str, op: u8, a: usize, b: usize, insert: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len().max(1);
    let (i, j) = (a % n, b % n);
    let (lo, hi) = (i.min(j), i.max(j));
    let take = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
    match op % 4 {
        0 => format!("{}{}", take(0..lo), take(hi.min(chars.len())..chars.len())),
        1 => format!(
            "{}{insert}{}",
            take(0..lo),
            take(lo.min(chars.len())..chars.len())
        ),
        2 => format!(
            "{}{insert}{}",
            take(0..lo),
            take(hi.min(chars.len())..chars.len())
        ),
        _ => {
            // Duplicate a line somewhere else.
            let lines: Vec<&str> = src.lines().collect();
            let mut out: Vec<&str> = lines.clone();
            if !lines.is_empty() {
                out.insert(b % (lines.len() + 1), lines[a % lines.len()]);
            }
            out.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decode_unverified_never_panics(s in prop_oneof![".{0,200}", jwtish()]) {
        let _ = decode_unverified(&s);
        if let Ok(t) = IdToken::new(s) {
            prop_assert_eq!(format!("{t:?}"), "IdToken(<redacted>)");
            let _ = t.unverified_expiry();
        }
    }

    #[test]
    fn malformed_errors_never_echo_the_token(s in jwtish()) {
        if let Err(e) = IdToken::new(s.clone()) {
            let text = format!("{e} {e:?}");
            for segment in s.split('.').filter(|seg| seg.len() >= 8) {
                prop_assert!(!text.contains(segment));
            }
        }
    }

    #[test]
    fn parse_authorization_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        prefixed in prop::collection::vec(any::<u8>(), 0..100),
        scheme in prop_oneof![Just("Bearer "), Just("bearer\t"), Just("ID "), Just(""), Just("Bearer")],
    ) {
        let _ = parse_authorization(&bytes);
        let value = [scheme.as_bytes(), &prefixed].concat();
        if let Ok((_, token)) = parse_authorization(&value) {
            // The token is a visible-ASCII slice of the input without whitespace.
            prop_assert!(!token.is_empty());
            prop_assert!(token.bytes().all(|b| (0x21..0x7f).contains(&b)));
            prop_assert!(value.windows(token.len()).any(|w| w == token.as_bytes()));
        }
    }

    #[test]
    fn key_set_parse_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        text in ".{0,200}",
    ) {
        for (format, _) in FORMATS {
            let _ = KeySet::parse(format, &bytes);
            let _ = KeySet::parse(format, text.as_bytes());
        }
    }

    #[test]
    fn key_set_parse_never_panics_on_mutated_documents(
        member in prop_oneof![Just("kid"), Just("kty"), Just("n"), Just("e"), Just("alg"), Just("use"), Just("crv"), Just("x"), Just("y"), Just("keys")],
        value in json_value(),
        which in 0usize..4,
        key_index in 0usize..3,
    ) {
        for (format, doc) in FORMATS {
            let mut v: Value = serde_json::from_slice(doc).expect("fixture JSON");
            match v.get_mut("keys").and_then(Value::as_array_mut) {
                Some(keys) if member == "keys" => {
                    keys.push(value.clone());
                }
                Some(keys) => {
                    let len = keys.len();
                    if let Some(key) = keys.get_mut(key_index % len.max(1)) {
                        key[member] = value.clone();
                    }
                }
                None => {
                    // PEM documents: `{kid: pem}`; replace a value, or add a kid.
                    if let Some(map) = v.as_object_mut() {
                        let kid = map.keys().nth(key_index % map.len().max(1)).cloned();
                        match (which % 2, kid) {
                            (0, Some(kid)) => { map.insert(kid, value.clone()); }
                            _ => { map.insert(member.to_owned(), value.clone()); }
                        }
                    }
                }
            }
            let _ = KeySet::parse(format, v.to_string().as_bytes());
            if which == 3 {
                let _ = KeySet::parse(format, value.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn config_from_arbitrary_strings_has_sane_errors(src in prop_oneof![".{0,300}", "(\\[[a-z.]{0,12}\\]\n|[a-z_]{1,12} = .{0,20}\n){0,8}"]) {
        if let Err(err) = Config::from_toml_str(&src) {
            assert_sane_location(&src, &err);
        }
    }

    #[test]
    fn config_mutations_have_sane_errors(
        op in any::<u8>(),
        a in any::<usize>(),
        b in any::<usize>(),
        insert in prop_oneof![".{0,12}", Just("\"".to_owned()), Just("[".to_owned()), Just("= [\"*\"]\n".to_owned()), Just("\n[inbound]\n".to_owned()), Just("é\u{1F600}".to_owned())],
    ) {
        let src = mutate(CONFIG, op, a, b, &insert);
        match Config::from_toml_str(&src) {
            Ok(config) => { let _ = config.effective_policy(); }
            Err(err) => assert_sane_location(&src, &err),
        }
    }

    #[test]
    fn verifiers_never_panic(s in prop_oneof![".{0,200}", jwtish()]) {
        let (oidc, iap) = verifiers();
        runtime().block_on(async {
            for result in [oidc.verify(&s).await.err(), iap.verify(&s).await.err()] {
                // Nothing arbitrary verifies; every error is an invalid token (keys are static, never unavailable).
                let err = result.expect("an arbitrary string never verifies");
                assert!(err.is_invalid_token(), "{err}");
                let text = format!("{err} {err:?}");
                for segment in s.split('.').filter(|seg| seg.len() >= 16) {
                    assert!(!text.contains(segment), "error echoes a token segment: {text}");
                }
            }
        });
    }
}
