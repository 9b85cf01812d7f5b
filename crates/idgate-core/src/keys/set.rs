//! Key sets: `kid` -> verifying key, each key bound to the one algorithm its set allows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use x509_cert::der::DecodePem as _;

/// The signature algorithm a key set is bound to. A token's header `alg` must equal it; nothing else is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: Google OIDC ID tokens.
    Rs256,
    /// ECDSA P-256 with SHA-256, JOSE `r||s` signatures: Identity-Aware Proxy assertions.
    Es256,
}

impl KeyAlgorithm {
    /// The JOSE name (`RS256`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four key documents Google publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFormat {
    /// `https://www.googleapis.com/oauth2/v3/certs`: a JWKS of RSA keys (`kty: RSA`, `n`, `e`). RS256.
    OidcJwks,
    /// `https://www.googleapis.com/oauth2/v1/certs`: `{kid: "-----BEGIN CERTIFICATE-----..."}`, X.509
    /// certificates whose subject key is RSA. RS256.
    OidcPemCertificates,
    /// `https://www.gstatic.com/iap/verify/public_key-jwk`: a JWKS of EC P-256 keys. ES256.
    IapJwks,
    /// `https://www.gstatic.com/iap/verify/public_key`: `{kid: "-----BEGIN PUBLIC KEY-----..."}`, SPKI P-256
    /// keys. ES256.
    IapPem,
}

impl KeyFormat {
    /// The algorithm every key in a document of this format is bound to.
    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            Self::OidcJwks | Self::OidcPemCertificates => KeyAlgorithm::Rs256,
            Self::IapJwks | Self::IapPem => KeyAlgorithm::Es256,
        }
    }

    /// Whether this is one of the two JWKS formats (else a PEM map).
    pub fn is_jwks(self) -> bool {
        matches!(self, Self::OidcJwks | Self::IapJwks)
    }

    /// The format of `document` within `algorithm`'s family, read from its shape the way Google's own libraries
    /// do: a JSON object with a `keys` array is a JWKS; any other JSON object (`{kid: "-----BEGIN ..."}`) is a PEM
    /// map. The family always comes from the caller, never from the document.
    ///
    /// ```
    /// use idgate_core::keys::{KeyAlgorithm, KeyFormat};
    ///
    /// let jwks = br#"{"keys": []}"#;
    /// let pem = br#"{"1a2b": "-----BEGIN CERTIFICATE-----\n..."}"#;
    /// assert_eq!(KeyFormat::detect(KeyAlgorithm::Rs256, jwks).unwrap(), KeyFormat::OidcJwks);
    /// assert_eq!(KeyFormat::detect(KeyAlgorithm::Rs256, pem).unwrap(), KeyFormat::OidcPemCertificates);
    /// assert_eq!(KeyFormat::detect(KeyAlgorithm::Es256, pem).unwrap(), KeyFormat::IapPem);
    /// assert!(KeyFormat::detect(KeyAlgorithm::Rs256, b"[1, 2]").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeySetError::Json`] when the document is not a JSON object.
    pub fn detect(algorithm: KeyAlgorithm, document: &[u8]) -> Result<Self, KeySetError> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(document)
            .map_err(|e| {
            KeySetError::Json(format!(
                "neither a JWKS nor a PEM map (a JSON object was expected): {e}"
            ))
        })?;
        let jwks = object.get("keys").is_some_and(serde_json::Value::is_array);
        Ok(match (algorithm, jwks) {
            (KeyAlgorithm::Rs256, true) => Self::OidcJwks,
            (KeyAlgorithm::Rs256, false) => Self::OidcPemCertificates,
            (KeyAlgorithm::Es256, true) => Self::IapJwks,
            (KeyAlgorithm::Es256, false) => Self::IapPem,
        })
    }
}

/// How a key document is read: its format detected from its content (what Google's libraries do, and the
/// default everywhere in idgate), or one fixed format as an override.
///
/// Either way the family (OIDC RS256 or IAP ES256) is the verifier's, never the document's: a document of the
/// other family is refused with [`KeySetError::WrongFamily`].
///
/// ```
/// use idgate_core::keys::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
///
/// // Any of Google's OIDC documents: oauth2/v3/certs (JWKS) or oauth2/v1/certs (PEM certificates).
/// let detect: KeyDocumentFormat = KeyAlgorithm::Rs256.into();
/// assert_eq!(detect, KeyDocumentFormat::Detect(KeyAlgorithm::Rs256));
/// // Exactly one format: anything else is an error.
/// let fixed: KeyDocumentFormat = KeyFormat::IapPem.into();
/// assert_eq!(fixed.algorithm(), KeyAlgorithm::Es256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyDocumentFormat {
    /// A JWKS or a PEM map of this family, whichever the document is (see [`KeyFormat::detect`]).
    Detect(KeyAlgorithm),
    /// Exactly this format.
    Exactly(KeyFormat),
}

