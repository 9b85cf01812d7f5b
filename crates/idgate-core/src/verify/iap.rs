//! Identity-Aware Proxy assertions (`x-goog-iap-jwt-assertion`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::claim_str::ClaimStr;
use super::engine::{Engine, EngineOptions, KeysChoice, TimedClaims, wrong_audience, wrong_issuer};
use super::error::{BuildError, VerifyError};
use super::oidc::to_time;
use super::recent;
use crate::audience::Audience;
use crate::clock::Clock;
use crate::google;
use crate::identity::Caller;
use crate::keys::{KeyAlgorithm, KeyCache, KeyDocumentFormat, VerifyingKey};

/// The only issuer of IAP assertions.
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";

/// IAP assertions live at most 10 minutes (plus twice the leeway, as Google's documentation says).
const MAX_LIFETIME_SECS: i64 = 600;

#[derive(Clone, Deserialize)]
struct IapGoogleClaim {
    #[serde(default)]
    access_levels: Vec<String>,
}

/// `gcip`: present when IAP admitted an external identity through Identity Platform. It carries the Identity
/// Platform ID token's claims; idgate reads whether the identity provider verified the email, and the tenant.
#[derive(Clone, Deserialize)]
struct GcipClaim {
    /// Only JSON `true` counts; absent or `false` means the email is whatever the user typed at sign-up.
    email_verified: Option<bool>,
    firebase: Option<GcipFirebase>,
}

#[derive(Clone, Deserialize)]
struct GcipFirebase {
    tenant: Option<Box<str>>,
}

#[derive(Clone, Deserialize)]
pub(crate) struct IapClaims {
    iss: ClaimStr,
    aud: ClaimStr,
    sub: Box<str>,
    email: Box<str>,
    exp: i64,
    iat: i64,
    nbf: Option<i64>,
    hd: Option<Box<str>>,
    google: Option<IapGoogleClaim>,
    /// Boxed: most assertions are for Google identities and have none; inline it would cost every memo entry.
    gcip: Option<Box<GcipClaim>>,
    /// The key that verified the signature, so a memo hit can check it is still published. A thin pointer (8
    /// bytes) into the key set: no per-entry copy of the `kid`.
    #[serde(skip)]
    signed_by: Option<Arc<VerifyingKey>>,
}

impl TimedClaims for IapClaims {
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

/// An IAP assertion whose signature, issuer, audience and times have been verified.
///
/// Only [`IapVerifier::verify`] makes one. Cheap to clone.
#[derive(Clone)]
pub struct VerifiedIapAssertion {
    claims: Arc<IapClaims>,
}

impl VerifiedIapAssertion {
    /// The signed-in user's email (plain, without the `accounts.google.com:` prefix of the unsigned headers).
    pub fn email(&self) -> &str {
        &self.claims.email
    }

    /// `sub`: the user's stable ID, namespaced like `accounts.google.com:1234567890`.
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// `hd`: the Google Workspace domain, for Workspace accounts.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.claims.hd.as_deref()
    }

    /// `google.access_levels`: the access levels that applied to the request (empty when none).
    pub fn access_levels(&self) -> &[String] {
        self.claims
            .google
            .as_ref()
            .map_or(&[], |g| g.access_levels.as_slice())
    }

    /// Whether IAP admitted an external identity (Identity Platform; the assertion has a `gcip` claim) rather than
    /// a Google account.
    pub fn is_external_identity(&self) -> bool {
        self.claims.gcip.is_some()
    }

    /// Whether the email is verified. A Google account's always is (IAP admits only Google accounts, whose
    /// addresses Google verified, and says nothing more). An external identity's is only when its Identity Platform
    /// token says `email_verified: true`: with email/password sign-up, anyone can register any address.
    pub fn email_verified(&self) -> bool {
        self.claims
            .gcip
            .as_ref()
            .is_none_or(|gcip| gcip.email_verified == Some(true))
    }

    /// The Identity Platform tenant of an external identity (`gcip.firebase.tenant`), when there is one.
    pub fn tenant(&self) -> Option<&str> {
        self.claims
            .gcip
            .as_ref()
            .and_then(|gcip| gcip.firebase.as_ref())
            .and_then(|firebase| firebase.tenant.as_deref())
    }

