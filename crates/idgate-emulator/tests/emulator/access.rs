//! Access tokens (issue #12): scopes recorded and reported by tokeninfo, domain-wide delegation, the
//! refresh-token grant, IAM generateAccessToken / signJwt with Token Creator grants and delegate chains,
//! keyless DWD end to end, the emulated Cloud Storage bucket list, and hostile input.

use std::time::{Duration, SystemTime};

use idgate_emulator::{Emulator, Fault, Route};
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{JWT_BEARER, assertion, emulator, now, parts, post_token};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM: &str = "https://www.googleapis.com/auth/iam";
const STORAGE_RO: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const ADMIN_USERS: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const ADMIN_GROUPS: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const GMAIL: &str = "https://www.googleapis.com/auth/gmail.readonly";
const UNAUTHORIZED_CLIENT: &str = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.";

/// JWT-bearer claims asking for `scope`, optionally for `sub`.
fn scoped_claims(emu: &Emulator, iss: &str, scope: &str, sub: Option<&str>) -> Value {
    let iat = now();
    let mut c = json!({"iss": iss, "aud": emu.token_url().as_str(), "iat": iat, "exp": iat + 3600, "scope": scope});
    if let Some(sub) = sub {
        c["sub"] = json!(sub);
    }
    c
}

async fn jwt_bearer(emu: &Emulator, assertion: &str) -> (StatusCode, Value) {
    post_token(emu, &[("grant_type", JWT_BEARER), ("assertion", assertion)]).await
}

/// The metadata server's access token, with `?scopes=` when given.
async fn metadata_token(emu: &Emulator, scopes: Option<&str>) -> (StatusCode, String) {
    let mut url = emu
        .metadata_base_url()
        .join("instance/service-accounts/default/token")
        .unwrap();
    if let Some(s) = scopes {
        url.query_pairs_mut().append_pair("scopes", s);
    }
    let resp = reqwest::Client::new()
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    match serde_json::from_str::<Value>(&text) {
        Ok(body) if status.is_success() => {
            (status, body["access_token"].as_str().unwrap().to_owned())
        }
        _ => (status, text),
    }
}

