//! Key material: the RSA keys behind Google's OIDC certs, the EC P-256 keys behind IAP's, and the
//! renderings Google publishes for each (JWKS, X.509 certificates, SPKI PEM).
//!
//! Private keys never leave this module except as the PKCS#8 PEM a service-account key file must carry,
//! and no `Debug` implementation here prints one.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::error::EmulatorError;

/// The subject and issuer common name of Google's `oauth2/v1/certs` certificates.
const GOOGLE_CERT_CN: &str = "federated-signon.system.gserviceaccount.com";

/// Random bytes from the system CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], EmulatorError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| EmulatorError::Crypto("the system random generator failed"))?;
    Ok(out)
}

/// A lowercase hex string of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A Google-style OIDC key id: 40 lowercase hex characters.
pub(crate) fn oidc_kid() -> Result<String, EmulatorError> {
    Ok(hex(&random_bytes::<20>()?))
}

/// An IAP-style key id: a short base64url string (IAP publishes ids such as `f9R3yg`).
pub(crate) fn iap_kid() -> Result<String, EmulatorError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<6>()?))
}

/// An RSA-2048 key as Google uses for OIDC ID tokens (RS256).
pub(crate) struct RsaKey {
    pub(crate) kid: String,
    key_pair: RsaKeyPair,
    pkcs8_der: Vec<u8>,
    /// The JWK `n` (base64url, big-endian, no leading zero).
    pub(crate) n: String,
    /// The JWK `e`.
    pub(crate) e: String,
    /// SubjectPublicKeyInfo DER.
    pub(crate) spki_der: Vec<u8>,
    /// SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    pub(crate) spki_pem: String,
    /// A self-signed X.509 certificate over this key, PEM (`BEGIN CERTIFICATE`).
    pub(crate) cert_pem: String,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKey")
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Generates a fresh RSA-2048 key with the given key id.
    pub(crate) fn generate(kid: String) -> Result<Self, EmulatorError> {
        let key_pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| EmulatorError::Crypto("RSA key generation failed"))?;
        let pkcs8: Pkcs8V1Der<'static> = key_pair
            .as_der()
            .map_err(|_| EmulatorError::Crypto("RSA key PKCS#8 encoding failed"))?;
        let pkcs8_der = pkcs8.as_ref().to_vec();
        let public = key_pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let spki: PublicKeyX509Der<'static> = public
            .as_der()
            .map_err(|_| EmulatorError::Crypto("RSA public key encoding failed"))?;
        let spki_der = spki.as_ref().to_vec();
        let rc_key = rcgen::KeyPair::try_from(pkcs8_der.as_slice())?;
        let spki_pem = rc_key.public_key_pem();
        let cert_pem = self_signed_cert(&rc_key)?;
        Ok(Self {
            kid,
            key_pair,
            pkcs8_der,
            n,
            e,
            spki_der,
            spki_pem,
            cert_pem,
        })
    }

    /// Signs `message` with RSASSA-PKCS1-v1_5 / SHA-256.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EmulatorError> {
        let mut sig = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| EmulatorError::Crypto("RSA signing failed"))?;
        Ok(sig)
    }

    /// Whether `signature` is a valid RS256 signature of `message` by this key.
    pub(crate) fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.key_pair.public_key().as_ref(),
        )
        .verify(message, signature_bytes)
        .is_ok()
    }

    /// The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), as Google's key files carry it.
    pub(crate) fn private_key_pem(&self) -> Result<String, EmulatorError> {
        Ok(rcgen::KeyPair::try_from(self.pkcs8_der.as_slice())?.serialize_pem())
    }

    /// The JWK of this key, in Google's field order.
    pub(crate) fn jwk(&self) -> Value {
        json!({"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": self.n, "e": self.e})
    }

    /// This key as an entry of a `service_accounts/v1/metadata/raw/EMAIL` document: `keyid`, `algorithm` and the
    /// big-endian modulus and exponent in standard base64 (what Google's `oauth2` v1 discovery document calls
    /// `Raw.keyvalues[]`, and what the Endpoints Frameworks verifier decodes with `base64.b64decode`).
    pub(crate) fn raw_key_value(&self) -> Value {
        // `n` and `e` were encoded from these very bytes; decoding them back cannot fail.
        let standard = |b64url: &str| {
            URL_SAFE_NO_PAD
                .decode(b64url)
                .map(|bytes| STANDARD.encode(bytes))
                .unwrap_or_default()
        };
        json!({
            "keyid": self.kid,
            "algorithm": "RSA",
            "modulus": standard(&self.n),
            "exponent": standard(&self.e),
        })
    }
}

/// An EC P-256 key as IAP uses for its assertions (ES256).
pub(crate) struct EcKey {
    pub(crate) kid: String,
    key_pair: EcdsaKeyPair,
    /// The JWK `x` (base64url of 32 bytes).
    pub(crate) x: String,
    /// The JWK `y`.
    pub(crate) y: String,
    /// SubjectPublicKeyInfo DER.
    pub(crate) spki_der: Vec<u8>,
    /// SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), as `iap/verify/public_key` serves it.
    pub(crate) spki_pem: String,
}

