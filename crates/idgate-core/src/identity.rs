//! Who is calling: a [`Caller`] derived from a verified token or from a trusted legacy header.
//!
//! Every caller type here has private fields and no public constructor that takes raw claims. A [`Caller`] can
//! only come from:
//!
//! - [`Caller::from_id_token`]: a [`VerifiedIdToken`] (Google-signed OIDC ID token) with a verified email;
//! - [`Caller::from_iap`]: a [`VerifiedIapAssertion`] (Identity-Aware Proxy's signed header);
//! - [`AppEngineApp::from_trusted_header`]: the legacy `X-Appengine-Inbound-Appid` header, which additionally
//!   requires a [`TrustedAppEngineFrontEnd`] marker, i.e. an explicit statement that App Engine's front end sits
//!   in front of the service.
//!
//! So code holding a `Caller` knows the verification ran; forging one from unverified input does not compile.
//!
//! Service accounts are mapped to the project that owns them with [`project_of_service_account`], following
//! Google's email forms exactly (`GOOGLE-IDENTITY.md` §3.4).
//!
//! ```
//! use idgate_core::identity::{Project, project_of_service_account};
//!
//! // The App Engine default service account carries the project ID as its username.
//! assert_eq!(
//!     project_of_service_account("my-app@appspot.gserviceaccount.com"),
//!     Some(Project::Id("my-app".into())),
//! );
//! // A user-managed service account names its project in the domain.
//! assert_eq!(
//!     project_of_service_account("runner@other-proj.iam.gserviceaccount.com"),
//!     Some(Project::Id("other-proj".into())),
//! );
//! // The Compute Engine default service account only reveals the project *number*.
//! assert_eq!(
//!     project_of_service_account("123456789012-compute@developer.gserviceaccount.com"),
//!     Some(Project::Number(123456789012)),
//! );
//! // Google's own service agents never stand for a project's app, and look-alikes map to nothing.
//! assert_eq!(project_of_service_account("service-123456789012@gcp-sa-iap.iam.gserviceaccount.com"), None);
//! assert_eq!(project_of_service_account("my-app@appspot.gserviceaccount.com.evil.com"), None);
//! ```

use std::fmt;
use std::sync::Arc;

use crate::verify::{VerifiedIapAssertion, VerifiedIdToken};

/// The App Engine default service accounts' domain: `PROJECT_ID@appspot.gserviceaccount.com`.
const APPSPOT_SA_DOMAIN: &str = "appspot.gserviceaccount.com";
/// The Compute Engine default service accounts' domain: `NUMBER-compute@developer.gserviceaccount.com`.
const COMPUTE_SA_DOMAIN: &str = "developer.gserviceaccount.com";
/// The suffix of user-managed service accounts' domains: `NAME@PROJECT_ID.iam.gserviceaccount.com`.
const IAM_SA_SUFFIX: &str = ".iam.gserviceaccount.com";
/// The registrable domain of every Google service-account email.
const SA_ROOT_DOMAIN: &str = "gserviceaccount.com";

/// The longest email idgate looks at (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// A Google Cloud project, as far as a caller's identity reveals it.
///
/// `Display` prints the ID (`my-app`, or `example.com:proj` for a domain-scoped project) or the number.
///
/// ```
/// use idgate_core::identity::Project;
///
/// assert_eq!(Project::Id("example.com:proj".into()).to_string(), "example.com:proj");
/// assert_eq!(Project::Number(42).to_string(), "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Project {
    /// A project ID: `my-app`, or `example.com:proj` for a domain-scoped project.
    Id(String),
    /// A project number: all the Compute Engine default service account reveals.
    Number(u64),
}

impl Project {
    /// The project ID, if this is one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Id(id) => Some(id),
            Self::Number(_) => None,
        }
    }

    /// The project number, if this is one.
    pub fn number(&self) -> Option<u64> {
        match self {
            Self::Id(_) => None,
            Self::Number(n) => Some(*n),
        }
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Whether `s` is a syntactically valid project ID: 6 to 30 characters of `[a-z0-9-]`, starting with a letter and
/// not ending with a hyphen; or a domain-scoped ID `domain:project` (e.g. `example.com:my-project`).
///
/// ```
/// use idgate_core::identity::is_valid_project_id;
///
/// assert!(is_valid_project_id("my-project"));
/// assert!(is_valid_project_id("example.com:my-project"));
/// assert!(!is_valid_project_id("My-Project"));
/// assert!(!is_valid_project_id("short"));
/// assert!(!is_valid_project_id("*"));
/// ```
pub fn is_valid_project_id(s: &str) -> bool {
    check_project_id(s).is_ok()
}

/// Checks a project ID (plain or domain-scoped), saying what is wrong.
pub(crate) fn check_project_id(s: &str) -> Result<(), &'static str> {
    match s.split_once(':') {
        Some((domain, project)) => {
            check_dns_domain(domain)
                .map_err(|_| "the part before `:` must be a domain such as `example.com`")?;
            check_plain_project_id(project)
        }
        None => check_plain_project_id(s),
    }
}

/// A project ID without domain: `[a-z][a-z0-9-]{4,28}[a-z0-9]`.
fn check_plain_project_id(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if !(6..=30).contains(&bytes.len()) {
        return Err("a project ID has 6 to 30 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("a project ID has only lowercase letters, digits and hyphens");
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err("a project ID starts with a lowercase letter");
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err("a project ID does not end with a hyphen");
    }
    Ok(())
}

/// A lowercase DNS name with at least two labels (`example.com`): labels of `[a-z0-9-]`, 1 to 63 characters,
/// neither starting nor ending with a hyphen; at most 253 characters.
pub(crate) fn check_dns_domain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("a domain has 1 to 253 characters");
    }
    let mut labels = 0;
    for label in s.split('.') {
        labels += 1;
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() > 63 {
            return Err("each dot-separated part of a domain has 1 to 63 characters");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return Err("a domain has only lowercase ASCII letters, digits, hyphens and dots");
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err("no part of a domain starts or ends with a hyphen");
        }
    }
    if labels < 2 {
        return Err("a domain has at least two parts, such as `example.com`");
    }
    Ok(())
}

