//! Google-signed OIDC ID tokens (service accounts, the metadata server, IAM `generateIdToken`).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::claim_str::{ClaimStr, WireStr};
use super::engine::{Engine, EngineOptions, KeysChoice, TimedClaims, wrong_audience, wrong_issuer};
use super::error::{BuildError, VerifyError};
use super::recent;
use crate::audience::{Audience, canonical_origin_of};
use crate::clock::Clock;
use crate::google;
use crate::identity::{Caller, IdentityError};
use crate::keys::{KeyAlgorithm, KeyCache, KeyDocumentFormat, VerifyingKey};

/// The issuers Google's OIDC ID tokens carry: the modern and the legacy form, and nothing else.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Google ID tokens live one hour.
const MAX_LIFETIME_SECS: i64 = 3600;

/// How a token's `aud` is compared with the configured audiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AudienceMatch {
    /// `aud` must equal a configured audience, byte for byte. The default.
    #[default]
    Exact,
    /// `aud` may also be any URL whose origin (`scheme://host[:port]`) equals a configured audience. Google's own
    /// sample caller mints tokens for the full target URL, path included; this accepts those without accepting
    /// tokens for any other host.
    ///
    /// Only an `aud` already in canonical form is compared: the bare origin (`https://svc.example.com`), or a URL
    /// that is byte-for-byte its own WHATWG serialization (`https://svc.example.com/jobs?x=1`). A lenient parser
    /// would turn `https://svc.example.com\@evil.com/`, `https:svc.example.com/x`, a leading space, an embedded tab,
    /// an upper-case host or a redundant `:443` into the configured origin; each of those is refused instead, since
    /// no honest minter writes them and a relying party that reads `aud` with another parser may disagree about the
    /// host.
    Origin,
}

/// A token's claims as parsed, their strings borrowed from the decoded payload: checked first, then copied into
/// [`OidcClaims`] only as far as a verified token keeps them (the issuer and a configured audience are not copied
/// at all, `azp` not when it equals `sub`).
#[derive(Deserialize)]
pub(crate) struct OidcWire<'a> {
    #[serde(borrow)]
    iss: WireStr<'a>,
    #[serde(borrow)]
    aud: WireStr<'a>,
    #[serde(borrow)]
    sub: WireStr<'a>,
    #[serde(borrow)]
    azp: Option<WireStr<'a>>,
    exp: i64,
    iat: i64,
    #[serde(default = "no_nbf", deserialize_with = "nbf_or_none")]
    nbf: i64,
    #[serde(borrow)]
    email: Option<WireStr<'a>>,
    email_verified: Option<bool>,
    #[serde(borrow)]
    hd: Option<WireStr<'a>>,
    google: Option<Box<serde_json::Value>>,
}

#[derive(Clone)]
pub(crate) struct OidcClaims {
    iss: ClaimStr,
    aud: ClaimStr,
    sub: Box<str>,
    azp: Option<Box<str>>,
    /// `azp` was equal to `sub` (as in every metadata-server and IAM token) and was dropped to save a copy.
    azp_is_sub: bool,
    exp: i64,
    iat: i64,
    /// `nbf`, or [`NO_NBF`]: 8 bytes instead of an `Option`'s 16, in every memo entry.
    nbf: i64,
    email: Option<Box<str>>,
    email_verified: Option<bool>,
    hd: Option<Box<str>>,
    /// Boxed: only metadata-server `format=full` tokens carry it, and inline it would cost every memo entry 32 bytes.
    google: Option<Box<serde_json::Value>>,
    /// The key that verified the signature, so a memo hit can check it is still published. A thin pointer (8
    /// bytes) into the key set: no per-entry copy of the `kid`.
    signed_by: Option<Arc<VerifyingKey>>,
}

/// The stored `nbf` of a token that has none.
const NO_NBF: i64 = i64::MIN;

fn no_nbf() -> i64 {
    NO_NBF
}

/// `nbf` as JSON gives it (an integer, or `null`), stored without an `Option`.
fn nbf_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Option::<i64>::deserialize(d).map(|nbf| nbf.unwrap_or(NO_NBF))
}

impl TimedClaims for OidcClaims {
    type Wire<'de> = OidcWire<'de>;

    fn exp(&self) -> i64 {
        self.exp
    }
    fn iat(&self) -> i64 {
        self.iat
    }
    fn nbf(&self) -> Option<i64> {
        (self.nbf != NO_NBF).then_some(self.nbf)
    }
    fn signed_by(&self) -> Option<&Arc<VerifyingKey>> {
        self.signed_by.as_ref()
    }
    fn set_signed_by(&mut self, key: Arc<VerifyingKey>) {
        self.signed_by = Some(key);
    }
}

