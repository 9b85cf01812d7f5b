//! [`TokenSpec`]: describe any token, good or deliberately bad, then [`crate::Emulator::mint`] it.
//!
//! A spec starts from one of Google's two shapes and every modifier bends one thing:
//!
//! - [`TokenSpec::service_account`]: an OIDC ID token exactly as Google mints one for a service account
//!   (RS256; `iss` `https://accounts.google.com`; `aud`; `azp` = `sub` = the account's numeric unique id;
//!   `email`; `email_verified: true`; `iat` = now; `exp` = `iat` + 3600).
//! - [`TokenSpec::iap_user`]: an IAP assertion (ES256; `iss` `https://cloud.google.com/iap`; `aud`
//!   `/projects/N/apps/ID` by default; `sub` `accounts.google.com:<digits>`; `email`; `exp` = `iat` + 600).
//!
//! Claims are computed when the token is minted, so one spec minted twice gives two tokens with fresh times.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::error::EmulatorError;
use crate::keys::{EcKey, RsaKey};

/// Google's OIDC issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// IAP's issuer.
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";
/// The audience of a [`TokenSpec::service_account`] token that was given none.
pub const DEFAULT_AUDIENCE: &str = "https://service.idgate.test";
/// What Cloud Run puts in place of a token's signature after its invoker check.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Lifetime of Google OIDC ID tokens, seconds.
pub const OIDC_LIFETIME_SECS: i64 = 3600;
/// Lifetime of IAP assertions, seconds.
pub const IAP_LIFETIME_SECS: i64 = 600;

/// The stable numeric unique id the emulator gives `email`: 21 digits starting with `1`, like Google's
/// service-account and user ids. The same email always gets the same id, in every emulator.
///
/// ```
/// let id = idgate_emulator::numeric_id("a@b.iam.gserviceaccount.com");
/// assert_eq!(id.len(), 21);
/// assert!(id.starts_with('1'));
/// assert_eq!(id, idgate_emulator::numeric_id("a@b.iam.gserviceaccount.com"));
/// ```
#[must_use]
pub fn numeric_id(email: &str) -> String {
    let d = digest::digest(
        &digest::SHA256,
        format!("idgate-emulator:{email}").as_bytes(),
    );
    let mut buf = [0u8; 16];
    buf[..9].copy_from_slice(&d.as_ref()[..9]);
    let n = u128::from_be_bytes(buf) % 100_000_000_000_000_000_000;
    format!("1{n:020}")
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oidc,
    Iap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KidChoice {
    FromKey,
    Explicit(String),
    Absent,
}

/// Which public-key bytes the HS256 key-confusion attack uses as its HMAC secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HmacKeyMaterial {
    /// The SubjectPublicKeyInfo PEM text (`-----BEGIN PUBLIC KEY-----...`), the classic attack.
    #[default]
    PublicKeyPem,
    /// The SubjectPublicKeyInfo DER bytes.
    PublicKeyDer,
    /// The certificate PEM text exactly as `oauth2/v1/certs` serves it (OIDC keys; IAP keys fall back to
    /// the public key PEM, which is what `iap/verify/public_key` serves).
    PublishedPem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureMode {
    Valid,
    Tampered,
    Removed,
    AlgNone,
    Hs256(HmacKeyMaterial),
}

/// A description of a token to mint, good or deliberately bad; [`crate::Emulator::mint`] turns it into a
/// compact JWS.
///
/// A spec starts from one of Google's two shapes and every modifier bends one thing:
///
/// - [`TokenSpec::service_account`]: an OIDC ID token exactly as Google mints one for a service account
///   (RS256; `iss` `https://accounts.google.com`; `aud`; `azp` = `sub` = the account's numeric unique id;
///   `email`; `email_verified: true`; `iat` = now; `exp` = `iat` + 3600).
/// - [`TokenSpec::iap_user`]: an IAP assertion (ES256; `iss` `https://cloud.google.com/iap`; `aud`
///   `/projects/N/apps/ID` by default; `sub` `accounts.google.com:<digits>`; `email`; `exp` = `iat` + 600).
///
/// Claims are computed when the token is minted, so one spec minted twice gives two tokens with fresh times.
///
/// ```
/// use idgate_emulator::TokenSpec;
/// // A good token, an expired one, and one signed with HS256 keyed by the public key.
/// let good = TokenSpec::service_account("svc@proj.iam.gserviceaccount.com").audience("https://api.test");
/// let expired = good.clone().expired();
/// let confused = good.clone().hs256_with_public_key();
/// # let _ = (expired, confused);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenSpec {
    kind: Kind,
    email: String,
    audience: Option<String>,
    hosted_domain: Option<String>,
    access_levels: Option<Vec<String>>,
    issued_at: Option<i64>,
    expires_at: Option<i64>,
    lifetime: Option<i64>,
    expired: bool,
    not_before: Option<i64>,
    issuer: Option<String>,
    email_verified: Option<Value>,
    claims: Map<String, Value>,
    removed_claims: BTreeSet<String>,
    headers: Map<String, Value>,
    kid: KidChoice,
    family: Option<Family>,
    unknown_key: bool,
    signature: SignatureMode,
}

