//! Every source against the emulator: wire format, retries, typed errors.

use std::time::Duration;

use idgate_client::{
    AccessTokenSource, AuthorizedUser, Format, HttpOptions, IdTokenSource, Impersonated,
    MetadataServer, RetryPolicy, Scopes, ServiceAccountKey,
};
use idgate_core::google::Endpoints;
use idgate_emulator::{Fault, Route};
use serde_json::json;

use crate::helpers::{METADATA_SA, claims, emulator, quick_retry};

const AUD: &str = "https://receiver-abc123-uc.a.run.app";

#[tokio::test]
async fn metadata_server_mints_full_format_tokens() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url());
    let token = metadata.id_token(AUD).await.unwrap();
    let c = claims(&token);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["email"], METADATA_SA);
    assert_eq!(c["google"]["compute_engine"]["project_id"], "emu-project");
    assert!(c["google"]["compute_engine"].get("license_id").is_none());

    let with_licenses = metadata.clone().licenses(true).id_token(AUD).await.unwrap();
    assert!(
        claims(&with_licenses)["google"]["compute_engine"]
            .get("license_id")
            .is_some()
    );

    let standard = metadata
        .format(Format::Standard)
        .id_token(AUD)
        .await
        .unwrap();
    assert!(claims(&standard).get("google").is_none());
    assert_eq!(emu.hits(Route::MetadataIdentity), 3);
}

#[tokio::test]
async fn metadata_server_encodes_the_audience() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_endpoints(&Endpoints::under(&emu.base_url()));
    let odd = "https://fn.example.com/path?x=1&format=standard#frag";
    let token = metadata.id_token(odd).await.unwrap();
    let c = claims(&token);
    assert_eq!(c["aud"], odd);
    // `&format=standard` inside the audience did not leak into the query.
    assert!(c.get("google").is_some());
}

#[tokio::test]
async fn metadata_server_facts_and_access_token() {
    let emu = emulator().await;
    let metadata = MetadataServer::from_base_url(&emu.base_url());
    assert_eq!(metadata.project_id().await.unwrap(), "emu-project");
    assert_eq!(
        metadata.numeric_project_id().await.unwrap(),
        123_456_789_012
    );
    assert_eq!(metadata.service_account_email().await.unwrap(), METADATA_SA);
    let access = MetadataServer::access_token(&metadata, &Scopes::cloud_platform())
        .await
        .unwrap();
    assert!(!access.as_str().is_empty());
    assert!(access.lifetime().is_some());
    assert_eq!(format!("{access:?}"), "AccessToken(<redacted>)");
}

#[tokio::test]
async fn metadata_server_requires_metadata_flavor_in_answers() {
    // The echo server answers 200 without `Metadata-Flavor: Google`.
    let echo = crate::helpers::Echo::start().await;
    let metadata = MetadataServer::from_base_url(&echo.origin().parse().unwrap());
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert!(err.is_not_metadata_server(), "{err}");
    assert!(!err.is_transient());
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 2);
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    metadata.id_token(AUD).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataIdentity), 3);

    emu.inject(Route::MetadataIdentity, Fault::Status(429), 1);
    metadata.id_token(AUD).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataIdentity), 5);
}

#[tokio::test]
async fn retries_are_bounded_and_typed() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 10);
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.attempts(), Some(3));
    assert!(err.is_transient());
    assert_eq!(emu.hits(Route::MetadataIdentity), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Status(403), 10);
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
}

#[tokio::test]
async fn garbage_is_a_typed_error_and_not_retried() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Garbage, 10);
    let metadata = MetadataServer::from_base_url(&emu.base_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert_eq!(emu.hits(Route::MetadataIdentity), 1);
}

#[tokio::test]
async fn a_hanging_endpoint_times_out() {
    let emu = emulator().await;
    emu.inject(Route::MetadataIdentity, Fault::Hang, 10);
    let metadata = MetadataServer::from_base_url(&emu.base_url()).http(
        HttpOptions::new()
            .timeout(Duration::from_millis(200))
            .retry(quick_retry().max_attempts(2)),
    );
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.is_transient());
    assert_eq!(err.attempts(), Some(2));
    emu.clear_faults();
    emu.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_transient_and_retried() {
    let port = crate::helpers::closed_port().await;
    let metadata =
        MetadataServer::from_base_url(&format!("http://127.0.0.1:{port}").parse().unwrap())
            .http(HttpOptions::new().retry(quick_retry()));
    let err = metadata.id_token(AUD).await.unwrap_err();
    assert!(err.is_transport(), "{err}");
    assert_eq!(err.attempts(), Some(3));
}

