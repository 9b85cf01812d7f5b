//! The whole flow over real HTTP on loopback: the app (the real `SignIn` layer, gate and routes) on `127.0.0.1`,
//! `idgate-emulator` playing Google (account chooser, `authorization_code` grant with PKCE, userinfo, revoke, keys),
//! and a cookie-jar client playing the browser. The hostile cases are in `hostile.rs`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{App, Google, Public};
use http::{Method, StatusCode};
use idgate_core::clock::ManualClock;
use idgate_emulator::Route;
use idgate_signin::{ClientSecret, SignIn};
use url::Url;

fn picture(google: &Google, email: &str) -> String {
    google
        .emu
        .users()
        .into_iter()
        .find(|u| u.email() == email)
        .unwrap()
        .picture()
        .to_owned()
}

#[tokio::test]
async fn a_person_signs_in_reloads_and_signs_out() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    assert_eq!(app.signin.session_cookie_name(), "idgate_session");

    // Signed out: a page is sent to sign in, with the way back.
    let first = browser.page("/books?page=2").await;
    assert_eq!(first.status, StatusCode::FOUND);
    assert_eq!(
        first.location(),
        "/auth/login?return_to=%2Fbooks%3Fpage%3D2"
    );
    assert_eq!(browser.page("/").await.body, "login");

    // Login: to Google's authorization endpoint with every parameter of the flow.
    let login = browser.page(first.location()).await;
    assert_eq!(login.status, StatusCode::FOUND);
    let auth = Url::parse(login.location()).unwrap();
    assert_eq!(
        auth.as_str().split('?').next().unwrap(),
        google.emu.authorization_url().as_str()
    );
    let q: HashMap<String, String> = auth.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], app.client.client_id());
    assert_eq!(q["redirect_uri"], format!("{}/auth/callback", app.origin));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(!q.contains_key("hd") && !q.contains_key("prompt"));
    // Plain-http loopback (development): the attempt cookie is neither `Secure` nor `__Host-`.
    let attempt_cookie = &login.set_cookies()[0];
    assert!(
        attempt_cookie.starts_with("idgate_signin_"),
        "{attempt_cookie}"
    );
    assert!(!attempt_cookie.contains("Secure"), "{attempt_cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(
            attempt_cookie.contains(attr),
            "{attempt_cookie} lacks {attr}"
        );
    }
    assert_eq!(app.signin.pending_attempts(), 1);
    assert_eq!(app.store.count(), 0, "no session before sign-in");

    // Alice picks her account on Google's chooser; Google sends the browser back with a code (and RFC 9207's iss).
    let callback = google.consent(login.location(), "alice@example.com");
    assert!(
        callback
            .as_str()
            .starts_with(&format!("{}/auth/callback?", app.origin)),
        "{callback}"
    );
    assert_eq!(
        common::param(callback.as_str(), "iss").as_deref(),
        Some("https://accounts.google.com")
    );
    let back = browser.page(callback.as_str()).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert_eq!(back.location(), "/books?page=2");
    let session_cookie = back
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("idgate_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            session_cookie.contains(attr),
            "{session_cookie} lacks {attr}"
        );
    }
    assert!(!session_cookie.contains("Domain"), "{session_cookie}");
    let session = browser.session().cloned().unwrap();
    assert_eq!(session.len(), 22, "the cookie holds only the session ID");
    assert!(app.store.session(&session).await.is_some());
    assert_eq!(app.store.count(), 1);
    assert!(
        !browser
            .cookies
            .keys()
            .any(|k| k.starts_with("idgate_signin_")),
        "attempt cookie removed"
    );
    assert_eq!(app.signin.pending_attempts(), 0);

    // Signed in: the protected page greets her with the profile from the ID token (name, picture) and the common
    // Caller; a reload stays signed in.
    let expected = format!(
        "books of Alice Liddell (alice@example.com; user alice@example.com; picture {})",
        picture(&google, "alice@example.com")
    );
    for _ in 0..2 {
        let page = browser.page("/books").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body, expected);
    }
    assert_eq!(browser.page("/").await.body, "hello alice@example.com");

    // The Google token logout will revoke.
    let token = app.store.token(&session).await.expect("a token to revoke");
    assert!(!google.emu.is_revoked(&token));

    // Logout: GET is not allowed; a POST from another site is refused; from this site it ends the session.
    assert_eq!(
        browser.send(Method::GET, "/auth/logout", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let refused = browser.logout(origin).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert_eq!(refused.reason(), Some("cross_site_logout"));
    }
    assert_eq!(
        browser.page("/books").await.status,
        StatusCode::OK,
        "still signed in"
    );
    assert!(!google.emu.is_revoked(&token));
    let origin = app.origin.clone();
    let out = browser.logout(Some(&origin)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/");
    assert_eq!(out.headers.get("clear-site-data").unwrap(), "\"cookies\"");
    assert!(
        google.emu.is_revoked(&token),
        "the Google token was revoked at Google"
    );
    assert_eq!(app.store.count(), 0, "the session was deleted");
    assert!(app.store.session(&session).await.is_none());
    assert_eq!(
        browser.page("/books").await.status,
        StatusCode::FOUND,
        "signed out"
    );
    // The old session ID is dead on the server, not only forgotten by the browser.
    let mut replay = app.browser();
    replay.set_session(&session);
    assert_eq!(replay.page("/books").await.status, StatusCode::FOUND);
    // Same-origin by Sec-Fetch-Site when there is no Origin.
    let by_fetch_site = browser
        .send(
            Method::POST,
            "/auth/logout",
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(by_fetch_site.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn behind_https_the_cookies_are_secure_and_host_prefixed() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Https, |b| b).await;
    assert_eq!(app.signin.session_cookie_name(), "__Host-idgate_session");
    let mut browser = app.browser();
    let authorization = browser.login("/books").await;
    assert_eq!(
        common::param(&authorization, "redirect_uri").unwrap(),
        "https://app.example.com/auth/callback"
    );
    let back = browser
        .page(google.consent(&authorization, "alice@example.com").as_str())
        .await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    let session_cookie = back
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-idgate_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            session_cookie.contains(attr),
            "{session_cookie} lacks {attr}"
        );
    }
    assert!(!session_cookie.contains("Domain"), "{session_cookie}");
    assert!(
        session_cookie.len() < 4096,
        "one cookie, never split: {session_cookie}"
    );
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    // The attempt cookies are `__Host-` and `Secure` too.
    let login = browser.page("/auth/login").await;
    let attempt_cookie = &login.set_cookies()[0];
    assert!(
        attempt_cookie.starts_with("__Host-idgate_signin_") && attempt_cookie.contains("Secure"),
        "{attempt_cookie}"
    );
    let out = browser.logout(Some("https://app.example.com")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.count(), 0);
}

