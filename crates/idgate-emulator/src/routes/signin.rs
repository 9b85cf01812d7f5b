//! Sign in with Google over HTTP: the authorization endpoint and its account chooser, the `authorization_code`
//! grant of `/token`, userinfo, revoke, and the test users' pictures. The flow's state and rules are in
//! `signin.rs`; Google's wire formats, with sources, in `docs/google-signin.md`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use url::Url;

use super::oauth::{api_error, bearer_token, json_response};
use crate::access::{ACCESS_TOKEN_LIFETIME_SECS, UserGrant};
use crate::error::EmulatorError;
use crate::signin::{
    ChallengeMethod, Pending, Refusal, TestUser, USERINFO_EMAIL_SCOPE, USERINFO_PROFILE_SCOPE,
    random_token, valid_pkce_string,
};
use crate::state::{AccessTokenRecord, Route, Shared, lock, write};
use crate::token::{TokenSpec, unix_now};

/// Where the account chooser's forms post.
pub(crate) const CHOOSER_PATH: &str = "/o/oauth2/v2/auth/oauthchooseaccount";

/// `&`, `<`, `>`, `"` and `'` as character references: safe in text and in double- or single-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML answer that no other page may frame, no cache may keep, and that runs no script.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src * data:"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const STYLE: &str = "body{font-family:Roboto,Arial,sans-serif;margin:2em auto;max-width:32em;color:#202124}\
    li{list-style:none;display:flex;align-items:center;gap:.75em;margin:.5em 0}\
    li img{width:32px;height:32px;border-radius:50%}\
    .hinted{font-weight:bold}button{cursor:pointer}";

/// Google's "Authorization Error" page: no redirect, the error code and its explanation.
fn error_page(status: u16, error: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let code = status.as_u16();
    let error = escape(error);
    let description = escape(description);
    html(
        status,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Error {code}: {error}</title>\
             <style>{STYLE}</style></head>\n<body>\n<main id=\"error\" data-error=\"{error}\">\n\
             <h1>Access blocked: Authorization Error</h1>\n<p id=\"error-description\">{description}</p>\n\
             <p id=\"error-code\">Error {code}: {error}</p>\n</main>\n</body>\n</html>\n"
        ),
    )
}

/// `302 Found` to `url`.
fn redirect(url: &Url) -> Response {
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => error_page(500, "internal_failure", "The redirect URI cannot be sent."),
    }
}

/// The account chooser: one form per test user, a "Deny" form; each carries only the opaque `request` ID.
fn chooser_page(shared: &Shared, request_id: &str, pending: &Pending) -> Response {
    let mut users = lock(&shared.signin).users.clone();
    let hinted = |u: &TestUser| {
        pending
            .login_hint
            .as_deref()
            .is_some_and(|h| h == u.email || h == u.sub)
    };
    // The hinted user first, then the users of the `hd` domain, then the rest (a stable sort keeps the order).
    users.sort_by_key(|u| {
        (
            !hinted(u),
            pending.hd.is_some() && pending.hd.as_deref() != u.hosted_domain.as_deref(),
        )
    });
    let request = escape(request_id);
    let mut items = String::new();
    for user in &users {
        let email = escape(&user.email);
        let (class, autofocus) = if hinted(user) {
            (" hinted", " autofocus")
        } else {
            ("", "")
        };
        let _ = writeln!(
            items,
            "<li class=\"account{class}\" data-email=\"{email}\">\
             <img src=\"{picture}\" alt=\"\"><span class=\"name\">{name}</span>\
             <form method=\"post\" action=\"{CHOOSER_PATH}\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"email\" value=\"{email}\">\
             <button type=\"submit\" id=\"choose-{email}\" data-email=\"{email}\"{autofocus}>{email}</button>\
             </form></li>",
            picture = escape(&user.picture),
            name = escape(&user.name),
        );
    }
    let hint = pending.login_hint.as_deref().map_or_else(String::new, |h| {
        format!(
            "<p id=\"login-hint\">Suggested account: {}</p>\n",
            escape(h)
        )
    });
    let client = escape(&pending.client_id);
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
             <title>Sign in - Google Accounts</title><style>{STYLE}</style></head>\n<body>\n\
             <main id=\"account-chooser\" data-client-id=\"{client}\">\n<h1>Choose an account</h1>\n\
             <p>to continue to <span id=\"client-id\">{client}</span></p>\n{hint}<ul id=\"accounts\">\n{items}</ul>\n\
             <form method=\"post\" action=\"{CHOOSER_PATH}\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"action\" value=\"deny\">\
             <button type=\"submit\" id=\"deny\">Deny</button></form>\n</main>\n</body>\n</html>\n"
        ),
    )
}

