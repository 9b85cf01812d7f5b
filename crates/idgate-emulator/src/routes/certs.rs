//! Google's key endpoints (OIDC, IAP, and every service account's public keys) and the OpenID discovery
//! document.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::keys::RsaKey;
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
        "authorization_endpoint": shared.url("/o/oauth2/v2/auth").as_str(),
        "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
        "token_endpoint": shared.url("/token").as_str(),
        "userinfo_endpoint": shared.url("/v1/userinfo").as_str(),
        "revocation_endpoint": shared.url("/revoke").as_str(),
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

impl Shared {
    /// Every key `email` holds (its key files' keys and its system-managed key), sorted by key ID so the
    /// documents are stable; `None` for an account the emulator does not know.
    pub(crate) fn service_account_public_keys(&self, email: &str) -> Option<Vec<Arc<RsaKey>>> {
        read(&self.service_accounts).get(email).map(|record| {
            let mut keys: Vec<Arc<RsaKey>> = record.keys.values().cloned().collect();
            keys.sort_by(|a, b| a.kid.cmp(&b.kid));
            keys
        })
    }
}

/// One of a service account's public-key documents: `render` turns its keys into the body. Axum's `Path` has
/// already percent-decoded the email (`a%40p.iam.gserviceaccount.com` is `a@p.iam.gserviceaccount.com`).
async fn service_account_keys(
    shared: &Shared,
    route: Route,
    email: &str,
    render: fn(&[Arc<RsaKey>]) -> Value,
) -> Response {
    if let Some(r) = shared.enter(route).await {
        return r;
    }
    match shared.service_account_public_keys(email) {
        Some(keys) => cached_json(
            shared,
            shared.config.service_account_keys_max_age,
            &render(&keys),
        ),
        None => super::oauth::api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /service_accounts/v1/metadata/x509/{email}` (and `/robot/v1/metadata/x509/{email}`, the path key
/// files' `client_x509_cert_url` names): `{key_id: certificate PEM}` for every key of the account.
pub(crate) async fn service_account_certs(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
) -> Response {
    service_account_keys(&shared, Route::ServiceAccountCerts, &email, |keys| {
        Value::Object(
            keys.iter()
                .map(|k| (k.kid.clone(), json!(k.cert_pem)))
                .collect(),
        )
    })
    .await
}

/// `GET /service_accounts/v1/metadata/jwk/{email}`: `{"keys": [{kid, kty, alg, use, n, e}]}`.
pub(crate) async fn service_account_jwks(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
) -> Response {
    service_account_keys(
        &shared,
        Route::ServiceAccountJwks,
        &email,
        |keys| json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
    )
    .await
}

/// `GET /service_accounts/v1/metadata/raw/{email}`:
/// `{"keyvalues": [{"keyid", "algorithm": "RSA", "modulus", "exponent"}]}`, modulus and exponent big-endian in
/// standard base64.
///
/// Google documents this URL ("raw key in JSON format", IAM Credentials' `signBlob`) but not its body. The
/// shape served here is the one Google's `oauth2` v1 discovery document declares for `getRobotMetadataRaw`
/// (`Raw.keyvalues[]` with `algorithm`, `exponent`, `keyid`, `modulus`; generated clients such as
/// googleapis' Node client carry it) and the one Google's Cloud Endpoints Frameworks verifier reads
/// (`keyvalue['modulus']` / `['exponent']` through `base64.b64decode`). Not checked against a live answer.
pub(crate) async fn service_account_raw_keys(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
) -> Response {
    service_account_keys(
        &shared,
        Route::ServiceAccountRawKeys,
        &email,
        |keys| json!({"keyvalues": keys.iter().map(|k| k.raw_key_value()).collect::<Vec<_>>()}),
    )
    .await
}
