//! The cost of [`UserAccessToken`] on a signed-in request whose access token is still fresh (the common case: no
//! refresh), in process: the same app and session, one route taking `SignedInUser`, the other `UserAccessToken`
//! (a session read of the sealed record from the in-memory store, AES-256-GCM open, JSON decode). Offline access
//! with a key; the sign-in happens once, before measuring, against `idgate-emulator` on loopback; the measured
//! requests touch no network (tower `oneshot` on a cloned router).
//!
//! ```text
//! cargo bench -p idgate-signin --bench user_token -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Medians on the shared 2-core development machine under load (load average about 5, so absolute figures run
//! about twice the quiet machine's `signed_in` bench), two runs side by side: `SignedInUser` 4.44 / 3.88 µs,
//! `UserAccessToken` 7.97 / 7.86 µs: **about +3.5 µs (+3.1 to +4.0) for the token**, no network. Where it goes: the
//! session record is read from the store (the sign-in layer answers a signed-in request from its per-process copy of
//! the user, so the extractor's read is the request's first), the record decoded, the sealed bytes opened
//! (AES-256-GCM over about 300 bytes) and the token JSON decoded. A refresh adds one round trip to Google's token
//! endpoint, once per session and hour.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http::header::COOKIE;
use idgate_core::config::AccessType;
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_core::policy::Allowlist;
use idgate_emulator::Emulator;
use idgate_signin::{ClientSecret, SignIn, SignedInUser, TokenEncryptionKey, UserAccessToken};
use tower::ServiceExt as _;
mod support;

async fn user(user: SignedInUser) -> String {
    user.subject().len().to_string()
}

async fn token(token: UserAccessToken) -> String {
    token.secret().len().to_string()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let redirect = "https://app.example.com/auth/callback";
    let (emulator, signin) = rt.block_on(async {
        let emulator = Emulator::start().await.expect("emulator");
        let client = emulator.create_oauth_client(&[redirect]);
        let signin = SignIn::builder(
            client.client_id(),
            ClientSecret::new(client.client_secret()),
            redirect.parse().expect("redirect URL"),
        )
        .endpoints(&Endpoints::under(&emulator.base_url()))
        .keys_url_as(emulator.oidc_jwks_url(), KeyAlgorithm::Rs256)
        .allowlist(
            Allowlist::builder()
                .user_domain("example.com")
                .build()
                .expect("allowlist"),
        )
        .scopes([
            "openid",
            "email",
            "profile",
            "https://www.googleapis.com/auth/drive.readonly",
        ])
        .access_type(AccessType::Offline)
        .token_encryption_key(TokenEncryptionKey::generate())
        .build()
        .expect("sign-in");
        (emulator, signin)
    });
    let app = Router::new()
        .route("/user", get(user))
        .route("/token", get(token))
        .merge(signin.router())
        .layer(signin.layer());

    let cookie = rt.block_on(support::sign_in_once(
        &app,
        &emulator,
        signin.session_cookie_name(),
        &["/user", "/token"],
    ));

    let mut group = c.benchmark_group("user_token");
    for (name, path) in [("signed_in_user", "/user"), ("user_access_token", "/token")] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let request = Request::get(path)
                    .header(COOKIE, &cookie)
                    .body(Body::empty())
                    .expect("request");
                app.clone().oneshot(request).await.expect("response")
            });
        });
    }
    group.finish();
    drop(emulator);
}

criterion_group!(benches, bench);
criterion_main!(benches);