/// `GET /o/oauth2/v2/auth`: Google's authorization endpoint. A valid request gets the account chooser (or, with
/// `prompt=none`, a redirect at once); a request from an unknown client or to an unregistered redirect URI gets
/// an error page, never a redirect.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = shared.enter(Route::Authorization).await {
        return r;
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let pending = match shared.authorization_request(&query) {
        Ok(pending) => pending,
        Err(Refusal::Redirect(url)) => return redirect(&url),
        Err(Refusal::Page {
            status,
            error,
            description,
        }) => return error_page(status, error, &description),
    };
    if pending.prompt_none {
        return match shared.silent(pending) {
            Ok(url) => redirect(&url),
            Err(e) => error_page(500, "internal_failure", &e.to_string()),
        };
    }
    match shared.hold_pending(pending.clone()) {
        Ok(id) => chooser_page(&shared, &id, &pending),
        Err(e) => error_page(500, "internal_failure", &e.to_string()),
    }
}

/// `POST /o/oauth2/v2/auth/oauthchooseaccount`: `request=ID&email=E` (a user chosen: consent, a code) or
/// `request=ID&action=deny`. Each request ID answers once.
pub(crate) async fn choose(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(r) = shared.enter(Route::AccountChooser).await {
        return r;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(pending) = form.get("request").and_then(|id| shared.take_pending(id)) else {
        return error_page(
            400,
            "invalid_request",
            "This sign-in request has expired or was already answered. Go back to the app and sign in again.",
        );
    };
    if form.get("action").map(String::as_str) == Some("deny") {
        return redirect(&shared.deny_with(&pending, "access_denied"));
    }
    let email = form.get("email").map(String::as_str).unwrap_or_default();
    match shared.complete(pending, email) {
        Ok(url) => redirect(&url),
        Err(EmulatorError::UnknownUser(_)) => {
            error_page(400, "invalid_request", "No such account.")
        }
        Err(e) => error_page(500, "internal_failure", &e.to_string()),
    }
}

/// `{"error": .., "error_description": ..}` with `status`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, each part form-urlencoded, RFC 6749 §2.3.1) or
/// the form's `client_id` / `client_secret` (`client_secret_post`); Google accepts both. Basic and a different
/// form `client_id` together are refused.
pub(super) fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, Option<String>), Box<Response>> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| {
            STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|text| {
                    text.split_once(':')
                        .map(|(id, secret)| (form_decode(id), form_decode(secret)))
                })
        });
    match basic {
        Some(None) => Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ))),
        Some(Some((id, secret))) => match form.get("client_id") {
            Some(form_id) if form_id != &id => Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Client authentication with more than one client ID.",
            ))),
            _ => Ok((id, Some(secret))),
        },
        None => match form.get("client_id").filter(|c| !c.is_empty()) {
            Some(id) => Ok((id.clone(), form.get("client_secret").cloned())),
            None => Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Could not determine client ID from request.",
            ))),
        },
    }
}