#[tokio::test]
async fn scripts_get_401_and_refused_accounts_403() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();

    for headers in [
        &[("accept", "application/json")][..],
        &[("sec-fetch-mode", "cors"), ("accept", "text/html")][..],
        &[][..],
    ] {
        let answer = browser.send(Method::GET, "/books", headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(
            answer.location().is_empty(),
            "never a redirect for a script"
        );
    }
    let answer = browser
        .send(Method::POST, "/books", &[("accept", "text/html")])
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a POST is not a navigation"
    );
    assert!(answer.location().is_empty());
    // A script that asks for JSON gets the reason as JSON.
    let json = browser
        .send(Method::GET, "/books", &[("accept", "application/json")])
        .await;
    assert_eq!(json.body.trim(), r#"{"error":"sign_in_required"}"#);
    assert_eq!(json.headers["content-type"], "application/json");

    // A genuine account the allowlist does not admit: 403, and no session.
    let refused = browser
        .sign_in(&google, "/books", "mallory@gmail.com")
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Access denied"), "{}", refused.body);
    assert_eq!(refused.reason(), Some("not_allowed"));
    assert!(browser.session().is_none());
    assert_eq!(app.store.count(), 0);
    // An allowed account by email.
    let carol = browser
        .sign_in(&google, "/books", "carol@other.example")
        .await;
    assert_eq!(carol.status, StatusCode::FOUND);
    let page = browser.page("/books").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.starts_with("books of Carol Danvers"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn several_tabs_sign_in_at_once() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    let one = browser.login("/one").await;
    let two = browser.login("/two").await;
    assert_eq!(app.signin.pending_attempts(), 2);
    // Both tabs reach Google's chooser and the user clicks in each.
    let back_one = google.consent(&one, "alice@example.com");
    let back_two = google.consent(&two, "alice@example.com");
    // The second tab's callback arrives first, then the first's: both complete, each back where it started.
    let answer_two = browser.page(back_two.as_str()).await;
    assert_eq!(answer_two.status, StatusCode::FOUND, "{}", answer_two.body);
    assert_eq!(answer_two.location(), "/two");
    let answer_one = browser.page(back_one.as_str()).await;
    assert_eq!(answer_one.status, StatusCode::FOUND, "{}", answer_one.body);
    assert_eq!(answer_one.location(), "/one");
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    assert_eq!(app.signin.pending_attempts(), 0);
    // One browser, one session: the second completion replaced the first (a new ID again), it did not add one.
    assert_eq!(app.store.count(), 1);

    // Two browsers at once, different people, interleaved: each gets their own session.
    let mut other = app.browser();
    let a = other.login("/").await;
    let mut third = app.browser();
    let b = third.login("/").await;
    let back_b = google.consent(&b, "bob@example.com");
    let back_a = google.consent(&a, "carol@other.example");
    assert_eq!(third.page(back_b.as_str()).await.status, StatusCode::FOUND);
    assert_eq!(other.page(back_a.as_str()).await.status, StatusCode::FOUND);
    assert_eq!(third.page("/").await.body, "hello bob@example.com");
    assert_eq!(other.page("/").await.body, "hello carol@other.example");
    assert_eq!(app.store.count(), 3);

    // A browser that keeps starting attempts keeps at most five cookies.
    let mut looping = app.browser();
    for _ in 0..12 {
        looping.page("/auth/login").await;
    }
    assert!(looping.cookies.len() <= 5, "{:?}", looping.cookies.keys());
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_and_tampered_cookies_are_signed_out() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    // An attacker-planted session ID (fixation) and garbage are both ignored.
    for planted in [
        "AAAAAAAAAAAAAAAAAAAAAA",
        "not-a-session-id",
        &"x".repeat(5000),
    ] {
        browser.set_session(planted);
        assert_eq!(browser.page("/books").await.status, StatusCode::FOUND);
    }
    browser.set_session("AAAAAAAAAAAAAAAAAAAAAA");
    let back = browser
        .sign_in(&google, "/books", "alice@example.com")
        .await;
    assert_eq!(back.status, StatusCode::FOUND);
    let id = browser.session().cloned().unwrap();
    assert_ne!(id, "AAAAAAAAAAAAAAAAAAAAAA");
    // Signing in again (another account) gives yet another ID, and the old one is gone from the store.
    browser.sign_in(&google, "/", "bob@example.com").await;
    assert_ne!(browser.session().unwrap(), &id);
    assert!(app.store.session(&id).await.is_none());
    assert_eq!(app.store.count(), 1);
    assert_eq!(browser.page("/").await.body, "hello bob@example.com");
    // One character changed: signed out.
    let mut tampered = browser.clone();
    let mut value = tampered.session().cloned().unwrap();
    value.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
    tampered.set_session(&value);
    assert_eq!(tampered.page("/books").await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_lifetime() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = App::serve_on_clock(&google, &clock, |b| {
        b.session_lifetime(Duration::from_secs(1800))
    })
    .await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", "alice@example.com").await;
    // Active every 5 minutes: the idle deadline slides...
    for _ in 0..5 {
        clock.advance(Duration::from_secs(300));
        assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    }
    // ...until the absolute lifetime (30 min) ends it however active, and the store forgets it.
    clock.advance(Duration::from_secs(300));
    assert_eq!(browser.page("/books").await.status, StatusCode::FOUND);
    assert_eq!(app.store.count(), 0);

    browser.sign_in(&google, "/", "alice@example.com").await;
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        browser.page("/books").await.status,
        StatusCode::FOUND,
        "idle"
    );
    assert_eq!(app.store.count(), 0);
}

/// The process answers a signed-in request from its copy of the session's user, and the sliding-expiry write
/// (due once a minute here) costs one store read, not one per request after it.
#[tokio::test]
async fn a_signed_in_request_reads_the_store_once_per_refresh() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app =
        App::serve_on_clock(&google, &clock, |b| b.local_cache(Duration::from_secs(60))).await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", "alice@example.com").await;
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    let loads = app.store.loads();
    for _ in 0..3 {
        assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    }
    assert_eq!(app.store.loads(), loads, "answered from the copy");

    // Past the refresh interval: read and written once, then answered from the copy of what was written.
    clock.advance(Duration::from_secs(90));
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    assert_eq!(app.store.loads(), loads + 1);
    for _ in 0..3 {
        assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    }
    assert_eq!(app.store.loads(), loads + 1, "the refreshed copy is kept");
}

