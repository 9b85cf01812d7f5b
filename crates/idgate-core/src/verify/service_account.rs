//! JWTs a service account signed itself (IAM `signJwt`, or a key file's key): how a third party that is not Google
//! checks "this request really comes from app X".

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::engine::{Engine, EngineOptions, KeysChoice, TimedClaims, wrong_audience, wrong_issuer};
use super::error::{BuildError, VerifyError};
use super::oidc::to_time;
use crate::audience::Audience;
use crate::clock::Clock;
use crate::keys::{
    KeyAlgorithm, KeyDocumentFormat, ServiceAccountKeys, VerifyingKey, checked_account, truncate,
};

/// The default longest `exp - iat` accepted: 12 hours, the furthest IAM `signJwt` lets `exp` be.
pub const DEFAULT_MAX_SIGNED_JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The longest `exp - iat` a verifier may be configured to accept: 24 hours. A self-signed JWT is a bearer
/// credential; one that lives for days is a leaked password.
pub const MAX_SIGNED_JWT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `aud`: one string, or an array of them (RFC 7519 allows both).
#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

impl Aud {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(one) => (Some(one.as_str()), &[][..]),
            Self::Many(many) => (None, many.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

#[derive(Clone, Deserialize)]
pub(crate) struct AccountJwtClaims {
    iss: String,
    sub: String,
    aud: Aud,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    /// Every other claim, for the relying party's own checks.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    signed_by: Option<Arc<VerifyingKey>>,
}

impl TimedClaims for AccountJwtClaims {
    /// Parsed straight into the kept form: its strings are few and every one is kept.
    type Wire<'de> = Self;

    fn exp(&self) -> i64 {
        self.exp
    }
    fn iat(&self) -> i64 {
        self.iat
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
    fn signed_by(&self) -> Option<&Arc<VerifyingKey>> {
        self.signed_by.as_ref()
    }
    fn set_signed_by(&mut self, key: Arc<VerifyingKey>) {
        self.signed_by = Some(key);
    }
}

/// A JWT whose signature (by a key the account publishes), issuer, subject, audience and times have been verified.
/// Only [`ServiceAccountJwtVerifier::verify`] makes one. Cheap to clone.
#[derive(Clone)]
pub struct VerifiedServiceAccountJwt {
    claims: Arc<AccountJwtClaims>,
}

impl VerifiedServiceAccountJwt {
    /// The service account that signed the token (`iss`, equal to `sub`).
    pub fn account(&self) -> &str {
        &self.claims.iss
    }

    /// The audience the token was accepted for: the first of its `aud` values this verifier accepts.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.claims.aud.iter()
    }

    /// The ID of the key that signed it (the header's `kid`).
    pub fn key_id(&self) -> Option<&str> {
        self.claims.signed_by.as_deref().map(VerifyingKey::kid)
    }

    /// `exp` as a time.
    pub fn expires_at(&self) -> SystemTime {
        to_time(self.claims.exp)
    }

    /// `iat` as a time.
    pub fn issued_at(&self) -> SystemTime {
        to_time(self.claims.iat)
    }

    /// Any claim other than `iss`, `sub`, `aud`, `exp`, `iat` and `nbf` (the signer's own: a request hash, a
    /// nonce, an order ID).
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.claims.other.get(name)
    }

    /// Every claim other than `iss`, `sub`, `aud`, `exp`, `iat` and `nbf`.
    pub fn other_claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims.other
    }
}

