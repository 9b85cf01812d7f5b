//! Access tokens end to end, one story per test: the emulator is set up (grants, delegation, buckets, faults), the
//! real client mints and attaches over loopback HTTP, and the test checks what the emulator saw: its tokeninfo,
//! its hit counters and the answers of its Cloud Storage API.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use idgate_client::{
    AccessTokenMiddleware, AccessTokenSource, Adc, AdcKind, AddAccessTokenLayer, AuthorizedUser,
    CachedSource, Endpoint, HttpOptions, Impersonated, MetadataServer, RetryPolicy, Scopes,
    ServiceAccountKey, SourceError,
};
use idgate_core::clock::{Clock, ManualClock};
use idgate_core::google::Endpoints;
use idgate_emulator::{AccessTokenInfo, Emulator, Fault, Route};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

use crate::helpers::{METADATA_SA, emulator, metadata_answering, quick_retry};

const PROJECT: &str = "emu-project";
const STORAGE_RO: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const ADMIN_USERS: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const ADMIN_GROUPS: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const GMAIL: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// The Workspace user domain-wide delegation acts for.
const WORKSPACE_USER: &str = "alice@example.com";

fn scopes(list: &[&str]) -> Scopes {
    Scopes::new(list.iter().copied()).expect("valid scopes")
}

/// `list`, sorted: tokeninfo reports a set, in no promised order.
fn sorted<S: AsRef<str>>(list: &[S]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}

/// What the emulator recorded about `token` (it must have issued it, and it must be live).
fn info(emu: &Emulator, token: &str) -> AccessTokenInfo {
    emu.tokeninfo(token)
        .expect("the emulator issued this token and it is live")
}

fn no_retry() -> HttpOptions {
    HttpOptions::new().retry(RetryPolicy::none())
}

fn sa(name: &str) -> String {
    format!("{name}@{PROJECT}.iam.gserviceaccount.com")
}

fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<OsString> + Send + Sync + 'static {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn buckets_url(emu: &Emulator, project: &str) -> String {
    format!("{}storage/v1/b?project={project}", emu.storage_url())
}

fn bucket_names(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|b| b["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The token in a `Bearer` header value.
fn bearer(value: &str) -> &str {
    value.strip_prefix("Bearer ").expect("Bearer scheme")
}

/// A reqwest-middleware stage after [`AccessTokenMiddleware`]: records the `authorization` and
/// `x-goog-user-project` of every request that goes out (the emulator's Storage API does not report the latter).
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Option<String>, Option<String>)>>>);

impl Recorder {
    fn seen(&self) -> Vec<(Option<String>, Option<String>)> {
        self.0.lock().unwrap().clone()
    }

    /// The access tokens sent, in order.
    fn tokens(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|(auth, _)| bearer(auth.as_deref().expect("authorization sent")).to_owned())
            .collect()
    }
}

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let get = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let entry = (get("authorization"), get("x-goog-user-project"));
        self.0.lock().unwrap().push(entry);
        next.run(req, extensions).await
    }
}

fn storage_client<S: AccessTokenSource + 'static>(
    middleware: AccessTokenMiddleware<S>,
    recorder: &Recorder,
) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(middleware)
        .with(recorder.clone())
        .build()
}

// 1. The metadata server's `token?scopes=`, and the cache in front of it.