#[tokio::test]
async fn service_account_key_mints_through_the_jwt_bearer_grant() {
    let emu = emulator().await;
    let email = "caller@emu-project.iam.gserviceaccount.com";
    let dir = tempfile::tempdir().unwrap();
    let path = emu
        .create_service_account(email)
        .write_key_file(dir.path())
        .unwrap();
    let key = ServiceAccountKey::from_file(&path).unwrap();
    assert_eq!(key.client_email(), email);
    assert_eq!(key.project_id(), Some("emu-project"));
    let debug = format!("{key:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");

    let token = key.id_token(AUD).await.unwrap();
    let c = claims(&token);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["email"], email);
    assert_eq!(emu.hits(Route::Token), 1);

    let access = ServiceAccountKey::access_token(&key, &Scopes::cloud_platform())
        .await
        .unwrap();
    assert!(!access.as_str().is_empty());
    assert_eq!(emu.hits(Route::Token), 2);
}

#[tokio::test]
async fn service_account_key_retries_the_token_endpoint() {
    let emu = emulator().await;
    let json = emu
        .create_service_account("c@emu-project.iam.gserviceaccount.com")
        .to_json();
    let key = ServiceAccountKey::from_json(json.as_bytes())
        .unwrap()
        .http(HttpOptions::new().retry(quick_retry()));
    emu.inject(Route::Token, Fault::Status(500), 2);
    key.id_token(AUD).await.unwrap();
    assert_eq!(emu.hits(Route::Token), 3);
}

#[tokio::test]
async fn service_account_key_errors_are_typed_and_never_leak_the_key() {
    let emu = emulator().await;
    let json = emu
        .create_service_account("c@emu-project.iam.gserviceaccount.com")
        .to_json();
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();

    let mut wrong = value.clone();
    wrong["type"] = json!("authorized_user");
    let err = ServiceAccountKey::from_json(wrong.to_string().as_bytes()).unwrap_err();
    assert!(err.is_wrong_type(), "{err}");

    let mut missing = value.clone();
    missing.as_object_mut().unwrap().remove("client_email");
    let err = ServiceAccountKey::from_json(missing.to_string().as_bytes()).unwrap_err();
    assert!(err.is_missing_field(), "{err}");

    let pem = value["private_key"].as_str().unwrap().to_owned();
    value["private_key"] = json!(pem.replace("MII", "XXX"));
    let err = ServiceAccountKey::from_json(value.to_string().as_bytes()).unwrap_err();
    assert!(err.is_bad_private_key(), "{err}");
    assert!(!format!("{err} {err:?}").contains("XXX"));

    let err = ServiceAccountKey::from_file("/nonexistent/key.json").unwrap_err();
    assert!(err.is_read(), "{err}");

    // A key the token endpoint does not know: a typed 400 with Google's explanation, not retried.
    let other = idgate_emulator::Emulator::builder().start().await.unwrap();
    let stranger = other
        .create_service_account("s@emu-project.iam.gserviceaccount.com")
        .to_json();
    let key = ServiceAccountKey::from_json(stranger.as_bytes())
        .unwrap()
        .token_uri(emu.token_url())
        .http(HttpOptions::new().retry(quick_retry()));
    let err = key.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST), "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert_eq!(emu.hits(Route::Token), 1);
}

#[tokio::test]
async fn impersonation_with_a_service_account_key_source() {
    let emu = emulator().await;
    let caller = emu
        .create_service_account("caller@emu-project.iam.gserviceaccount.com")
        .to_json();
    let target = "target@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation("caller@emu-project.iam.gserviceaccount.com", target);
    let caller = ServiceAccountKey::from_json(caller.as_bytes()).unwrap();
    let source = Impersonated::new(caller, target).endpoints(&Endpoints::under(&emu.base_url()));

    let token = source.id_token(AUD).await.unwrap();
    let c = claims(&token);
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["email"], target);
    // A second audience reuses the source's access token.
    source.id_token("https://other.example.com").await.unwrap();
    assert_eq!(emu.hits(Route::Token), 1);
    assert_eq!(emu.hits(Route::GenerateIdToken), 2);

    let no_email = source
        .clone()
        .include_email(false)
        .id_token(AUD)
        .await
        .unwrap();
    assert!(claims(&no_email).get("email").is_none());
}

