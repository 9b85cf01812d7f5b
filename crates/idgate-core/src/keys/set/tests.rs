//! Unit tests of key-document parsing: the four formats, detection, families, broken documents.

use super::*;

const OIDC_JWKS: &[u8] = include_bytes!("../../../tests/fixtures/keys/oidc_v3_certs.json");
const OIDC_CERTS: &[u8] = include_bytes!("../../../tests/fixtures/keys/oidc_v1_certs.json");
const IAP_JWKS: &[u8] = include_bytes!("../../../tests/fixtures/keys/iap_public_key-jwk.json");
const IAP_PEM: &[u8] = include_bytes!("../../../tests/fixtures/keys/iap_public_key.json");

fn kids(set: &KeySet) -> Vec<&str> {
    let mut k: Vec<&str> = set.kids().collect();
    k.sort_unstable();
    k
}

#[test]
fn all_four_google_formats_parse_and_bind_their_algorithm() {
    let v3 = KeySet::parse(KeyFormat::OidcJwks, OIDC_JWKS).unwrap();
    let v1 = KeySet::parse(KeyFormat::OidcPemCertificates, OIDC_CERTS).unwrap();
    assert_eq!(v3.algorithm(), KeyAlgorithm::Rs256);
    assert_eq!(v1.algorithm(), KeyAlgorithm::Rs256);
    // The v1 certificates wrap the same keys as the v3 JWKS.
    assert_eq!(kids(&v3), kids(&v1));
    assert_eq!(v3.len(), 2);

    let jwk = KeySet::parse(KeyFormat::IapJwks, IAP_JWKS).unwrap();
    let pem = KeySet::parse(KeyFormat::IapPem, IAP_PEM).unwrap();
    assert_eq!(jwk.algorithm(), KeyAlgorithm::Es256);
    assert_eq!(kids(&jwk), vec!["4BCyVw", "f9R3yg", "mpf0DA"]);
    assert_eq!(kids(&jwk), kids(&pem));
    for set in [&v3, &v1, &jwk, &pem] {
        for kid in set.kids() {
            assert_eq!(set.get(kid).unwrap().algorithm(), set.algorithm());
        }
    }
}

#[test]
fn a_document_of_the_other_family_is_refused_as_such() {
    let oidc_wanted = KeySetError::WrongFamily {
        expected: KeyAlgorithm::Rs256,
        found: KeyAlgorithm::Es256,
    };
    let iap_wanted = KeySetError::WrongFamily {
        expected: KeyAlgorithm::Es256,
        found: KeyAlgorithm::Rs256,
    };
    assert_eq!(
        KeySet::parse(KeyFormat::OidcJwks, IAP_JWKS).unwrap_err(),
        oidc_wanted
    );
    assert_eq!(
        KeySet::parse(KeyFormat::IapJwks, OIDC_JWKS).unwrap_err(),
        iap_wanted
    );
    // An RSA certificate is not an IAP SPKI key, and an EC SPKI key is not a certificate.
    assert_eq!(
        KeySet::parse(KeyFormat::IapPem, OIDC_CERTS).unwrap_err(),
        iap_wanted
    );
    assert_eq!(
        KeySet::parse(KeyFormat::OidcPemCertificates, IAP_PEM).unwrap_err(),
        oidc_wanted
    );
    // Detection never changes the family: every IAP document stays wrong for an OIDC verifier.
    for (document, wanted, algorithm) in [
        (IAP_JWKS, &oidc_wanted, KeyAlgorithm::Rs256),
        (IAP_PEM, &oidc_wanted, KeyAlgorithm::Rs256),
        (OIDC_JWKS, &iap_wanted, KeyAlgorithm::Es256),
        (OIDC_CERTS, &iap_wanted, KeyAlgorithm::Es256),
    ] {
        let err = KeyDocumentFormat::Detect(algorithm)
            .parse(document)
            .unwrap_err();
        assert_eq!(&err, wanted);
        assert!(err.to_string().contains("not the"), "{err}");
    }
    assert!(oidc_wanted.to_string().contains("oauth2/v3/certs"));
    assert!(iap_wanted.to_string().contains("public_key-jwk"));
}