impl TokenSpec {
    fn new(kind: Kind, email: impl Into<String>) -> Self {
        Self {
            kind,
            email: email.into(),
            audience: None,
            hosted_domain: None,
            access_levels: None,
            issued_at: None,
            expires_at: None,
            lifetime: None,
            expired: false,
            not_before: None,
            issuer: None,
            email_verified: None,
            claims: Map::new(),
            removed_claims: BTreeSet::new(),
            headers: Map::new(),
            kid: KidChoice::FromKey,
            family: None,
            unknown_key: false,
            signature: SignatureMode::Valid,
        }
    }

    /// A Google OIDC ID token for the service account `email`, shaped exactly like Google's
    /// (GOOGLE-IDENTITY §1.4). The audience defaults to [`DEFAULT_AUDIENCE`].
    pub fn service_account(email: impl Into<String>) -> Self {
        Self::new(Kind::Oidc, email)
    }

    /// An IAP assertion for the user `email`. The audience defaults to the emulator's
    /// [`crate::Emulator::iap_audience_app_engine`].
    pub fn iap_user(email: impl Into<String>) -> Self {
        Self::new(Kind::Iap, email)
    }

    /// The email the token is for.
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }

    /// Sets `aud`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds `hd` (Workspace hosted domain).
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.hosted_domain = Some(domain.into());
        self
    }

    /// Adds `google.access_levels` (IAP access-level names).
    pub fn access_levels<I, S>(mut self, levels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.access_levels = Some(levels.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `iat` (Unix seconds). `exp` follows as `iat` + lifetime unless set explicitly.
    pub fn issued_at(mut self, unix_secs: i64) -> Self {
        self.issued_at = Some(unix_secs);
        self
    }

    /// Sets `exp` (Unix seconds).
    pub fn expires_at(mut self, unix_secs: i64) -> Self {
        self.expires_at = Some(unix_secs);
        self
    }

    /// Sets the lifetime `exp - iat` in seconds (default 3600 for OIDC, 600 for IAP).
    pub fn lifetime(mut self, secs: i64) -> Self {
        self.lifetime = Some(secs);
        self
    }

    /// Makes the token expired well beyond any sane skew: `exp` is ten minutes in the past and `iat`
    /// one lifetime before that (explicit `issued_at`/`expires_at` still win).
    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    /// Adds `nbf` (Unix seconds). Google never sets it; verifiers may still see one.
    pub fn not_before(mut self, unix_secs: i64) -> Self {
        self.not_before = Some(unix_secs);
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets `email_verified` to any JSON value: `false`, or the string `"true"` a lax verifier might accept.
    pub fn email_verified(mut self, value: impl Into<Value>) -> Self {
        self.email_verified = Some(value.into());
        self
    }

    /// Sets any claim to any JSON value, overriding what the shape would put there.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.removed_claims.remove(&name);
        self.claims.insert(name, value.into());
        self
    }

    /// Removes a claim from the payload (including one set by [`TokenSpec::claim`]).
    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.claims.remove(&name);
        self.removed_claims.insert(name);
        self
    }

    /// Sets any JOSE header parameter (`jku`, `jwk`, `crit`, `x5u`, even `alg`), after everything else.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Puts this `kid` in the header instead of the signing key's (the signature is still the key's).
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = KidChoice::Explicit(kid.into());
        self
    }

    /// Leaves `kid` out of the header.
    pub fn without_kid(mut self) -> Self {
        self.kid = KidChoice::Absent;
        self
    }

    /// Signs with a key of the right type that the emulator does not publish (under a fresh kid).
    pub fn unknown_key(mut self) -> Self {
        self.unknown_key = true;
        self
    }

    /// Header `{"alg":"none",...}` and an empty signature.
    pub fn alg_none(mut self) -> Self {
        self.signature = SignatureMode::AlgNone;
        self
    }

    /// The key-confusion attack: header `alg` HS256, HMAC-SHA256 keyed with the published public key's PEM.
    pub fn hs256_with_public_key(self) -> Self {
        self.hs256_with_public_key_as(HmacKeyMaterial::PublicKeyPem)
    }

    /// The key-confusion attack with a chosen rendering of the public key as the HMAC secret.
    pub fn hs256_with_public_key_as(mut self, material: HmacKeyMaterial) -> Self {
        self.signature = SignatureMode::Hs256(material);
        self
    }

    /// A correctly-sized signature with one bit flipped.
    pub fn tampered_signature(mut self) -> Self {
        self.signature = SignatureMode::Tampered;
        self
    }

    /// Cloud Run's `SIGNATURE_REMOVED_BY_GOOGLE` in place of the signature.
    pub fn signature_removed(mut self) -> Self {
        self.signature = SignatureMode::Removed;
        self
    }

    /// Signs with the current IAP key (ES256, IAP kid), whatever the token's shape.
    pub fn sign_with_iap_key(mut self) -> Self {
        self.family = Some(Family::Ec);
        self
    }

    /// Signs with the current OIDC key (RS256, OIDC kid), whatever the token's shape.
    pub fn sign_with_oidc_key(mut self) -> Self {
        self.family = Some(Family::Rsa);
        self
    }

    /// The payload this spec describes, as minted at `now` (Unix seconds).
    pub(crate) fn claims_at(&self, now: i64, default_iap_audience: &str) -> Map<String, Value> {
        let default_lifetime = match self.kind {
            Kind::Oidc => OIDC_LIFETIME_SECS,
            Kind::Iap => IAP_LIFETIME_SECS,
        };
        let lifetime = self.lifetime.unwrap_or(default_lifetime);
        let iat = self.issued_at.unwrap_or(if self.expired {
            now.saturating_sub(lifetime).saturating_sub(600)
        } else {
            now
        });
        let exp = self
            .expires_at
            .unwrap_or(if self.expired && self.issued_at.is_some() {
                now.saturating_sub(600)
            } else {
                iat.saturating_add(lifetime)
            });
        let mut c = Map::new();
        match self.kind {
            Kind::Oidc => {
                let id = numeric_id(&self.email);
                let aud = self.audience.as_deref().unwrap_or(DEFAULT_AUDIENCE);
                c.insert("aud".into(), json!(aud));
                c.insert("azp".into(), json!(id));
                c.insert("email".into(), json!(self.email));
                c.insert("email_verified".into(), json!(true));
                c.insert("iss".into(), json!(GOOGLE_ISSUER));
                c.insert("sub".into(), json!(id));
            }
            Kind::Iap => {
                let aud = self.audience.as_deref().unwrap_or(default_iap_audience);
                c.insert("aud".into(), json!(aud));
                c.insert("email".into(), json!(self.email));
                c.insert("iss".into(), json!(IAP_ISSUER));
                c.insert(
                    "sub".into(),
                    json!(format!("accounts.google.com:{}", numeric_id(&self.email))),
                );
            }
        }
        c.insert("iat".into(), json!(iat));
        c.insert("exp".into(), json!(exp));
        if let Some(nbf) = self.not_before {
            c.insert("nbf".into(), json!(nbf));
        }
        if let Some(hd) = &self.hosted_domain {
            c.insert("hd".into(), json!(hd));
        }
        if let Some(levels) = &self.access_levels {
            c.insert("google".into(), json!({ "access_levels": levels }));
        }
        if let Some(iss) = &self.issuer {
            c.insert("iss".into(), json!(iss));
        }
        if let Some(v) = &self.email_verified {
            c.insert("email_verified".into(), v.clone());
        }
        for (k, v) in &self.claims {
            c.insert(k.clone(), v.clone());
        }
        for k in &self.removed_claims {
            c.remove(k);
        }
        c
    }
}