#[tokio::test]
async fn metadata_tokens_grant_exactly_the_asked_scopes_and_scope_order_never_mints_twice() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url());
    let token = metadata
        .access_token(&scopes(&[STORAGE_RO, ADMIN_USERS]))
        .await
        .unwrap();
    let granted = info(&emu, token.as_str());
    assert_eq!(granted.email(), METADATA_SA);
    assert_eq!(granted.subject(), None);
    assert_eq!(sorted(granted.scopes()), sorted(&[STORAGE_RO, ADMIN_USERS]));
    // The same over HTTP, as a user checks a token.
    let mut url = emu.tokeninfo_url();
    url.query_pairs_mut()
        .append_pair("access_token", token.as_str());
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["email"], METADATA_SA);
    let scope: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(sorted(&scope), sorted(&[STORAGE_RO, ADMIN_USERS]));

    // Through the cache: the same set asked in another order (and with a duplicate) is the same entry.
    let cached = CachedSource::new(metadata);
    let before = emu.hits(Route::MetadataAccessToken);
    let first = cached
        .access_token(&scopes(&[ADMIN_USERS, STORAGE_RO]))
        .await
        .unwrap();
    let again = cached
        .access_token(&scopes(&[STORAGE_RO, ADMIN_USERS, STORAGE_RO]))
        .await
        .unwrap();
    assert_eq!(first.as_str(), again.as_str());
    assert_eq!(emu.hits(Route::MetadataAccessToken), before + 1);
    // Another set is another token, granting only what it asked.
    let narrow = cached.access_token(&scopes(&[STORAGE_RO])).await.unwrap();
    assert_ne!(narrow.as_str(), first.as_str());
    assert_eq!(emu.hits(Route::MetadataAccessToken), before + 2);
    assert_eq!(info(&emu, narrow.as_str()).scopes(), [STORAGE_RO]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_calls_mint_one_token_granting_the_asked_scopes() {
    let emu = emulator().await;
    let cached = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let cached = cached.clone();
            let asked = if i % 3 == 0 {
                scopes(&[ADMIN_USERS, STORAGE_RO])
            } else {
                scopes(&[STORAGE_RO, ADMIN_USERS])
            };
            tokio::spawn(async move { cached.access_token(&asked).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap());
    }
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);
    assert!(tokens.windows(2).all(|w| w[0].as_str() == w[1].as_str()));
    assert_eq!(
        sorted(info(&emu, tokens[0].as_str()).scopes()),
        sorted(&[STORAGE_RO, ADMIN_USERS])
    );
}

// 2. Domain-wide delegation with a key file.

#[tokio::test]
async fn key_file_domain_wide_delegation_allowed_and_refused() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let email = sa("directory-sync");
    let file = emu.create_service_account(&email);
    let client_id = file.client_id().to_owned();
    let path = file.write_key_file(dir.path()).unwrap();
    let key = ServiceAccountKey::from_file(&path)
        .unwrap()
        .subject(WORKSPACE_USER)
        .http(no_retry());

    // No Admin-console entry yet: refused, and the error says what to authorize.
    let err = key.access_token(&scopes(&[ADMIN_USERS])).await.unwrap_err();
    assert!(err.is_delegation_denied(), "{err}");
    let message = err.to_string();
    for needle in [client_id.as_str(), ADMIN_USERS, WORKSPACE_USER] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    assert_eq!(err.endpoint(), Some(Endpoint::OAuthToken));
    assert_eq!(emu.hits(Route::Token), 1);

    // Authorized for two scopes: a token for the user, with exactly the scopes asked.
    emu.enable_domain_wide_delegation(&email, &[ADMIN_USERS, ADMIN_GROUPS]);
    let token = key
        .access_token(&scopes(&[ADMIN_GROUPS, ADMIN_USERS]))
        .await
        .unwrap();
    let granted = info(&emu, token.as_str());
    assert_eq!(granted.email(), email);
    assert_eq!(granted.subject(), Some(WORKSPACE_USER));
    assert_eq!(
        sorted(granted.scopes()),
        sorted(&[ADMIN_USERS, ADMIN_GROUPS])
    );
    // Google's tokeninfo reports a delegated token as the user's.
    let mut url = emu.tokeninfo_url();
    url.query_pairs_mut()
        .append_pair("access_token", token.as_str());
    let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["email"], WORKSPACE_USER);

    // A scope outside the grant: refused, naming every scope asked.
    let err = key
        .access_token(&scopes(&[ADMIN_USERS, GMAIL]))
        .await
        .unwrap_err();
    assert!(err.is_delegation_denied(), "{err}");
    let message = err.to_string();
    for needle in [client_id.as_str(), ADMIN_USERS, GMAIL] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    // Google's own answer is the cause, not part of the message.
    let cause = std::error::Error::source(&err)
        .and_then(|c| c.downcast_ref::<Box<SourceError>>())
        .expect("the token endpoint's answer");
    assert_eq!(cause.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(cause.to_string().contains("unauthorized"), "{cause}");

    // Without a subject the same key is not delegating: no Admin-console entry is needed.
    let plain = ServiceAccountKey::from_file(&path).unwrap();
    let token = plain.access_token(&scopes(&[STORAGE_RO])).await.unwrap();
    assert_eq!(info(&emu, token.as_str()).subject(), None);
}

// 3. Impersonation through a delegate chain.

