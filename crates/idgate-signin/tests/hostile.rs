//! The hostile table, through the real layer over HTTP on loopback, with `idgate-emulator` playing Google. Every
//! refused case asserts the status, the page's machine-readable reason (`data-reason`), and that no session exists
//! afterwards: no session cookie set, none in the browser, none in the store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Answer, App, Browser, Google, Public, Tampering, param, respec, with_param};
use http::{Method, StatusCode};
use idgate_core::clock::ManualClock;
use idgate_emulator::{TokenSpec, UserSpec};
use serde_json::{Map, Value, json};

/// The assertions every refused sign-in shares.
fn assert_refused(
    name: &str,
    app: &App,
    browser: &Browser,
    answer: &Answer,
    status: StatusCode,
    reason: &str,
) {
    assert_eq!(answer.status, status, "{name}: {}", answer.body);
    assert_eq!(answer.reason(), Some(reason), "{name}: {}", answer.body);
    assert!(answer.location().is_empty(), "{name}: a redirect");
    assert!(
        !answer.sets_cookie(app.signin.session_cookie_name()),
        "{name}: a session cookie was set: {:?}",
        answer.set_cookies()
    );
    assert!(
        browser.session().is_none(),
        "{name}: the browser has a session"
    );
    assert_eq!(app.store.count(), 0, "{name}: the store has a session");
    assert!(
        !answer.body.contains("ya29") && !answer.body.contains("4/0A"),
        "{name}: a token or code on the page: {}",
        answer.body
    );
}

