//! IAM Credentials (`iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:METHOD`):
//! `generateIdToken` (in `oauth`), `generateAccessToken`, `signJwt` and `signBlob`.
//!
//! All four check what Google checks: the caller presents an access token the
//! emulator issued (live, with scope `cloud-platform` or `iam`; or a self-signed JWT of a registered key), and
//! every hop caller → delegate₁ → … → target holds Service Account Token Creator
//! ([`crate::Emulator::allow_impersonation`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::oauth::{
    INVALID_CREDENTIAL, MISSING_CREDENTIAL, api_error, bearer_token, generate_id_token,
    json_response, parse_delegates, parse_jwt,
};
use crate::access::{CLOUD_PLATFORM_SCOPE, IAM_SCOPE, space_separated_scopes, valid_scope};
use crate::state::{AccessTokenRecord, Route, Shared, grpc_status};
use crate::token::unix_now;

/// The longest `generateAccessToken` lifetime without the organization policy
/// `constraints/iam.allowServiceAccountCredentialLifetimeExtension` (which the emulator does not model).
const MAX_LIFETIME_SECS: i64 = 3600;
/// How far in the future `signJwt` lets `exp` be (Google: 12 hours).
const MAX_SIGNED_JWT_EXP_SECS: i64 = 12 * 3600;

/// `POST /v1/projects/{project}/serviceAccounts/{email}:{method}`: dispatches on the method.
pub(crate) async fn service_account_method(
    State(shared): State<Arc<Shared>>,
    Path((_project, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((account, method)) = target.rsplit_once(':') else {
        return api_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    match method {
        "generateIdToken" => generate_id_token(&shared, account, &headers, &body).await,
        "generateAccessToken" => generate_access_token(&shared, account, &headers, &body).await,
        "signJwt" => sign_jwt(&shared, account, &headers, &body).await,
        "signBlob" => sign_blob(&shared, account, &headers, &body).await,
        _ => api_error(StatusCode::NOT_FOUND, "Method not found."),
    }
}

/// A Google API error with one `google.rpc.ErrorInfo` detail.
fn api_error_with_reason(
    status: StatusCode,
    message: &str,
    reason: &str,
    method: &str,
) -> Response {
    json_response(
        status,
        &json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": grpc_status(status),
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {
                    "service": "iamcredentials.googleapis.com",
                    "method": format!("google.iam.credentials.v1.IAMCredentials.{method}"),
                },
            }],
        }}),
    )
}

/// Who is calling: the identity the bearer token acts as (a delegated token acts as its user). 401 without a
/// valid credential, 403 when the token lacks the scopes IAM Credentials needs.
fn caller(shared: &Shared, headers: &HeaderMap, method: &str) -> Result<String, Box<Response>> {
    let Some(bearer) = bearer_token(headers) else {
        return Err(Box::new(api_error(
            StatusCode::UNAUTHORIZED,
            MISSING_CREDENTIAL,
        )));
    };
    let needed = [CLOUD_PLATFORM_SCOPE, IAM_SCOPE];
    let insufficient = || {
        Box::new(api_error_with_reason(
            StatusCode::FORBIDDEN,
            "Request had insufficient authentication scopes.",
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            method,
        ))
    };
    if let Some(record) = shared.live_access_token(bearer) {
        return if record.has_any_scope(&needed) {
            Ok(record.acting_as().to_owned())
        } else {
            Err(insufficient())
        };
    }
    // A self-signed JWT (what google-auth sends outside the default universe): its scope, or an audience
    // naming the API, authorizes it.
    if let Some(jwt) = parse_jwt(bearer)
        && let Ok((email, claims)) = shared.verify_service_account_jwt(&jwt)
    {
        let scoped = claims
            .get("scope")
            .and_then(Value::as_str)
            .and_then(space_separated_scopes)
            .is_some_and(|s| needed.iter().any(|n| s.contains(*n)));
        let audience = claims
            .get("aud")
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with("https://iamcredentials.googleapis.com"));
        return if scoped || audience {
            Ok(email)
        } else {
            Err(insufficient())
        };
    }
    Err(Box::new(api_error_with_reason(
        StatusCode::UNAUTHORIZED,
        INVALID_CREDENTIAL,
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        method,
    )))
}

/// The request body as a JSON object, or Google's 400.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) | Err(_) => Err(Box::new(api_error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received. Expected an object.",
        ))),
    }
}

