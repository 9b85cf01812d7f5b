//! The emulator (the loopback twin of Google's key endpoints), its runtime, and the token sets every contender
//! verifies.

use std::time::Duration;

use idgate_emulator::{Emulator, TokenSpec};
use jsonwebtoken::jwk::JwkSet;

/// The audience of the RS256 service-account tokens.
pub(crate) const OIDC_AUDIENCE: &str = "https://bench-abc123-uc.a.run.app";
/// Issuers of Google ID tokens.
pub(crate) const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// The issuer of IAP assertions.
pub(crate) const IAP_ISSUER: &str = "https://cloud.google.com/iap";
/// The project the callers' service accounts belong to.
pub(crate) const PROJECT: &str = "bench-project";

#[derive(Debug)]
pub(crate) struct Env {
    /// Serves the emulator; one worker, idle while the key caches are warm.
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) emulator: Emulator,
    pub(crate) iap_audience: String,
}

impl Env {
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("emulator")
            .enable_all()
            .build()
            .expect("emulator runtime");
        let emulator = runtime
            .block_on(
                Emulator::builder()
                    .project_id(PROJECT)
                    .project_number(123_456_789)
                    .oidc_key_count(2)
                    .iap_key_count(2)
                    .start(),
            )
            .expect("emulator");
        let iap_audience = emulator.iap_audience_app_engine();
        Self {
            runtime,
            emulator,
            iap_audience,
        }
    }

    /// `n` distinct RS256 ID tokens, one per service account of the project, minted on two threads.
    pub(crate) fn oidc_tokens(&self, n: usize, offset: usize) -> Vec<String> {
        self.mint_parallel(n, |i| {
            TokenSpec::service_account(format!(
                "caller-{}@{PROJECT}.iam.gserviceaccount.com",
                i + offset
            ))
            .audience(OIDC_AUDIENCE)
        })
    }

    /// `n` distinct ES256 IAP assertions, one per user.
    pub(crate) fn iap_tokens(&self, n: usize, offset: usize) -> Vec<String> {
        self.mint_parallel(n, |i| {
            TokenSpec::iap_user(format!("user-{}@example.com", i + offset))
                .audience(&self.iap_audience)
        })
    }

    fn mint_parallel(&self, n: usize, spec: impl Fn(usize) -> TokenSpec + Sync) -> Vec<String> {
        let half = n / 2;
        let emulator = &self.emulator;
        let spec = &spec;
        std::thread::scope(|s| {
            let a = s.spawn(move || {
                (0..half)
                    .map(|i| emulator.mint(&spec(i)))
                    .collect::<Vec<_>>()
            });
            let b = s.spawn(move || {
                (half..n)
                    .map(|i| emulator.mint(&spec(i)))
                    .collect::<Vec<_>>()
            });
            let mut out = a.join().expect("minter");
            out.extend(b.join().expect("minter"));
            out
        })
    }

    pub(crate) fn get_json(&self, url: url::Url) -> serde_json::Value {
        self.runtime.block_on(async {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client")
                .get(url)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON")
        })
    }

    pub(crate) fn jwks(&self, url: url::Url) -> JwkSet {
        serde_json::from_value(self.get_json(url)).expect("a JWKS")
    }
}

pub(crate) fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}