/// What the hostile party does between login and callback.
#[derive(Clone, Copy)]
enum Act {
    /// The user clicks this account on Google's chooser.
    Consent(&'static str),
    /// The user clicks "Deny".
    Deny,
    /// Consent, then the code expires at Google before the callback.
    ExpireCode,
    /// Consent, then the attempt outlives its 10 minutes (the app's clock).
    ExpireAttempt,
}

/// What the case can use: a second attempt of the same browser (its authorization URL and a code Google issued
/// for it) and a second OAuth client registered for the same redirect URL.
struct Ctx {
    other_authorization: String,
    other_code: String,
    other_client: String,
}

type Bend = fn(String, &Ctx) -> String;

struct Case {
    name: &'static str,
    hosted_domain: bool,
    act: Act,
    /// Applied to the authorization URL before Google sees it.
    request: Bend,
    /// Applied to the callback URL before the browser loads it.
    callback: Bend,
    status: StatusCode,
    reason: &'static str,
}

fn same(url: String, _: &Ctx) -> String {
    url
}

const BAD: StatusCode = StatusCode::BAD_REQUEST;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
const ALICE: &str = "alice@example.com";

fn cases() -> Vec<Case> {
    let case = |name, act, request: Bend, callback: Bend, status, reason| Case {
        name,
        hosted_domain: false,
        act,
        request,
        callback,
        status,
        reason,
    };
    vec![
        case(
            "state mismatch (another value)",
            Act::Consent(ALICE),
            same,
            |c, _| {
                with_param(
                    &c,
                    "state",
                    Some("Xq3Vn8gqvUoLHAh4V7zh1V5w2jFPBnG1wS2eQfK8Jc0"),
                )
            },
            BAD,
            "unknown_state",
        ),
        case(
            "state missing",
            Act::Consent(ALICE),
            same,
            |c, _| with_param(&c, "state", None),
            BAD,
            "missing_state",
        ),
        case(
            "state given twice",
            Act::Consent(ALICE),
            same,
            |c, _| format!("{c}&state=other"),
            BAD,
            "missing_state",
        ),
        case(
            "wrong PKCE verifier: the code of another attempt",
            Act::Consent(ALICE),
            same,
            |c, ctx| with_param(&c, "code", Some(&ctx.other_code)),
            BAD,
            "token_rejected",
        ),
        case(
            "wrong PKCE verifier: the challenge swapped in the request",
            Act::Consent(ALICE),
            |r, ctx| {
                let theirs = param(&ctx.other_authorization, "code_challenge").unwrap();
                with_param(&r, "code_challenge", Some(&theirs))
            },
            same,
            BAD,
            "token_rejected",
        ),
        case(
            "missing PKCE: the challenge stripped from the request",
            Act::Consent(ALICE),
            |r, _| {
                with_param(
                    &with_param(&r, "code_challenge", None),
                    "code_challenge_method",
                    None,
                )
            },
            same,
            BAD,
            "token_rejected",
        ),
        case(
            "nonce mismatch: the ID token minted for another attempt's nonce",
            Act::Consent(ALICE),
            |r, ctx| {
                let theirs = param(&ctx.other_authorization, "nonce").unwrap();
                with_param(&r, "nonce", Some(&theirs))
            },
            same,
            BAD,
            "nonce_mismatch",
        ),
        case(
            "nonce stripped from the request: an ID token without nonce",
            Act::Consent(ALICE),
            |r, _| with_param(&r, "nonce", None),
            same,
            BAD,
            "nonce_mismatch",
        ),
        case(
            "a second OAuth client's code",
            Act::Consent(ALICE),
            |r, ctx| with_param(&r, "client_id", Some(&ctx.other_client)),
            same,
            BAD,
            "token_rejected",
        ),
        case(
            "unverified email",
            Act::Consent("unverified@example.com"),
            same,
            same,
            BAD,
            "invalid_id_token",
        ),
        Case {
            hosted_domain: true,
            ..case(
                "wrong hd: a gmail.com account with hd = example.com required",
                Act::Consent("mallory@gmail.com"),
                same,
                same,
                BAD,
                "wrong_hd",
            )
        },
        Case {
            hosted_domain: true,
            ..case(
                "no hd: an allowlisted account outside the required domain",
                Act::Consent("carol@other.example"),
                same,
                same,
                BAD,
                "wrong_hd",
            )
        },
        case(
            "not on the allowlist",
            Act::Consent("mallory@gmail.com"),
            same,
            same,
            FORBIDDEN,
            "not_allowed",
        ),
        case(
            "the user denies (error=access_denied)",
            Act::Deny,
            same,
            same,
            FORBIDDEN,
            "access_denied",
        ),
        case(
            "another authorization error",
            Act::Consent(ALICE),
            same,
            |c, _| {
                with_param(
                    &with_param(&c, "code", None),
                    "error",
                    Some("<b>server_error"),
                )
            },
            BAD,
            "authorization_error",
        ),
        case(
            "iss of another authorization server (RFC 9207 mix-up)",
            Act::Consent(ALICE),
            same,
            |c, _| with_param(&c, "iss", Some("https://evil.example")),
            BAD,
            "wrong_issuer_parameter",
        ),
        case(
            "no code",
            Act::Consent(ALICE),
            same,
            |c, _| with_param(&c, "code", None),
            BAD,
            "missing_code",
        ),
        case(
            "a code Google never issued",
            Act::Consent(ALICE),
            same,
            |c, _| with_param(&c, "code", Some("4/0Anot-a-code")),
            BAD,
            "token_rejected",
        ),
        case(
            "the code expired at Google",
            Act::ExpireCode,
            same,
            same,
            BAD,
            "token_rejected",
        ),
        case(
            "the attempt expired (10 minutes)",
            Act::ExpireAttempt,
            same,
            same,
            BAD,
            "unknown_state",
        ),
    ]
}

#[tokio::test]
async fn hostile_callbacks_get_a_clear_page_and_no_session() {
    let google = Google::start().await;
    google.emu.add_user(
        UserSpec::new("unverified@example.com")
            .hosted_domain("example.com")
            .email_verified(false),
    );
    for case in cases() {
        let clock = ManualClock::starting_now();
        let app = App::serve(&google, Public::Loopback, |b| {
            let b = b.clock(Arc::new(clock.clone()));
            if case.hosted_domain {
                b.hosted_domain("example.com")
            } else {
                b
            }
        })
        .await;
        let redirect = format!("{}/auth/callback", app.origin);
        let other_client = google.emu.create_oauth_client(&[&redirect]);
        let mut browser = app.browser();
        let mine = browser.login("/books").await;
        let other_authorization = browser.login("/elsewhere").await;
        let other_code =
            param(google.consent(&other_authorization, ALICE).as_str(), "code").unwrap();
        let ctx = Ctx {
            other_authorization,
            other_code,
            other_client: other_client.client_id().to_owned(),
        };
        let request = (case.request)(mine, &ctx);
        let callback = match case.act {
            Act::Consent(email) => google.consent(&request, email),
            Act::Deny => google.deny(&request),
            Act::ExpireCode => {
                let back = google.consent(&request, ALICE);
                let code = param(back.as_str(), "code").unwrap();
                assert!(google.emu.expire_authorization_code(&code));
                back
            }
            Act::ExpireAttempt => {
                clock.advance(Duration::from_secs(601));
                google.consent(&request, ALICE)
            }
        };
        let callback = (case.callback)(callback.into(), &ctx);
        let answer = browser.page(&callback).await;
        assert_refused(case.name, &app, &browser, &answer, case.status, case.reason);
        // And the protected page still sends this browser to sign in.
        assert_eq!(
            browser.page("/books").await.status,
            StatusCode::FOUND,
            "{}",
            case.name
        );
        eprintln!(
            "{:<70} -> {} {}",
            case.name,
            answer.status.as_u16(),
            case.reason
        );
    }
}

#[tokio::test]
async fn the_user_who_declines_gets_a_clear_page() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    let authorization = browser.login("/books").await;
    let answer = browser.page(google.deny(&authorization).as_str()).await;
    assert_refused(
        "declined",
        &app,
        &browser,
        &answer,
        FORBIDDEN,
        "access_denied",
    );
    assert!(answer.body.contains("Sign-in cancelled"), "{}", answer.body);
    assert!(
        answer.body.contains("href=\"/auth/login\""),
        "a way to try again"
    );
    assert!(
        !browser
            .cookies
            .keys()
            .any(|k| k.starts_with("idgate_signin_")),
        "the spent attempt's cookie is removed"
    );
}

