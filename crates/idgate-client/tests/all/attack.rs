//! Regression tests from a review of the access-token code as an attacker would read it: hostile answers and
//! revoked credentials must give typed errors or recover, never a panic or a stuck source.

use std::sync::Arc;

use idgate_client::{
    AccessTokenSource, CachedSource, HttpOptions, Impersonated, MetadataServer, RetryPolicy, Scopes,
};
use idgate_core::google::Endpoints;
use serde_json::json;

use crate::helpers::{METADATA_SA, emulator, metadata_answering};

/// A server (or whoever sits on the plain-HTTP metadata path) answering `expires_in` near `i64::MAX` used to
/// panic the caller: `SystemTime + Duration` overflowed in the cache and in `Impersonated`'s bearer cache.
#[tokio::test]
async fn a_huge_expires_in_is_no_panic() {
    for expires_in in [
        json!(i64::MAX),
        json!(i64::MAX.to_string()),
        json!(u64::MAX / 4),
    ] {
        let base = metadata_answering(
            json!({"access_token": "ya29.forever", "expires_in": expires_in, "token_type": "Bearer"}),
        )
        .await;
        let metadata = MetadataServer::from_base_url(&base)
            .http(HttpOptions::new().retry(RetryPolicy::none()));
        let cached = CachedSource::new(metadata.clone());
        // Typed error or a usable token; either way, no panic.
        match cached.access_token(&Scopes::cloud_platform()).await {
            Ok(token) => assert_eq!(token.as_str(), "ya29.forever"),
            Err(err) => assert!(err.is_invalid_response(), "{err}"),
        }
        let imp = Impersonated::new(metadata, "t@p.iam.gserviceaccount.com")
            .endpoints(&Endpoints::under(&"http://127.0.0.1:9".parse().unwrap()))
            .http(HttpOptions::new().retry(RetryPolicy::none()));
        let err = imp
            .access_token(&Scopes::cloud_platform())
            .await
            .unwrap_err();
        let _ = err.to_string();
    }
}

/// The same for a custom source that reports `Duration::MAX`: the cache refuses it instead of panicking.
#[tokio::test]
async fn a_custom_source_with_an_endless_lifetime_is_no_panic() {
    #[derive(Debug)]
    struct Endless;
    impl AccessTokenSource for Endless {
        fn access_token<'a>(
            &'a self,
            _: &'a Scopes,
        ) -> idgate_client::BoxFuture<
            'a,
            Result<idgate_client::AccessToken, idgate_client::SourceError>,
        > {
            let token =
                idgate_client::AccessToken::new("ya29.endless", Some(std::time::Duration::MAX));
            Box::pin(std::future::ready(Ok(token)))
        }
    }
    let err = CachedSource::new(Endless)
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert!(err.is_invalid_response(), "{err}");
    assert!(!err.to_string().contains("ya29"), "{err}");
}

/// `Impersonated` over a cached source credential (`Impersonated::new(metadata.cached(), ..)`): when IAM answers
/// 401 because the source's token was revoked, the retry must carry a fresh token. It used to ask the cache
/// again without invalidating it, get the same revoked token, and fail until the token's natural expiry.
#[tokio::test]
async fn impersonation_recovers_from_a_revoked_cached_source_token() {
    let emu = emulator().await;
    let target = "revoked-target@emu-project.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation(METADATA_SA, target);
    let source = Arc::new(CachedSource::new(MetadataServer::from_base_url(
        &emu.base_url(),
    )));
    let imp = Impersonated::new(Arc::clone(&source), target)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(HttpOptions::new().retry(RetryPolicy::none()));
    imp.access_token(&Scopes::cloud_platform()).await.unwrap();

    let bearer = source
        .peek_access_token(&Scopes::cloud_platform())
        .expect("the source credential's token is cached");
    assert!(emu.expire_access_token(bearer.as_str()));

    let other = Scopes::new(["https://www.googleapis.com/auth/devstorage.read_only"]).unwrap();
    let token = imp.access_token(&other).await.unwrap();
    assert_eq!(emu.tokeninfo(token.as_str()).unwrap().email(), target);
    let fresh = source.peek_access_token(&Scopes::cloud_platform()).unwrap();
    assert_ne!(fresh.as_str(), bearer.as_str());
}

/// A token endpoint that redirects must not make the client post the refresh grant (refresh token, client secret)
/// again to wherever the redirect points: the shared client follows no redirect, and the 307 is the answer.
#[tokio::test]
async fn a_redirecting_token_endpoint_gets_no_second_copy_of_the_secrets() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = Arc::clone(&elsewhere_hits);
    let elsewhere = axum::Router::new().fallback(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async {
            axum::Json(
                json!({"access_token": "ya29.stolen", "expires_in": 3599, "token_type": "Bearer"}),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, elsewhere).await;
    });
    let redirecting = axum::Router::new().fallback(move || async move {
        (
            http::StatusCode::TEMPORARY_REDIRECT,
            [(
                http::header::LOCATION,
                format!("http://{elsewhere_addr}/token"),
            )],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, redirecting).await;
    });

    let file = json!({
        "type": "authorized_user",
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": "the-client-secret",
        "refresh_token": "the-refresh-token",
    });
    let user = idgate_client::AuthorizedUser::from_json(file.to_string().as_bytes())
        .unwrap()
        .token_uri(format!("http://{redirecting_addr}/token").parse().unwrap())
        .http(HttpOptions::new().retry(RetryPolicy::none()));
    let err = user
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::TEMPORARY_REDIRECT),
        "{err}"
    );
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the grant was re-posted"
    );
}

/// An empty domain-wide-delegation subject (a blank flag, an unset variable) is a configuration error before any
/// request: never an assertion with `"sub": ""`, and never a token for the service account itself.
#[tokio::test]
async fn an_empty_subject_is_a_configuration_error() {
    let emu = emulator().await;
    let key = emu.create_service_account("dwd@emu-project.iam.gserviceaccount.com");
    let key = idgate_client::ServiceAccountKey::from_json(key.to_json().as_bytes())
        .unwrap()
        .subject("   ");
    let err = key
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert_eq!(
        emu.hits(idgate_emulator::Route::Token),
        0,
        "nothing was sent"
    );

    let impersonated = Impersonated::new(
        MetadataServer::from_base_url(&emu.base_url()),
        "dwd@emu-project.iam.gserviceaccount.com",
    )
    .endpoints(&Endpoints::under(&emu.base_url()))
    .subject("");
    let err = impersonated
        .access_token(&Scopes::cloud_platform())
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert_eq!(
        emu.hits(idgate_emulator::Route::SignJwt),
        0,
        "nothing was signed"
    );
}
