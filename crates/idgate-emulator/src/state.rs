//! State shared by the running server, the [`crate::Emulator`] handle and the IAP proxy: keys, service
//! accounts, issued access tokens, hit counters and queued faults.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use url::Url;

use crate::host::AllowedHosts;
use crate::keys::{EcKey, KeyRing, RsaKey};

/// Every route (Google endpoint) the emulator serves, for [`crate::Emulator::hits`] and [`crate::Emulator::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Route {
    /// `GET /oauth2/v3/certs`: the OIDC JWKS.
    OidcJwks,
    /// `GET /oauth2/v1/certs`: the OIDC X.509 certificates.
    OidcPemCerts,
    /// `GET /.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// `GET /iap/verify/public_key-jwk`: the IAP JWKS.
    IapJwks,
    /// `GET /iap/verify/public_key`: the IAP SPKI PEM keys.
    IapPem,
    /// `GET /computeMetadata/v1/instance/service-accounts/{account}/identity`.
    MetadataIdentity,
    /// `GET /computeMetadata/v1/instance/service-accounts/{account}/email`.
    MetadataEmail,
    /// `GET /computeMetadata/v1/instance/service-accounts/{account}/token`.
    MetadataAccessToken,
    /// `GET /computeMetadata/v1/instance/service-accounts/{account}/` (with `?recursive=true`: the JSON
    /// `{aliases, email, scopes}` google-auth reads) and `.../{account}/scopes`.
    MetadataServiceAccountInfo,
    /// `GET /` on the metadata host: the liveness probe google-auth sends to `GCE_METADATA_IP`.
    MetadataRoot,
    /// `GET /computeMetadata/v1/project/project-id`.
    MetadataProjectId,
    /// `GET /computeMetadata/v1/project/numeric-project-id`.
    MetadataNumericProjectId,
    /// `POST /token`: the OAuth 2.0 token endpoint (jwt-bearer grant).
    Token,
    /// `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken`: IAM Credentials.
    GenerateIdToken,
    /// `GET /service_accounts/v1/metadata/x509/{email}` (and its older alias `/robot/v1/metadata/x509/{email}`):
    /// a service account's public keys as X.509 certificates, `{key_id: PEM}`.
    ServiceAccountCerts,
    /// `GET /oauth2/v3/tokeninfo?access_token=...`: what an access token grants.
    AccessTokenInfo,
    /// `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`: IAM Credentials.
    GenerateAccessToken,
    /// `POST /v1/projects/-/serviceAccounts/{email}:signJwt`: IAM Credentials.
    SignJwt,
    /// `GET /storage/v1/b?project=P`: Cloud Storage's bucket list, the emulated Google API.
    StorageBuckets,
    /// `POST /v1/projects/-/serviceAccounts/{email}:signBlob`: IAM Credentials.
    SignBlob,
    /// `GET /service_accounts/v1/metadata/jwk/{email}`: a service account's public keys as a JWKS.
    ServiceAccountJwks,
    /// `GET /service_accounts/v1/metadata/raw/{email}`: a service account's public keys as
    /// `{"keyvalues": [{keyid, algorithm, modulus, exponent}]}`.
    ServiceAccountRawKeys,
    /// `GET /computeMetadata/v1/instance/zone`: `projects/NUMBER/zones/ZONE`.
    MetadataZone,
    /// `GET /computeMetadata/v1/instance/region`: `projects/NUMBER/regions/REGION` where a region is configured
    /// (Cloud Run, Cloud Run functions, App Engine), else 404 (Compute Engine, GKE).
    MetadataRegion,
    /// `GET /computeMetadata/v1/universe/universe-domain`: `googleapis.com` unless configured.
    MetadataUniverseDomain,
    /// `GET /computeMetadata/v1/instance/attributes/cluster-name`: the GKE cluster's name where one is configured,
    /// else 404.
    MetadataClusterName,
    /// `GET /o/oauth2/v2/auth`: Google's authorization endpoint (sign in with Google), the account chooser page.
    Authorization,
    /// `POST /o/oauth2/v2/auth/oauthchooseaccount`: the account chooser's forms (a user chosen, or "Deny").
    AccountChooser,
    /// `GET /v1/userinfo`: OpenID Connect userinfo (`openidconnect.googleapis.com`).
    UserInfo,
    /// `POST /revoke`: token revocation (`oauth2.googleapis.com/revoke`).
    Revoke,
    /// `GET /picture/{sub}`: a test user's profile picture (an SVG), what `picture` claims point at by default.
    UserPicture,
}