/// One form-urlencoded component, decoded (`+` is a space).
fn form_decode(s: &str) -> String {
    if s.contains(['&', '=']) {
        return s.to_owned();
    }
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// `at_hash`: the left half of the access token's SHA-256, base64url (OpenID Connect Core §3.1.3.6).
fn at_hash(access_token: &str) -> String {
    let d = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// The ID token Google issues to `client_id` for `user`: `iss`, `azp` = `aud` = the client, `sub`, `at_hash`,
/// `hd` for a Workspace account, `email` and `email_verified` with the `email` scope, `name`, `given_name`,
/// `family_name` and `picture` with `profile`, `nonce` when the authorization request had one, an hour's life.
pub(super) fn user_id_token(
    shared: &Shared,
    user: &TestUser,
    client_id: &str,
    scopes: &BTreeSet<String>,
    nonce: Option<&str>,
    access_token: &str,
) -> Result<String, EmulatorError> {
    let mut spec = TokenSpec::service_account(&user.email)
        .audience(client_id)
        .claim("azp", client_id)
        .claim("sub", user.sub.as_str())
        .claim("at_hash", at_hash(access_token));
    if scopes.contains(USERINFO_EMAIL_SCOPE) {
        spec = spec.email_verified(user.email_verified);
    } else {
        spec = spec.without_claim("email").without_claim("email_verified");
    }
    if scopes.contains(USERINFO_PROFILE_SCOPE) {
        for (claim, value) in profile_claims(user) {
            spec = spec.claim(claim, value);
        }
    }
    if let Some(hd) = &user.hosted_domain {
        spec = spec.hosted_domain(hd.as_str());
    }
    if let Some(nonce) = nonce {
        spec = spec.claim("nonce", nonce);
    }
    shared.mint(&spec)
}

/// The `profile` scope's claims that the user has (an empty family name is left out, as Google does).
fn profile_claims(user: &TestUser) -> Vec<(&'static str, String)> {
    [
        ("name", &user.name),
        ("given_name", &user.given_name),
        ("family_name", &user.family_name),
        ("picture", &user.picture),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.clone()))
    .collect()
}

/// `grant_type=authorization_code`: `code`, `redirect_uri`, the client's credentials, `code_verifier` when the
/// authorization request had a `code_challenge`. The code answers once, for its client and redirect URI, within
/// its lifetime; once the right client presents it, any failure uses it up; a second exchange revokes what the
/// first one issued (RFC 6749 §4.1.2).
pub(super) fn authorization_code_grant(
    shared: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let (client_id, secret) = match client_credentials(headers, form) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(client) = lock(&shared.signin).clients.get(&client_id).cloned() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    };
    if secret.as_deref() != Some(client.client_secret()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: code",
        );
    };
    let invalid_grant =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    // Check and use the code under one lock, so two concurrent exchanges cannot both win.
    let (pending, user, consent_shown) = {
        let mut signin = lock(&shared.signin);
        let Some(record) = signin.codes.get_mut(code.as_str()) else {
            return invalid_grant("Malformed auth code.");
        };
        if record.expires_at <= unix_now() || record.pending.client_id != client_id {
            return invalid_grant("Bad Request");
        }
        if record.used {
            let issued = std::mem::take(&mut record.issued);
            drop(signin);
            shared.revoke_exactly(&issued);
            return invalid_grant("Bad Request");
        }
        record.used = true;
        match form.get("redirect_uri") {
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing parameter: redirect_uri",
                );
            }
            Some(r) if r != &record.pending.redirect_uri_text => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "redirect_uri_mismatch",
                    "Bad Request",
                );
            }
            Some(_) => {}
        }
        let verifier = form.get("code_verifier");
        match (&record.pending.challenge, verifier) {
            (None, None) => {}
            (Some(_), None) => return invalid_grant("Missing code verifier."),
            // A verifier without a challenge: refused, so that a request stripped of its challenge cannot pass.
            (None, Some(_)) => return invalid_grant("Invalid code verifier."),
            (Some((challenge, method)), Some(verifier)) => {
                let derived = match method {
                    ChallengeMethod::Plain => verifier.clone(),
                    ChallengeMethod::S256 => {
                        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
                    }
                };
                if !valid_pkce_string(verifier) || &derived != challenge {
                    return invalid_grant("Invalid code verifier.");
                }
            }
        }
        let email = record.email.clone();
        let (pending, consent_shown) = (record.pending.clone(), record.consent_shown);
        let Some(user) = signin.user(&email).cloned() else {
            return invalid_grant("Bad Request");
        };
        (pending, user, consent_shown)
    };
    let record = AccessTokenRecord {
        email: user.email.clone(),
        subject: None,
        client_id: client_id.clone(),
        scopes: pending.scopes.clone(),
        expires_at: unix_now() + ACCESS_TOKEN_LIFETIME_SECS,
    };
    let access_token = match shared.issue_access_token(record) {
        Ok(t) => t,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut issued = vec![access_token.clone()];
    let mut body = json!({
        "access_token": access_token,
        "expires_in": ACCESS_TOKEN_LIFETIME_SECS,
        "scope": pending.scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" "),
        "token_type": "Bearer",
    });
    if pending.offline && consent_shown {
        let refresh_token = match random_token::<72>() {
            Ok(t) => format!("1//0{t}"),
            Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        write(&shared.grants).refresh_tokens.insert(
            refresh_token.clone(),
            UserGrant {
                email: user.email.clone(),
                client_id: client_id.clone(),
                client_secret: client.client_secret().to_owned(),
                scopes: pending.scopes.clone(),
            },
        );
        issued.push(refresh_token.clone());
        body["refresh_token"] = json!(refresh_token);
    }
    if pending.scopes.contains("openid") {
        match user_id_token(
            shared,
            &user,
            &client_id,
            &pending.scopes,
            pending.nonce.as_deref(),
            &access_token,
        ) {
            Ok(id_token) => body["id_token"] = json!(id_token),
            Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    if let Some(record) = lock(&shared.signin).codes.get_mut(code.as_str()) {
        record.issued = issued;
    }
    json_response(StatusCode::OK, &body)
}

/// Google's 401 for userinfo without a valid token: `WWW-Authenticate` and `invalid_request`.
fn userinfo_unauthorized() -> Response {
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request",
        "Invalid Credentials",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
        ),
    );
    response
}

