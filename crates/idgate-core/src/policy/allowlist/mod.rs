//! The allowlist: who, among verified callers, may call.

mod decision;
mod entries;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

pub use decision::{AllowReason, Decision, DenyReason};
pub use entries::{AllowlistError, ListKind};
pub(crate) use entries::{
    BadShape, check_shape, parse_hosted_domain, parse_project_id, parse_service_account,
    parse_user_domain, parse_user_email,
};

use crate::identity::{Caller, ServiceAccountKind, email_domain};

/// Who, among verified callers, may call: project IDs, service-account emails, user emails, user email domains
/// and Workspace hosted domains. An empty allowlist denies everyone.
///
/// The rules, in the order [`Allowlist::decide`] applies them:
///
/// | caller | admitted when |
/// |---|---|
/// | service account | its email is listed (case-insensitive, exact address) |
/// | service account `ID@appspot.gserviceaccount.com` | project `ID` is listed (the App Engine migration guide's rule) |
/// | service account `NAME@ID.iam.gserviceaccount.com` | project `ID` is listed **and** [`AllowlistBuilder::all_service_accounts_of_listed_projects`] is on |
/// | App Engine app (trusted legacy header) | its app ID is a listed project |
/// | user (ID token or IAP) | its email is listed; or its domain (after the last `@`) is listed; or its `hd` is listed |
///
/// Nothing else admits anyone: the Compute Engine default service account reveals only a project number and must
/// be listed by email; Google's service agents never stand for a project.
///
/// ```
/// use idgate_core::policy::Allowlist;
///
/// let allowlist = Allowlist::builder()
///     .project_id("other-app-id")
///     .service_account("runner@batch-proj.iam.gserviceaccount.com")
///     .build()
///     .unwrap();
/// assert!(!allowlist.is_empty());
///
/// // Misconfiguration is refused when building, not discovered in production.
/// assert!(Allowlist::builder().project_id("*").build().is_err());
/// assert!(Allowlist::builder().user_domain("gserviceaccount.com").build().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    project_ids: BTreeSet<String>,
    service_accounts: BTreeSet<String>,
    user_emails: BTreeSet<String>,
    user_domains: BTreeSet<String>,
    hosted_domains: BTreeSet<String>,
    all_service_accounts_of_listed_projects: bool,
}

impl Allowlist {
    /// An empty allowlist: denies everyone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts building an allowlist; entries are validated by [`AllowlistBuilder::build`].
    pub fn builder() -> AllowlistBuilder {
        AllowlistBuilder::default()
    }

    /// Whether nothing is listed (the allowlist denies everyone).
    pub fn is_empty(&self) -> bool {
        self.project_ids.is_empty()
            && self.service_accounts.is_empty()
            && self.user_emails.is_empty()
            && self.user_domains.is_empty()
            && self.hosted_domains.is_empty()
    }

    /// The listed project IDs.
    pub fn project_ids(&self) -> impl Iterator<Item = &str> {
        self.project_ids.iter().map(String::as_str)
    }

    /// The listed service-account emails (lowercased).
    pub fn service_accounts(&self) -> impl Iterator<Item = &str> {
        self.service_accounts.iter().map(String::as_str)
    }

    /// The listed user emails (lowercased).
    pub fn user_emails(&self) -> impl Iterator<Item = &str> {
        self.user_emails.iter().map(String::as_str)
    }

    /// The listed user email domains (lowercased).
    pub fn user_domains(&self) -> impl Iterator<Item = &str> {
        self.user_domains.iter().map(String::as_str)
    }

    /// The listed Workspace hosted domains (lowercased).
    pub fn hosted_domains(&self) -> impl Iterator<Item = &str> {
        self.hosted_domains.iter().map(String::as_str)
    }

    /// Whether every service account of a listed project is admitted, not only its App Engine default one.
    pub fn admits_all_service_accounts_of_listed_projects(&self) -> bool {
        self.all_service_accounts_of_listed_projects
    }