impl Route {
    /// Every endpoint, in declaration order.
    pub const ALL: [Self; 31] = [
        Self::OidcJwks,
        Self::OidcPemCerts,
        Self::OpenIdConfiguration,
        Self::IapJwks,
        Self::IapPem,
        Self::MetadataIdentity,
        Self::MetadataEmail,
        Self::MetadataAccessToken,
        Self::MetadataServiceAccountInfo,
        Self::MetadataRoot,
        Self::MetadataProjectId,
        Self::MetadataNumericProjectId,
        Self::Token,
        Self::GenerateIdToken,
        Self::ServiceAccountCerts,
        Self::AccessTokenInfo,
        Self::GenerateAccessToken,
        Self::SignJwt,
        Self::StorageBuckets,
        Self::SignBlob,
        Self::ServiceAccountJwks,
        Self::ServiceAccountRawKeys,
        Self::MetadataZone,
        Self::MetadataRegion,
        Self::MetadataUniverseDomain,
        Self::MetadataClusterName,
        Self::Authorization,
        Self::AccountChooser,
        Self::UserInfo,
        Self::Revoke,
        Self::UserPicture,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Whether this endpoint belongs to the metadata server (whose every answer carries
    /// `Metadata-Flavor: Google`).
    #[must_use]
    pub fn is_metadata(self) -> bool {
        matches!(
            self,
            Self::MetadataIdentity
                | Self::MetadataEmail
                | Self::MetadataAccessToken
                | Self::MetadataServiceAccountInfo
                | Self::MetadataRoot
                | Self::MetadataProjectId
                | Self::MetadataNumericProjectId
                | Self::MetadataZone
                | Self::MetadataRegion
                | Self::MetadataUniverseDomain
                | Self::MetadataClusterName
        )
    }

    /// The content type of this endpoint's successful answers.
    fn content_type(self) -> &'static str {
        match self {
            Self::MetadataIdentity
            | Self::MetadataEmail
            | Self::MetadataRoot
            | Self::MetadataProjectId
            | Self::MetadataNumericProjectId
            | Self::MetadataZone
            | Self::MetadataRegion
            | Self::MetadataUniverseDomain
            | Self::MetadataClusterName => "text/plain; charset=utf-8",
            Self::Authorization | Self::AccountChooser => "text/html; charset=utf-8",
            Self::UserPicture => "image/svg+xml",
            _ => "application/json; charset=UTF-8",
        }
    }
}

/// A fault the emulator plays instead of (or before) a normal answer. See [`crate::Emulator::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP status (an invalid code becomes 500) and a Google-style error body.
    Status(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Never answer (until the emulator shuts down, when the request gets a 503).
    Hang,
    /// Answer 200 with the endpoint's content type and a body that is not what the endpoint serves.
    Garbage,
}

/// The body a [`Fault::Garbage`] answer carries: truncated, invalid UTF-8, invalid JSON, not a JWT.
pub(crate) const GARBAGE: &[u8] = b"<html>\xff\xfe{\"keys\": [{\"kid\": \"garbage";

/// Static configuration fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) project_id: String,
    pub(crate) project_number: u64,
    pub(crate) oidc_max_age: u64,
    pub(crate) iap_max_age: u64,
    pub(crate) service_account_keys_max_age: u64,
    pub(crate) age: u64,
    pub(crate) metadata_service_account: String,
    pub(crate) zone: String,
    /// `None`: `instance/region` answers 404, as on Compute Engine.
    pub(crate) region: Option<String>,
    pub(crate) universe_domain: String,
    /// `None`: `instance/attributes/cluster-name` answers 404 (not GKE).
    pub(crate) gke_cluster: Option<String>,
    pub(crate) instance_name: String,
    pub(crate) instance_id: String,
    pub(crate) instance_creation_timestamp: i64,
    pub(crate) license_ids: Vec<String>,
}

