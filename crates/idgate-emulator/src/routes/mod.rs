//! The emulator's HTTP surface.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Router, middleware};

use crate::host;
use crate::state::Shared;

mod certs;
mod iam;
mod metadata;
mod oauth;
mod signin;
mod storage;

/// Every route the emulator serves, behind the Host rule (checked before any handler counts or mints).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let hosts = Arc::clone(&shared.allowed_hosts);
    Router::new()
        .route("/oauth2/v3/certs", get(certs::oidc_jwks))
        .route("/oauth2/v1/certs", get(certs::oidc_pem))
        .route(
            "/.well-known/openid-configuration",
            get(certs::openid_configuration),
        )
        .route("/iap/verify/public_key-jwk", get(certs::iap_jwks))
        .route("/iap/verify/public_key", get(certs::iap_pem))
        .route(
            "/computeMetadata/v1/instance/service-accounts/{account}/identity",
            get(metadata::identity),
        )
        .route(
            "/computeMetadata/v1/instance/service-accounts/{account}/email",
            get(metadata::email),
        )
        .route(
            "/computeMetadata/v1/instance/service-accounts/{account}/token",
            get(metadata::access_token),
        )
        .route(
            "/computeMetadata/v1/instance/service-accounts/{account}/",
            get(metadata::account_info),
        )
        .route(
            "/computeMetadata/v1/instance/service-accounts/{account}/scopes",
            get(metadata::scopes),
        )
        .route("/", get(metadata::root))
        .route(
            "/computeMetadata/v1/project/project-id",
            get(metadata::project_id),
        )
        .route(
            "/computeMetadata/v1/project/numeric-project-id",
            get(metadata::numeric_project_id),
        )
        .route("/computeMetadata/v1/instance/zone", get(metadata::zone))
        .route("/computeMetadata/v1/instance/region", get(metadata::region))
        .route(
            "/computeMetadata/v1/universe/universe-domain",
            get(metadata::universe_domain),
        )
        .route(
            "/computeMetadata/v1/instance/attributes/cluster-name",
            get(metadata::cluster_name),
        )
        .route("/token", post(oauth::token))
        .route("/o/oauth2/v2/auth", get(signin::authorize))
        .route(signin::CHOOSER_PATH, post(signin::choose))
        .route("/v1/userinfo", get(signin::userinfo))
        .route("/revoke", post(signin::revoke))
        .route("/picture/{sub}", get(signin::picture))
        .route("/oauth2/v3/tokeninfo", get(oauth::tokeninfo))
        .route("/storage/v1/b", get(storage::list_buckets))
        .route(
            "/v1/projects/{project}/serviceAccounts/{target}",
            post(iam::service_account_method),
        )
        .route(
            "/robot/v1/metadata/x509/{email}",
            get(certs::service_account_certs),
        )
        .route(
            "/service_accounts/v1/metadata/x509/{email}",
            get(certs::service_account_certs),
        )
        .route(
            "/service_accounts/v1/metadata/jwk/{email}",
            get(certs::service_account_jwks),
        )
        .route(
            "/service_accounts/v1/metadata/raw/{email}",
            get(certs::service_account_raw_keys),
        )
        .fallback(not_found)
        .with_state(shared)
        .layer(middleware::from_fn_with_state(hosts, host::guard))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
        "<!DOCTYPE html>\n<html lang=en>\n<title>Error 404 (Not Found)!!1</title>\n<p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n",
    )
}