#[test]
fn the_format_is_read_from_the_document() {
    for (document, algorithm, format) in [
        (OIDC_JWKS, KeyAlgorithm::Rs256, KeyFormat::OidcJwks),
        (
            OIDC_CERTS,
            KeyAlgorithm::Rs256,
            KeyFormat::OidcPemCertificates,
        ),
        (IAP_JWKS, KeyAlgorithm::Es256, KeyFormat::IapJwks),
        (IAP_PEM, KeyAlgorithm::Es256, KeyFormat::IapPem),
    ] {
        assert_eq!(KeyFormat::detect(algorithm, document).unwrap(), format);
        let detected = KeyDocumentFormat::Detect(algorithm)
            .parse(document)
            .unwrap();
        let fixed = KeySet::parse(format, document).unwrap();
        assert_eq!(kids(&detected), kids(&fixed));
        assert_eq!(detected.algorithm(), algorithm);
    }
    // A fixed format stays fixed: the other shape is an error, not a guess.
    assert!(matches!(
        KeyDocumentFormat::Exactly(KeyFormat::OidcJwks).parse(OIDC_CERTS),
        Err(KeySetError::Json(_))
    ));
    assert!(matches!(
        KeyDocumentFormat::Exactly(KeyFormat::OidcPemCertificates).parse(OIDC_JWKS),
        Err(KeySetError::Json(_))
    ));
    // Not a JSON object at all.
    for bad in [b"".as_slice(), b"[]", b"\"keys\"", b"null", b"<html>"] {
        assert!(matches!(
            KeyFormat::detect(KeyAlgorithm::Rs256, bad),
            Err(KeySetError::Json(_))
        ));
    }
    // A `keys` member that is not an array makes a PEM map, whose value then fails as a PEM.
    assert_eq!(
        KeyFormat::detect(KeyAlgorithm::Rs256, br#"{"keys": "x"}"#).unwrap(),
        KeyFormat::OidcPemCertificates
    );
}

#[test]
fn foreign_keys_in_a_jwks_are_skipped_not_trusted() {
    let mut doc: serde_json::Value = serde_json::from_slice(OIDC_JWKS).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    let mut hs = keys[0].clone();
    hs["kid"] = "hmac".into();
    hs["alg"] = "HS256".into();
    let mut enc = keys[0].clone();
    enc["kid"] = "enc".into();
    enc["use"] = "enc".into();
    keys.push(hs);
    keys.push(enc);
    keys.push(serde_json::json!({"kid": "weird", "kty": 7}));
    keys.push(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
    let set = KeySet::parse(KeyFormat::OidcJwks, doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.get("hmac").is_none() && set.get("enc").is_none() && set.get("weird").is_none());
}

#[test]
fn broken_documents_are_typed_errors() {
    for doc in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"keys\": 5}",
        b"<html>",
        b"{\"keys\": []}",
    ] {
        assert!(KeySet::parse(KeyFormat::OidcJwks, doc).is_err(), "{doc:?}");
    }
    let bad_n = br#"{"keys":[{"kid":"k","kty":"RSA","alg":"RS256","n":"!!","e":"AQAB"}]}"#;
    assert_eq!(
        KeySet::parse(KeyFormat::OidcJwks, bad_n).unwrap_err(),
        KeySetError::InvalidKey { kid: "k".into() }
    );
    let short_point = br#"{"keys":[{"kid":"k","kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB"}]}"#;
    assert!(matches!(
        KeySet::parse(KeyFormat::IapJwks, short_point),
        Err(KeySetError::InvalidKey { .. })
    ));
    let not_pem = br#"{"k":"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"}"#;
    assert!(matches!(
        KeySet::parse(KeyFormat::OidcPemCertificates, not_pem),
        Err(KeySetError::InvalidKey { .. })
    ));
    let long_kid = "x".repeat(500);
    let doc = format!(r#"{{"{long_kid}":"nope"}}"#);
    match KeySet::parse(KeyFormat::IapPem, doc.as_bytes()) {
        Err(KeySetError::InvalidKey { kid }) => assert!(kid.chars().count() <= 65),
        other => panic!("unexpected {other:?}"),
    }
}