/// Everything the token-creating and signing methods check before doing their work: the caller, the body, the target and
/// the delegation chain. Returns the target's email and the body.
pub(super) async fn authorize(
    shared: &Shared,
    route: Route,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Map<String, Value>), Box<Response>> {
    if let Some(r) = shared.enter(route).await {
        return Err(Box::new(r));
    }
    let (method, permission) = match route {
        Route::SignJwt => ("SignJwt", "iam.serviceAccounts.signJwt"),
        Route::SignBlob => ("SignBlob", "iam.serviceAccounts.signBlob"),
        Route::GenerateIdToken => ("GenerateIdToken", "iam.serviceAccounts.getOpenIdToken"),
        _ => ("GenerateAccessToken", "iam.serviceAccounts.getAccessToken"),
    };
    let caller = caller(shared, headers, method)?;
    let request = json_object(body)?;
    let delegates = parse_delegates(shared, &request)?;
    let Some(target) = shared.find_account(account) else {
        return Err(Box::new(api_error(
            StatusCode::NOT_FOUND,
            &format!("Not found; Gaia id not found for email {account}"),
        )));
    };
    let chain: Vec<&str> = std::iter::once(caller.as_str())
        .chain(delegates.iter().map(String::as_str))
        .chain(std::iter::once(target.as_str()))
        .collect();
    if !chain
        .windows(2)
        .all(|hop| shared.may_impersonate(hop[0], hop[1]))
    {
        return Err(Box::new(api_error_with_reason(
            StatusCode::FORBIDDEN,
            &format!("Permission '{permission}' denied on resource (or it may not exist)."),
            "IAM_PERMISSION_DENIED",
            method,
        )));
    }
    Ok((target, request))
}

/// A proto3 JSON `Duration` (`"3600s"`, `"1.5s"`), in whole seconds rounded up. `None` if malformed.
fn duration_secs(text: &str) -> Option<i64> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    Some(if fraction.bytes().any(|b| b != b'0') {
        secs.checked_add(1)?
    } else {
        secs
    })
}

/// Unix seconds as RFC 3339 UTC (`2024-05-01T12:00:00Z`), as Google's `Timestamp` JSON.
fn rfc3339(unix_secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix_secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "9999-12-31T23:59:59Z".to_owned(),
    }
}

fn invalid_argument(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, message)
}

