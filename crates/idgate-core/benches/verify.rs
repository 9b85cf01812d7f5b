//! What one verification costs, side by side on the same tokens and keys (served by the emulator):
//!
//! - `floor`: raw `jsonwebtoken::decode` with a pre-built `DecodingKey` and the same aud/iss validation;
//! - `idgate_cold`: `OidcVerifier`/`IapVerifier` with the memo off (structure, header rules, key lookup, signature,
//!   claims), warm key cache;
//! - `idgate_memo_hit`: the same token presented again (SHA-256 of the token and a cache lookup).
//!
//! Run: `cargo bench -p idgate-core --bench verify`. Goals: cold ≤ 1.1 × floor; memo hit ≤ 1 µs.
//! The key cache is warm, so `verify` completes on its first poll; `now_or_never` measures it without an executor.

use std::hint::black_box;

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
    group.bench_function("floor_jsonwebtoken_decode", |b| {
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
    group.bench_function("floor_jsonwebtoken_decode", |b| {
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