impl KeyDocumentFormat {
    /// The algorithm every key read this way is bound to.
    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            Self::Detect(algorithm) => algorithm,
            Self::Exactly(format) => format.algorithm(),
        }
    }

    /// Parses `document` this way.
    ///
    /// # Errors
    ///
    /// As [`KeyFormat::detect`] and [`KeySet::parse`].
    pub fn parse(self, document: &[u8]) -> Result<KeySet, KeySetError> {
        let format = match self {
            Self::Detect(algorithm) => KeyFormat::detect(algorithm, document)?,
            Self::Exactly(format) => format,
        };
        KeySet::parse(format, document)
    }
}

impl From<KeyFormat> for KeyDocumentFormat {
    fn from(format: KeyFormat) -> Self {
        Self::Exactly(format)
    }
}

impl From<KeyAlgorithm> for KeyDocumentFormat {
    fn from(algorithm: KeyAlgorithm) -> Self {
        Self::Detect(algorithm)
    }
}

impl fmt::Display for KeyDocumentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Detect(_) => f.write_str("JWKS or PEM, read from the document"),
            Self::Exactly(format) if format.is_jwks() => f.write_str("JWKS"),
            Self::Exactly(_) => f.write_str("PEM"),
        }
    }
}

/// One public key, parsed once, bound to its algorithm.
pub struct VerifyingKey {
    kid: Arc<str>,
    algorithm: KeyAlgorithm,
    key: ParsedPublicKey,
}

impl VerifyingKey {
    /// The key ID.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Checks `signature` over `message` (for a JWT: `header.payload`, and the decoded third segment).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    fn from_der(kid: &str, algorithm: KeyAlgorithm, der: &[u8]) -> Result<Self, KeySetError> {
        let key = ParsedPublicKey::new(algorithm.verification(), der)
            .map_err(|_| KeySetError::InvalidKey { kid: truncate(kid) })?;
        Ok(Self {
            kid: Arc::from(kid),
            algorithm,
            key,
        })
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// A set of verifying keys, all bound to one algorithm, looked up by `kid`.
///
/// ```
/// use idgate_core::keys::{KeyAlgorithm, KeyFormat, KeySet};
///
/// // An IAP JWKS, in the shape https://www.gstatic.com/iap/verify/public_key-jwk serves.
/// let jwks = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/iap_public_key-jwk.json"));
/// let set = KeySet::parse(KeyFormat::IapJwks, jwks).unwrap();
/// assert_eq!(set.algorithm(), KeyAlgorithm::Es256);
/// assert!(set.get("f9R3yg").is_some());
/// assert!(set.get("unknown").is_none());
///
/// // The same document is not an OIDC key set: its keys are EC, and OIDC keys are RSA.
/// assert!(KeySet::parse(KeyFormat::OidcJwks, jwks).is_err());
/// ```
#[derive(Clone)]
pub struct KeySet {
    algorithm: KeyAlgorithm,
    keys: HashMap<Arc<str>, Arc<VerifyingKey>>,
}

/// Why a key document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The document is not JSON of the expected shape.
    #[error("key document is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// The document parsed but held no usable key for the set's algorithm.
    #[error("key document holds no usable {0} key")]
    NoUsableKeys(KeyAlgorithm),
    /// The document holds keys of the other family: IAP's EC keys where Google's OIDC RSA keys were expected, or
    /// the reverse. Almost always a key URL configured for the wrong verifier.
    #[error(
        "key document holds {found} keys, not the {expected} keys this verifier needs: {}",
        family_advice(*.expected)
    )]
    WrongFamily {
        /// The algorithm the verifier needs.
        expected: KeyAlgorithm,
        /// The algorithm of the keys the document holds.
        found: KeyAlgorithm,
    },
    /// A key's material could not be parsed (named by a possibly truncated `kid`).
    #[error("key {kid:?} could not be parsed")]
    InvalidKey {
        /// The key's ID, truncated to 64 characters.
        kid: String,
    },
}

