//! Verification, same tokens and keys for everyone: the floor (one aws-lc-rs signature check with a parsed key),
//! the jsonwebtoken peer, idgate cold / memo hit, Rust peers, single-threaded; then 2 threads of concurrent load
//! over many distinct tokens.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gcloud_sdk::id_token_verify::{IdTokenKeys, IdTokenKeysSource, IdTokenVerifier};
use idgate_core::verify::{IapVerifier, OidcVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::env::{Env, GOOGLE_ISSUERS, IAP_ISSUER, OIDC_AUDIENCE, kid_of};
use crate::report::Report;
use crate::timing::{Op, Sample, interleaved, run};

const SECTION: &str = "Verification, single thread (same tokens, same keys)";
const LOAD: &str = "Verification, 2 threads of concurrent load";

#[derive(serde::Deserialize)]
#[allow(dead_code)] // the fields are what decoding costs; nothing reads them
struct OidcClaims {
    iss: String,
    aud: String,
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    exp: i64,
    iat: i64,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct IapClaims {
    iss: String,
    aud: String,
    sub: String,
    email: String,
    exp: i64,
    iat: i64,
}

/// The physical floor for a token seen for the first time: one aws-lc-rs `ParsedPublicKey::verify_sig` over the
/// token's signing input, with its key parsed once (from the JWK's `n`/`e`, or P-256 `x`/`y`) and its signature
/// base64-decoded before the clock starts. Nothing else: no split, no JSON, no claims.
struct SigFloor {
    /// Per token of the single-thread set: the signing input, the decoded signature, the index of its key.
    tokens: Vec<(String, Vec<u8>, usize)>,
    keys: Vec<ParsedPublicKey>,
}

impl SigFloor {
    fn new(env: &Env, url: url::Url, tokens: &[String]) -> Self {
        let set = env.get_json(url);
        let jwks = set["keys"].as_array().expect("a JWKS");
        let mut kids: Vec<String> = Vec::new();
        let mut keys = Vec::new();
        let tokens = tokens
            .iter()
            .map(|token| {
                let kid = kid_of(token);
                let index = kids.iter().position(|k| *k == kid).unwrap_or_else(|| {
                    let jwk = jwks
                        .iter()
                        .find(|k| k["kid"] == kid.as_str())
                        .expect("signing kid published");
                    let member = |name: &str| {
                        URL_SAFE_NO_PAD
                            .decode(jwk[name].as_str().expect("a JWK member"))
                            .expect("base64url")
                    };
                    keys.push(if jwk["kty"] == "RSA" {
                        let (n, e) = (member("n"), member("e"));
                        RsaPublicKeyComponents { n: &n, e: &e }
                            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                            .expect("RSA key")
                    } else {
                        let point = [&[0x04][..], &member("x"), &member("y")].concat();
                        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("P-256 key")
                    });
                    kids.push(kid);
                    keys.len() - 1
                });
                let (input, signature) = token.rsplit_once('.').expect("a JWT");
                let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
                (input.to_owned(), signature, index)
            })
            .collect();
        Self { tokens, keys }
    }

    /// The signature check of the `i`-th token; `true` when it holds.
    fn verify(&self, i: usize) -> bool {
        let (input, signature, key) = &self.tokens[i % self.tokens.len()];
        self.keys[*key]
            .verify_sig(input.as_bytes(), signature)
            .is_ok()
    }
}

/// The jsonwebtoken peer: a pre-built key and the same alg/aud/iss checks.
struct Floor {
    key: DecodingKey,
    validation: Validation,
}

impl Floor {
    fn new(env: &Env, url: url::Url, kid: &str, alg: Algorithm, aud: &str, iss: &[&str]) -> Self {
        let set = env.jwks(url);
        let key =
            DecodingKey::from_jwk(set.find(kid).expect("signing kid published")).expect("key");
        let mut validation = Validation::new(alg);
        validation.set_audience(&[aud]);
        validation.set_issuer(iss);
        Self { key, validation }
    }
}

/// gcloud-sdk's verifier takes a key source; this one hands it the emulator's JWKS (fetched once, as its
/// built-in Google source would, cached for an hour).
struct EmulatorKeys(gcloud_sdk::id_token_verify::JwkSet);

#[async_trait::async_trait]
impl IdTokenKeysSource for EmulatorKeys {
    async fn fetch_keys(&self) -> gcloud_sdk::error::Result<IdTokenKeys> {
        Ok(IdTokenKeys::new(self.0.clone(), Duration::from_secs(3600)))
    }
}

pub(crate) struct Contenders {
    rs_sig: SigFloor,
    es_sig: SigFloor,
    rs_floor: Floor,
    es_floor: Floor,
    oidc_cold: OidcVerifier,
    oidc_memo: OidcVerifier,
    iap_cold: IapVerifier,
    iap_memo: IapVerifier,
    gca: google_cloud_auth::credentials::idtoken::verifier::Verifier,
    gcloud: IdTokenVerifier,
    jwta_rs: jwt_authorizer::Authorizer<serde_json::Value>,
    jwta_es: jwt_authorizer::Authorizer<serde_json::Value>,
}

fn oidc_verifier(env: &Env, memo: u64) -> OidcVerifier {
    let v = OidcVerifier::builder()
        .audience(OIDC_AUDIENCE)
        .keys_url(env.emulator.oidc_jwks_url())
        .memo_capacity(memo)
        .build()
        .expect("verifier");
    env.runtime.block_on(v.keys().warm()).expect("warm");
    v
}

fn iap_verifier(env: &Env, memo: u64) -> IapVerifier {
    let v = IapVerifier::builder()
        .audience(&env.iap_audience)
        .keys_url(env.emulator.iap_jwks_url())
        .memo_capacity(memo)
        .build()
        .expect("verifier");
    env.runtime.block_on(v.keys().warm()).expect("warm");
    v
}

impl Contenders {
    pub(crate) fn new(env: &Env, oidc: &[String], iap: &[String]) -> Self {
        let rs_kid = kid_of(&oidc[0]);
        let es_kid = kid_of(&iap[0]);
        let gcloud_keys: gcloud_sdk::id_token_verify::JwkSet =
            serde_json::from_value(env.get_json(env.emulator.oidc_jwks_url())).expect("JWKS");
        let jwta = |url: url::Url, iss: &[&str], aud: &str| {
            env.runtime
                .block_on(
                    jwt_authorizer::JwtAuthorizer::<serde_json::Value>::from_jwks_url(url.as_str())
                        .validation(jwt_authorizer::Validation::new().iss(iss).aud(&[aud]))
                        .build(),
                )
                .expect("jwt-authorizer")
        };
        Self {
            rs_sig: SigFloor::new(env, env.emulator.oidc_jwks_url(), oidc),
            es_sig: SigFloor::new(env, env.emulator.iap_jwks_url(), iap),
            rs_floor: Floor::new(
                env,
                env.emulator.oidc_jwks_url(),
                &rs_kid,
                Algorithm::RS256,
                OIDC_AUDIENCE,
                &GOOGLE_ISSUERS,
            ),
            es_floor: Floor::new(
                env,
                env.emulator.iap_jwks_url(),
                &es_kid,
                Algorithm::ES256,
                &env.iap_audience,
                &[IAP_ISSUER],
            ),
            oidc_cold: oidc_verifier(env, 0),
            oidc_memo: oidc_verifier(env, 100_000),
            iap_cold: iap_verifier(env, 0),
            iap_memo: iap_verifier(env, 100_000),
            gca: google_cloud_auth::credentials::idtoken::verifier::Builder::new([OIDC_AUDIENCE])
                .with_jwks_url(env.emulator.oidc_jwks_url().to_string())
                .build(),
            gcloud: IdTokenVerifier::with_keys_source(
                gcloud_sdk::IdTokenAudience::new(OIDC_AUDIENCE),
                EmulatorKeys(gcloud_keys),
            ),
            jwta_rs: jwta(env.emulator.oidc_jwks_url(), &GOOGLE_ISSUERS, OIDC_AUDIENCE),
            jwta_es: jwta(
                env.emulator.iap_jwks_url(),
                &[IAP_ISSUER],
                &env.iap_audience,
            ),
        }
    }

    /// One RS256 verification by contender `name`; `true` when the token was accepted.
    fn rs256(&self, rt: &tokio::runtime::Runtime, name: &str, token: &str) -> bool {
        match name {
            "jsonwebtoken" => jsonwebtoken::decode::<OidcClaims>(
                token,
                &self.rs_floor.key,
                &self.rs_floor.validation,
            )
            .is_ok(),
            "idgate_cold" => run(rt, self.oidc_cold.verify(token)).is_ok(),
            "idgate_memo" => run(rt, self.oidc_memo.verify(token)).is_ok(),
            "google-cloud-auth" => run(rt, self.gca.verify(token)).is_ok(),
            "gcloud-sdk" => run(rt, self.gcloud.verify(token)).is_ok(),
            "jwt-authorizer" => run(rt, self.jwta_rs.check_auth(token)).is_ok(),
            other => unreachable!("{other}"),
        }
    }

    fn es256(&self, rt: &tokio::runtime::Runtime, name: &str, token: &str) -> bool {
        match name {
            "jsonwebtoken" => jsonwebtoken::decode::<IapClaims>(
                token,
                &self.es_floor.key,
                &self.es_floor.validation,
            )
            .is_ok(),
            "idgate_cold" => run(rt, self.iap_cold.verify(token)).is_ok(),
            "idgate_memo" => run(rt, self.iap_memo.verify(token)).is_ok(),
            "jwt-authorizer" => run(rt, self.jwta_es.check_auth(token)).is_ok(),
            other => unreachable!("{other}"),
        }
    }
}

/// "floor" (the signature check alone) is measured on the single-thread set by index; every other name verifies
/// whole tokens through [`Contenders::rs256`] / [`Contenders::es256`].
const RS_NAMES: [&str; 7] = [
    "floor",
    "jsonwebtoken",
    "idgate_cold",
    "idgate_memo",
    "google-cloud-auth",
    "gcloud-sdk",
    "jwt-authorizer",
];
const ES_NAMES: [&str; 5] = [
    "floor",
    "jsonwebtoken",
    "idgate_cold",
    "idgate_memo",
    "jwt-authorizer",
];

fn label(name: &str) -> &str {
    match name {
        "floor" => "floor: aws-lc-rs `verify_sig`, parsed key",
        "jsonwebtoken" => "jsonwebtoken 11 `decode`, pre-built key",
        "idgate_cold" => "idgate, memo off (cold)",
        "idgate_memo" => "idgate, memo hit",
        "google-cloud-auth" => "google-cloud-auth 1.x `idtoken::verifier` (warm JWKS)",
        "gcloud-sdk" => "gcloud-sdk 0.33 `IdTokenVerifier` (warm keys)",
        "jwt-authorizer" => "jwt-authorizer 0.15 `check_auth` (warm JWKS)",
        other => other,
    }
}

/// Single-threaded results the cross-language comparison needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColdRates {
    pub(crate) rs256_ops: f64,
    pub(crate) es256_ops: f64,
    pub(crate) rs256_us: f64,
    pub(crate) es256_us: f64,
    pub(crate) rs256_memo_ops: f64,
    pub(crate) es256_memo_ops: f64,
    /// idgate cold over the jsonwebtoken peer (median per op).
    pub(crate) rs256_cold_over_jsonwebtoken: f64,
}

fn fmt_rate(s: &Sample) -> String {
    format!(
        "{:.0} ops/s, median {}",
        s.ops_per_sec(),
        fmt_us(s.median_us())
    )
}

pub(crate) fn fmt_us(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0} ns", us * 1000.0)
    } else if us < 100.0 {
        format!("{us:.2} µs")
    } else if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