impl fmt::Debug for VerifiedServiceAccountJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedServiceAccountJwt")
            .field("account", &self.claims.iss)
            .field("aud", &self.audiences().collect::<Vec<_>>())
            .field("exp", &self.claims.exp)
            .field("kid", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// Verifies JWTs signed by one service account itself (the output of IAM `signJwt`, of idgate-client's
/// `Signer::sign_jwt`, or of anything signing with one of the account's key files): RS256 only; the key from the
/// account's published set (`service_accounts/v1/metadata/x509/ACCOUNT`, cached with Google's key-cache rules);
/// `iss` and `sub` both equal to the account; `aud` required and one of yours; `exp` and `iat` required, with a
/// leeway and a maximum lifetime (12 h by default).
///
/// This is what a third party that is not Google runs to check that a request really comes from app X: the App
/// Identity guide's `verify_signed_by_app`, with the audience, issuer and expiry checks that sample left out.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_core::google::Endpoints;
/// use idgate_core::keys::ServiceAccountKeys;
/// use idgate_core::verify::ServiceAccountJwtVerifier;
///
/// let google = idgate_emulator::Emulator::start().await?;
/// let app = "orders@shop-prod.iam.gserviceaccount.com";
/// let key_file = google.create_service_account(app);
///
/// let verifier = ServiceAccountJwtVerifier::builder(app)
///     .audience("https://partner.example.com/webhook")
///     .keys(ServiceAccountKeys::new().endpoints(&Endpoints::under(&google.base_url())))
///     .build()?;
///
/// // The app signs `{iss, sub, aud, iat, exp, ...}` with its key (idgate-client's `Signer::sign_jwt` does this).
/// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
/// # let claims = serde_json::json!({"iss": app, "sub": app, "aud": "https://partner.example.com/webhook",
/// #     "iat": now, "exp": now + 600, "order": 42});
/// # let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
/// # header.kid = Some(key_file.private_key_id().to_owned());
/// # let private = jsonwebtoken::EncodingKey::from_rsa_pem(key_file.private_key_pem().as_bytes())?;
/// let token = jsonwebtoken::encode(&header, &claims, &private)?;
///
/// let verified = verifier.verify(&token).await?;
/// assert_eq!(verified.account(), app);
/// assert_eq!(verified.claim("order"), Some(&serde_json::json!(42)));
///
/// // The same token is not accepted by a verifier expecting another account: that account never published its key.
/// # google.create_service_account("billing@shop-prod.iam.gserviceaccount.com");
/// let other = ServiceAccountJwtVerifier::builder("billing@shop-prod.iam.gserviceaccount.com")
///     .audience("https://partner.example.com/webhook")
///     .keys(ServiceAccountKeys::new().endpoints(&Endpoints::under(&google.base_url())))
///     .build()?;
/// assert_eq!(other.verify(&token).await.unwrap_err().reason(), "unknown_kid");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceAccountJwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine<AccountJwtClaims>,
    account: String,
    audiences: HashSet<Arc<str>>,
}

impl fmt::Debug for ServiceAccountJwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountJwtVerifier")
            .field("account", &self.inner.account)
            .field("audiences", &self.inner.audiences)
            .field("leeway_secs", &self.inner.engine.times.leeway)
            .field("max_lifetime_secs", &self.inner.engine.times.max_lifetime)
            .field("keys", &self.inner.engine.keys)
            .finish()
    }
}

impl ServiceAccountJwtVerifier {
    /// Starts configuring a verifier for JWTs signed by `account` (a service-account email). At least one audience
    /// is required.
    pub fn builder(account: impl Into<String>) -> ServiceAccountJwtVerifierBuilder {
        ServiceAccountJwtVerifierBuilder {
            account: account.into(),
            audiences: Vec::new(),
            keys: None,
            max_lifetime: DEFAULT_MAX_SIGNED_JWT_LIFETIME,
            options: EngineOptions::default(),
        }
    }

    /// The account whose tokens this verifier accepts (lower-cased).
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// Verifies a raw token (the part after `Bearer `).
    ///
    /// In order, before any cryptography: size, three non-empty segments, a base64url JSON header without
    /// `jwk`/`jku`/`x5u`/`x5c`/`crit`, `alg` exactly `RS256`, a `kid`, the account's key with that `kid` (refetched,
    /// rate-limited, when unknown), then the claims and signature segments as strict base64url. Then the signature;
    /// then `iss` = `sub` = the account, `aud`, and
    /// `exp`/`iat`/`nbf` with the leeway and the maximum lifetime. A token verified before is answered from the memo
    /// after re-checking its `exp` and that its key is still published.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first rule the token broke: a token signed by another account fails as
    /// `unknown_kid` (its key is not in this account's set) or `invalid_signature`.
    pub async fn verify(&self, token: &str) -> Result<VerifiedServiceAccountJwt, VerifyError> {
        let inner = &*self.inner;
        let claims = inner
            .engine
            .verify(token, |c: AccountJwtClaims| {
                if c.iss != inner.account {
                    return Err(wrong_issuer(&c.iss));
                }
                if c.sub != inner.account {
                    return Err(VerifyError::WrongSubject {
                        got: truncate(&c.sub),
                    });
                }
                if !c.aud.iter().any(|a| inner.audiences.contains(a)) {
                    let first = c.aud.iter().next().unwrap_or_default();
                    return Err(wrong_audience(first));
                }
                Ok(c)
            })
            .await?;
        Ok(VerifiedServiceAccountJwt { claims })
    }