/// Splits an email at its **last** `@` into `(local, domain)`. `None` unless both parts are non-empty.
pub(crate) fn split_email(email: &str) -> Option<(&str, &str)> {
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

/// The domain of an email: everything after its last `@`; `None` unless the email is a plain ASCII address with
/// exactly one `@` (so an odd address can never be judged by a suffix of it).
pub(crate) fn email_domain(email: &str) -> Option<&str> {
    if !email.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (local, domain) = split_email(email)?;
    (!local.contains('@')).then_some(domain)
}

/// Whether a (lowercase) domain is a Google service-account domain: `gserviceaccount.com` or a subdomain of it.
/// Only ever applied to the part of an email after its last `@`.
pub(crate) fn is_service_account_domain(domain: &str) -> bool {
    domain == SA_ROOT_DOMAIN
        || domain
            .strip_suffix(SA_ROOT_DOMAIN)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// An email in the form idgate compares: ASCII only, lowercased, one `@` with non-empty sides, no whitespace or
/// control characters, at most 254 characters. `None` for anything else.
///
/// ASCII-only lowercasing is deliberate: Unicode case folding maps look-alikes onto ASCII (the Kelvin sign `K`
/// lowercases to `k`), and Google account and service-account emails are ASCII.
pub(crate) fn normalize_email(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL_LEN || !email.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (local, _domain) = split_email(email)?;
    if local.contains('@') {
        return None;
    }
    Some(email.to_ascii_lowercase())
}

/// Which of Google's service-account forms an email has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceAccountKind {
    /// `PROJECT_ID@appspot.gserviceaccount.com`: the project's App Engine default service account (the identity of
    /// an App Engine app, and what the legacy App Identity API migrates to).
    AppEngineDefault,
    /// `PROJECT_NUMBER-compute@developer.gserviceaccount.com`: the Compute Engine default service account (also
    /// Cloud Run's and Cloud Functions' default identity). It reveals the project number only.
    ComputeDefault,
    /// `NAME@PROJECT_ID.iam.gserviceaccount.com`: a service account created in a project.
    UserManaged,
    /// A Google-managed service agent (`service-NUMBER@gcp-sa-*.iam.gserviceaccount.com`,
    /// `NUMBER@cloudservices.gserviceaccount.com`, ...): Google acting on a project's behalf, never an app.
    GoogleServiceAgent,
    /// Any other or malformed `gserviceaccount.com` address.
    Other,
}

impl ServiceAccountKind {
    /// A short, stable name for logs and metrics (`"app_engine_default"`, `"user_managed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppEngineDefault => "app_engine_default",
            Self::ComputeDefault => "compute_default",
            Self::UserManaged => "user_managed",
            Self::GoogleServiceAgent => "google_service_agent",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ServiceAccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The project that owns a service account, from its email alone (`GOOGLE-IDENTITY.md` §3.4).
///
/// | email | project |
/// |---|---|
/// | `ID@appspot.gserviceaccount.com` | `Id(ID)` |
/// | `my-proj.example.com@appspot.gserviceaccount.com` | `Id("example.com:my-proj")` |
/// | `NAME@ID.iam.gserviceaccount.com` | `Id(ID)` |
/// | `NAME@my-proj.example.com.iam.gserviceaccount.com` | `Id("example.com:my-proj")` |
/// | `NUMBER-compute@developer.gserviceaccount.com` | `Number(NUMBER)` |
/// | Google service agents, anything malformed, any other domain | `None` |
///
/// The comparison is case-insensitive; the domain is the part after the **last** `@`, compared exactly (never
/// with `contains`/`ends_with` on the whole address); project IDs are checked for Google's syntax; non-ASCII input
/// (look-alike characters) maps to nothing.
///
/// ```
/// use idgate_core::identity::{Project, project_of_service_account};
///
/// assert_eq!(
///     project_of_service_account("My-Proj.Example.com@AppSpot.gserviceaccount.com"),
///     Some(Project::Id("example.com:my-proj".into())),
/// );
/// assert_eq!(project_of_service_account("x@evil-appspot.gserviceaccount.com"), None);
/// ```
pub fn project_of_service_account(email: &str) -> Option<Project> {
    classify_service_account(email).1
}

/// The form of a service-account email and the project it reveals. The email need not be lowercased.
pub(crate) fn classify_service_account(email: &str) -> (ServiceAccountKind, Option<Project>) {
    let Some(email) = normalize_email(email) else {
        return (ServiceAccountKind::Other, None);
    };
    let Some((user, domain)) = split_email(&email) else {
        return (ServiceAccountKind::Other, None);
    };
    // Google's service agents are named `service-NUMBER` (or `service-org-NUMBER` / `service-folder-NUMBER` for
    // organisation- and folder-level agents) whatever domain they live on (`gcp-sa-*`, `container-engine-robot`,
    // `compute-system`, `serverless-robot-prod`, ...). They are Google acting for a project, not the project's
    // code: treating one as "project X calls you" would let any Google product acting for X in.
    if is_service_agent_username(user) {
        return (ServiceAccountKind::GoogleServiceAgent, None);
    }
    match domain {
        APPSPOT_SA_DOMAIN => match project_from_scoped_name(user) {
            Some(project) => (ServiceAccountKind::AppEngineDefault, Some(project)),
            None => (ServiceAccountKind::Other, None),
        },
        COMPUTE_SA_DOMAIN => match user.strip_suffix("-compute").and_then(parse_project_number) {
            Some(number) => (
                ServiceAccountKind::ComputeDefault,
                Some(Project::Number(number)),
            ),
            None => (ServiceAccountKind::Other, None),
        },
        // `NUMBER@cloudservices.gserviceaccount.com` is the Google APIs service agent: Google's own automation.
        "cloudservices.gserviceaccount.com" => (ServiceAccountKind::GoogleServiceAgent, None),
        _ => match domain.strip_suffix(IAM_SA_SUFFIX) {
            Some(project_part) => classify_iam_service_account(user, project_part),
            None => (ServiceAccountKind::Other, None),
        },
    }
}

/// `NAME@PROJECT_PART.iam.gserviceaccount.com`.
fn classify_iam_service_account(
    name: &str,
    project_part: &str,
) -> (ServiceAccountKind, Option<Project>) {
    // `gcp-sa-*` domains host per-product service agents (`service-N@gcp-sa-iap...`, `p123-abc@gcp-sa-logging...`);
    // they belong to Google, whatever the username looks like.
    if project_part.starts_with("gcp-sa-") {
        return (ServiceAccountKind::GoogleServiceAgent, None);
    }
    // Google-owned domain-scoped projects (`gae-api-prod.google.com`, `cloud-ml.google.com`, ...) host service
    // agents for Google products; no customer service account lives under `google.com`.
    if project_part.ends_with(".google.com") || project_part == "google.com" {
        return (ServiceAccountKind::GoogleServiceAgent, None);
    }
    if check_plain_project_id(name).is_err() {
        return (ServiceAccountKind::Other, None);
    }
    match project_from_scoped_name(project_part) {
        Some(project) => (ServiceAccountKind::UserManaged, Some(project)),
        None => (ServiceAccountKind::Other, None),
    }
}

/// `proj` -> `Id(proj)`; `proj.example.com` -> `Id(example.com:proj)`. Project IDs contain no dots, so the first
/// dot separates the project from its domain.
fn project_from_scoped_name(name: &str) -> Option<Project> {
    match name.split_once('.') {
        None => check_plain_project_id(name)
            .ok()
            .map(|()| Project::Id(name.to_owned())),
        Some((project, domain)) => {
            check_plain_project_id(project).ok()?;
            check_dns_domain(domain).ok()?;
            Some(Project::Id(format!("{domain}:{project}")))
        }
    }
}

/// `service-123`, `service-org-123`, `service-folder-123`.
fn is_service_agent_username(user: &str) -> bool {
    let Some(rest) = user.strip_prefix("service-") else {
        return false;
    };
    let digits = rest
        .strip_prefix("org-")
        .or_else(|| rest.strip_prefix("folder-"))
        .unwrap_or(rest);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A project number: decimal digits without a leading zero, fitting in a `u64`.
fn parse_project_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why a caller identity could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The ID token has no `email`, or `email_verified` is not JSON `true`. idgate identifies callers by verified
    /// email; without one there is nobody to put on an allowlist.
    #[error(
        "the ID token carries no verified email (mint it with the email included, e.g. IAM includeEmail=true)"
    )]
    NoVerifiedEmail,
    /// The verified email is not a plain ASCII address with one `@`.
    #[error("the ID token's email is not a plain ASCII address")]
    InvalidEmail,
    /// The `X-Appengine-Inbound-Appid` value is not an App Engine app ID.
    #[error("invalid X-Appengine-Inbound-Appid value: {0}")]
    InvalidAppId(&'static str),
}

/// A statement, made in code or configuration, that this service is served by **App Engine's front end**, which is
/// what makes the legacy `X-Appengine-Inbound-Appid` header trustworthy.
///
/// # Read this before constructing one
///
/// App Engine's front end strips the `X-Appengine-Inbound-Appid` header from client requests and sets it only on
/// URLFetch calls from another App Engine app to your `*.appspot.com` URL (`GOOGLE-IDENTITY.md` §3.1, §6.1).
/// **Anywhere else (Cloud Run, GKE, Compute Engine, a custom-domain load balancer, your laptop) nothing strips it,
/// so anyone can send it and claim to be any app.** The header's mere presence proves nothing.
///
/// That is why [`AppEngineApp::from_trusted_header`] demands this marker, and why the only way to get one is the
/// loudly named [`TrustedAppEngineFrontEnd::assume_behind_app_engine`]. Create it only from explicit configuration
/// (`trust_legacy_appengine_header = true`), never because the header showed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedAppEngineFrontEnd {
    _private: (),
}

