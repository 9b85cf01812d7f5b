//! The harness every sign-in test shares: `idgate-emulator` plays Google (the account chooser through
//! [`Emulator::consent`], the `authorization_code` grant with PKCE, userinfo, revoke, the keys), the app under test
//! is served over real HTTP on `127.0.0.1`, and [`Browser`] is a client with a cookie jar that follows nothing by
//! itself, so each test sees every redirect.
//!
//! The store is a `MemoryStore` behind [`Store`], which remembers which session IDs exist so that a test can say
//! "no session exists" about the server, not only about the browser's cookies.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{StatusCode, header};
use idgate_core::Allowlist;
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_emulator::{Emulator, OAuthClient, TokenSpec};
use idgate_server::extract::VerifiedCaller;
use idgate_signin::{ClientSecret, MemoryStore, SessionStore, SignIn, SignInBuilder, SignedInUser};
use serde_json::{Map, Value};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use url::Url;

/// The session key the sign-in keeps the revocable Google token under (what logout revokes).
pub const TOKEN_KEY: &str = "idgate.signin.token";

/// Google, played by the emulator.
pub struct Google {
    pub emu: Arc<Emulator>,
}

impl Google {
    pub async fn start() -> Self {
        let emu = Emulator::start().await.expect("emulator");
        // Carol: a Google account outside example.com that the allowlist names by email.
        emu.add_user(idgate_emulator::UserSpec::new("carol@other.example").name("Carol Danvers"));
        Self { emu: Arc::new(emu) }
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints::under(&self.emu.base_url())
    }

    /// Clicking `email` on the account chooser of `authorization_url`: the callback URL Google redirects to.
    pub fn consent(&self, authorization_url: &str, email: &str) -> Url {
        let url = Url::parse(authorization_url).expect("an authorization URL");
        self.emu
            .consent(&url, email)
            .expect("Google redirects back")
    }

    /// Clicking "Deny".
    pub fn deny(&self, authorization_url: &str) -> Url {
        let url = Url::parse(authorization_url).expect("an authorization URL");
        self.emu.deny(&url).expect("Google redirects back")
    }
}

/// A save [`Store::hold_save`] holds.
#[derive(Debug)]
struct HeldSave {
    pass: usize,
    gate: Arc<tokio::sync::Semaphore>,
    then_fail: bool,
}

