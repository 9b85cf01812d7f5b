//! Application Default Credentials with an explicit environment (tests never touch the process environment).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use idgate_client::{Adc, AdcKind, HttpOptions, IdTokenSource};
use idgate_core::google::Endpoints;
use idgate_emulator::Route;
use serde_json::json;

use crate::helpers::{METADATA_SA, claims, closed_port, emulator, quick_retry};

const AUD: &str = "https://receiver.example.com";

fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<OsString> + Send + Sync + 'static {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

fn write(dir: &Path, name: &str, value: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn without_a_file_adc_uses_the_metadata_server() {
    let emu = emulator().await;
    // GCE_METADATA_HOST, as Google's libraries read it.
    let adc = Adc::builder()
        .env(env(&[("GCE_METADATA_HOST", emu.metadata_host())]))
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::MetadataServer);
    assert_eq!(
        claims(&adc.id_token(AUD).await.unwrap())["email"],
        METADATA_SA
    );

    // Explicit endpoints.
    let adc = Adc::builder()
        .env(env(&[]))
        .endpoints(Endpoints::under(&emu.base_url()))
        .build()
        .unwrap();
    assert_eq!(claims(&adc.id_token(AUD).await.unwrap())["aud"], AUD);
    assert_eq!(emu.hits(Route::MetadataIdentity), 2);
}

#[tokio::test]
async fn an_empty_variable_counts_as_unset() {
    let emu = emulator().await;
    let adc = Adc::builder()
        .env(env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", String::new()),
            ("GCE_METADATA_HOST", emu.metadata_host()),
        ]))
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::MetadataServer);
}

#[tokio::test]
async fn a_service_account_key_file_wins_over_the_metadata_server() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let email = "caller@emu-project.iam.gserviceaccount.com";
    let path = emu
        .create_service_account(email)
        .write_key_file(dir.path())
        .unwrap();
    let adc = Adc::builder()
        .env(env(&[
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                path.to_string_lossy().into_owned(),
            ),
            ("GCE_METADATA_HOST", emu.metadata_host()),
        ]))
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::ServiceAccountKey);
    assert_eq!(claims(&adc.id_token(AUD).await.unwrap())["email"], email);
    assert_eq!(emu.hits(Route::MetadataIdentity), 0);
    assert_eq!(emu.hits(Route::Token), 1);
}

#[tokio::test]
async fn an_impersonated_service_account_file() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let caller: serde_json::Value = serde_json::from_str(
        &emu.create_service_account("caller@emu-project.iam.gserviceaccount.com")
            .to_json(),
    )
    .unwrap();
    let target = "deployer@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation("caller@emu-project.iam.gserviceaccount.com", target);
    let path = write(
        dir.path(),
        "imp.json",
        &json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url":
                format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"),
            "source_credentials": caller,
        }),
    );
    let adc = Adc::builder()
        .env(env(&[("GOOGLE_APPLICATION_CREDENTIALS", path)]))
        .endpoints(Endpoints::under(&emu.base_url()))
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::Impersonated);
    assert_eq!(claims(&adc.id_token(AUD).await.unwrap())["email"], target);
    assert_eq!(emu.hits(Route::GenerateIdToken), 1);
}

