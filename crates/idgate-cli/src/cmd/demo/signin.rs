//! The demo's people who sign in: `shelf`, an app protected by Sign in with Google (`idgate_signin`, configured by
//! the `[signin]` table of the demo's idgate.toml), and a scripted browser that signs people in. Google's account
//! chooser is the emulator's; the click on a user is `Emulator::consent`.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Router;
use axum::routing::get;
use idgate_core::config::Config;
use idgate_emulator::Emulator;
use idgate_signin::{SignIn, SignedInUser};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use tokio::net::TcpListener;

use super::{Row, table, truncate};
use crate::cmd::Error;

/// `shelf` before the config is written: its listener (so its callback URL is known) and the `[signin]` table for
/// the OAuth client the emulator registered for that callback.
pub(super) struct Prepared {
    listener: TcpListener,
    origin: String,
    pub(super) toml: String,
}

impl Prepared {
    /// `http://127.0.0.1:PORT`.
    pub(super) fn origin(&self) -> &str {
        &self.origin
    }
}

/// Binds `shelf`'s listener, registers an OAuth client for its callback with the emulator (as a developer does in
/// the Cloud Console), writes the client secret to `secret_dir` and returns the `[signin]` table naming it.
pub(super) async fn prepare(emulator: &Emulator, secret_dir: &Path) -> Result<Prepared, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let callback = format!("{origin}/auth/callback");
    let client = emulator.try_create_oauth_client(&[callback.as_str()])?;
    let secret_file = client.write_secret_file(secret_dir)?;
    let toml = format!(
        r#"# shelf: people sign in with their Google account (the secret is read from the file, never written here).
[signin]
client_id = "{}"
client_secret_file = {:?}
redirect_url = "{callback}"

[signin.allow]
domains = ["example.com"]                    # Workspace accounts of example.com
"#,
        client.client_id(),
        secret_file.display().to_string(),
    );
    Ok(Prepared {
        listener,
        origin,
        toml,
    })
}

/// Serves `shelf` with the config's `[signin]` and signs people in: an allowed user, one the allowlist refuses, a
/// script that is not signed in, and a forged session cookie.
pub(super) async fn sign_in(
    shelf: Prepared,
    config: &Config,
    emulator: &Emulator,
    verbose: bool,
) -> Result<Vec<Row>, Error> {
    let signin = SignIn::from_config(config)?;
    let app = Router::new()
        .route(
            "/",
            get(|user: SignedInUser| async move {
                format!(
                    "Hello {} <{}>",
                    user.name().unwrap_or(user.email()),
                    user.email()
                )
            }),
        )
        .layer(signin.require())
        .merge(signin.router())
        .layer(signin.layer());
    let Prepared {
        listener, origin, ..
    } = shelf;
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!();
    println!(
        "People sign in to shelf ({origin}) with Google: the emulator's account chooser plays Google's,"
    );
    println!(
        "  a scripted browser clicks a user, SignIn checks the code, the ID token and the allowlist, then the session"
    );
    println!();

    let mut rows = Vec::new();
    let mut row = |caller: &str, sends: &'static str, expect: u16, page: &Page| {
        if verbose {
            println!("  {caller} / {sends}: HTTP {} {:?}", page.status, page.body);
        }
        rows.push(Row {
            case_caller: caller.to_owned(),
            sends,
            expect,
            got: page.status.as_u16(),
            why: page.why(),
        });
    };

    let mut alice = Browser::new(&origin)?;
    let page = match sign_in_as(&mut alice, emulator, "alice@example.com").await? {
        back if back.status == StatusCode::FOUND => alice.open("/").await?,
        refused => refused,
    };
    row(
        "alice@example.com",
        "browser: Sign in with Google, then GET /",
        200,
        &page,
    );

    let mut mallory = Browser::new(&origin)?;
    let page = sign_in_as(&mut mallory, emulator, "mallory@gmail.com").await?;
    row(
        "mallory@gmail.com",
        "browser: Sign in with Google (not allowed)",
        403,
        &page,
    );

    let script = Browser::new(&origin)?;
    let page = script
        .send(
            script
                .http
                .get(format!("{origin}/"))
                .header(header::ACCEPT, "application/json"),
        )
        .await?;
    row("anyone", "script, signed out: GET / (JSON)", 401, &page);

    // alice's session cookie with one character changed: not a session, so sign in first.
    let mut forger = Browser::new(&origin)?;
    let name = signin.session_cookie_name();
    let forged = tamper(
        alice
            .cookies
            .get(name)
            .ok_or("alice's browser holds no session cookie")?,
    );
    forger.cookies.insert(name.to_owned(), forged);
    let page = forger.open("/").await?;
    row("forger", "alice's session cookie, tampered", 302, &page);

    print!("{}", table(&rows));
    Ok(rows)
}