#[tokio::test]
async fn replayed_callbacks_and_codes_are_refused() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    let authorization = browser.login("/books").await;
    let callback = google.consent(&authorization, ALICE);
    assert_eq!(
        browser.page(callback.as_str()).await.status,
        StatusCode::FOUND
    );
    let first = browser.session().cloned().unwrap();
    let token = app.store.token(&first).await.unwrap();
    assert_eq!(app.store.count(), 1);

    // The same callback again (the same state and code), from the same browser without its session: the attempt
    // is spent.
    let mut again = browser.clone();
    again.forget_session();
    let replay = again.page(callback.as_str()).await;
    assert_eq!(replay.status, BAD, "{}", replay.body);
    assert_eq!(replay.reason(), Some("unknown_state"));
    assert!(
        replay.body.contains("expired, was already used"),
        "{}",
        replay.body
    );
    assert!(again.session().is_none() && !replay.sets_cookie("idgate_session"));
    assert_eq!(app.store.count(), 1, "only the first sign-in's session");

    // The same code under a fresh attempt of this browser: Google refuses a used code (and revokes what it issued
    // the first time, RFC 6749 §4.1.2); no session.
    let fresh = again.login("/books").await;
    let fresh_back = google.consent(&fresh, ALICE);
    let code = param(callback.as_str(), "code").unwrap();
    let bent = with_param(fresh_back.as_str(), "code", Some(&code));
    let replay = again.page(&bent).await;
    assert_eq!(replay.status, BAD, "{}", replay.body);
    assert_eq!(replay.reason(), Some("token_rejected"));
    assert!(again.session().is_none() && !replay.sets_cookie("idgate_session"));
    assert_eq!(app.store.count(), 1);
    assert!(
        google.emu.is_revoked(&token),
        "Google revoked the replayed code's grant"
    );

    // A callback for an attempt another browser started (login CSRF): refused, and the attempt is spent.
    let mut victim = app.browser();
    let mut attacker = app.browser();
    let authorization = attacker.login("/").await;
    let callback = google.consent(&authorization, "mallory@gmail.com");
    let answer = victim.page(callback.as_str()).await;
    assert_eq!(answer.status, BAD);
    assert_eq!(answer.reason(), Some("attempt_not_bound"));
    assert!(victim.session().is_none() && !answer.sets_cookie("idgate_session"));
    let answer = attacker.page(callback.as_str()).await;
    assert_eq!(answer.status, BAD, "spent");
    assert_eq!(answer.reason(), Some("unknown_state"));
    assert_eq!(app.store.count(), 1);
}