fn family_advice(expected: KeyAlgorithm) -> &'static str {
    match expected {
        KeyAlgorithm::Rs256 => {
            "is this IAP's key URL? ID tokens are verified with https://www.googleapis.com/oauth2/v3/certs \
             (or oauth2/v1/certs)"
        }
        KeyAlgorithm::Es256 => {
            "is this Google's OIDC key URL? IAP assertions are verified with \
             https://www.gstatic.com/iap/verify/public_key-jwk (or iap/verify/public_key)"
        }
    }
}

/// The other family's algorithm, which a document for `expected` must not hold.
fn other_family(expected: KeyAlgorithm) -> KeyAlgorithm {
    match expected {
        KeyAlgorithm::Rs256 => KeyAlgorithm::Es256,
        KeyAlgorithm::Es256 => KeyAlgorithm::Rs256,
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

/// The JWK members idgate reads. Anything else in a key is ignored, as JWKS consumers must.
#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parses one of Google's key documents.
    ///
    /// Keys that do not fit the format's algorithm (an EC key in the OIDC set, a key with another `alg`, a key
    /// for encryption) are skipped, not trusted; a document with no usable key at all is an error, so a broken
    /// response never replaces a good set.
    ///
    /// # Errors
    ///
    /// [`KeySetError`] when the document is not of the format's shape, a key cannot be parsed, or no key is usable.
    pub fn parse(format: KeyFormat, document: &[u8]) -> Result<Self, KeySetError> {
        let algorithm = format.algorithm();
        let wrong_family = || KeySetError::WrongFamily {
            expected: algorithm,
            found: other_family(algorithm),
        };
        let mut keys = HashMap::new();
        // Whether a skipped key belonged to the other family: reported as such when nothing usable is left.
        let mut saw_other_family = false;
        match format {
            KeyFormat::OidcJwks | KeyFormat::IapJwks => {
                let jwks: Jwks = serde_json::from_slice(document)
                    .map_err(|e| KeySetError::Json(e.to_string()))?;
                for value in jwks.keys {
                    // One odd key (an unknown `kty`, a wrong member type) must not poison the others.
                    let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                        continue;
                    };
                    match jwk_to_key(&jwk, algorithm)? {
                        Some(key) => {
                            keys.insert(key.kid.clone(), Arc::new(key));
                        }
                        None => {
                            saw_other_family |= matches!(
                                (algorithm, jwk.kty.as_deref()),
                                (KeyAlgorithm::Rs256, Some("EC"))
                                    | (KeyAlgorithm::Es256, Some("RSA"))
                            );
                        }
                    }
                }
            }
            KeyFormat::OidcPemCertificates | KeyFormat::IapPem => {
                let map: HashMap<String, String> = serde_json::from_slice(document)
                    .map_err(|e| KeySetError::Json(e.to_string()))?;
                for (kid, pem) in map {
                    // OIDC publishes certificates, IAP bare public keys: the PEM label tells the families apart
                    // before any parsing, for an error that says what is wrong.
                    let label_of_other_family = match format {
                        KeyFormat::OidcPemCertificates => "-----BEGIN PUBLIC KEY-----",
                        _ => "-----BEGIN CERTIFICATE-----",
                    };
                    if pem.trim_start().starts_with(label_of_other_family) {
                        return Err(wrong_family());
                    }
                    let der = match format {
                        KeyFormat::OidcPemCertificates => certificate_rsa_spki(&kid, &pem)?,
                        _ => ec_spki_point(&kid, &pem)?,
                    };
                    let key = VerifyingKey::from_der(&kid, algorithm, &der)?;
                    keys.insert(key.kid.clone(), Arc::new(key));
                }
            }
        }
        if keys.is_empty() {
            return Err(if saw_other_family {
                wrong_family()
            } else {
                KeySetError::NoUsableKeys(algorithm)
            });
        }
        Ok(Self { algorithm, keys })
    }

    /// The algorithm every key in this set is bound to.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key with this `kid`, if the set has one.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.keys.get(kid)
    }

    /// Whether this set still publishes `key`: the same key object (the set it came from), or a key with its `kid`
    /// (a later fetch of the same document). Google never reuses a `kid` for other material.
    pub(crate) fn holds(&self, key: &Arc<VerifyingKey>) -> bool {
        self.keys.values().any(|held| Arc::ptr_eq(held, key)) || self.keys.contains_key(key.kid())
    }

    /// The key IDs in this set, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(|k| &**k)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key (never the case for a set returned by [`KeySet::parse`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.kids().collect();
        kids.sort_unstable();
        f.debug_struct("KeySet")
            .field("algorithm", &self.algorithm)
            .field("kids", &kids)
            .finish()
    }
}