impl TrustedAppEngineFrontEnd {
    /// Asserts that this service is served by App Engine's front end on its `appspot.com` route, so the
    /// `X-Appengine-Inbound-Appid` header was set by Google and not by the client. See the [type docs](Self):
    /// if this is not true, every caller can impersonate every app.
    pub fn assume_behind_app_engine() -> Self {
        Self { _private: () }
    }
}

/// A service account, identified by a verified Google ID token.
///
/// Cheap to clone (the fields sit behind an `Arc`): the layers hand one to every request of a caller.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccount(Arc<ServiceAccountFields>);

#[derive(Debug, PartialEq, Eq)]
struct ServiceAccountFields {
    email: String,
    subject: String,
    kind: ServiceAccountKind,
    project: Option<Project>,
}

impl ServiceAccount {
    /// `email` must already be normalized (see [`normalize_email`]).
    pub(crate) fn new(email: String, subject: impl Into<String>) -> Self {
        let (kind, project) = classify_service_account(&email);
        Self(Arc::new(ServiceAccountFields {
            email,
            subject: subject.into(),
            kind,
            project,
        }))
    }

    /// The service account's email, lowercased.
    pub fn email(&self) -> &str {
        &self.0.email
    }

    /// The project the email reveals (see [`project_of_service_account`]); `None` for service agents and forms
    /// that do not name a project.
    pub fn project(&self) -> Option<&Project> {
        self.0.project.as_ref()
    }

    /// `sub`: the service account's numeric unique ID (stable across renames).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Which of Google's forms the email has.
    pub fn kind(&self) -> ServiceAccountKind {
        self.0.kind
    }

