//! Key sets: `kid` -> verifying key, each key bound to the one algorithm its set allows.
//!
//! The formats a set is read from are in `format`, the key material in each format in `material`.

mod format;
mod material;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::ParsedPublicKey;

pub use format::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
use material::{Jwk, Jwks, certificate_rsa_spki, ec_spki_point, jwk_to_key};

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

    /// The key ID, shared (no copy) with whoever keeps it beside the key.
    pub(crate) fn kid_shared(&self) -> &Arc<str> {
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

/// Up to this many keys, a lookup compares `kid`s instead of hashing.
const LINEAR_LOOKUP_MAX: usize = 8;

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

    /// A set with no key: what an account that publishes none (or does not exist) has.
    pub(crate) fn empty(algorithm: KeyAlgorithm) -> Self {
        Self {
            algorithm,
            keys: HashMap::new(),
        }
    }

    /// The key with this `kid`, if the set has one.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        // Google publishes two to five keys at a time: comparing that many `kid`s (which differ from their first
        // bytes) costs less than hashing the one looked up, on every token seen for the first time.
        if self.keys.len() <= LINEAR_LOOKUP_MAX {
            return self.keys.values().find(|key| key.kid() == kid);
        }
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

/// At most 64 characters of an untrusted identifier, for error messages.
pub(crate) fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
