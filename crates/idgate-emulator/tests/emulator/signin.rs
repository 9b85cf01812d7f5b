//! Sign in with Google (issue #14): the authorization endpoint and its account chooser, the code exchange, refresh,
//! userinfo, revoke and discovery, each refusal in Google's shape.

use std::collections::HashMap;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_emulator::{
    Emulator, EmulatorError, Fault, GOOGLE_ISSUER, OAuthClient, Route, USERINFO_EMAIL_SCOPE,
    USERINFO_PROFILE_SCOPE, UserSpec,
};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::helpers::{emulator, get_json, parts, post_token, verify};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:8080/auth/callback";
pub(crate) const VERIFIER: &str =
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-idgate-test-verifier";
pub(crate) const ALICE: &str = "alice@example.com";

pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// An authorization request as the sign-in layer sends one: code flow, PKCE S256, state, nonce, and `extra`.
pub(crate) fn auth_url(emu: &Emulator, client: &OAuthClient, extra: &[(&str, &str)]) -> Url {
    let mut url = emu.authorization_url();
    url.query_pairs_mut()
        .append_pair("client_id", client.client_id())
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", "st-123")
        .append_pair("nonce", "n-456")
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url
}

pub(crate) fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the first `name="NAME" value="…"` in a page.
pub(crate) fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).expect("hidden field") + marker.len();
    page[start..][..page[start..].find('"').unwrap()].to_owned()
}

