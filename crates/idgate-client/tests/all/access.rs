//! Access tokens against what the emulator serves: the metadata server's `token` route, the JWT-bearer grant with
//! `scope`, and the cache in front of them (single flight, scope-order dedup).

use idgate_client::{HttpOptions, Impersonated, MetadataServer, Scopes, ServiceAccountKey};
use idgate_core::google::Endpoints;
use idgate_emulator::{Fault, Route};

use crate::helpers::{METADATA_SA, emulator, quick_retry};

const STORAGE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

#[tokio::test]
async fn metadata_server_access_tokens_for_scopes_and_named_accounts() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url());
    let scopes = Scopes::new([STORAGE, "https://www.googleapis.com/auth/cloud-platform"]).unwrap();
    let token = metadata.access_token(&scopes).await.unwrap();
    assert!(!token.as_str().is_empty());
    assert!(token.lifetime().unwrap().as_secs() > 3000);
    assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    // The account by email, as the metadata server lists it.
    let named = metadata.clone().service_account(METADATA_SA);
    named.access_token(&scopes).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);
    // A path-changing account is refused before any request.
    let err = metadata
        .service_account("../../project")
        .access_token(&scopes)
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);
}

#[tokio::test]
async fn metadata_server_access_token_faults_are_retried_then_typed() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    emu.inject(Route::MetadataAccessToken, Fault::Status(503), 1);
    metadata
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap();
    emu.inject(Route::MetadataAccessToken, Fault::Status(503), 10);
    let err = metadata
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.attempts(), Some(3));
}

#[tokio::test]
async fn service_account_key_access_tokens_through_the_jwt_bearer_grant() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let path = emu
        .create_service_account("caller@emu-project.iam.gserviceaccount.com")
        .write_key_file(dir.path())
        .unwrap();
    let key = ServiceAccountKey::from_file(&path).unwrap();
    let scopes = Scopes::new([STORAGE]).unwrap();
    let token = key.access_token(&scopes).await.unwrap();
    assert!(!token.as_str().is_empty());
    // The emulator's answer has no `scope`: the token carries what was asked.
    assert_eq!(token.scopes(), Some(&scopes));
    assert_eq!(emu.hits(Route::Token), 1);
}

#[tokio::test]
async fn impersonation_source_credential_is_asked_for_cloud_platform() {
    // Impersonated asks its source for `cloud-platform` and reuses that token for IAM calls.
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url());
    let target = "target@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation(emu.metadata_service_account(), target);
    let imp = Impersonated::new(metadata, target).endpoints(&Endpoints::under(&emu.base_url()));
    use idgate_client::IdTokenSource;
    imp.id_token("https://receiver.example.com").await.unwrap();
    imp.id_token("https://other.example.com").await.unwrap();
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);
}
