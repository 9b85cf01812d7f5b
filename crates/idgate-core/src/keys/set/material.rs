//! Key material out of a document: a JWK, an X.509 certificate or a PEM SubjectPublicKeyInfo, to the DER a
//! [`VerifyingKey`] is parsed from.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::RsaPublicKeyComponents;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use x509_cert::der::DecodePem as _;

use super::{KeyAlgorithm, KeySetError, VerifyingKey, truncate};

#[derive(Deserialize)]
pub(super) struct Jwks {
    pub(super) keys: Vec<serde_json::Value>,
}

/// The JWK members idgate reads. Anything else in a key is ignored, as JWKS consumers must.
#[derive(Deserialize)]
pub(super) struct Jwk {
    kid: Option<String>,
    pub(super) kty: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

pub(super) fn jwk_to_key(
    jwk: &Jwk,
    algorithm: KeyAlgorithm,
) -> Result<Option<VerifyingKey>, KeySetError> {
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
pub(super) fn certificate_rsa_spki(kid: &str, pem: &str) -> Result<Vec<u8>, KeySetError> {
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
pub(super) fn ec_spki_point(kid: &str, pem: &str) -> Result<Vec<u8>, KeySetError> {
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