/// `id` with its first character changed.
fn tamper(id: &str) -> String {
    let mut chars = id.chars();
    let first = match chars.next() {
        Some('A') => 'B',
        _ => 'A',
    };
    std::iter::once(first).chain(chars).collect()
}

/// Opens `/` signed out, follows the app to Google, clicks `email` on the account chooser, and returns what the
/// app's callback answers (`302` back to `/` when signed in).
async fn sign_in_as(
    browser: &mut Browser,
    emulator: &Emulator,
    email: &str,
) -> Result<Page, Error> {
    let page = browser.open("/").await?;
    let Some(login) = page.redirect() else {
        return Ok(page);
    };
    let page = browser.open(&login).await?;
    let Some(to_google) = page.redirect() else {
        return Ok(page);
    };
    let back = emulator.consent(&url::Url::parse(&to_google)?, email)?;
    browser.open(back.as_str()).await
}

/// An answer as the browser saw it.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    /// Where a redirect sends the browser.
    fn redirect(&self) -> Option<String> {
        self.location
            .clone()
            .filter(|_| self.status.is_redirection())
    }

    /// The row's "why": where a redirect goes, an HTML page's title and first paragraph, else the body.
    fn why(&self) -> String {
        if let Some(location) = self
            .location
            .as_deref()
            .filter(|_| self.status.is_redirection())
        {
            return format!("to {}", truncate(location, 64));
        }
        let between = |open: &str, close: &str| {
            self.body
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map(|(inner, _)| inner.to_owned())
        };
        match (between("<title>", "</title>"), between("<p>", "</p>")) {
            (Some(title), Some(text)) => truncate(&format!("{title}: {text}"), 64),
            _ => truncate(&self.body, 64),
        }
    }
}

/// A browser as far as sign-in needs one: keeps the app's cookies (forgetting those `Set-Cookie` expires),
/// follows no redirect by itself, and sends the navigation headers on a page load.
struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(origin: &str) -> Result<Self, Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            origin: origin.to_owned(),
            cookies: BTreeMap::new(),
        })
    }

    /// A page load (`GET`, `Sec-Fetch-Mode: navigate`) of a path of the app or a URL.
    async fn open(&mut self, path_or_url: &str) -> Result<Page, Error> {
        let url = if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.origin)
        } else {
            path_or_url.to_owned()
        };
        let request = self
            .http
            .get(url)
            .header(header::ACCEPT, "text/html")
            .header("sec-fetch-mode", "navigate");
        let (page, set_cookies) = self.send_keeping(request).await?;
        for set in set_cookies {
            self.remember(&set);
        }
        Ok(page)
    }

    /// Sends `request` with this browser's cookies; what it sets is not kept.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Page, Error> {
        Ok(self.send_keeping(request).await?.0)
    }

    async fn send_keeping(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Page, Vec<String>), Error> {
        let mut request = request.build()?;
        if request.url().as_str().starts_with(&self.origin) && !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request
                .headers_mut()
                .insert(header::COOKIE, HeaderValue::from_str(&cookie.join("; "))?);
        }
        let response = self.http.execute(request).await?;
        let set_cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        Ok((
            Page {
                status,
                location,
                body,
            },
            set_cookies,
        ))
    }

    /// `Set-Cookie: name=value; attributes`: kept, or forgotten when it expires at once (`Max-Age=0`).
    fn remember(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let expired = parts.any(|attr| {
            attr.trim().split_once('=').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("max-age") && v.trim().starts_with(['0', '-'])
            })
        });
        if expired {
            self.cookies.remove(name.trim());
        } else {
            self.cookies
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
}