#[tokio::test]
async fn impersonation_with_the_metadata_server_as_source_and_delegates() {
    let emu = emulator().await;
    let target = "target@emu-project.iam.gserviceaccount.com";
    let delegate = "hop@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    let _ = emu.create_service_account(delegate);
    emu.allow_impersonation(emu.metadata_service_account(), delegate);
    emu.allow_impersonation(delegate, target);
    let source = Impersonated::new(MetadataServer::from_base_url(&emu.base_url()), target)
        .delegates([delegate])
        .endpoints(&Endpoints::under(&emu.base_url()));
    let token = source.id_token(AUD).await.unwrap();
    assert_eq!(claims(&token)["email"], target);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);

    // An unknown delegate is a typed 404 from IAM.
    let bad = Impersonated::new(MetadataServer::from_base_url(&emu.base_url()), target)
        .delegates(["ghost@emu-project.iam.gserviceaccount.com"])
        .endpoints(&Endpoints::under(&emu.base_url()));
    let err = bad.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND), "{err}");
}

#[tokio::test]
async fn impersonated_service_account_file() {
    let emu = emulator().await;
    let caller: serde_json::Value = serde_json::from_str(
        &emu.create_service_account("caller@emu-project.iam.gserviceaccount.com")
            .to_json(),
    )
    .unwrap();
    let target = "target@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation("caller@emu-project.iam.gserviceaccount.com", target);
    let file = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url":
            format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{target}:generateAccessToken"),
        "delegates": [],
        "source_credentials": caller,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impersonated.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let source = Impersonated::from_file(&path)
        .unwrap()
        .endpoints(&Endpoints::under(&emu.base_url()));
    assert_eq!(source.target(), target);
    let token = source.id_token(AUD).await.unwrap();
    assert_eq!(claims(&token)["email"], target);
}

#[tokio::test]
async fn impersonation_without_permission_is_a_typed_error() {
    let emu = emulator().await;
    // A bearer the IAM twin never issued.
    #[derive(Debug)]
    struct Forged;
    impl AccessTokenSource for Forged {
        fn access_token<'a>(
            &'a self,
            _scopes: &'a Scopes,
        ) -> idgate_client::BoxFuture<
            'a,
            Result<idgate_client::AccessToken, idgate_client::SourceError>,
        > {
            Box::pin(async {
                Ok(idgate_client::AccessToken::new(
                    "ya29.forged",
                    Some(Duration::from_secs(3600)),
                ))
            })
        }
    }
    let source = Impersonated::new(Forged, METADATA_SA)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(HttpOptions::new().retry(quick_retry()));
    let err = source.id_token(AUD).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::UNAUTHORIZED), "{err}");
    assert!(!err.to_string().contains("forged"));
}

#[tokio::test]
async fn authorized_user_refresh_token_grant() {
    // The emulator plays Google's refresh_token grant for a user credential it created, as gcloud writes it.
    let emu = emulator().await;
    let created = emu.create_authorized_user("dev@example.com");
    let file: serde_json::Value = serde_json::from_str(&created.to_json()).unwrap();
    let (secret, refresh) = (created.client_secret(), created.refresh_token());
    let user = AuthorizedUser::from_json(file.to_string().as_bytes()).unwrap();
    let debug = format!("{user:?}");
    assert!(
        !debug.contains(secret) && !debug.contains(refresh),
        "{debug}"
    );
    let token = AccessTokenSource::access_token(&user, &Scopes::cloud_platform())
        .await
        .unwrap();
    // The token the grant issued, to the user.
    let info = emu.tokeninfo(token.as_str()).expect("issued by the grant");
    assert_eq!(info.email(), "dev@example.com");
    assert_eq!(token.lifetime(), Some(Duration::from_secs(3599)));
    assert_eq!(emu.hits(Route::Token), 1);

    let mut revoked = file.clone();
    revoked["refresh_token"] = json!("1//revoked");
    let user = AuthorizedUser::from_json(revoked.to_string().as_bytes())
        .unwrap()
        .http(HttpOptions::new().retry(RetryPolicy::none()));
    let err = user
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST));
    assert!(!err.to_string().contains("1//revoked"), "{err}");
    assert!(!err.to_string().contains(secret), "{err}");
}

#[tokio::test]
async fn empty_audiences_are_refused_before_any_request() {
    let emu = emulator().await;
    let err = MetadataServer::from_base_url(&emu.base_url())
        .id_token("")
        .await
        .unwrap_err();
    assert!(err.is_invalid_audience());
    assert_eq!(emu.hits(Route::MetadataIdentity), 0);
}