#[tokio::test]
async fn impersonation_through_a_two_delegate_chain_and_a_missing_hop() {
    let emu = emulator().await;
    let (hop1, hop2, target) = (sa("hop-one"), sa("hop-two"), sa("deployer"));
    for account in [&hop1, &hop2, &target] {
        let _ = emu.create_service_account(account);
    }
    emu.allow_impersonation(METADATA_SA, &hop1);
    emu.allow_impersonation(&hop1, &hop2);
    let impersonated = Impersonated::new(MetadataServer::from_base_url(&emu.base_url()), &target)
        .delegates([hop1.as_str(), hop2.as_str()])
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(no_retry());
    let asked = scopes(&[STORAGE_RO]);

    // The last hop is not granted: IAM's 403, typed, and no token.
    let err = impersonated.access_token(&asked).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::IamCredentials));
    assert!(
        err.to_string()
            .contains("iam.serviceAccounts.getAccessToken"),
        "{err}"
    );
    assert!(!err.is_delegation_denied());
    assert_eq!(emu.hits(Route::GenerateAccessToken), 1);

    // Every hop granted: the token is the target's, for the asked scopes.
    emu.allow_impersonation(&hop2, &target);
    let token = impersonated.access_token(&asked).await.unwrap();
    let granted = info(&emu, token.as_str());
    assert_eq!(granted.email(), target);
    assert_eq!(granted.subject(), None);
    assert_eq!(granted.scopes(), [STORAGE_RO]);
    assert!(token.lifetime().unwrap() > Duration::from_secs(3000));
    assert_eq!(emu.hits(Route::GenerateAccessToken), 2);
    // The source's cloud-platform token was minted once and reused for both IAM calls.
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);
}

// 4. Keyless domain-wide delegation: signJwt as the target, then the JWT-bearer grant.

#[tokio::test]
async fn keyless_domain_wide_delegation_allowed_and_refused() {
    let emu = emulator().await;
    let target = sa("keyless-dwd");
    let _ = emu.create_service_account(&target);
    emu.allow_impersonation(METADATA_SA, &target);
    let keyless = Impersonated::new(MetadataServer::from_base_url(&emu.base_url()), &target)
        .subject(WORKSPACE_USER)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(no_retry());
    let asked = scopes(&[ADMIN_USERS]);

    // IAM signs, but the target is not authorized for delegation: refused by the token endpoint.
    let err = keyless.access_token(&asked).await.unwrap_err();
    assert!(err.is_delegation_denied(), "{err}");
    let message = err.to_string();
    for needle in [target.as_str(), ADMIN_USERS, WORKSPACE_USER] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    assert_eq!(emu.hits(Route::SignJwt), 1);
    assert_eq!(emu.hits(Route::Token), 1);

    emu.enable_domain_wide_delegation(&target, &[ADMIN_USERS]);
    let token = keyless.access_token(&asked).await.unwrap();
    let granted = info(&emu, token.as_str());
    assert_eq!(granted.email(), target);
    assert_eq!(granted.subject(), Some(WORKSPACE_USER));
    assert_eq!(granted.scopes(), [ADMIN_USERS]);
    assert_eq!(emu.hits(Route::SignJwt), 2);
    assert_eq!(emu.hits(Route::GenerateAccessToken), 0);

    // Without the Token Creator grant on the target, IAM refuses to sign: a 403, not a delegation refusal.
    let stranger = sa("not-granted");
    let _ = emu.create_service_account(&stranger);
    emu.enable_domain_wide_delegation(&stranger, &[ADMIN_USERS]);
    let err = Impersonated::new(MetadataServer::from_base_url(&emu.base_url()), &stranger)
        .subject(WORKSPACE_USER)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(no_retry())
        .access_token(&asked)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err}");
    assert!(!err.is_delegation_denied());
    assert_eq!(emu.hits(Route::Token), 2);
}

// 5. A gcloud user credential.