/// A Google ID token whose signature, issuer, audience and times have been verified.
///
/// Only [`OidcVerifier::verify`] makes one: there is no public constructor, so holding a `VerifiedIdToken` proves
/// the checks ran. Cheap to clone.
#[derive(Clone)]
pub struct VerifiedIdToken {
    claims: Arc<OidcClaims>,
}

impl VerifiedIdToken {
    /// `sub`: the principal's stable unique ID (for a service account, its numeric unique ID).
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// `email`, only when `email_verified` is JSON `true`.
    pub fn email(&self) -> Option<&str> {
        match self.claims.email_verified {
            Some(true) => self.claims.email.as_deref(),
            _ => None,
        }
    }

    /// Whether `email_verified` is JSON `true`.
    pub fn email_verified(&self) -> bool {
        self.claims.email_verified == Some(true)
    }

    /// `aud`: the audience the token was minted for.
    pub fn audience(&self) -> &str {
        &self.claims.aud
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    /// `azp`, the authorized party. Informational: never authorize on it.
    pub fn authorized_party(&self) -> Option<&str> {
        if self.claims.azp_is_sub {
            Some(&self.claims.sub)
        } else {
            self.claims.azp.as_deref()
        }
    }

    /// `hd`, the Google Workspace hosted domain (user tokens only).
    pub fn hosted_domain(&self) -> Option<&str> {
        self.claims.hd.as_deref()
    }

    /// The `google` claim (`compute_engine` details from a metadata-server `format=full` token), if present.
    pub fn google_claim(&self) -> Option<&serde_json::Value> {
        self.claims.google.as_deref()
    }

    /// `exp` as a time.
    pub fn expires_at(&self) -> SystemTime {
        to_time(self.claims.exp)
    }

    /// `iat` as a time.
    pub fn issued_at(&self) -> SystemTime {
        to_time(self.claims.iat)
    }
}

impl VerifiedIdToken {
    /// The caller this token names, derived once per token per thread (see [`recent::caller`]).
    pub(crate) fn caller_with(
        &self,
        derive: impl FnOnce() -> Result<Caller, IdentityError>,
    ) -> Result<Caller, IdentityError> {
        recent::caller(&self.claims, derive)
    }
}

impl fmt::Debug for VerifiedIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdToken")
            .field("sub", &self.claims.sub)
            .field("email", &self.email())
            .field("aud", &self.claims.aud)
            .field("exp", &self.claims.exp)
            .finish_non_exhaustive()
    }
}

pub(crate) fn to_time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// The configured audiences, and how to compare.
#[derive(Debug, Clone)]
pub(crate) struct Audiences {
    /// Sorted, searched by bisection: a service has a handful of audiences, and comparing the token's `aud` with one
    /// or two of them costs less than hashing it.
    exact: Box<[Arc<str>]>,
    /// Configured audiences as origins; `Some` in [`AudienceMatch::Origin`] mode.
    origins: Option<HashSet<Audience>>,
}

impl Audiences {
    fn new(list: Vec<Audience>, mode: AudienceMatch) -> Result<Self, BuildError> {
        if list.is_empty() {
            return Err(BuildError::NoAudience);
        }
        let mut exact: Vec<Arc<str>> = Vec::new();
        let mut origins = HashSet::new();
        for aud in list {
            aud.check()
                .map_err(|e| BuildError::InvalidAudience(aud.to_string(), e.reason()))?;
            if mode == AudienceMatch::Origin {
                let origin = aud.origin().map_err(|_| {
                    BuildError::InvalidAudience(
                        aud.to_string(),
                        "origin matching needs an absolute http(s) URL",
                    )
                })?;
                origins.insert(origin);
            }
            exact.push(aud.as_arc().clone());
        }
        exact.sort_unstable();
        exact.dedup();
        Ok(Self {
            exact: exact.into(),
            origins: (mode == AudienceMatch::Origin).then_some(origins),
        })
    }

    /// `aud` as the verified claims store it when it is accepted, `None` when it is not. An exactly configured
    /// audience is shared with the claims, not copied (see [`ClaimStr`]).
    pub(crate) fn accept(&self, aud: &str) -> Option<ClaimStr> {
        if let Ok(at) = self.exact.binary_search_by(|e| (**e).cmp(aud)) {
            return Some(ClaimStr::Str(self.exact[at].clone()));
        }
        let origins = self.origins.as_ref()?;
        // The bare origin (no trailing `/`) is canonical too: it is what Cloud Run service URLs look like.
        (origins.contains(aud) || canonical_origin_of(aud).is_some_and(|o| origins.contains(&o)))
            .then(|| ClaimStr::new(aud))
    }
}