    /// The key cache of the account's published keys (warm it at startup; read its status for readiness).
    pub fn keys(&self) -> &crate::keys::KeyCache {
        &self.inner.engine.keys
    }
}

/// Configures a [`ServiceAccountJwtVerifier`]. Building does no I/O.
#[derive(Debug)]
#[must_use]
pub struct ServiceAccountJwtVerifierBuilder {
    account: String,
    audiences: Vec<Audience>,
    keys: Option<ServiceAccountKeys>,
    max_lifetime: Duration,
    options: EngineOptions,
}

impl ServiceAccountJwtVerifierBuilder {
    /// Accepts tokens whose `aud` is (or, for an array, contains) `audience`: your service's URL, or whatever
    /// name the signer was told to use for you.
    pub fn audience(mut self, audience: impl Into<Audience>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens for any of `audiences`.
    pub fn audiences<I, A>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Audience>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Reads the account's keys through `keys` (share one [`ServiceAccountKeys`] between verifiers, or point it at
    /// the emulator). Default: Google's documents, with this builder's clock.
    pub fn keys(mut self, keys: ServiceAccountKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Clock skew tolerated on `exp`, `iat` and `nbf`. Default 30 s; at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.options.leeway = Some(leeway);
        self
    }

    /// The longest `exp - iat` accepted (leeway added). Default [`DEFAULT_MAX_SIGNED_JWT_LIFETIME`] (12 h); at
    /// most [`MAX_SIGNED_JWT_LIFETIME`] (24 h).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Uses `clock` for every time decision (tests). Also the clock of the default key cache.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = Some(clock);
        self
    }

    /// How many verified tokens to remember; `0` turns the memo off. Default 10,000.
    pub fn memo_capacity(mut self, capacity: u64) -> Self {
        self.options.memo_capacity = Some(capacity);
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for an account that is not a service-account email, no audience or an invalid one, a leeway
    /// over 300 s, or a maximum lifetime of zero or over 24 h.
    pub fn build(mut self) -> Result<ServiceAccountJwtVerifier, BuildError> {
        let account = checked_account(self.account.trim())
            .map_err(|_| BuildError::InvalidAccount(truncate(&self.account)))?;
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        let mut audiences = HashSet::new();
        for aud in self.audiences {
            aud.check()
                .map_err(|e| BuildError::InvalidAudience(aud.to_string(), e.reason()))?;
            audiences.insert(aud.as_arc().clone());
        }
        if self.max_lifetime.is_zero() || self.max_lifetime > MAX_SIGNED_JWT_LIFETIME {
            return Err(BuildError::MaxLifetimeOutOfRange(
                self.max_lifetime.as_secs(),
            ));
        }
        let keys = match self.keys {
            Some(keys) => keys,
            None => match &self.options.clock {
                Some(clock) => ServiceAccountKeys::new().clock(clock.clone()),
                None => ServiceAccountKeys::new(),
            },
        };
        let cache = keys
            .cache(&account)
            .map_err(|_| BuildError::InvalidAccount(truncate(&account)))?;
        self.options.keys = Some(KeysChoice::Cache(cache));
        let max_lifetime = i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        let engine = self.options.build(
            "service_account",
            KeyAlgorithm::Rs256,
            // Unused: the account's cache is always given above.
            (
                crate::google::Endpoints::default().service_account_keys,
                KeyDocumentFormat::Detect(KeyAlgorithm::Rs256),
            ),
            |leeway| max_lifetime.saturating_add(leeway),
        )?;
        Ok(ServiceAccountJwtVerifier {
            inner: Arc::new(Inner {
                engine,
                account,
                audiences,
            }),
        })
    }
}