pub(crate) async fn exchange(
    emu: &Emulator,
    client: &OAuthClient,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    post_token(
        emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub(crate) async fn code_for(
    emu: &Emulator,
    client: &OAuthClient,
    extra: &[(&str, &str)],
) -> String {
    let back = emu.consent(&auth_url(emu, client, extra), ALICE).unwrap();
    query(&back)["code"].clone()
}

pub(crate) fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    pairs.push((name.to_owned(), value.to_owned()));
    let mut url = url.clone();
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    url
}

pub(crate) fn without_param(url: &Url, name: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    url
}

#[tokio::test]
async fn the_whole_flow_through_the_account_chooser_page() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = no_redirects();

    // The chooser lists every default user, each a form with the opaque request ID only.
    let url = auth_url(
        &emu,
        &client,
        &[("access_type", "offline"), ("login_hint", ALICE)],
    );
    let resp = http.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = resp.text().await.unwrap();
    for (email, _, _) in idgate_emulator::DEFAULT_USERS {
        assert!(
            page.contains(&format!(">{email}</button>"))
                && page.contains(&format!(
                    "<button type=\"submit\" id=\"choose-{email}\" data-email=\"{email}\""
                )),
            "{page}"
        );
        assert!(page.contains(&format!("id=\"choose-{email}\"")));
    }
    assert!(page.contains("id=\"deny\""));
    assert!(
        !page.contains("st-123") && !page.contains(&challenge(VERIFIER)),
        "raw parameters leak into the page"
    );
    // login_hint puts its user first, focused.
    let first = page.find("data-email=\"").unwrap();
    assert!(page[first..].starts_with(&format!("data-email=\"{ALICE}\"")));
    assert!(page.contains("autofocus>alice@example.com</button>"));

    let request = hidden(&page, "request");
    let resp = http
        .post(emu.url(Route::AccountChooser))
        .form(&[("request", request.as_str()), ("email", ALICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(&back[..url::Position::AfterPath], REDIRECT);
    let keys: Vec<String> = back.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        keys,
        ["state", "iss", "code", "scope", "authuser", "hd", "prompt"]
    );
    let q = query(&back);
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], GOOGLE_ISSUER);
    assert!(q["code"].starts_with("4/0A"));
    assert_eq!(
        q["scope"],
        format!("email profile {USERINFO_EMAIL_SCOPE} {USERINFO_PROFILE_SCOPE} openid")
    );
    assert_eq!(q["authuser"], "0");
    assert_eq!(q["hd"], "example.com");
    assert_eq!(q["prompt"], "consent");
    // The request ID answers once.
    let again = http
        .post(emu.url(Route::AccountChooser))
        .form(&[("request", request.as_str()), ("email", ALICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.headers().get("location").is_none());

    let (status, tokens) = exchange(&emu, &client, &q["code"], VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3599);
    assert_eq!(
        tokens["scope"],
        format!("{USERINFO_EMAIL_SCOPE} {USERINFO_PROFILE_SCOPE} openid")
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("1//0")
    );
    let access_token = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verify(
        emu.oidc_jwks_url(),
        id_token,
        client.client_id(),
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    let alice = emu
        .users()
        .into_iter()
        .find(|u| u.email() == ALICE)
        .unwrap();
    assert_eq!(claims["azp"], client.client_id());
    assert_eq!(claims["sub"], alice.sub());
    assert_eq!(claims["email"], ALICE);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["hd"], "example.com");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["given_name"], "Alice");
    assert_eq!(claims["family_name"], "Liddell");
    assert_eq!(claims["picture"], alice.picture());
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let hash = digest::digest(&digest::SHA256, access_token.as_bytes());
    assert_eq!(
        claims["at_hash"],
        URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
    );
    let (header, _, _) = parts(id_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"].as_str(), emu.signing_oidc_kid().as_deref());

    // The access token is a user's token like any other: tokeninfo and userinfo know it.
    let info = emu.tokeninfo(access_token).unwrap();
    assert_eq!(info.email(), ALICE);
    let me: Value = reqwest::Client::new()
        .get(emu.userinfo_url())
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        serde_json::json!({
            "sub": alice.sub(), "email": ALICE, "email_verified": true, "name": "Alice Liddell",
            "given_name": "Alice", "family_name": "Liddell", "picture": alice.picture(), "hd": "example.com",
        })
    );
    // The picture is served.
    let picture = reqwest::get(alice.picture()).await.unwrap();
    assert_eq!(picture.headers()["content-type"], "image/svg+xml");
    assert!(picture.text().await.unwrap().contains(">A</text>"));

    for route in [
        Route::Authorization,
        Route::AccountChooser,
        Route::Token,
        Route::UserInfo,
        Route::UserPicture,
    ] {
        assert!(emu.hits(route) >= 1, "{route:?}");
    }
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirect_uris_get_an_error_page_never_a_redirect() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = no_redirects();
    let registered =
        emu.register_oauth_client("other.apps.googleusercontent.com", "s", &[REDIRECT]);
    assert_eq!(registered.client_secret(), "s");

    let mut unknown = auth_url(&emu, &client, &[]);
    let pairs: Vec<(String, String)> = unknown
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "client_id" {
                (k, "nobody.apps.googleusercontent.com".into())
            } else {
                (k, v)
            }
        })
        .collect();
    unknown.query_pairs_mut().clear().extend_pairs(&pairs);
    let cases: Vec<(Url, u16, &str)> = vec![
        (unknown, 401, "invalid_client"),
        (
            with_param(
                &auth_url(&emu, &client, &[]),
                "redirect_uri",
                "http://127.0.0.1:8080/auth/callback/",
            ),
            400,
            "redirect_uri_mismatch",
        ),
        (
            with_param(
                &auth_url(&emu, &client, &[]),
                "redirect_uri",
                "https://evil.example/cb",
            ),
            400,
            "redirect_uri_mismatch",
        ),
        (
            with_param(&auth_url(&emu, &client, &[]), "redirect_uri", ""),
            400,
            "invalid_request",
        ),
        (
            without_param(&auth_url(&emu, &client, &[]), "client_id"),
            400,
            "invalid_request",
        ),
        (
            without_param(&auth_url(&emu, &client, &[]), "scope"),
            400,
            "invalid_request",
        ),
        (
            with_param(&auth_url(&emu, &client, &[]), "scope", "openid not-a-scope"),
            400,
            "invalid_scope",
        ),
        (
            with_param(
                &auth_url(&emu, &client, &[]),
                "code_challenge_method",
                "S512",
            ),
            400,
            "invalid_request",
        ),
        (
            with_param(&auth_url(&emu, &client, &[]), "code_challenge", "short"),
            400,
            "invalid_request",
        ),
        (
            with_param(&auth_url(&emu, &client, &[]), "access_type", "forever"),
            400,
            "invalid_request",
        ),
        (
            with_param(&auth_url(&emu, &client, &[]), "prompt", "none consent"),
            400,
            "invalid_request",
        ),
        (
            auth_url(&emu, &client, &[("state", "again")]),
            400,
            "invalid_request",
        ),
    ];
    for (url, status, error) in cases {
        let resp = http.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{url}");
        assert!(resp.headers().get("location").is_none(), "{url}");
        let page = resp.text().await.unwrap();
        assert!(
            page.contains(&format!("data-error=\"{error}\"")),
            "{url}: {page}"
        );
        assert!(page.contains(&format!("Error {status}: {error}")));
        match emu.consent(&url, ALICE) {
            Err(EmulatorError::AuthorizationRefused {
                status: s,
                error: e,
                ..
            }) => {
                assert_eq!((s, e.as_str()), (status, error), "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
        assert!(matches!(
            emu.deny(&url),
            Err(EmulatorError::AuthorizationRefused { .. })
        ));
    }
}

#[tokio::test]
async fn deny_and_unsupported_response_types_redirect_with_an_error() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = no_redirects();

    let back = emu.deny(&auth_url(&emu, &client, &[])).unwrap();
    assert_eq!(
        back.as_str(),
        format!(
            "{REDIRECT}?error=access_denied&state=st-123&iss=https%3A%2F%2Faccounts.google.com"
        )
    );
    // The same through the page's deny button.
    let page = http
        .get(auth_url(&emu, &client, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = http
        .post(emu.url(Route::AccountChooser))
        .form(&[
            ("request", hidden(&page, "request").as_str()),
            ("action", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"].to_str().unwrap(), back.as_str());

    let token_flow = with_param(&auth_url(&emu, &client, &[]), "response_type", "token");
    let resp = http.get(token_flow.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query(&Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap());
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "st-123");
    assert!(!q.contains_key("code"));
    assert_eq!(
        query(&emu.consent(&token_flow, ALICE).unwrap())["error"],
        "unsupported_response_type"
    );

    // An unknown user cannot be chosen, not even by a tampered form.
    assert!(matches!(
        emu.consent(&auth_url(&emu, &client, &[]), "nobody@example.com"),
        Err(EmulatorError::UnknownUser(_))
    ));
    let page = http
        .get(auth_url(&emu, &client, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = http
        .post(emu.url(Route::AccountChooser))
        .form(&[
            ("request", hidden(&page, "request").as_str()),
            ("email", "nobody@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn hostile_strings_are_escaped_in_the_page() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    emu.add_user(
        UserSpec::new("x\"><script>alert(3)</script>@example.com")
            .name("<img src=x onerror=alert(4)>"),
    );
    let url = auth_url(
        &emu,
        &client,
        &[
            ("login_hint", "\"><script>alert(1)</script>"),
            ("hd", "'><svg onload=alert(2)>"),
        ],
    );
    let url = with_param(&url, "state", "<img src=x onerror=alert(5)>");
    let page = reqwest::get(url.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script"), "{page}");
    assert!(
        !page.contains("<img src=x") && !page.contains("<svg"),
        "{page}"
    );
    assert!(
        page.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("&lt;img src=x onerror=alert(4)&gt;"));
    // The state comes back verbatim in the redirect, percent-encoded there.
    let back = emu.consent(&url, ALICE).unwrap();
    assert_eq!(query(&back)["state"], "<img src=x onerror=alert(5)>");
    assert!(!back.as_str().contains('<'));
}

/// Anyone who can reach the emulator can open account choosers, each with a `state` of tens of kilobytes; the
/// emulator keeps them for an hour, so it forgets the oldest past its bounds instead of growing without limit. (Found
/// by an outsider's attack on the binary: 60 KB states grew it by 62 KB a request, past a gigabyte.)
#[tokio::test]
async fn a_flood_of_authorization_requests_forgets_the_oldest_instead_of_growing() {
    use futures_util::StreamExt as _;

    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = no_redirects();
    let chooser = |url: Url| {
        let http = http.clone();
        async move {
            let page = http.get(url).send().await.unwrap().text().await.unwrap();
            hidden(&page, "request")
        }
    };
    let choose = |request: String| {
        let http = http.clone();
        let url = emu.url(Route::AccountChooser);
        async move {
            http.post(url)
                .form(&[("request", request.as_str()), ("email", ALICE)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let first = chooser(auth_url(&emu, &client, &[])).await;
    // Enough 60 KB states to pass the byte bound.
    let big = auth_url(&emu, &client, &[]);
    let big = with_param(&big, "state", &"s".repeat(60 * 1024));
    let flood = idgate_emulator::MAX_PENDING_AUTHORIZATION_BYTES / (60 * 1024) + 20;
    let requests: Vec<String> = futures_util::stream::iter(0..flood)
        .map(|_| chooser(big.clone()))
        .buffered(8)
        .collect()
        .await;
    assert_eq!(
        choose(first).await,
        StatusCode::BAD_REQUEST,
        "the oldest was kept"
    );
    assert_eq!(
        choose(requests.last().unwrap().clone()).await,
        StatusCode::FOUND,
        "the newest was forgotten"
    );
}

#[tokio::test]
async fn prompt_none_answers_without_a_page() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = no_redirects();
    let silent = |hint: &str| auth_url(&emu, &client, &[("prompt", "none"), ("login_hint", hint)]);
    let location = |resp: reqwest::Response| {
        query(&Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap())
    };

    let q = location(http.get(silent(ALICE)).send().await.unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("consent_required", "st-123")
    );
    let q = location(http.get(silent("nobody@example.com")).send().await.unwrap());
    assert_eq!(q["error"], "login_required");
    let _ = code_for(&emu, &client, &[]).await; // Alice consents.
    let q = location(http.get(silent(ALICE)).send().await.unwrap());
    assert_eq!(q["prompt"], "none");
    assert_eq!(
        exchange(&emu, &client, &q["code"], VERIFIER).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn discovery_points_at_the_emulator_and_faults_play() {
    let emu = emulator().await;
    let doc = get_json(emu.openid_configuration_url()).await;
    assert_eq!(doc["issuer"], GOOGLE_ISSUER);
    assert_eq!(
        doc["authorization_endpoint"],
        emu.authorization_url().as_str()
    );
    assert_eq!(doc["token_endpoint"], emu.token_url().as_str());
    assert_eq!(doc["userinfo_endpoint"], emu.userinfo_url().as_str());
    assert_eq!(doc["revocation_endpoint"], emu.revoke_url().as_str());
    assert_eq!(doc["jwks_uri"], emu.oidc_jwks_url().as_str());
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["plain", "S256"])
    );

    let client = emu.create_oauth_client(&[REDIRECT]);
    emu.inject(Route::Authorization, Fault::Status(503), 1);
    let resp = no_redirects()
        .get(auth_url(&emu, &client, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.hits(Route::Authorization), 1);
    emu.inject(Route::UserInfo, Fault::Status(500), 1);
    let resp = reqwest::get(emu.userinfo_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "internal_failure"
    );
    // Every new route has a URL that answers.
    for route in [
        Route::Authorization,
        Route::AccountChooser,
        Route::UserInfo,
        Route::Revoke,
        Route::UserPicture,
    ] {
        assert!(emu.url(route).as_str().starts_with(emu.base_url().as_str()));
    }
    assert_eq!(
        reqwest::get(emu.url(Route::UserPicture))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert!(emu.remove_user(ALICE));
    assert!(!emu.remove_user(ALICE));
    assert_eq!(
        reqwest::get(emu.url(Route::UserPicture))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
