//! The OAuth 2.0 token endpoint (jwt-bearer grant), IAM Credentials `generateIdToken`, and a service
//! account's public certificates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::keys::RsaKey;
use crate::state::{Route, Shared, grpc_status, lock, read};
use crate::token::{TokenSpec, unix_now};

/// The JWT-bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Audiences Google's token endpoint accepts in an assertion besides the emulator's own `/token`
/// (Python's google-auth hardcodes the first one whatever `token_uri` says).
const GOOGLE_TOKEN_AUDIENCES: [&str; 3] = [
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
];

const JSON_UTF8: &str = "application/json; charset=utf-8";

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_UTF8)],
        body.to_string(),
    )
        .into_response()
}

/// `{"error": .., "error_description": ..}`, the token endpoint's error shape.
fn token_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

/// `{"error": {"code", "message", "status"}}`, Google APIs' error shape.
fn api_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": grpc_status(status)}}),
    )
}

/// A compact JWS, split and decoded (not yet verified).
struct ParsedJwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn parse_jwt(token: &str) -> Option<ParsedJwt> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(s).ok()?;
    Some(ParsedJwt {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// Why an assertion was refused, in Google's words.
enum AssertionError {
    Malformed,
    AccountNotFound,
    Signature,
    Audience,
    Timeframe,
}

impl AssertionError {
    fn description(&self) -> &'static str {
        match self {
            Self::Malformed => "Invalid JWT: malformed assertion.",
            Self::AccountNotFound => "Invalid grant: account not found",
            Self::Signature => "Invalid JWT Signature.",
            Self::Audience => {
                "Invalid JWT: Failed audience check. The right audience is https://oauth2.googleapis.com/token"
            }
            Self::Timeframe => {
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
            }
        }
    }
}

impl Shared {
    /// Verifies a JWT signed by a registered service-account key (RS256, `iss` = the account, `kid` = the
    /// key id; without a kid every key of the account is tried, as Google does). Returns the account's
    /// email and the claims. Audience is the caller's business.
    fn verify_service_account_jwt(
        &self,
        jwt: &ParsedJwt,
    ) -> Result<(String, Map<String, Value>), AssertionError> {
        if jwt.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(AssertionError::Signature);
        }
        let email = jwt
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AssertionError::Malformed)?;
        let keys: Vec<Arc<RsaKey>> = {
            let accounts = read(&self.service_accounts);
            let record = accounts.get(email).ok_or(AssertionError::AccountNotFound)?;
            match jwt.header.get("kid") {
                Some(Value::String(kid)) => record.keys.get(kid).cloned().into_iter().collect(),
                None => record.keys.values().cloned().collect(),
                Some(_) => return Err(AssertionError::Malformed),
            }
        };
        if !keys
            .iter()
            .any(|k| k.verify(jwt.signing_input.as_bytes(), &jwt.signature))
        {
            return Err(AssertionError::Signature);
        }
        let iat = jwt.claims.get("iat").and_then(Value::as_i64);
        let exp = jwt.claims.get("exp").and_then(Value::as_i64);
        let (Some(iat), Some(exp)) = (iat, exp) else {
            return Err(AssertionError::Timeframe);
        };
        let now = unix_now();
        // Google allows a little clock skew either way; the lifetime may not exceed an hour.
        if exp <= iat || exp - iat > 3600 || iat > now + 300 || exp < now - 300 {
            return Err(AssertionError::Timeframe);
        }
        Ok((email.to_owned(), jwt.claims.clone()))
    }
}