pub(crate) fn single_thread(
    c: &Contenders,
    oidc: &[String],
    iap: &[String],
    report: &mut Report,
) -> ColdRates {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    // Sanity, and warm every key cache and memo.
    assert!(
        (0..oidc.len()).all(|i| c.rs_sig.verify(i)),
        "floor: a bad signature"
    );
    assert!(
        (0..iap.len()).all(|i| c.es_sig.verify(i)),
        "floor: a bad signature"
    );
    for t in oidc {
        for name in &RS_NAMES[1..] {
            assert!(c.rs256(&rt, name, t), "{name} rejected a valid RS256 token");
        }
    }
    for t in iap {
        for name in &ES_NAMES[1..] {
            assert!(
                c.es256(&rt, name, t),
                "{name} rejected a valid ES256 assertion"
            );
        }
    }
    let rounds = 4;
    let slice = Duration::from_millis(400);

    let mut ops: Vec<Op<'_>> = RS_NAMES
        .iter()
        .map(|&name| -> Op<'_> {
            let rt = &rt;
            if name == "floor" {
                return (
                    name,
                    Box::new(move |i| assert!(black_box(c.rs_sig.verify(i)))),
                );
            }
            (
                name,
                Box::new(move |i| assert!(black_box(c.rs256(rt, name, &oidc[i % oidc.len()])))),
            )
        })
        .collect();
    // The memo hit costs ~100 ns: bigger chunks so the clock's own cost does not count.
    let rs = interleaved(&mut ops, rounds, slice, 32);
    drop(ops);
    let mut ops: Vec<Op<'_>> = ES_NAMES
        .iter()
        .map(|&name| -> Op<'_> {
            let rt = &rt;
            if name == "floor" {
                return (
                    name,
                    Box::new(move |i| assert!(black_box(c.es_sig.verify(i)))),
                );
            }
            (
                name,
                Box::new(move |i| assert!(black_box(c.es256(rt, name, &iap[i % iap.len()])))),
            )
        })
        .collect();
    let es = interleaved(&mut ops, rounds, slice, 32);
    drop(ops);

    for (alg, names, samples) in [("RS256", &RS_NAMES[..], &rs), ("ES256", &ES_NAMES[..], &es)] {
        let floor = &samples[0];
        for (name, s) in names.iter().zip(samples.iter()) {
            let item = format!("{alg}: {}", label(name));
            match *name {
                "idgate_cold" => {
                    let ratio = s.median_us() / floor.median_us();
                    let overhead_ns = (s.median_us() - floor.median_us()) * 1000.0;
                    report.goal(
                        SECTION,
                        item,
                        format!(
                            "{} = {ratio:.3} × floor, idgate's own work {overhead_ns:.0} ns",
                            fmt_rate(s)
                        ),
                        "≤ 1.05 × floor",
                        ratio <= 1.05,
                    );
                }
                "idgate_memo" => {
                    report.goal(SECTION, item, fmt_rate(s), "≤ 1 µs", s.median_us() <= 1.0);
                }
                "floor" => report.info(SECTION, item, fmt_rate(s)),
                _ => {
                    let ratio = s.median_us() / floor.median_us();
                    report.info(
                        SECTION,
                        item,
                        format!("{} = {ratio:.2} × floor", fmt_rate(s)),
                    );
                }
            }
        }
    }
    // idgate's own work per algorithm (cold − floor, ns) and the floor's median (µs), for the note on a miss.
    let own_work = |samples: &[Sample]| {
        (
            (samples[2].median_us() - samples[0].median_us()) * 1000.0,
            samples[0].median_us(),
        )
    };
    let ((rs_own, rs_floor), (es_own, es_floor)) = (own_work(&rs), own_work(&es));
    let verdict = if rs_own > 0.05 * rs_floor * 1000.0 || es_own > 0.05 * es_floor * 1000.0 {
        "misses 1.05 × the floor"
    } else {
        "is within 5 % of the floor"
    };
    report.note(
        SECTION,
        format!(
            "idgate cold {verdict}: its own work ({rs_own:.0} ns RS256, {es_own:.0} ns ES256 in this run) is per \
             token, not per signature, so it is about the same for both algorithms; 5 % of an RSA-2048 check \
             ({rs_floor:.2} µs here) is {:.0} ns, of a P-256 check ({es_floor:.2} µs) {:.0} ns. That work: finding \
             the two dots (memchr), decoding the claims and signature segments (base64-simd, strict, onto the \
             stack), the header only when its segment is not byte-identical to one an accepted token carried (the \
             verifier's known headers), one JSON parse of the claims borrowed from the decoded bytes, the claim and \
             time checks, and two small strings copied for the memo. Before a1c9078 it was 1.43 µs RS256 (1.094 × \
             the floor in the run at fc18a59): the `base64` crate, a separate scan of the alphabet, the header \
             decoded and parsed on every token, four allocations, and a 904-byte future moved; `cargo bench -p \
             idgate-core --bench floor`, which alternates the floor and idgate cold in short chunks, measured 1434 \
             → 679 ns RS256 and 1196 → 685 ns ES256 across that change on this machine. The largest part left is \
             serde_json's parse of the claims (about 260 ns).",
            rs_floor * 50.0,
            es_floor * 50.0
        ),
    );
    report.note(
        SECTION,
        format!(
            "{} distinct RS256 tokens (one per service account) and {} distinct ES256 IAP assertions, all signed by \
             the emulator and verified against keys it serves. Each contender ran {rounds} × {} ms, interleaved with \
             the others, in chunks of 32 verifications; the median is over chunks. Async verifiers are polled once \
             with a no-op waker (a warm verification completes on its first poll) and only driven by a runtime if \
             they are not ready, for idgate and peers alike.",
            oidc.len(),
            iap.len(),
            slice.as_millis()
        ),
    );
    report.note(
        SECTION,
        "The floor is the physical floor for a token seen for the first time: one aws-lc-rs \
         `ParsedPublicKey::verify_sig` over the token's signing input, the key parsed once from the JWK and the \
         signature base64-decoded before timing, nothing else (the library idgate verifies with, so the difference \
         is idgate's own work: split, base64, header and claims JSON, claim and time checks, key lookup). \
         jsonwebtoken, the floor of the first harness, is now a peer row: it re-parses the key on every call.",
    );
    report.note(
        SECTION,
        "google-cloud-auth and gcloud-sdk verify Google OIDC ID tokens only (RS256, issuer accounts.google.com): \
         they have no IAP (ES256) counterpart, so they appear in the RS256 rows only. All three Rust peers build \
         with current dependencies, so none was skipped: google-cloud-auth 1.18 (feature `idtoken`, pointed at the \
         emulator with `with_jwks_url`) and gcloud-sdk 0.33 (feature `id-token-verify`, given the emulator's JWKS \
         through its `IdTokenKeysSource` trait, since its built-in source is HTTPS-only) use jsonwebtoken 11 on \
         aws-lc-rs like the jsonwebtoken row; jwt-authorizer 0.15 (`from_jwks_url`, default features off, `rustls-tls`) brings \
         its own jsonwebtoken 9 on ring, axum 0.7 and reqwest 0.12.",
    );
    ColdRates {
        rs256_ops: rs[2].ops_per_sec(),
        es256_ops: es[2].ops_per_sec(),
        rs256_us: rs[2].median_us(),
        es256_us: es[2].median_us(),
        rs256_memo_ops: rs[3].ops_per_sec(),
        es256_memo_ops: es[3].ops_per_sec(),
        rs256_cold_over_jsonwebtoken: rs[2].median_us() / rs[1].median_us(),
    }
}

