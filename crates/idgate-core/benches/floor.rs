//! idgate's own work on a token seen for the first time, measured against the physical floor: one aws-lc-rs
//! `ParsedPublicKey::verify_sig` over the token's signing input with a key parsed once and the signature decoded
//! once, outside the loop.
//!
//! Criterion (`--bench verify`) runs its functions one after the other, so on a shared machine a few percent of
//! drift between them hides the difference this is about (≤ 5 % of the crypto). Here the floor and idgate cold
//! (memo off) alternate in short chunks, in alternating order, and each pair of neighbouring chunks gives one
//! sample of the overhead (cold − floor); the figures are medians over the pairs.
//!
//! Run: `cargo bench -p idgate-core --bench floor` (an optional argument: seconds per algorithm, default 4).
//! Goal: cold ≤ 1.05 × floor.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the figures are this benchmark's output

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt as _;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::{Emulator, TokenSpec};

const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";

/// The key of `token`, parsed once by aws-lc-rs from the JWK its set publishes (RSA `n`/`e`, or P-256 `x`/`y`).
fn parsed_key(runtime: &tokio::runtime::Runtime, url: url::Url, token: &str) -> ParsedPublicKey {
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    let set: serde_json::Value =
        runtime.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
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

/// "N-byte token, M-byte claims".
fn size(token: &str) -> String {
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    if std::env::var_os("FLOOR_SHOW_CLAIMS").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&payload));
    }
    format!("{}-byte token, {}-byte claims", token.len(), payload.len())
}

/// Per-op nanoseconds of `chunk` consecutive calls.
fn time(chunk: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..chunk {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(chunk)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Alternates the floor and idgate cold for `duration`; prints the medians, the ratio and the overhead.
fn compare(
    alg: &str,
    size: &str,
    duration: Duration,
    chunk: u32,
    mut floor: impl FnMut(),
    mut cold: impl FnMut(),
) {
    // Warm caches and branch predictors alike.
    time(chunk, &mut floor);
    time(chunk, &mut cold);
    let (mut floors, mut colds, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    let mut round = 0u32;
    while start.elapsed() < duration {
        let (f, c) = if round.is_multiple_of(2) {
            let f = time(chunk, &mut floor);
            (f, time(chunk, &mut cold))
        } else {
            let c = time(chunk, &mut cold);
            (time(chunk, &mut floor), c)
        };
        floors.push(f);
        colds.push(c);
        overheads.push(c - f);
        round += 1;
    }
    let (f, c, o) = (median(floors), median(colds), median(overheads));
    println!(
        "{alg} ({size}): floor {:.2} µs, idgate cold {:.2} µs = {:.3} × floor, overhead {o:.0} ns ({:.1} % of the floor; \
         {round} pairs of {chunk})",
        f / 1000.0,
        c / 1000.0,
        c / f,
        100.0 * o / f,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the first number, if any, is the seconds per algorithm.
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(4.0);
    let duration = Duration::from_secs_f64(seconds);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime
        .block_on(
            Emulator::builder()
                .project_id("my-project")
                .project_number(123456789)
                .start(),
        )
        .unwrap();

    let token = emulator.mint(
        &TokenSpec::service_account("caller@other-project.iam.gserviceaccount.com")
            .audience(AUDIENCE),
    );
    let key = parsed_key(&runtime, emulator.oidc_jwks_url(), &token);
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let cold = OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .memo_capacity(0)
        .build()
        .unwrap();
    runtime.block_on(cold.keys().warm()).unwrap();
    assert!(key.verify_sig(input.as_bytes(), &signature).is_ok());
    assert!(cold.verify(&token).now_or_never().unwrap().is_ok());
    compare(
        "RS256",
        &size(&token),
        duration,
        16,
        || {
            key.verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .unwrap();
        },
        || {
            black_box(
                cold.verify(black_box(&token))
                    .now_or_never()
                    .unwrap()
                    .unwrap(),
            );
        },
    );

    let audience = emulator.iap_audience_app_engine();
    let assertion = emulator.mint(&TokenSpec::iap_user("alice@example.com").audience(&audience));
    let key = parsed_key(&runtime, emulator.iap_jwks_url(), &assertion);
    let (input, signature) = assertion.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let cold = IapVerifier::builder()
        .audience(&audience)
        .keys_url(emulator.iap_jwks_url())
        .memo_capacity(0)
        .build()
        .unwrap();
    runtime.block_on(cold.keys().warm()).unwrap();
    assert!(key.verify_sig(input.as_bytes(), &signature).is_ok());
    assert!(cold.verify(&assertion).now_or_never().unwrap().is_ok());
    compare(
        "ES256",
        &size(&assertion),
        duration,
        8,
        || {
            key.verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .unwrap();
        },
        || {
            black_box(
                cold.verify(black_box(&assertion))
                    .now_or_never()
                    .unwrap()
                    .unwrap(),
            );
        },
    );
}