#[tokio::test]
async fn authorized_user_tokens_narrow_to_the_asked_scopes() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let file = emu.create_authorized_user("dev@example.com");
    let user = AuthorizedUser::from_file(file.write_key_file(dir.path()).unwrap()).unwrap();
    let token = user.access_token(&Scopes::cloud_platform()).await.unwrap();
    let granted = info(&emu, token.as_str());
    assert_eq!(granted.email(), "dev@example.com");
    assert_eq!(granted.scopes(), [CLOUD_PLATFORM]);
    assert_eq!(token.scopes(), Some(&Scopes::cloud_platform()));

    // Beyond what the user consented to: Google's 400 invalid_scope, not retried.
    let err = user
        .clone()
        .http(no_retry())
        .access_token(&scopes(&[GMAIL]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
    assert_eq!(emu.hits(Route::Token), 2);
}

// 6. ADC with a user credential file, and the quota project.

#[tokio::test]
async fn adc_with_an_authorized_user_file_mints_and_names_the_quota_project() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let file = emu.create_authorized_user("dev@example.com");
    let mut json: Value = serde_json::from_str(&file.to_json()).unwrap();
    json["quota_project_id"] = json!("billed-by-file");
    let path = write_json(dir.path(), "adc.json", &json);

    let adc = Adc::builder()
        .env(env(&[("GOOGLE_APPLICATION_CREDENTIALS", path.clone())]))
        .accept_user_credentials(true)
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::AuthorizedUser);
    assert_eq!(adc.quota_project(), Some("billed-by-file"));
    let token = adc.access_token(&scopes(&[STORAGE_RO])).await;
    // gcloud's ADC consent has cloud-platform, not the narrower storage scope: refused as Google does.
    assert_eq!(
        token.unwrap_err().status(),
        Some(StatusCode::BAD_REQUEST),
        "a scope outside gcloud's consent"
    );
    let token = adc.access_token(&Scopes::cloud_platform()).await.unwrap();
    assert_eq!(info(&emu, token.as_str()).email(), "dev@example.com");

    // GOOGLE_CLOUD_QUOTA_PROJECT wins over the file.
    let adc = Adc::builder()
        .env(env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", path),
            ("GOOGLE_CLOUD_QUOTA_PROJECT", "billed-by-env".to_owned()),
        ]))
        .accept_user_credentials(true)
        .build()
        .unwrap();
    assert_eq!(
        AccessTokenSource::quota_project(&adc),
        Some("billed-by-env")
    );

    // Through the middleware: the Storage call is authorized and billed to the quota project.
    let recorder = Recorder::default();
    let client = storage_client(
        AccessTokenMiddleware::new(CachedSource::new(adc)).allow_host("127.0.0.1"),
        &recorder,
    );
    let response = client.get(buckets_url(&emu, PROJECT)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = recorder.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some("billed-by-env"));
    assert_eq!(info(&emu, &recorder.tokens()[0]).email(), "dev@example.com");
}

// 7. Both adapters against the emulated Cloud Storage bucket list.

#[tokio::test]
async fn reqwest_middleware_lists_buckets_with_the_quota_project_and_passes_403_through() {
    let emu = emulator().await;
    emu.create_bucket(PROJECT, "idgate-e2e-assets");
    emu.create_bucket("someone-else", "not-ours");
    let source = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let recorder = Recorder::default();
    let client = storage_client(
        AccessTokenMiddleware::new(source)
            .allow_host("127.0.0.1")
            .scopes(scopes(&[STORAGE_RO]))
            .quota_project("billing-project"),
        &recorder,
    );
    let url = buckets_url(&emu, PROJECT);

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        bucket_names(&body),
        ["emu-project.appspot.com", "idgate-e2e-assets"]
    );
    let seen = recorder.seen();
    assert_eq!(seen[0].1.as_deref(), Some("billing-project"));
    let token = &recorder.tokens()[0];
    assert_eq!(info(&emu, token).scopes(), [STORAGE_RO]);

    // Warm: the cached token again, no mint.
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&recorder.tokens()[1], token);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);

    // Per-request scopes without a storage scope: the API's 403 is the answer, untouched and not retried.
    let response = client
        .get(&url)
        .with_extension(scopes(&[ADMIN_USERS]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 403);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);
    assert_eq!(emu.hits(Route::StorageBuckets), 3);
}

#[tokio::test]
async fn reqwest_middleware_a_401_drops_the_token_and_retries_once_never_more() {
    let emu = emulator().await;
    let source = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let recorder = Recorder::default();
    let client = storage_client(
        AccessTokenMiddleware::new(source)
            .allow_host("127.0.0.1")
            .scopes(scopes(&[STORAGE_RO])),
        &recorder,
    );
    let url = buckets_url(&emu, PROJECT);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let first = recorder.tokens()[0].clone();

    // The token dies early (revoked, or its hour is up by Google's clock): Storage answers 401 to it; the
    // middleware drops it, mints once more and the call succeeds.
    assert!(emu.expire_access_token(&first));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = recorder.tokens();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[1], first);
    assert_ne!(tokens[2], first);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);
    assert_eq!(emu.hits(Route::StorageBuckets), 3);

    // Refused twice, the fresh token too: one retry, then the 401 is the answer. No loop.
    emu.inject(Route::StorageBuckets, Fault::Status(401), 2);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 3);
    assert_eq!(emu.hits(Route::StorageBuckets), 5);
    // The token minted for the retry is kept and works.
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 3);
    let tokens = recorder.tokens();
    assert_eq!(tokens.len(), 6);
    assert_eq!(tokens[5], tokens[4]);
}

