//! Signing as a service account (issue #13) against the emulator: local and IAM signatures verify with the
//! account's published x509/jwk documents, key IDs are returned, IAM's refusals are typed (403 naming the
//! permission, 401 after one retry), 5xx is retried and 4xx is not, the attached account, delegate chains, ADC,
//! `sign_jwt`'s header and filled-in claims, and hostile input.

use std::collections::HashMap;
use std::ffi::OsString;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idgate_client::{
    Adc, ClaimsProblem, HttpOptions, Impersonated, MetadataServer, ResponseProblem, RetryPolicy,
    ServiceAccountKey, SignError, SignedBlob, Signer, SourceError,
};
use idgate_core::ErrorChain;
use idgate_core::google::Endpoints;
use idgate_core::keys::{KeyFormat, KeySet};
use idgate_emulator::{Emulator, Fault, Route, ServiceAccountKeyFile};
use serde_json::{Value, json};

use crate::helpers::{METADATA_SA, closed_port, emulator, quick_retry};

const APP: &str = "app@emu-project.iam.gserviceaccount.com";
const MESSAGE: &[u8] = b"issue #13: this request really comes from app@";
const PARTNER: &str = "https://partner.example.com";

fn metadata(emu: &Emulator) -> MetadataServer {
    MetadataServer::from_base_url(&emu.base_url())
}

/// An IAM signer as `email`, authorised by the metadata server's account, against the emulator.
fn iam_signer(emu: &Emulator, email: &str) -> Signer {
    Signer::iam(metadata(emu), email)
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(HttpOptions::new().retry(quick_retry()))
}

fn local_signer(key: &ServiceAccountKeyFile) -> Signer {
    Signer::from_key(ServiceAccountKey::from_json(key.to_json().as_bytes()).unwrap())
}

/// `email`'s published keys, in both forms a verifier reads.
async fn published(emu: &Emulator, email: &str) -> (KeySet, KeySet) {
    let get =
        |url: url::Url| async move { reqwest::get(url).await.unwrap().bytes().await.unwrap() };
    let x509 = KeySet::parse(
        KeyFormat::OidcPemCertificates,
        &get(emu.service_account_x509_url(email)).await,
    )
    .unwrap();
    let jwks = KeySet::parse(
        KeyFormat::OidcJwks,
        &get(emu.service_account_jwk_url(email)).await,
    )
    .unwrap();
    (x509, jwks)
}

/// Whether both published forms verify `signed` over `message`; panics if they disagree.
async fn verifies(emu: &Emulator, email: &str, message: &[u8], signed: &SignedBlob) -> bool {
    let (x509, jwks) = published(emu, email).await;
    let check = |set: &KeySet| {
        set.get(signed.key_id())
            .is_some_and(|key| key.verify(message, signed.signature()))
    };
    let (a, b) = (check(&x509), check(&jwks));
    assert_eq!(a, b, "the x509 and jwk documents disagree");
    a
}

/// The decoded header and claims of a JWT, and whether `email`'s published keys verify it.
async fn decode_jwt(emu: &Emulator, email: &str, jwt: &str) -> (Value, Value, bool) {
    let mut parts = jwt.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = json(h);
    let signed = SignedBlob::new(
        header["kid"].as_str().unwrap(),
        URL_SAFE_NO_PAD.decode(s).unwrap(),
    );
    let ok = verifies(emu, email, format!("{h}.{p}").as_bytes(), &signed).await;
    (header, json(p), ok)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn local_and_iam_signatures_verify_with_the_published_keys() {
    let emu = emulator().await;
    let key = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);

    // Locally: the key file's key ID.
    let local = local_signer(&key);
    assert!(local.is_local());
    assert_eq!(local.email().await.unwrap(), APP);
    let signed = local.sign_blob(MESSAGE).await.unwrap();
    assert_eq!(signed.key_id(), key.private_key_id());
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);
    assert!(!verifies(&emu, APP, b"tampered", &signed).await);

    // Through IAM: the key IAM used, named by IAM, published with the others.
    let iam = iam_signer(&emu, APP);
    assert!(!iam.is_local());
    let through_iam = iam.sign_blob(MESSAGE).await.unwrap();
    assert_eq!(
        Some(through_iam.key_id()),
        emu.system_key_id(APP).as_deref()
    );
    assert_ne!(through_iam.key_id(), key.private_key_id());
    assert!(verifies(&emu, APP, MESSAGE, &through_iam).await);
    // Another key ID than the one returned does not verify it.
    let wrong_kid = SignedBlob::new(key.private_key_id(), through_iam.signature().to_vec());
    assert!(!verifies(&emu, APP, MESSAGE, &wrong_kid).await);
    assert_eq!(
        STANDARD.decode(through_iam.signature_base64()).unwrap(),
        through_iam.signature()
    );
    assert_eq!(emu.hits(Route::SignBlob), 1);

    // Empty bytes sign locally (IAM's answer to an empty payload is IAM's business).
    let empty = local.sign_blob(b"").await.unwrap();
    assert!(verifies(&emu, APP, b"", &empty).await);

    // Debug names the account and the key, never the key material.
    let debug = format!("{local:?} {iam:?}");
    assert!(
        debug.contains(key.private_key_id()) && debug.contains(APP),
        "{debug}"
    );
    assert!(
        !debug.contains("PRIVATE KEY") && !debug.contains("ya29."),
        "{debug}"
    );
}