/// A session store that knows which sessions exist: a `MemoryStore` plus the set of IDs created or saved and not
/// deleted.
#[derive(Clone, Debug, Default)]
pub struct Store {
    inner: MemoryStore,
    ids: Arc<Mutex<HashSet<Id>>>,
    /// How many times a session was read from the store.
    loads: Arc<std::sync::atomic::AtomicUsize>,
    /// How many saves began.
    saves: Arc<std::sync::atomic::AtomicUsize>,
    /// Set by [`Store::hold_save`]: how many saves pass first, the gate the next one waits on, and whether that
    /// one then reports a failure although it was written (a timeout).
    save_gate: Arc<Mutex<Option<HeldSave>>>,
    /// The OAuth client (ID, secret) whose key seals the sessions' tokens.
    client: Option<(String, String)>,
}

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.inner.create(record).await?;
        self.ids.lock().unwrap().insert(record.id);
        Ok(())
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let held = {
            let mut held = self.save_gate.lock().unwrap();
            match held.as_mut() {
                Some(HeldSave { pass: 0, .. }) => held.take(),
                Some(HeldSave { pass, .. }) => {
                    *pass -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(held) = &held {
            let _ = held.gate.acquire().await;
        }
        self.inner.save(record).await?;
        self.ids.lock().unwrap().insert(record.id);
        if held.is_some_and(|held| held.then_fail) {
            return Err(session_store::Error::Backend(
                "timed out (but written)".into(),
            ));
        }
        Ok(())
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.delete(id).await?;
        self.ids.lock().unwrap().remove(id);
        Ok(())
    }
}

impl Store {
    /// How many sessions the store holds (live or past their expiry but not yet deleted).
    pub fn count(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    /// How many times a session was read from the store so far.
    pub fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many saves began so far.
    pub fn saves(&self) -> usize {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets `pass` saves through, then makes the next one wait until the returned gate is given a permit
    /// (`add_permits(1)`): a slow store. With `then_fail`, that save is written and then reported failed (a store
    /// that timed out after writing).
    pub fn hold_save(&self, pass: usize, then_fail: bool) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *self.save_gate.lock().unwrap() = Some(HeldSave {
            pass,
            gate: gate.clone(),
            then_fail,
        });
        gate
    }

    /// Waits until `count` saves have begun in all (panics after 5 s).
    pub async fn until_saves(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.saves() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} saves, not {count}",
                self.saves()
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// The live session a cookie value names, if any.
    pub async fn session(&self, cookie: &str) -> Option<Record> {
        let id = Id::from_str(cookie).ok()?;
        self.inner.load(&id).await.ok().flatten()
    }

    /// The Google token a session keeps for logout to revoke, opened as the app opens it (the store holds it
    /// sealed with a key derived from the client secret).
    pub async fn token(&self, cookie: &str) -> Option<String> {
        let record = self.session(cookie).await?;
        let sealed = record.data.get(TOKEN_KEY)?.as_str()?;
        let (client_id, secret) = self.client.as_ref()?;
        open_token(client_id, secret, sealed)
    }
}

pub async fn books(user: SignedInUser, VerifiedCaller(caller): VerifiedCaller) -> String {
    format!(
        "books of {} ({}; {}; picture {})",
        user.name().unwrap_or("?"),
        user.email(),
        caller,
        user.picture().unwrap_or("none"),
    )
}

pub async fn home(user: Option<SignedInUser>) -> String {
    match user {
        Some(user) => format!("hello {}", user.email()),
        None => "login".to_owned(),
    }
}

/// The app: `/` for everyone, `/books` behind `require()`, the sign-in routes, all inside `layer()`.
pub fn router(signin: &SignIn) -> Router {
    Router::new()
        .route("/", get(home))
        .merge(
            Router::new()
                .route("/books", get(books))
                .layer(signin.require()),
        )
        .merge(signin.router())
        .layer(signin.layer())
}

/// Who may sign in: example.com, and carol@other.example by email.
pub fn allowlist() -> Allowlist {
    Allowlist::builder()
        .user_domain("example.com")
        .user_email("carol@other.example")
        .build()
        .unwrap()
}

/// Where the app says it lives.
#[derive(Clone, Copy, Debug)]
pub enum Public {
    /// `http://127.0.0.1:PORT` itself (development: plain-http loopback cookies).
    Loopback,
    /// `https://app.example.com`, as behind a TLS-terminating proxy: the app is still served on loopback, and the
    /// browser sends that origin's requests there.
    Https,
}

/// The app under test, served over HTTP on loopback.
pub struct App {
    pub signin: SignIn,
    pub store: Store,
    pub client: OAuthClient,
    pub addr: SocketAddr,
    /// The origin the browser sees (`http://127.0.0.1:PORT` or `https://app.example.com`).
    pub origin: String,
}

impl App {
    /// Registers an OAuth client for the app's redirect URL at the emulator, builds the sign-in with `configure`,
    /// and serves it.
    pub async fn serve(
        google: &Google,
        public: Public,
        configure: impl FnOnce(SignInBuilder) -> SignInBuilder,
    ) -> Self {
        Self::serve_with(google, public, google.endpoints(), configure).await
    }

    /// [`serve`](Self::serve) on loopback with its time read from `clock` (for the test to move) and sessions that
    /// end after 10 minutes idle; `configure` sets the rest.
    pub async fn serve_on_clock(
        google: &Google,
        clock: &idgate_core::clock::ManualClock,
        configure: impl FnOnce(SignInBuilder) -> SignInBuilder,
    ) -> Self {
        Self::serve(google, Public::Loopback, |b| {
            configure(
                b.clock(Arc::new(clock.clone()))
                    .idle_timeout(std::time::Duration::from_secs(600)),
            )
        })
        .await
    }

    /// [`serve`](Self::serve) with other endpoints (a token endpoint in front of the emulator's).
    pub async fn serve_with(
        google: &Google,
        public: Public,
        endpoints: Endpoints,
        configure: impl FnOnce(SignInBuilder) -> SignInBuilder,
    ) -> Self {
        Self::serve_routed(google, public, endpoints, configure, router).await
    }

    /// [`serve_with`](Self::serve_with) with another app than [`router`] (`route` makes it from the sign-in).
    pub async fn serve_routed(
        google: &Google,
        public: Public,
        endpoints: Endpoints,
        configure: impl FnOnce(SignInBuilder) -> SignInBuilder,
        route: impl FnOnce(&SignIn) -> Router,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = match public {
            Public::Loopback => format!("http://{addr}"),
            Public::Https => "https://app.example.com".to_owned(),
        };
        let redirect = format!("{origin}/auth/callback");
        let client = google.emu.create_oauth_client(&[&redirect]);
        let store = Store {
            client: Some((
                client.client_id().to_owned(),
                client.client_secret().to_owned(),
            )),
            ..Store::default()
        };
        let builder = SignIn::builder(
            client.client_id(),
            ClientSecret::new(client.client_secret()),
            redirect.parse().unwrap(),
        )
        .endpoints(&endpoints)
        .keys_url_as(google.emu.oidc_jwks_url(), KeyAlgorithm::Rs256)
        .allowlist(allowlist())
        .store(store.clone());
        let signin = configure(builder).build().expect("sign-in");
        let app = route(&signin);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            signin,
            store,
            client,
            addr,
            origin,
        }
    }

    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            addr: self.addr,
            origin: self.origin.clone(),
            cookie_name: self.signin.session_cookie_name(),
            cookies: HashMap::new(),
        }
    }
}