/// Alice signs in and her idle deadline falls due; another tab's request of her session is held in its store save
/// number `pass + 1` (0: the request's idle-deadline write, 1: the session layer's save after the handler) while
/// she logs out. The store here saves by overwriting (tower-sessions' `MemoryStore`), so the held save writes the
/// ended session back (and with `then_fail` reports a failure all the same, as a store that timed out after
/// writing). Whatever that request answers (returned), the session must stay ended.
async fn logout_while_a_save_is_held(pass: usize, then_fail: bool) -> StatusCode {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = App::serve_on_clock(&google, &clock, |b| b).await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", "alice@example.com").await;
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    let cookie = browser.session().cloned().expect("a session cookie");

    clock.advance(Duration::from_secs(90));
    let held = app.store.hold_save(pass, then_fail);
    let saves = app.store.saves();
    let mut other_tab = browser.clone();
    let in_flight = tokio::spawn(async move { other_tab.page("/books").await });
    app.store.until_saves(saves + pass + 1).await;
    let origin = app.origin.clone();
    assert_eq!(
        browser.logout(Some(&origin)).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(app.store.session(&cookie).await.is_none(), "logged out");
    held.add_permits(1);

    let answer = in_flight.await.expect("the request");
    assert!(
        app.store.session(&cookie).await.is_none(),
        "the held save brought the session back"
    );
    let mut replay = app.browser();
    replay.set_session(&cookie);
    assert_eq!(replay.page("/books").await.status, StatusCode::FOUND);
    answer.status
}

/// The logout lands during the request's idle-deadline write: the request deletes the session again and answers
/// signed out.
#[tokio::test]
async fn a_logout_during_an_idle_deadline_write_ends_the_session() {
    assert_eq!(
        logout_while_a_save_is_held(0, false).await,
        StatusCode::FOUND
    );
}

/// The same, with a store that wrote the save but reported it failed: the request says the store is unavailable,
/// and the session written back is deleted again all the same.
#[tokio::test]
async fn a_logout_during_a_save_that_fails_after_writing_ends_the_session() {
    assert_eq!(
        logout_while_a_save_is_held(0, true).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// The logout lands while the session layer saves the session at the end of the request: the request was handled
/// before the logout (signed in), and the sign-in's store wrapper deletes the session the save wrote back.
#[tokio::test]
async fn a_logout_during_the_session_layers_final_save_is_not_undone() {
    assert_eq!(logout_while_a_save_is_held(1, false).await, StatusCode::OK);
}

#[tokio::test]
async fn userinfo_only_when_asked_and_the_login_hint_goes_to_google() {
    let google = Google::start().await;
    let plain = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = plain.browser();
    browser.sign_in(&google, "/", "alice@example.com").await;
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);
    assert_eq!(google.emu.hits(Route::UserInfo), 0, "the ID token sufficed");

    let asking = App::serve(&google, Public::Loopback, |b| b.fetch_userinfo(true)).await;
    let mut browser = asking.browser();
    let login = browser
        .page("/auth/login?login_hint=alice%40example.com")
        .await;
    assert_eq!(
        common::param(login.location(), "login_hint").as_deref(),
        Some("alice@example.com")
    );
    let back = browser
        .page(
            google
                .consent(login.location(), "alice@example.com")
                .as_str(),
        )
        .await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert_eq!(google.emu.hits(Route::UserInfo), 1);
    let page = browser.page("/books").await;
    assert!(
        page.body.starts_with("books of Alice Liddell"),
        "{}",
        page.body
    );
}

#[test]
fn building_refuses_what_cannot_be_safe() {
    const CLIENT_ID: &str = "123-abc.apps.googleusercontent.com";
    let build = |redirect: &str, allow: idgate_core::Allowlist, scopes: &[&str]| {
        SignIn::builder(
            CLIENT_ID,
            ClientSecret::new("GOCSPX-test-secret"),
            redirect.parse().unwrap(),
        )
        .allowlist(allow)
        .scopes(scopes.iter().copied())
        .build()
    };
    let openid = &["openid", "email"];
    assert!(build("https://a.example/cb", common::allowlist(), openid).is_ok());
    for (redirect, allowlist, scopes) in [
        (
            "https://a.example/cb",
            idgate_core::Allowlist::new(),
            &openid[..],
        ),
        ("https://a.example/cb", common::allowlist(), &["email"][..]),
        ("http://a.example/cb", common::allowlist(), &openid[..]),
        (
            "https://a.example/auth/login",
            common::allowlist(),
            &openid[..],
        ),
    ] {
        let err = build(redirect, allowlist, scopes).unwrap_err();
        assert_eq!(err.reason(), "invalid_config", "{redirect}");
    }
}

#[test]
fn from_config_reads_the_secret_where_the_table_says_and_never_prints_it() {
    const CLIENT_ID: &str = "123-abc.apps.googleusercontent.com";
    const SECRET: &str = "GOCSPX-test-secret";
    let dir = std::env::temp_dir().join(format!("idgate-signin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let config = idgate_core::Config::from_toml_str(&format!(
        "[signin]\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = '{}'\n\
         redirect_url = \"https://app.example.com/auth/callback\"\n\
         login_path = \"/in\"\nlogout_path = \"/out\"\n[signin.allow]\ndomains = [\"example.com\"]\n\
         [google]\nbase_url = \"http://127.0.0.1:9\"\n",
        file.display()
    ))
    .unwrap();
    let signin = SignIn::from_config(&config).unwrap();
    assert_eq!(
        (
            signin.login_path(),
            signin.logout_path(),
            signin.callback_path()
        ),
        ("/in", "/out", "/auth/callback")
    );
    let debug = format!(
        "{signin:?} {:?}",
        SignIn::builder_from_config(&config).unwrap()
    );
    assert!(!debug.contains(SECRET), "{debug}");

    std::fs::remove_file(&file).unwrap();
    let err = SignIn::from_config(&config).unwrap_err();
    assert_eq!(err.reason(), "client_secret_unavailable");
    let chain = idgate_core::ErrorChain(&err).to_string();
    assert!(
        chain.contains("cannot be read") && !chain.contains(SECRET),
        "{chain}"
    );
    let no_table =
        idgate_core::Config::from_toml_str("[iap]\naudience = \"/projects/1/apps/p\"\n").unwrap();
    assert_eq!(
        SignIn::from_config(&no_table).unwrap_err().reason(),
        "not_configured"
    );
}