#[tokio::test]
async fn a_retired_key_no_longer_verifies() {
    let emu = emulator().await;
    let _ = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);
    let signer = iam_signer(&emu, APP);
    let old = signer.sign_blob(MESSAGE).await.unwrap();
    let new_kid = emu.rotate_system_key(APP).unwrap();
    assert!(emu.delete_service_account_key(APP, old.key_id()));
    assert!(!verifies(&emu, APP, MESSAGE, &old).await);
    let new = signer.sign_blob(MESSAGE).await.unwrap();
    assert_eq!(new.key_id(), new_kid);
    assert!(verifies(&emu, APP, MESSAGE, &new).await);
}

#[tokio::test]
async fn permission_denied_names_the_permission_and_the_role() {
    let emu = emulator().await;
    let _ = emu.create_service_account(APP);
    let signer = iam_signer(&emu, APP);

    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert_eq!(err.permission(), Some("iam.serviceAccounts.signBlob"));
    assert_eq!(err.signer(), Some(APP));
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    assert!(!err.is_transient());
    let message = err.to_string();
    for part in [
        "iam.serviceAccounts.signBlob",
        "roles/iam.serviceAccountTokenCreator",
        "Service Account Token Creator",
        APP,
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    // IAM's own words are the cause, not repeated in the message.
    let chain = ErrorChain(&err).to_string();
    assert!(
        chain.contains("Permission 'iam.serviceAccounts.signBlob' denied"),
        "{chain}"
    );
    assert!(!message.contains("Permission '"), "{message}");
    // A 4xx is never retried.
    assert_eq!(emu.hits(Route::SignBlob), 1);

    let err = signer.sign_jwt(&json!({"aud": PARTNER})).await.unwrap_err();
    assert_eq!(err.permission(), Some("iam.serviceAccounts.signJwt"));
    assert!(err.to_string().contains("iam.serviceAccounts.signJwt"));
    assert_eq!(emu.hits(Route::SignJwt), 1);
}

#[tokio::test]
async fn a_401_drops_the_reused_token_and_retries_once() {
    let emu = emulator().await;
    let _ = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);
    let signer = iam_signer(&emu, APP);
    signer.sign_blob(MESSAGE).await.unwrap();
    assert_eq!(emu.hits(Route::MetadataAccessToken), 1);

    // The reused token is refused once: dropped, a fresh one fetched, the call made again.
    emu.inject(Route::SignBlob, Fault::Status(401), 1);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);
    assert_eq!(emu.hits(Route::SignBlob), 3);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 2);

    // Refused again with the fresh token: Unauthenticated, after that one retry.
    emu.inject(Route::SignBlob, Fault::Status(401), 2);
    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    assert_eq!(err.status(), Some(http::StatusCode::UNAUTHORIZED));
    assert_eq!(emu.hits(Route::SignBlob), 5);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 3);
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let emu = emulator().await;
    let _ = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);
    let signer = iam_signer(&emu, APP);

    // Two 503s, then the answer (three attempts by default).
    emu.inject(Route::SignBlob, Fault::Status(503), 2);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);
    assert_eq!(emu.hits(Route::SignBlob), 3);
    emu.reset_hits();

    for code in [500, 502, 504] {
        emu.inject(Route::SignJwt, Fault::Status(code), 1);
    }
    let err = signer.sign_jwt(&json!({"aud": PARTNER})).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::GATEWAY_TIMEOUT),
        "{err}"
    );
    assert_eq!(emu.hits(Route::SignJwt), 3);
    emu.clear_faults();
    emu.reset_hits();

    // 503 every time: a transient IAM failure after the attempts.
    emu.inject(Route::SignBlob, Fault::Status(503), 3);
    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert!(matches!(err, SignError::Iam { .. }), "{err:?}");
    assert_eq!(emu.hits(Route::SignBlob), 3);
    emu.reset_hits();

    // 4xx (429 included) and 501: once.
    for code in [400, 404, 429, 501] {
        emu.inject(Route::SignBlob, Fault::Status(code), 1);
        let err = signer.sign_blob(MESSAGE).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(code), "{err}");
        assert_eq!(emu.hits(Route::SignBlob), 1, "{code}");
        emu.reset_hits();
    }

    // A 200 that is not IAM's answer: an invalid response, not retried.
    emu.inject(Route::SignBlob, Fault::Garbage, 1);
    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    let SignError::Iam { error, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(error.is_invalid_response(), "{error}");
    assert_eq!(emu.hits(Route::SignBlob), 1);

    // No retries at all with RetryPolicy::none().
    emu.reset_hits();
    let once = iam_signer(&emu, APP).http(HttpOptions::new().retry(RetryPolicy::none()));
    emu.inject(Route::SignBlob, Fault::Status(503), 1);
    assert!(once.sign_blob(MESSAGE).await.unwrap_err().is_transient());
    assert_eq!(emu.hits(Route::SignBlob), 1);
}

