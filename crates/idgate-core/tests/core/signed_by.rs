//! Signatures a service account made itself (a blob, a JWT), checked by a third party against the keys the account
//! publishes: what is accepted, and a tampered blob, a wrong key ID, a retired key and another account's JWT refused
//! with their reasons.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_core::google::Endpoints;
use idgate_core::keys::{KeyCacheConfig, ServiceAccountKeyFormat, ServiceAccountKeys};
use idgate_core::verify::{BuildError, ServiceAccountJwtVerifier};
use idgate_emulator::ServiceAccountKeyFile;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::World;

const APP: &str = "orders@shop-prod.iam.gserviceaccount.com";
const OTHER: &str = "billing@shop-prod.iam.gserviceaccount.com";
const PARTNER: &str = "https://partner.example.com/webhook";

/// RSASSA-PKCS1-v1_5 SHA-256 with the key file's key: what the app (or IAM `signBlob`) produces.
fn sign(key: &ServiceAccountKeyFile, bytes: &[u8]) -> Vec<u8> {
    let private = EncodingKey::from_rsa_pem(key.private_key_pem().as_bytes()).unwrap();
    let b64 = jsonwebtoken::crypto::sign(bytes, &private, Algorithm::RS256).unwrap();
    URL_SAFE_NO_PAD.decode(b64).unwrap()
}

/// The first refusal of `check`, retried for up to a second: past a document's freshness the stale set is still
/// served while the refresh runs in the background, so a retired key is refused one refresh later.
async fn eventually_refused<T, E, F>(check: impl Fn() -> F) -> Option<E>
where
    F: Future<Output = Result<T, E>>,
{
    for _ in 0..50 {
        match check().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => return Some(e),
        }
    }
    None
}

/// A JWT signed with `key`, whose header says `kid`.
fn jwt(key: &ServiceAccountKeyFile, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let private = EncodingKey::from_rsa_pem(key.private_key_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &private).unwrap()
}

impl World {
    fn account_keys(&self) -> ServiceAccountKeys {
        ServiceAccountKeys::new()
            .endpoints(&Endpoints::under(&self.emulator.base_url()))
            .clock(Arc::new(self.clock.clone()))
    }

    fn app_claims(&self) -> Value {
        let now = self.now();
        json!({"iss": APP, "sub": APP, "aud": PARTNER, "iat": now, "exp": now + 600, "order": 42})
    }

    fn verifier(&self) -> ServiceAccountJwtVerifier {
        ServiceAccountJwtVerifier::builder(APP)
            .audience(PARTNER)
            .keys(self.account_keys())
            .clock(Arc::new(self.clock.clone()))
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn a_blob_signed_with_the_accounts_key_verifies_against_both_published_documents() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let message = b"order 42 shipped";
    let signature = sign(&key, message);
    for format in [ServiceAccountKeyFormat::X509, ServiceAccountKeyFormat::Jwk] {
        let keys = w.account_keys().format(format);
        keys.verify_signed_blob(APP, key.private_key_id(), message, &signature)
            .await
            .unwrap();
        let published = keys.public_certificates(APP).await.unwrap();
        assert!(published.get(key.private_key_id()).is_some(), "{format:?}");
    }
}

#[tokio::test]
async fn a_tampered_blob_a_wrong_key_id_and_another_accounts_key_are_refused_with_their_reasons() {
    let w = World::new().await;
    let first = w.emulator.create_service_account(APP);
    let second = w.emulator.create_service_account(APP);
    let other = w.emulator.create_service_account(OTHER);
    let keys = w.account_keys();
    let message = b"order 42 shipped";
    let signature = sign(&first, message);

    let tampered = keys
        .verify_signed_blob(APP, first.private_key_id(), b"order 43 shipped", &signature)
        .await
        .unwrap_err();
    assert_eq!(tampered.reason(), "invalid_signature");
    assert!(tampered.to_string().contains(APP), "{tampered}");

    let mut flipped = signature.clone();
    flipped[0] ^= 1;
    let err = keys
        .verify_signed_blob(APP, first.private_key_id(), message, &flipped)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "invalid_signature");

    // The account's other key: published, but it did not make this signature.
    let wrong_kid = keys
        .verify_signed_blob(APP, second.private_key_id(), message, &signature)
        .await
        .unwrap_err();
    assert_eq!(wrong_kid.reason(), "invalid_signature");

    // Another account's key ID: not in this account's set.
    let foreign = keys
        .verify_signed_blob(APP, other.private_key_id(), message, &sign(&other, message))
        .await
        .unwrap_err();
    assert_eq!(foreign.reason(), "unknown_key_id");

