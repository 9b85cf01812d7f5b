//! Key fetches: a burst of cold verifications shares one JWKS fetch; a flood of unknown key IDs is rate-limited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_core::verify::{OidcVerifier, VerifyError};
use idgate_emulator::Route;

use crate::env::{Env, OIDC_AUDIENCE};
use crate::report::Report;

const SECTION: &str = "Key fetches (counted by the emulator)";

/// A valid token's payload and signature under a header naming a random, unknown key.
fn with_unknown_kid(token: &str, state: &mut u64) -> String {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let header = format!(
        r#"{{"alg":"RS256","kid":"{:016x}{:08x}","typ":"JWT"}}"#,
        *state,
        state.rotate_left(17) as u32
    );
    let rest = token.split_once('.').expect("a JWT").1;
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

pub(crate) fn run(env: &Env, report: &mut Report) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tokens = Arc::new(env.oidc_tokens(500, 400_000));
    // A verifier whose key cache has never fetched.
    let verifier = OidcVerifier::builder()
        .audience(OIDC_AUDIENCE)
        .keys_url(env.emulator.oidc_jwks_url())
        .memo_capacity(0)
        .build()
        .expect("verifier");
    env.emulator.reset_hits();
    let ok = rt.block_on(async {
        let tasks: Vec<_> = (0..tokens.len())
            .map(|i| {
                let (v, tokens) = (verifier.clone(), tokens.clone());
                tokio::spawn(async move { v.verify(&tokens[i]).await.is_ok() })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.expect("task"));
        }
        ok
    });
    let hits = env.emulator.hits(Route::OidcJwks);
    report.goal(
        SECTION,
        "burst of 500 concurrent cold verifications (empty key cache): JWKS fetches",
        format!("{hits} fetch(es); {ok}/500 verified"),
        "1",
        hits == 1 && ok == 500,
    );

    // The flood: 5,000 tokens with random unknown kids over 2 s, against the now-warm verifier.
    env.emulator.reset_hits();
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let flood: Vec<String> = (0..5000)
        .map(|i| with_unknown_kid(&tokens[i % tokens.len()], &mut state))
        .collect();
    let (unknown, other, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        let mut tasks = Vec::with_capacity(flood.len());
        for batch in flood.chunks(100) {
            tick.tick().await;
            for token in batch {
                let (v, token) = (verifier.clone(), token.clone());
                tasks.push(tokio::spawn(async move { v.verify(&token).await }));
            }
        }
        let (mut unknown, mut other) = (0, 0);
        for t in tasks {
            match t.await.expect("task") {
                Err(VerifyError::UnknownKeyId) => unknown += 1,
                _ => other += 1,
            }
        }
        (unknown, other, start.elapsed())
    });
    let hits = env.emulator.hits(Route::OidcJwks);
    report.goal(
        SECTION,
        format!(
            "flood of 5,000 random unknown kids over {:.1} s (warm cache): JWKS fetches",
            elapsed.as_secs_f64()
        ),
        format!("{hits} fetch(es); {unknown} rejected as unknown kid, {other} otherwise"),
        "≤ 1 per 30 s",
        hits <= 1 && other == 0,
    );
}
