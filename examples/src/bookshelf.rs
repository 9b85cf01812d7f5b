//! The Bookshelf tutorial's "Authenticating users", in Rust: people sign in with their Google account
//! ([`idgate_signin`]), the home page shows "Login" to a signed-out visitor and the user's picture, name and a
//! "Logout" button to a signed-in one, and "my books" is a page only a signed-in user reaches, listing the books
//! that user added (kept in memory, per user).
//!
//! The whole sign-in is the `[signin]` table of [`config_toml`] plus [`SignIn::from_config`]:
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /` | anyone | "Login", or the user's picture, name and a "Logout" button (a `POST` form) |
//! | `GET /books/mine` | signed-in users | their books and a form to add one; a signed-out browser is sent to sign in and comes back here, a script gets `401` |
//! | `POST /books/mine` | signed-in users | adds a book (`title`, `author`), then back to the list |
//! | `GET /auth/login`, `GET /auth/callback`, `POST /auth/logout` | the browser | [`SignIn::router`]: to Google and back, and out |
//!
//! Everything the user or their Google profile supplies (name, picture URL, titles, authors) is HTML-escaped, and a
//! picture is shown only from an `http(s)` URL. The add-a-book form needs no CSRF token: the session cookie is
//! `SameSite=Lax`, so a cross-site `POST` arrives signed out and gets `401`.
//!
//! The example program is `examples/bookshelf.rs`; [`self_test`] is a scripted browser that signs people in.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use idgate_core::config::Config;
use idgate_emulator::Emulator;
use idgate_signin::{SignIn, SignedInUser, escape_html};
use url::Url;

use crate::Result;
use crate::support::{Server, expect_status, loopback_listener};

/// The environment variable holding the OAuth client ID (`idgate emulator --oauth-client URI` prints it).
pub const CLIENT_ID_VAR: &str = "IDGATE_CLIENT_ID";

/// The environment variable holding the client secret, named by the `[signin]` table's `client_secret_env`.
pub const CLIENT_SECRET_VAR: &str = "IDGATE_CLIENT_SECRET";

/// The longest title or author kept, in characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// The most books one user keeps (the shelf lives in this process's memory).
pub const MAX_BOOKS_PER_USER: usize = 500;

/// Where the `[signin]` table says the client secret is: never in the file itself.
#[derive(Debug, Clone, Copy)]
pub enum SecretFrom<'a> {
    /// `client_secret_env`: an environment variable's name.
    Env(&'a str),
    /// `client_secret_file`: a file holding the secret.
    File(&'a Path),
}

/// The app's configuration: the OAuth client, where its secret is, the callback URL registered for it, and who
/// may sign in. `google_base_url`, when set, puts every Google endpoint (the account chooser too) under the
/// emulator.
pub fn config_toml(
    client_id: &str,
    secret: SecretFrom<'_>,
    redirect_url: &str,
    google_base_url: Option<&Url>,
) -> String {
    let secret = match secret {
        SecretFrom::Env(name) => format!("client_secret_env = {}", toml_string(name)),
        SecretFrom::File(path) => format!(
            "client_secret_file = {}",
            toml_string(&path.display().to_string())
        ),
    };
    let mut toml = format!(
        r#"[signin]
client_id = {client_id}
{secret}
# Registered for the client (Cloud Console: "Authorized redirect URIs"); its path is the callback route.
redirect_url = {redirect_url}
session_lifetime_secs = 28800

[signin.allow]
# Google Workspace accounts of example.com (the emulator's alice and bob); anyone else signs in and gets 403.
domains = ["example.com"]
"#,
        client_id = toml_string(client_id),
        redirect_url = toml_string(redirect_url),
    );
    if let Some(base) = google_base_url {
        let _ = write!(
            toml,
            "\n[google]\nbase_url = {}\n",
            toml_string(base.as_str())
        );
    }
    toml
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The sign-in, from the `[signin]` table of `toml`.
///
/// # Errors
///
/// When the configuration is invalid, or the client secret cannot be read.
pub fn signin(toml: &str) -> Result<SignIn> {
    Ok(SignIn::from_config(&Config::from_toml_str(toml)?)?)
}

/// A book on someone's shelf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    /// The title.
    pub title: String,
    /// The author (may be empty).
    pub author: String,
}

/// The add-a-book form.
#[derive(Debug, serde::Deserialize)]
struct NewBook {
    title: String,
    #[serde(default)]
    author: String,
}

/// Every user's books, keyed by the account's `sub` (an email can change hands; `sub` never does).
#[derive(Clone, Default)]
struct AppState {
    shelves: Arc<Mutex<HashMap<String, Vec<Book>>>>,
    logout_path: Arc<str>,
    login_path: Arc<str>,
}

impl AppState {
    fn books_of(&self, user: &SignedInUser) -> Vec<Book> {
        let shelves = self.shelves.lock().unwrap_or_else(PoisonError::into_inner);
        shelves.get(user.subject()).cloned().unwrap_or_default()
    }
}

/// The app: the home page, "my books" behind [`SignIn::require`], the sign-in routes, all inside
/// [`SignIn::layer`] (sessions).
pub fn app(signin: &SignIn) -> Router {
    let state = AppState {
        shelves: Arc::default(),
        logout_path: signin.logout_path().into(),
        login_path: signin.login_path().into(),
    };
    let mine = Router::new()
        .route("/books/mine", get(my_books).post(add_book))
        .layer(signin.require());
    Router::new()
        .route("/", get(home))
        .merge(mine)
        .merge(signin.router())
        .layer(signin.layer())
        .with_state(state)
}

/// "Login", or who is signed in and "Logout".
async fn home(State(state): State<AppState>, user: Option<SignedInUser>) -> Response {
    let body = match &user {
        Some(user) => format!(
            "<p>Welcome back, {}. <a href=\"/books/mine\">My books</a></p>",
            escape_html(display_name(user))
        ),
        None => "<p>Sign in to keep a list of your books. <a href=\"/books/mine\">My books</a></p>"
            .to_owned(),
    };
    page(&state, user.as_ref(), "Bookshelf", &body, StatusCode::OK)
}

/// The signed-in user's books, and the form to add one. [`SignIn::require`] keeps everyone else out.
async fn my_books(State(state): State<AppState>, user: SignedInUser) -> Response {
    let books = state.books_of(&user);
    let mut body = String::new();
    if books.is_empty() {
        body.push_str("<p id=\"no-books\">No books yet.</p>");
    } else {
        body.push_str("<ul id=\"books\">");
        for book in &books {
            let _ = write!(body, "<li><cite>{}</cite>", escape_html(&book.title));
            if !book.author.is_empty() {
                let _ = write!(body, " by {}", escape_html(&book.author));
            }
            body.push_str("</li>");
        }
        body.push_str("</ul>");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/books/mine\">\
         <label>Title <input name=\"title\" required maxlength=\"{MAX_FIELD_CHARS}\"></label> \
         <label>Author <input name=\"author\" maxlength=\"{MAX_FIELD_CHARS}\"></label> \
         <button type=\"submit\">Add book</button></form><p><a href=\"/\">Home</a></p>"
    );
    page(&state, Some(&user), "My books", &body, StatusCode::OK)
}

/// Adds a book to the signed-in user's shelf, then shows the list again (`303`, so a reload does not add it twice).
async fn add_book(
    State(state): State<AppState>,
    user: SignedInUser,
    Form(book): Form<NewBook>,
) -> Response {
    let (title, author) = (book.title.trim(), book.author.trim());
    let refuse = |why: &str| {
        let body = format!(
            "<p>{}</p><p><a href=\"/books/mine\">My books</a></p>",
            escape_html(why)
        );
        page(
            &state,
            Some(&user),
            "Book not added",
            &body,
            StatusCode::BAD_REQUEST,
        )
    };
    if title.is_empty() {
        return refuse("A book needs a title.");
    }
    if title.chars().count() > MAX_FIELD_CHARS || author.chars().count() > MAX_FIELD_CHARS {
        return refuse(&format!(
            "Titles and authors are at most {MAX_FIELD_CHARS} characters."
        ));
    }
    {
        let mut shelves = state.shelves.lock().unwrap_or_else(PoisonError::into_inner);
        let shelf = shelves.entry(user.subject().to_owned()).or_default();
        if shelf.len() >= MAX_BOOKS_PER_USER {
            drop(shelves);
            return refuse(&format!("Your shelf is full ({MAX_BOOKS_PER_USER} books)."));
        }
        shelf.push(Book {
            title: title.to_owned(),
            author: author.to_owned(),
        });
    }
    Redirect::to("/books/mine").into_response()
}

fn display_name(user: &SignedInUser) -> &str {
    user.name().unwrap_or(user.email())
}

/// A page with the sign-in bar on top: "Login", or the user's picture, name and a "Logout" button.
fn page(
    state: &AppState,
    user: Option<&SignedInUser>,
    title: &str,
    body: &str,
    status: StatusCode,
) -> Response {
    let bar = match user {
        Some(user) => {
            // Only an http(s) URL becomes an image source; anything else is left out.
            let picture = user
                .picture()
                .and_then(|p| Url::parse(p).ok())
                .filter(|p| matches!(p.scheme(), "https" | "http"))
                .map_or_else(String::new, |p| {
                    format!(
                        "<img id=\"picture\" src=\"{}\" alt=\"\" width=\"32\" height=\"32\"> ",
                        escape_html(p.as_str())
                    )
                });
            format!(
                "{picture}<span id=\"user-name\">{}</span> \
                 <form method=\"post\" action=\"{}\" style=\"display:inline\">\
                 <button type=\"submit\" id=\"logout\">Logout</button></form>",
                escape_html(display_name(user)),
                escape_html(&state.logout_path)
            )
        }
        None => format!(
            "<a id=\"login\" href=\"{}\">Login</a>",
            escape_html(&state.login_path)
        ),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><nav>{bar}</nav><h1>{title}</h1>{body}</body></html>\n",
        title = escape_html(title)
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages name the user: never cached. Scripts never run; pictures come from the account's picture URL.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src http: https:; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    (status, headers, html).into_response()
}

/// A response as a browser sees it: status, `Location`, body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    fn location(&self, what: &str) -> Result<&str> {
        self.location
            .as_deref()
            .ok_or_else(|| format!("{what}: no Location in the HTTP {} answer", self.status).into())
    }
}

/// A scripted browser for the self-test: keeps the app's cookies (what `Set-Cookie` sets, forgetting what it
/// expires, clearing them all on `Clear-Site-Data: "cookies"`), follows no redirect by itself, sends `Origin` on
/// a form `POST` and the navigation headers on a page load, as a browser does. Google's side (the account chooser)
/// is [`Emulator::consent`], the click on a user.
struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    fn new(origin: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            origin: origin.to_owned(),
            cookies: std::collections::BTreeMap::new(),
        })
    }

    /// A page load: `GET` with the headers a browser's navigation carries.
    async fn open(&mut self, path_or_url: &str) -> Result<Page> {
        let request = self
            .http
            .get(self.url(path_or_url))
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate");
        self.send(request).await
    }

    /// A form submission from one of the app's pages.
    async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Page> {
        let request = self
            .http
            .post(self.url(path))
            .header(header::ORIGIN, &self.origin)
            .form(form);
        self.send(request).await
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.origin)
        } else {
            path_or_url.to_owned()
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<Page> {
        let mut request = request.build()?;
        // Cookies go to the app only (this browser never visits another site).
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
        let headers = response.headers();
        if headers
            .get("clear-site-data")
            .is_some_and(|v| v.as_bytes().windows(9).any(|w| w == b"\"cookies\""))
        {
            self.cookies.clear();
        }
        for set in headers.get_all(header::SET_COOKIE) {
            self.remember(set.to_str()?);
        }
        Ok(Page {
            status: response.status(),
            location: headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: response.text().await?,
        })
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

/// Opens `/books/mine` signed out, follows the app to Google, picks `email` on the account chooser, and returns
/// what the callback answers.
async fn sign_in(browser: &mut Browser, google: &Emulator, email: &str) -> Result<Page> {
    let page = browser.open("/books/mine").await?;
    expect_status("signed out, /books/mine", page.status, StatusCode::FOUND)?;
    let login = page.location("signed out, /books/mine")?.to_owned();
    if login != "/auth/login?return_to=%2Fbooks%2Fmine" {
        return Err(format!("signed out, /books/mine: sent to {login:?}, not to sign in").into());
    }
    let page = browser.open(&login).await?;
    expect_status("login", page.status, StatusCode::FOUND)?;
    let to_google = Url::parse(page.location("login")?)?;
    // The click on the account chooser: Google sends the browser back to the callback with a code.
    let callback = google.consent(&to_google, email)?;
    browser.open(callback.as_str()).await
}

fn expect_contains(what: &str, body: &str, want: &str) -> Result<()> {
    if body.contains(want) {
        Ok(())
    } else {
        Err(format!("{what}: {want:?} missing from the page:\n{body}").into())
    }
}

/// Runs the app against an in-process emulator and signs people in with a scripted browser: alice signs in, sees
/// her name and picture, adds a book (markup in its title is shown, not run), reads "my books", logs out and is
/// sent to sign in again (her old session cookie too); bob sees his own shelf; mallory (not allowed) gets the
/// `403` page; a script signed out gets `401`, a cross-site logout `403`.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::start().await?;
    let listener = loopback_listener().await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let redirect_url = format!("{origin}/auth/callback");
    let client = google.try_create_oauth_client(&[redirect_url.as_str()])?;
    let secrets = tempfile::tempdir()?;
    let secret_file = client.write_secret_file(secrets.path())?;
    let toml = config_toml(
        client.client_id(),
        SecretFrom::File(&secret_file),
        &redirect_url,
        Some(&google.base_url()),
    );
    let signin = signin(&toml)?;
    let session_cookie = signin.session_cookie_name();
    let app = Server::spawn(listener, app(&signin))?;

    // Signed out: "Login", and scripts get 401, never a redirect.
    let mut alice = Browser::new(&app.origin())?;
    let page = alice.open("/").await?;
    expect_status("home, signed out", page.status, StatusCode::OK)?;
    expect_contains("home, signed out", &page.body, ">Login</a>")?;
    let script = reqwest::Client::new()
        .get(app.url("/books/mine"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await?;
    expect_status(
        "JSON request, signed out",
        script.status(),
        StatusCode::UNAUTHORIZED,
    )?;

    // alice signs in and lands back on her books.
    let page = sign_in(&mut alice, &google, "alice@example.com").await?;
    expect_status("alice's callback", page.status, StatusCode::FOUND)?;
    if page.location("alice's callback")? != "/books/mine" {
        return Err(format!("alice's callback sent her to {:?}", page.location).into());
    }
    let page = alice.open("/books/mine").await?;
    expect_status("alice, my books", page.status, StatusCode::OK)?;
    expect_contains("alice, my books", &page.body, "Alice Liddell")?;
    expect_contains("alice, my books", &page.body, "No books yet.")?;

    // She adds two books; the markup in one title is shown as text.
    for (title, author) in [
        ("Through the Looking-Glass", "Lewis Carroll"),
        ("<script>alert(1)</script>", ""),
    ] {
        let page = alice
            .submit("/books/mine", &[("title", title), ("author", author)])
            .await?;
        expect_status("alice adds a book", page.status, StatusCode::SEE_OTHER)?;
    }
    let page = alice.open("/books/mine").await?;
    expect_contains(
        "alice, my books",
        &page.body,
        "<cite>Through the Looking-Glass</cite> by Lewis Carroll",
    )?;
    expect_contains(
        "alice, my books",
        &page.body,
        "<cite>&lt;script&gt;alert(1)&lt;/script&gt;</cite>",
    )?;
    if page.body.contains("<script>") {
        return Err("alice, my books: a title's markup reached the page".into());
    }
    let page = alice
        .submit("/books/mine", &[("title", "  "), ("author", "nobody")])
        .await?;
    expect_status(
        "a book without a title",
        page.status,
        StatusCode::BAD_REQUEST,
    )?;

    // Home: her picture, her name, "Logout".
    let page = alice.open("/").await?;
    expect_contains(
        "alice, home",
        &page.body,
        "<span id=\"user-name\">Alice Liddell</span>",
    )?;
    expect_contains(
        "alice, home",
        &page.body,
        "<img id=\"picture\" src=\"http://",
    )?;
    expect_contains("alice, home", &page.body, ">Logout</button>")?;

    // bob's shelf is his own.
    let mut bob = Browser::new(&app.origin())?;
    let page = sign_in(&mut bob, &google, "bob@example.com").await?;
    expect_status("bob's callback", page.status, StatusCode::FOUND)?;
    let page = bob.open("/books/mine").await?;
    expect_contains("bob, my books", &page.body, "Bob Builder")?;
    expect_contains("bob, my books", &page.body, "No books yet.")?;

    // Logout from another site (no Origin of this one): refused, still signed in.
    let forged = reqwest::Client::new()
        .post(app.url(signin.logout_path()))
        .header(header::ORIGIN, "https://evil.example")
        .header(
            header::COOKIE,
            format!(
                "{session_cookie}={}",
                alice
                    .cookies
                    .get(session_cookie)
                    .cloned()
                    .unwrap_or_default()
            ),
        )
        .send()
        .await?;
    expect_status("cross-site logout", forged.status(), StatusCode::FORBIDDEN)?;
    let page = alice.open("/books/mine").await?;
    expect_status(
        "alice after a cross-site logout",
        page.status,
        StatusCode::OK,
    )?;

    // alice logs out: home, "Login", and "my books" sends her to sign in again; her old cookie is worth nothing.
    let old_session = alice
        .cookies
        .get(session_cookie)
        .cloned()
        .ok_or("alice has no session cookie")?;
    let page = alice.submit(signin.logout_path(), &[]).await?;
    expect_status("logout", page.status, StatusCode::SEE_OTHER)?;
    let page = alice.open(page.location("logout")?).await?;
    expect_contains("home, after logout", &page.body, ">Login</a>")?;
    let page = alice.open("/books/mine").await?;
    expect_status("my books, after logout", page.status, StatusCode::FOUND)?;
    alice.cookies.insert(session_cookie.to_owned(), old_session);
    let page = alice.open("/books/mine").await?;
    expect_status(
        "my books, the old session cookie",
        page.status,
        StatusCode::FOUND,
    )?;

    // mallory is a real Google account, but not on the allowlist: the 403 page, and no session.
    let mut mallory = Browser::new(&app.origin())?;
    let page = sign_in(&mut mallory, &google, "mallory@gmail.com").await?;
    expect_status("mallory's callback", page.status, StatusCode::FORBIDDEN)?;
    expect_contains("mallory's callback", &page.body, "Access denied")?;
    let page = mallory.open("/books/mine").await?;
    expect_status("mallory, my books", page.status, StatusCode::FOUND)?;
    Ok(())
}