/// `GET /v1/userinfo` with `Authorization: Bearer` an access token granting `openid`, `email` or `profile`:
/// `sub`, plus `email`/`email_verified` (email scope), `name`/`given_name`/`family_name`/`picture` (profile
/// scope) and `hd` (a Workspace account). Anything else: 401.
pub(crate) async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(r) = shared.enter(Route::UserInfo).await {
        return r;
    }
    let Some(record) = bearer_token(&headers).and_then(|t| shared.live_access_token(t)) else {
        return userinfo_unauthorized();
    };
    if !record.has_any_scope(&["openid", USERINFO_EMAIL_SCOPE, USERINFO_PROFILE_SCOPE]) {
        return userinfo_unauthorized();
    }
    let email = record.acting_as().to_owned();
    let user = lock(&shared.signin).user(&email).cloned();
    let mut body = Map::new();
    let (sub, verified) = user.as_ref().map_or_else(
        || (crate::token::numeric_id(&email), true),
        |u| (u.sub.clone(), u.email_verified),
    );
    body.insert("sub".into(), json!(sub));
    if let Some(user) = user
        .as_ref()
        .filter(|_| record.scopes.contains(USERINFO_PROFILE_SCOPE))
    {
        for (claim, value) in profile_claims(user) {
            body.insert(claim.into(), json!(value));
        }
    }
    if record.scopes.contains(USERINFO_EMAIL_SCOPE) {
        body.insert("email".into(), json!(email));
        body.insert("email_verified".into(), json!(verified));
    }
    if let Some(hd) = user.as_ref().and_then(|u| u.hosted_domain.as_ref()) {
        body.insert("hd".into(), json!(hd));
    }
    json_response(StatusCode::OK, &Value::Object(body))
}

/// `POST /revoke` with `token=` (form body, or the query as Google's examples send it): `200 {}`; an unknown,
/// expired or already revoked token: `400 invalid_token`.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(r) = shared.enter(Route::Revoke).await {
        return r;
    }
    let find = |bytes: &[u8]| {
        url::form_urlencoded::parse(bytes)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    };
    let token = find(&body).or_else(|| query.as_deref().and_then(|q| find(q.as_bytes())));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token",
        );
    };
    if shared.revoke(&token) {
        json_response(StatusCode::OK, &json!({}))
    } else {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        )
    }
}

/// `GET /picture/{sub}`: the test user's picture, a coloured disc with the first letter of the name (SVG).
pub(crate) async fn picture(
    State(shared): State<Arc<Shared>>,
    Path(sub): Path<String>,
) -> Response {
    if let Some(r) = shared.enter(Route::UserPicture).await {
        return r;
    }
    let Some(user) = lock(&shared.signin)
        .users
        .iter()
        .find(|u| u.sub == sub)
        .cloned()
    else {
        return super::not_found().await.into_response();
    };
    let initial = user
        .name
        .chars()
        .next()
        .map(|c| escape(&c.to_uppercase().to_string()))
        .unwrap_or_default();
    let hue = digest::digest(&digest::SHA256, user.sub.as_bytes()).as_ref()[0];
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"96\" height=\"96\" viewBox=\"0 0 96 96\">\
         <circle cx=\"48\" cy=\"48\" r=\"48\" fill=\"hsl({hue},55%,45%)\"/>\
         <text x=\"48\" y=\"62\" font-family=\"Arial,sans-serif\" font-size=\"44\" fill=\"#fff\" \
         text-anchor=\"middle\">{initial}</text></svg>",
        hue = u32::from(hue) * 360 / 256,
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        svg,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_every_markup_character() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // Computed independently: base64url(hashlib.sha256(b"ya29.test").digest()[:16]) in Python.
        assert_eq!(at_hash("ya29.test"), "aSdJ7MdVo2Jhvpu2rDw_yg");
    }
}
