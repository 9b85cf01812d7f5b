//! Sign in with Google as a person does it, in headless Chromium: a protected page sends the browser to Google
//! (the emulator's account chooser), a click on a user comes back signed in, the page greets them by name with
//! their picture, a reload keeps them signed in, logging out ends it, and a user not on the allowlist gets the 403
//! page. Screenshots: `target/browser-artifacts/sign_in/`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use idgate_core::Allowlist;
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_emulator::{Emulator, UserSpec};
use idgate_signin::{ClientSecret, SignIn, SignedInUser};

use crate::driver::Browser;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The protected page: the user's name and picture, and a logout button (a POST form, as logout must be).
async fn reports(user: SignedInUser) -> Html<String> {
    Html(format!(
        r#"<!doctype html><title>reports</title>
<main id=reports><img id=picture alt="" src="{picture}" width=48 height=48>
<p id=greeting>Hello {name}</p>
<form method=post action=/auth/logout><button id=logout>Logout</button></form></main>"#,
        picture = escape(user.picture().unwrap_or_default()),
        name = escape(user.name().unwrap_or(user.email())),
    ))
}

async fn home(user: Option<SignedInUser>) -> Html<String> {
    Html(match user {
        Some(user) => format!("<p id=home>signed in as {}</p>", escape(user.email())),
        None => {
            "<p id=home>signed out</p><a id=login href=/auth/login?return_to=/reports>Login</a>"
                .to_owned()
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_google_reloads_logs_out_and_an_outsider_is_refused() {
    let Some(browser) = Browser::start("sign_in").await else {
        return;
    };
    let google = Emulator::start().await.unwrap();
    google.add_user(
        UserSpec::new("alice@example.com")
            .name("Alice Liddell")
            .hosted_domain("example.com"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{origin}/auth/callback");
    let client = google.create_oauth_client(&[&callback]);
    let signin = SignIn::builder(
        client.client_id(),
        ClientSecret::new(client.client_secret()),
        callback.parse().unwrap(),
    )
    .endpoints(&Endpoints::under(&google.base_url()))
    .keys_url_as(google.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(
        Allowlist::builder()
            .user_domain("example.com")
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let app = Router::new()
        .route("/", get(home))
        .merge(
            Router::new()
                .route("/reports", get(reports))
                .layer(signin.require()),
        )
        .merge(signin.router())
        .layer(signin.layer());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // A protected page, signed out: off to Google's account chooser.
    browser
        .client
        .goto(&format!("{origin}/reports"))
        .await
        .unwrap();
    browser.screenshot("account-chooser").await;
    let at = browser.url().await;
    assert_eq!(at.path(), "/o/oauth2/v2/auth", "{at}");
    browser
        .click(r#"button[data-email="alice@example.com"]"#)
        .await;

    // Back on the page asked for, signed in: greeted by name, with the picture (an image that loaded).
    browser.screenshot("signed-in").await;
    assert_eq!(browser.url().await.as_str(), format!("{origin}/reports"));
    let page = browser.text().await;
    assert!(page.contains("Hello Alice Liddell"), "{page}");
    let picture = browser
        .client
        .find(fantoccini::Locator::Css("img#picture"))
        .await
        .unwrap();
    let src = picture.attr("src").await.unwrap().unwrap_or_default();
    assert!(src.starts_with(google.base_url().as_str()), "{src}");
    let loaded = browser
        .client
        .execute(
            "return document.getElementById('picture').naturalWidth > 0",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, serde_json::json!(true), "the picture did not load");

    // The session cookie is HttpOnly: the page's scripts cannot read it.
    let cookies = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, serde_json::json!(""), "{cookies}");

    // A reload: still signed in, no trip to Google.
    browser.client.refresh().await.unwrap();
    browser.screenshot("reloaded").await;
    assert!(browser.text().await.contains("Hello Alice Liddell"));
    assert_eq!(browser.url().await.path(), "/reports");

    // Logout (a POST from the page itself): signed out; the protected page sends the browser to sign in again.
    browser.click("button#logout").await;
    browser.screenshot("logged-out").await;
    assert_eq!(browser.url().await.path(), "/");
    assert!(browser.text().await.contains("signed out"));
    browser
        .client
        .goto(&format!("{origin}/reports"))
        .await
        .unwrap();
    browser.screenshot("sent-to-sign-in-again").await;
    assert_eq!(browser.url().await.path(), "/o/oauth2/v2/auth");

    // Mallory (gmail.com) is a real Google account, but not on the allowlist: the 403 page, no greeting.
    browser
        .click(r#"button[data-email="mallory@gmail.com"]"#)
        .await;
    browser.screenshot("outsider-refused").await;
    let page = browser.text().await;
    assert!(!page.contains("Hello"), "{page}");
    let status = browser
        .client
        .execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403), "{page}");
    browser.close().await;
}
