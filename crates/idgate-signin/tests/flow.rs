//! The whole flow through the real layers and routes, over `tower::ServiceExt::oneshot` with a cookie jar.
//!
//! Google's keys and ID tokens come from `idgate-emulator` (`TokenSpec`). Its authorization-code routes (the
//! account chooser, the `authorization_code` grant with PKCE, userinfo, revoke) are being added in parallel; until
//! they land, [`StandIn`] below plays Google's token, userinfo and revoke endpoints in Google's wire formats.
//! TO BE REPLACED by `Emulator::register_oauth_client` / `Emulator::consent` once the emulator has them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode, header};
use idgate_core::Allowlist;
use idgate_core::clock::ManualClock;
use idgate_core::google::Endpoints;
use idgate_core::keys::KeyAlgorithm;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::extract::VerifiedCaller;
use idgate_signin::{ClientSecret, SignIn, SignedInUser};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt as _;
use url::Url;

const CLIENT_ID: &str = "123-abc.apps.googleusercontent.com";
const SECRET: &str = "GOCSPX-test-secret";
const APP: &str = "https://app.example.com";

// ---------------------------------------------------------------------------------------------------------------
// The stand-in for Google's token, userinfo and revoke endpoints (see the module docs).

#[derive(Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    id_token: String,
}

#[derive(Default)]
struct StandInState {
    grants: Mutex<HashMap<String, Grant>>,
    revoked: AtomicU64,
    token_calls: AtomicU64,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    client_secret: String,
    code_verifier: Option<String>,
}

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": "stand-in"})),
    )
        .into_response()
}