async fn tokeninfo_http(emu: &Emulator, token: &str) -> (StatusCode, Value) {
    let mut url = emu.tokeninfo_url();
    url.query_pairs_mut().append_pair("access_token", token);
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn iam_call(
    url: url::Url,
    bearer: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn list_buckets(emu: &Emulator, project: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut url = emu.storage_url().join("storage/v1/b").unwrap();
    url.query_pairs_mut().append_pair("project", project);
    let mut req = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn metadata_tokens_carry_the_scopes_asked_for() {
    let emu = emulator().await;
    let sa = emu.metadata_service_account().to_owned();

    let (status, default) = metadata_token(&emu, None).await;
    assert_eq!(status, StatusCode::OK);
    let info = emu.tokeninfo(&default).unwrap();
    assert_eq!(info.email(), sa);
    assert_eq!(info.subject(), None);
    assert_eq!(info.scopes(), [CLOUD_PLATFORM]);
    let left = info.expires_at().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));

    let (_, scoped) = metadata_token(&emu, Some(&format!("{STORAGE_RO},{IAM}"))).await;
    assert_eq!(emu.tokeninfo(&scoped).unwrap().scopes(), [STORAGE_RO, IAM]);

    // tokeninfo over HTTP, as Google answers it.
    let (status, body) = tokeninfo_http(&emu, &scoped).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], sa.as_str());
    assert_eq!(body["scope"], format!("{STORAGE_RO} {IAM}"));
    assert_eq!(body["email_verified"], "true");
    assert_eq!(body["access_type"], "online");
    assert_eq!(body["sub"], idgate_emulator::numeric_id(&sa));
    assert_eq!(body["azp"], body["aud"]);
    let exp: i64 = body["exp"].as_str().unwrap().parse().unwrap();
    let expires_in: i64 = body["expires_in"].as_str().unwrap().parse().unwrap();
    assert!((exp - now() - expires_in).abs() <= 2);

    // Scopes separated by spaces, or an empty one, are refused.
    for bad in [
        format!("{STORAGE_RO} {IAM}"),
        format!("{IAM},,{STORAGE_RO}"),
        String::new(),
    ] {
        let (status, _) = metadata_token(&emu, Some(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert_eq!(emu.hits(Route::MetadataAccessToken), 5);
    assert_eq!(emu.hits(Route::AccessTokenInfo), 1);
}

#[tokio::test]
async fn tokeninfo_refuses_unknown_and_expired_tokens() {
    let emu = emulator().await;
    let (_, token) = metadata_token(&emu, None).await;
    assert!(emu.expire_access_token(&token));
    assert!(!emu.expire_access_token("ya29.never-issued"));
    assert_eq!(emu.tokeninfo(&token), None);
    for t in [token.as_str(), "ya29.never-issued", ""] {
        let (status, body) = tokeninfo_http(&emu, t).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": "Invalid Value"})
        );
    }
    // No parameter at all.
    let resp = reqwest::get(emu.tokeninfo_url()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jwt_bearer_access_tokens_record_their_scopes_and_keep_the_assertion_checks() {
    let emu = emulator().await;
    let key = emu.create_service_account("svc@p.iam.gserviceaccount.com");
    let email = key.client_email();

    let (status, body) = jwt_bearer(
        &emu,
        &assertion(
            &key,
            &scoped_claims(
                &emu,
                email,
                &format!("{STORAGE_RO}  {CLOUD_PLATFORM}"),
                None,
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("ya29."));
    let info = emu.tokeninfo(token).unwrap();
    assert_eq!(info.email(), email);
    assert_eq!(info.subject(), None);
    assert_eq!(info.scopes(), [CLOUD_PLATFORM, STORAGE_RO]);
    // Google's audience works as well as the emulator's own token URL; sub = the account itself is no delegation.
    let mut c = scoped_claims(&emu, email, IAM, Some(email));
    c["aud"] = json!("https://oauth2.googleapis.com/token");
    let (status, body) = jwt_bearer(&emu, &assertion(&key, &c)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        emu.tokeninfo(body["access_token"].as_str().unwrap())
            .unwrap()
            .subject(),
        None
    );

    // Refusals: no scope, an empty one, comma-joined scopes, a non-string scope, and the assertion checks
    // (audience, lifetime over an hour, expired) that hold for access tokens as for ID tokens.
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut c = scoped_claims(&emu, email, "", None);
                c.as_object_mut().unwrap().remove("scope");
                c
            },
            "invalid_scope",
        ),
        (scoped_claims(&emu, email, "  ", None), "invalid_scope"),
        (
            scoped_claims(&emu, email, &format!("{IAM},{STORAGE_RO}"), None),
            "invalid_scope",
        ),
        (
            {
                let mut c = scoped_claims(&emu, email, IAM, None);
                c["scope"] = json!([IAM]);
                c
            },
            "invalid_scope",
        ),
        (
            {
                let mut c = scoped_claims(&emu, email, IAM, None);
                c["aud"] = json!("https://evil.test/token");
                c
            },
            "invalid_grant",
        ),
        (
            {
                let mut c = scoped_claims(&emu, email, IAM, None);
                c["exp"] = json!(now() + 3601 + 60);
                c
            },
            "invalid_grant",
        ),
        (
            {
                let mut c = scoped_claims(&emu, email, IAM, None);
                c["iat"] = json!(now() - 7200);
                c["exp"] = json!(now() - 3600);
                c
            },
            "invalid_grant",
        ),
        (
            {
                let mut c = scoped_claims(&emu, email, IAM, None);
                c["sub"] = json!(42);
                c
            },
            "invalid_grant",
        ),
    ];
    for (claims, error) in cases {
        let (status, body) = jwt_bearer(&emu, &assertion(&key, &claims)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{claims}: {body}");
        assert_eq!(body["error"], error, "{claims}: {body}");
        assert!(body["error_description"].is_string());
    }
}

#[tokio::test]
async fn domain_wide_delegation_is_allowed_only_within_the_authorized_scopes() {
    let emu = emulator().await;
    let key = emu.create_service_account("dwd@p.iam.gserviceaccount.com");
    let email = key.client_email();
    let user = "alice@example.com";

    // Not enabled: Google's 401 unauthorized_client, word for word.
    let (status, body) = jwt_bearer(
        &emu,
        &assertion(&key, &scoped_claims(&emu, email, ADMIN_USERS, Some(user))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "unauthorized_client", "error_description": UNAUTHORIZED_CLIENT})
    );

    emu.enable_domain_wide_delegation(email, &[ADMIN_USERS, ADMIN_GROUPS]);
    // A subset is allowed, and the token acts for the user.
    let (status, body) = jwt_bearer(
        &emu,
        &assertion(&key, &scoped_claims(&emu, email, ADMIN_USERS, Some(user))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let info = emu.tokeninfo(token).unwrap();
    assert_eq!(info.email(), email);
    assert_eq!(info.subject(), Some(user));
    assert_eq!(info.scopes(), [ADMIN_USERS]);
    let (_, http) = tokeninfo_http(&emu, token).await;
    assert_eq!(http["email"], user);
    assert_eq!(http["sub"], idgate_emulator::numeric_id(user));
    assert_eq!(http["azp"], key.client_id());

    // A superset is not.
    let (status, body) = jwt_bearer(
        &emu,
        &assertion(
            &key,
            &scoped_claims(&emu, email, &format!("{ADMIN_USERS} {GMAIL}"), Some(user)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized_client");

    // Another account is not enabled by this one's authorization.
    let other = emu.create_service_account("other@p.iam.gserviceaccount.com");
    let (status, _) = jwt_bearer(
        &emu,
        &assertion(
            &other,
            &scoped_claims(&emu, other.client_email(), ADMIN_USERS, Some(user)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_token_grant_issues_user_tokens_within_the_grant() {
    let emu = emulator().await;
    let user = emu.create_authorized_user("dev@example.com");
    let json: Value = serde_json::from_str(&user.to_json()).unwrap();
    let mut fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "client_id",
            "client_secret",
            "refresh_token",
            "token_uri",
            "type",
            "universe_domain"
        ]
    );
    assert_eq!(json["type"], "authorized_user");
    let debug = format!("{user:?}");
    assert!(!debug.contains(user.refresh_token()) && !debug.contains(user.client_secret()));

    let form = |scope: Option<&'static str>| {
        let mut f = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", user.client_id().to_owned()),
            ("client_secret", user.client_secret().to_owned()),
            ("refresh_token", user.refresh_token().to_owned()),
        ];
        if let Some(s) = scope {
            f.push(("scope", s.to_owned()));
        }
        f
    };
    let post = |f: Vec<(&'static str, String)>| {
        let emu = &emu;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_token(emu, &f).await
        }
    };

    // Default: everything gcloud asked for, with an ID token for the OAuth client.
    let (status, body) = post(form(None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = emu
        .tokeninfo(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(info.email(), "dev@example.com");
    assert!(info.scopes().iter().any(|s| s == CLOUD_PLATFORM));
    assert!(body["scope"].as_str().unwrap().contains("openid"));
    let (_, claims, _) = parts(body["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], user.client_id());
    assert_eq!(claims["email"], "dev@example.com");

    // A subset.
    let (status, body) = post(form(Some(CLOUD_PLATFORM))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        emu.tokeninfo(body["access_token"].as_str().unwrap())
            .unwrap()
            .scopes(),
        [CLOUD_PLATFORM]
    );
    assert!(body.get("id_token").is_none());

    // More than was granted, or malformed.
    for scope in [GMAIL, "a,b"] {
        let (status, body) = post(form(Some(scope))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{scope}");
        assert_eq!(body["error"], "invalid_scope");
    }
    // Wrong secret, wrong client, unknown refresh token, missing parameters.
    let mut f = form(None);
    f[2].1 = "GOCSPX-wrong".into();
    let (status, body) = post(f).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let mut f = form(None);
    f[1].1 = "1-other.apps.googleusercontent.com".into();
    let (status, _) = post(f).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut f = form(None);
    f[3].1 = "1//revoked".into();
    let (status, body) = post(f).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = post(vec![("grant_type", "refresh_token".into())]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[cfg(unix)]
#[tokio::test]
async fn authorized_user_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let emu = emulator().await;
    let user = emu.create_authorized_user("dev@example.com");
    let dir = std::env::temp_dir().join(format!("idgate-emu-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = user.write_key_file(&dir).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), user.to_json());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn generate_access_token_follows_the_delegate_chain() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let d1 = emu.create_service_account("d1@p.iam.gserviceaccount.com");
    let d2 = emu.create_service_account("d2@p.iam.gserviceaccount.com");
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let (_, bearer) = metadata_token(&emu, None).await;
    let body = json!({
        "delegates": [
            format!("projects/-/serviceAccounts/{}", d1.client_email()),
            format!("projects/-/serviceAccounts/{}", d2.client_id()),
        ],
        "scope": [STORAGE_RO, CLOUD_PLATFORM],
        "lifetime": "1800s",
    })
    .to_string();
    let url = emu.generate_access_token_url(target.client_email());

    // Only two of the three hops granted: refused, naming the permission.
    emu.allow_impersonation(&caller, d1.client_email());
    emu.allow_impersonation(d2.client_email(), target.client_email());
    let (status, json) = iam_call(url.clone(), Some(&bearer), body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], 403);
    assert_eq!(json["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        json["error"]["message"],
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    );

    // Every hop granted.
    emu.allow_impersonation(d1.client_email(), d2.client_email());
    let (status, json) = iam_call(url.clone(), Some(&bearer), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let token = json["accessToken"].as_str().unwrap();
    let info = emu.tokeninfo(token).unwrap();
    assert_eq!(info.email(), target.client_email());
    assert_eq!(info.scopes(), [CLOUD_PLATFORM, STORAGE_RO]);
    let left = info.expires_at().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(1790) && left <= Duration::from_secs(1800));
    let expire_time = json["expireTime"].as_str().unwrap();
    assert!(
        expire_time.ends_with('Z') && expire_time.len() == 20,
        "{expire_time}"
    );

    // Without delegates the direct hop is needed.
    let direct = json!({"scope": [CLOUD_PLATFORM]}).to_string();
    let (status, _) = iam_call(url.clone(), Some(&bearer), direct.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    emu.allow_impersonation(&caller, target.client_email());
    let (status, json) = iam_call(url.clone(), Some(&bearer), direct.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // The minted token is itself a caller (chained impersonation).
    let next = emu.create_service_account("next@p.iam.gserviceaccount.com");
    emu.allow_impersonation(target.client_email(), next.client_email());
    let (status, _) = iam_call(
        emu.generate_access_token_url(next.client_email()),
        json["accessToken"].as_str(),
        direct,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.hits(Route::GenerateAccessToken), 5);
}

#[tokio::test]
async fn generate_access_token_refusals_are_googles() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    emu.allow_impersonation(&caller, target.client_email());
    let (_, bearer) = metadata_token(&emu, None).await;
    let (_, storage_only) = metadata_token(&emu, Some(STORAGE_RO)).await;
    let (_, expired) = metadata_token(&emu, None).await;
    emu.expire_access_token(&expired);
    let url = emu.generate_access_token_url(target.client_email());
    let ok = json!({"scope": [CLOUD_PLATFORM]}).to_string();

    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, ok.clone(), 401, "UNAUTHENTICATED"),
        (Some("ya29.never-issued"), ok.clone(), 401, "UNAUTHENTICATED"),
        (Some(&expired), ok.clone(), 401, "UNAUTHENTICATED"),
        (Some(&storage_only), ok.clone(), 403, "PERMISSION_DENIED"),
        (Some(&bearer), "not json".into(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), "[1,2]".into(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), "{}".into(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), r#"{"scope":[]}"#.into(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": CLOUD_PLATFORM}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [format!("{CLOUD_PLATFORM} {IAM}")]}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [format!("{CLOUD_PLATFORM},{IAM}")]}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM, 7]}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "lifetime": "3601s"}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "lifetime": "0s"}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "lifetime": "soon"}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "lifetime": 3600}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "delegates": "x"}).to_string(), 400, "INVALID_ARGUMENT"),
        (Some(&bearer), json!({"scope": [CLOUD_PLATFORM], "delegates": ["projects/-/serviceAccounts/ghost@p.iam.gserviceaccount.com"]}).to_string(), 404, "NOT_FOUND"),
    ];
    for (bearer, body, code, status_name) in cases {
        let (status, json) = iam_call(url.clone(), bearer, body.clone()).await;
        assert_eq!(status.as_u16(), code, "{body}: {json}");
        assert_eq!(json["error"]["code"], code, "{json}");
        assert_eq!(json["error"]["status"], status_name, "{json}");
        assert!(json["error"]["message"].is_string());
    }
    // An unknown target is not found.
    let (status, _) = iam_call(
        emu.generate_access_token_url("ghost@p.iam.gserviceaccount.com"),
        Some(&bearer),
        ok.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A huge body is refused, not buffered into a crash.
    let (status, _) = {
        let resp = reqwest::Client::new()
            .post(url.clone())
            .bearer_auth(&bearer)
            .body(vec![b'['; 4 << 20])
            .send()
            .await
            .unwrap();
        (resp.status(), ())
    };
    assert!(status.is_client_error(), "{status}");
    // The iam scope alone is enough.
    let (_, iam_only) = metadata_token(&emu, Some(IAM)).await;
    let (status, _) = iam_call(url, Some(&iam_only), ok).await;
    assert_eq!(status, StatusCode::OK);
}

/// Keyless domain-wide delegation: the caller has signJwt on a DWD-enabled account, signs the assertion with
/// the account's Google-held key, and trades it at the token endpoint. No key file anywhere.
#[tokio::test]
async fn sign_jwt_then_jwt_bearer_is_keyless_domain_wide_delegation() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    // The target has a key file key too, to show signJwt uses a different, emulator-held key.
    let target = emu.create_service_account("dwd@p.iam.gserviceaccount.com");
    let email = target.client_email();
    let user = "alice@example.com";
    emu.enable_domain_wide_delegation(email, &[ADMIN_USERS]);
    let (_, bearer) = metadata_token(&emu, None).await;
    let iat = now();
    let claims = json!({
        "iss": email, "sub": user, "scope": ADMIN_USERS,
        "aud": emu.token_url().as_str(), "iat": iat, "exp": iat + 3600,
    });
    let body = json!({"payload": claims.to_string()}).to_string();

    let (status, json) = iam_call(emu.sign_jwt_url(email), Some(&bearer), body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        json["error"]["message"],
        "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist)."
    );
    emu.allow_impersonation(&caller, email);
    let (status, json) = iam_call(emu.sign_jwt_url(email), Some(&bearer), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let key_id = json["keyId"].as_str().unwrap();
    let signed = json["signedJwt"].as_str().unwrap();
    assert_ne!(key_id, target.private_key_id());
    let (header, payload, _) = parts(signed);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], key_id);
    assert_eq!(payload, claims);

    // The key is published at the account's x509 URL, and the signature verifies with it.
    let certs: Value = reqwest::get(
        emu.base_url()
            .join(&format!("robot/v1/metadata/x509/{email}"))
            .unwrap(),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let pem = certs[key_id].as_str().unwrap();
    let cert =
        <x509_cert::Certificate as x509_cert::der::DecodePem>::from_pem(pem.as_bytes()).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[emu.token_url().as_str()]);
    jsonwebtoken::decode::<Value>(signed, &DecodingKey::from_rsa_der(spki), &validation).unwrap();
    // The same key signs the next time.
    let (_, again) = iam_call(emu.sign_jwt_url(email), Some(&bearer), body).await;
    assert_eq!(again["keyId"], key_id);

    // The token endpoint takes it: an access token acting for the user.
    let (status, json) = jwt_bearer(&emu, signed).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let info = emu
        .tokeninfo(json["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!((info.email(), info.subject()), (email, Some(user)));
    assert_eq!(info.scopes(), [ADMIN_USERS]);

    // DWD rules still apply to keyless assertions: a scope outside the authorization is refused.
    let mut wider = claims.clone();
    wider["scope"] = json!(format!("{ADMIN_USERS} {GMAIL}"));
    let (_, json) = iam_call(
        emu.sign_jwt_url(email),
        Some(&bearer),
        json!({"payload": wider.to_string()}).to_string(),
    )
    .await;
    let (status, json) = jwt_bearer(&emu, json["signedJwt"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"], "unauthorized_client");
    assert_eq!(emu.hits(Route::SignJwt), 4);
}

#[tokio::test]
async fn sign_jwt_refuses_bad_payloads() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("t@p.iam.gserviceaccount.com");
    emu.allow_impersonation(&caller, target.client_email());
    let (_, bearer) = metadata_token(&emu, None).await;
    for body in [
        json!({}).to_string(),
        json!({"payload": {"iss": "x"}}).to_string(),
        json!({"payload": "not json"}).to_string(),
        json!({"payload": "[1]"}).to_string(),
        json!({"payload": json!({"exp": now() + 13 * 3600}).to_string()}).to_string(),
        json!({"payload": json!({"exp": "tomorrow"}).to_string()}).to_string(),
        "{".to_owned(),
    ] {
        let (status, json) = iam_call(
            emu.sign_jwt_url(target.client_email()),
            Some(&bearer),
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(json["error"]["status"], "INVALID_ARGUMENT");
    }
    let (status, _) = iam_call(emu.sign_jwt_url(target.client_email()), None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn storage_bucket_list_checks_the_token_and_its_scopes() {
    let emu = emulator().await;
    let project = emu.project_id().to_owned();
    emu.create_bucket(&project, "b-logs");
    emu.create_bucket(&project, "a-assets");
    emu.create_bucket("other-project", "elsewhere");
    let (_, cloud_platform) = metadata_token(&emu, None).await;

    let (status, body) = list_buckets(&emu, &project, Some(&cloud_platform)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "storage#buckets");
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a-assets", "b-logs", &format!("{project}.appspot.com")]
    );
    let first = &body["items"][0];
    assert_eq!(first["kind"], "storage#bucket");
    assert_eq!(first["id"], "a-assets");
    assert_eq!(first["location"], "US");
    assert_eq!(first["projectNumber"], emu.project_number().to_string());

    // Each storage scope, and the read-only cloud-platform, is enough; another project lists its own.
    for scope in [
        STORAGE_RO,
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/devstorage.full_control",
        "https://www.googleapis.com/auth/cloud-platform.read-only",
    ] {
        let (_, token) = metadata_token(&emu, Some(scope)).await;
        let (status, body) = list_buckets(&emu, "other-project", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{scope}");
        assert_eq!(body["items"][0]["name"], "elsewhere");
    }
    let (_, body) = list_buckets(&emu, "empty-project", Some(&cloud_platform)).await;
    assert_eq!(body, json!({"kind": "storage#buckets"}));

    // 401 without a token, with an unknown one, with an expired one; 403 without a storage scope.
    let (_, expired) = metadata_token(&emu, None).await;
    emu.expire_access_token(&expired);
    let (_, iam_only) = metadata_token(&emu, Some(IAM)).await;
    for (bearer, code) in [
        (None, 401),
        (Some("ya29.never-issued"), 401),
        (Some(expired.as_str()), 401),
        (Some(iam_only.as_str()), 403),
    ] {
        let (status, body) = list_buckets(&emu, &project, bearer).await;
        assert_eq!(status.as_u16(), code, "{bearer:?}: {body}");
        assert_eq!(body["error"]["code"], code);
        assert!(body["error"]["message"].is_string());
        assert_eq!(body["error"]["errors"][0]["domain"], "global");
    }
    // A missing project is a 400.
    let resp = reqwest::Client::new()
        .get(emu.storage_url().join("storage/v1/b").unwrap())
        .bearer_auth(&cloud_platform)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(emu.hits(Route::StorageBuckets), 11);
}

#[tokio::test]
async fn new_routes_count_hits_and_play_faults() {
    let emu = emulator().await;
    for route in [
        Route::AccessTokenInfo,
        Route::GenerateAccessToken,
        Route::SignJwt,
        Route::StorageBuckets,
    ] {
        emu.inject(route, Fault::Status(503), 1);
        let resp = match route {
            Route::AccessTokenInfo | Route::StorageBuckets => {
                reqwest::get(emu.url(route)).await.unwrap()
            }
            _ => reqwest::Client::new()
                .post(emu.url(route))
                .body("{}")
                .send()
                .await
                .unwrap(),
        };
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{route:?}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].is_object() || body["error"].is_string(),
            "{route:?}: {body}"
        );
        assert_eq!(emu.hits(route), 1, "{route:?}");
    }
}

#[tokio::test]
async fn hostile_token_requests_get_googles_400s() {
    let emu = emulator().await;
    // A JSON body, an unknown grant type, an empty assertion, a huge body.
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .json(&json!({"grant_type": JWT_BEARER}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, body) = post_token(&emu, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = post_token(&emu, &[("grant_type", JWT_BEARER), ("assertion", "")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let huge = "a".repeat(4 << 20);
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .form(&[("grant_type", JWT_BEARER), ("assertion", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // The emulator still answers.
    let (status, _) = metadata_token(&emu, None).await;
    assert_eq!(status, StatusCode::OK);
}