/// Verifies Google-signed OIDC ID tokens: RS256 only, Google's issuers only, your audiences only.
///
/// Cheap to clone (an `Arc` inside); build one at startup and share it.
///
/// In production, `OidcVerifier::builder().audience("https://my-service-abc123-uc.a.run.app").build()?` fetches
/// Google's keys. Here the keys and the token come from `idgate-emulator`, a local twin of Google:
///
/// ```
/// use idgate_core::verify::OidcVerifier;
/// use idgate_emulator::{Emulator, TokenSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let google = Emulator::start().await?;
/// let verifier = OidcVerifier::builder()
///     .audience("https://my-service-abc123-uc.a.run.app")
///     .keys_url(google.oidc_jwks_url()) // leave out to use Google's keys
///     .build()?;
///
/// let token = google.mint(
///     &TokenSpec::service_account("caller@other-project.iam.gserviceaccount.com")
///         .audience("https://my-service-abc123-uc.a.run.app"),
/// );
/// let verified = verifier.verify(&token).await?;
/// assert_eq!(verified.email(), Some("caller@other-project.iam.gserviceaccount.com"));
/// assert!(verified.email_verified());
/// assert_eq!(verified.audience(), "https://my-service-abc123-uc.a.run.app");
///
/// // Another signature, issuer or audience is refused, and the error says which rule it broke.
/// let forged = google.mint(
///     &TokenSpec::service_account("caller@other-project.iam.gserviceaccount.com")
///         .audience("https://my-service-abc123-uc.a.run.app")
///         .tampered_signature(),
/// );
/// assert_eq!(verifier.verify(&forged).await.unwrap_err().reason(), "invalid_signature");
/// # google.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<OidcInner>,
}

struct OidcInner {
    engine: Engine<OidcClaims>,
    audiences: Audiences,
    require_email: bool,
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("audiences", &self.inner.audiences)
            .field("leeway_secs", &self.inner.engine.times.leeway)
            .field("require_email", &self.inner.require_email)
            .field("keys", &self.inner.engine.keys)
            .finish()
    }
}

impl OidcVerifier {
    /// Starts configuring a verifier. At least one audience is required.
    pub fn builder() -> OidcVerifierBuilder {
        OidcVerifierBuilder::default()
    }

    /// Verifies a raw token (the part after `Bearer `).
    ///
    /// In order, before any cryptography: size (16 KiB), three non-empty segments, a base64url JSON header without
    /// `jwk`/`jku`/`x5u`/`x5c`/`crit`, `alg` exactly `RS256`, a `kid`, its key (through the cache), then the claims
    /// and signature segments as strict base64url (canonical: one spelling per token). Then the signature; then
    /// `iss`, `aud`, `exp`/`iat`/`nbf` with leeway, lifetime at most 1 h + leeway, and (by default) a
    /// verified `email`. A token verified before is answered from the memo after re-checking its `exp`.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first rule the token broke.
    pub async fn verify(&self, token: &str) -> Result<VerifiedIdToken, VerifyError> {
        let claims = self
            .inner
            .engine
            .verify(token, |c| self.check_claims(c))
            .await?;
        Ok(VerifiedIdToken { claims })
    }

    /// Accepts a token whose signature Cloud Run's invoker check removed (`SIGNATURE_REMOVED_BY_GOOGLE`), on the
    /// strength of that check: every rule of [`OidcVerifier::verify`] is applied except the signature, which Cloud
    /// Run verified and then destroyed. A token that still carries a signature is refused here
    /// ([`VerifyError::InvalidSignature`]): verify it with [`OidcVerifier::verify`].
    ///
    /// Safe only if the service cannot be reached except through Cloud Run with the invoker IAM check on; see
    /// [`TrustedCloudRunInvokerCheck`].
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first rule the token broke.
    pub fn verify_cloud_run_checked(
        &self,
        token: &str,
        _trust: TrustedCloudRunInvokerCheck,
    ) -> Result<VerifiedIdToken, VerifyError> {
        let claims = self
            .inner
            .engine
            .verify_signature_removed(token, |c| self.check_claims(c))?;
        Ok(VerifiedIdToken { claims })
    }