    /// Decides whether `caller` may call. See the [type docs](Self) for the rules.
    ///
    /// ```
    /// use idgate_core::identity::{AppEngineApp, Caller, TrustedAppEngineFrontEnd};
    /// use idgate_core::policy::{Allowlist, Decision, AllowReason};
    ///
    /// let allowlist = Allowlist::builder().project_id("other-app-id").build().unwrap();
    /// let trust = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    /// let app = AppEngineApp::from_trusted_header(b"other-app-id", trust).unwrap();
    ///
    /// let decision = allowlist.decide(&Caller::AppEngineApp(app));
    /// assert_eq!(decision, Decision::Allow { reason: AllowReason::LegacyAppIdListed });
    /// assert_eq!(decision.to_string(), "allow (legacy_app_id_listed)");
    /// ```
    pub fn decide(&self, caller: &Caller) -> Decision {
        if self.is_empty() {
            return Decision::Deny {
                reason: DenyReason::EmptyAllowlist,
            };
        }
        let reason = match caller {
            Caller::ServiceAccount(sa) => {
                if self.service_accounts.contains(sa.email()) {
                    Some(AllowReason::ServiceAccountListed)
                } else {
                    let listed = sa
                        .project()
                        .and_then(|p| p.id())
                        .is_some_and(|id| self.project_ids.contains(id));
                    match sa.kind() {
                        ServiceAccountKind::AppEngineDefault if listed => {
                            Some(AllowReason::ProjectDefaultServiceAccount)
                        }
                        ServiceAccountKind::UserManaged
                            if listed && self.all_service_accounts_of_listed_projects =>
                        {
                            Some(AllowReason::ProjectServiceAccount)
                        }
                        _ => None,
                    }
                }
            }
            Caller::AppEngineApp(app) => self
                .project_ids
                .contains(app.app_id())
                .then_some(AllowReason::LegacyAppIdListed),
            Caller::User(user) => self.decide_user(user.email(), user.hosted_domain()),
            Caller::IapUser(user) if !user.email_verified() => {
                // An unverified email is only what the user typed: it may match no `emails`/`domains` entry. The
                // signed `hd` claim still counts.
                let by_hd = user
                    .hosted_domain()
                    .is_some_and(|hd| self.hosted_domains.contains(hd))
                    .then_some(AllowReason::HostedDomainListed);
                if by_hd.is_none() && self.decide_user(user.email(), None).is_some() {
                    return Decision::Deny {
                        reason: DenyReason::EmailNotVerified,
                    };
                }
                by_hd
            }
            Caller::IapUser(user) => self.decide_user(user.email(), user.hosted_domain()),
        };
        match reason {
            Some(reason) => Decision::Allow { reason },
            None => Decision::Deny {
                reason: DenyReason::NotListed,
            },
        }
    }

    fn decide_user(&self, email: &str, hosted_domain: Option<&str>) -> Option<AllowReason> {
        if self.user_emails.contains(email) {
            return Some(AllowReason::UserEmailListed);
        }
        if email_domain(email).is_some_and(|d| self.user_domains.contains(d)) {
            return Some(AllowReason::UserDomainListed);
        }
        if hosted_domain.is_some_and(|hd| self.hosted_domains.contains(hd)) {
            return Some(AllowReason::HostedDomainListed);
        }
        None
    }
}

/// A readable summary of who is admitted, for `idgate check-config` and startup logs.
impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nobody (the allowlist is empty)\n");
        }
        for id in &self.project_ids {
            let default_sa = match id.split_once(':') {
                Some((domain, project)) => {
                    format!("{project}.{domain}@appspot.gserviceaccount.com")
                }
                None => format!("{id}@appspot.gserviceaccount.com"),
            };
            write!(
                f,
                "project {id}: its App Engine default service account {default_sa}"
            )?;
            if self.all_service_accounts_of_listed_projects {
                f.write_str(", every NAME@PROJECT.iam.gserviceaccount.com it owns")?;
            }
            f.write_str(", and the legacy app ID header naming it (when trusted)\n")?;
        }
        for sa in &self.service_accounts {
            writeln!(f, "service account {sa}")?;
        }
        for email in &self.user_emails {
            writeln!(f, "user {email}")?;
        }
        for domain in &self.user_domains {
            writeln!(f, "every user whose email ends in @{domain}")?;
        }
        for hd in &self.hosted_domains {
            writeln!(
                f,
                "every user of the Google Workspace domain {hd} (hd claim)"
            )?;
        }
        f.write_str("everyone else is denied\n")
    }
}

