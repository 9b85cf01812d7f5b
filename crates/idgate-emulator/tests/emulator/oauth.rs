//! The token endpoint and IAM generateIdToken: success and error paths in Google's shapes.

use idgate_emulator::{Emulator, GOOGLE_ISSUER, Route, ServiceAccountKeyFile};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{JWT_BEARER, assertion, emulator, now, parts, post_token, verify};

fn standard_claims(key: &ServiceAccountKeyFile, aud: &str, target: Option<&str>) -> Value {
    let iat = now();
    let mut c = json!({"iss": key.client_email(), "aud": aud, "iat": iat, "exp": iat + 3600});
    if let Some(t) = target {
        c["target_audience"] = json!(t);
    }
    c
}

#[tokio::test]
async fn key_file_has_googles_format() {
    let emu = emulator().await;
    let key = emu.create_service_account("svc@proj-a.iam.gserviceaccount.com");
    let dir = std::env::temp_dir().join(format!("idgate-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = key.write_key_file(&dir).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "auth_provider_x509_cert_url",
            "auth_uri",
            "client_email",
            "client_id",
            "client_x509_cert_url",
            "private_key",
            "private_key_id",
            "project_id",
            "token_uri",
            "type",
            "universe_domain"
        ]
    );
    assert_eq!(json["type"], "service_account");
    assert_eq!(json["project_id"], "proj-a");
    assert_eq!(
        json["client_id"],
        idgate_emulator::numeric_id("svc@proj-a.iam.gserviceaccount.com")
    );
    assert_eq!(json["token_uri"], emu.token_url().as_str());
    assert_eq!(json["universe_domain"], "googleapis.com");
    assert!(
        json["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert_eq!(json["private_key_id"].as_str().unwrap().len(), 40);
    // The x509 URL serves this key's certificate.
    let certs: Value = reqwest::get(json["client_x509_cert_url"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        certs[key.private_key_id()]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(emu.hits(Route::ServiceAccountCerts), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A key file holds a private key: only its owner may read it, from creation on, even when a file with a
/// wider mode already sat at its name.
#[cfg(unix)]
#[tokio::test]
async fn key_file_is_created_owner_only_and_replaces_a_wider_file() {
    use std::os::unix::fs::PermissionsExt as _;

    let emu = emulator().await;
    let key = emu.create_service_account("private@proj-a.iam.gserviceaccount.com");
    let dir = std::env::temp_dir().join(format!("idgate-emu-key-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Octal text, so that a failure reads `644` rather than `420`.
    let mode = |path: &std::path::Path| {
        format!(
            "{:o}",
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        )
    };

    let path = key.write_key_file(&dir).unwrap();
    assert_eq!(mode(&path), "600", "a new key file is 0600");

    // Someone (or an older idgate) left a world-readable file at the same name.
    std::fs::write(&path, "stale").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(key.write_key_file(&dir).unwrap(), path);
    assert_eq!(
        mode(&path),
        "600",
        "an existing wider file is replaced by a 0600 one"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key.to_json());

    // Nothing else is left behind (no temporary file).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [path.file_name().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();

    // A directory that does not exist yet (`--key-dir keys` on a fresh checkout) is made, owner-only.
    let nested = dir.join("keys").join("emulator");
    let path = key.write_key_file(&nested).unwrap();
    assert_eq!(mode(&path), "600");
    assert_eq!(
        mode(&nested),
        "700",
        "a key directory made by the emulator is 0700"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn jwt_bearer_with_target_audience_returns_an_id_token() {
    let emu = emulator().await;
    let key = emu.create_service_account("svc@p.iam.gserviceaccount.com");
    // google-auth puts Google's token URL in aud whatever token_uri says; the emulator's own URL works too.
    for aud in [
        "https://oauth2.googleapis.com/token",
        emu.token_url().as_str(),
    ] {
        let a = assertion(&key, &standard_claims(&key, aud, Some("https://svc.test")));
        let (status, body) =
            post_token(&emu, &[("grant_type", JWT_BEARER), ("assertion", &a)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id_token = body["id_token"].as_str().unwrap();
        let claims = verify(
            emu.oidc_jwks_url(),
            id_token,
            "https://svc.test",
            GOOGLE_ISSUER,
        )
        .await
        .unwrap();
        assert_eq!(claims["email"], key.client_email());
        assert_eq!(claims["sub"], key.client_id());
    }
    assert_eq!(emu.hits(Route::Token), 2);
}

#[tokio::test]
async fn jwt_bearer_without_target_audience_returns_an_access_token() {
    let emu = emulator().await;
    let source = emu.create_service_account("source@p.iam.gserviceaccount.com");
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let mut claims = standard_claims(&source, emu.token_url().as_str(), None);
    claims["scope"] = json!("https://www.googleapis.com/auth/cloud-platform");
    let a = assertion(&source, &claims);
    let (status, body) = post_token(&emu, &[("grant_type", JWT_BEARER), ("assertion", &a)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    // ... which is an impersonation source, once granted Token Creator on the target.
    emu.allow_impersonation(source.client_email(), target.client_email());
    let resp = reqwest::Client::new()
        .post(emu.generate_id_token_url(target.client_email()))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .json(&json!({"audience": "https://x.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_endpoint_errors_are_googles() {
    let emu = emulator().await;
    let key = emu.create_service_account("svc@p.iam.gserviceaccount.com");
    let other = Emulator::builder()
        .oidc_key_count(1)
        .start()
        .await
        .unwrap()
        .create_service_account("svc@p.iam.gserviceaccount.com");
    let good = standard_claims(&key, "https://oauth2.googleapis.com/token", Some("x"));
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "invalid_request"),
        (
            vec![("grant_type", "password".into())],
            "unsupported_grant_type",
        ),
        (vec![("grant_type", JWT_BEARER.into())], "invalid_request"),
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                ("assertion", "garbage".into()),
            ],
            "invalid_grant",
        ),
        // Signed by a key this emulator never issued (same kid shape, same email).
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                ("assertion", assertion(&other, &good)),
            ],
            "invalid_grant",
        ),
        // Wrong audience.
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                (
                    "assertion",
                    assertion(&key, &standard_claims(&key, "https://evil.test", Some("x"))),
                ),
            ],
            "invalid_grant",
        ),
        // Too long-lived.
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                (
                    "assertion",
                    assertion(&key, &{
                        let mut c = good.clone();
                        c["exp"] = json!(now() + 7200);
                        c
                    }),
                ),
            ],
            "invalid_grant",
        ),
        // Expired.
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                (
                    "assertion",
                    assertion(&key, &{
                        let mut c = good.clone();
                        c["iat"] = json!(now() - 7200);
                        c["exp"] = json!(now() - 3600);
                        c
                    }),
                ),
            ],
            "invalid_grant",
        ),
        // Unknown account.
        (
            vec![
                ("grant_type", JWT_BEARER.into()),
                (
                    "assertion",
                    assertion(&key, &{
                        let mut c = good.clone();
                        c["iss"] = json!("nobody@p.iam.gserviceaccount.com");
                        c
                    }),
                ),
            ],
            "invalid_grant",
        ),
    ];
    for (form, error) in cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = post_token(&emu, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(body["error_description"].is_string());
    }
    // A non-form body is a missing grant_type, not a crash.
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .body(vec![0xff, 0x00, 0x13])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

async fn generate(
    emu: &Emulator,
    email: &str,
    bearer: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(emu.generate_id_token_url(email))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn access_token(emu: &Emulator) -> String {
    let resp = reqwest::Client::new()
        .get(
            emu.metadata_base_url()
                .join("instance/service-accounts/default/token")
                .unwrap(),
        )
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn generate_id_token_honours_include_email_and_delegates() {
    let emu = emulator().await;
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let hop = emu.create_service_account("hop@p.iam.gserviceaccount.com");
    let bearer = access_token(&emu).await;
    let caller = emu.metadata_service_account().to_owned();
    emu.allow_impersonation(&caller, target.client_email());
    emu.allow_impersonation(&caller, hop.client_email());
    emu.allow_impersonation(hop.client_email(), target.client_email());

    let (status, body) = generate(
        &emu,
        target.client_email(),
        Some(&bearer),
        r#"{"audience":"https://a.test"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let claims = verify(
        emu.oidc_jwks_url(),
        body["token"].as_str().unwrap(),
        "https://a.test",
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    assert!(claims.get("email").is_none() && claims.get("email_verified").is_none());
    assert_eq!(claims["sub"], target.client_id());
    assert_eq!(claims["azp"], target.client_id());

    let body_json = json!({
        "audience": "https://a.test",
        "delegates": [format!("projects/-/serviceAccounts/{}", hop.client_email())],
        "includeEmail": "true",
        "useEmailAzp": true,
    })
    .to_string();
    let (status, body) = generate(&emu, target.client_email(), Some(&bearer), &body_json).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims, _) = parts(body["token"].as_str().unwrap());
    assert_eq!(claims["email"], target.client_email());
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["azp"], target.client_email());

    // The target may be named by unique id.
    let (status, _) = generate(
        &emu,
        target.client_id(),
        Some(&bearer),
        r#"{"audience":"a"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.hits(Route::GenerateIdToken), 3);
}

#[tokio::test]
async fn generate_id_token_errors_are_googles() {
    let emu = emulator().await;
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let bearer = access_token(&emu).await;
    let t = target.client_email();
    emu.allow_impersonation(emu.metadata_service_account(), t);
    let cases: Vec<(&str, Option<&str>, &str, u16, &str)> = vec![
        (t, None, r#"{"audience":"a"}"#, 401, "UNAUTHENTICATED"),
        (
            t,
            Some("ya29.not-issued"),
            r#"{"audience":"a"}"#,
            401,
            "UNAUTHENTICATED",
        ),
        (
            "nobody@p.iam.gserviceaccount.com",
            Some(&bearer),
            r#"{"audience":"a"}"#,
            404,
            "NOT_FOUND",
        ),
        (t, Some(&bearer), r#"{}"#, 400, "INVALID_ARGUMENT"),
        (
            t,
            Some(&bearer),
            r#"{"audience":""}"#,
            400,
            "INVALID_ARGUMENT",
        ),
        (t, Some(&bearer), r#"not json"#, 400, "INVALID_ARGUMENT"),
        (
            t,
            Some(&bearer),
            r#"{"audience":"a","includeEmail":"yes"}"#,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            t,
            Some(&bearer),
            r#"{"audience":"a","delegates":["hop@p.iam.gserviceaccount.com"]}"#,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            t,
            Some(&bearer),
            r#"{"audience":"a","delegates":["projects/-/serviceAccounts/ghost@p.iam.gserviceaccount.com"]}"#,
            404,
            "NOT_FOUND",
        ),
    ];
    for (email, bearer, body, code, status_name) in cases {
        let (status, json) = generate(&emu, email, bearer, body).await;
        assert_eq!(status.as_u16(), code, "{email} {body}: {json}");
        assert_eq!(json["error"]["code"], code);
        assert_eq!(json["error"]["status"], status_name);
        assert!(json["error"]["message"].is_string());
    }
    // A method IAM Credentials does not have is not found.
    let url = emu
        .base_url()
        .join(&format!(
            "v1/projects/-/serviceAccounts/{t}:generateSecrets"
        ))
        .unwrap();
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(&bearer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// `generateIdToken` needs Service Account Token Creator on the target, on every hop of a delegation chain, as
/// `generateAccessToken` and `signJwt` do: any valid credential used to be enough, so a test of "a caller without
/// the grant is refused" got a token and admitted it. (Found by an outsider's attack on the binary: a token any
/// local process can fetch from the metadata server minted ID tokens as every service account.)
#[tokio::test]
async fn generate_id_token_refuses_a_caller_without_the_grant() {
    let emu = emulator().await;
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let hop = emu.create_service_account("hop@p.iam.gserviceaccount.com");
    let bearer = access_token(&emu).await;
    let caller = emu.metadata_service_account().to_owned();
    let denied = |json: &Value| {
        assert_eq!(json["error"]["code"], 403, "{json}");
        assert_eq!(json["error"]["status"], "PERMISSION_DENIED", "{json}");
        assert_eq!(
            json["error"]["details"][0]["reason"], "IAM_PERMISSION_DENIED",
            "{json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("iam.serviceAccounts.getOpenIdToken"),
            "{json}"
        );
        assert!(json.get("token").is_none(), "{json}");
    };
    let direct = r#"{"audience":"https://a.test"}"#;
    let (status, json) = generate(&emu, target.client_email(), Some(&bearer), direct).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    denied(&json);

    // Through a delegate: each hop needs its grant; caller → hop alone is not enough.
    let chained = json!({
        "audience": "https://a.test",
        "delegates": [format!("projects/-/serviceAccounts/{}", hop.client_email())],
    })
    .to_string();
    emu.allow_impersonation(&caller, hop.client_email());
    let (status, json) = generate(&emu, target.client_email(), Some(&bearer), &chained).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    denied(&json);
    emu.allow_impersonation(hop.client_email(), target.client_email());
    let (status, json) = generate(&emu, target.client_email(), Some(&bearer), &chained).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // The grant to the delegate is not one to the target.
    let (status, _) = generate(&emu, target.client_email(), Some(&bearer), direct).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    emu.allow_impersonation(&caller, target.client_email());
    let (status, json) = generate(&emu, target.client_email(), Some(&bearer), direct).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn generate_id_token_accepts_a_self_signed_service_account_jwt() {
    // google-auth outside the default universe sends a self-signed JWT (scope iam) as the bearer.
    let emu = emulator().await;
    let source = emu.create_service_account("source@p.iam.gserviceaccount.com");
    let mut claims = standard_claims(&source, "https://iamcredentials.googleapis.com/", None);
    claims["scope"] = json!("https://www.googleapis.com/auth/iam");
    claims["sub"] = json!(source.client_email());
    let bearer = assertion(&source, &claims);
    let body = r#"{"audience":"https://a.test","includeEmail":"true","useEmailAzp":"true"}"#;
    // Acting as itself needs Token Creator on itself, as on Google.
    let (status, json) = generate(&emu, source.client_email(), Some(&bearer), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    emu.allow_impersonation(source.client_email(), source.client_email());
    let (status, json) = generate(&emu, source.client_email(), Some(&bearer), body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // A JWT signed by a key the emulator never issued is refused.
    let stranger = Emulator::builder()
        .oidc_key_count(1)
        .start()
        .await
        .unwrap()
        .create_service_account("source@p.iam.gserviceaccount.com");
    let forged = assertion(&stranger, &claims);
    let (status, _) = generate(&emu, source.client_email(), Some(&forged), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn debug_output_carries_no_secrets() {
    let emu = emulator().await;
    let key = emu.create_service_account("svc@p.iam.gserviceaccount.com");
    let _ = access_token(&emu).await;
    let debug = format!("{emu:?} {key:?}");
    assert!(!debug.contains("PRIVATE KEY"));
    assert!(!debug.contains("ya29."));
}