#[tokio::test]
async fn the_attached_account_signs_as_itself() {
    let emu = emulator().await;
    let signer = Signer::attached(metadata(&emu))
        .endpoints(&Endpoints::under(&emu.base_url()))
        .http(HttpOptions::new().retry(quick_retry()));
    assert_eq!(signer.email().await.unwrap(), METADATA_SA);

    // As on Google, the account needs Token Creator on itself.
    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert_eq!(err.signer(), Some(METADATA_SA));
    emu.allow_impersonation(METADATA_SA, METADATA_SA);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, METADATA_SA, MESSAGE, &signed).await);

    let jwt = signer
        .clone()
        .sign_jwt(&json!({"aud": PARTNER}))
        .await
        .unwrap();
    let (header, claims, ok) = decode_jwt(&emu, METADATA_SA, &jwt).await;
    assert!(ok);
    assert_eq!(header["kid"], signed.key_id());
    assert_eq!(
        (&claims["iss"], &claims["sub"]),
        (&json!(METADATA_SA), &json!(METADATA_SA))
    );
    // The email was read once, shared by the clone.
    assert_eq!(emu.hits(Route::MetadataEmail), 1);

    // A named instance account is used as is, without asking the metadata server.
    let named = Signer::attached(metadata(&emu).service_account(APP));
    assert_eq!(named.email().await.unwrap(), APP);
    assert_eq!(emu.hits(Route::MetadataEmail), 1);

    // Off Google Cloud: the email cannot be read, a typed credential error.
    let nowhere: url::Url = format!("http://127.0.0.1:{}/", closed_port().await)
        .parse()
        .unwrap();
    let offline = Signer::attached(
        MetadataServer::from_base_url(&nowhere).http(HttpOptions::new().retry(quick_retry())),
    );
    let err = offline.sign_blob(MESSAGE).await.unwrap_err();
    assert!(matches!(err, SignError::AttachedAccount(_)), "{err:?}");
    assert!(err.is_credential() && err.is_transient(), "{err}");
}