    /// `aud`: `/projects/NUMBER/apps/ID`, `/projects/NUMBER/global/backendServices/ID`, ...
    pub fn audience(&self) -> &str {
        &self.claims.aud
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

impl VerifiedIapAssertion {
    /// The caller this assertion names, derived once per assertion per thread (see [`recent::caller`]).
    pub(crate) fn caller_with(&self, derive: impl Fn() -> Caller) -> Caller {
        // The cache only hands back what `derive` produced for these claims, which is never an error; deriving
        // again is the honest answer to the impossible case.
        recent::caller(&self.claims, || Ok(derive())).unwrap_or_else(|_| derive())
    }
}

impl fmt::Debug for VerifiedIapAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIapAssertion")
            .field("email", &self.claims.email)
            .field("sub", &self.claims.sub)
            .field("hd", &self.claims.hd)
            .field("aud", &self.claims.aud)
            .finish_non_exhaustive()
    }
}

/// The shapes of IAP audience Google documents. Anything else is refused when a verifier is built or a config is
/// loaded, so a typo cannot silently reject (or, worse, accept) everyone. On mismatch, says what to write.
pub(crate) fn check_iap_audience(aud: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = aud.split('/').collect();
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b))
    };
    let ok = match parts.as_slice() {
        ["", "projects", n, "apps", id] => number(n) && name(id),
        ["", "projects", n, "global", "backendServices", id] => number(n) && name(id),
        ["", "projects", n, "regions", region, "backendServices", id] => {
            number(n) && name(region) && name(id)
        }
        ["", "projects", n, "locations", region, "services", service] => {
            number(n) && name(region) && name(service)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else if parts.get(2).is_some_and(|n| !n.is_empty() && !number(n)) {
        Err(
            "IAP audiences use the project NUMBER, not the project ID: write \
             \"/projects/PROJECT_NUMBER/apps/PROJECT_ID\" (App Engine), \
             \"/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID\" (global load balancer), \
             \"/projects/PROJECT_NUMBER/regions/REGION/backendServices/SERVICE_ID\" (regional load balancer) or \
             \"/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE_NAME\" (Cloud Run)",
        )
    } else {
        Err(
            "write \"/projects/PROJECT_NUMBER/apps/PROJECT_ID\" (App Engine), \
             \"/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID\" (global load balancer), \
             \"/projects/PROJECT_NUMBER/regions/REGION/backendServices/SERVICE_ID\" (regional load balancer) or \
             \"/projects/PROJECT_NUMBER/locations/REGION/services/SERVICE_NAME\" (Cloud Run), or \
             `discover_audience = true`",
        )
    }
}

/// Verifies Identity-Aware Proxy assertions: ES256 only, issuer `https://cloud.google.com/iap` only, your audience
/// only, lifetime at most 10 minutes plus twice the leeway.
///
/// In production, `IapVerifier::builder().audience("/projects/123456789/apps/my-project").build()?` fetches IAP's
/// keys. Here the keys and the assertion come from `idgate-emulator`, a local twin of Google:
///
/// ```
/// use idgate_core::verify::IapVerifier;
/// use idgate_emulator::{Emulator, TokenSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let google = Emulator::builder().project_id("my-project").project_number(123456789).start().await?;
/// let verifier = IapVerifier::builder()
///     .audience("/projects/123456789/apps/my-project") // App Engine; Cloud Run and backend services have their own shape
///     .keys_url(google.iap_jwks_url()) // leave out to use IAP's keys
///     .build()?;
///
/// // What IAP sends in `x-goog-iap-jwt-assertion` for a signed-in user.
/// let assertion = google.mint(
///     &TokenSpec::iap_user("alice@example.com").audience("/projects/123456789/apps/my-project"),
/// );
/// let user = verifier.verify(&assertion).await?;
/// assert_eq!(user.email(), "alice@example.com");
/// assert!(user.subject().starts_with("accounts.google.com:"));
///
/// // An assertion for another app is refused.
/// let elsewhere = google.mint(
///     &TokenSpec::iap_user("alice@example.com").audience("/projects/123456789/apps/other-project"),
/// );
/// assert!(verifier.verify(&elsewhere).await.unwrap_err().is_wrong_audience());
/// # google.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IapVerifier {
    inner: Arc<IapInner>,
}

struct IapInner {
    engine: Engine<IapClaims>,
    audiences: Vec<Arc<str>>,
}

impl fmt::Debug for IapVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IapVerifier")
            .field("audiences", &self.inner.audiences)
            .field("leeway_secs", &self.inner.engine.times.leeway)
            .field("keys", &self.inner.engine.keys)
            .finish()
    }
}

impl IapVerifier {
    /// Starts configuring a verifier. An audience is required.
    pub fn builder() -> IapVerifierBuilder {
        IapVerifierBuilder::default()
    }