type Body = Full<Bytes>;

#[tokio::test]
async fn tower_layer_over_hyper_lists_buckets_and_retries_a_401_once() {
    let emu = emulator().await;
    emu.create_bucket(PROJECT, "idgate-e2e-assets");
    let source = CachedSource::new(MetadataServer::from_base_url(&emu.base_url()));
    let seen: Arc<Mutex<Vec<(String, Option<String>)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let client = ServiceBuilder::new()
        .layer(
            AddAccessTokenLayer::new(source)
                .allow_host("127.0.0.1")
                .scopes(scopes(&[STORAGE_RO]))
                .quota_project("billing-project")
                .replay_cloneable_bodies(),
        )
        .map_request(move |req: http::Request<Body>| {
            let get = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let auth = get("authorization").expect("authorization sent");
            record
                .lock()
                .unwrap()
                .push((bearer(&auth).to_owned(), get("x-goog-user-project")));
            req
        })
        .service(Client::builder(TokioExecutor::new()).build_http::<Body>());
    let request = || {
        http::Request::get(buckets_url(&emu, PROJECT))
            .body(Body::default())
            .unwrap()
    };
    let tokens = || {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
    };

    let response = client.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        bucket_names(&body),
        ["emu-project.appspot.com", "idgate-e2e-assets"]
    );
    assert_eq!(
        seen.lock().unwrap()[0].1.as_deref(),
        Some("billing-project")
    );
    let first = tokens()[0].clone();
    assert_eq!(info(&emu, &first).scopes(), [STORAGE_RO]);

    // Expired early: 401, dropped, replayed once with a fresh token.
    assert!(emu.expire_access_token(&first));
    let response = client.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent = tokens();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1], first);
    assert_ne!(sent[2], first);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);

    // Refused twice: one replay, then the 401.
    emu.inject(Route::StorageBuckets, Fault::Status(401), 2);
    let response = client.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 3);
    assert_eq!(emu.hits(Route::StorageBuckets), 5);

    // Without replay, a 401 still drops the token (the next request mints) but is not retried.
    let plain = ServiceBuilder::new()
        .layer(
            AddAccessTokenLayer::new(CachedSource::new(MetadataServer::from_base_url(
                &emu.base_url(),
            )))
            .allow_host("127.0.0.1")
            .scopes(scopes(&[STORAGE_RO])),
        )
        .service(Client::builder(TokioExecutor::new()).build_http::<Body>());
    assert_eq!(
        plain.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    emu.inject(Route::StorageBuckets, Fault::Status(401), 1);
    assert_eq!(
        plain.clone().oneshot(request()).await.unwrap().status(),
        401
    );
    assert_eq!(emu.hits(Route::StorageBuckets), 7);
    assert_eq!(
        plain.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(emu.hits(Route::MetadataAccessToken), 5);
}

// 8. Refresh ahead of expiry, and a failed refresh keeps serving the still-valid token.

#[tokio::test]
async fn access_tokens_refresh_ahead_and_a_failed_refresh_serves_the_valid_token() {
    let emu = emulator().await;
    let clock = ManualClock::starting_now();
    let source = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let cached = CachedSource::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let asked = scopes(&[STORAGE_RO]);
    let first = cached.access_token(&asked).await.unwrap();
    // The metadata server reports a lifetime; the cache counts it from its clock's now.
    let expires_at = clock.now() + first.lifetime().expect("a lifetime");

    // Well before the refresh window: the cached token, no request.
    clock.set(expires_at - Duration::from_secs(5 * 60));
    assert_eq!(
        cached.access_token(&asked).await.unwrap().as_str(),
        first.as_str()
    );
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);

    // Inside the window with the metadata server failing: the refresh fails after its retries, and the token
    // (still good for 3 minutes) is served; the dead endpoint is not asked again on every call.
    emu.inject(Route::MetadataAccessToken, Fault::Status(503), 100);
    clock.set(expires_at - Duration::from_secs(3 * 60));
    assert_eq!(
        cached.access_token(&asked).await.unwrap().as_str(),
        first.as_str()
    );
    let after_failure = emu.hits(Route::MetadataAccessToken);
    assert_eq!(after_failure, 1 + 3);
    for _ in 0..10 {
        assert_eq!(
            cached.access_token(&asked).await.unwrap().as_str(),
            first.as_str()
        );
    }
    assert_eq!(emu.hits(Route::MetadataAccessToken), after_failure);

    // The server is back and the backoff is over: refreshed ahead of expiry, a new live token.
    emu.clear_faults();
    clock.advance(Duration::from_secs(6));
    let fresh = cached.access_token(&asked).await.unwrap();
    assert_ne!(fresh.as_str(), first.as_str());
    assert_eq!(emu.hits(Route::MetadataAccessToken), after_failure + 1);
    assert_eq!(info(&emu, fresh.as_str()).scopes(), [STORAGE_RO]);
    assert_eq!(
        cached.access_token(&asked).await.unwrap().as_str(),
        fresh.as_str()
    );
}

