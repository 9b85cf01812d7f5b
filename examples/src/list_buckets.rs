//! The App Identity guide's Google API call, in Rust: list the project's Cloud Storage buckets with the
//! application's own identity.
//!
//! App Engine's sample calls `app_identity.get_access_token(scopes)`, then
//! `GET https://www.googleapis.com/storage/v1/b?project=PROJECT_ID` with `Authorization: Bearer <token>` set by hand.
//! Here the metadata server ([`MetadataServer`]: the runtime's service account, at `GCE_METADATA_HOST` when set)
//! mints the token, a [`CachedSource`] keeps it for its hour (one mint per scope set, refreshed ahead of expiry),
//! and [`AccessTokenMiddleware`] attaches it to every request of the client. The scope asked for is Cloud
//! Storage's read-only one ([`STORAGE_READ_ONLY`]), the least the call needs.
//!
//! On Compute Engine and GKE the instance's access scopes apply whatever is asked; on Cloud Run, Cloud Functions
//! and App Engine the asked scopes are honoured.

use idgate_client::{AccessTokenMiddleware, CachedSource, MetadataServer, Scopes};
use idgate_core::google::MetadataClient;
use idgate_emulator::{Emulator, Route};
use reqwest_middleware::ClientWithMiddleware;
use url::Url;

use crate::Result;
use crate::service_to_service::APP_ENGINE_CALLER;

/// Cloud Storage's read-only scope: enough to list buckets.
pub const STORAGE_READ_ONLY: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// Google's Cloud Storage JSON API root; the bucket list is `storage/v1/b?project=P` under it.
pub const STORAGE_ROOT: &str = "https://storage.googleapis.com/";

/// The HTTP client: every request carries a [`STORAGE_READ_ONLY`] access token minted by `metadata`, cached.
///
/// # Errors
///
/// None in practice (the scope is a valid one); the `Result` keeps a bad edit of the scope from panicking.
pub fn client(metadata: MetadataServer, storage_root: &Url) -> Result<ClientWithMiddleware> {
    let storage = Scopes::new([STORAGE_READ_ONLY])?;
    // Access tokens only work against Google APIs, and reqwest drops `Authorization` on a redirect to another host
    // anyway; following none keeps the token with the host it was sent to.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(reqwest_middleware::ClientBuilder::new(http)
        .with(with_storage_host(
            AccessTokenMiddleware::new(CachedSource::new(metadata)).scopes(storage),
            storage_root,
        ))
        .build())
}

/// The token goes to Google's APIs only (`https://*.googleapis.com`); a Storage root elsewhere (the emulator,
/// a private endpoint) is allowed by name.
fn with_storage_host<S>(
    middleware: AccessTokenMiddleware<S>,
    storage_root: &Url,
) -> AccessTokenMiddleware<S> {
    match storage_root.host_str() {
        Some(host) => middleware.allow_host(host),
        None => middleware,
    }
}

/// `GET {storage_root}storage/v1/b?project={project}`: the names of the project's buckets, sorted as Cloud Storage
/// returns them.
///
/// # Errors
///
/// When no token could be minted, the request fails, Cloud Storage answers anything but 200 (the error says its
/// status and body), or the answer is not a bucket list.
pub async fn list_buckets(
    client: &ClientWithMiddleware,
    storage_root: &Url,
    project: &str,
) -> Result<Vec<String>> {
    let mut url = storage_root.join("storage/v1/b")?;
    url.query_pairs_mut().append_pair("project", project);
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        return Err(format!("listing the buckets of {project}: HTTP {status}: {body}").into());
    }
    let list: serde_json::Value = serde_json::from_str(&body)?;
    if list["kind"] != "storage#buckets" {
        return Err(format!("listing the buckets of {project}: not a bucket list: {body}").into());
    }
    // Cloud Storage leaves `items` out when the project has no bucket.
    let items = list["items"].as_array().map_or(&[][..], Vec::as_slice);
    items
        .iter()
        .map(|bucket| {
            bucket["name"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a bucket without a name: {bucket}").into())
        })
        .collect()
}

/// Lists the buckets of the emulator's project as the App Engine default service account, twice, and checks the
/// names and that the second call reused the first call's token.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::builder()
        .project_id("caller-app")
        .metadata_service_account(APP_ENGINE_CALLER)
        .start()
        .await?;
    google.create_bucket("caller-app", "caller-app-reports");
    google.create_bucket("other-project", "not-ours");

    // As on Google Cloud with GCE_METADATA_HOST pointing at the emulator, without touching the process's env.
    let metadata = MetadataServer::from_client(MetadataClient::from_host(google.metadata_host()));
    // The sample's `app_identity.get_application_id()`.
    let project = metadata.project_id().await?;
    let storage = google.storage_url();
    let client = client(metadata, &storage)?;

    let want = ["caller-app-reports", "caller-app.appspot.com"];
    for call in ["first", "second"] {
        let names = list_buckets(&client, &storage, &project).await?;
        if names != want {
            return Err(format!("{call} call: expected buckets {want:?}, got {names:?}").into());
        }
    }
    let mints = google.hits(Route::MetadataAccessToken);
    if mints != 1 {
        return Err(format!(
            "expected one access token for both calls, the metadata server minted {mints}"
        )
        .into());
    }
    let calls = google.hits(Route::StorageBuckets);
    if calls != 2 {
        return Err(format!("expected 2 bucket-list calls, Cloud Storage saw {calls}").into());
    }
    Ok(())
}