/// What the app answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// Whether the answer sets a (non-empty) session cookie named `name`.
    pub fn sets_cookie(&self, name: &str) -> bool {
        self.set_cookies().iter().any(|c| {
            c.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .is_some_and(|rest| !rest.starts_with(';') && !rest.is_empty())
        })
    }

    /// The machine-readable reason a sign-in page carries (`data-reason="…"`).
    pub fn reason(&self) -> Option<&str> {
        let start = self.body.find("data-reason=\"")? + "data-reason=\"".len();
        let end = self.body[start..].find('"')?;
        Some(&self.body[start..start + end])
    }
}

/// A browser: a cookie jar, `Sec-Fetch-Mode: navigate` on page loads, no redirect followed by itself.
#[derive(Clone, Debug)]
pub struct Browser {
    http: reqwest::Client,
    addr: SocketAddr,
    origin: String,
    cookie_name: &'static str,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    /// A browser for an app served elsewhere (behind `idgate proxy`, in another crate's test) on `addr`, whose
    /// public origin is `origin` and whose session cookie is `cookie_name`.
    pub fn new(addr: SocketAddr, origin: &str, cookie_name: &'static str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .no_proxy()
                .build()
                .unwrap(),
            addr,
            origin: origin.to_owned(),
            cookie_name,
            cookies: HashMap::new(),
        }
    }

    /// From now on, sends its requests to `addr` (another replica behind the same origin).
    pub fn at(&mut self, addr: SocketAddr) -> &mut Self {
        self.addr = addr;
        self
    }

    /// Sends `method url` with `headers`; `url` is a path or a URL on the app's public origin.
    pub async fn send(
        &mut self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let path = match url.strip_prefix(&self.origin) {
            Some(rest) => rest,
            None if url.starts_with('/') => url,
            None => panic!("{url} is not on the app's origin {}", self.origin),
        };
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, jar.join("; "));
        }
        let response = req.send().await.expect("the app answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let lower = set.to_ascii_lowercase();
            let expired = lower.contains("max-age=0") || lower.contains("expires=thu, 01 jan 1970");
            if expired || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A page load (a navigation).
    pub async fn page(&mut self, url: &str) -> Answer {
        self.send(
            http::Method::GET,
            url,
            &[
                ("sec-fetch-mode", "navigate"),
                ("accept", "text/html,application/xhtml+xml"),
            ],
        )
        .await
    }

    /// Starts a login (`/auth/login?return_to=`): the authorization URL Google is asked with.
    pub async fn login(&mut self, return_to: &str) -> String {
        let login = self
            .page(&format!("/auth/login?return_to={}", enc(return_to)))
            .await;
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
        login.location().to_owned()
    }

    /// Login → the account chooser (`email` clicked) → the callback: the callback's answer.
    pub async fn sign_in(&mut self, google: &Google, return_to: &str, email: &str) -> Answer {
        let authorization = self.login(return_to).await;
        let callback = google.consent(&authorization, email);
        self.page(callback.as_str()).await
    }

    /// `POST /auth/logout` with `Origin: origin` (or none).
    pub async fn logout(&mut self, origin: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.send(http::Method::POST, "/auth/logout", &headers)
            .await
    }

    /// The session cookie's value.
    pub fn session(&self) -> Option<&String> {
        self.cookies.get(self.cookie_name)
    }

    pub fn set_session(&mut self, value: &str) {
        self.cookies
            .insert(self.cookie_name.to_owned(), value.to_owned());
    }

    pub fn forget_session(&mut self) {
        self.cookies.remove(self.cookie_name);
    }
}

