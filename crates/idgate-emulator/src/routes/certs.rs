//! Google's key endpoints and the OpenID discovery document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::state::{Route, Shared, read};
use crate::token::GOOGLE_ISSUER;

/// A JSON answer with Google's key-endpoint cache headers.
fn cached_json(shared: &Shared, max_age: u64, body: &Value) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "public, max-age={max_age}, must-revalidate, no-transform"
    )) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert(header::AGE, HeaderValue::from(shared.config.age));
    response
}

pub(crate) async fn oidc_jwks(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.enter(Route::OidcJwks).await {
        return r;
    }
    let keys: Vec<Value> = read(&shared.oidc)
        .published()
        .iter()
        .map(|k| k.jwk())
        .collect();
    cached_json(
        &shared,
        shared.config.oidc_max_age,
        &json!({ "keys": keys }),
    )
}

pub(crate) async fn oidc_pem(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.enter(Route::OidcPemCerts).await {
        return r;
    }
    let map: Map<String, Value> = read(&shared.oidc)
        .published()
        .iter()
        .map(|k| (k.kid.clone(), json!(k.cert_pem)))
        .collect();
    cached_json(&shared, shared.config.oidc_max_age, &Value::Object(map))
}

pub(crate) async fn iap_jwks(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.enter(Route::IapJwks).await {
        return r;
    }
    let keys: Vec<Value> = read(&shared.iap)
        .published()
        .iter()
        .map(|k| k.jwk())
        .collect();
    cached_json(&shared, shared.config.iap_max_age, &json!({ "keys": keys }))
}

pub(crate) async fn iap_pem(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.enter(Route::IapPem).await {
        return r;
    }
    let map: Map<String, Value> = read(&shared.iap)
        .published()
        .iter()
        .map(|k| (k.kid.clone(), json!(k.spki_pem)))
        .collect();
    cached_json(&shared, shared.config.iap_max_age, &Value::Object(map))
}

/// The discovery document, with Google's fields; endpoints the emulator serves point at it.
pub(crate) async fn openid_configuration(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = shared.enter(Route::OpenIdConfiguration).await {
        return r;
    }
    let body = json!({
        "issuer": GOOGLE_ISSUER,
        "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
        "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
        "token_endpoint": shared.url("/token").as_str(),
        "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
        "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
        "jwks_uri": shared.url("/oauth2/v3/certs").as_str(),
        "response_types_supported": [
            "code", "token", "id_token", "code token", "code id_token", "token id_token",
            "code token id_token", "none"
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss",
            "name", "picture", "sub"
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ],
    });
    cached_json(&shared, 3600, &body)
}