/// Builds an [`Allowlist`]; every entry is validated by [`AllowlistBuilder::build`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AllowlistBuilder {
    entries: Vec<(ListKind, String)>,
    all_service_accounts_of_listed_projects: bool,
}

impl AllowlistBuilder {
    /// Admits project `id` (`my-project` or `example.com:my-project`): its App Engine default service account
    /// `ID@appspot.gserviceaccount.com`, and the trusted legacy header naming it.
    pub fn project_id(mut self, id: impl Into<String>) -> Self {
        self.entries.push((ListKind::ProjectIds, id.into()));
        self
    }

    /// Admits the service account with this email (case-insensitive).
    pub fn service_account(mut self, email: impl Into<String>) -> Self {
        self.entries.push((ListKind::ServiceAccounts, email.into()));
        self
    }

    /// Admits the user with this email (case-insensitive).
    pub fn user_email(mut self, email: impl Into<String>) -> Self {
        self.entries.push((ListKind::UserEmails, email.into()));
        self
    }

    /// Admits every user whose email's domain (after the last `@`) is exactly `domain`.
    pub fn user_domain(mut self, domain: impl Into<String>) -> Self {
        self.entries.push((ListKind::UserDomains, domain.into()));
        self
    }

    /// Admits every user whose token's `hd` claim is exactly `domain`.
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.entries.push((ListKind::HostedDomains, domain.into()));
        self
    }

    /// Also admits every user-managed service account (`NAME@ID.iam.gserviceaccount.com`) of a listed project,
    /// not only its App Engine default one. Off by default: any code running as any of the project's service
    /// accounts then gets in.
    pub fn all_service_accounts_of_listed_projects(mut self, yes: bool) -> Self {
        self.all_service_accounts_of_listed_projects = yes;
        self
    }

    /// Validates every entry and builds the allowlist.
    ///
    /// # Errors
    ///
    /// The first invalid entry: empty, a wildcard, a malformed project ID or email, a service account not on a
    /// `gserviceaccount.com` domain, a service-account domain listed as a user domain, ...
    pub fn build(self) -> Result<Allowlist, AllowlistError> {
        let mut allowlist = Allowlist {
            all_service_accounts_of_listed_projects: self.all_service_accounts_of_listed_projects,
            ..Allowlist::default()
        };
        for (list, entry) in &self.entries {
            allowlist.insert(*list, entry)?;
        }
        Ok(allowlist)
    }
}

impl Allowlist {
    /// Validates and inserts one entry.
    pub(crate) fn insert(&mut self, list: ListKind, entry: &str) -> Result<(), AllowlistError> {
        match list {
            ListKind::ProjectIds => self.project_ids.insert(parse_project_id(entry)?),
            ListKind::ServiceAccounts => {
                self.service_accounts.insert(parse_service_account(entry)?)
            }
            ListKind::UserEmails => self.user_emails.insert(parse_user_email(entry)?),
            ListKind::UserDomains => self.user_domains.insert(parse_user_domain(entry)?),
            ListKind::HostedDomains => self.hosted_domains.insert(parse_hosted_domain(entry)?),
        };
        Ok(())
    }

    /// Sets the opt-in flag.
    pub(crate) fn set_all_service_accounts_of_listed_projects(&mut self, yes: bool) {
        self.all_service_accounts_of_listed_projects = yes;
    }
}