async fn token(State(state): State<Arc<StandInState>>, Form(form): Form<TokenForm>) -> Response {
    state.token_calls.fetch_add(1, Ordering::SeqCst);
    if form.grant_type != "authorization_code" {
        return oauth_error("unsupported_grant_type");
    }
    if form.client_id != CLIENT_ID || form.client_secret != SECRET {
        return oauth_error("invalid_client");
    }
    // Single use: the code goes whatever happens next.
    let Some(grant) = state.grants.lock().unwrap().remove(&form.code) else {
        return oauth_error("invalid_grant");
    };
    let verifier = form.code_verifier.unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    if challenge != grant.challenge || grant.redirect_uri != form.redirect_uri {
        return oauth_error("invalid_grant");
    }
    Json(json!({
        "access_token": "ya29.stand-in-access-token",
        "expires_in": 3599,
        "id_token": grant.id_token,
        "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn revoke(
    State(state): State<Arc<StandInState>>,
    Form(form): Form<HashMap<String, String>>,
) -> StatusCode {
    if form.get("token").is_some_and(|t| t.starts_with("ya29.")) {
        state.revoked.fetch_add(1, Ordering::SeqCst);
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn userinfo() -> Json<serde_json::Value> {
    Json(
        json!({"sub": "1111", "name": "Alice From Userinfo", "picture": "https://example.com/u.png"}),
    )
}

struct Google {
    emulator: Emulator,
    base: Url,
    state: Arc<StandInState>,
}

impl Google {
    async fn start() -> Self {
        let emulator = Emulator::start().await.unwrap();
        let state = Arc::new(StandInState::default());
        let app = Router::new()
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/v1/userinfo", get(userinfo))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base: Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            emulator,
            base,
            state,
        }
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints::under(&self.base)
    }

    /// What Google does when the user consents: a code bound to the challenge and redirect URI, whose ID token is
    /// `spec` (with the attempt's nonce unless the spec sets one); returns the callback's path and query.
    fn consent(&self, authorization_url: &str, spec: TokenSpec) -> String {
        let url = Url::parse(authorization_url).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let spec = if spec_has_nonce(&spec) {
            spec
        } else {
            spec.claim("nonce", q["nonce"].clone())
        };
        let code = format!(
            "4/code-{}",
            q["state"].len() + self.state.grants.lock().unwrap().len() + rand_suffix()
        );
        self.state.grants.lock().unwrap().insert(
            code.clone(),
            Grant {
                challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                id_token: self.emulator.mint(&spec),
            },
        );
        let redirect = Url::parse(&q["redirect_uri"]).unwrap();
        let mut callback = redirect.path().to_owned();
        callback.push('?');
        callback.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code)
                .append_pair("state", &q["state"])
                .append_pair("iss", "https://accounts.google.com")
                .finish(),
        );
        callback
    }
}

fn spec_has_nonce(spec: &TokenSpec) -> bool {
    format!("{spec:?}").contains("\"nonce\"")
}

fn rand_suffix() -> usize {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst) as usize
}

/// A Google account's ID token, as Google mints it for this client.
fn user(email: &str, sub: &str) -> TokenSpec {
    TokenSpec::service_account(email)
        .audience(CLIENT_ID)
        .claim("sub", sub)
        .claim("azp", CLIENT_ID)
        .claim("name", "Alice Example")
        .claim("given_name", "Alice")
        .claim("family_name", "Example")
        .claim("picture", "https://lh3.googleusercontent.com/a/alice")
        .claim("at_hash", "x")
}

// ---------------------------------------------------------------------------------------------------------------
// The app under test and a browser with a cookie jar.

async fn books(user: SignedInUser, VerifiedCaller(caller): VerifiedCaller) -> String {
    format!(
        "books of {} ({}; {})",
        user.name().unwrap_or("?"),
        user.email(),
        caller
    )
}

async fn home(user: Option<SignedInUser>) -> String {
    match user {
        Some(user) => format!("hello {}", user.email()),
        None => "login".to_owned(),
    }
}

fn app(signin: &SignIn) -> Router {
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

fn builder(google: &Google) -> idgate_signin::SignInBuilder {
    SignIn::builder(
        CLIENT_ID,
        ClientSecret::new(SECRET),
        format!("{APP}/auth/callback").parse().unwrap(),
    )
    .endpoints(&google.endpoints())
    .keys_url_as(google.emulator.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(
        Allowlist::builder()
            .user_domain("example.com")
            .user_email("carol@other.example")
            .build()
            .unwrap(),
    )
}

#[derive(Default, Clone)]
struct Browser {
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Browser {
    async fn send(&mut self, app: &Router, req: http::request::Builder) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if cookie.is_empty() {
            req
        } else {
            req.header(header::COOKIE, cookie.join("; "))
        };
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = set.contains("Max-Age=0")
                || set
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
            if expired || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn page(&mut self, app: &Router, uri: &str) -> Answer {
        self.send(
            app,
            Request::get(uri)
                .header("sec-fetch-mode", "navigate")
                .header(header::ACCEPT, "text/html"),
        )
        .await
    }

    /// Login → Google (consent with `spec`) → callback: the callback's answer.
    async fn sign_in(
        &mut self,
        app: &Router,
        google: &Google,
        return_to: &str,
        spec: TokenSpec,
    ) -> Answer {
        let login = self
            .page(app, &format!("/auth/login?return_to={}", enc(return_to)))
            .await;
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
        let callback = google.consent(login.location(), spec);
        self.page(app, &callback).await
    }

    fn session(&self) -> Option<&String> {
        self.cookies.get("__Host-idgate_session")
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn logout(origin: Option<&str>) -> http::request::Builder {
    let req = Request::post("/auth/logout");
    match origin {
        Some(o) => req.header(header::ORIGIN, o),
        None => req,
    }
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_person_signs_in_reloads_and_signs_out() {
    let google = Google::start().await;
    let signin = builder(&google).build().unwrap();
    let app = app(&signin);
    let mut browser = Browser::default();

    // Signed out: a page is sent to sign in, with the way back.
    let first = browser.page(&app, "/books?page=2").await;
    assert_eq!(first.status, StatusCode::FOUND);
    assert_eq!(
        first.location(),
        "/auth/login?return_to=%2Fbooks%3Fpage%3D2"
    );
    assert_eq!(browser.page(&app, "/").await.body, "login");

    // Login: to Google's authorization endpoint with every parameter of the flow.
    let login = browser.page(&app, first.location()).await;
    assert_eq!(login.status, StatusCode::FOUND);
    let auth = Url::parse(login.location()).unwrap();
    assert_eq!(
        auth.as_str().split('?').next().unwrap(),
        google.endpoints().authorization.as_str()
    );
    let q: HashMap<String, String> = auth.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], format!("{APP}/auth/callback"));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(!q.contains_key("hd") && !q.contains_key("prompt"));
    let attempt_cookie = &login.set_cookies()[0];
    assert!(
        attempt_cookie.starts_with("__Host-idgate_signin_"),
        "{attempt_cookie}"
    );
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(
            attempt_cookie.contains(attr),
            "{attempt_cookie} lacks {attr}"
        );
    }
    assert_eq!(signin.pending_attempts(), 1);

    // Google sends the browser back; the session starts and the browser goes where it was going.
    let callback = google.consent(login.location(), user("alice@example.com", "1111"));
    let back = browser.page(&app, &callback).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert_eq!(back.location(), "/books?page=2");
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
    assert_eq!(
        browser.session().unwrap().len(),
        22,
        "the cookie holds only the session ID"
    );
    assert!(
        !browser
            .cookies
            .keys()
            .any(|k| k.starts_with("__Host-idgate_signin_")),
        "attempt cookie removed"
    );
    assert_eq!(signin.pending_attempts(), 0);

    // Signed in: the protected page, the profile from the ID token, the common Caller; reload stays signed in.
    for _ in 0..2 {
        let page = browser.page(&app, "/books").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.body,
            "books of Alice Example (alice@example.com; user alice@example.com)"
        );
    }
    assert_eq!(
        browser.page(&app, "/").await.body,
        "hello alice@example.com"
    );

    // Logout: GET is not allowed; a POST from another site is refused; from this site it ends the session.
    assert_eq!(
        browser
            .send(&app, Request::get("/auth/logout"))
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        browser.send(&app, logout(None)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser
            .send(&app, logout(Some("https://evil.example")))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.send(&app, logout(Some("null"))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        browser.page(&app, "/books").await.status,
        StatusCode::OK,
        "still signed in"
    );
    let session_id = browser.session().cloned().unwrap();
    let out = browser.send(&app, logout(Some(APP))).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/");
    assert_eq!(out.headers.get("clear-site-data").unwrap(), "\"cookies\"");
    assert_eq!(
        google.state.revoked.load(Ordering::SeqCst),
        1,
        "the Google token was revoked"
    );
    assert_eq!(
        browser.page(&app, "/books").await.status,
        StatusCode::FOUND,
        "signed out"
    );
    // The old session ID is dead on the server, not only forgotten by the browser.
    let mut replay = Browser::default();
    replay
        .cookies
        .insert("__Host-idgate_session".into(), session_id);
    assert_eq!(replay.page(&app, "/books").await.status, StatusCode::FOUND);
    // Same-origin by Sec-Fetch-Site when there is no Origin.
    let by_fetch_site = browser
        .send(
            &app,
            Request::post("/auth/logout").header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(by_fetch_site.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn scripts_get_401_and_refused_accounts_403() {
    let google = Google::start().await;
    let signin = builder(&google).build().unwrap();
    let app = app(&signin);
    let mut browser = Browser::default();

    for req in [
        Request::get("/books").header(header::ACCEPT, "application/json"),
        Request::get("/books")
            .header("sec-fetch-mode", "cors")
            .header(header::ACCEPT, "text/html"),
        Request::get("/books"),
        Request::post("/books").header(header::ACCEPT, "text/html"),
    ] {
        let answer = browser.send(&app, req).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(
            answer.location().is_empty(),
            "never a redirect for a script"
        );
    }

    // A genuine account the allowlist does not admit: 403, and no session.
    let refused = browser
        .sign_in(&app, &google, "/books", user("mallory@gmail.com", "2222"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Access denied"), "{}", refused.body);
    assert!(browser.session().is_none());
    // A service account is not a person: it does not sign in, even from an allowed domain.
    let robot = TokenSpec::service_account("svc@p.iam.gserviceaccount.com")
        .audience(CLIENT_ID)
        .claim("azp", CLIENT_ID);
    let refused = browser.sign_in(&app, &google, "/books", robot).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(browser.session().is_none());
    // An allowed account by email.
    let carol = browser
        .sign_in(&app, &google, "/books", user("carol@other.example", "3333"))
        .await;
    assert_eq!(carol.status, StatusCode::FOUND);
    assert_eq!(browser.page(&app, "/books").await.status, StatusCode::OK);
}

#[tokio::test]
async fn several_tabs_sign_in_at_once() {
    let google = Google::start().await;
    let signin = builder(&google).build().unwrap();
    let app = app(&signin);
    let mut browser = Browser::default();
    let one = browser.page(&app, "/auth/login?return_to=%2Fone").await;
    let two = browser.page(&app, "/auth/login?return_to=%2Ftwo").await;
    assert_eq!(signin.pending_attempts(), 2);
    // The second tab finishes first, then the first: both complete, each back where it started.
    let back_two = browser
        .page(
            &app,
            &google.consent(two.location(), user("alice@example.com", "1111")),
        )
        .await;
    assert_eq!(back_two.location(), "/two");
    let back_one = browser
        .page(
            &app,
            &google.consent(one.location(), user("alice@example.com", "1111")),
        )
        .await;
    assert_eq!(back_one.location(), "/one");
    assert_eq!(browser.page(&app, "/books").await.status, StatusCode::OK);

    // A browser that keeps starting attempts keeps at most five cookies.
    let mut looping = Browser::default();
    for _ in 0..12 {
        looping.page(&app, "/auth/login").await;
    }
    assert!(looping.cookies.len() <= 5, "{:?}", looping.cookies.keys());
}

#[tokio::test]
async fn hostile_callbacks_get_a_clear_page_and_no_session() {
    let google = Google::start().await;
    let signin = builder(&google)
        .hosted_domain("example.com")
        .build()
        .unwrap();
    let app = app(&signin);
    let good = || user("alice@example.com", "1111").hosted_domain("example.com");

    // (case, what Google's ID token is, how the callback is bent, expected status, expected page text)
    type Bend = fn(&str) -> String;
    let same: Bend = |c| c.to_owned();
    let cases: Vec<(&str, TokenSpec, Bend, StatusCode, &str)> = vec![
        (
            "nonce mismatch",
            good().claim("nonce", "not-the-attempts"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "token for another client",
            good().audience("999-other.apps.googleusercontent.com"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "azp of another client",
            good().claim("azp", "999-other.apps.googleusercontent.com"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "unverified email",
            good().email_verified(false),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "email_verified as a string",
            good().email_verified("true"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "wrong hd",
            user("alice@example.com", "1111").hosted_domain("evil.example"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "no hd",
            user("alice@example.com", "1111"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "expired ID token",
            good().expired(),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "forged signature",
            good().tampered_signature(),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "legacy issuer form is fine",
            good().issuer("accounts.google.com"),
            same,
            StatusCode::FOUND,
            "",
        ),
        (
            "other issuer",
            good().issuer("https://evil.example"),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        // (Refused here for its missing `hd`; without a required hd, as a service account: see the 403 test.)
        (
            "service account",
            TokenSpec::service_account("svc@p.iam.gserviceaccount.com").audience(CLIENT_ID),
            same,
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "state from nowhere",
            good(),
            |c| c.replace("state=", "state=x"),
            StatusCode::BAD_REQUEST,
            "expired",
        ),
        (
            "no state",
            good(),
            |c| c.replace("state=", "nostate="),
            StatusCode::BAD_REQUEST,
            "expired",
        ),
        (
            "two states",
            good(),
            |c| format!("{c}&state=other"),
            StatusCode::BAD_REQUEST,
            "expired",
        ),
        (
            "iss of another server",
            good(),
            |c| c.replace("iss=https", "iss=http"),
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "no code",
            good(),
            |c| c.replace("code=", "nocode="),
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "wrong code (as with a wrong PKCE verifier)",
            good(),
            |c| c.replace("code=4", "code=5"),
            StatusCode::BAD_REQUEST,
            "could not be completed",
        ),
        (
            "user declined",
            good(),
            |c| c.replace("code=", "error=access_denied&x="),
            StatusCode::FORBIDDEN,
            "cancelled",
        ),
        (
            "other error",
            good(),
            |c| c.replace("code=", "error=%3Cb%3Eserver_error&x="),
            StatusCode::BAD_REQUEST,
            "(bserver_error)",
        ),
    ];
    for (name, spec, bend, status, text) in cases {
        let mut browser = Browser::default();
        let login = browser.page(&app, "/auth/login?return_to=%2Fbooks").await;
        let callback = bend(&google.consent(login.location(), spec));
        let answer = browser.page(&app, &callback).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.body);
        assert!(answer.body.contains(text), "{name}: {}", answer.body);
        if status != StatusCode::FOUND {
            assert!(browser.session().is_none(), "{name}: a session was started");
            assert_eq!(
                browser.page(&app, "/books").await.status,
                StatusCode::FOUND,
                "{name}"
            );
            assert!(
                !answer.body.contains("ya29") && !answer.body.contains("4/code"),
                "{name}: {}",
                answer.body
            );
        }
    }

    // A replayed callback (the same state and code again) is refused, whoever sends it.
    let mut browser = Browser::default();
    let login = browser.page(&app, "/auth/login").await;
    let callback = google.consent(login.location(), good());
    assert_eq!(
        browser.page(&app, &callback).await.status,
        StatusCode::FOUND
    );
    let mut again = browser.clone();
    again.cookies.remove("__Host-idgate_session");
    let replay = again.page(&app, &callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(
        replay.body.contains("expired, was already used"),
        "{}",
        replay.body
    );
    assert!(again.session().is_none());

    // A callback for an attempt another browser started (login CSRF): refused, and the attempt is spent.
    let mut victim = Browser::default();
    let mut attacker = Browser::default();
    let login = attacker.page(&app, "/auth/login").await;
    let callback = google.consent(login.location(), good());
    assert_eq!(
        victim.page(&app, &callback).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(victim.session().is_none());
    assert_eq!(
        attacker.page(&app, &callback).await.status,
        StatusCode::BAD_REQUEST,
        "spent"
    );
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_and_tampered_cookies_are_signed_out() {
    let google = Google::start().await;
    let signin = builder(&google).build().unwrap();
    let app = app(&signin);
    let mut browser = Browser::default();
    // An attacker-planted session ID (fixation) and garbage are both ignored.
    for planted in [
        "AAAAAAAAAAAAAAAAAAAAAA",
        "not-a-session-id",
        &"x".repeat(5000),
    ] {
        browser
            .cookies
            .insert("__Host-idgate_session".into(), planted.to_owned());
        assert_eq!(browser.page(&app, "/books").await.status, StatusCode::FOUND);
    }
    browser.cookies.insert(
        "__Host-idgate_session".into(),
        "AAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let back = browser
        .sign_in(&app, &google, "/books", user("alice@example.com", "1111"))
        .await;
    assert_eq!(back.status, StatusCode::FOUND);
    let id = browser.session().cloned().unwrap();
    assert_ne!(id, "AAAAAAAAAAAAAAAAAAAAAA");
    // Signing in again (another account) gives yet another ID.
    browser
        .sign_in(&app, &google, "/", user("bob@example.com", "4444"))
        .await;
    assert_ne!(browser.session().unwrap(), &id);
    assert_eq!(browser.page(&app, "/").await.body, "hello bob@example.com");
    // One character changed: signed out.
    let mut tampered = browser.clone();
    let mut value = tampered.session().cloned().unwrap();
    value.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
    tampered
        .cookies
        .insert("__Host-idgate_session".into(), value);
    assert_eq!(
        tampered.page(&app, "/books").await.status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn the_return_url_never_leaves_the_site() {
    let google = Google::start().await;
    let signin = builder(&google).build().unwrap();
    let app = app(&signin);
    for hostile in [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "%2F%2Fevil.com",
        "/%2F/evil.com",
        "javascript:alert(1)",
        "/%5Cevil.com",
        "/\t/evil.com",
    ] {
        let mut browser = Browser::default();
        let back = browser
            .sign_in(&app, &google, hostile, user("alice@example.com", "1111"))
            .await;
        assert_eq!(back.status, StatusCode::FOUND, "{hostile}");
        assert_eq!(back.location(), "/", "{hostile}");
    }
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_lifetime() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let signin = builder(&google)
        .clock(Arc::new(clock.clone()))
        .idle_timeout(Duration::from_secs(600))
        .session_lifetime(Duration::from_secs(1800))
        .build()
        .unwrap();
    let app = app(&signin);
    let mut browser = Browser::default();
    browser
        .sign_in(&app, &google, "/", user("alice@example.com", "1111"))
        .await;
    // Active every 5 minutes: the idle deadline slides...
    for _ in 0..5 {
        clock.advance(Duration::from_secs(300));
        assert_eq!(browser.page(&app, "/books").await.status, StatusCode::OK);
    }
    // ...until the absolute lifetime (30 min) ends it however active.
    clock.advance(Duration::from_secs(300));
    assert_eq!(browser.page(&app, "/books").await.status, StatusCode::FOUND);

    browser
        .sign_in(&app, &google, "/", user("alice@example.com", "1111"))
        .await;
    assert_eq!(browser.page(&app, "/books").await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        browser.page(&app, "/books").await.status,
        StatusCode::FOUND,
        "idle"
    );
}

#[tokio::test]
async fn userinfo_only_when_asked_and_a_plain_http_loopback_app_for_development() {
    let google = Google::start().await;
    let signin = SignIn::builder(
        CLIENT_ID,
        ClientSecret::new(SECRET),
        "http://127.0.0.1:3000/cb".parse().unwrap(),
    )
    .endpoints(&google.endpoints())
    .keys_url_as(google.emulator.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(
        Allowlist::builder()
            .user_domain("example.com")
            .build()
            .unwrap(),
    )
    .fetch_userinfo(true)
    .build()
    .unwrap();
    assert_eq!(signin.session_cookie_name(), "idgate_session");
    let app = app(&signin);
    let mut browser = Browser::default();
    let login = browser
        .page(&app, "/auth/login?login_hint=alice%40example.com")
        .await;
    assert!(
        login.location().contains("login_hint=alice%40example.com"),
        "{}",
        login.location()
    );
    let cookie = &login.set_cookies()[0];
    assert!(
        cookie.starts_with("idgate_signin_") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let back = browser
        .page(
            &app,
            &google.consent(login.location(), user("alice@example.com", "1111")),
        )
        .await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert!(browser.cookies.contains_key("idgate_session"));
    let page = browser.page(&app, "/books").await;
    assert!(
        page.body.starts_with("books of Alice From Userinfo"),
        "{}",
        page.body
    );
}

#[test]
fn building_refuses_what_cannot_be_safe() {
    let build = |redirect: &str, allow: Allowlist, scopes: &[&str]| {
        SignIn::builder(
            CLIENT_ID,
            ClientSecret::new(SECRET),
            redirect.parse().unwrap(),
        )
        .allowlist(allow)
        .scopes(scopes.iter().copied())
        .build()
    };
    let allow = || {
        Allowlist::builder()
            .user_domain("example.com")
            .build()
            .unwrap()
    };
    let openid = &["openid", "email"];
    assert!(build("https://a.example/cb", allow(), openid).is_ok());
    for (redirect, allowlist, scopes) in [
        ("https://a.example/cb", Allowlist::new(), &openid[..]),
        ("https://a.example/cb", allow(), &["email"][..]),
        ("http://a.example/cb", allow(), &openid[..]),
        ("https://a.example/auth/login", allow(), &openid[..]),
    ] {
        let err = build(redirect, allowlist, scopes).unwrap_err();
        assert_eq!(err.reason(), "invalid_config", "{redirect}");
    }
}

#[test]
fn from_config_reads_the_secret_where_the_table_says_and_never_prints_it() {
    let dir = std::env::temp_dir().join(format!("idgate-signin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let config = idgate_core::Config::from_toml_str(&format!(
        "[signin]\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = '{}'\nredirect_url = \"{APP}/auth/callback\"\n\
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