/// The keys a mint may use.
#[derive(Debug)]
pub(crate) struct MintKeys<'a> {
    pub(crate) oidc: Option<&'a RsaKey>,
    pub(crate) iap: Option<&'a EcKey>,
    pub(crate) unknown_rsa: &'a RsaKey,
    pub(crate) unknown_ec: &'a EcKey,
}

enum Signer<'a> {
    Rsa(&'a RsaKey),
    Ec(&'a EcKey),
}

/// Encodes and signs `spec` into a compact JWS.
pub(crate) fn mint(
    spec: &TokenSpec,
    keys: &MintKeys<'_>,
    default_iap_audience: &str,
) -> Result<String, EmulatorError> {
    let claims = spec.claims_at(unix_now(), default_iap_audience);
    let family = spec.family.unwrap_or(match spec.kind {
        Kind::Oidc => Family::Rsa,
        Kind::Iap => Family::Ec,
    });
    let signer = match (family, spec.unknown_key) {
        (Family::Rsa, true) => Signer::Rsa(keys.unknown_rsa),
        (Family::Ec, true) => Signer::Ec(keys.unknown_ec),
        (Family::Rsa, false) => Signer::Rsa(keys.oidc.ok_or(EmulatorError::NoSigningKey("OIDC"))?),
        (Family::Ec, false) => Signer::Ec(keys.iap.ok_or(EmulatorError::NoSigningKey("IAP"))?),
    };
    let (alg, key_kid) = match &signer {
        Signer::Rsa(k) => ("RS256", k.kid.as_str()),
        Signer::Ec(k) => ("ES256", k.kid.as_str()),
    };
    let mut header = Map::new();
    header.insert("alg".into(), json!(alg));
    match &spec.kid {
        KidChoice::FromKey => {
            header.insert("kid".into(), json!(key_kid));
        }
        KidChoice::Explicit(kid) => {
            header.insert("kid".into(), json!(kid));
        }
        KidChoice::Absent => {}
    }
    header.insert("typ".into(), json!("JWT"));
    match spec.signature {
        SignatureMode::AlgNone => {
            header.insert("alg".into(), json!("none"));
        }
        SignatureMode::Hs256(_) => {
            header.insert("alg".into(), json!("HS256"));
        }
        _ => {}
    }
    for (k, v) in &spec.headers {
        header.insert(k.clone(), v.clone());
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    let signature = match spec.signature {
        SignatureMode::Removed => return Ok(format!("{signing_input}.{SIGNATURE_REMOVED}")),
        SignatureMode::AlgNone => return Ok(format!("{signing_input}.")),
        SignatureMode::Hs256(material) => {
            let secret: Vec<u8> = match (&signer, material) {
                (Signer::Rsa(k), HmacKeyMaterial::PublicKeyPem) => k.spki_pem.clone().into_bytes(),
                (Signer::Rsa(k), HmacKeyMaterial::PublishedPem) => k.cert_pem.clone().into_bytes(),
                (Signer::Rsa(k), HmacKeyMaterial::PublicKeyDer) => k.spki_der.clone(),
                (Signer::Ec(k), HmacKeyMaterial::PublicKeyDer) => k.spki_der.clone(),
                (Signer::Ec(k), _) => k.spki_pem.clone().into_bytes(),
            };
            let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
            hmac::sign(&key, signing_input.as_bytes()).as_ref().to_vec()
        }
        SignatureMode::Valid | SignatureMode::Tampered => {
            let mut sig = match &signer {
                Signer::Rsa(k) => k.sign(signing_input.as_bytes())?,
                Signer::Ec(k) => k.sign(signing_input.as_bytes())?,
            };
            if spec.signature == SignatureMode::Tampered {
                let middle = sig.len() / 2;
                if let Some(b) = sig.get_mut(middle) {
                    *b ^= 0x01;
                }
            }
            sig
        }
    };
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(spec: &TokenSpec) -> Map<String, Value> {
        spec.claims_at(1_000_000, "/projects/1/apps/p")
    }

    #[test]
    fn service_account_shape_matches_google() {
        let c = payload(&TokenSpec::service_account("a@p.iam.gserviceaccount.com").audience("x"));
        let keys: Vec<_> = c.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "aud",
                "azp",
                "email",
                "email_verified",
                "exp",
                "iat",
                "iss",
                "sub"
            ]
        );
        assert_eq!(c["azp"], c["sub"]);
        assert_eq!(c["exp"].as_i64(), Some(1_000_000 + 3600));
        assert_eq!(c["email_verified"], json!(true));
    }

    #[test]
    fn iap_shape_matches_google() {
        let c = payload(
            &TokenSpec::iap_user("u@example.com")
                .hosted_domain("example.com")
                .access_levels(["accessPolicies/1/accessLevels/corp"]),
        );
        assert_eq!(c["aud"], "/projects/1/apps/p");
        assert_eq!(c["iss"], IAP_ISSUER);
        assert!(
            c["sub"]
                .as_str()
                .is_some_and(|s| s.starts_with("accounts.google.com:1"))
        );
        assert_eq!(c["exp"].as_i64(), Some(1_000_000 + 600));
        assert_eq!(
            c["google"]["access_levels"][0],
            "accessPolicies/1/accessLevels/corp"
        );
        assert_eq!(c["hd"], "example.com");
    }

    #[test]
    fn modifiers_override_and_remove() {
        let c = payload(
            &TokenSpec::service_account("a@b")
                .claim("aud", json!(["x", "y"]))
                .without_claim("email")
                .email_verified("true")
                .expired(),
        );
        assert_eq!(c["aud"], json!(["x", "y"]));
        assert!(!c.contains_key("email"));
        assert_eq!(c["email_verified"], "true");
        assert!(c["exp"].as_i64().is_some_and(|e| e < 1_000_000));
        let c = payload(
            &TokenSpec::service_account("a@b")
                .without_claim("aud")
                .claim("aud", 5),
        );
        assert_eq!(c["aud"], 5);
    }

    #[test]
    fn explicit_times_win() {
        let c = payload(&TokenSpec::service_account("a@b").issued_at(10).lifetime(5));
        assert_eq!((c["iat"].as_i64(), c["exp"].as_i64()), (Some(10), Some(15)));
        let c = payload(
            &TokenSpec::service_account("a@b")
                .expires_at(7)
                .not_before(3),
        );
        assert_eq!((c["exp"].as_i64(), c["nbf"].as_i64()), (Some(7), Some(3)));
    }
}
