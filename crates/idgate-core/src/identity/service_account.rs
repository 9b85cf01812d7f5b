//! Service accounts: Google's email forms, the project each reveals, and the [`ServiceAccount`] caller.

use std::fmt;
use std::sync::Arc;

use super::{Project, check_dns_domain, check_plain_project_id, normalize_email, split_email};

/// The App Engine default service accounts' domain: `PROJECT_ID@appspot.gserviceaccount.com`.
const APPSPOT_SA_DOMAIN: &str = "appspot.gserviceaccount.com";
/// The Compute Engine default service accounts' domain: `NUMBER-compute@developer.gserviceaccount.com`.
const COMPUTE_SA_DOMAIN: &str = "developer.gserviceaccount.com";
/// The suffix of user-managed service accounts' domains: `NAME@PROJECT_ID.iam.gserviceaccount.com`.
const IAM_SA_SUFFIX: &str = ".iam.gserviceaccount.com";
/// The registrable domain of every Google service-account email.
pub(crate) const SA_ROOT_DOMAIN: &str = "gserviceaccount.com";

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
pub(super) fn classify_service_account(email: &str) -> (ServiceAccountKind, Option<Project>) {
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