/// One verification on the calling thread's runtime; `true` when the token was accepted.
type Verify<'a> = &'a (dyn Fn(&tokio::runtime::Runtime, &str) -> bool + Sync);

/// Two threads, each with its own current-thread runtime, verifying round-robin over the pool (thread 1 starts
/// half-way) for `duration`; returns (accepted per second, accepted, rejected).
fn load(
    verify: Verify<'_>,
    tokens: &[String],
    duration: Duration,
    threads: usize,
) -> (f64, u64, u64) {
    let ok = AtomicU64::new(0);
    let err = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ok, err) = (&ok, &err);
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let _guard = rt.enter();
                let mut i = t * tokens.len() / threads;
                let (mut good, mut bad) = (0u64, 0u64);
                while start.elapsed() < duration {
                    for _ in 0..16 {
                        if verify(&rt, &tokens[i % tokens.len()]) {
                            good += 1;
                        } else {
                            bad += 1;
                        }
                        i += 1;
                    }
                }
                ok.fetch_add(good, Ordering::Relaxed);
                err.fetch_add(bad, Ordering::Relaxed);
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (good, bad) = (ok.into_inner(), err.into_inner());
    (good as f64 / elapsed, good, bad)
}

pub(crate) fn concurrent(env: &Env, c: &Contenders, report: &mut Report) {
    let pool = env.oidc_tokens(1024, 100_000);
    let names = [
        "jsonwebtoken",
        "idgate_memo_on",
        "idgate_memo_off",
        "google-cloud-auth",
        "gcloud-sdk",
        "jwt-authorizer",
    ];
    let rounds = 2;
    let duration = Duration::from_millis(1500);
    let mut totals = vec![(0.0f64, 0u64, 0u64); names.len()];
    let mut single = vec![0.0f64; names.len()];
    for _ in 0..rounds {
        for (k, name) in names.iter().enumerate() {
            for threads in [2, 1] {
                let (rate, good, bad) = if *name == "idgate_memo_on" {
                    // A fresh memo each run, so every run starts with 1,024 unseen tokens.
                    let v = oidc_verifier(env, 10_000);
                    load(
                        &|rt, t| run(rt, v.verify(t)).is_ok(),
                        &pool,
                        duration,
                        threads,
                    )
                } else {
                    let inner = if *name == "idgate_memo_off" {
                        "idgate_cold"
                    } else {
                        name
                    };
                    load(&|rt, t| c.rs256(rt, inner, t), &pool, duration, threads)
                };
                if threads == 1 {
                    single[k] += rate / rounds as f64;
                } else {
                    totals[k].0 += rate / rounds as f64;
                    totals[k].1 += good;
                    totals[k].2 += bad;
                }
            }
        }
    }
    let gca = totals[3].0;
    for (k, name) in names.iter().enumerate() {
        let (rate, _good, bad) = totals[k];
        let rejected = if bad > 0 {
            format!(" (**{bad} valid tokens rejected**)")
        } else {
            String::new()
        };
        let item = match *name {
            "idgate_memo_on" => "idgate, memo on (default 10,000)".to_owned(),
            "idgate_memo_off" => "idgate, memo off".to_owned(),
            other => label(other).to_owned(),
        };
        let value = format!(
            "{rate:.0} verifications/s{rejected} ({:.2} × its 1-thread rate)",
            rate / single[k]
        );
        match *name {
            "idgate_memo_on" | "idgate_memo_off" => {
                let ratio = rate / gca;
                report.goal(
                    LOAD,
                    item,
                    format!("{value} = {ratio:.2} × google-cloud-auth"),
                    "≥ 1.5 × google-cloud-auth",
                    ratio >= 1.5,
                );
            }
            _ => report.info(LOAD, item, value),
        }
    }
    report.note(
        LOAD,
        format!(
            "A pool of {} distinct valid RS256 tokens; two threads, each with its own current-thread runtime, verify \
             round-robin through the pool (the second thread starts half-way) for {} ms, {rounds} rounds interleaved \
             with the other contenders; a fresh memo each round, so memo on pays 1,024 full verifications before \
             its hits. Throughput counts accepted tokens only; rejections of valid tokens are reported. Each run is \
             paired with a 1-thread run of the same contender (same schedule): the ratio in brackets is how it \
             scales to 2 threads (at most 2 on this 2-core machine, less when other processes want the cores).",
            pool.len(),
            duration.as_millis()
        ),
    );
    if totals[2].0 / gca < 1.5 {
        report.note(
            LOAD,
            format!(
                "Memo off misses the 1.5 × google-cloud-auth goal ({:.2} ×) because both do the same dominant work: \
                 one RSA-2048 signature check in aws-lc per token (`perf` of idgate's cold path: ~65 % of cycles \
                 in aws-lc's bignum Montgomery code, `bn_sqrx8x_internal`/`bn_mulx4x_mont`). Under the same load \
                 idgate memo off runs at {:.2} × jsonwebtoken's throughput, and google-cloud-auth's own overhead is small \
                 (plus the rejections below). No verifier that checks every signature can be 1.5 × another that \
                 checks it with the same library; the goal is met with the memo (default on), {:.1} ×. idgate's \
                 path has no contention: on a quiet moment of the same machine (load 1.1) `probe` measured idgate \
                 memo off at 2.0 × its 1-thread rate, so a 2-thread scaling ratio well below 2 in a run is the \
                 shared machine's noise, not locking.",
                totals[2].0 / gca,
                totals[2].0 / totals[0].0,
                totals[1].0 / gca
            ),
        );
    }
    if totals[3].2 > 0 {
        report.note(
            LOAD,
            format!(
                "google-cloud-auth rejected {} valid tokens under 2-thread load: its `JwkClient::get_or_load_cert` \
                 takes the certificate cache with `RwLock::try_write()` on every call, even a cache hit, and fails \
                 the verification (\"failed to obtain lock to read certificate cache\") when another verification \
                 holds it. Only accepted tokens count towards its throughput.",
                totals[3].2
            ),
        );
    }
}