    /// Whether this is a project's App Engine default service account (`ID@appspot.gserviceaccount.com`).
    pub fn is_app_engine_default(&self) -> bool {
        self.0.kind == ServiceAccountKind::AppEngineDefault
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.0.email)
            .field("subject", &self.0.subject)
            .field("kind", &self.0.kind)
            .field("project", &self.0.project)
            .finish()
    }
}

/// A Google account (not a service account), identified by a verified Google ID token.
///
/// Cheap to clone (the fields sit behind an `Arc`).
#[derive(Clone, PartialEq, Eq)]
pub struct GoogleUser(Arc<GoogleUserFields>);

#[derive(Debug, PartialEq, Eq)]
struct GoogleUserFields {
    email: String,
    subject: String,
    hosted_domain: Option<String>,
}

impl GoogleUser {
    /// `email` must already be normalized.
    pub(crate) fn new(
        email: String,
        subject: impl Into<String>,
        hosted_domain: Option<String>,
    ) -> Self {
        Self(Arc::new(GoogleUserFields {
            email,
            subject: subject.into(),
            hosted_domain,
        }))
    }

    /// The verified email, lowercased.
    pub fn email(&self) -> &str {
        &self.0.email
    }

    /// `sub`: the account's stable unique ID.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// `hd`: the Google Workspace domain, for Workspace accounts.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.0.hosted_domain.as_deref()
    }
}

impl fmt::Debug for GoogleUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleUser")
            .field("email", &self.0.email)
            .field("subject", &self.0.subject)
            .field("hosted_domain", &self.0.hosted_domain)
            .finish()
    }
}

/// An App Engine app, identified by the legacy `X-Appengine-Inbound-Appid` header behind App Engine's front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEngineApp {
    project: Project,
}

impl AppEngineApp {
    /// The app ID of a trusted `X-Appengine-Inbound-Appid` header value.
    ///
    /// The value must be a project ID (`my-app`) or a domain-scoped one (`example.com:my-app`), in ASCII, exactly
    /// as App Engine writes it: lowercase, no surrounding whitespace, no partition prefix.
    ///
    /// ```
    /// use idgate_core::identity::{AppEngineApp, TrustedAppEngineFrontEnd};
    ///
    /// // Only because configuration says this service is served by App Engine's front end:
    /// let trust = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    /// let app = AppEngineApp::from_trusted_header(b"other-app-id", trust).unwrap();
    /// assert_eq!(app.app_id(), "other-app-id");
    /// assert!(AppEngineApp::from_trusted_header(b"*", trust).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`IdentityError::InvalidAppId`] for an empty, non-ASCII or malformed value.
    pub fn from_trusted_header(
        value: &[u8],
        trust: TrustedAppEngineFrontEnd,
    ) -> Result<Self, IdentityError> {
        let _ = trust;
        if value.is_empty() {
            return Err(IdentityError::InvalidAppId("the header is empty"));
        }
        if value.len() > 253 + 1 + 30 {
            return Err(IdentityError::InvalidAppId(
                "the header is too long for an app ID",
            ));
        }
        let Ok(value) = std::str::from_utf8(value) else {
            return Err(IdentityError::InvalidAppId("the header is not ASCII"));
        };
        if !value.is_ascii() {
            return Err(IdentityError::InvalidAppId("the header is not ASCII"));
        }
        check_project_id(value).map_err(IdentityError::InvalidAppId)?;
        Ok(Self {
            project: Project::Id(value.to_owned()),
        })
    }

    /// Test-only and crate-internal constructor; `app_id` must be a valid project ID.
    #[cfg(test)]
    pub(crate) fn new_unchecked(app_id: &str) -> Self {
        Self {
            project: Project::Id(app_id.to_owned()),
        }
    }

    /// The calling app's ID (its project ID).
    pub fn app_id(&self) -> &str {
        match &self.project {
            Project::Id(id) => id,
            // Never constructed: `from_trusted_header` only builds `Project::Id`.
            Project::Number(_) => "",
        }
    }

    /// The calling app's project (always a [`Project::Id`]).
    pub fn project(&self) -> &Project {
        &self.project
    }
}

/// A user (or, for programmatic access, a service account) admitted by Identity-Aware Proxy, identified by a
/// verified IAP assertion.
///
/// Cheap to clone (the fields sit behind an `Arc`).
#[derive(Clone, PartialEq, Eq)]
pub struct IapUser(Arc<IapUserFields>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct IapUserFields {
    email: String,
    subject: String,
    hosted_domain: Option<String>,
    access_levels: Vec<String>,
    external: bool,
    email_verified: bool,
}

impl IapUser {
    /// `email` must already be normalized.
    pub(crate) fn new(
        email: String,
        subject: impl Into<String>,
        hosted_domain: Option<String>,
        access_levels: Vec<String>,
    ) -> Self {
        Self(Arc::new(IapUserFields {
            email,
            subject: subject.into(),
            hosted_domain,
            access_levels,
            external: false,
            email_verified: true,
        }))
    }

    /// The email the assertion names, lowercased. For an external identity whose email is not verified
    /// ([`email_verified`](Self::email_verified) is `false`) this is whatever the user typed at sign-up: identify
    /// by [`subject`](Self::subject) instead. [`Caller::email`] returns `None` for such a user.
    pub fn email(&self) -> &str {
        &self.0.email
    }

    /// Whether [`email`](Self::email) is verified: always for Google accounts; for an external identity (Identity
    /// Platform), only when its identity provider said so. An unverified email matches no allowlist `emails` or
    /// `domains` entry.
    pub fn email_verified(&self) -> bool {
        self.0.email_verified
    }

    /// Whether IAP admitted an external identity (Identity Platform) rather than a Google account.
    pub fn is_external_identity(&self) -> bool {
        self.0.external
    }

    /// `sub`: the user's stable ID, namespaced like `accounts.google.com:1234567890`.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// `hd`: the Google Workspace domain, for Workspace accounts.
    pub fn hosted_domain(&self) -> Option<&str> {
        self.0.hosted_domain.as_deref()
    }

    /// The access levels that applied to the request (empty when none).
    pub fn access_levels(&self) -> &[String] {
        &self.0.access_levels
    }

    /// This user, marked as an external identity whose email is or is not verified.
    pub(crate) fn external(self, email_verified: bool) -> Self {
        let fields = Arc::unwrap_or_clone(self.0);
        Self(Arc::new(IapUserFields {
            external: true,
            email_verified,
            ..fields
        }))
    }
}

impl fmt::Debug for IapUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IapUser")
            .field("email", &self.0.email)
            .field("subject", &self.0.subject)
            .field("hosted_domain", &self.0.hosted_domain)
            .field("access_levels", &self.0.access_levels)
            .field("external", &self.0.external)
            .field("email_verified", &self.0.email_verified)
            .finish()
    }
}