fn jwk_to_key(jwk: &Jwk, algorithm: KeyAlgorithm) -> Result<Option<VerifyingKey>, KeySetError> {
    let Some(kid) = jwk.kid.as_deref() else {
        return Ok(None);
    };
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if jwk.alg.as_deref().is_some_and(|a| a != algorithm.name()) {
        return Ok(None);
    }
    let invalid = || KeySetError::InvalidKey { kid: truncate(kid) };
    let der = match (algorithm, jwk.kty.as_deref()) {
        (KeyAlgorithm::Rs256, Some("RSA")) => {
            let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                return Err(invalid());
            };
            let n = URL_SAFE_NO_PAD.decode(n).map_err(|_| invalid())?;
            let e = URL_SAFE_NO_PAD.decode(e).map_err(|_| invalid())?;
            let components = RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            };
            components
                .as_der()
                .map_err(|_| invalid())?
                .as_ref()
                .to_vec()
        }
        (KeyAlgorithm::Es256, Some("EC")) => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Ok(None);
            }
            let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else {
                return Err(invalid());
            };
            let x = URL_SAFE_NO_PAD.decode(x).map_err(|_| invalid())?;
            let y = URL_SAFE_NO_PAD.decode(y).map_err(|_| invalid())?;
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid());
            }
            // An uncompressed SEC1 point: 0x04 || x || y.
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            point
        }
        _ => return Ok(None),
    };
    VerifyingKey::from_der(kid, algorithm, &der).map(Some)
}

/// The RSA SubjectPublicKeyInfo (DER) of a PEM X.509 certificate, as in Google's `oauth2/v1/certs`.
fn certificate_rsa_spki(kid: &str, pem: &str) -> Result<Vec<u8>, KeySetError> {
    use x509_cert::der::Encode as _;
    const RSA_ENCRYPTION: spki::ObjectIdentifier =
        spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    let invalid = || KeySetError::InvalidKey { kid: truncate(kid) };
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).map_err(|_| invalid())?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(invalid());
    }
    spki.to_der().map_err(|_| invalid())
}

/// The P-256 public point of a PEM SubjectPublicKeyInfo, as in IAP's `iap/verify/public_key`.
fn ec_spki_point(kid: &str, pem: &str) -> Result<Vec<u8>, KeySetError> {
    const EC_PUBLIC_KEY: spki::ObjectIdentifier =
        spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let invalid = || KeySetError::InvalidKey { kid: truncate(kid) };
    let info = spki::SubjectPublicKeyInfoOwned::from_pem(pem.as_bytes()).map_err(|_| invalid())?;
    let curve: spki::ObjectIdentifier = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as().ok())
        .ok_or_else(invalid)?;
    if info.algorithm.oid != EC_PUBLIC_KEY || curve != P256 {
        return Err(invalid());
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(invalid)
}

/// At most 64 characters of an untrusted identifier, for error messages.
pub(crate) fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OIDC_JWKS: &[u8] = include_bytes!("../../tests/fixtures/keys/oidc_v3_certs.json");
    const OIDC_CERTS: &[u8] = include_bytes!("../../tests/fixtures/keys/oidc_v1_certs.json");
    const IAP_JWKS: &[u8] = include_bytes!("../../tests/fixtures/keys/iap_public_key-jwk.json");
    const IAP_PEM: &[u8] = include_bytes!("../../tests/fixtures/keys/iap_public_key.json");

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
        assert!(
            set.get("hmac").is_none() && set.get("enc").is_none() && set.get("weird").is_none()
        );
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
        let short_point =
            br#"{"keys":[{"kid":"k","kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB"}]}"#;
        assert!(matches!(
            KeySet::parse(KeyFormat::IapJwks, short_point),
            Err(KeySetError::InvalidKey { .. })
        ));
        let not_pem =
            br#"{"k":"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"}"#;
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
}