/// ID tokens Google would never mint, handed over by a token endpoint that is not Google (see
/// `common::Tampering`): the verifier and the flow checks refuse each.
#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let google = Google::start().await;
    let tampering = Tampering::start(&google).await;
    let mut endpoints = google.endpoints();
    endpoints.token = tampering.url.clone();

    fn set(mut claims: Map<String, Value>, name: &str, value: Value) -> Map<String, Value> {
        claims.insert(name.to_owned(), value);
        claims
    }
    type Forge = fn(Map<String, Value>) -> TokenSpec;
    let cases: Vec<(&str, bool, Forge, StatusCode, &str)> = vec![
        (
            "untouched (the control)",
            false,
            respec,
            StatusCode::FOUND,
            "",
        ),
        (
            "legacy issuer form accounts.google.com",
            false,
            |c| respec(set(c, "iss", json!("accounts.google.com"))),
            StatusCode::FOUND,
            "",
        ),
        (
            "aud of another client",
            false,
            |c| respec(set(c, "aud", json!("999-other.apps.googleusercontent.com"))),
            BAD,
            "invalid_id_token",
        ),
        (
            "azp of another client",
            false,
            |c| respec(set(c, "azp", json!("999-other.apps.googleusercontent.com"))),
            BAD,
            "wrong_azp",
        ),
        (
            "nonce of another attempt",
            false,
            |c| respec(set(c, "nonce", json!("not-the-attempts"))),
            BAD,
            "nonce_mismatch",
        ),
        (
            "no nonce",
            false,
            |mut c| {
                c.remove("nonce");
                respec(c)
            },
            BAD,
            "nonce_mismatch",
        ),
        (
            "email_verified false",
            false,
            |c| respec(set(c, "email_verified", json!(false))),
            BAD,
            "invalid_id_token",
        ),
        (
            "email_verified as a string",
            false,
            |c| respec(set(c, "email_verified", json!("true"))),
            BAD,
            "invalid_id_token",
        ),
        (
            "expired",
            false,
            |c| {
                let past = c["iat"].as_i64().unwrap() - 7200;
                respec(set(set(c, "iat", json!(past)), "exp", json!(past + 3600)))
            },
            BAD,
            "invalid_id_token",
        ),
        (
            "forged signature",
            false,
            |c| respec(c).tampered_signature(),
            BAD,
            "invalid_id_token",
        ),
        (
            "signed with an unknown key",
            false,
            |c| respec(c).unknown_key(),
            BAD,
            "invalid_id_token",
        ),
        (
            "alg none",
            false,
            |c| respec(c).alg_none(),
            BAD,
            "invalid_id_token",
        ),
        (
            "another issuer",
            false,
            |c| respec(set(c, "iss", json!("https://evil.example"))),
            BAD,
            "invalid_id_token",
        ),
        (
            "hd of another domain (hd required)",
            true,
            |c| respec(set(c, "hd", json!("evil.example"))),
            BAD,
            "wrong_hd",
        ),
        (
            "no hd (hd required)",
            true,
            |mut c| {
                c.remove("hd");
                respec(c)
            },
            BAD,
            "wrong_hd",
        ),
        (
            "a service account, not a person",
            false,
            |c| {
                respec(set(
                    set(c, "email", json!("svc@p.iam.gserviceaccount.com")),
                    "hd",
                    json!("example.com"),
                ))
            },
            FORBIDDEN,
            "not_a_user",
        ),
    ];
    for (name, hd, forge, status, reason) in cases {
        let app = App::serve_with(&google, Public::Loopback, endpoints.clone(), |b| {
            if hd {
                b.hosted_domain("example.com")
            } else {
                b
            }
        })
        .await;
        tampering.forge(forge);
        let mut browser = app.browser();
        let answer = browser.sign_in(&google, "/books", ALICE).await;
        if status == StatusCode::FOUND {
            assert_eq!(answer.status, status, "{name}: {}", answer.body);
            assert_eq!(
                browser.page("/books").await.status,
                StatusCode::OK,
                "{name}"
            );
        } else {
            assert_refused(name, &app, &browser, &answer, status, reason);
        }
        eprintln!("{name:<70} -> {} {reason}", answer.status.as_u16());
    }
}

#[tokio::test]
async fn tampered_and_expired_session_cookies_are_signed_out() {
    let google = Google::start().await;
    let clock = ManualClock::starting_now();
    let app = App::serve_on_clock(&google, &clock, |b| b).await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", ALICE).await;
    let id = browser.session().cloned().unwrap();

    // Tampered: one character changed, a character appended, garbage, empty, far too long.
    for tampered in [
        {
            let mut v = id.clone();
            v.replace_range(0..1, if v.starts_with('A') { "B" } else { "A" });
            v
        },
        format!("{id}A"),
        "../../etc/passwd".to_owned(),
        String::new(),
        "A".repeat(4000),
    ] {
        let mut forger = app.browser();
        forger.set_session(&tampered);
        let page = forger.page("/books").await;
        assert_eq!(page.status, StatusCode::FOUND, "{tampered:.40}");
        assert!(page.location().starts_with("/auth/login?return_to="));
        let api = forger
            .send(Method::GET, "/books", &[("accept", "application/json")])
            .await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{tampered:.40}");
        assert!(!api.sets_cookie("idgate_session") && !page.sets_cookie("idgate_session"));
    }
    assert_eq!(app.store.count(), 1, "only the real session");
    assert_eq!(browser.page("/books").await.status, StatusCode::OK);

    // Expired: past the idle timeout the cookie names a session that has ended; the server deletes it.
    clock.advance(Duration::from_secs(601));
    let page = browser.page("/books").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(app.store.count(), 0);
    assert!(app.store.session(&id).await.is_none());
    // Presenting it again changes nothing.
    let mut replay = app.browser();
    replay.set_session(&id);
    assert_eq!(replay.page("/books").await.status, StatusCode::FOUND);
    assert_eq!(app.store.count(), 0);
}