/// A registered service account.
#[derive(Debug, Clone)]
pub(crate) struct ServiceAccountRecord {
    pub(crate) unique_id: String,
    /// private_key_id -> key.
    pub(crate) keys: HashMap<String, Arc<RsaKey>>,
    /// The id of the key the emulator holds for `signJwt` and `signBlob` (Google's system-managed key), once created;
    /// it is also in `keys`, so its certificate is published and the token endpoint accepts its JWTs.
    pub(crate) system_key: Option<String>,
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct AccessTokenRecord {
    /// The principal: a service account, or a user (refresh-token grant).
    pub(crate) email: String,
    /// The Workspace user a domain-wide-delegated token acts for.
    pub(crate) subject: Option<String>,
    /// The OAuth client the token was issued to (`azp`/`aud` of tokeninfo).
    pub(crate) client_id: String,
    pub(crate) scopes: std::collections::BTreeSet<String>,
    pub(crate) expires_at: i64,
}

/// Everything shared. `Debug` shows configuration only: no keys, no issued access tokens.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) base_url: Url,
    pub(crate) oidc: RwLock<KeyRing<RsaKey>>,
    pub(crate) iap: RwLock<KeyRing<EcKey>>,
    pub(crate) unknown_rsa: RsaKey,
    pub(crate) unknown_ec: EcKey,
    /// The Host rule of the emulator and of every IAP proxy in front of it.
    pub(crate) allowed_hosts: Arc<AllowedHosts>,
    pub(crate) service_accounts: RwLock<HashMap<String, ServiceAccountRecord>>,
    pub(crate) access_tokens: Mutex<HashMap<String, AccessTokenRecord>>,
    /// Who may act for whom, and who may delegate domain-wide, and which buckets exist: see `access.rs`.
    pub(crate) grants: RwLock<crate::access::Grants>,
    /// Sign in with Google: OAuth clients, test users, authorization requests and codes: see `signin.rs`.
    pub(crate) signin: Mutex<crate::signin::SigninState>,
    hits: [AtomicU64; Route::ALL.len()],
    faults: Mutex<HashMap<Route, VecDeque<(Fault, u32)>>>,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url.as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Config,
        base_url: Url,
        oidc: KeyRing<RsaKey>,
        iap: KeyRing<EcKey>,
        unknown_rsa: RsaKey,
        unknown_ec: EcKey,
        allowed_hosts: AllowedHosts,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            signin: Mutex::new(crate::signin::SigninState::with_default_users(&base_url)),
            base_url,
            oidc: RwLock::new(oidc),
            iap: RwLock::new(iap),
            unknown_rsa,
            unknown_ec,
            allowed_hosts: Arc::new(allowed_hosts),
            service_accounts: RwLock::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            grants: RwLock::new(crate::access::Grants::default()),
            hits: std::array::from_fn(|_| AtomicU64::new(0)),
            faults: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Registers the metadata server's service account (no keys: the metadata server signs for it).
    pub(crate) fn register_metadata_account(&self) {
        let email = self.config.metadata_service_account.clone();
        write(&self.service_accounts)
            .entry(email.clone())
            .or_insert_with(|| ServiceAccountRecord {
                unique_id: crate::token::numeric_id(&email),
                keys: HashMap::new(),
                system_key: None,
            });
    }

    /// An absolute URL on the emulator.
    pub(crate) fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(path);
        url
    }

    pub(crate) fn hits(&self, endpoint: Route) -> u64 {
        self.hits[endpoint.index()].load(Ordering::SeqCst)
    }

    pub(crate) fn reset_hits(&self) {
        for h in &self.hits {
            h.store(0, Ordering::SeqCst);
        }
    }

    pub(crate) fn inject(&self, endpoint: Route, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        lock(&self.faults)
            .entry(endpoint)
            .or_default()
            .push_back((fault, times));
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    fn take_fault(&self, endpoint: Route) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let queue = faults.get_mut(&endpoint)?;
        let (fault, remaining) = queue.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    /// Resolves when the emulator shuts down (or its handle is gone).
    pub(crate) async fn shut_down(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Every handler starts here: count the hit, then play a queued fault if there is one.
    /// `Some(response)` means: answer this instead.
    pub(crate) async fn enter(&self, endpoint: Route) -> Option<Response> {
        self.hits[endpoint.index()].fetch_add(1, Ordering::SeqCst);
        let fault = self.take_fault(endpoint)?;
        let response = match fault {
            Fault::Delay(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => return None,
                    () = self.shut_down() => fault_status(endpoint, StatusCode::SERVICE_UNAVAILABLE),
                }
            }
            Fault::Hang => {
                self.shut_down().await;
                fault_status(endpoint, StatusCode::SERVICE_UNAVAILABLE)
            }
            Fault::Status(code) => fault_status(
                endpoint,
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ),
            Fault::Garbage => {
                let mut r = Response::new(Body::from(GARBAGE));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(endpoint.content_type()),
                );
                r
            }
        };
        Some(with_flavor(endpoint, response))
    }
}

/// Adds `Metadata-Flavor: Google` to metadata-server answers.
pub(crate) fn with_flavor(endpoint: Route, mut response: Response) -> Response {
    if endpoint.is_metadata() {
        response
            .headers_mut()
            .insert("metadata-flavor", HeaderValue::from_static("Google"));
    }
    response
}

/// A Google-shaped error answer for an injected status.
fn fault_status(endpoint: Route, status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    match endpoint {
        Route::Token | Route::AccessTokenInfo | Route::UserInfo | Route::Revoke => (
            status,
            axum::Json(serde_json::json!({
                "error": "internal_failure",
                "error_description": reason,
            })),
        )
            .into_response(),
        Route::GenerateIdToken
        | Route::GenerateAccessToken
        | Route::SignJwt
        | Route::SignBlob
        | Route::StorageBuckets => (
            status,
            axum::Json(serde_json::json!({
                "error": {"code": status.as_u16(), "message": reason, "status": grpc_status(status)}
            })),
        )
            .into_response(),
        _ => {
            let code = status.as_u16();
            let body = format!(
                "<!DOCTYPE html>\n<html lang=en>\n<title>Error {code} ({reason})!!1</title>\n\
                 <p><b>{code}.</b> <ins>That\u{2019}s an error.</ins>\n"
            );
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                body,
            )
                .into_response()
        }
    }
}

/// The `google.rpc.Code` name Google's JSON errors carry for an HTTP status.
pub(crate) fn grpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status.is_client_error() => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_all_matches_indices() {
        for (i, e) in Route::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