    // Signed by the other account, presented as this one with this account's key ID.
    let impostor = keys
        .verify_signed_blob(APP, first.private_key_id(), message, &sign(&other, message))
        .await
        .unwrap_err();
    assert_eq!(impostor.reason(), "invalid_signature");

    for (account, reason) in [
        ("not-an-email", "invalid_account"),
        ("a@b.com/../../x", "invalid_account"),
        // An account Google does not know: its document is a 404, an answer ("no keys"), not an outage.
        ("ghost@shop-prod.iam.gserviceaccount.com", "unknown_key_id"),
    ] {
        let err = keys
            .verify_signed_blob(account, first.private_key_id(), message, &signature)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), reason, "{account}");
    }
}

#[tokio::test]
async fn a_retired_key_is_refused_once_the_published_document_no_longer_lists_it() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let message = b"nightly export done";
    let signature = sign(&key, message);
    let keys = w.account_keys().cache_config(KeyCacheConfig::default());
    keys.verify_signed_blob(APP, key.private_key_id(), message, &signature)
        .await
        .unwrap();

    // A real account always publishes at least its Google-managed key: keep another key, retire the one used.
    let _kept = w.emulator.create_service_account(APP);
    assert!(
        w.emulator
            .delete_service_account_key(APP, key.private_key_id())
    );
    // A verifier that never saw the key refuses it at once.
    let err = w
        .account_keys()
        .verify_signed_blob(APP, key.private_key_id(), message, &signature)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "unknown_key_id");
    assert!(err.to_string().contains("retired"), "{err}");

    // One that cached the document refuses it once the document is refetched: past its max-age the stale set is
    // still served while the refresh runs in the background, and then the key is gone.
    w.clock.advance(Duration::from_secs(25 * 3600));
    let refused = eventually_refused(|| {
        keys.verify_signed_blob(APP, key.private_key_id(), message, &signature)
    })
    .await;
    assert_eq!(
        refused.expect("the retired key stays accepted").reason(),
        "unknown_key_id"
    );
}

#[tokio::test]
async fn a_jwt_signed_by_the_account_is_verified_and_its_own_claims_are_readable() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let token = jwt(&key, key.private_key_id(), &w.app_claims());
    let verified = w.verifier().verify(&token).await.unwrap();
    assert_eq!(verified.account(), APP);
    assert_eq!(verified.key_id(), Some(key.private_key_id()));
    assert_eq!(verified.audiences().collect::<Vec<_>>(), [PARTNER]);
    assert_eq!(verified.claim("order"), Some(&json!(42)));
    assert!(verified.claim("iss").is_none());
    assert!(!format!("{verified:?}").contains(&token));

    // `aud` as an array that contains ours is accepted (RFC 7519).
    let mut claims = w.app_claims();
    claims["aud"] = json!(["https://elsewhere.example.com", PARTNER]);
    let token = jwt(&key, key.private_key_id(), &claims);
    w.verifier().verify(&token).await.unwrap();
}

#[tokio::test]
async fn jwts_that_break_a_rule_are_refused_with_the_rule_they_broke() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let other = w.emulator.create_service_account(OTHER);
    let verifier = w.verifier();
    let now = w.now();
    let with = |patch: Value| {
        let mut claims = w.app_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong_issuer",
            jwt(&key, key.private_key_id(), &with(json!({"iss": OTHER}))),
        ),
        (
            "wrong_subject",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"sub": "someone@example.com"})),
            ),
        ),
        (
            "wrong_audience",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"aud": "https://other.example.com"})),
            ),
        ),
        (
            "wrong_audience",
            jwt(&key, key.private_key_id(), &with(json!({"aud": []}))),
        ),
        (
            "malformed",
            jwt(&key, key.private_key_id(), &with(json!({"aud": null}))),
        ),
        (
            "malformed",
            jwt(&key, key.private_key_id(), &with(json!({"exp": null}))),
        ),
        (
            "malformed",
            jwt(&key, key.private_key_id(), &with(json!({"iat": null}))),
        ),
        (
            "expired",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"iat": now - 7200, "exp": now - 3600})),
            ),
        ),
        (
            "issued_in_future",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"iat": now + 3600, "exp": now + 7200})),
            ),
        ),
        (
            "not_yet_valid",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"nbf": now + 3600})),
            ),
        ),
        (
            "lifetime_too_long",
            jwt(
                &key,
                key.private_key_id(),
                &with(json!({"exp": now + 13 * 3600})),
            ),
        ),
        // Another account's token, with its own key ID: not a key this account publishes.
        (
            "unknown_kid",
            jwt(
                &other,
                other.private_key_id(),
                &with(json!({"iss": OTHER, "sub": OTHER})),
            ),
        ),
        // Another account's key, claiming this account and this account's key ID.
        (
            "invalid_signature",
            jwt(&other, key.private_key_id(), &w.app_claims()),
        ),
    ];
    for (reason, token) in cases {
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        assert!(!err.to_string().contains(&token));
    }

    // Header tricks: `alg` other than RS256 (HS256 keyed with the public key, `none`) and no `kid`.
    let payload = URL_SAFE_NO_PAD.encode(w.app_claims().to_string());
    for (header, reason) in [
        (
            json!({"alg": "HS256", "kid": key.private_key_id()}),
            "unsupported_algorithm",
        ),
        (
            json!({"alg": "none", "kid": key.private_key_id()}),
            "unsupported_algorithm",
        ),
        (json!({"alg": "RS256"}), "missing_kid"),
        (
            json!({"alg": "RS256", "kid": key.private_key_id(), "jku": "https://evil.example/keys"}),
            "forbidden_header",
        ),
    ] {
        let token = format!(
            "{}.{payload}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string())
        );
        assert_eq!(verifier.verify(&token).await.unwrap_err().reason(), reason);
    }
}