#[tokio::test]
async fn user_and_federated_credentials_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, extra) in [
        (
            "authorized_user",
            json!({"client_id": "c", "client_secret": "s", "refresh_token": "r"}),
        ),
        (
            "external_account",
            json!({"audience": "//iam.googleapis.com/x", "subject_token_type": "t"}),
        ),
        ("gdch_service_account", json!({})),
    ] {
        let mut file = extra;
        file["type"] = json!(kind);
        let path = write(dir.path(), &format!("{kind}.json"), &file);
        let err = Adc::builder()
            .env(env(&[("GOOGLE_APPLICATION_CREDENTIALS", path)]))
            .build()
            .unwrap_err();
        assert!(err.is_unsupported_credentials(), "{kind}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(kind), "{msg}");
        assert!(msg.contains("--impersonate-service-account"), "{msg}");
        assert!(msg.contains("idgate token --impersonate"), "{msg}");
        assert!(
            !msg.contains("\"s\"") && !msg.contains("refresh_token\":"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn unreadable_or_malformed_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir
        .path()
        .join("missing.json")
        .to_string_lossy()
        .into_owned();
    let err = Adc::builder()
        .env(env(&[("GOOGLE_APPLICATION_CREDENTIALS", missing)]))
        .build()
        .unwrap_err();
    assert!(
        err.key_file_error()
            .is_some_and(idgate_client::KeyFileError::is_read),
        "{err}"
    );

    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\nsecret",
    )
    .unwrap();
    let err = Adc::builder()
        .env(env(&[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            path.to_string_lossy().into_owned(),
        )]))
        .build()
        .unwrap_err();
    assert!(
        err.key_file_error()
            .is_some_and(idgate_client::KeyFileError::is_not_json),
        "{err}"
    );
    assert!(!err.to_string().contains("secret"));
}

#[tokio::test]
async fn nothing_works_gives_no_credentials() {
    let port = closed_port().await;
    let adc = Adc::builder()
        .env(env(&[("GCE_METADATA_HOST", format!("127.0.0.1:{port}"))]))
        .http(HttpOptions::new().retry(quick_retry()))
        .build()
        .unwrap();
    let err = adc.id_token(AUD).await.unwrap_err();
    assert!(err.is_no_credentials(), "{err}");
    assert!(
        err.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{err}"
    );

    // Something that is not a metadata server at the metadata address.
    let echo = crate::helpers::Echo::start().await;
    let adc = Adc::builder()
        .env(env(&[("GCE_METADATA_HOST", echo.addr.to_string())]))
        .build()
        .unwrap();
    let err = adc.id_token(AUD).await.unwrap_err();
    assert!(
        err.is_no_credentials() && err.is_not_metadata_server(),
        "{err}"
    );

    let err = Adc::builder()
        .env(env(&[("GCE_METADATA_HOST", "bad host/x".to_owned())]))
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}

#[tokio::test]
async fn access_tokens_and_the_quota_project() {
    use idgate_client::{AccessTokenSource, Scopes};
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    // A key file with a quota project: access tokens through its token_uri, the project from the file.
    let key_path = emu
        .create_service_account("caller@emu-project.iam.gserviceaccount.com")
        .write_key_file(dir.path())
        .unwrap();
    let mut key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    key["quota_project_id"] = json!("from-file");
    let path = write(dir.path(), "key.json", &key);
    let adc = Adc::builder()
        .env(env(&[("GOOGLE_APPLICATION_CREDENTIALS", path.clone())]))
        .build()
        .unwrap();
    assert_eq!(adc.quota_project(), Some("from-file"));
    assert_eq!(AccessTokenSource::quota_project(&adc), Some("from-file"));
    let token = adc.access_token(&Scopes::cloud_platform()).await.unwrap();
    assert!(!token.as_str().is_empty());
    assert_eq!(emu.hits(Route::Token), 1);
    // GOOGLE_CLOUD_QUOTA_PROJECT wins.
    let adc = Adc::builder()
        .env(env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", path),
            ("GOOGLE_CLOUD_QUOTA_PROJECT", "from-env".to_owned()),
        ]))
        .build()
        .unwrap();
    assert_eq!(adc.quota_project(), Some("from-env"));

    // The metadata server.
    let adc = Adc::builder()
        .env(env(&[("GCE_METADATA_HOST", emu.metadata_host())]))
        .build()
        .unwrap();
    assert_eq!(adc.quota_project(), None);
    adc.access_token(&Scopes::cloud_platform()).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);

    // An authorized_user file: refused by default (ID tokens), accepted for access tokens when asked.
    let user = write(
        dir.path(),
        "user.json",
        &json!({"type": "authorized_user", "client_id": "c", "client_secret": "s",
                "refresh_token": "r", "quota_project_id": "user-project"}),
    );
    let user_env = env(&[("GOOGLE_APPLICATION_CREDENTIALS", user)]);
    let adc = Adc::builder()
        .env(user_env)
        .accept_user_credentials(true)
        .build()
        .unwrap();
    assert_eq!(adc.kind(), AdcKind::AuthorizedUser);
    assert_eq!(adc.quota_project(), Some("user-project"));
    assert!(
        adc.id_token(AUD)
            .await
            .unwrap_err()
            .is_unsupported_credentials()
    );
}