/// The kind of a [`Caller`], without its identity: for logs, metrics labels and the proxy's
/// `X-Idgate-Caller-Kind` header.
///
/// ```
/// use idgate_core::identity::CallerKind;
///
/// assert_eq!(CallerKind::ServiceAccount.as_str(), "service_account");
/// assert_eq!(CallerKind::IapUser.to_string(), "iap_user");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallerKind {
    /// [`Caller::ServiceAccount`].
    ServiceAccount,
    /// [`Caller::User`].
    User,
    /// [`Caller::AppEngineApp`].
    AppEngineApp,
    /// [`Caller::IapUser`].
    IapUser,
}

impl CallerKind {
    /// A short, stable name: `"service_account"`, `"user"`, `"app_engine_app"` or `"iap_user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccount => "service_account",
            Self::User => "user",
            Self::AppEngineApp => "app_engine_app",
            Self::IapUser => "iap_user",
        }
    }
}

impl fmt::Display for CallerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, as established by a verified token or a trusted legacy header.
///
/// `Display` prints the kind and the email (or app ID), never token material:
/// `service_account runner@proj.iam.gserviceaccount.com`, `app_engine_app my-app`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A service account with a verified Google ID token.
    ServiceAccount(ServiceAccount),
    /// A Google account (not a service account) with a verified Google ID token.
    User(GoogleUser),
    /// An App Engine app named by the trusted legacy `X-Appengine-Inbound-Appid` header.
    AppEngineApp(AppEngineApp),
    /// A principal admitted by Identity-Aware Proxy.
    IapUser(IapUser),
}

impl Caller {
    /// The caller named by a verified Google ID token: a [`ServiceAccount`] when the email is on a
    /// `gserviceaccount.com` domain, a [`GoogleUser`] otherwise.
    ///
    /// # Errors
    ///
    /// [`IdentityError::NoVerifiedEmail`] when the token has no email or `email_verified` is not `true`;
    /// [`IdentityError::InvalidEmail`] when the email is not a plain ASCII address.
    ///
    /// Derived once per token per thread and then shared (see `VerifiedIdToken`'s per-thread cache): a caller that
    /// reuses its token does not pay for parsing its email again.
    pub fn from_id_token(token: &VerifiedIdToken) -> Result<Self, IdentityError> {
        token.caller_with(|| {
            let email = token
                .email()
                .filter(|e| !e.is_empty())
                .ok_or(IdentityError::NoVerifiedEmail)?;
            Self::from_verified_email(email, token.subject(), token.hosted_domain())
        })
    }

    /// The shared logic of [`Caller::from_id_token`], on already-verified claims.
    pub(crate) fn from_verified_email(
        email: &str,
        subject: &str,
        hosted_domain: Option<&str>,
    ) -> Result<Self, IdentityError> {
        let email = normalize_email(email).ok_or(IdentityError::InvalidEmail)?;
        let is_service_account = email_domain(&email).is_some_and(is_service_account_domain);
        if is_service_account {
            Ok(Self::ServiceAccount(ServiceAccount::new(email, subject)))
        } else {
            Ok(Self::User(GoogleUser::new(
                email,
                subject,
                hosted_domain.map(str::to_ascii_lowercase),
            )))
        }
    }

    /// The principal named by a verified IAP assertion.
    ///
    /// The email is lowercased (ASCII only). An email IAP signed that is not a plain ASCII address is kept as-is;
    /// it can then match no allowlist entry, since entries are ASCII.
    ///
    /// Derived once per assertion per thread and then shared, like [`Caller::from_id_token`].
    pub fn from_iap(assertion: &VerifiedIapAssertion) -> Self {
        assertion.caller_with(|| {
            let caller = Self::from_verified_iap(
                assertion.email(),
                assertion.subject(),
                assertion.hosted_domain(),
                assertion.access_levels(),
            );
            match caller {
                Self::IapUser(user) if assertion.is_external_identity() => {
                    Self::IapUser(user.external(assertion.email_verified()))
                }
                caller => caller,
            }
        })
    }

    /// The shared logic of [`Caller::from_iap`], on already-verified claims.
    pub(crate) fn from_verified_iap(
        email: &str,
        subject: &str,
        hosted_domain: Option<&str>,
        access_levels: &[String],
    ) -> Self {
        let email = normalize_email(email).unwrap_or_else(|| email.to_owned());
        Self::IapUser(IapUser::new(
            email,
            subject,
            hosted_domain.map(str::to_ascii_lowercase),
            access_levels.to_vec(),
        ))
    }

    /// The kind of caller; [`CallerKind::as_str`] gives its stable name for logs and headers.
    pub fn kind(&self) -> CallerKind {
        match self {
            Self::ServiceAccount(_) => CallerKind::ServiceAccount,
            Self::User(_) => CallerKind::User,
            Self::AppEngineApp(_) => CallerKind::AppEngineApp,
            Self::IapUser(_) => CallerKind::IapUser,
        }
    }

    /// The caller's verified email (lowercased); `None` for an [`AppEngineApp`], and for an IAP external
    /// identity whose email its identity provider did not verify (see [`IapUser::email_verified`]).
    pub fn email(&self) -> Option<&str> {
        match self {
            Self::ServiceAccount(sa) => Some(sa.email()),
            Self::User(user) => Some(user.email()),
            Self::AppEngineApp(_) => None,
            Self::IapUser(user) => user.email_verified().then(|| user.email()),
        }
    }

