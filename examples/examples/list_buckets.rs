//! The App Identity guide's sample in Rust: an access token for Cloud Storage (read-only scope) from the metadata
//! server, then `GET https://storage.googleapis.com/storage/v1/b?project=PROJECT`, printing the bucket names.
//! `AccessTokenMiddleware` over a `CachedSource` attaches the token; a second call reuses it. The code is in
//! `examples/src/list_buckets.rs`.
//!
//! Run it against the emulator, which serves the metadata server and Cloud Storage's bucket list (its project's
//! default bucket `PROJECT_ID.appspot.com` always exists):
//!
//! ```text
//! # terminal 1: Google, on loopback; its metadata server mints tokens as caller-app's App Engine account
//! cargo run -p idgate-cli -- emulator --port 8085 --project-id caller-app \
//!     --metadata-service-account caller-app@appspot.gserviceaccount.com
//!
//! # terminal 2: the project comes from the metadata server unless given
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example list_buckets [-- PROJECT_ID]
//! ```
//!
//! On Google Cloud, run it without `IDGATE_GOOGLE_BASE_URL`: the metadata server is the real one (or the one at
//! `GCE_METADATA_HOST`), and the buckets are the project's real ones.
//!
//! Check it without any terminal: `cargo run -p idgate-examples --example list_buckets -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_client::MetadataServer;
use idgate_examples::{Result, list_buckets, support};
use url::Url;

#[tokio::main]
async fn main() -> ExitCode {
    support::report("list_buckets", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return list_buckets::self_test().await;
    }
    support::init_tracing();

    // IDGATE_GOOGLE_BASE_URL moves both the metadata server and Cloud Storage (the emulator serves both); else
    // GCE_METADATA_HOST, else Google's.
    let (metadata, storage) = match support::google_base_url()? {
        Some(base) => (MetadataServer::from_base_url(&base), base),
        None => (
            MetadataServer::new(),
            Url::parse(list_buckets::STORAGE_ROOT)?,
        ),
    };
    // The sample's `app_identity.get_application_id()`.
    let project = match support::args().into_iter().next() {
        Some(project) => project,
        None => metadata.project_id().await?,
    };
    let client = list_buckets::client(metadata, &storage)?;

    println!("buckets of project {project}:");
    for name in list_buckets::list_buckets(&client, &storage, &project).await? {
        println!("  {name}");
    }
    Ok(())
}