    /// The claim rules of a Google ID token for this verifier: issuer, audience, and (by default) a verified email.
    /// Checked on the claims as parsed; what passes is copied into the claims a verified token keeps.
    fn check_claims(&self, c: OidcWire<'_>) -> Result<OidcClaims, VerifyError> {
        let inner = &*self.inner;
        if !GOOGLE_ISSUERS.contains(&&*c.iss) {
            return Err(wrong_issuer(&c.iss));
        }
        let Some(aud) = inner.audiences.accept(&c.aud) else {
            return Err(wrong_audience(&c.aud));
        };
        if inner.require_email {
            if c.email.as_deref().is_none_or(str::is_empty) {
                return Err(VerifyError::MissingEmail);
            }
            if c.email_verified != Some(true) {
                return Err(VerifyError::EmailNotVerified);
            }
        }
        let azp_is_sub = c.azp.as_deref() == Some(&*c.sub);
        Ok(OidcClaims {
            iss: ClaimStr::new(&c.iss),
            aud,
            sub: (*c.sub).into(),
            azp: c.azp.filter(|_| !azp_is_sub).map(|azp| (*azp).into()),
            azp_is_sub,
            exp: c.exp,
            iat: c.iat,
            nbf: c.nbf,
            email: c.email.map(|email| (*email).into()),
            email_verified: c.email_verified,
            hd: c.hd.map(|hd| (*hd).into()),
            google: c.google,
            signed_by: None,
        })
    }

    /// The key cache this verifier reads (for `warm()` at startup and readiness checks).
    pub fn keys(&self) -> &KeyCache {
        &self.inner.engine.keys
    }
}

/// The decision to trust Cloud Run's invoker IAM check for tokens whose signature it removed.
///
/// With the invoker check on, Cloud Run verifies the caller's `Authorization` token and forwards it with the
/// signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`, so the service cannot verify it again. Accepting such a token
/// is sound **only** when every request reaches the service through Cloud Run with the invoker check on: anyone who
/// can reach the container another way (a VPC path, a sidecar port, a local run) can forge one. Prefer having callers
/// send their token in `X-Serverless-Authorization`, which Cloud Run checks and leaves intact.
///
/// Holding this value is how code states that decision; [`OidcVerifier::verify_cloud_run_checked`] requires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedCloudRunInvokerCheck(());

impl TrustedCloudRunInvokerCheck {
    /// Declares that this service is reachable only through Cloud Run with the invoker IAM check on.
    pub fn assume_only_reachable_through_cloud_run() -> Self {
        Self(())
    }
}

/// Configures an [`OidcVerifier`]. Building does no I/O.
#[derive(Debug, Default)]
#[must_use]
pub struct OidcVerifierBuilder {
    audiences: Vec<Audience>,
    audience_match: AudienceMatch,
    options: EngineOptions,
    require_email: Option<bool>,
}

/// The default leeway for `exp`, `iat` and `nbf`: 30 seconds, as Google's IAP documentation specifies.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The default number of verified tokens remembered per verifier.
pub const DEFAULT_MEMO_CAPACITY: u64 = 10_000;

impl OidcVerifierBuilder {
    /// Accepts tokens minted for `audience` (the service URL, or a Cloud Run custom audience).
    pub fn audience(mut self, audience: impl Into<Audience>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens minted for any of `audiences`.
    pub fn audiences<I, A>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Audience>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// How `aud` is compared. Default [`AudienceMatch::Exact`].
    pub fn audience_match(mut self, mode: AudienceMatch) -> Self {
        self.audience_match = mode;
        self
    }

    /// Clock skew tolerated on `exp`, `iat` and `nbf`. Default 30 s; at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.options.leeway = Some(leeway);
        self
    }

    /// Reads keys through `keys` (share one cache between verifiers, or point it at the emulator).
    /// Default: Google's `oauth2/v3/certs`.
    pub fn keys(mut self, keys: KeyCache) -> Self {
        self.options.keys = Some(KeysChoice::Cache(keys));
        self
    }

    /// Reads keys from `url` through a default [`KeyCache`]: Google's `oauth2/v3/certs` (JWKS) or
    /// `oauth2/v1/certs` (PEM certificates), the emulator's, or any document of either shape. The format is read
    /// from each document; use [`keys_url_as`](Self::keys_url_as) to pin one.
    pub fn keys_url(self, url: url::Url) -> Self {
        self.keys_url_as(url, KeyAlgorithm::Rs256)
    }

