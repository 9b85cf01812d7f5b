//! The metadata server: Metadata-Flavor rules, identity formats, email, token, project.

use idgate_emulator::{Emulator, GOOGLE_ISSUER, Route};
use reqwest::StatusCode;

use crate::helpers::{emulator, parts, verify};

async fn md(emu: &Emulator, path_and_query: &str) -> reqwest::Response {
    let url = emu.metadata_base_url().join(path_and_query).unwrap();
    reqwest::Client::new()
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn requires_metadata_flavor_and_always_answers_with_it() {
    let emu = emulator().await;
    let url = emu.metadata_base_url().join("project/project-id").unwrap();
    let resp = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    let resp = reqwest::Client::new()
        .get(url.clone())
        .header("Metadata-Flavor", "google-ish")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = reqwest::Client::new()
        .get(url)
        .header("Metadata-Flavor", "Google")
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = md(&emu, "project/project-id").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    assert_eq!(resp.text().await.unwrap(), emu.project_id());
    assert_eq!(emu.hits(Route::MetadataProjectId), 4);
}

#[tokio::test]
async fn project_and_email() {
    let emu = Emulator::builder()
        .project_id("p-1")
        .project_number(42)
        .start()
        .await
        .unwrap();
    assert_eq!(
        md(&emu, "project/numeric-project-id")
            .await
            .text()
            .await
            .unwrap(),
        "42"
    );
    assert_eq!(
        md(&emu, "instance/service-accounts/default/email")
            .await
            .text()
            .await
            .unwrap(),
        "42-compute@developer.gserviceaccount.com"
    );
    let emu = Emulator::builder()
        .metadata_service_account("run@p.iam.gserviceaccount.com")
        .start()
        .await
        .unwrap();
    let resp = md(&emu, "instance/service-accounts/default/email").await;
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    assert_eq!(resp.text().await.unwrap(), "run@p.iam.gserviceaccount.com");
    // The account can also be named by its email; another account is not on this instance.
    let resp = md(
        &emu,
        "instance/service-accounts/run@p.iam.gserviceaccount.com/email",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = md(
        &emu,
        "instance/service-accounts/other@p.iam.gserviceaccount.com/email",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn identity_standard_and_full() {
    let emu = emulator().await;
    let sa = emu.metadata_service_account().to_owned();
    let resp = md(&emu, "instance/service-accounts/default/identity?audience=https%3A%2F%2Fa.test%2Fx&format=standard").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    let token = resp.text().await.unwrap();
    let claims = verify(
        emu.oidc_jwks_url(),
        &token,
        "https://a.test/x",
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(claims["email"], sa.as_str());
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["azp"], claims["sub"]);
    assert!(claims.get("google").is_none());

    let token = md(
        &emu,
        "instance/service-accounts/default/identity?audience=aud&format=full",
    )
    .await
    .text()
    .await
    .unwrap();
    let ce = &parts(&token).1["google"]["compute_engine"];
    let mut fields: Vec<_> = ce.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "instance_creation_timestamp",
            "instance_id",
            "instance_name",
            "project_id",
            "project_number",
            "zone"
        ]
    );
    assert_eq!(ce["project_id"], emu.project_id());
    assert_eq!(ce["project_number"], emu.project_number());
    assert!(ce["instance_id"].is_string());
    assert!(ce["instance_creation_timestamp"].is_i64());

    let token = md(
        &emu,
        "instance/service-accounts/default/identity?audience=aud&format=full&licenses=TRUE",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(parts(&token).1["google"]["compute_engine"]["license_id"].is_array());
    assert_eq!(emu.hits(Route::MetadataIdentity), 3);
}

#[tokio::test]
async fn identity_bad_parameters_are_400() {
    let emu = emulator().await;
    for q in [
        "",
        "?audience=",
        "?format=full",
        "?audience=a&format=weird",
        "?audience=a&format=full&licenses=maybe",
    ] {
        let resp = md(
            &emu,
            &format!("instance/service-accounts/default/identity{q}"),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(resp.headers()["metadata-flavor"], "Google");
    }
}

#[tokio::test]
async fn access_token_can_call_generate_id_token() {
    let emu = emulator().await;
    let resp = md(&emu, "instance/service-accounts/default/token").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 3000);
    let access = body["access_token"].as_str().unwrap();
    assert!(access.starts_with("ya29."));
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    emu.allow_impersonation(emu.metadata_service_account(), target.client_email());
    let resp = reqwest::Client::new()
        .post(emu.generate_id_token_url(target.client_email()))
        .bearer_auth(access)
        .json(&serde_json::json!({"audience": "https://x.test", "includeEmail": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn account_directory_scopes_and_root_probe() {
    let emu = emulator().await;
    let resp = md(&emu, "instance/service-accounts/default/?recursive=true").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    let info: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(info["email"], emu.metadata_service_account());
    assert_eq!(info["aliases"], serde_json::json!(["default"]));
    assert!(info["scopes"].is_array());
    let listing = md(&emu, "instance/service-accounts/default/")
        .await
        .text()
        .await
        .unwrap();
    assert!(listing.lines().any(|l| l == "identity"));
    let scopes = md(&emu, "instance/service-accounts/default/scopes")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        scopes.trim(),
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(emu.hits(Route::MetadataServiceAccountInfo), 3);

    // The liveness probe google-auth sends to GCE_METADATA_IP.
    let root = reqwest::Client::new()
        .get(emu.base_url())
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(root.headers()["metadata-flavor"], "Google");
    assert_eq!(emu.hits(Route::MetadataRoot), 1);
}

#[tokio::test]
async fn zone_region_universe_and_cluster_name() {
    // By default: a Compute Engine VM. A zone, no region (404), Google's universe, not GKE (404).
    let emu = Emulator::builder()
        .project_number(42)
        .start()
        .await
        .unwrap();
    let resp = md(&emu, "instance/zone").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["metadata-flavor"], "Google");
    assert_eq!(
        resp.text().await.unwrap(),
        "projects/42/zones/us-central1-a"
    );
    for path in ["instance/region", "instance/attributes/cluster-name"] {
        let resp = md(&emu, path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(resp.headers()["metadata-flavor"], "Google", "{path}");
    }
    let resp = md(&emu, "universe/universe-domain").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "googleapis.com");
    // The project number in the zone and region names is the one `project/numeric-project-id` answers.
    assert_eq!(
        md(&emu, "project/numeric-project-id")
            .await
            .text()
            .await
            .unwrap(),
        "42"
    );
    for route in [
        Route::MetadataZone,
        Route::MetadataRegion,
        Route::MetadataClusterName,
        Route::MetadataUniverseDomain,
    ] {
        assert_eq!(emu.hits(route), 1, "{route:?}");
        assert!(route.is_metadata());
    }
    // Without Metadata-Flavor: 403, as every metadata path.
    let resp = reqwest::get(emu.url(Route::MetadataZone)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Cloud Run: a region, and a zone named after it.
    let run = Emulator::builder()
        .project_number(7)
        .serverless_region("europe-west1")
        .universe_domain("example-universe.test")
        .start()
        .await
        .unwrap();
    assert_eq!(
        md(&run, "instance/region").await.text().await.unwrap(),
        "projects/7/regions/europe-west1"
    );
    assert_eq!(
        md(&run, "instance/zone").await.text().await.unwrap(),
        "projects/7/zones/europe-west1-1"
    );
    assert_eq!(
        md(&run, "universe/universe-domain")
            .await
            .text()
            .await
            .unwrap(),
        "example-universe.test"
    );
    assert_eq!(run.universe_domain(), "example-universe.test");

    // GKE: the cluster's name.
    let gke = Emulator::builder()
        .gke_cluster("prod-cluster")
        .zone("europe-west4-b")
        .start()
        .await
        .unwrap();
    let resp = md(&gke, "instance/attributes/cluster-name").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "prod-cluster");
    assert_eq!(gke.gke_cluster(), Some("prod-cluster"));
    assert_eq!(gke.region(), None);
}