/// `idgate-bench probe <contender> <threads> <seconds>`: one contender alone under load, for `perf record`.
pub(crate) fn probe(name: &str, threads: usize, seconds: u64) {
    let env = Env::start();
    let oidc = env.oidc_tokens(256, 0);
    let iap = env.iap_tokens(4, 0);
    let c = Contenders::new(&env, &oidc, &iap);
    let pool = env.oidc_tokens(1024, 100_000);
    let (rate, good, bad) = load(
        &|rt, t| c.rs256(rt, name, t),
        &pool,
        Duration::from_secs(seconds),
        threads,
    );
    eprintln!("{name} × {threads} threads: {rate:.0}/s ({good} accepted, {bad} rejected)");
}

const SCALING: &str = "Verification, scaling with threads";

/// The thread counts of the scaling table: 1, 2, 4, … below `nproc`, and `nproc` itself.
fn thread_counts(nproc: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|n| *n < nproc)
        .collect();
    counts.push(nproc.max(1));
    counts
}

fn fmt_per_sec(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else {
        format!("{:.1} k/s", rate / 1e3)
    }
}

/// Throughput at 1, 2, 4, … `nproc` threads and the scaling efficiency at each (rate at N / (N × rate at 1)), for
/// idgate cold, idgate memo (over the pool, and with every thread presenting one token) and the Rust peers.
pub(crate) fn scaling(env: &Env, c: &Contenders, report: &mut Report) {
    let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let counts = thread_counts(nproc);
    let pool = env.oidc_tokens(1024, 300_000);
    let one = vec![pool[0].clone()];
    // The memo row measures hits: every token of the pool is verified once before the clock starts.
    for token in &pool {
        assert!(c.rs256(&env.runtime, "idgate_memo", token), "a valid token");
    }
    let contenders: [(&str, &str, &[String]); 7] = [
        ("idgate, memo off (cold)", "idgate_cold", &pool),
        ("idgate, memo hit, 1,024 tokens", "idgate_memo", &pool),
        (
            "idgate, memo hit, one token on every thread",
            "idgate_memo",
            &one,
        ),
        (label("jsonwebtoken"), "jsonwebtoken", &pool),
        (label("google-cloud-auth"), "google-cloud-auth", &pool),
        (label("gcloud-sdk"), "gcloud-sdk", &pool),
        (label("jwt-authorizer"), "jwt-authorizer", &pool),
    ];
    let rounds: u32 = 2;
    let per_point = Duration::from_millis(1000);
    // rates[k][i]: contender k at counts[i], summed over rounds; rejected valid tokens likewise.
    let mut rates = vec![vec![0.0f64; counts.len()]; contenders.len()];
    let mut rejected = vec![0u64; contenders.len()];
    for round in 0..rounds as usize {
        // Rotated each round, so no point always runs right after the same other.
        for step in 0..contenders.len() * counts.len() {
            let at = (step + round * 5) % (contenders.len() * counts.len());
            let (k, i) = (at / counts.len(), at % counts.len());
            let (_, name, tokens) = contenders[k];
            let (rate, _good, bad) =
                load(&|rt, t| c.rs256(rt, name, t), tokens, per_point, counts[i]);
            rates[k][i] += rate / f64::from(rounds);
            rejected[k] += bad;
        }
    }
    let header = counts
        .iter()
        .map(|n| format!("{n} thread{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" · ");
    for (k, (item, name, _)) in contenders.iter().enumerate() {
        let single = rates[k][0];
        let mut worst = f64::INFINITY;
        let points: Vec<String> = counts
            .iter()
            .zip(&rates[k])
            .map(|(n, rate)| {
                if *n == 1 {
                    fmt_per_sec(*rate)
                } else {
                    let efficiency = rate / (*n as f64 * single);
                    worst = worst.min(efficiency);
                    format!("{} ({:.0} %)", fmt_per_sec(*rate), efficiency * 100.0)
                }
            })
            .collect();
        let lost = if rejected[k] > 0 {
            format!(" (**{} valid tokens rejected**)", rejected[k])
        } else {
            String::new()
        };
        let value = format!("{}{lost}", points.join(" · "));
        if name.starts_with("idgate") && counts.len() > 1 {
            report.goal(
                SCALING,
                format!("{item}: {header}"),
                value,
                "≥ 90 % efficiency at every N",
                worst >= 0.9,
            );
        } else {
            report.info(SCALING, format!("{item}: {header}"), value);
        }
    }
    report.note(
        SCALING,
        format!(
            "Each thread has its own current-thread runtime and verifies round-robin through its token list (a pool \
             of {} distinct valid RS256 tokens, thread t starting at t/N of the way through; or the same single \
             token on every thread: one caller's token on a busy instance) for {} ms per point, {rounds} rounds, the \
             points in a rotated order. Efficiency in brackets: the rate at N threads over N × the rate at 1 \
             thread. The memo rows verify the pool once before measuring, so they measure hits. Throughput counts \
             accepted tokens only. At N = `nproc` the harness's own threads (the emulator's runtime, idle) and \
             anything else on the machine share the cores, so the last point is the most exposed to noise; the \
             load average above says how busy the machine was.",
            pool.len(),
            per_point.as_millis()
        ),
    );
}