// 9. Hostile answers and faults.

#[tokio::test]
async fn metadata_faults_are_retried_then_typed_never_a_panic() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let asked = Scopes::cloud_platform();

    // 503 twice, then a token.
    emu.inject(Route::MetadataAccessToken, Fault::Status(503), 2);
    let token = metadata.access_token(&asked).await.unwrap();
    assert_eq!(info(&emu, token.as_str()).email(), METADATA_SA);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 3);

    // 429 for ever: a typed transient error after a bounded number of attempts.
    emu.inject(Route::MetadataAccessToken, Fault::Status(429), 100);
    let err = metadata.access_token(&asked).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(err.attempts(), Some(3));
    assert_eq!(emu.hits(Route::MetadataAccessToken), 6);
    emu.clear_faults();

    // Garbage from every access-token endpoint: a typed error naming the source, not retried.
    emu.inject(Route::MetadataAccessToken, Fault::Garbage, 1);
    let err = metadata.access_token(&asked).await.unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::MetadataServer));
    assert!(err.to_string().contains("metadata server"), "{err}");
    assert_eq!(emu.hits(Route::MetadataAccessToken), 7);

    let dir = tempfile::tempdir().unwrap();
    let key = ServiceAccountKey::from_file(
        emu.create_service_account(&sa("garbage"))
            .write_key_file(dir.path())
            .unwrap(),
    )
    .unwrap()
    .http(HttpOptions::new().retry(quick_retry()));
    emu.inject(Route::Token, Fault::Garbage, 1);
    let err = key.access_token(&asked).await.unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::OAuthToken));
    assert!(err.to_string().contains("OAuth token endpoint"), "{err}");

    let target = sa("garbage-target");
    let _ = emu.create_service_account(&target);
    emu.allow_impersonation(METADATA_SA, &target);
    let impersonated = Impersonated::new(metadata.clone(), &target)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(HttpOptions::new().retry(quick_retry()));
    emu.inject(Route::GenerateAccessToken, Fault::Garbage, 1);
    let err = impersonated.access_token(&asked).await.unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::IamCredentials));
    assert!(err.to_string().contains("IAM Credentials API"), "{err}");
    // And the same source recovers once the endpoint does.
    let token = impersonated.access_token(&asked).await.unwrap();
    assert_eq!(info(&emu, token.as_str()).email(), target);
}

#[tokio::test]
async fn tokens_expired_on_arrival_are_refused_and_never_cached() {
    for expires_in in [json!(0), json!(-30)] {
        let base = metadata_answering(
            json!({"access_token": "ya29.dead-on-arrival", "expires_in": expires_in, "token_type": "Bearer"}),
        )
        .await;
        let metadata = MetadataServer::from_base_url(&base).http(no_retry());
        let err = metadata
            .access_token(&Scopes::cloud_platform())
            .await
            .unwrap_err();
        assert!(err.is_expired(), "{err}");
        assert!(!err.to_string().contains("ya29.dead"), "{err}");

        let cached = CachedSource::new(metadata);
        let err = cached
            .access_token(&Scopes::cloud_platform())
            .await
            .unwrap_err();
        assert!(err.is_expired(), "{err}");
        assert!(
            cached
                .peek_access_token(&Scopes::cloud_platform())
                .is_none()
        );
    }
    // A body without `expires_in` cannot be cached safely: refused, naming the field.
    let base =
        metadata_answering(json!({"access_token": "ya29.forever", "token_type": "Bearer"})).await;
    let err = MetadataServer::from_base_url(&base)
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert_eq!(err.endpoint(), Some(Endpoint::MetadataServer));
}
