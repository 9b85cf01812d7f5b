//! What one verification costs, side by side on the same tokens and keys (served by the emulator):
//!
//! - `floor_sig`: the physical floor for a token seen for the first time: one aws-lc-rs
//!   `ParsedPublicKey::verify_sig` on the token's signing input, with the key parsed once and the signature already
//!   base64-decoded outside the loop; nothing else;
//! - `jsonwebtoken_decode`: raw `jsonwebtoken::decode` with a pre-built `DecodingKey` and the same aud/iss
//!   validation (a peer: it re-parses the key on every call);
//! - `idgate_cold`: `OidcVerifier`/`IapVerifier` with the memo off (structure, header rules, key lookup, signature,
//!   claims), warm key cache;
//! - `idgate_memo_hit`: the same token presented again (a keyed hash of the token, see `verify/memo_key.rs`, and a
//!   cache lookup).
//!
//! Run: `cargo bench -p idgate-core --bench verify`. Goals: cold ≤ 1.05 × `floor_sig` (idgate's own work — split,
//! base64, JSON, claims — at most 5 % of the crypto); memo hit ≤ 1 µs.
//! The key cache is warm, so `verify` completes on its first poll; `now_or_never` measures it without an executor.

use std::hint::black_box;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::{Emulator, TokenSpec};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";

#[derive(serde::Deserialize)]
#[allow(dead_code)] // the fields are what decoding costs; nothing reads them
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    exp: i64,
    iat: i64,
}

fn decoding_key(runtime: &tokio::runtime::Runtime, url: url::Url, kid: &str) -> DecodingKey {
    let set: JwkSet =
        runtime.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    DecodingKey::from_jwk(set.find(kid).unwrap()).unwrap()
}

/// The token's key, parsed once by aws-lc-rs straight from the JWK (RSA `n`/`e`, or the P-256 point `x`/`y`).
fn parsed_key(runtime: &tokio::runtime::Runtime, url: url::Url, kid: &str) -> ParsedPublicKey {
    let set: serde_json::Value =
        runtime.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    if jwk["kty"] == "RSA" {
        let (n, e) = (member("n"), member("e"));
        RsaPublicKeyComponents { n: &n, e: &e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .unwrap()
    } else {
        let point = [&[0x04][..], &member("x"), &member("y")].concat();
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap()
    }
}

/// The token's signing input (`header.payload`) and its decoded signature.
fn signed_parts(token: &str) -> (&str, Vec<u8>) {
    let (input, signature) = token.rsplit_once('.').unwrap();
    (input, URL_SAFE_NO_PAD.decode(signature).unwrap())
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime
        .block_on(
            Emulator::builder()
                .project_id("my-project")
                .project_number(123456789)
                .start(),
        )
        .unwrap();

    // RS256: a service account's ID token.
    let token = emulator.mint(
        &TokenSpec::service_account("caller@other-project.iam.gserviceaccount.com")
            .audience(AUDIENCE),
    );
    let key = decoding_key(&runtime, emulator.oidc_jwks_url(), &kid_of(&token));
    let parsed = parsed_key(&runtime, emulator.oidc_jwks_url(), &kid_of(&token));
    let (input, signature) = signed_parts(&token);
    assert!(parsed.verify_sig(input.as_bytes(), &signature).is_ok());
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&["https://accounts.google.com", "accounts.google.com"]);
    let oidc = |memo| {
        let v = OidcVerifier::builder()
            .audience(AUDIENCE)
            .keys_url(emulator.oidc_jwks_url())
            .memo_capacity(memo)
            .build()
            .unwrap();
        runtime.block_on(v.keys().warm()).unwrap();
        v
    };
    let (cold, memo) = (oidc(0), oidc(10_000));
    assert!(jsonwebtoken::decode::<Claims>(&token, &key, &validation).is_ok());
    assert!(cold.verify(&token).now_or_never().unwrap().is_ok());
    assert!(memo.verify(&token).now_or_never().unwrap().is_ok());

    let mut group = c.benchmark_group("rs256");
    group.bench_function("floor_sig", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .unwrap();
        });
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap());
    });
    group.bench_function("idgate_cold", |b| {
        b.iter(|| {
            cold.verify(black_box(&token))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });
    group.bench_function("idgate_memo_hit", |b| {
        b.iter(|| {
            memo.verify(black_box(&token))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });
    group.finish();

    // ES256: an IAP assertion.
    let audience = emulator.iap_audience_app_engine();
    let assertion = emulator.mint(&TokenSpec::iap_user("alice@example.com").audience(&audience));
    let key = decoding_key(&runtime, emulator.iap_jwks_url(), &kid_of(&assertion));
    let parsed = parsed_key(&runtime, emulator.iap_jwks_url(), &kid_of(&assertion));
    let (input, signature) = signed_parts(&assertion);
    assert!(parsed.verify_sig(input.as_bytes(), &signature).is_ok());
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&audience]);
    validation.set_issuer(&["https://cloud.google.com/iap"]);
    let iap = |memo| {
        let v = IapVerifier::builder()
            .audience(&audience)
            .keys_url(emulator.iap_jwks_url())
            .memo_capacity(memo)
            .build()
            .unwrap();
        runtime.block_on(v.keys().warm()).unwrap();
        v
    };
    let (cold, memo) = (iap(0), iap(10_000));
    assert!(jsonwebtoken::decode::<Claims>(&assertion, &key, &validation).is_ok());
    assert!(cold.verify(&assertion).now_or_never().unwrap().is_ok());

    let mut group = c.benchmark_group("es256");
    group.bench_function("floor_sig", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .unwrap();
        });
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Claims>(black_box(&assertion), &key, &validation).unwrap()
        });
    });
    group.bench_function("idgate_cold", |b| {
        b.iter(|| {
            cold.verify(black_box(&assertion))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });
    group.bench_function("idgate_memo_hit", |b| {
        b.iter(|| {
            memo.verify(black_box(&assertion))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
