//! The emulator's account chooser (Google's `o/oauth2/v2/auth`) in a real browser: a click on a user comes back to
//! the redirect URI with a code that the token endpoint exchanges; "Deny" comes back with `access_denied`.

use axum::Router;
use axum::extract::RawQuery;
use axum::response::Html;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_emulator::Emulator;

use crate::driver::Browser;

/// A redirect URI that shows what it received.
async fn callback_page() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/callback", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/callback",
        get(|RawQuery(query): RawQuery| async move {
            Html(format!(
                "<!doctype html><title>back</title><p id=query>{}</p>",
                query.unwrap_or_default()
            ))
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (callback, task)
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(b"a fixed verifier for a browser test, 32+ bytes long");
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_a_user_in_the_account_chooser_returns_a_code_the_token_endpoint_exchanges() {
    let Some(browser) = Browser::start("account_chooser").await else {
        return;
    };
    let google = Emulator::start().await.unwrap();
    let (callback, _server) = callback_page().await;
    let client = google.create_oauth_client(&[&callback]);
    let (verifier, challenge) = pkce();
    let mut authorize = google.authorization_url();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client.client_id())
        .append_pair("redirect_uri", &callback)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", "tab-1-state")
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", "bob@example.com");

    browser.client.goto(authorize.as_str()).await.unwrap();
    browser.screenshot("account-chooser").await;
    let chooser = browser.text().await;
    for user in ["alice@example.com", "bob@example.com", "mallory@gmail.com"] {
        assert!(
            chooser.contains(user),
            "{user} missing from the chooser:\n{chooser}"
        );
    }
    browser
        .click(r#"button[data-email="alice@example.com"]"#)
        .await;
    browser.screenshot("back-at-the-redirect-uri").await;

    let back = browser.url().await;
    assert_eq!(back.path(), "/callback");
    let query: std::collections::HashMap<String, String> =
        back.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("tab-1-state"));
    assert_eq!(
        query.get("iss").map(String::as_str),
        Some("https://accounts.google.com")
    );
    let code = query.get("code").expect("a code").clone();

    let answer: serde_json::Value = reqwest::Client::new()
        .post(google.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = answer["id_token"].as_str().expect("an ID token");
    let claims = idgate_core::token::decode_unverified(id_token)
        .unwrap()
        .claims;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["aud"], client.client_id());

    // The same page, "Deny": back with access_denied and no code.
    browser.client.goto(authorize.as_str()).await.unwrap();
    browser.click("button#deny").await;
    browser.screenshot("denied").await;
    let back = browser.url().await;
    let query: std::collections::HashMap<String, String> =
        back.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert!(!query.contains_key("code"));
    browser.close().await;
}

/// Whatever the page echoes is escaped: a `login_hint` or `state` carrying markup does not run in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_chooser_does_not_run_markup_from_the_request() {
    let Some(browser) = Browser::start("account_chooser_escaping").await else {
        return;
    };
    let google = Emulator::start().await.unwrap();
    let (callback, _server) = callback_page().await;
    let client = google.create_oauth_client(&[&callback]);
    let (_, challenge) = pkce();
    let payload =
        r#"x"><img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"#;
    let mut authorize = google.authorization_url();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client.client_id())
        .append_pair("redirect_uri", &callback)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("state", payload)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("login_hint", payload);
    browser.client.goto(authorize.as_str()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    browser.screenshot("hostile-hint").await;
    let title = browser.client.title().await.unwrap();
    assert_ne!(title, "pwned");
    browser.close().await;
}