impl fmt::Debug for EcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcKey")
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl EcKey {
    /// Generates a fresh P-256 key with the given key id.
    pub(crate) fn generate(kid: String) -> Result<Self, EmulatorError> {
        let key_pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| EmulatorError::Crypto("EC key generation failed"))?;
        let point = key_pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
        if point.len() != 65 || point[0] != 0x04 {
            return Err(EmulatorError::Crypto("unexpected EC public key encoding"));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let spki: PublicKeyX509Der<'static> = key_pair
            .public_key()
            .as_der()
            .map_err(|_| EmulatorError::Crypto("EC public key encoding failed"))?;
        let spki_der = spki.as_ref().to_vec();
        let pkcs8 = key_pair
            .to_pkcs8v1()
            .map_err(|_| EmulatorError::Crypto("EC key PKCS#8 encoding failed"))?;
        let spki_pem = rcgen::KeyPair::try_from(pkcs8.as_ref())?.public_key_pem();
        Ok(Self {
            kid,
            key_pair,
            x,
            y,
            spki_der,
            spki_pem,
        })
    }

    /// Signs `message` with ECDSA P-256 / SHA-256, JOSE form (raw `r || s`, 64 bytes).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EmulatorError> {
        let sig = self
            .key_pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| EmulatorError::Crypto("ECDSA signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// The JWK of this key, in IAP's field order.
    pub(crate) fn jwk(&self) -> Value {
        json!({"alg": "ES256", "crv": "P-256", "kid": self.kid, "kty": "EC", "use": "sig", "x": self.x, "y": self.y})
    }
}

/// A self-signed certificate shaped like Google's: CN `federated-signon.system.gserviceaccount.com`,
/// valid from a day ago for two weeks.
fn self_signed_cert(key: &rcgen::KeyPair) -> Result<String, EmulatorError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, GOOGLE_CERT_CN);
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - TimeDuration::days(1);
    params.not_after = now + TimeDuration::days(14);
    let mut serial = random_bytes::<8>()?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(params.self_signed(key)?.pem())
}

/// A key ring: the published keys and which one signs.
#[derive(Debug)]
pub(crate) struct KeyRing<K> {
    keys: Vec<std::sync::Arc<K>>,
    signing: usize,
}

/// Something with a key id.
pub(crate) trait HasKid {
    /// The key id.
    fn kid(&self) -> &str;
}

impl HasKid for RsaKey {
    fn kid(&self) -> &str {
        &self.kid
    }
}

impl HasKid for EcKey {
    fn kid(&self) -> &str {
        &self.kid
    }
}

impl<K: HasKid> KeyRing<K> {
    /// A ring of `keys`, the first of which signs. `keys` must not be empty.
    pub(crate) fn new(keys: Vec<K>) -> Self {
        Self {
            keys: keys.into_iter().map(std::sync::Arc::new).collect(),
            signing: 0,
        }
    }

    /// The published keys, in publication order.
    pub(crate) fn published(&self) -> &[std::sync::Arc<K>] {
        &self.keys
    }

    /// The current signing key, if any key is published.
    pub(crate) fn signing(&self) -> Option<std::sync::Arc<K>> {
        self.keys.get(self.signing).cloned()
    }

    /// Publishes `key` and makes it the signing key.
    pub(crate) fn rotate_in(&mut self, key: K) {
        self.keys.push(std::sync::Arc::new(key));
        self.signing = self.keys.len() - 1;
    }

    /// Stops publishing `kid`. Retiring the signing key makes the newest remaining key sign.
    /// Returns whether the key was published.
    pub(crate) fn retire(&mut self, kid: &str) -> bool {
        let Some(pos) = self.keys.iter().position(|k| k.kid() == kid) else {
            return false;
        };
        let signing_kid = self.keys[self.signing].kid().to_owned();
        self.keys.remove(pos);
        self.signing = self
            .keys
            .iter()
            .position(|k| k.kid() == signing_kid)
            .unwrap_or(self.keys.len().saturating_sub(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_key_renders_google_shapes() {
        let key = RsaKey::generate("k1".into()).expect("generate");
        assert!(key.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(key.spki_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(key.e, "AQAB");
        assert_eq!(key.jwk()["kty"], "RSA");
        let raw = key.raw_key_value();
        assert_eq!(raw["exponent"], "AQAB");
        assert_eq!(raw["algorithm"], "RSA");
        assert_eq!(
            STANDARD
                .decode(raw["modulus"].as_str().expect("modulus"))
                .expect("standard base64")
                .len(),
            256
        );
        assert!(
            key.private_key_pem()
                .expect("pem")
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn ec_key_signature_is_raw_r_s() {
        let key = EcKey::generate("e1".into()).expect("generate");
        assert_eq!(key.sign(b"msg").expect("sign").len(), 64);
        assert_eq!(URL_SAFE_NO_PAD.decode(&key.x).expect("x").len(), 32);
    }

    #[test]
    fn retiring_the_signing_key_moves_signing_to_the_newest() {
        let mut ring = KeyRing::new(vec![
            EcKey::generate("a".into()).expect("a"),
            EcKey::generate("b".into()).expect("b"),
        ]);
        assert_eq!(ring.signing().expect("signing").kid, "a");
        ring.rotate_in(EcKey::generate("c".into()).expect("c"));
        assert_eq!(ring.signing().expect("signing").kid, "c");
        assert!(ring.retire("c"));
        assert_eq!(ring.signing().expect("signing").kid, "b");
        assert!(!ring.retire("zzz"));
        assert!(ring.retire("a") && ring.retire("b"));
        assert!(ring.signing().is_none());
    }
}