#[tokio::test]
async fn delegate_chains_and_impersonated_sources() {
    let emu = emulator().await;
    let hop = emu.create_service_account("hop@emu-project.iam.gserviceaccount.com");
    let _ = emu.create_service_account(APP);
    let signer = iam_signer(&emu, APP).delegates([hop.client_email()]);

    emu.allow_impersonation(METADATA_SA, hop.client_email());
    let err = signer.sign_blob(MESSAGE).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert!(
        err.to_string().contains("each account of the chain"),
        "{err}"
    );
    emu.allow_impersonation(hop.client_email(), APP);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);

    // The same chain from an Impersonated source: its target, delegates and endpoint.
    let imp = Impersonated::new(metadata(&emu), APP)
        .delegates([hop.client_email()])
        .endpoints(&Endpoints::under(&emu.base_url()));
    let signer = Signer::from_impersonated(&imp);
    assert_eq!(signer.email().await.unwrap(), APP);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);
    let jwt = signer.sign_jwt(&json!({"aud": PARTNER})).await.unwrap();
    assert!(decode_jwt(&emu, APP, &jwt).await.2);
}

#[tokio::test]
async fn sign_jwt_fills_in_the_claims_a_verifier_expects() {
    let emu = emulator().await;
    let key = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);
    let iam_kid = iam_signer(&emu, APP).sign_blob(b"x").await.unwrap();

    for (signer, kid) in [
        (local_signer(&key), key.private_key_id().to_owned()),
        (iam_signer(&emu, APP), iam_kid.key_id().to_owned()),
    ] {
        let before = unix_now();
        let jwt = signer
            .sign_jwt(&json!({"aud": PARTNER, "purpose": "demo"}))
            .await
            .unwrap();
        let (header, claims, ok) = decode_jwt(&emu, APP, &jwt).await;
        assert!(ok, "{jwt}");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], kid);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(claims["iss"], APP);
        assert_eq!(claims["sub"], APP);
        assert_eq!(claims["aud"], PARTNER);
        assert_eq!(claims["purpose"], "demo");
        let iat = claims["iat"].as_i64().unwrap();
        assert!(iat >= before && iat <= unix_now(), "{claims}");
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3600);

        // Claims given are kept; a typed struct works as well as a map.
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            aud: [&'a str; 2],
            sub: &'a str,
            iat: i64,
            exp: i64,
        }
        let iat = unix_now() - 60;
        let jwt = signer
            .sign_jwt(&Claims {
                aud: [PARTNER, "https://other.example.com"],
                sub: "job-42",
                iat,
                exp: iat + 12 * 3600,
            })
            .await
            .unwrap();
        let (_, claims, ok) = decode_jwt(&emu, APP, &jwt).await;
        assert!(ok);
        assert_eq!(
            (&claims["sub"], &claims["iss"], claims["iat"].as_i64()),
            (&json!("job-42"), &json!(APP), Some(iat))
        );
        assert_eq!(claims["aud"], json!([PARTNER, "https://other.example.com"]));
    }
}

