//! Sign-in across replicas, as deployed: two instances of the app share a real Redis behind a load balancer, and a
//! real browser is sent to whichever instance the balancer picks. The login starts on one replica and Google sends
//! the browser back to the other; the session is then served by both; a logout on one signs out on the other; and
//! "sign out everywhere" ends a session the browser still holds a cookie for. Screenshots:
//! `target/browser-artifacts/replicas/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{Html, Response};
use axum::routing::get;
use idgate_core::Allowlist;
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_emulator::{Emulator, OAuthClient, UserSpec};
use idgate_signin::{ClientSecret, RedisStore, SignIn, SignedInUser};

use crate::driver::Browser;
#[path = "../../crates/idgate-signin/tests/common/redis_server.rs"]
mod redis_server;

/// A round-robin load balancer the test steers: every request goes to the replica `current` names.
struct Balancer {
    replicas: Vec<SocketAddr>,
    current: AtomicUsize,
    http: reqwest::Client,
}

impl Balancer {
    fn send_to(&self, replica: usize) {
        self.current.store(replica, Ordering::SeqCst);
    }
}

async fn balance(State(lb): State<Arc<Balancer>>, req: Request) -> Response {
    let target = lb.replicas[lb.current.load(Ordering::SeqCst)];
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forwarded = lb
        .http
        .request(parts.method, format!("http://{target}{path}"))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) && name != http::header::HOST {
            forwarded = forwarded.header(name, value);
        }
    }
    let answer = forwarded.send().await.expect("the replica answers");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !is_hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap_or_default()))
        .unwrap()
}

fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One replica: its name on every page, so the test (and the screenshots) show who answered.
async fn serve_replica(
    name: &'static str,
    google: &Emulator,
    client: &OAuthClient,
    origin: &str,
    redis_url: &str,
) -> SocketAddr {
    let signin = SignIn::builder(
        client.client_id(),
        ClientSecret::new(client.client_secret()),
        format!("{origin}/auth/callback").parse().unwrap(),
    )
    .endpoints(&Endpoints::under(&google.base_url()))
    .keys_url_as(google.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(
        Allowlist::builder()
            .user_domain("example.com")
            .build()
            .unwrap(),
    )
    .redis_store(RedisStore::open(redis_url).unwrap())
    // Strict: every request reads Redis, so a logout elsewhere is seen at once (the default copy is 5 s).
    .local_cache(Duration::ZERO)
    .build()
    .unwrap();
    let reports = move |user: SignedInUser| async move {
        Html(format!(
            r#"<!doctype html><title>reports</title>
<main id=reports><p id=greeting>Hello {user}</p><p id=replica>served by replica {name}</p>
<form method=post action=/auth/logout><button id=logout>Logout</button></form>
<form method=post action="/auth/logout?everywhere=1"><button id=everywhere>Sign out everywhere</button></form></main>"#,
            user = escape(user.name().unwrap_or(user.email())),
        ))
    };
    let home = move |user: Option<SignedInUser>| async move {
        Html(match user {
            Some(user) => format!(
                "<p id=home>signed in as {} (replica {name})</p>",
                escape(user.email())
            ),
            None => format!("<p id=home>signed out (replica {name})</p>"),
        })
    };
    let app = Router::new()
        .route("/", get(home))
        .merge(
            Router::new()
                .route("/reports", get(reports))
                .layer(signin.require()),
        )
        .merge(signin.router())
        .layer(signin.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_a_balancer_share_sign_in_logout_and_sign_out_everywhere() {
    let Some(redis) = redis_server::RedisServer::start(&[]) else {
        return;
    };
    let Some(browser) = Browser::start("replicas").await else {
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
    let client = google.create_oauth_client(&[&format!("{origin}/auth/callback")]);
    let a = serve_replica("A", &google, &client, &origin, &redis.url()).await;
    let b = serve_replica("B", &google, &client, &origin, &redis.url()).await;
    let lb = Arc::new(Balancer {
        replicas: vec![a, b],
        current: AtomicUsize::new(0),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    });
    let app = Router::new().fallback(balance).with_state(lb.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (replica_a, replica_b) = (0, 1);

    // The login starts on A ...
    lb.send_to(replica_a);
    browser
        .client
        .goto(&format!("{origin}/reports"))
        .await
        .unwrap();
    assert_eq!(browser.url().await.path(), "/o/oauth2/v2/auth");
    browser.screenshot("chooser-from-replica-a").await;
    // ... and Google sends the browser back to B, which finds the attempt in Redis.
    lb.send_to(replica_b);
    browser
        .click(r#"button[data-email="alice@example.com"]"#)
        .await;
    browser.screenshot("signed-in-on-replica-b").await;
    let page = browser.text().await;
    assert_eq!(
        browser.url().await.as_str(),
        format!("{origin}/reports"),
        "{page}"
    );
    assert!(page.contains("Hello Alice Liddell"), "{page}");
    assert!(page.contains("served by replica B"), "{page}");

    // A reload lands on A: still signed in.
    lb.send_to(replica_a);
    browser.client.refresh().await.unwrap();
    browser.screenshot("reloaded-on-replica-a").await;
    let page = browser.text().await;
    assert!(
        page.contains("Hello Alice Liddell") && page.contains("served by replica A"),
        "{page}"
    );

    // Logout on B ...
    lb.send_to(replica_b);
    browser.click("button#logout").await;
    browser.screenshot("logged-out-on-replica-b").await;
    assert!(browser.text().await.contains("signed out (replica B)"));
    // ... and A sends the browser to sign in again.
    lb.send_to(replica_a);
    browser
        .client
        .goto(&format!("{origin}/reports"))
        .await
        .unwrap();
    browser.screenshot("replica-a-asks-to-sign-in").await;
    assert_eq!(browser.url().await.path(), "/o/oauth2/v2/auth");

    // Sign out everywhere: a session on A whose cookie the browser keeps aside (her other device) ...
    browser
        .click(r#"button[data-email="alice@example.com"]"#)
        .await;
    assert!(browser.text().await.contains("served by replica A"));
    let other_device = browser
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "idgate_session")
        .expect("a session cookie")
        .into_owned();
    browser.client.delete_all_cookies().await.unwrap();
    // ... and a second session, through B, from which she signs out everywhere.
    lb.send_to(replica_b);
    browser
        .client
        .goto(&format!("{origin}/reports"))
        .await
        .unwrap();
    browser
        .click(r#"button[data-email="alice@example.com"]"#)
        .await;
    assert!(browser.text().await.contains("served by replica B"));
    browser.click("button#everywhere").await;
    browser
        .screenshot("signed-out-everywhere-on-replica-b")
        .await;
    assert!(browser.text().await.contains("signed out (replica B)"));
    // The other device's session is over on A too.
    lb.send_to(replica_a);
    browser.client.add_cookie(other_device).await.unwrap();
    browser.client.goto(&format!("{origin}/")).await.unwrap();
    browser
        .screenshot("other-device-signed-out-on-replica-a")
        .await;
    assert!(browser.text().await.contains("signed out (replica A)"));
    assert!(redis.keys("idgate:signin:session:*").is_empty());
    browser.close().await;
}
