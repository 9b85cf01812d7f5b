//! The real `idgate proxy` binary as a sign-in gateway next to service tokens (`[admission] mode =
//! "by_credential"`), against the emulator, with an upstream that echoes the identity headers and cookies it got; and
//! its refusal to start when `[signin]` would be stacked with `[inbound]`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use http::HeaderMap;
use idgate_emulator::{Emulator, TokenSpec};

use common::{ALLOWED, Scrape, free_port};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An upstream that echoes who called and the cookies it got.
async fn echo_upstream() -> SocketAddr {
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        format!(
            "kind={} email={} credential={} cookie={}",
            get("x-idgate-caller-kind"),
            get("x-idgate-caller-email"),
            get("x-idgate-caller-credential"),
            get("cookie")
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn signin_table(client_id: &str, secret: &Path, listen: SocketAddr) -> String {
    format!(
        "[signin]\nclient_id = \"{client_id}\"\nclient_secret_file = '{}'\n\
         redirect_url = \"http://{listen}/auth/callback\"\n[signin.allow]\ndomains = [\"example.com\"]\n",
        secret.display()
    )
}

fn spawn(
    config: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    stderr: &Path,
    admin: &[&str],
) -> Running {
    Running(
        Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
            .args(["proxy", "--config"])
            .arg(config)
            .args([
                "--listen",
                &listen.to_string(),
                "--upstream",
                &format!("http://{upstream}"),
            ])
            .args(admin)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// A client that follows no redirect and keeps its cookies by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    async fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        let mut request = self.http.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty()
                || set
                    .to_str()
                    .unwrap()
                    .to_ascii_lowercase()
                    .contains("max-age=0")
            {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap_or_default())
    }
}

const PAGE: [(&str, &str); 2] = [("sec-fetch-mode", "navigate"), ("accept", "text/html")];

#[tokio::test]
async fn idgate_proxy_signs_people_in_and_admits_services_by_their_token() {
    let emulator = Emulator::start().await.unwrap();
    let upstream = echo_upstream().await;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let client = emulator.create_oauth_client(&[&format!("http://{listen}/auth/callback")]);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, client.client_secret()).unwrap();
    let audience = format!("http://{listen}");
    let config = common::write_proxy_config(
        dir.path(),
        &audience,
        emulator.base_url().as_str(),
        &format!(
            "[admission]\nmode = \"by_credential\"\n{}",
            signin_table(client.client_id(), &secret, listen)
        ),
    );
    let stderr = dir.path().join("stderr.log");
    let admin = format!("127.0.0.1:{}", free_port());
    let mut proxy = spawn(
        &config,
        listen,
        upstream,
        &stderr,
        &["--admin-listen", &admin],
    );
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();

    let mut browser = Browser {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap(),
        base: audience.clone(),
        cookies: BTreeMap::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = browser.http.get(format!("{audience}/healthz")).send().await {
            assert_eq!(response.status(), 200, "{}", log());
            break;
        }
        assert!(
            proxy.0.try_wait().unwrap().is_none(),
            "idgate proxy exited:\n{}",
            log()
        );
        assert!(
            Instant::now() < deadline,
            "idgate proxy did not come up:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Signed out: a page goes to login, a script gets 401.
    let (status, location, _) = browser.get("/books", &PAGE).await;
    assert_eq!(
        (status, location.as_str()),
        (302, "/auth/login?return_to=%2Fbooks")
    );
    let (status, _, _) = browser
        .get("/books", &[("accept", "application/json")])
        .await;
    assert_eq!(status, 401);

    // Sign in as Alice through the proxy's own routes.
    let (status, authorization, _) = browser.get(&location, &PAGE).await;
    assert_eq!(status, 302, "{}", log());
    let callback = emulator
        .consent(&authorization.parse().unwrap(), "alice@example.com")
        .unwrap();
    let (status, back, body) = browser.get(callback.as_str(), &PAGE).await;
    assert_eq!((status, back.as_str()), (302, "/books"), "{body}");
    assert!(browser.cookies.contains_key("idgate_session"));

    // The upstream sees Alice, admitted by her session, and not the session cookie.
    browser.cookies.insert("theme".into(), "dark".into());
    let (status, _, body) = browser
        .get("/books", &[("x-idgate-caller-email", "root@example.com")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "kind=user email=alice@example.com credential=session cookie=theme=dark"
    );

    // A service by its token, judged by [inbound]'s allowlist; a bad token next to Alice's session is refused.
    let token = emulator.mint(&TokenSpec::service_account(ALLOWED).audience(&audience));
    let (status, _, body) = browser
        .get("/jobs", &[("authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with(&format!(
            "kind=service_account email={ALLOWED} credential=id_token"
        )),
        "{body}"
    );
    let (status, _, _) = browser
        .get("/books", &[("authorization", "Bearer forged")])
        .await;
    assert_eq!(status, 401);
    assert!(proxy.0.try_wait().unwrap().is_none(), "{}", log());

    // The admin port: one sign-in, no failure; the sessions were stored and read; [signin]'s keys (fetched at
    // startup, like [inbound]'s) are part of readiness.
    let scrape = Scrape::parse(
        reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        scrape.value("idgate_signin_sign_ins_total", &[]),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.sum("idgate_signin_callback_failures_total"),
        0.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.sum("idgate_signin_store_errors_total"),
        0.0,
        "{}",
        scrape.text
    );
    assert!(
        scrape.value("idgate_signin_store_seconds_count", &[("op", "load")]) >= 1.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.value(
            "idgate_key_fetches_total",
            &[("keys", "oidc"), ("result", "ok")]
        ),
        2.0,
        "one fetch for [inbound]'s cache, one for [signin]'s:\n{}",
        scrape.text
    );
    assert!(
        !scrape.text.contains("alice@example.com"),
        "{}",
        scrape.text
    );
    let ready: serde_json::Value = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["keys"], "ok", "{ready}");
}

#[tokio::test]
async fn idgate_proxy_refuses_signin_stacked_with_inbound_naming_the_line() {
    let emulator = Emulator::start().await.unwrap();
    let upstream = echo_upstream().await;
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "GOCSPX-test").unwrap();
    let config = common::write_proxy_config(
        dir.path(),
        &format!("http://{listen}"),
        emulator.base_url().as_str(),
        &signin_table("123-abc.apps.googleusercontent.com", &secret, listen),
    );
    let stderr = dir.path().join("stderr.log");
    let mut proxy = spawn(&config, listen, upstream, &stderr, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "idgate proxy started with a stacked [signin]"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1));
    let log = std::fs::read_to_string(&stderr).unwrap();
    // [inbound] (5 lines) and [google] (2 lines) come first: [signin] is on line 8.
    assert!(log.contains("idgate.toml: line 8: [signin]"), "{log}");
    assert!(log.contains("mode = \"by_credential\""), "{log}");
}
