//! The user's own Google API access, through HTTP on loopback with the emulator playing Google: offline sign-in
//! with an extra scope, the [`UserAccessToken`] extractor (a token that works at Google, refreshed ahead of expiry
//! with one refresh per session), the tokens encrypted at rest (no plaintext in the store, a moved or altered
//! record refused), `invalid_grant` ending the session, Google down answering 503, logout revoking.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{App, Browser, Google, Public, TOKEN_KEY};
use http::StatusCode;
use idgate_core::clock::ManualClock;
use idgate_core::config::{AccessType, Config};
use idgate_core::google::HttpOptions;
use idgate_emulator::{Fault, Route};
use idgate_signin::{
    SessionStore, SignIn, SignInBuilder, TokenEncryptionKey, UserAccessToken,
    UserAccessTokenRejection,
};
use serde_json::{Value, json};
use tower_sessions::session::Id;

const DRIVE: &str = "https://www.googleapis.com/auth/drive.readonly";
const JSON: (&str, &str) = ("accept", "application/json");

/// What `/api/token` answers: the token the handler got (a test app may show it; a real one never would), its
/// scopes, and what Google's tokeninfo said of it when the handler used it.
async fn api_token(State(tokeninfo): State<url::Url>, token: UserAccessToken) -> axum::Json<Value> {
    let info = reqwest::Client::new()
        .get(tokeninfo)
        .query(&[("access_token", token.secret())])
        .send()
        .await
        .unwrap();
    let status = info.status().as_u16();
    let info: Value = info.json().await.unwrap();
    axum::Json(json!({
        "token": token.secret(),
        "scopes": token.scopes().collect::<Vec<_>>(),
        "drive": token.has_scope(DRIVE),
        "tokeninfo": status,
        "tokeninfo_email": info.get("email"),
        "tokeninfo_scope": info.get("scope"),
    }))
}

/// Only extracts, so that the concurrency test counts token-endpoint hits and nothing else.
async fn api_bare(token: UserAccessToken) -> String {
    token.secret().to_owned()
}

/// What the rejection says about itself, for the test that reads `kind()`.
async fn api_kind(token: Result<UserAccessToken, UserAccessTokenRejection>) -> String {
    match token {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?} {} {}", e.kind(), e.reason(), e.status().as_u16()),
    }
}

fn routes(google: &Google) -> impl FnOnce(&SignIn) -> Router {
    let tokeninfo = google.emu.tokeninfo_url();
    move |signin: &SignIn| {
        Router::new()
            .route("/api/token", get(api_token))
            .route("/api/bare", get(api_bare))
            .route("/api/kind", get(api_kind))
            .with_state(tokeninfo)
            .route("/", get(common::home))
            .merge(
                Router::new()
                    .route("/books", get(common::books))
                    .layer(signin.require()),
            )
            .merge(signin.router())
            .layer(signin.layer())
    }
}

/// Offline access with the Drive scope, a key, and the app's clock in the test's hands.
fn offline(clock: &ManualClock) -> impl FnOnce(SignInBuilder) -> SignInBuilder {
    let clock = clock.clone();
    move |b| {
        b.scopes(["openid", "email", "profile", DRIVE])
            .access_type(AccessType::Offline)
            .token_encryption_key(TokenEncryptionKey::generate())
            .idle_timeout(Duration::from_secs(4 * 3600))
            .clock(Arc::new(clock))
    }
}

async fn serve_offline(google: &Google, clock: &ManualClock) -> App {
    App::serve_routed(
        google,
        Public::Loopback,
        google.endpoints(),
        offline(clock),
        routes(google),
    )
    .await
}

async fn signed_in(google: &Google, app: &App, email: &str) -> Browser {
    let mut browser = app.browser();
    let callback = browser.sign_in(google, "/", email).await;
    assert_eq!(callback.status, StatusCode::FOUND, "{}", callback.body);
    browser
}