    /// The caller's project: the service account's (see [`project_of_service_account`]) or the app's.
    /// `None` for users.
    pub fn project(&self) -> Option<&Project> {
        match self {
            Self::ServiceAccount(sa) => sa.project(),
            Self::AppEngineApp(app) => Some(app.project()),
            Self::User(_) | Self::IapUser(_) => None,
        }
    }

    /// The token's `sub`; `None` for an [`AppEngineApp`], which has no token.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::ServiceAccount(sa) => Some(sa.subject()),
            Self::User(user) => Some(user.subject()),
            Self::AppEngineApp(_) => None,
            Self::IapUser(user) => Some(user.subject()),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppEngineApp(app) => write!(f, "{} {}", self.kind(), app.app_id()),
            Self::IapUser(user) if !user.email_verified() => {
                write!(f, "{} {} (email not verified)", self.kind(), user.subject())
            }
            _ => write!(f, "{} {}", self.kind(), self.email().unwrap_or_default()),
        }
    }
}

impl From<ServiceAccount> for Caller {
    fn from(sa: ServiceAccount) -> Self {
        Self::ServiceAccount(sa)
    }
}

impl From<GoogleUser> for Caller {
    fn from(user: GoogleUser) -> Self {
        Self::User(user)
    }
}

impl From<AppEngineApp> for Caller {
    fn from(app: AppEngineApp) -> Self {
        Self::AppEngineApp(app)
    }
}

