//! One emulated Google API: Cloud Storage's bucket list (`GET storage.googleapis.com/storage/v1/b?project=P`),
//! the call the App Identity guide makes. It checks the bearer token and its scopes as Google does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::oauth::{bearer_token, json_response};
use crate::access::CLOUD_PLATFORM_SCOPE;
use crate::state::{Route, Shared, read};
use crate::token::numeric_id;

/// Any one of these lets a token list buckets.
const STORAGE_LIST_SCOPES: [&str; 5] = [
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    CLOUD_PLATFORM_SCOPE,
    "https://www.googleapis.com/auth/cloud-platform.read-only",
];

/// Cloud Storage's JSON error: `{"error": {"code", "message", "errors": [{"message", "domain", "reason", ...}]}}`.
fn storage_error(status: StatusCode, message: &str, reason: &str, extra: &Value) -> Response {
    let mut detail = json!({"message": message, "domain": "global", "reason": reason});
    if let (Some(d), Some(extra)) = (detail.as_object_mut(), extra.as_object()) {
        d.extend(extra.clone());
    }
    let mut response = json_response(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "errors": [detail]}}),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
        );
    }
    response
}

/// The number of `project`: the emulator's own, or a stable 12-digit one for any other.
fn project_number(shared: &Shared, project: &str) -> String {
    if project == shared.config.project_id {
        shared.config.project_number.to_string()
    } else {
        numeric_id(&format!("project:{project}"))[1..13].to_owned()
    }
}

/// `GET /storage/v1/b?project=P`.
pub(crate) async fn list_buckets(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = shared.enter(Route::StorageBuckets).await {
        return r;
    }
    let Some(bearer) = bearer_token(&headers) else {
        return storage_error(
            StatusCode::UNAUTHORIZED,
            "Anonymous caller does not have storage.buckets.list access to the Google Cloud project. Permission 'storage.buckets.list' denied on resource (or it may not exist).",
            "required",
            &json!({"locationType": "header", "location": "Authorization"}),
        );
    };
    let Some(record) = shared.live_access_token(bearer) else {
        return storage_error(
            StatusCode::UNAUTHORIZED,
            "Invalid Credentials",
            "authError",
            &json!({"locationType": "header", "location": "Authorization"}),
        );
    };
    if !record.has_any_scope(&STORAGE_LIST_SCOPES) {
        return storage_error(
            StatusCode::FORBIDDEN,
            "Provided scope(s) are not authorized",
            "forbidden",
            &Value::Null,
        );
    }
    let Some(project) = query.get("project").filter(|p| !p.is_empty()) else {
        return storage_error(
            StatusCode::BAD_REQUEST,
            "Required parameter: project",
            "required",
            &json!({"locationType": "parameter", "location": "project"}),
        );
    };
    let mut names: Vec<String> = read(&shared.grants)
        .buckets
        .iter()
        .filter(|(_, p)| *p == project)
        .map(|(name, _)| name.clone())
        .collect();
    if project == &shared.config.project_id {
        let default_bucket = format!("{project}.appspot.com");
        if !names.contains(&default_bucket) {
            names.push(default_bucket);
        }
    }
    names.sort();
    let number = project_number(&shared, project);
    let items: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "kind": "storage#bucket",
                "selfLink": shared.url(&format!("/storage/v1/b/{name}")).as_str(),
                "id": name,
                "name": name,
                "projectNumber": number,
                "metageneration": "1",
                "location": "US",
                "storageClass": "STANDARD",
                "etag": "CAE=",
                "timeCreated": "2024-01-01T00:00:00.000Z",
                "updated": "2024-01-01T00:00:00.000Z",
                "locationType": "multi-region",
                "rpo": "DEFAULT",
            })
        })
        .collect();
    // Google leaves `items` out when there is nothing to list.
    let body = if items.is_empty() {
        json!({"kind": "storage#buckets"})
    } else {
        json!({"kind": "storage#buckets", "items": items})
    };
    json_response(StatusCode::OK, &body)
}