    /// Reads keys from `url` as `format`: a fixed [`KeyFormat`](crate::keys::KeyFormat) (`OidcJwks`, `OidcPemCertificates`), or
    /// [`KeyAlgorithm::Rs256`] to detect (what [`keys_url`](Self::keys_url) does). An IAP format is refused by
    /// [`build`](Self::build).
    pub fn keys_url_as(mut self, url: url::Url, format: impl Into<KeyDocumentFormat>) -> Self {
        self.options.keys = Some(KeysChoice::Url(url, format.into()));
        self
    }

    /// Uses `clock` for every time decision (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = Some(clock);
        self
    }

    /// How many verified tokens to remember; `0` turns the memo off. Default 10,000.
    pub fn memo_capacity(mut self, capacity: u64) -> Self {
        self.options.memo_capacity = Some(capacity);
        self
    }

    /// Whether a token must carry `email` with `email_verified: true`. Default `true`: every caller identity idgate
    /// derives from an ID token is an email. Turn it off only to authorize on `sub` yourself.
    pub fn require_verified_email(mut self, require: bool) -> Self {
        self.require_email = Some(require);
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for no audience, an audience that breaks [`Audience::check`] or (in origin mode) is not an
    /// http(s) URL, a leeway over 300 s, or a key cache for another algorithm.
    pub fn build(self) -> Result<OidcVerifier, BuildError> {
        let audiences = Audiences::new(self.audiences, self.audience_match)?;
        let engine = self.options.build(
            "oidc",
            KeyAlgorithm::Rs256,
            (
                google::Endpoints::default().oidc_jwks,
                KeyDocumentFormat::Detect(KeyAlgorithm::Rs256),
            ),
            |leeway| MAX_LIFETIME_SECS + leeway,
        )?;
        Ok(OidcVerifier {
            inner: Arc::new(OidcInner {
                engine,
                audiences,
                require_email: self.require_email.unwrap_or(true),
            }),
        })
    }
}

#[cfg(test)]
mod known_header_tests {
    use idgate_emulator::{Emulator, TokenSpec};

    use super::OidcVerifier;

    /// The known-header path is taken (the integration tests show what it refuses; this, that it is used): a header
    /// is remembered only once a token carrying it is accepted, and the next token with the same header bytes is
    /// answered from it, while a header with other bytes (another member) is decoded and judged afresh.
    #[tokio::test]
    async fn the_second_token_with_a_header_skips_decoding_it() {
        let emulator = Emulator::builder().start().await.unwrap();
        let audience = "https://svc.example.com";
        let verifier = OidcVerifier::builder()
            .audience(audience)
            .keys_url(emulator.oidc_jwks_url())
            .memo_capacity(0)
            .build()
            .unwrap();
        let known = &verifier.inner.engine.known_headers;
        let spec = |who: &str| TokenSpec::service_account(who).audience(audience);

        let refused = emulator
            .mint(&spec("a@p.iam.gserviceaccount.com").audience("https://other.example.com"));
        verifier.verify(&refused).await.unwrap_err();
        assert_eq!(
            (known.len(), known.hits()),
            (0, 0),
            "a refused token's header is not remembered"
        );

        let first = emulator.mint(&spec("a@p.iam.gserviceaccount.com"));
        verifier.verify(&first).await.unwrap();
        assert_eq!((known.len(), known.hits()), (1, 0));
        let second = emulator.mint(&spec("b@p.iam.gserviceaccount.com"));
        assert_eq!(first.split('.').next(), second.split('.').next());
        verifier.verify(&second).await.unwrap();
        assert_eq!((known.len(), known.hits()), (1, 1));

        let other_header =
            emulator.mint(&spec("c@p.iam.gserviceaccount.com").header("typ", "at+jwt"));
        verifier.verify(&other_header).await.unwrap();
        assert_eq!((known.len(), known.hits()), (2, 1));
    }
}

/// The memo keeps one of these per token, behind an `Arc` (16 more bytes): the sizes decide its allocator size class,
/// and so its memory per entry (`benches`' memory rows). A field added here should be boxed or shared when rare.
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    #[test]
    fn memoized_claims_stay_within_their_allocator_size_class() {
        // 144 + 16 = 160 bytes, a 176-byte chunk in glibc's malloc (the next class is 192).
        assert!(
            size_of::<super::OidcClaims>() <= 144,
            "{}",
            size_of::<super::OidcClaims>()
        );
        // 152 + 16 = 168, also a 176-byte chunk.
        let iap = size_of::<super::super::iap::IapClaims>();
        assert!(iap <= 152, "{iap}");
    }
}