/// A session's sealed Google token, opened as the sign-in does: AES-256-GCM under HMAC-SHA256(client secret,
/// purpose and client ID), `v1.` + base64url(nonce, ciphertext and tag).
pub fn open_token(client_id: &str, client_secret: &str, sealed: &str) -> Option<String> {
    use aws_lc_rs::{aead, hmac};
    let key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, client_secret.as_bytes()),
        format!("idgate-signin: the key sealing a session's Google token\n{client_id}").as_bytes(),
    );
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, key.as_ref()).ok()?);
    let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix("v1.")?).ok()?;
    if bytes.len() < aead::NONCE_LEN {
        return None;
    }
    let (nonce, rest) = bytes.split_at(aead::NONCE_LEN);
    let mut rest = rest.to_vec();
    let token = key
        .open_in_place(
            aead::Nonce::try_assume_unique_for_key(nonce).ok()?,
            aead::Aad::from(b"idgate.signin.token"),
            &mut rest,
        )
        .ok()?;
    String::from_utf8(token.to_vec()).ok()
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One query parameter of `url`.
pub fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with the query parameter `name` set to `value` (or removed, for `None`).
pub fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(value) = value {
            q.append_pair(name, value);
        }
    }
    url.into()
}

// ---------------------------------------------------------------------------------------------------------------
// A token endpoint that is not Google: it redeems the code at the emulator (so PKCE, the client and single use are
// all Google's real rules), then answers with an ID token re-minted by `forge` from the real one's claims. What
// an attacker on the path, or a broken proxy, could hand the app; the honest emulator never would.

/// Re-mints an ID token from (bent) claims.
pub type Forge = fn(Map<String, Value>) -> TokenSpec;

/// A spec carrying exactly `claims` (what the emulator's defaults would add is overwritten by them).
pub fn respec(claims: Map<String, Value>) -> TokenSpec {
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("nobody@example.com")
        .to_owned();
    claims
        .into_iter()
        .fold(TokenSpec::service_account(email), |spec, (k, v)| {
            spec.claim(k, v)
        })
}

#[derive(Clone)]
struct Tamper {
    emu_token: Url,
    mint: Arc<dyn Fn(&TokenSpec) -> String + Send + Sync>,
    forge: Arc<Mutex<Option<Forge>>>,
}

/// The forging token endpoint; set what it forges with [`Tampering::forge`].
pub struct Tampering {
    pub url: Url,
    forge: Arc<Mutex<Option<Forge>>>,
}

impl Tampering {
    pub async fn start(google: &Google) -> Self {
        let forge = Arc::new(Mutex::new(None));
        let emu = google.emu.clone();
        let state = Tamper {
            emu_token: google.emu.token_url(),
            mint: Arc::new(move |spec: &TokenSpec| emu.mint(spec)),
            forge: forge.clone(),
        };
        let app = Router::new()
            .route("/token", post(tamper_token))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, forge }
    }

    pub fn forge(&self, forge: Forge) {
        *self.forge.lock().unwrap() = Some(forge);
    }
}

async fn tamper_token(State(state): State<Tamper>, body: String) -> Response {
    let answer = reqwest::Client::new()
        .post(state.emu_token.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let mut json: Map<String, Value> = answer.json().await.unwrap();
    let forge = *state.forge.lock().unwrap();
    if let (true, Some(forge), Some(Value::String(id_token))) =
        (status.is_success(), forge, json.get("id_token").cloned())
    {
        let payload = id_token.split('.').nth(1).unwrap();
        let claims: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        json.insert(
            "id_token".into(),
            Value::String((state.mint)(&forge(claims))),
        );
    }
    (status, axum::Json(Value::Object(json))).into_response()
}
