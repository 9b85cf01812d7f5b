//! The GCE metadata server under `/computeMetadata/v1/`.
//!
//! Rules, as on a VM: a request without `Metadata-Flavor: Google` (or with `X-Forwarded-For`) gets 403;
//! every answer carries `Metadata-Flavor: Google`; `identity` without an audience gets 400.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::access::{ACCESS_TOKEN_LIFETIME_SECS, CLOUD_PLATFORM_SCOPE, comma_separated_scopes};
use crate::state::{AccessTokenRecord, Route, Shared, with_flavor};
use crate::token::TokenSpec;

const TEXT: &str = "text/plain; charset=utf-8";

fn text(endpoint: Route, status: StatusCode, body: String) -> Response {
    with_flavor(
        endpoint,
        (status, [(header::CONTENT_TYPE, TEXT)], body).into_response(),
    )
}

/// Counts the hit, plays faults, and enforces the `Metadata-Flavor` rules.
async fn gate(shared: &Shared, endpoint: Route, headers: &HeaderMap) -> Option<Response> {
    if let Some(r) = shared.enter(endpoint).await {
        return Some(r);
    }
    if headers.contains_key("x-forwarded-for") {
        return Some(forbidden(
            endpoint,
            "Request contains X-Forwarded-For header.",
        ));
    }
    let flavor_ok = headers
        .get_all("metadata-flavor")
        .iter()
        .any(|v| v.as_bytes() == b"Google");
    if !flavor_ok {
        return Some(forbidden(
            endpoint,
            "Missing required header \"Metadata-Flavor\": \"Google\"",
        ));
    }
    None
}

fn forbidden(endpoint: Route, why: &str) -> Response {
    with_flavor(
        endpoint,
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            format!(
                "<!DOCTYPE html>\n<html lang=en>\n<title>Error 403 (Forbidden)!!1</title>\n\
                 <p><b>403.</b> <ins>That\u{2019}s an error.</ins>\n<p>Your client does not have \
                 permission to get URL. {why} <ins>That\u{2019}s all we know.</ins>\n"
            ),
        )
            .into_response(),
    )
}

/// `{account}` may be `default` or the account's email; anything else is not on this instance (404).
fn resolve_account(
    shared: &Shared,
    endpoint: Route,
    account: &str,
) -> Result<String, Box<Response>> {
    let email = &shared.config.metadata_service_account;
    if account == "default" || account == email {
        Ok(email.clone())
    } else {
        Err(Box::new(text(
            endpoint,
            StatusCode::NOT_FOUND,
            format!("Service account {account} not found on this instance.\n"),
        )))
    }
}

/// Google's metadata server treats these case-insensitively.
fn bool_param(value: Option<&String>) -> Option<bool> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Some(false),
        Some(v) if v == "true" => Some(true),
        Some(v) if v == "false" => Some(false),
        Some(_) => None,
    }
}