    /// Verifies the value of an `x-goog-iap-jwt-assertion` header.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first rule the assertion broke.
    pub async fn verify(&self, assertion: &str) -> Result<VerifiedIapAssertion, VerifyError> {
        let inner = &*self.inner;
        let claims = inner
            .engine
            .verify(assertion, |mut c: IapClaims| {
                if !c.iss.is_one_of(&[IAP_ISSUER]) {
                    return Err(wrong_issuer(&c.iss));
                }
                match inner.audiences.iter().find(|a| ***a == *c.aud) {
                    Some(configured) => c.aud.share(configured),
                    None => return Err(wrong_audience(&c.aud)),
                }
                if c.email.is_empty() {
                    return Err(VerifyError::MissingEmail);
                }
                Ok(c)
            })
            .await?;
        Ok(VerifiedIapAssertion { claims })
    }

    /// The key cache this verifier reads.
    pub fn keys(&self) -> &KeyCache {
        &self.inner.engine.keys
    }
}

/// Configures an [`IapVerifier`]. Building does no I/O.
#[derive(Debug, Default)]
#[must_use]
pub struct IapVerifierBuilder {
    audiences: Vec<Audience>,
    options: EngineOptions,
}

impl IapVerifierBuilder {
    /// Accepts assertions for `audience` (e.g. `/projects/123456789/apps/my-project`). Compared exactly.
    pub fn audience(mut self, audience: impl Into<Audience>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp`, `iat` and `nbf`. Default 30 s (Google's IAP documentation); at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.options.leeway = Some(leeway);
        self
    }

    /// Reads keys through `keys`. Default: `https://www.gstatic.com/iap/verify/public_key-jwk`.
    pub fn keys(mut self, keys: KeyCache) -> Self {
        self.options.keys = Some(KeysChoice::Cache(keys));
        self
    }

    /// Reads keys from `url` through a default [`KeyCache`]: IAP's `iap/verify/public_key-jwk` (JWKS) or
    /// `iap/verify/public_key` (PEM), the emulator's, or any document of either shape. The format is read from each
    /// document; use [`keys_url_as`](Self::keys_url_as) to pin one.
    pub fn keys_url(self, url: url::Url) -> Self {
        self.keys_url_as(url, KeyAlgorithm::Es256)
    }

    /// Reads keys from `url` as `format`: a fixed [`KeyFormat`](crate::keys::KeyFormat) (`IapJwks`, `IapPem`), or
    /// [`KeyAlgorithm::Es256`] to detect (what [`keys_url`](Self::keys_url) does). An OIDC format is refused by
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

    /// How many verified assertions to remember; `0` turns the memo off. Default 10,000.
    pub fn memo_capacity(mut self, capacity: u64) -> Self {
        self.options.memo_capacity = Some(capacity);
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for no audience, an audience that breaks [`Audience::check`] or is not of a documented IAP
    /// shape, a leeway over 300 s, or a key cache for another algorithm.
    pub fn build(self) -> Result<IapVerifier, BuildError> {
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        for aud in &self.audiences {
            aud.check()
                .map_err(|e| e.reason())
                .and_then(|()| check_iap_audience(aud.as_str()))
                .map_err(|why| BuildError::InvalidAudience(aud.to_string(), why))?;
        }
        let engine = self.options.build(
            "iap",
            KeyAlgorithm::Es256,
            (
                google::Endpoints::default().iap_jwks,
                KeyDocumentFormat::Detect(KeyAlgorithm::Es256),
            ),
            // Google's IAP documentation: "10 minutes + 2 * skew".
            |leeway| MAX_LIFETIME_SECS + 2 * leeway,
        )?;
        Ok(IapVerifier {
            inner: Arc::new(IapInner {
                engine,
                audiences: self.audiences.iter().map(|a| a.as_arc().clone()).collect(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_iap_audience;

    #[test]
    fn iap_audience_shapes() {
        for ok in [
            "/projects/123/apps/my-project",
            "/projects/123/apps/example.com:my-project",
            "/projects/123/global/backendServices/4567",
            "/projects/123/regions/us-central1/backendServices/4567",
            "/projects/123/locations/europe-west1/services/hello",
        ] {
            assert!(check_iap_audience(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "my-project",
            "/projects/abc/apps/x",
            "/projects/123/apps/",
            "/projects/123/apps/x/extra",
            "projects/123/apps/x",
            "/projects/123/global/backendServices/a b",
        ] {
            assert!(check_iap_audience(bad).is_err(), "{bad}");
        }
    }
}