#[tokio::test]
async fn hostile_inputs_are_typed_errors_and_nothing_is_sent() {
    let emu = emulator().await;
    let key = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, APP);
    let far = unix_now() + 12 * 3600 + 120;
    let mut bad_keys = HashMap::new();
    bad_keys.insert((1, 2), 3);

    for signer in [local_signer(&key), iam_signer(&emu, APP)] {
        for (claims, problem) in [
            (json!([1, 2]), ClaimsProblem::NotAnObject),
            (json!("aud"), ClaimsProblem::NotAnObject),
            (json!(null), ClaimsProblem::NotAnObject),
            (json!({}), ClaimsProblem::MissingAudience),
            (json!({"aud": ""}), ClaimsProblem::MissingAudience),
            (json!({"aud": []}), ClaimsProblem::MissingAudience),
            (json!({"aud": {"x": 1}}), ClaimsProblem::MissingAudience),
            (
                json!({"aud": PARTNER, "exp": "tomorrow"}),
                ClaimsProblem::NotANumericDate("exp"),
            ),
            (
                json!({"aud": PARTNER, "iat": 1.5}),
                ClaimsProblem::NotANumericDate("iat"),
            ),
        ] {
            let err = signer.sign_jwt(&claims).await.unwrap_err();
            assert!(err.is_invalid_claims(), "{claims}: {err}");
            assert_eq!(err.claims_problem(), Some(&problem), "{claims}");
        }
        let err = signer
            .sign_jwt(&json!({"aud": PARTNER, "exp": far}))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.claims_problem(),
                Some(ClaimsProblem::ExpiresTooLate {
                    max_secs: 43_200,
                    ..
                })
            ),
            "{err}"
        );
        let err = signer.sign_jwt(&bad_keys).await.unwrap_err();
        assert_eq!(err.claims_problem(), Some(&ClaimsProblem::NotSerializable));
    }
    assert_eq!(emu.hits(Route::SignJwt), 0);

    // Accounts that are not one: refused before any request.
    for email in [
        "",
        "  ",
        "a/b@p.iam.gserviceaccount.com",
        "x?y",
        "a%40b",
        "a\nb",
        "../../token",
    ] {
        let signer = iam_signer(&emu, email);
        let err = signer.sign_blob(MESSAGE).await.unwrap_err();
        assert!(err.is_invalid_signer(), "{email:?}: {err}");
        let err = signer.sign_jwt(&json!({"aud": PARTNER})).await.unwrap_err();
        assert!(err.is_invalid_signer(), "{email:?}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    assert_eq!(emu.hits(Route::SignBlob) + emu.hits(Route::SignJwt), 0);
    assert_eq!(emu.hits(Route::MetadataAccessToken), 0);
    let long = "a".repeat(10_000);
    let err = iam_signer(&emu, &format!("{long}/"))
        .sign_blob(MESSAGE)
        .await
        .unwrap_err();
    assert!(err.to_string().len() < 300, "{err}");

    // An unknown account: IAM's 404, typed, not retried.
    let err = iam_signer(&emu, "ghost@emu-project.iam.gserviceaccount.com")
        .sign_blob(MESSAGE)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND), "{err}");
    assert_eq!(emu.hits(Route::SignBlob), 1);

    // The caller's credential failing is the credential's error, with its cause.
    let nowhere: url::Url = format!("http://127.0.0.1:{}/", closed_port().await)
        .parse()
        .unwrap();
    let err = Signer::iam(
        MetadataServer::from_base_url(&nowhere).http(HttpOptions::new().retry(quick_retry())),
        APP,
    )
    .endpoints(&Endpoints::under(&emu.base_url()))
    .sign_blob(MESSAGE)
    .await
    .unwrap_err();
    assert!(matches!(err, SignError::Credential { .. }), "{err:?}");
    assert!(err.is_credential() && err.is_transient(), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<OsString> + Send + Sync {
    let map: HashMap<&'static str, OsString> = pairs
        .into_iter()
        .map(|(k, v)| (k, OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

#[tokio::test]
async fn adc_picks_local_iam_or_refuses_a_user() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let key = emu.create_service_account(APP);
    emu.allow_impersonation(METADATA_SA, METADATA_SA);

    // A key file: local, its key ID.
    let path = key.write_key_file(dir.path()).unwrap();
    let adc = Adc::builder()
        .env(env(vec![(
            "GOOGLE_APPLICATION_CREDENTIALS",
            path.to_string_lossy().into_owned(),
        )]))
        .build()
        .unwrap();
    let signer = Signer::try_from(adc).unwrap();
    assert!(signer.is_local());
    assert_eq!(
        signer.sign_blob(MESSAGE).await.unwrap().key_id(),
        key.private_key_id()
    );

    // An impersonated_service_account file: IAM as its target, authorised by its source key.
    let hop: Value = serde_json::from_str(
        &emu.create_service_account("hop@emu-project.iam.gserviceaccount.com")
            .to_json(),
    )
    .unwrap();
    emu.allow_impersonation("hop@emu-project.iam.gserviceaccount.com", APP);
    let imp_path = dir.path().join("imp.json");
    std::fs::write(
        &imp_path,
        json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url":
                format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{APP}:generateAccessToken"),
            "source_credentials": hop,
        })
        .to_string(),
    )
    .unwrap();
    let adc = Adc::builder()
        .env(env(vec![(
            "GOOGLE_APPLICATION_CREDENTIALS",
            imp_path.to_string_lossy().into_owned(),
        )]))
        .endpoints(Endpoints::under(&emu.base_url()))
        .build()
        .unwrap();
    let signer = Signer::from_adc(&adc).unwrap();
    assert!(!signer.is_local());
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, APP, MESSAGE, &signed).await);

    // The metadata server: IAM as the attached account.
    let adc = Adc::builder()
        .env(env(vec![("GCE_METADATA_HOST", emu.metadata_host())]))
        .build()
        .unwrap();
    let signer = Signer::from_adc(&adc)
        .unwrap()
        .endpoints(&Endpoints::under(&emu.base_url()));
    assert_eq!(signer.email().await.unwrap(), METADATA_SA);
    let signed = signer.sign_blob(MESSAGE).await.unwrap();
    assert!(verifies(&emu, METADATA_SA, MESSAGE, &signed).await);

    // User credentials cannot sign as a service account.
    let user = emu.create_authorized_user("me@example.com");
    let user_path = user.write_key_file(dir.path()).unwrap();
    let adc = Adc::builder()
        .env(env(vec![(
            "GOOGLE_APPLICATION_CREDENTIALS",
            user_path.to_string_lossy().into_owned(),
        )]))
        .accept_user_credentials(true)
        .build()
        .unwrap();
    let err = Signer::try_from(adc).unwrap_err();
    assert!(err.is_no_service_account(), "{err}");
    assert!(err.to_string().contains("impersonate"), "{err}");
}