/// `:generateAccessToken` with `{"delegates", "scope": [...], "lifetime": "3600s"}` →
/// `{"accessToken", "expireTime"}`.
async fn generate_access_token(
    shared: &Shared,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (target, request) =
        match authorize(shared, Route::GenerateAccessToken, account, headers, body).await {
            Ok(ok) => ok,
            Err(r) => return *r,
        };
    let scopes = match request.get("scope") {
        Some(Value::Array(list)) if !list.is_empty() => {
            // Each entry is one scope: a space or a comma inside one is refused, not split.
            let mut scopes = BTreeSet::new();
            for scope in list {
                match scope.as_str().filter(|s| valid_scope(s)) {
                    Some(scope) => scopes.insert(scope.to_owned()),
                    None => return invalid_argument("Request contains an invalid argument."),
                };
            }
            scopes
        }
        None | Some(Value::Null) => return invalid_argument("Scope is required."),
        Some(Value::Array(_)) => return invalid_argument("Scope is required."),
        Some(_) => {
            return invalid_argument("Invalid value at 'scope', expected a list of strings.");
        }
    };
    let lifetime = match request.get("lifetime") {
        None | Some(Value::Null) => MAX_LIFETIME_SECS,
        Some(Value::String(text)) => match duration_secs(text) {
            Some(secs) if (1..=MAX_LIFETIME_SECS).contains(&secs) => secs,
            Some(_) => {
                return invalid_argument(
                    "The lifetime must be between 1s and 3600s (a longer lifetime needs the organization policy constraints/iam.allowServiceAccountCredentialLifetimeExtension).",
                );
            }
            None => {
                return invalid_argument(&format!(
                    "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), \"{text}\""
                ));
            }
        },
        Some(_) => {
            return invalid_argument(
                "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration)",
            );
        }
    };
    let record = AccessTokenRecord::service_account(&target, None, scopes, lifetime);
    let expires_at = record.expires_at;
    match shared.issue_access_token(record) {
        Ok(token) => json_response(
            StatusCode::OK,
            &json!({"accessToken": token, "expireTime": rfc3339(expires_at)}),
        ),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `:signJwt` with `{"delegates", "payload": "<JSON claims>"}` → `{"keyId", "signedJwt"}`: RS256 with a key
/// the emulator holds for the target (published at its x509 URL, accepted by the token endpoint).
async fn sign_jwt(shared: &Shared, account: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let (target, request) = match authorize(shared, Route::SignJwt, account, headers, body).await {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    let Some(Value::String(payload)) = request.get("payload") else {
        return invalid_argument("Request contains an invalid argument.");
    };
    let claims: Map<String, Value> = match serde_json::from_str(payload) {
        Ok(Value::Object(claims)) => claims,
        Ok(_) | Err(_) => {
            return invalid_argument("Invalid payload: the payload must be a JSON object.");
        }
    };
    match claims.get("exp") {
        None => {}
        Some(exp) => match exp.as_i64() {
            Some(exp) if exp <= unix_now() + MAX_SIGNED_JWT_EXP_SECS => {}
            Some(_) => {
                return invalid_argument(
                    "Invalid payload: exp must be at most 12 hours in the future.",
                );
            }
            None => return invalid_argument("Invalid payload: exp must be an integer."),
        },
    }
    let key = match system_key(shared, &target) {
        Ok(key) => key,
        Err(r) => return *r,
    };
    let header = json!({"alg": "RS256", "kid": key.kid, "typ": "JWT"}).to_string();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    match key.sign(signing_input.as_bytes()) {
        Ok(signature) => json_response(
            StatusCode::OK,
            &json!({
                "keyId": key.kid,
                "signedJwt": format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)),
            }),
        ),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The key `signJwt` and `signBlob` sign with for `target` (created on first use), or the error answer.
fn system_key(shared: &Shared, target: &str) -> Result<Arc<crate::keys::RsaKey>, Box<Response>> {
    match shared.system_key(target) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(Box::new(api_error(
            StatusCode::NOT_FOUND,
            &format!("Not found; Gaia id not found for email {target}"),
        ))),
        Err(e) => Err(Box::new(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
        ))),
    }
}

/// A proto3 JSON `bytes` value: base64, standard or URL-safe, padded or not (what Google's JSON parser
/// accepts). `None` if it is none of those.
fn proto_bytes(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// `:signBlob` with `{"delegates", "payload": "<base64 bytes>"}` → `{"keyId", "signedBlob": "<base64>"}`:
/// RSASSA-PKCS1-v1_5 with SHA-256 over the payload's bytes, with the same key `signJwt` uses (published in the
/// account's x509/jwk/raw documents). A payload that is absent or empty (the same thing in proto3) is refused.
async fn sign_blob(shared: &Shared, account: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let (target, request) = match authorize(shared, Route::SignBlob, account, headers, body).await {
        Ok(ok) => ok,
        Err(r) => return *r,
    };
    let payload = match request.get("payload") {
        Some(Value::String(text)) if !text.is_empty() => match proto_bytes(text) {
            Some(bytes) => bytes,
            None => {
                return invalid_argument(
                    "Invalid value at 'payload' (TYPE_BYTES), Base64 decoding failed",
                );
            }
        },
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return invalid_argument("Request contains an invalid argument.");
        }
        Some(_) => {
            return invalid_argument("Invalid value at 'payload' (TYPE_BYTES)");
        }
    };
    let key = match system_key(shared, &target) {
        Ok(key) => key,
        Err(r) => return *r,
    };
    match key.sign(&payload) {
        Ok(signature) => json_response(
            StatusCode::OK,
            &json!({"keyId": key.kid, "signedBlob": STANDARD.encode(signature)}),
        ),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_proto3_json() {
        assert_eq!(duration_secs("3600s"), Some(3600));
        assert_eq!(duration_secs("1.5s"), Some(2));
        assert_eq!(duration_secs("10.000s"), Some(10));
        assert_eq!(duration_secs("3600"), None);
        assert_eq!(duration_secs("-1s"), None);
        assert_eq!(duration_secs("s"), None);
        assert_eq!(duration_secs("99999999999999999999s"), None);
    }

    #[test]
    fn bytes_parse_as_proto3_json() {
        assert_eq!(proto_bytes("aGk/Pw=="), Some(b"hi??".to_vec()));
        assert_eq!(proto_bytes("aGk_Pw"), Some(b"hi??".to_vec()));
        assert_eq!(proto_bytes("aGk"), Some(b"hi".to_vec()));
        assert_eq!(proto_bytes("not base64!"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