#[tokio::test]
async fn logout_only_by_a_same_site_post() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", ALICE).await;
    let id = browser.session().cloned().unwrap();
    let token = app.store.token(&id).await.unwrap();

    // A link or an image on another site (GET): 405, still signed in.
    let by_get = browser
        .send(
            Method::GET,
            "/auth/logout",
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(by_get.status, StatusCode::METHOD_NOT_ALLOWED);
    // A cross-site form POST (a browser that sent the cookie anyway): 403, still signed in, nothing revoked.
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[][..],
    ] {
        let refused = browser.send(Method::POST, "/auth/logout", headers).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(refused.reason(), Some("cross_site_logout"), "{headers:?}");
        assert!(refused.headers.get("clear-site-data").is_none());
    }
    assert_eq!(
        browser.page("/books").await.status,
        StatusCode::OK,
        "still signed in"
    );
    assert!(app.store.session(&id).await.is_some());
    assert!(!google.emu.is_revoked(&token));
}

/// The open-redirect corpus through `/auth/login?return_to=`: after sign-in, every one lands on `/`.
#[tokio::test]
async fn the_return_url_never_leaves_the_site() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let hostile = [
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
        "HTTPS://evil.com",
        "https:evil.com",
        "evil.com",
        "%2F%2Fevil.com",
        "%2f%2fevil.com",
        "/%2F/evil.com",
        "/%2F%2Fevil.com",
        "%252F%252Fevil.com",
        "/%252F/evil.com",
        "/%25252F/evil.com",
        "/%5Cevil.com",
        "/%5cevil.com",
        "/%255Cevil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "javascript%3Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "/\t/evil.com",
        "/%09/evil.com",
        "/\r\nLocation: https://evil.com",
        "/%0d%0aSet-Cookie:%20x=1",
        "/%0D%0ALocation:%20https://evil.com",
        "/\u{3000}/evil.com",
        "/%E3%80%80/evil.com",
        " //evil.com",
        "",
    ];
    for return_to in hostile {
        let mut browser = app.browser();
        let back = browser.sign_in(&google, return_to, ALICE).await;
        assert_eq!(
            back.status,
            StatusCode::FOUND,
            "{return_to:?}: {}",
            back.body
        );
        assert_eq!(back.location(), "/", "{return_to:?}");
    }
    // The raw query, not only its decoded value: a return_to given twice, or double-encoded in the query itself.
    for query in [
        "return_to=%2Fbooks&return_to=%2F%2Fevil.com",
        "return_to=%252F%252Fevil.com",
    ] {
        let mut browser = app.browser();
        let login = browser.page(&format!("/auth/login?{query}")).await;
        let back = browser
            .page(google.consent(login.location(), ALICE).as_str())
            .await;
        assert_eq!(back.location(), "/", "{query}");
    }
    // A same-site path survives, query and all.
    let mut browser = app.browser();
    let back = browser
        .sign_in(&google, "/books?page=2&q=a%2Fb", ALICE)
        .await;
    assert_eq!(back.location(), "/books?page=2&q=a%2Fb");
}

