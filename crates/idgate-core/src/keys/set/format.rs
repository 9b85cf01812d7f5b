//! Which document a key set is read from: the algorithm a set is bound to, Google's four key formats, and reading
//! the format from the document.

use std::fmt;

use aws_lc_rs::signature;

use super::{KeySet, KeySetError};

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

    pub(super) fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
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