pub(crate) async fn identity(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataIdentity;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    let email = match resolve_account(&shared, ep, &account) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let Some(audience) = query.get("audience").filter(|a| !a.is_empty()) else {
        return text(
            ep,
            StatusCode::BAD_REQUEST,
            "non-empty audience parameter required\n".to_owned(),
        );
    };
    let full = match query.get("format").map(String::as_str) {
        None | Some("standard") => false,
        Some("full") => true,
        Some(other) => {
            return text(
                ep,
                StatusCode::BAD_REQUEST,
                format!("invalid format parameter: {other:?}; expected \"standard\" or \"full\"\n"),
            );
        }
    };
    let Some(licenses) = bool_param(query.get("licenses")) else {
        return text(
            ep,
            StatusCode::BAD_REQUEST,
            "invalid licenses parameter; expected TRUE or FALSE\n".to_owned(),
        );
    };
    let mut spec = TokenSpec::service_account(&email).audience(audience.as_str());
    if full {
        let c = &shared.config;
        let mut compute = json!({
            "instance_creation_timestamp": c.instance_creation_timestamp,
            "instance_id": c.instance_id,
            "instance_name": c.instance_name,
            "project_id": c.project_id,
            "project_number": c.project_number,
            "zone": c.zone,
        });
        if licenses {
            compute["license_id"] = json!(c.license_ids);
        }
        spec = spec.claim("google", json!({ "compute_engine": compute }));
    }
    match shared.mint(&spec) {
        Ok(token) => text(ep, StatusCode::OK, token),
        Err(error) => text(ep, StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

pub(crate) async fn email(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataEmail;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    match resolve_account(&shared, ep, &account) {
        Ok(email) => text(ep, StatusCode::OK, email),
        Err(r) => *r,
    }
}

/// The account's access token. `?scopes=a,b` (comma-separated) asks for those scopes, as serverless
/// runtimes honour them; without it the token has `cloud-platform`, as Cloud Run's default account does.
pub(crate) async fn access_token(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataAccessToken;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    let email = match resolve_account(&shared, ep, &account) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let scopes = match query.get("scopes") {
        None => std::iter::once(CLOUD_PLATFORM_SCOPE.to_owned()).collect(),
        Some(list) => match comma_separated_scopes(list) {
            Some(scopes) => scopes,
            None => {
                return text(
                    ep,
                    StatusCode::BAD_REQUEST,
                    "invalid scopes parameter: expected comma-separated OAuth scopes\n".to_owned(),
                );
            }
        },
    };
    let expires_in = ACCESS_TOKEN_LIFETIME_SECS;
    let record = AccessTokenRecord::service_account(&email, None, scopes, expires_in);
    match shared.issue_access_token(record) {
        Ok(token) => with_flavor(
            ep,
            (
                [(header::CONTENT_TYPE, "application/json")],
                json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
                    .to_string(),
            )
                .into_response(),
        ),
        Err(error) => text(ep, StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

/// The account directory: a listing, or with `?recursive=true` the JSON google-auth reads.
pub(crate) async fn account_info(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataServiceAccountInfo;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    let email = match resolve_account(&shared, ep, &account) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let recursive = query
        .get("recursive")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if recursive {
        with_flavor(
            ep,
            (
                [(header::CONTENT_TYPE, "application/json")],
                json!({"aliases": ["default"], "email": email, "scopes": [CLOUD_PLATFORM_SCOPE]})
                    .to_string(),
            )
                .into_response(),
        )
    } else {
        text(
            ep,
            StatusCode::OK,
            "aliases\nemail\nidentity\nscopes\ntoken\n".to_owned(),
        )
    }
}

/// The account's scopes, one per line.
pub(crate) async fn scopes(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataServiceAccountInfo;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    match resolve_account(&shared, ep, &account) {
        Ok(_) => text(ep, StatusCode::OK, format!("{CLOUD_PLATFORM_SCOPE}\n")),
        Err(r) => *r,
    }
}

/// `GET /`: what a VM's metadata server answers to the liveness probe.
pub(crate) async fn root(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ep = Route::MetadataRoot;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    text(ep, StatusCode::OK, "computeMetadata/\n".to_owned())
}

pub(crate) async fn project_id(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ep = Route::MetadataProjectId;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    text(ep, StatusCode::OK, shared.config.project_id.clone())
}

pub(crate) async fn numeric_project_id(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataNumericProjectId;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    text(ep, StatusCode::OK, shared.config.project_number.to_string())
}

/// The metadata server's 404 for a value this instance does not have (Google answers an HTML error page).
fn not_defined(endpoint: Route) -> Response {
    with_flavor(
        endpoint,
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            "<!DOCTYPE html>\n<html lang=en>\n<title>Error 404 (Not Found)!!1</title>\n\
             <p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n<p>The requested URL was not found on this \
             server. <ins>That\u{2019}s all we know.</ins>\n",
        )
            .into_response(),
    )
}

/// `instance/zone`: `projects/NUMBER/zones/ZONE`, as every runtime answers it (Cloud Run's zone is the region
/// with a `-1` suffix, e.g. `us-central1-1`).
pub(crate) async fn zone(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ep = Route::MetadataZone;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    let c = &shared.config;
    text(
        ep,
        StatusCode::OK,
        format!("projects/{}/zones/{}", c.project_number, c.zone),
    )
}

/// `instance/region`: `projects/NUMBER/regions/REGION` on the serverless runtimes; 404 where no region is
/// configured (Compute Engine and GKE do not serve it).
pub(crate) async fn region(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ep = Route::MetadataRegion;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    let c = &shared.config;
    match &c.region {
        Some(region) => text(
            ep,
            StatusCode::OK,
            format!("projects/{}/regions/{region}", c.project_number),
        ),
        None => not_defined(ep),
    }
}

/// `universe/universe-domain`: `googleapis.com` outside sovereign clouds.
pub(crate) async fn universe_domain(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataUniverseDomain;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    text(ep, StatusCode::OK, shared.config.universe_domain.clone())
}

/// `instance/attributes/cluster-name`: the GKE cluster's name on a GKE node; 404 elsewhere.
pub(crate) async fn cluster_name(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let ep = Route::MetadataClusterName;
    if let Some(r) = gate(&shared, ep, &headers).await {
        return r;
    }
    match &shared.config.gke_cluster {
        Some(name) => text(ep, StatusCode::OK, name.clone()),
        None => not_defined(ep),
    }
}
