//! The OAuth 2.0 token endpoint (jwt-bearer grant) and IAM Credentials `generateIdToken`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::access::{ACCESS_TOKEN_LIFETIME_SECS, space_separated_scopes};
use crate::keys::RsaKey;
use crate::state::{AccessTokenRecord, Route, Shared, grpc_status, read};
use crate::token::{TokenSpec, numeric_id, unix_now};

/// The JWT-bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The refresh-token grant type.
const REFRESH_TOKEN: &str = "refresh_token";
/// The authorization-code grant type (sign in with Google).
const AUTHORIZATION_CODE: &str = "authorization_code";

/// Audiences Google's token endpoint accepts in an assertion besides the emulator's own `/token`
/// (Python's google-auth hardcodes the first one whatever `token_uri` says).
const GOOGLE_TOKEN_AUDIENCES: [&str; 3] = [
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
];

const JSON_UTF8: &str = "application/json; charset=utf-8";

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
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
pub(super) fn api_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": grpc_status(status)}}),
    )
}

/// A compact JWS, split and decoded (not yet verified).
pub(super) struct ParsedJwt {
    header: Map<String, Value>,
    pub(super) claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

pub(super) fn parse_jwt(token: &str) -> Option<ParsedJwt> {
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
pub(super) enum AssertionError {
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
    pub(super) fn verify_service_account_jwt(
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

/// `POST /token`: the JWT-bearer grant (service accounts: ID tokens with `target_audience`, access tokens
/// with `scope`, domain-wide delegation with `sub`), the refresh-token grant (users) and the
/// authorization-code grant (sign in with Google, `routes/signin.rs`).
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = shared.enter(Route::Token).await {
        return r;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Some(grant_type) = form.get("grant_type") else {
        return token_error("invalid_request", "Missing required parameter: grant_type");
    };
    match grant_type.as_str() {
        JWT_BEARER => jwt_bearer_grant(&shared, &form),
        REFRESH_TOKEN => refresh_token_grant(&shared, &headers, &form),
        AUTHORIZATION_CODE => super::signin::authorization_code_grant(&shared, &headers, &form),
        other => token_error(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

/// Google's answer to a `sub` the service account may not delegate to (or not for these scopes).
const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.";

fn jwt_bearer_grant(shared: &Shared, form: &HashMap<String, String>) -> Response {
    let Some(assertion) = form.get("assertion") else {
        return token_error("invalid_request", "Missing required parameter: assertion");
    };
    let Some(jwt) = parse_jwt(assertion) else {
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
            return match shared.mint(&TokenSpec::service_account(&email).audience(target.as_str()))
            {
                Ok(id_token) => json_response(StatusCode::OK, &json!({ "id_token": id_token })),
                Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
        }
        Some(_) => return token_error("invalid_request", "Invalid target_audience."),
        None => {}
    }
    let scopes = match claims.get("scope") {
        Some(Value::String(scope)) => match space_separated_scopes(scope) {
            Some(scopes) if scopes.is_empty() => {
                return token_error("invalid_scope", EMPTY_SCOPE);
            }
            Some(scopes) => scopes,
            None => return token_error("invalid_scope", INVALID_SCOPE),
        },
        _ => return token_error("invalid_scope", EMPTY_SCOPE),
    };
    // Domain-wide delegation: `sub` names the Workspace user to act for (the account's own email is no
    // delegation at all).
    let subject = match claims.get("sub") {
        None | Some(Value::Null) => None,
        Some(Value::String(sub)) if sub == &email => None,
        Some(Value::String(sub)) if !sub.is_empty() => Some(sub.as_str()),
        Some(_) => return token_error("invalid_grant", AssertionError::Malformed.description()),
    };
    if subject.is_some() {
        let allowed = shared
            .domain_wide_scopes(&email)
            .is_some_and(|granted| scopes.is_subset(&granted));
        if !allowed {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "unauthorized_client", "error_description": UNAUTHORIZED_CLIENT}),
            );
        }
    }
    let record =
        AccessTokenRecord::service_account(&email, subject, scopes, ACCESS_TOKEN_LIFETIME_SECS);
    match shared.issue_access_token(record) {
        Ok(access_token) => json_response(
            StatusCode::OK,
            &json!({"access_token": access_token, "expires_in": ACCESS_TOKEN_LIFETIME_SECS, "token_type": "Bearer"}),
        ),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `grant_type=refresh_token&client_id&client_secret&refresh_token[&scope]`: a user's access token, for the
/// refresh token's scopes or (with `scope`) a subset of them. With `openid` granted, an ID token whose
/// audience is the OAuth client comes along, as Google's does.
fn refresh_token_grant(
    shared: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let Some(refresh_token) = form.get("refresh_token") else {
        return token_error(
            "invalid_request",
            "Missing required parameter: refresh_token",
        );
    };
    // The client authenticates with the form's client_id/client_secret or with HTTP Basic, as Google accepts.
    let (client_id, client_secret) = match super::signin::client_credentials(headers, form) {
        Ok(credentials) => credentials,
        Err(response) => return *response,
    };
    let client_id = &client_id;
    let Some(grant) = read(&shared.grants)
        .refresh_tokens
        .get(refresh_token)
        .cloned()
    else {
        return token_error("invalid_grant", "Token has been expired or revoked.");
    };
    if client_id != &grant.client_id {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "The OAuth client was not found."}),
        );
    }
    if client_secret.as_ref() != Some(&grant.client_secret) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "Unauthorized"}),
        );
    }
    // `email` and `profile` are the userinfo scopes' short names (google-auth sends them back as the flow asked).
    let scopes = match form.get("scope").map(|s| {
        space_separated_scopes(s).map(|set| {
            set.iter()
                .map(|scope| crate::signin::full_scope_name(scope).to_owned())
                .collect::<std::collections::BTreeSet<_>>()
        })
    }) {
        None => grant.scopes.clone(),
        Some(Some(asked)) if asked.is_empty() => grant.scopes.clone(),
        Some(Some(asked)) if asked.is_subset(&grant.scopes) => asked,
        Some(Some(_)) => {
            return token_error(
                "invalid_scope",
                "The requested scope exceeds the scope granted by the resource owner.",
            );
        }
        Some(None) => return token_error("invalid_scope", INVALID_SCOPE),
    };
    let record = AccessTokenRecord {
        email: grant.email.clone(),
        subject: None,
        client_id: grant.client_id.clone(),
        scopes,
        expires_at: unix_now() + ACCESS_TOKEN_LIFETIME_SECS,
    };
    let scope = record
        .scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let openid = record.scopes.contains("openid");
    let granted = record.scopes.clone();
    let access_token = match shared.issue_access_token(record) {
        Ok(t) => t,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut body = json!({
        "access_token": access_token,
        "expires_in": ACCESS_TOKEN_LIFETIME_SECS,
        "scope": scope,
        "token_type": "Bearer",
    });
    // A test user of the account chooser gets the ID token the code exchange gave (no nonce: Google puts none
    // in a refreshed one); any other user (gcloud credentials) the plain one.
    let test_user = crate::state::lock(&shared.signin)
        .user(&grant.email)
        .cloned();
    if let (true, Some(user)) = (openid, test_user) {
        match super::signin::user_id_token(
            shared,
            &user,
            &grant.client_id,
            &granted,
            None,
            &access_token,
        ) {
            Ok(id_token) => body["id_token"] = json!(id_token),
            Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else if openid {
        let spec = TokenSpec::service_account(&grant.email)
            .audience(grant.client_id.as_str())
            .claim("azp", grant.client_id.as_str());
        match shared.mint(&spec) {
            Ok(id_token) => body["id_token"] = json!(id_token),
            Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    json_response(StatusCode::OK, &body)
}

/// `GET /oauth2/v3/tokeninfo?access_token=T`: what an access token the emulator issued grants, as Google
/// answers it (numbers as strings); an unknown or expired token gets `400 invalid_token`.
pub(crate) async fn tokeninfo(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = shared.enter(Route::AccessTokenInfo).await {
        return r;
    }
    let record = query
        .get("access_token")
        .and_then(|t| shared.live_access_token(t));
    let Some(record) = record else {
        return token_error("invalid_token", "Invalid Value");
    };
    // A delegated token acts as the user: Google reports the user as its subject and email.
    let acting = record.acting_as();
    let sub = crate::state::lock(&shared.signin)
        .user(acting)
        .map_or_else(|| numeric_id(acting), |u| u.sub.clone());
    let scope = record
        .scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    json_response(
        StatusCode::OK,
        &json!({
            "azp": record.client_id,
            "aud": record.client_id,
            "sub": sub,
            "scope": scope,
            "exp": record.expires_at.to_string(),
            "expires_in": (record.expires_at - unix_now()).max(0).to_string(),
            "email": acting,
            "email_verified": "true",
            "access_type": "online",
        }),
    )
}

const EMPTY_SCOPE: &str = "Empty or missing scope not allowed.";
const INVALID_SCOPE: &str = "Invalid OAuth scope or ID token audience provided.";

pub(super) const MISSING_CREDENTIAL: &str = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
pub(super) const INVALID_CREDENTIAL: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

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
    pub(super) fn find_account(&self, name: &str) -> Option<String> {
        let accounts = read(&self.service_accounts);
        if accounts.contains_key(name) {
            return Some(name.to_owned());
        }
        accounts
            .iter()
            .find(|(_, r)| r.unique_id == name)
            .map(|(email, _)| email.clone())
    }
}

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The request's `delegates` (`projects/-/serviceAccounts/{EMAIL_OR_UNIQUE_ID}`), resolved to emails in
/// order: 400 for a malformed entry, 404 for an account that does not exist.
pub(super) fn parse_delegates(
    shared: &Shared,
    request: &Map<String, Value>,
) -> Result<Vec<String>, Box<Response>> {
    match request.get("delegates") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(delegates)) => delegates
            .iter()
            .map(|d| {
                let Some(name) = d
                    .as_str()
                    .and_then(|s| s.strip_prefix("projects/-/serviceAccounts/"))
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                else {
                    return Err(Box::new(api_error(
                        StatusCode::BAD_REQUEST,
                        "Request contains an invalid argument.",
                    )));
                };
                shared.find_account(name).ok_or_else(|| {
                    Box::new(api_error(
                        StatusCode::NOT_FOUND,
                        &format!("Not found; Gaia id not found for email {name}"),
                    ))
                })
            })
            .collect(),
        Some(_) => Err(Box::new(api_error(
            StatusCode::BAD_REQUEST,
            "Invalid value at 'delegates', expected a list of strings.",
        ))),
    }
}

/// `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken`.
///
/// Checked as Google checks it, like `generateAccessToken` and `signJwt`: the caller presents a credential the
/// emulator issued with the IAM Credentials scopes, and every hop caller → delegate₁ → … → target holds Service
/// Account Token Creator ([`crate::Emulator::allow_impersonation`]; Google's permission
/// `iam.serviceAccounts.getOpenIdToken`); else `403 PERMISSION_DENIED`.
pub(super) async fn generate_id_token(
    shared: &Shared,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let (email, request) =
        match super::iam::authorize(shared, Route::GenerateIdToken, account, headers, body).await {
            Ok(authorized) => authorized,
            Err(response) => return *response,
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