#[tokio::test]
async fn a_remembered_jwt_stops_being_accepted_once_its_key_is_retired() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let mut claims = w.app_claims();
    claims["exp"] = json!(w.now() + 11 * 3600);
    let token = jwt(&key, key.private_key_id(), &claims);
    // Whatever max-age the document carries, keep it at most an hour here, so that seven hours later the set is
    // due for a refresh.
    let mut config = KeyCacheConfig::default();
    config.max_lifetime = Duration::from_secs(3600);
    let verifier = ServiceAccountJwtVerifier::builder(APP)
        .audience(PARTNER)
        .keys(w.account_keys().cache_config(config))
        .clock(Arc::new(w.clock.clone()))
        .build()
        .unwrap();
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap(); // from the memo

    // A real account always publishes at least its Google-managed key: keep another key, retire the one used.
    let _kept = w.emulator.create_service_account(APP);
    assert!(
        w.emulator
            .delete_service_account_key(APP, key.private_key_id())
    );
    w.clock.advance(Duration::from_secs(7 * 3600));
    let refused = eventually_refused(|| verifier.verify(&token)).await;
    assert_eq!(
        refused.expect("the retired key stays accepted").reason(),
        "unknown_kid"
    );
}

#[test]
fn verifiers_that_would_accept_too_much_do_not_build() {
    let no_audience = ServiceAccountJwtVerifier::builder(APP).build().unwrap_err();
    assert_eq!(no_audience, BuildError::NoAudience);
    for account in [
        "",
        "orders",
        "a@b.com/../x",
        "*@shop-prod.iam.gserviceaccount.com",
    ] {
        let err = ServiceAccountJwtVerifier::builder(account)
            .audience(PARTNER)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidAccount(_)),
            "{account}: {err}"
        );
    }
    for lifetime in [Duration::ZERO, Duration::from_secs(25 * 3600)] {
        let err = ServiceAccountJwtVerifier::builder(APP)
            .audience(PARTNER)
            .max_lifetime(lifetime)
            .build()
            .unwrap_err();
        assert!(matches!(err, BuildError::MaxLifetimeOutOfRange(_)), "{err}");
    }
    let upper = ServiceAccountJwtVerifier::builder("Orders@Shop-Prod.iam.gserviceaccount.com")
        .audience(PARTNER)
        .build()
        .unwrap();
    assert_eq!(upper.account(), APP);
}

/// Found attacking issue #13: an account whose every key is gone (or that was deleted: Google answers 404) made the
/// refetch fail, so the cached keys went on verifying under stale-while-error for hours. "No keys" is an answer:
/// the next fetch empties the set and the old signature is refused.
#[tokio::test]
async fn an_account_without_keys_is_an_answer_not_an_outage() {
    let w = World::new().await;
    let key = w.emulator.create_service_account(APP);
    let message = b"last words";
    let signature = sign(&key, message);
    let keys = w.account_keys();
    keys.verify_signed_blob(APP, key.private_key_id(), message, &signature)
        .await
        .unwrap();
    assert!(
        w.emulator
            .delete_service_account_key(APP, key.private_key_id())
    );
    // Past the document's freshness, well within the 6 h stale bound.
    w.clock.advance(Duration::from_secs(3600));
    let refused = eventually_refused(|| {
        keys.verify_signed_blob(APP, key.private_key_id(), message, &signature)
    })
    .await;
    assert_eq!(
        refused.expect("the deleted key stays accepted").reason(),
        "unknown_key_id"
    );
    assert!(keys.cache(APP).unwrap().status().ready);
}