async fn token_json(browser: &mut Browser) -> Value {
    let answer = browser.send(http::Method::GET, "/api/token", &[JSON]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

/// The session record as the store keeps it, serialized.
async fn record_text(app: &App, cookie: &str) -> String {
    let record = app.store.session(cookie).await.expect("a live session");
    serde_json::to_string(&record.data).unwrap()
}

#[tokio::test]
async fn the_handler_gets_a_token_that_works_at_google_and_the_store_holds_no_plaintext() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut browser = signed_in(&google, &app, "alice@example.com").await;

    let got = token_json(&mut browser).await;
    assert_eq!(got["tokeninfo"], 200, "{got}");
    assert_eq!(got["tokeninfo_email"], "alice@example.com");
    assert_eq!(got["drive"], true, "{got}");
    assert!(
        got["tokeninfo_scope"].as_str().unwrap().contains(DRIVE),
        "{got}"
    );
    assert!(got["scopes"].as_array().unwrap().contains(&json!("openid")));
    let access = got["token"].as_str().unwrap().to_owned();

    // Google issued one refresh token for this offline sign-in; neither it nor the access token is anywhere in
    // clear: not in the store's record, not in a cookie.
    let refresh = google
        .emu
        .refresh_tokens(app.client.client_id(), "alice@example.com");
    assert_eq!(refresh.len(), 1, "one offline grant");
    let cookie = browser.session().unwrap().clone();
    let text = record_text(&app, &cookie).await;
    assert!(text.contains(TOKEN_KEY), "the tokens are kept: {text}");
    for secret in [&refresh[0], &access] {
        assert!(
            !text.contains(secret.as_str()),
            "plaintext token in the store"
        );
        assert!(
            browser
                .cookies
                .values()
                .all(|c| !c.contains(secret.as_str())),
            "token in a cookie"
        );
    }
    let record = app.store.session(&cookie).await.unwrap();
    assert!(
        record.data[TOKEN_KEY]["sealed"].is_string(),
        "{}",
        record.data[TOKEN_KEY]
    );

    // Before the refresh margin, the same token, with no trip to the token endpoint.
    google.emu.reset_hits();
    clock.advance(Duration::from_secs(600));
    assert_eq!(token_json(&mut browser).await["token"], access.as_str());
    assert_eq!(google.emu.hits(Route::Token), 0);
}

#[tokio::test]
async fn many_requests_of_one_session_share_one_refresh_and_sessions_refresh_apart() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut alice = signed_in(&google, &app, "alice@example.com").await;
    let mut bob = signed_in(&google, &app, "bob@example.com").await;
    let old_alice = token_json(&mut alice).await["token"].clone();
    let old_bob = token_json(&mut bob).await["token"].clone();

    // Within five minutes of expiry (Google's tokens live an hour): the next request refreshes.
    clock.advance(Duration::from_secs(3600 - 200));
    google.emu.reset_hits();
    let mut requests = Vec::new();
    for i in 0..100 {
        let mut browser = if i % 2 == 0 {
            alice.clone()
        } else {
            bob.clone()
        };
        requests.push(tokio::spawn(async move {
            let answer = browser.send(http::Method::GET, "/api/bare", &[JSON]).await;
            (i % 2, answer.status, answer.body)
        }));
    }
    let mut tokens = [Vec::new(), Vec::new()];
    for request in requests {
        let (who, status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens[who].push(body);
    }
    assert_eq!(
        google.emu.hits(Route::Token),
        2,
        "50 concurrent requests of each of two sessions: one refresh per session"
    );
    for (who, old) in [(0, &old_alice), (1, &old_bob)] {
        let first = &tokens[who][0];
        assert!(
            tokens[who].iter().all(|t| t == first),
            "one new token per session"
        );
        assert_ne!(first.as_str(), old.as_str().unwrap(), "a new token");
    }
    assert_ne!(tokens[0][0], tokens[1][0]);

    // The new token works at Google, is kept (encrypted) for the next requests, and nothing refreshes again.
    let got = token_json(&mut alice).await;
    assert_eq!(got["token"], tokens[0][0].as_str());
    assert_eq!(got["tokeninfo"], 200);
    assert_eq!(google.emu.hits(Route::Token), 2);
    let text = record_text(&app, alice.session().unwrap()).await;
    assert!(!text.contains(tokens[0][0].as_str()));
}

#[tokio::test]
async fn a_refused_refresh_token_ends_the_session() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut browser = signed_in(&google, &app, "alice@example.com").await;
    let mut bob = signed_in(&google, &app, "bob@example.com").await;
    token_json(&mut browser).await;
    token_json(&mut bob).await;
    let cookie = browser.session().unwrap().clone();

    // The user revokes the app's access at Google (here: the refresh token, at the revocation endpoint).
    let refresh = google
        .emu
        .refresh_tokens(app.client.client_id(), "alice@example.com");
    let revoked = reqwest::Client::new()
        .post(google.emu.revoke_url())
        .form(&[("token", refresh[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    clock.advance(Duration::from_secs(3600));
    let answer = browser.send(http::Method::GET, "/api/bare", &[JSON]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert_eq!(answer.body.trim(), r#"{"error":"sign_in_required"}"#);
    assert!(
        app.store.session(&cookie).await.is_none(),
        "the session is deleted from the store"
    );

    // The old cookie signs nobody in any more: not the extractor, not the gate, not the greeting.
    browser.set_session(&cookie);
    let page = browser.page("/api/bare").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(
        page.location()
            .starts_with("/auth/login?return_to=%2Fapi%2Fbare")
    );
    browser.set_session(&cookie);
    assert_eq!(
        browser
            .send(http::Method::GET, "/books", &[JSON])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    browser.set_session(&cookie);
    assert_eq!(browser.page("/").await.body, "login");
    // Bob removes the app from his Google Account: the same, seen through the rejection's kind (for handlers that
    // take the rejection themselves).
    assert!(
        google
            .emu
            .remove_access(app.client.client_id(), "bob@example.com")
    );
    assert_eq!(
        bob.send(http::Method::GET, "/api/kind", &[]).await.body,
        "SessionEnded session_ended 401"
    );

    // Signing in again works, with a new refresh token (the app's clock back in step with Google's tokens).
    clock.set(std::time::SystemTime::now());
    let mut again = signed_in(&google, &app, "alice@example.com").await;
    assert_eq!(token_json(&mut again).await["tokeninfo"], 200);
}

#[tokio::test]
async fn google_down_answers_503_and_keeps_the_session() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = App::serve_routed(
        &google,
        Public::Loopback,
        google.endpoints(),
        |b| {
            let mut http = HttpOptions::default();
            http.timeout = Duration::from_millis(500);
            offline(&clock)(b).http(http)
        },
        routes(&google),
    )
    .await;
    let mut browser = signed_in(&google, &app, "alice@example.com").await;
    let old = token_json(&mut browser).await["token"].clone();
    clock.advance(Duration::from_secs(3600));

    for fault in [
        Fault::Status(503),
        Fault::Hang,
        Fault::Garbage,
        Fault::Status(400),
    ] {
        google.emu.inject(Route::Token, fault, 1);
        let answer = browser.send(http::Method::GET, "/api/bare", &[JSON]).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        assert!(!answer.body.contains(old.as_str().unwrap()));
        assert!(
            app.store
                .session(browser.session().unwrap())
                .await
                .is_some(),
            "the session is kept"
        );
    }
    assert_eq!(
        browser.send(http::Method::GET, "/api/kind", &[]).await.body,
        "ok",
        "Google is back"
    );
    let got = token_json(&mut browser).await;
    assert_ne!(got["token"], old);
    assert_eq!(got["tokeninfo"], 200);
}

#[tokio::test]
async fn a_moved_or_altered_token_record_is_refused() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut alice = signed_in(&google, &app, "alice@example.com").await;
    let mut bob = signed_in(&google, &app, "bob@example.com").await;
    let alice_token = token_json(&mut alice).await["token"].clone();
    token_json(&mut bob).await;
    let (alice_cookie, bob_cookie) = (
        alice.session().unwrap().clone(),
        bob.session().unwrap().clone(),
    );

    // Someone who can write the store copies Alice's sealed tokens into Bob's session: Bob gets no token (and
    // certainly not Alice's), his session ends, and Alice is unaffected.
    let alice_record = app.store.session(&alice_cookie).await.unwrap();
    let mut bob_record = app.store.session(&bob_cookie).await.unwrap();
    bob_record
        .data
        .insert(TOKEN_KEY.to_owned(), alice_record.data[TOKEN_KEY].clone());
    app.store.save(&bob_record).await.unwrap();
    let answer = bob.send(http::Method::GET, "/api/bare", &[JSON]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert!(!answer.body.contains(alice_token.as_str().unwrap()));
    assert!(app.store.session(&bob_cookie).await.is_none());
    assert_eq!(token_json(&mut alice).await["token"], alice_token);

    // An altered record (one character of the ciphertext changed, or not a record at all) is refused the same way.
    for bent in [
        |sealed: &str| {
            let mut chars: Vec<char> = sealed.chars().collect();
            let i = chars.len() / 2;
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            json!({ "sealed": chars.into_iter().collect::<String>() })
        },
        |_: &str| json!({ "sealed": "" }),
        |_: &str| json!({ "sealed": 7 }),
        |_: &str| json!([1, 2, 3]),
    ] {
        let mut victim = signed_in(&google, &app, "alice@example.com").await;
        let cookie = victim.session().unwrap().clone();
        let mut record = app.store.session(&cookie).await.unwrap();
        let sealed = record.data[TOKEN_KEY]["sealed"]
            .as_str()
            .unwrap()
            .to_owned();
        record.data.insert(TOKEN_KEY.to_owned(), bent(&sealed));
        app.store.save(&record).await.unwrap();
        let answer = victim.send(http::Method::GET, "/api/bare", &[JSON]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert!(
            app.store.session(&cookie).await.is_none(),
            "the session ends"
        );
    }
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut browser = signed_in(&google, &app, "alice@example.com").await;
    let access = token_json(&mut browser).await["token"].clone();
    let refresh = google
        .emu
        .refresh_tokens(app.client.client_id(), "alice@example.com");
    assert_eq!(refresh.len(), 1);
    assert!(!google.emu.is_revoked(&refresh[0]));

    let origin = app.origin.clone();
    let out = browser.logout(Some(&origin)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        google.emu.is_revoked(&refresh[0]),
        "the refresh token is revoked"
    );
    assert!(
        google.emu.is_revoked(access.as_str().unwrap()),
        "with its grant"
    );
    assert!(
        google
            .emu
            .refresh_tokens(app.client.client_id(), "alice@example.com")
            .is_empty()
    );

    // Online access with a key: the access token is kept sealed too, and it is what logout revokes.
    let online = App::serve_routed(
        &google,
        Public::Loopback,
        google.endpoints(),
        |b| b.token_encryption_key(TokenEncryptionKey::generate()),
        routes(&google),
    )
    .await;
    let mut browser = signed_in(&google, &online, "alice@example.com").await;
    let access = token_json(&mut browser).await["token"].clone();
    let access = access.as_str().unwrap();
    assert!(
        !record_text(&online, browser.session().unwrap())
            .await
            .contains(access)
    );
    let origin = online.origin.clone();
    assert!(!google.emu.is_revoked(access));
    assert_eq!(
        browser.logout(Some(&origin)).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(google.emu.is_revoked(access));
}

#[tokio::test]
async fn without_a_refresh_token_the_access_token_serves_until_it_expires() {
    // Google gives a refresh token only when the consent screen is shown: a second offline sign-in without
    // `prompt=consent` gets none. The session then holds the access token alone.
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    signed_in(&google, &app, "alice@example.com").await;
    let mut second = signed_in(&google, &app, "alice@example.com").await;
    assert_eq!(
        google
            .emu
            .refresh_tokens(app.client.client_id(), "alice@example.com")
            .len(),
        1,
        "no second refresh token without the consent screen"
    );
    assert_eq!(token_json(&mut second).await["tokeninfo"], 200);
    clock.advance(Duration::from_secs(3600));
    google.emu.reset_hits();
    assert_eq!(
        second.send(http::Method::GET, "/api/kind", &[]).await.body,
        "ReauthorizationRequired reauthorization_required 401"
    );
    let page = second.page("/api/bare").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(google.emu.hits(Route::Token), 0);
    assert!(
        app.store.session(second.session().unwrap()).await.is_some(),
        "the session itself stays"
    );

    // With `prompt=consent`, every offline sign-in gets one.
    let app = App::serve_routed(
        &google,
        Public::Loopback,
        google.endpoints(),
        |b| offline(&clock)(b).prompt("consent"),
        routes(&google),
    )
    .await;
    signed_in(&google, &app, "alice@example.com").await;
    signed_in(&google, &app, "alice@example.com").await;
    assert_eq!(
        google
            .emu
            .refresh_tokens(app.client.client_id(), "alice@example.com")
            .len(),
        2
    );
}

#[tokio::test]
async fn signed_out_and_misconfigured_requests_get_no_token() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut stranger = app.browser();
    let answer = stranger.send(http::Method::GET, "/api/bare", &[JSON]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body.trim(), r#"{"error":"sign_in_required"}"#);
    let page = stranger.page("/api/bare?x=1").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(
        page.location(),
        "/auth/login?return_to=%2Fapi%2Fbare%3Fx%3D1"
    );
    // A session cookie that names nothing.
    stranger.set_session(&Id::default().to_string());
    assert_eq!(
        stranger
            .send(http::Method::GET, "/api/kind", &[])
            .await
            .body,
        "NotSignedIn not_signed_in 401"
    );

    // Without a key, the extractor names what is missing (500), and the session keeps the token logout revokes
    // as before.
    let plain = App::serve_routed(
        &google,
        Public::Loopback,
        google.endpoints(),
        |b| b,
        routes(&google),
    )
    .await;
    let mut browser = signed_in(&google, &plain, "alice@example.com").await;
    assert_eq!(
        browser.send(http::Method::GET, "/api/kind", &[]).await.body,
        "NotConfigured not_configured 500"
    );
    assert!(
        plain
            .store
            .token(browser.session().unwrap())
            .await
            .is_some()
    );

    // Offline access without a key is refused when building.
    let client = google.emu.create_oauth_client(&["http://127.0.0.1:1/cb"]);
    let e = SignIn::builder(
        client.client_id(),
        idgate_signin::ClientSecret::new(client.client_secret()),
        "http://127.0.0.1:1/cb".parse().unwrap(),
    )
    .allowlist(common::allowlist())
    .access_type(AccessType::Offline)
    .build()
    .unwrap_err();
    assert_eq!(e.reason(), "invalid_config");
    assert!(e.to_string().contains("token encryption key"), "{e}");
}

#[test]
fn the_key_is_read_from_the_environment_or_a_file_named_in_the_configuration() {
    let dir = std::env::temp_dir().join(format!("idgate-tokens-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("client");
    std::fs::write(&secret, "GOCSPX-x\n").unwrap();
    let key = dir.join("key");
    let config = |key_line: &str| {
        Config::from_toml_str(&format!(
            "[signin]\nclient_id = \"c\"\nclient_secret_file = '{}'\nredirect_url = \"https://a.example/cb\"\n\
             access_type = \"offline\"\n{key_line}\n[signin.allow]\ndomains = [\"example.com\"]\n",
            secret.display()
        ))
    };
    let file_line = format!("token_encryption_key_file = '{}'", key.display());

    // A good key: 32 bytes in base64, as `openssl rand -base64 32` prints it.
    std::fs::write(&key, "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n").unwrap();
    assert!(SignIn::from_config(&config(&file_line).unwrap()).is_ok());

    // A wrong length: refused, naming the file and the line, never the value.
    std::fs::write(&key, "c2hvcnQta2V5\n").unwrap();
    let e = SignIn::from_config(&config(&file_line).unwrap()).unwrap_err();
    assert_eq!(e.reason(), "token_key_unavailable");
    let text = e.to_string();
    assert!(
        text.contains(&key.display().to_string()) && text.contains("line 6"),
        "{text}"
    );
    assert!(!text.contains("c2hvcnQ"), "{text}");

    // An unset variable.
    let e = SignIn::from_config(
        &config("token_encryption_key_env = \"IDGATE_TOKENS_TEST_KEY_SURELY_UNSET\"").unwrap(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("IDGATE_TOKENS_TEST_KEY_SURELY_UNSET"),
        "{e}"
    );

    // Offline without a key, or the key written in the file: the configuration itself is refused.
    let e = config("").unwrap_err();
    assert_eq!(e.line(), Some(5), "{e}");
    let e = config("token_encryption_key = \"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"")
        .unwrap_err();
    assert_eq!(e.line(), Some(6), "{e}");
    assert!(!e.to_string().contains("q83vEjRW"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_logout_during_a_refresh_stays_a_logout() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = serve_offline(&google, &clock).await;
    let mut browser = signed_in(&google, &app, "alice@example.com").await;
    token_json(&mut browser).await;
    let cookie = browser.session().unwrap().clone();
    clock.advance(Duration::from_secs(3600 - 200));

    // A request whose refresh is slow at Google; the user logs out meanwhile (and the revocation at logout fails,
    // so that the refresh itself succeeds).
    google
        .emu
        .inject(Route::Token, Fault::Delay(Duration::from_millis(1500)), 1);
    google.emu.inject(Route::Revoke, Fault::Status(503), 1);
    let mut slow = browser.clone();
    let pending =
        tokio::spawn(async move { slow.send(http::Method::GET, "/api/bare", &[JSON]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let origin = app.origin.clone();
    assert_eq!(
        browser.logout(Some(&origin)).await.status,
        StatusCode::SEE_OTHER
    );
    let answer = pending.await.unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);

    // The slow request did not write the session back: it stays deleted, and its cookie signs nobody in.
    assert!(app.store.session(&cookie).await.is_none());
    browser.set_session(&cookie);
    assert_eq!(browser.page("/").await.body, "login");
}

/// Another process serving the same app: its own `SignIn` on its own port, the same OAuth client, store and clock,
/// and the key `key`.
async fn replica(google: &Google, app: &App, clock: &ManualClock, key: TokenEncryptionKey) -> App {
    replica_allowing(google, app, clock, key, common::allowlist()).await
}

async fn replica_allowing(
    google: &Google,
    app: &App,
    clock: &ManualClock,
    key: TokenEncryptionKey,
    allowlist: idgate_core::Allowlist,
) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let signin = SignIn::builder(
        app.client.client_id(),
        idgate_signin::ClientSecret::new(app.client.client_secret()),
        format!("{origin}/auth/callback").parse().unwrap(),
    )
    .endpoints(&google.endpoints())
    .keys_url_as(
        google.emu.oidc_jwks_url(),
        idgate_core::keys::KeyAlgorithm::Rs256,
    )
    .allowlist(allowlist)
    .store(app.store.clone())
    .scopes(["openid", "email", "profile", DRIVE])
    .access_type(AccessType::Offline)
    .token_encryption_key(key)
    .idle_timeout(Duration::from_secs(4 * 3600))
    .clock(Arc::new(clock.clone()))
    .build()
    .unwrap();
    let router = routes(google)(&signin);
    tokio::spawn(async move { axum::serve(listener, router).await });
    App {
        signin,
        store: app.store.clone(),
        client: app.client.clone(),
        addr,
        origin,
    }
}

#[tokio::test]
async fn replicas_sharing_the_store_and_the_key_share_the_tokens() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let key = TokenEncryptionKey::generate();
    let (configure, same_key) = (offline(&clock), key.clone());
    let a = App::serve_routed(
        &google,
        Public::Loopback,
        google.endpoints(),
        move |b| configure(b).token_encryption_key(same_key),
        routes(&google),
    )
    .await;
    let b = replica(&google, &a, &clock, key.clone()).await;
    let mut on_a = signed_in(&google, &a, "alice@example.com").await;
    let mut on_b = b.browser();
    on_b.cookies = on_a.cookies.clone();

    // Signed in through A, served by B: the same token, no refresh.
    let first = token_json(&mut on_a).await["token"].clone();
    google.emu.reset_hits();
    assert_eq!(token_json(&mut on_b).await["token"], first);
    assert_eq!(google.emu.hits(Route::Token), 0);

    // B refreshes; A then reads the new token from the store and does not refresh again.
    clock.advance(Duration::from_secs(3600 - 200));
    let second = token_json(&mut on_b).await;
    assert_ne!(second["token"], first);
    assert_eq!(second["tokeninfo"], 200);
    assert_eq!(token_json(&mut on_a).await["token"], second["token"]);
    assert_eq!(google.emu.hits(Route::Token), 1);

    // A process whose allowlist no longer admits Alice gives her no token (403), and leaves her session alone.
    let strict = replica_allowing(
        &google,
        &a,
        &clock,
        key,
        idgate_core::Allowlist::builder()
            .user_email("carol@other.example")
            .build()
            .unwrap(),
    )
    .await;
    let mut on_strict = strict.browser();
    on_strict.cookies = on_a.cookies.clone();
    assert_eq!(
        on_strict
            .send(http::Method::GET, "/api/kind", &[])
            .await
            .body,
        "NotAllowed not_allowed 403"
    );
    assert_eq!(token_json(&mut on_a).await["token"], second["token"]);

    // A process with another key cannot open the record: that session ends (not a panic, not a token).
    let c = replica(&google, &a, &clock, TokenEncryptionKey::generate()).await;
    let mut on_c = c.browser();
    on_c.cookies = on_a.cookies.clone();
    let answer = on_c.send(http::Method::GET, "/api/kind", &[]).await;
    assert_eq!(answer.body, "SessionEnded session_ended 401");
    assert!(a.store.session(on_a.session().unwrap()).await.is_none());
}