impl From<IapUser> for Caller {
    fn from(user: IapUser) -> Self {
        Self::IapUser(user)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Callers for unit tests: the verified token types have no public constructor.
    use super::{AppEngineApp, Caller};

    /// A caller from an ID token with this verified email.
    pub(crate) fn id_token_caller(email: &str) -> Caller {
        Caller::from_verified_email(email, "1234567890", None).expect("valid test email")
    }

    /// A user caller from an ID token with this verified email and hosted domain.
    pub(crate) fn user_with_hd(email: &str, hd: &str) -> Caller {
        Caller::from_verified_email(email, "1234567890", Some(hd)).expect("valid test email")
    }

    /// An IAP caller.
    pub(crate) fn iap_caller(email: &str, hd: Option<&str>) -> Caller {
        Caller::from_verified_iap(email, "accounts.google.com:1234567890", hd, &[])
    }

    /// An IAP external identity (Identity Platform) whose email is or is not verified.
    pub(crate) fn iap_external(email: &str, hd: Option<&str>, email_verified: bool) -> Caller {
        match iap_caller(email, hd) {
            Caller::IapUser(user) => Caller::IapUser(user.external(email_verified)),
            other => other,
        }
    }

    /// A legacy-header caller.
    pub(crate) fn app(app_id: &str) -> Caller {
        Caller::AppEngineApp(AppEngineApp::new_unchecked(app_id))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn id(s: &str) -> Option<Project> {
        Some(Project::Id(s.to_owned()))
    }

    #[test]
    fn app_engine_default_service_account() {
        assert_eq!(
            project_of_service_account("my-app@appspot.gserviceaccount.com"),
            id("my-app")
        );
        assert_eq!(
            classify_service_account("my-app@appspot.gserviceaccount.com").0,
            ServiceAccountKind::AppEngineDefault
        );
    }

    #[test]
    fn domain_scoped_app_engine_default_service_account() {
        assert_eq!(
            project_of_service_account("proj-one.example.com@appspot.gserviceaccount.com"),
            id("example.com:proj-one")
        );
        // Split at the FIRST dot: the project ID has no dots, the domain may have several.
        assert_eq!(
            project_of_service_account("proj-one.corp.example.co.uk@appspot.gserviceaccount.com"),
            id("corp.example.co.uk:proj-one")
        );
        // The domain must be a real multi-label domain.
        assert_eq!(
            project_of_service_account("proj-one.com@appspot.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("proj-one.@appspot.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("proj-one..example.com@appspot.gserviceaccount.com"),
            None
        );
    }

    #[test]
    fn user_managed_service_accounts() {
        assert_eq!(
            project_of_service_account("runner@other-proj.iam.gserviceaccount.com"),
            id("other-proj")
        );
        assert_eq!(
            classify_service_account("runner@other-proj.iam.gserviceaccount.com").0,
            ServiceAccountKind::UserManaged
        );
        assert_eq!(
            project_of_service_account("runner@proj-two.example.com.iam.gserviceaccount.com"),
            id("example.com:proj-two")
        );
        // Malformed account names or project IDs map to nothing.
        assert_eq!(
            project_of_service_account("run@other-proj.iam.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("runner@Other_Proj.iam.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("runner@.iam.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("runner@iam.gserviceaccount.com"),
            None
        );
    }

    #[test]
    fn compute_default_service_account() {
        assert_eq!(
            project_of_service_account("123456789012-compute@developer.gserviceaccount.com"),
            Some(Project::Number(123_456_789_012))
        );
        for bad in [
            "-compute@developer.gserviceaccount.com",
            "0123-compute@developer.gserviceaccount.com",
            "12a4-compute@developer.gserviceaccount.com",
            "1234@developer.gserviceaccount.com",
            "1234-computer@developer.gserviceaccount.com",
            "99999999999999999999999-compute@developer.gserviceaccount.com",
        ] {
            assert_eq!(project_of_service_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn upper_case_is_compared_case_insensitively() {
        assert_eq!(
            project_of_service_account("My-App@AppSpot.GServiceAccount.COM"),
            id("my-app")
        );
        assert_eq!(
            project_of_service_account("RUNNER@OTHER-PROJ.IAM.GSERVICEACCOUNT.COM"),
            id("other-proj")
        );
        assert_eq!(
            project_of_service_account("42-COMPUTE@developer.gserviceaccount.com"),
            Some(Project::Number(42))
        );
    }

    #[test]
    fn google_service_agents_never_map() {
        for agent in [
            "service-123456789012@gcp-sa-iap.iam.gserviceaccount.com",
            "service-123456789012@serverless-robot-prod.iam.gserviceaccount.com",
            "service-123456789012@container-engine-robot.iam.gserviceaccount.com",
            "service-123456789012@compute-system.iam.gserviceaccount.com",
            "service-org-123456@gcp-sa-ktd-hpsa.iam.gserviceaccount.com",
            "service-folder-123456@gcp-sa-logging.iam.gserviceaccount.com",
            "p123456789012-abcdef@gcp-sa-logging.iam.gserviceaccount.com",
            "service-123456789012@gae-api-prod.google.com.iam.gserviceaccount.com",
            "runner-robot@cloud-ml.google.com.iam.gserviceaccount.com",
            "123456789012@cloudservices.gserviceaccount.com",
            "service-123456789012@appspot.gserviceaccount.com",
        ] {
            assert_eq!(project_of_service_account(agent), None, "{agent}");
            assert_eq!(
                classify_service_account(agent).0,
                ServiceAccountKind::GoogleServiceAgent,
                "{agent}"
            );
        }
        // A user-managed account merely *named* like "service-..." is still a project's account.
        assert_eq!(
            project_of_service_account("service-runner@my-proj.iam.gserviceaccount.com"),
            id("my-proj")
        );
    }

    #[test]
    fn look_alike_domains_never_map() {
        for bad in [
            "x-app-id@appspot.gserviceaccount.com.evil.com",
            "x-app-id@evil-appspot.gserviceaccount.com",
            "x-app-id@evilappspot.gserviceaccount.com",
            "x-app-id@appspot.gserviceaccount.co",
            "x-app-id@appspot.gserviceaccount.com.",
            "x-app-id@sub.appspot.gserviceaccount.com",
            "runner@my-proj.iam.gserviceaccount.com.evil.com",
            "runner@my-proj.iamgserviceaccount.com",
            "123-compute@developer.gserviceaccount.com.evil.com",
            "my-app@cloudbuild.gserviceaccount.com",
            "my-app@gserviceaccount.com",
        ] {
            assert_eq!(project_of_service_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn unicode_look_alikes_never_map() {
        for bad in [
            // Cyrillic "а" (U+0430) in appspot.
            "my-app@\u{0430}ppspot.gserviceaccount.com",
            // Kelvin sign, which Unicode lowercasing would turn into "k".
            "my-app@appspot.gserviceaccount.com\u{212A}",
            "my-\u{212A}app@appspot.gserviceaccount.com",
            // Fullwidth commercial at.
            "my-app\u{FF20}appspot.gserviceaccount.com",
            // Zero-width space.
            "my-app@appspot.gservice\u{200B}account.com",
        ] {
            assert_eq!(project_of_service_account(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn two_ats_use_the_last_and_never_map() {
        assert_eq!(
            project_of_service_account("a@b-project@appspot.gserviceaccount.com"),
            None
        );
        assert_eq!(
            project_of_service_account("my-app@appspot.gserviceaccount.com@evil.com"),
            None
        );
        assert_eq!(
            project_of_service_account("@appspot.gserviceaccount.com"),
            None
        );
        assert_eq!(project_of_service_account("my-app@"), None);
        assert_eq!(project_of_service_account("my-app"), None);
        assert_eq!(project_of_service_account(""), None);
        assert_eq!(
            project_of_service_account(" my-app@appspot.gserviceaccount.com"),
            None
        );
    }

    #[test]
    fn project_id_syntax() {
        for ok in [
            "my-app",
            "abcdef",
            "a12345",
            "a-----b",
            "abcdefghijklmnopqrstuvwxyz1234",
            "example.com:my-app",
        ] {
            assert!(is_valid_project_id(ok), "{ok}");
        }
        for bad in [
            "",
            "abcde",
            "abcdefghijklmnopqrstuvwxyz12345",
            "1abcdef",
            "-abcdef",
            "abcdef-",
            "My-App",
            "my_app",
            "my.app.x",
            "*",
            "s~my-app",
            "example:my-app",
            ":my-app",
            "example.com:",
            "Example.com:my-app",
            "example.com:my",
        ] {
            assert!(!is_valid_project_id(bad), "{bad}");
        }
    }

    #[test]
    fn legacy_header() {
        let trust = TrustedAppEngineFrontEnd::assume_behind_app_engine();
        let app = AppEngineApp::from_trusted_header(b"other-app-id", trust).unwrap();
        assert_eq!(app.app_id(), "other-app-id");
        assert_eq!(app.project(), &Project::Id("other-app-id".into()));
        let scoped = AppEngineApp::from_trusted_header(b"example.com:other-app", trust).unwrap();
        assert_eq!(scoped.app_id(), "example.com:other-app");
        for bad in [
            &b""[..],
            b"*",
            b"Other-App-Id",
            b" other-app-id",
            b"other-app-id ",
            b"s~other-app-id",
            b"other-app-id\r\nX-Evil: 1",
            b"\xff\xfe",
            "\u{0430}pp-app-id".as_bytes(),
            b"other-app-id,second-app",
            &[b'a'; 400][..],
        ] {
            let err = AppEngineApp::from_trusted_header(bad, trust).unwrap_err();
            assert!(matches!(err, IdentityError::InvalidAppId(_)), "{bad:?}");
        }
    }

    #[test]
    fn callers_from_verified_claims() {
        let sa = id_token_caller("Runner@Other-Proj.iam.gserviceaccount.com");
        assert_eq!(sa.kind(), CallerKind::ServiceAccount);
        assert_eq!(
            sa.email(),
            Some("runner@other-proj.iam.gserviceaccount.com")
        );
        assert_eq!(sa.project(), Some(&Project::Id("other-proj".into())));
        assert_eq!(sa.subject(), Some("1234567890"));
        assert_eq!(
            sa.to_string(),
            "service_account runner@other-proj.iam.gserviceaccount.com"
        );
        let Caller::ServiceAccount(inner) = &sa else {
            panic!("not a service account")
        };
        assert_eq!(inner.kind(), ServiceAccountKind::UserManaged);
        assert!(!inner.is_app_engine_default());

        let agent = id_token_caller("service-42@gcp-sa-iap.iam.gserviceaccount.com");
        assert_eq!(agent.kind(), CallerKind::ServiceAccount);
        assert_eq!(agent.project(), None);

        let user = user_with_hd("Alice@Example.com", "Example.com");
        assert_eq!(user.kind(), CallerKind::User);
        assert_eq!(user.email(), Some("alice@example.com"));
        assert_eq!(user.project(), None);
        let Caller::User(inner) = &user else {
            panic!("not a user")
        };
        assert_eq!(inner.hosted_domain(), Some("example.com"));
        assert_eq!(user.to_string(), "user alice@example.com");

        // A look-alike of a service-account domain is a user, and maps to no project.
        let fake = id_token_caller("my-app@appspot.gserviceaccount.com.evil.com");
        assert_eq!(fake.kind(), CallerKind::User);
        assert_eq!(fake.project(), None);

        let app = app("my-app-id");
        assert_eq!(app.kind(), CallerKind::AppEngineApp);
        assert_eq!(app.email(), None);
        assert_eq!(app.subject(), None);
        assert_eq!(app.project(), Some(&Project::Id("my-app-id".into())));
        assert_eq!(app.to_string(), "app_engine_app my-app-id");

        let iap = iap_caller("Bob@Example.com", Some("example.com"));
        assert_eq!(iap.kind(), CallerKind::IapUser);
        assert_eq!(iap.email(), Some("bob@example.com"));
        assert_eq!(iap.to_string(), "iap_user bob@example.com");
    }

    /// `from_id_token` and `from_iap` on tokens that really went through the verifiers (minted by the emulator).
    #[tokio::test]
    async fn callers_from_verified_tokens() {
        use std::sync::Arc;

        use crate::clock::{Clock as _, ManualClock};
        use crate::verify::{IapVerifier, OidcVerifier};
        use idgate_emulator::{Emulator, TokenSpec};

        const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";
        let emulator = Emulator::builder()
            .project_id("my-project")
            .project_number(123_456_789)
            .start()
            .await
            .unwrap();
        let clock = ManualClock::starting_now();
        let now = clock.unix_seconds();
        // Email is not required by this verifier, so tokens without a verified email reach `from_id_token`.
        let oidc = OidcVerifier::builder()
            .audience(AUDIENCE)
            .clock(Arc::new(clock.clone()))
            .keys_url(emulator.oidc_jwks_url())
            .require_verified_email(false)
            .build()
            .unwrap();
        let verify = |spec: TokenSpec| {
            let token = emulator.mint(&spec.audience(AUDIENCE).issued_at(now));
            let oidc = oidc.clone();
            async move { oidc.verify(&token).await.unwrap() }
        };

        let sa = verify(TokenSpec::service_account(
            "Runner@Other-Proj.iam.gserviceaccount.com",
        ))
        .await;
        let caller = Caller::from_id_token(&sa).unwrap();
        assert_eq!(caller.kind().as_str(), "service_account");
        assert_eq!(
            caller.email(),
            Some("runner@other-proj.iam.gserviceaccount.com")
        );
        assert_eq!(caller.project(), Some(&Project::Id("other-proj".into())));
        assert_eq!(caller.subject(), Some(sa.subject()));

        let app_sa = verify(TokenSpec::service_account(
            "my-project@appspot.gserviceaccount.com",
        ))
        .await;
        let Caller::ServiceAccount(app_sa) = Caller::from_id_token(&app_sa).unwrap() else {
            panic!("not an SA")
        };
        assert!(app_sa.is_app_engine_default());

        let user =
            verify(TokenSpec::service_account("Alice@Example.com").hosted_domain("example.com"))
                .await;
        let Caller::User(user) = Caller::from_id_token(&user).unwrap() else {
            panic!("not a user")
        };
        assert_eq!(
            (user.email(), user.hosted_domain()),
            ("alice@example.com", Some("example.com"))
        );

        for spec in [
            TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
                .email_verified(false),
            TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
                .without_claim("email_verified"),
            TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
                .without_claim("email"),
        ] {
            let verified = verify(spec).await;
            assert_eq!(
                Caller::from_id_token(&verified).unwrap_err(),
                IdentityError::NoVerifiedEmail
            );
        }

        let iap = IapVerifier::builder()
            .audience(emulator.iap_audience_app_engine())
            .clock(Arc::new(clock.clone()))
            .keys_url(emulator.iap_jwks_url())
            .build()
            .unwrap();
        let assertion = emulator.mint(
            &TokenSpec::iap_user("Bob@Example.com")
                .hosted_domain("example.com")
                .access_levels(["accessPolicies/1/accessLevels/corp"])
                .issued_at(now),
        );
        let verified = iap.verify(&assertion).await.unwrap();
        let caller = Caller::from_iap(&verified);
        assert_eq!(caller.to_string(), "iap_user bob@example.com");
        let Caller::IapUser(user) = caller else {
            panic!("not an IAP user")
        };
        assert_eq!(user.subject(), verified.subject());
        assert_eq!(user.hosted_domain(), Some("example.com"));
        assert_eq!(user.access_levels(), ["accessPolicies/1/accessLevels/corp"]);
        emulator.shutdown().await;
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "a\u{0430}@example.com",
        ] {
            assert_eq!(
                Caller::from_verified_email(bad, "1", None).unwrap_err(),
                IdentityError::InvalidEmail,
                "{bad:?}"
            );
        }
        assert!(Caller::from_verified_email("a@b@example.com", "1", None).is_err());
    }
}
