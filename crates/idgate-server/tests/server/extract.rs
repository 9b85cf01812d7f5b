//! The extractors with and without their layers.

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use idgate_emulator::TokenSpec;
use idgate_server::RequireIdentityLayer;
use idgate_server::extract::{UserEmail, VerifiedCaller, VerifiedIapUser};

use crate::{ALLOWED_SA, AUDIENCE, allowlist, client, emulator, oidc_verifier, serve};

fn routes() -> Router {
    Router::new()
        .route(
            "/caller",
            get(|VerifiedCaller(c): VerifiedCaller| async move { c.to_string() }),
        )
        .route(
            "/iap",
            get(|u: VerifiedIapUser| async move { u.email().to_owned() }),
        )
        .route("/email", get(|e: UserEmail| async move { e.0 }))
        .route(
            "/optional",
            get(
                |c: Option<VerifiedCaller>, u: Option<VerifiedIapUser>, e: Option<UserEmail>| async move {
                    format!("{} {} {}", c.is_some(), u.is_some(), e.is_some())
                },
            ),
        )
}

#[tokio::test]
async fn without_their_layer_extractors_name_it() {
    let base = serve(routes()).await;
    for (path, layer) in [
        ("/caller", "RequireIdentityLayer"),
        ("/iap", "RequireIapLayer"),
        ("/email", "RequireIapLayer"),
    ] {
        let response = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains(layer) && body.contains("Perhaps you forgot"),
            "{path}: {body}"
        );
    }
    let response = client()
        .get(format!("{base}/optional"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "false false false");
}

#[tokio::test]
async fn with_the_identity_layer() {
    let emulator = emulator().await;
    let layer = RequireIdentityLayer::new(oidc_verifier(&emulator)).allowlist(allowlist());
    let base = serve(routes().layer(layer)).await;
    let token = emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience(AUDIENCE));
    let get = |path: &str| {
        client()
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };

    let response = get("/caller").await.unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        format!("service_account {ALLOWED_SA}")
    );
    let response = get("/optional").await.unwrap();
    assert_eq!(response.text().await.unwrap(), "true false false");
    // A service account is not a signed-in user.
    let response = get("/email").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // VerifiedIapUser needs the IAP layer, even when another layer ran.
    let response = get("/iap").await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