/// `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`.
pub(crate) async fn token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(r) = shared.enter(Route::Token).await {
        return r;
    }
    let mut grant_type = None;
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "grant_type" => grant_type = Some(v.into_owned()),
            "assertion" => assertion = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(grant_type) = grant_type else {
        return token_error("invalid_request", "Missing required parameter: grant_type");
    };
    if grant_type != JWT_BEARER {
        return token_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = assertion else {
        return token_error("invalid_request", "Missing required parameter: assertion");
    };
    let Some(jwt) = parse_jwt(&assertion) else {
        return token_error("invalid_grant", AssertionError::Malformed.description());
    };
    let (email, claims) = match shared.verify_service_account_jwt(&jwt) {
        Ok(ok) => ok,
        Err(e) => return token_error("invalid_grant", e.description()),
    };
    let own_token_url = shared.url("/token");
    let audience_ok = match claims.get("aud").and_then(Value::as_str) {
        Some(aud) => aud == own_token_url.as_str() || GOOGLE_TOKEN_AUDIENCES.contains(&aud),
        None => false,
    };
    if !audience_ok {
        return token_error("invalid_grant", AssertionError::Audience.description());
    }
    match claims.get("target_audience") {
        Some(Value::String(target)) if !target.is_empty() => {
            match shared.mint(&TokenSpec::service_account(&email).audience(target.as_str())) {
                Ok(id_token) => json_response(StatusCode::OK, &json!({ "id_token": id_token })),
                Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Some(_) => token_error("invalid_request", "Invalid target_audience."),
        None => match shared.issue_access_token(&email) {
            Ok((access_token, expires_in)) => json_response(
                StatusCode::OK,
                &json!({"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer"}),
            ),
            Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
    }
}

const MISSING_CREDENTIAL: &str = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
const INVALID_CREDENTIAL: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// A proto3 JSON bool: `true`/`false` or the strings `"true"`/`"false"`. Absent is `false`.
fn proto_bool(body: &Map<String, Value>, field: &str) -> Result<bool, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(format!("Invalid value at '{field}' (TYPE_BOOL), {other}")),
    }
}

impl Shared {
    /// Finds a registered account by email or numeric unique id; returns its email.
    fn find_account(&self, name: &str) -> Option<String> {
        let accounts = read(&self.service_accounts);
        if accounts.contains_key(name) {
            return Some(name.to_owned());
        }
        accounts
            .iter()
            .find(|(_, r)| r.unique_id == name)
            .map(|(email, _)| email.clone())
    }

    /// Whether `bearer` is an unexpired access token the emulator issued, or a self-signed JWT of a
    /// registered service-account key (what google-auth sends outside the default universe).
    fn bearer_is_valid(&self, bearer: &str) -> bool {
        if let Some(record) = lock(&self.access_tokens).get(bearer) {
            return record.expires_at > unix_now() && self.find_account(&record.email).is_some();
        }
        parse_jwt(bearer).is_some_and(|jwt| self.verify_service_account_jwt(&jwt).is_ok())
    }
}

/// `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken`.
pub(crate) async fn generate_id_token(
    State(shared): State<Arc<Shared>>,
    Path((_project, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((account, method)) = target.rsplit_once(':') else {
        return api_error(StatusCode::NOT_FOUND, "Method not found.");
    };
    if method != "generateIdToken" {
        return api_error(StatusCode::NOT_FOUND, "Method not found.");
    }
    if let Some(r) = shared.enter(Route::GenerateIdToken).await {
        return r;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(bearer) = bearer else {
        return api_error(StatusCode::UNAUTHORIZED, MISSING_CREDENTIAL);
    };
    if !shared.bearer_is_valid(bearer) {
        return api_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    }
    let request: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) | Err(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Invalid JSON payload received. Expected an object.",
            );
        }
    };
    let audience = match request.get("audience") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Request contains an invalid argument.",
            );
        }
    };
    let (include_email, use_email_azp) = match (
        proto_bool(&request, "includeEmail"),
        proto_bool(&request, "useEmailAzp"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return api_error(StatusCode::BAD_REQUEST, &e),
    };
    match request.get("delegates") {
        None | Some(Value::Null) => {}
        Some(Value::Array(delegates)) => {
            for d in delegates {
                let Some(name) = d
                    .as_str()
                    .and_then(|s| s.strip_prefix("projects/-/serviceAccounts/"))
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                else {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "Request contains an invalid argument.",
                    );
                };
                if shared.find_account(name).is_none() {
                    return api_error(
                        StatusCode::NOT_FOUND,
                        &format!("Not found; Gaia id not found for email {name}"),
                    );
                }
            }
        }
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Invalid value at 'delegates', expected a list of strings.",
            );
        }
    }
    let Some(email) = shared.find_account(account) else {
        return api_error(
            StatusCode::NOT_FOUND,
            &format!("Not found; Gaia id not found for email {account}"),
        );
    };
    let mut spec = TokenSpec::service_account(&email).audience(audience);
    if !include_email {
        spec = spec.without_claim("email").without_claim("email_verified");
    }
    if use_email_azp {
        spec = spec.claim("azp", email.as_str());
    }
    match shared.mint(&spec) {
        Ok(token) => json_response(StatusCode::OK, &json!({ "token": token })),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /robot/v1/metadata/x509/{email}`: `{private_key_id: certificate PEM}` for the account's keys.
pub(crate) async fn service_account_certs(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
) -> Response {
    if let Some(r) = shared.enter(Route::ServiceAccountCerts).await {
        return r;
    }
    let certs: Option<Map<String, Value>> = read(&shared.service_accounts).get(&email).map(|r| {
        r.keys
            .iter()
            .map(|(id, k)| (id.clone(), json!(k.cert_pem)))
            .collect()
    });
    match certs {
        Some(map) => json_response(StatusCode::OK, &Value::Object(map)),
        None => api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