/// An IAM Credentials API that answers every request with `body` (status 200): for answers Google never gives.
async fn iam_answering(body: Value) -> url::Url {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { axum::Json(body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/").parse().unwrap()
}

/// Found attacking issue #13: whatever answered as IAM could hand `sign_blob` a `keyId` no verifier accepts (300
/// bytes; control characters), and `sign_jwt` a "signed" JWT with `alg: none`, another `kid`, or other claims
/// (an audience of its choosing), all returned as the account's signature. Each is now a typed invalid response.
#[tokio::test]
async fn an_iam_answer_that_is_not_what_was_asked_is_refused() {
    let emu = emulator().await;
    let segment = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let jwt = |header: Value, claims: Value| {
        format!("{}.{}.c2lnbmF0dXJl", segment(header), segment(claims))
    };
    let theirs =
        json!({"iss": APP, "sub": APP, "aud": "https://attacker.example", "iat": 1, "exp": 2});
    let rs256 = |kid: &str| json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let cases: Vec<(Value, ResponseProblem)> = vec![
        (
            json!({"keyId": "k".repeat(300), "signedBlob": "AAAA"}),
            ResponseProblem::NotAKeyId("keyId"),
        ),
        (
            json!({"keyId": "k\n\u{1b}[31m", "signedBlob": "AAAA"}),
            ResponseProblem::NotAKeyId("keyId"),
        ),
        (
            json!({"keyId": "k1", "signedJwt": jwt(json!({"alg": "none", "kid": "k1"}), theirs.clone())}),
            ResponseProblem::NotWhatWasAsked("its `alg` is not RS256"),
        ),
        (
            json!({"keyId": "k1", "signedJwt": jwt(json!({"alg": "RS256"}), theirs.clone())}),
            ResponseProblem::NotAKeyId("kid"),
        ),
        (
            json!({"keyId": "k1", "signedJwt": jwt(rs256("k2"), theirs.clone())}),
            ResponseProblem::NotWhatWasAsked("its `kid` is not the answer's `keyId`"),
        ),
        (
            json!({"keyId": "k1", "signedJwt": jwt(rs256("k1"), theirs.clone())}),
            ResponseProblem::NotWhatWasAsked("its claims are not the ones sent"),
        ),
        (
            json!({"signedJwt": jwt(rs256("k1"), json!([1]))}),
            ResponseProblem::NotWhatWasAsked("its claims are not the ones sent"),
        ),
    ];
    for (answer, problem) in cases {
        let base = iam_answering(answer.clone()).await;
        let signer = Signer::iam(metadata(&emu), APP)
            .endpoints(&Endpoints::under(&base))
            .http(HttpOptions::new().retry(RetryPolicy::none()));
        let result = if answer.get("signedBlob").is_some() {
            signer.sign_blob(MESSAGE).await.map(|_| ())
        } else {
            signer.sign_jwt(&json!({"aud": PARTNER})).await.map(|_| ())
        };
        let err = result.unwrap_err();
        let SignError::Iam { error, .. } = &err else {
            panic!("{answer}: {err:?}")
        };
        assert!(
            matches!(&**error, SourceError::InvalidResponse { problem: p, .. } if *p == problem),
            "{answer}: {}",
            ErrorChain(&err)
        );
        assert!(!ErrorChain(&err).to_string().contains('\u{1b}'));
    }
}