/// A signed-out page navigation is sent to sign in; anything a script sends gets 401, never a redirect.
#[tokio::test]
async fn navigations_are_redirected_and_scripts_get_401() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut browser = app.browser();
    for headers in [
        &[("accept", "text/html")][..],
        &[(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )][..],
        &[("sec-fetch-mode", "navigate"), ("accept", "*/*")][..],
    ] {
        let answer = browser.send(Method::GET, "/books?page=2", headers).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{headers:?}");
        assert_eq!(
            answer.location(),
            "/auth/login?return_to=%2Fbooks%3Fpage%3D2",
            "{headers:?}"
        );
    }
    for headers in [
        &[("accept", "application/json")][..],
        &[("sec-fetch-mode", "cors")][..],
        &[("sec-fetch-mode", "cors"), ("accept", "text/html")][..],
        &[("sec-fetch-mode", "no-cors"), ("accept", "text/html")][..],
        &[("x-requested-with", "XMLHttpRequest")][..],
        &[][..],
    ] {
        let answer = browser.send(Method::GET, "/books", headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(
            answer.location().is_empty(),
            "{headers:?}: never a redirect"
        );
        assert!(!answer.sets_cookie("idgate_session"));
    }
    let json = browser
        .send(Method::GET, "/books", &[("accept", "application/json")])
        .await;
    assert_eq!(json.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(body["error"], "sign_in_required");
    // A signed-out visitor never gets a session by being turned away.
    assert_eq!(app.store.count(), 0);
}

/// A session store whose reads, once armed, take their record at once and then wait until the test releases them
/// one by one (in the order they began): a store across a network, with the interleaving chosen by the test.
#[derive(Clone, Debug, Default)]
struct GatedStore {
    inner: common::Store,
    armed: Arc<std::sync::atomic::AtomicBool>,
    parked: Arc<std::sync::atomic::AtomicUsize>,
    released: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl tower_sessions::SessionStore for GatedStore {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.inner.create(record).await
    }
    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.inner.save(record).await
    }
    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        use std::sync::atomic::Ordering::SeqCst;
        let loaded = self.inner.load(id).await;
        if self.armed.load(SeqCst) {
            let turn = self.parked.fetch_add(1, SeqCst);
            while self.released.load(SeqCst) <= turn {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        loaded
    }
    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        self.inner.delete(id).await
    }
}

impl GatedStore {
    async fn wait_parked(&self, n: usize) {
        while self.parked.load(std::sync::atomic::Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn release(&self, n: usize) {
        self.released.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A request of the same session in flight while it logs out (a page's background fetch, a second tab) read the
/// store before the logout deleted the session and finishes after it: the process's copy of the user it made must
/// not answer the ended session's cookie (a copy of it in a thief's hands) afterwards.
#[tokio::test]
async fn a_request_in_flight_at_logout_leaves_no_copy_of_the_user() {
    let google = Google::start().await;
    let store = GatedStore::default();
    let app = App::serve(&google, Public::Loopback, |b| b.store(store.clone())).await;
    let mut browser = app.browser();
    browser.sign_in(&google, "/", ALICE).await;
    let id = browser.session().cloned().unwrap();

    store.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut out, origin) = (browser.clone(), app.origin.clone());
    let logout = tokio::spawn(async move { out.logout(Some(&origin)).await });
    store.wait_parked(1).await;
    let mut tab = browser.clone();
    let in_flight = tokio::spawn(async move { tab.page("/books").await });
    store.wait_parked(2).await;
    // The logout reads the session's token, forgets it and deletes it; only then does the other request go on.
    store.release(1);
    assert_eq!(logout.await.unwrap().status, StatusCode::SEE_OTHER);
    assert!(app.store.session(&id).await.is_none());
    store.release(2);
    // Its store read finished after the logout: the session had ended by the time it was answered.
    assert_eq!(in_flight.await.unwrap().status, StatusCode::FOUND);
    store
        .armed
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let mut thief = app.browser();
    thief.set_session(&id);
    let page = thief.page("/books").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(page.location().starts_with("/auth/login?return_to="));
}

/// Someone holding a user's Google account (a stolen laptop) signs in once, keeps that session, then signs in a few
/// hundred times more so that the first falls out of the user's session index. When the user then signs out
/// everywhere, no session may survive: one pushed out of the index is ended, not forgotten.
#[tokio::test]
async fn no_session_escapes_sign_out_everywhere_by_signing_in_many_times() {
    let google = Google::start().await;
    let app = App::serve(&google, Public::Loopback, |b| b).await;
    let mut kept = app.browser();
    kept.sign_in(&google, "/books", ALICE).await;
    assert_eq!(kept.page("/books").await.status, StatusCode::OK);
    let mut last = app.browser();
    for _ in 0..300 {
        last = app.browser();
        let signed_in = last.sign_in(&google, "/books", ALICE).await;
        assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    }
    let origin = app.origin.clone();
    let out = last
        .send(
            Method::POST,
            "/auth/logout?everywhere=1",
            &[("origin", origin.as_str())],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let after = kept.page("/books").await;
    assert_ne!(
        after.status,
        StatusCode::OK,
        "the first session survived sign out everywhere: {}",
        after.body
    );
    assert_eq!(app.store.count(), 0, "every session of the user ended");
}
