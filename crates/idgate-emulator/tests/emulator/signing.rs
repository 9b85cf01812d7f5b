//! Signing as a service account (issue #13): IAM `signBlob` (authorization as `generateAccessToken`, faults,
//! Google's 400s), the account's public keys under `service_accounts/v1/metadata/` in its three forms (each
//! verifying what `signBlob` and a key file sign), and retiring keys (rotation of the system key, deletion).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idgate_emulator::{Emulator, EmulatorError, Fault, Route, ServiceAccountKeyFile};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{JWT_BEARER, assertion, emulator, now, post_token};

const MESSAGE: &[u8] = b"issue #13: a message signed as the app";

/// The metadata server's access token (scope `cloud-platform`, or `scopes`).
async fn metadata_token(emu: &Emulator, scopes: Option<&str>) -> String {
    let mut url = emu
        .metadata_base_url()
        .join("instance/service-accounts/default/token")
        .unwrap();
    if let Some(s) = scopes {
        url.query_pairs_mut().append_pair("scopes", s);
    }
    let body: Value = reqwest::Client::new()
        .get(url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// POSTs `body` to `signBlob` as `email`: the status and the JSON answer.
async fn sign_blob(
    emu: &Emulator,
    email: &str,
    bearer: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(emu.sign_blob_url(email))
        .header("content-type", "application/json")
        .body(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// `signBlob` of `message` that must succeed: the key ID and the signature.
async fn signed(emu: &Emulator, email: &str, bearer: &str, message: &[u8]) -> (String, Vec<u8>) {
    let body = json!({"payload": STANDARD.encode(message)}).to_string();
    let (status, json) = sign_blob(emu, email, Some(bearer), body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    (
        json["keyId"].as_str().unwrap().to_owned(),
        STANDARD
            .decode(json["signedBlob"].as_str().unwrap())
            .unwrap(),
    )
}

async fn get(url: url::Url) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

/// Verifies an RS256 signature with a PKCS#1 `RSAPublicKey`.
fn verifies_pkcs1(pkcs1: &[u8], message: &[u8], signature_bytes: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
        .verify(message, signature_bytes)
        .is_ok()
}

/// Verifies an RS256 signature with a modulus and exponent.
fn verifies_components(n: &[u8], e: &[u8], message: &[u8], signature_bytes: &[u8]) -> bool {
    RsaPublicKeyComponents { n, e }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature_bytes,
        )
        .is_ok()
}

/// Whether the key `kid` of the x509 document `certs` verifies the signature.
fn x509_verifies(certs: &Value, kid: &str, message: &[u8], signature_bytes: &[u8]) -> bool {
    let Some(pem) = certs[kid].as_str() else {
        return false;
    };
    let cert =
        <x509_cert::Certificate as x509_cert::der::DecodePem>::from_pem(pem.as_bytes()).unwrap();
    let pkcs1 = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    verifies_pkcs1(pkcs1, message, signature_bytes)
}

/// Whether the key `kid` of the JWKS `jwks` verifies the signature.
fn jwk_verifies(jwks: &Value, kid: &str, message: &[u8], signature_bytes: &[u8]) -> bool {
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
    else {
        return false;
    };
    assert_eq!(
        (&jwk["kty"], &jwk["alg"], &jwk["use"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"))
    );
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    verifies_components(&n, &e, message, signature_bytes)
}

/// Whether the key `kid` of the raw document `raw` verifies the signature.
fn raw_verifies(raw: &Value, kid: &str, message: &[u8], signature_bytes: &[u8]) -> bool {
    let Some(entry) = raw["keyvalues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == kid)
    else {
        return false;
    };
    assert_eq!(entry["algorithm"], "RSA");
    let n = STANDARD.decode(entry["modulus"].as_str().unwrap()).unwrap();
    let e = STANDARD
        .decode(entry["exponent"].as_str().unwrap())
        .unwrap();
    verifies_components(&n, &e, message, signature_bytes)
}

/// The three documents of `email`, fetched now.
async fn documents(emu: &Emulator, email: &str) -> (Value, Value, Value) {
    let json = |url| async move { get(url).await.json::<Value>().await.unwrap() };
    (
        json(emu.service_account_x509_url(email)).await,
        json(emu.service_account_jwk_url(email)).await,
        json(emu.service_account_raw_url(email)).await,
    )
}

/// Whether every document of `email` verifies the signature with key `kid`; panics if they disagree.
async fn published_and_verifies(
    emu: &Emulator,
    email: &str,
    kid: &str,
    message: &[u8],
    signature_bytes: &[u8],
) -> bool {
    let (x509, jwk, raw) = documents(emu, email).await;
    let answers = [
        x509_verifies(&x509, kid, message, signature_bytes),
        jwk_verifies(&jwk, kid, message, signature_bytes),
        raw_verifies(&raw, kid, message, signature_bytes),
    ];
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the documents disagree about {kid}: {answers:?}"
    );
    answers[0]
}

/// RS256 over `message` with a key file's private key, as a local signer does.
fn sign_locally(key: &ServiceAccountKeyFile, message: &[u8]) -> Vec<u8> {
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key_pem().as_bytes()).unwrap();
    let b64 = jsonwebtoken::crypto::sign(message, &enc, jsonwebtoken::Algorithm::RS256).unwrap();
    URL_SAFE_NO_PAD.decode(b64).unwrap()
}

#[tokio::test]
async fn sign_blob_and_key_file_signatures_verify_with_every_published_document() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("signer@p.iam.gserviceaccount.com");
    let email = target.client_email();
    emu.allow_impersonation(&caller, email);
    let bearer = metadata_token(&emu, None).await;
    assert_eq!(emu.system_key_id(email), None);

    let (key_id, signature_bytes) = signed(&emu, email, &bearer, MESSAGE).await;
    // IAM signs with the emulator-held system key, not the key file's, and says which.
    assert_ne!(key_id, target.private_key_id());
    assert_eq!(emu.system_key_id(email).as_deref(), Some(key_id.as_str()));
    assert_eq!(signature_bytes.len(), 256);
    assert!(published_and_verifies(&emu, email, &key_id, MESSAGE, &signature_bytes).await);
    // A tampered message, or another key ID, does not verify.
    assert!(!published_and_verifies(&emu, email, &key_id, b"tampered", &signature_bytes).await);
    assert!(
        !published_and_verifies(
            &emu,
            email,
            target.private_key_id(),
            MESSAGE,
            &signature_bytes
        )
        .await
    );
    // The same key signs next time.
    let (again, _) = signed(&emu, email, &bearer, b"another").await;
    assert_eq!(again, key_id);

    // A signature made locally with the key file verifies the same way: every key of the account is published.
    let local = sign_locally(&target, MESSAGE);
    assert!(published_and_verifies(&emu, email, target.private_key_id(), MESSAGE, &local).await);
    let (x509, jwk, raw) = documents(&emu, email).await;
    let mut kids = vec![key_id.clone(), target.private_key_id().to_owned()];
    kids.sort();
    assert_eq!(
        x509.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        kids
    );
    let listed = |doc: &Value, list: &str, field: &str| -> Vec<String> {
        doc[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k[field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&jwk, "keys", "kid"), kids);
    assert_eq!(listed(&raw, "keyvalues", "keyid"), kids);
    assert!(
        raw["keyvalues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["exponent"] == "AQAB")
    );
    assert_eq!(emu.hits(Route::SignBlob), 2);
}

#[tokio::test]
async fn key_documents_have_googles_paths_headers_and_404() {
    let emu = Emulator::builder()
        .oidc_key_count(1)
        .iap_key_count(1)
        .service_account_keys_max_age(std::time::Duration::from_secs(1234))
        .age(std::time::Duration::from_secs(34))
        .start()
        .await
        .unwrap();
    let target = emu.create_service_account("docs@p.iam.gserviceaccount.com");
    let email = target.client_email();
    emu.reset_hits();

    let root = emu.service_account_keys_root();
    assert!(root.as_str().ends_with("/service_accounts/v1/metadata/"));
    assert_eq!(
        emu.service_account_x509_url(email),
        root.join(&format!("x509/{email}")).unwrap()
    );
    for (format, route) in [
        ("x509", Route::ServiceAccountCerts),
        ("jwk", Route::ServiceAccountJwks),
        ("raw", Route::ServiceAccountRawKeys),
    ] {
        // The email as clients send it: plain, and percent-encoded (`%40`).
        for spelling in [email.to_owned(), email.replace('@', "%40")] {
            let resp = get(root.join(&format!("{format}/{spelling}")).unwrap()).await;
            assert_eq!(resp.status(), StatusCode::OK, "{format}/{spelling}");
            let headers = resp.headers();
            assert_eq!(
                headers["cache-control"],
                "public, max-age=1234, must-revalidate, no-transform"
            );
            assert_eq!(headers["age"], "34");
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let body: Value = resp.json().await.unwrap();
            assert!(
                body.to_string().contains(target.private_key_id()),
                "{format}: {body}"
            );
        }
        assert_eq!(emu.hits(route), 2, "{format}");

        // An account the emulator does not know: 404, JSON.
        let resp = get(root
            .join(&format!("{format}/nobody@p.iam.gserviceaccount.com"))
            .unwrap())
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{format}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 404);
    }
    // The older x509 path (key files' `client_x509_cert_url`) is the same document, counted on the same route.
    let resp = get(emu
        .base_url()
        .join(&format!("robot/v1/metadata/x509/{email}"))
        .unwrap())
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let legacy: Value = resp.json().await.unwrap();
    let (x509, _, _) = documents(&emu, email).await;
    assert_eq!(legacy, x509);
    assert_eq!(emu.hits(Route::ServiceAccountCerts), 5);
    // The metadata server's account has no key until it signs: an empty document, not a 404.
    let (x509, jwk, raw) = documents(&emu, emu.metadata_service_account()).await;
    assert_eq!(
        (x509, jwk, raw),
        (json!({}), json!({"keys": []}), json!({"keyvalues": []}))
    );
}

#[tokio::test]
async fn sign_blob_is_authorized_as_generate_access_token() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let d1 = emu.create_service_account("d1@p.iam.gserviceaccount.com");
    let d2 = emu.create_service_account("d2@p.iam.gserviceaccount.com");
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let email = target.client_email();
    let bearer = metadata_token(&emu, None).await;
    let payload = STANDARD.encode(MESSAGE);
    let plain = json!({"payload": payload}).to_string();

    // No credential, a credential the emulator never issued: 401.
    let (status, json) = sign_blob(&emu, email, None, plain.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["status"], "UNAUTHENTICATED");
    let (status, json) = sign_blob(&emu, email, Some("ya29.never-issued"), plain.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        json["error"]["details"][0]["metadata"]["method"],
        "google.iam.credentials.v1.IAMCredentials.SignBlob"
    );
    // A token without cloud-platform or iam: 403, insufficient scopes.
    let storage = metadata_token(
        &emu,
        Some("https://www.googleapis.com/auth/devstorage.read_only"),
    )
    .await;
    let (status, json) = sign_blob(&emu, email, Some(&storage), plain.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        json["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    );
    // No Token Creator grant: 403 naming the permission.
    let (status, json) = sign_blob(&emu, email, Some(&bearer), plain.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        json["error"]["message"],
        "Permission 'iam.serviceAccounts.signBlob' denied on resource (or it may not exist)."
    );
    assert_eq!(
        json["error"]["details"][0]["reason"],
        "IAM_PERMISSION_DENIED"
    );

    // Through delegates: every hop needs its grant.
    let chained = json!({
        "delegates": [
            format!("projects/-/serviceAccounts/{}", d1.client_email()),
            format!("projects/-/serviceAccounts/{}", d2.client_id()),
        ],
        "payload": payload,
    })
    .to_string();
    emu.allow_impersonation(&caller, d1.client_email());
    emu.allow_impersonation(d2.client_email(), email);
    let (status, _) = sign_blob(&emu, email, Some(&bearer), chained.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    emu.allow_impersonation(d1.client_email(), d2.client_email());
    let (status, json) = sign_blob(&emu, email, Some(&bearer), chained).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let signature_bytes = STANDARD
        .decode(json["signedBlob"].as_str().unwrap())
        .unwrap();
    let key_id = json["keyId"].as_str().unwrap();
    assert!(published_and_verifies(&emu, email, key_id, MESSAGE, &signature_bytes).await);
    // The direct hop alone is not granted.
    let (status, _) = sign_blob(&emu, email, Some(&bearer), plain.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An unknown delegate or target: 404.
    let ghost = json!({"delegates": ["projects/-/serviceAccounts/ghost@p.iam.gserviceaccount.com"], "payload": payload});
    let (status, _) = sign_blob(&emu, email, Some(&bearer), ghost.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, json) = sign_blob(
        &emu,
        "ghost@p.iam.gserviceaccount.com",
        Some(&bearer),
        plain.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");

    // A service account signing as itself needs the grant on itself, as on Google.
    let (status, _) = sign_blob(&emu, &caller, Some(&bearer), plain.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    emu.allow_impersonation(&caller, &caller);
    let (key_id, signature_bytes) = signed(&emu, &caller, &bearer, MESSAGE).await;
    assert!(published_and_verifies(&emu, &caller, &key_id, MESSAGE, &signature_bytes).await);
}

#[tokio::test]
async fn sign_blob_refuses_bad_payloads_with_googles_400s() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let email = target.client_email();
    emu.allow_impersonation(&caller, email);
    let bearer = metadata_token(&emu, None).await;

    for body in [
        json!({}).to_string(),
        json!({"payload": null}).to_string(),
        json!({"payload": ""}).to_string(),
        json!({"payload": 42}).to_string(),
        json!({"payload": ["aGk="]}).to_string(),
        json!({"payload": "not base64 at all!"}).to_string(),
        json!({"payload": "aGk=", "delegates": "nope"}).to_string(),
        json!({"payload": "aGk=", "delegates": ["nope"]}).to_string(),
        "[]".to_owned(),
        "not json".to_owned(),
    ] {
        let (status, json) = sign_blob(&emu, email, Some(&bearer), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(json["error"]["status"], "INVALID_ARGUMENT", "{body}");
        assert!(
            !json.to_string().contains(&bearer),
            "the answer echoes the bearer"
        );
    }
    // proto3 JSON bytes: URL-safe and unpadded base64 are the same bytes.
    let message = b"\xfb\xff\xfe bytes that differ in URL-safe base64";
    let (kid, standard_sig) = signed(&emu, email, &bearer, message).await;
    let body = json!({"payload": URL_SAFE_NO_PAD.encode(message)}).to_string();
    let (status, json) = sign_blob(&emu, email, Some(&bearer), body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let url_safe_sig = STANDARD
        .decode(json["signedBlob"].as_str().unwrap())
        .unwrap();
    // RSASSA-PKCS1-v1_5 is deterministic: the same bytes, the same signature.
    assert_eq!(url_safe_sig, standard_sig);
    assert!(published_and_verifies(&emu, email, &kid, message, &standard_sig).await);
}

#[tokio::test]
async fn signing_routes_count_hits_and_play_faults() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("target@p.iam.gserviceaccount.com");
    let email = target.client_email();
    emu.allow_impersonation(&caller, email);
    let bearer = metadata_token(&emu, None).await;
    emu.reset_hits();

    // signBlob: a 503 with Google's JSON error, then a normal answer.
    emu.inject(Route::SignBlob, Fault::Status(503), 1);
    let body = json!({"payload": STANDARD.encode(MESSAGE)}).to_string();
    let (status, json) = sign_blob(&emu, email, Some(&bearer), body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["status"], "UNAVAILABLE");
    let (status, _) = sign_blob(&emu, email, Some(&bearer), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.hits(Route::SignBlob), 2);
    // Garbage: 200 with a body that is not the answer.
    emu.inject(Route::SignBlob, Fault::Garbage, 1);
    let resp = reqwest::Client::new()
        .post(emu.sign_blob_url(email))
        .bearer_auth(&bearer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).is_err());

    // The documents, on their routes (`Emulator::url` names the metadata account's).
    for (route, url) in [
        (
            Route::ServiceAccountCerts,
            emu.service_account_x509_url(email),
        ),
        (
            Route::ServiceAccountJwks,
            emu.service_account_jwk_url(email),
        ),
        (
            Route::ServiceAccountRawKeys,
            emu.service_account_raw_url(email),
        ),
    ] {
        emu.inject(route, Fault::Status(500), 1);
        assert_eq!(
            get(url.clone()).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(get(url).await.status(), StatusCode::OK, "{route:?}");
        assert_eq!(emu.hits(route), 2, "{route:?}");
        assert_eq!(get(emu.url(route)).await.status(), StatusCode::OK);
    }
    assert!(emu.url(Route::SignBlob).as_str().ends_with(":signBlob"),);
}

#[tokio::test]
async fn rotated_and_deleted_keys_are_retired_everywhere() {
    let emu = emulator().await;
    let caller = emu.metadata_service_account().to_owned();
    let target = emu.create_service_account("rotating@p.iam.gserviceaccount.com");
    let email = target.client_email();
    emu.allow_impersonation(&caller, email);
    let bearer = metadata_token(&emu, None).await;

    // Sign through IAM with the first system key.
    let (old, old_sig) = signed(&emu, email, &bearer, MESSAGE).await;
    assert!(published_and_verifies(&emu, email, &old, MESSAGE, &old_sig).await);

    // Rotate: IAM signs with the new key; the old one stays published until deleted.
    let new = emu.rotate_system_key(email).unwrap();
    assert_ne!(new, old);
    assert_eq!(emu.system_key_id(email).as_deref(), Some(new.as_str()));
    let (kid, new_sig) = signed(&emu, email, &bearer, MESSAGE).await;
    assert_eq!(kid, new);
    assert!(published_and_verifies(&emu, email, &old, MESSAGE, &old_sig).await);
    assert!(published_and_verifies(&emu, email, &new, MESSAGE, &new_sig).await);

    // Delete the old one: gone from every document, so its signature verifies no more.
    assert!(emu.delete_service_account_key(email, &old));
    assert!(!emu.delete_service_account_key(email, &old));
    assert!(!published_and_verifies(&emu, email, &old, MESSAGE, &old_sig).await);
    assert!(published_and_verifies(&emu, email, &new, MESSAGE, &new_sig).await);
    let (x509, _, _) = documents(&emu, email).await;
    assert!(x509.get(&old).is_none());

    // Deleting the key file's key: the token endpoint refuses assertions signed with it.
    let claims = json!({
        "iss": email, "aud": emu.token_url().as_str(), "iat": now(), "exp": now() + 3600,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
    });
    let signed_assertion = assertion(&target, &claims);
    let (status, json) = post_token(
        &emu,
        &[("grant_type", JWT_BEARER), ("assertion", &signed_assertion)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(emu.delete_service_account_key(email, target.private_key_id()));
    let (status, json) = post_token(
        &emu,
        &[("grant_type", JWT_BEARER), ("assertion", &signed_assertion)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_grant");
    assert_eq!(json["error_description"], "Invalid JWT Signature.");

    // Deleting the signing key makes the next signBlob create a fresh one.
    assert!(emu.delete_service_account_key(email, &new));
    assert_eq!(emu.system_key_id(email), None);
    let (fresh, fresh_sig) = signed(&emu, email, &bearer, MESSAGE).await;
    assert!(fresh != old && fresh != new);
    assert!(published_and_verifies(&emu, email, &fresh, MESSAGE, &fresh_sig).await);
    let (x509, _, _) = documents(&emu, email).await;
    assert_eq!(x509.as_object().unwrap().len(), 1);

    // Unknown accounts and keys.
    assert!(!emu.delete_service_account_key("nobody@p.iam.gserviceaccount.com", &fresh));
    assert!(!emu.delete_service_account_key(email, "no-such-key"));
    assert!(matches!(
        emu.rotate_system_key("nobody@p.iam.gserviceaccount.com"),
        Err(EmulatorError::UnknownAccount(_))
    ));
}
