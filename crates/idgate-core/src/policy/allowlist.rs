//! The allowlist: who, among verified callers, may call.

use std::collections::BTreeSet;
use std::fmt;

use crate::identity::{
    Caller, ServiceAccountKind, check_dns_domain, check_project_id, email_domain,
    is_service_account_domain, normalize_email,
};

/// Which list of an [`Allowlist`] an entry belongs to (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListKind {
    /// Project IDs.
    ProjectIds,
    /// Service-account emails.
    ServiceAccounts,
    /// User emails.
    UserEmails,
    /// User email domains.
    UserDomains,
    /// Google Workspace hosted domains (`hd`).
    HostedDomains,
}

impl ListKind {
    /// The list's name as written in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProjectIds => "project_ids",
            Self::ServiceAccounts => "service_accounts",
            Self::UserEmails => "emails",
            Self::UserDomains => "domains",
            Self::HostedDomains => "hosted_domains",
        }
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an allowlist entry was refused. Entries are configuration, not secrets, so errors quote them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowlistError {
    /// An empty (or all-whitespace) entry.
    #[error("empty entry in {list}")]
    EmptyEntry {
        /// The list.
        list: ListKind,
    },
    /// An entry containing `*`. There are no wildcards: one would let every caller in.
    #[error(
        "{entry:?} in {list} is a wildcard; idgate has no wildcards, because one would admit every caller"
    )]
    Wildcard {
        /// The list.
        list: ListKind,
        /// The entry.
        entry: String,
    },
    /// An entry with leading or trailing whitespace.
    #[error("{entry:?} in {list} has leading or trailing whitespace")]
    Whitespace {
        /// The list.
        list: ListKind,
        /// The entry.
        entry: String,
    },
    /// Not a project ID.
    #[error("{entry:?} is not a project ID: {reason}")]
    InvalidProjectId {
        /// The entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not an email on a `gserviceaccount.com` domain.
    #[error(
        "{entry:?} is not a service-account email (NAME@PROJECT_ID.iam.gserviceaccount.com, PROJECT_ID@appspot.gserviceaccount.com, ...)"
    )]
    NotAServiceAccount {
        /// The entry.
        entry: String,
    },
    /// Not a plain ASCII email address with one `@`.
    #[error("{entry:?} is not an email address")]
    InvalidEmail {
        /// The entry.
        entry: String,
    },
    /// Not a domain name.
    #[error("{entry:?} is not a domain: {reason}")]
    InvalidDomain {
        /// The list.
        list: ListKind,
        /// The entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A service-account domain listed as a user domain: it would admit service accounts as users.
    #[error(
        "{entry:?} is a service-account domain; as a user domain it would admit service accounts as users"
    )]
    ServiceAccountDomain {
        /// The entry.
        entry: String,
    },
    /// A consumer domain listed as a hosted domain: consumer accounts carry no `hd`, so it would never match.
    #[error(
        "{entry:?} is a consumer domain; its accounts carry no `hd` claim, so it would never match"
    )]
    ConsumerHostedDomain {
        /// The entry.
        entry: String,
    },
}

impl AllowlistError {
    /// What to write instead, for humans.
    pub fn help(&self) -> String {
        match self {
            Self::EmptyEntry { .. } => "remove the empty string".to_owned(),
            Self::Wildcard { list, .. } => format!("list every allowed entry of {list} explicitly"),
            Self::Whitespace { entry, .. } => format!("write {:?}", entry.trim()),
            Self::InvalidProjectId { entry, .. } => {
                let lower = entry.to_ascii_lowercase();
                if let Some((_, id)) = entry.split_once('~') {
                    format!("write the project ID without the region prefix: {id:?}")
                } else if lower != *entry && check_project_id(&lower).is_ok() {
                    format!("project IDs are lowercase: write {lower:?}")
                } else if entry.contains('@') {
                    "a service-account email belongs in `service_accounts`".to_owned()
                } else {
                    "write the project ID exactly as the console shows it, e.g. \"my-project\" or \
                     \"example.com:my-project\" (a project number is not a project ID)"
                        .to_owned()
                }
            }
            Self::NotAServiceAccount { .. } => "write the service account's full email, e.g. \
                 \"runner@my-project.iam.gserviceaccount.com\"; list people in the IAP `emails` instead"
                .to_owned(),
            Self::InvalidEmail { .. } => "write one full address, e.g. \"alice@example.com\"".to_owned(),
            Self::InvalidDomain { entry, .. } => match entry.strip_prefix('@') {
                Some(domain) => format!("write the domain without `@`: {domain:?}"),
                None if entry.contains('@') => "an address belongs in `emails`".to_owned(),
                None => "write a lowercase domain such as \"example.com\"".to_owned(),
            },
            Self::ServiceAccountDomain { .. } => "list service accounts one by one by email".to_owned(),
            Self::ConsumerHostedDomain { entry } => {
                format!("to admit every {entry} account use `domains = [{entry:?}]`, or list addresses in `emails`")
            }
        }
    }
}

/// Rejects empty, wildcard and padded entries.
fn check_common(list: ListKind, entry: &str) -> Result<(), AllowlistError> {
    if entry.trim().is_empty() {
        return Err(AllowlistError::EmptyEntry { list });
    }
    if entry.contains('*') {
        return Err(AllowlistError::Wildcard {
            list,
            entry: entry.to_owned(),
        });
    }
    if entry.trim() != entry {
        return Err(AllowlistError::Whitespace {
            list,
            entry: entry.to_owned(),
        });
    }
    Ok(())
}

/// A project ID entry, unchanged (project IDs are lowercase; uppercase is an error, not folded).
pub(crate) fn parse_project_id(entry: &str) -> Result<String, AllowlistError> {
    check_common(ListKind::ProjectIds, entry)?;
    check_project_id(entry).map_err(|reason| AllowlistError::InvalidProjectId {
        entry: entry.to_owned(),
        reason,
    })?;
    Ok(entry.to_owned())
}

/// A service-account email entry, lowercased.
pub(crate) fn parse_service_account(entry: &str) -> Result<String, AllowlistError> {
    check_common(ListKind::ServiceAccounts, entry)?;
    let email = normalize_email(entry).ok_or_else(|| AllowlistError::NotAServiceAccount {
        entry: entry.to_owned(),
    })?;
    if !email_domain(&email).is_some_and(is_service_account_domain) {
        return Err(AllowlistError::NotAServiceAccount {
            entry: entry.to_owned(),
        });
    }
    Ok(email)
}

/// A user email entry, lowercased. Service-account emails are allowed (IAP admits them for programmatic access).
pub(crate) fn parse_user_email(entry: &str) -> Result<String, AllowlistError> {
    check_common(ListKind::UserEmails, entry)?;
    normalize_email(entry).ok_or_else(|| AllowlistError::InvalidEmail {
        entry: entry.to_owned(),
    })
}

/// A domain entry, lowercased.
fn parse_domain(list: ListKind, entry: &str) -> Result<String, AllowlistError> {
    check_common(list, entry)?;
    if entry.contains('@') {
        return Err(AllowlistError::InvalidDomain {
            list,
            entry: entry.to_owned(),
            reason: "a domain has no `@`",
        });
    }
    if !entry.is_ascii() {
        return Err(AllowlistError::InvalidDomain {
            list,
            entry: entry.to_owned(),
            reason: "internationalized domains must be written in their ASCII (punycode) form",
        });
    }
    let domain = entry.to_ascii_lowercase();
    check_dns_domain(&domain).map_err(|reason| AllowlistError::InvalidDomain {
        list,
        entry: entry.to_owned(),
        reason,
    })?;
    if is_service_account_domain(&domain) {
        return Err(AllowlistError::ServiceAccountDomain {
            entry: entry.to_owned(),
        });
    }
    Ok(domain)
}

/// A user email domain entry, lowercased.
pub(crate) fn parse_user_domain(entry: &str) -> Result<String, AllowlistError> {
    parse_domain(ListKind::UserDomains, entry)
}

/// A hosted domain entry, lowercased.
pub(crate) fn parse_hosted_domain(entry: &str) -> Result<String, AllowlistError> {
    let domain = parse_domain(ListKind::HostedDomains, entry)?;
    if matches!(domain.as_str(), "gmail.com" | "googlemail.com") {
        return Err(AllowlistError::ConsumerHostedDomain { entry: domain });
    }
    Ok(domain)
}

/// Why a caller was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllowReason {
    /// The service account's email is listed.
    ServiceAccountListed,
    /// The caller is the App Engine default service account (`ID@appspot.gserviceaccount.com`) of a listed project.
    ProjectDefaultServiceAccount,
    /// The caller is a service account of a listed project, and every service account of listed projects is
    /// admitted (`all_service_accounts_of_listed_projects`).
    ProjectServiceAccount,
    /// The trusted legacy `X-Appengine-Inbound-Appid` names a listed project.
    LegacyAppIdListed,
    /// The user's email is listed.
    UserEmailListed,
    /// The user's email domain is listed.
    UserDomainListed,
    /// The user's Workspace hosted domain (`hd`) is listed.
    HostedDomainListed,
}

impl AllowReason {
    /// A stable, machine-readable reason (`"service_account_listed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccountListed => "service_account_listed",
            Self::ProjectDefaultServiceAccount => "project_default_service_account",
            Self::ProjectServiceAccount => "project_service_account",
            Self::LegacyAppIdListed => "legacy_app_id_listed",
            Self::UserEmailListed => "user_email_listed",
            Self::UserDomainListed => "user_domain_listed",
            Self::HostedDomainListed => "hosted_domain_listed",
        }
    }
}

/// Why a caller was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// No rule admits the caller.
    NotListed,
    /// The allowlist is empty: it denies everyone.
    EmptyAllowlist,
    /// An IAP external identity whose email would be listed (by `emails` or `domains`), but whose identity
    /// provider did not verify it: anyone can sign up with any address.
    EmailNotVerified,
}

impl DenyReason {
    /// A stable, machine-readable reason (`"not_listed"`, `"empty_allowlist"`, `"email_not_verified"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotListed => "not_listed",
            Self::EmptyAllowlist => "empty_allowlist",
            Self::EmailNotVerified => "email_not_verified",
        }
    }
}

/// The outcome of [`Allowlist::decide`]. `Display` gives `allow (reason)` / `deny (reason)` for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Decision {
    /// The caller may proceed.
    Allow {
        /// The rule that admitted the caller.
        reason: AllowReason,
    },
    /// The caller may not proceed.
    Deny {
        /// Why.
        reason: DenyReason,
    },
}

impl Decision {
    /// Whether the caller may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// A stable, machine-readable reason for logs and metrics (`"service_account_listed"`, `"not_listed"`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Allow { reason } => reason.as_str(),
            Self::Deny { reason } => reason.as_str(),
        }
    }

    /// `"allow"` or `"deny"`.
    pub fn outcome(&self) -> &'static str {
        if self.is_allowed() { "allow" } else { "deny" }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.outcome(), self.reason())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_support::{
        app, iap_caller, iap_external, id_token_caller, user_with_hd,
    };

    fn allow(reason: AllowReason) -> Decision {
        Decision::Allow { reason }
    }

    const NOT_LISTED: Decision = Decision::Deny {
        reason: DenyReason::NotListed,
    };

    #[test]
    fn an_unverified_external_email_matches_no_email_or_domain_entry() {
        let list = Allowlist::builder()
            .user_email("alice@example.com")
            .user_domain("corp.example")
            .hosted_domain("workspace.example")
            .build()
            .unwrap();
        let deny = |reason| Decision::Deny { reason };
        for (caller, want) in [
            (
                iap_external("alice@example.com", None, true),
                allow(AllowReason::UserEmailListed),
            ),
            (
                iap_external("ceo@corp.example", None, true),
                allow(AllowReason::UserDomainListed),
            ),
            (
                iap_external("alice@example.com", None, false),
                deny(DenyReason::EmailNotVerified),
            ),
            (
                iap_external("ceo@corp.example", None, false),
                deny(DenyReason::EmailNotVerified),
            ),
            (
                iap_external("x@other.example", None, false),
                deny(DenyReason::NotListed),
            ),
            // The signed `hd` claim is not the user's to type: it still counts.
            (
                iap_external("bob@workspace.example", Some("workspace.example"), false),
                allow(AllowReason::HostedDomainListed),
            ),
            // Google accounts are verified.
            (
                iap_caller("alice@example.com", None),
                allow(AllowReason::UserEmailListed),
            ),
        ] {
            assert_eq!(list.decide(&caller), want, "{caller:?}");
        }
        let unverified = iap_external("alice@example.com", None, false);
        assert_eq!(unverified.email(), None);
        assert_eq!(
            unverified.to_string(),
            "iap_user accounts.google.com:1234567890 (email not verified)"
        );
        assert_eq!(DenyReason::EmailNotVerified.as_str(), "email_not_verified");
    }

    #[test]
    fn empty_allowlist_denies_everyone() {
        let empty = Allowlist::new();
        assert!(empty.is_empty());
        for caller in [
            id_token_caller("my-app@appspot.gserviceaccount.com"),
            id_token_caller("alice@example.com"),
            iap_caller("alice@example.com", Some("example.com")),
            app("my-app-id"),
        ] {
            let decision = empty.decide(&caller);
            assert_eq!(
                decision,
                Decision::Deny {
                    reason: DenyReason::EmptyAllowlist
                }
            );
            assert!(!decision.is_allowed());
            assert_eq!(decision.reason(), "empty_allowlist");
        }
        // The opt-in flag alone lists nobody.
        let flag_only = Allowlist::builder()
            .all_service_accounts_of_listed_projects(true)
            .build()
            .unwrap();
        assert!(flag_only.is_empty());
        assert!(
            !flag_only
                .decide(&id_token_caller("runner@my-proj.iam.gserviceaccount.com"))
                .is_allowed()
        );
    }

    #[test]
    fn listed_service_account() {
        let list = Allowlist::builder()
            .service_account("Runner@Other-Proj.iam.gserviceaccount.com")
            .build()
            .unwrap();
        let decision = list.decide(&id_token_caller(
            "runner@other-proj.iam.gserviceaccount.com",
        ));
        assert_eq!(decision, allow(AllowReason::ServiceAccountListed));
        assert_eq!(decision.reason(), "service_account_listed");
        assert_eq!(
            list.decide(&id_token_caller(
                "RUNNER@other-proj.iam.gserviceaccount.com"
            )),
            decision
        );
        assert_eq!(
            list.decide(&id_token_caller(
                "runner2@other-proj.iam.gserviceaccount.com"
            )),
            NOT_LISTED
        );
        // A listed service-account email admits no user or IAP user of the same name... except it is the same
        // address, which a user token cannot carry; and never an App Engine app.
        assert_eq!(list.decide(&app("other-proj")), NOT_LISTED);
        // The Compute default service account is admitted only by email.
        let compute = Allowlist::builder()
            .service_account("123-compute@developer.gserviceaccount.com")
            .build()
            .unwrap();
        assert_eq!(
            compute.decide(&id_token_caller(
                "123-compute@developer.gserviceaccount.com"
            )),
            allow(AllowReason::ServiceAccountListed)
        );
    }

    #[test]
    fn project_admits_its_app_engine_default_service_account_only() {
        let list = Allowlist::builder()
            .project_id("other-app-id")
            .build()
            .unwrap();
        let decision = list.decide(&id_token_caller("other-app-id@appspot.gserviceaccount.com"));
        assert_eq!(decision, allow(AllowReason::ProjectDefaultServiceAccount));
        assert_eq!(decision.reason(), "project_default_service_account");
        // Not the project's other service accounts without the opt-in.
        assert_eq!(
            list.decide(&id_token_caller(
                "runner@other-app-id.iam.gserviceaccount.com"
            )),
            NOT_LISTED
        );
        // Not another project's, nor look-alikes, nor service agents.
        for email in [
            "another-app@appspot.gserviceaccount.com",
            "other-app-id@appspot.gserviceaccount.com.evil.com",
            "other-app-id@evil-appspot.gserviceaccount.com",
            "service-123@gcp-sa-iap.iam.gserviceaccount.com",
            "other-app-id@gmail.com",
        ] {
            assert_eq!(list.decide(&id_token_caller(email)), NOT_LISTED, "{email}");
        }
        // A user (IAP or ID token) is never admitted by a project.
        assert_eq!(
            list.decide(&iap_caller(
                "other-app-id@appspot.gserviceaccount.com",
                None
            )),
            NOT_LISTED
        );
    }

    #[test]
    fn domain_scoped_project() {
        let list = Allowlist::builder()
            .project_id("example.com:proj-one")
            .build()
            .unwrap();
        assert_eq!(
            list.decide(&id_token_caller(
                "proj-one.example.com@appspot.gserviceaccount.com"
            )),
            allow(AllowReason::ProjectDefaultServiceAccount)
        );
        assert_eq!(
            list.decide(&app("example.com:proj-one")),
            allow(AllowReason::LegacyAppIdListed)
        );
        assert_eq!(
            list.decide(&id_token_caller("proj-one@appspot.gserviceaccount.com")),
            NOT_LISTED
        );
    }

    #[test]
    fn all_service_accounts_of_listed_projects_is_an_opt_in() {
        let list = Allowlist::builder()
            .project_id("other-proj")
            .all_service_accounts_of_listed_projects(true)
            .build()
            .unwrap();
        assert!(list.admits_all_service_accounts_of_listed_projects());
        let decision = list.decide(&id_token_caller(
            "runner@other-proj.iam.gserviceaccount.com",
        ));
        assert_eq!(decision, allow(AllowReason::ProjectServiceAccount));
        assert_eq!(decision.reason(), "project_service_account");
        assert_eq!(
            list.decide(&id_token_caller("other-proj@appspot.gserviceaccount.com")),
            allow(AllowReason::ProjectDefaultServiceAccount)
        );
        // Still never service agents that live under the project's number, nor other projects.
        assert_eq!(
            list.decide(&id_token_caller(
                "service-42@gcp-sa-iap.iam.gserviceaccount.com"
            )),
            NOT_LISTED
        );
        assert_eq!(
            list.decide(&id_token_caller(
                "runner@third-proj.iam.gserviceaccount.com"
            )),
            NOT_LISTED
        );
        assert_eq!(
            list.decide(&id_token_caller(
                "runner@other-proj.iam.gserviceaccount.com.evil.com"
            )),
            NOT_LISTED
        );
    }

    #[test]
    fn legacy_app_id() {
        let list = Allowlist::builder()
            .project_id("other-app-id")
            .build()
            .unwrap();
        let decision = list.decide(&app("other-app-id"));
        assert_eq!(decision, allow(AllowReason::LegacyAppIdListed));
        assert_eq!(decision.reason(), "legacy_app_id_listed");
        assert_eq!(list.decide(&app("another-app")), NOT_LISTED);
        // A listed service account does not admit an app of the same name.
        let by_email = Allowlist::builder()
            .service_account("other-app-id@appspot.gserviceaccount.com")
            .build()
            .unwrap();
        assert_eq!(by_email.decide(&app("other-app-id")), NOT_LISTED);
    }

    #[test]
    fn users() {
        let list = Allowlist::builder()
            .user_email("Alice@Example.com")
            .user_domain("Partner.example")
            .hosted_domain("corp.example")
            .build()
            .unwrap();
        for caller in [
            id_token_caller("alice@example.com"),
            iap_caller("ALICE@example.com", None),
        ] {
            let decision = list.decide(&caller);
            assert_eq!(decision, allow(AllowReason::UserEmailListed));
            assert_eq!(decision.reason(), "user_email_listed");
        }
        let decision = list.decide(&iap_caller("bob@partner.example", None));
        assert_eq!(decision, allow(AllowReason::UserDomainListed));
        assert_eq!(decision.reason(), "user_domain_listed");
        let decision = list.decide(&iap_caller("carol@other.example", Some("corp.example")));
        assert_eq!(decision, allow(AllowReason::HostedDomainListed));
        assert_eq!(decision.reason(), "hosted_domain_listed");
        assert_eq!(
            list.decide(&user_with_hd("dave@x.example", "Corp.Example")),
            allow(AllowReason::HostedDomainListed)
        );

        // Domains compare exactly on the part after the last `@`: no subdomains, no suffix tricks.
        for email in [
            "bob@sub.partner.example",
            "bob@evilpartner.example",
            "bob@partner.example.evil.com",
            "alice@example.com.evil.com",
            "alice2@example.com",
        ] {
            assert_eq!(list.decide(&iap_caller(email, None)), NOT_LISTED, "{email}");
        }
        // An address with two `@`s or non-ASCII characters is never judged by its domain.
        assert_eq!(
            list.decide(&iap_caller("bob@x@partner.example", None)),
            NOT_LISTED
        );
        assert_eq!(
            list.decide(&iap_caller("b\u{f6}b@partner.example", None)),
            NOT_LISTED
        );
        // hd compares exactly too.
        assert_eq!(
            list.decide(&iap_caller("x@y.example", Some("sub.corp.example"))),
            NOT_LISTED
        );
        // A service account whose address is on a listed user domain is impossible (domains are validated), and a
        // service account is never admitted by the user rules.
        assert_eq!(
            list.decide(&id_token_caller("alice@appspot.gserviceaccount.com")),
            NOT_LISTED
        );
        assert_eq!(list.decide(&app("my-app-id")), NOT_LISTED);
    }

    #[test]
    fn entries_are_validated() {
        let err = |b: AllowlistBuilder| b.build().unwrap_err();
        assert_eq!(
            err(Allowlist::builder().project_id("")),
            AllowlistError::EmptyEntry {
                list: ListKind::ProjectIds
            }
        );
        assert!(matches!(
            err(Allowlist::builder().project_id("*")),
            AllowlistError::Wildcard { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().service_account("*@appspot.gserviceaccount.com")),
            AllowlistError::Wildcard { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().user_domain("*.example.com")),
            AllowlistError::Wildcard { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().project_id(" my-app")),
            AllowlistError::Whitespace { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().project_id("My-App")),
            AllowlistError::InvalidProjectId { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().service_account("alice@example.com")),
            AllowlistError::NotAServiceAccount { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().service_account("x@appspot.gserviceaccount.com.evil.com")),
            AllowlistError::NotAServiceAccount { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().user_email("alice")),
            AllowlistError::InvalidEmail { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().user_email("a@b@c.example")),
            AllowlistError::InvalidEmail { .. }
        ));
        for sa_domain in [
            "gserviceaccount.com",
            "appspot.gserviceaccount.com",
            "my-proj.iam.gserviceaccount.com",
        ] {
            assert!(matches!(
                err(Allowlist::builder().user_domain(sa_domain)),
                AllowlistError::ServiceAccountDomain { .. }
            ));
            assert!(matches!(
                err(Allowlist::builder().hosted_domain(sa_domain)),
                AllowlistError::ServiceAccountDomain { .. }
            ));
        }
        assert!(matches!(
            err(Allowlist::builder().user_domain("@example.com")),
            AllowlistError::InvalidDomain { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().user_domain("localhost")),
            AllowlistError::InvalidDomain { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().user_domain("ex\u{0430}mple.com")),
            AllowlistError::InvalidDomain { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().hosted_domain("gmail.com")),
            AllowlistError::ConsumerHostedDomain { .. }
        ));
        // Help says what to write instead.
        assert!(
            err(Allowlist::builder().project_id("My-App"))
                .help()
                .contains("\"my-app\"")
        );
        assert!(
            err(Allowlist::builder().project_id("s~my-app"))
                .help()
                .contains("\"my-app\"")
        );
        assert!(
            err(Allowlist::builder().user_domain("@example.com"))
                .help()
                .contains("\"example.com\"")
        );
    }

    #[test]
    fn decision_display() {
        assert_eq!(
            allow(AllowReason::UserDomainListed).to_string(),
            "allow (user_domain_listed)"
        );
        assert_eq!(NOT_LISTED.to_string(), "deny (not_listed)");
        assert_eq!(NOT_LISTED.outcome(), "deny");
    }

    #[test]
    fn summary() {
        let list = Allowlist::builder()
            .project_id("example.com:proj-one")
            .service_account("runner@other-proj.iam.gserviceaccount.com")
            .build()
            .unwrap();
        let text = list.to_string();
        assert!(
            text.contains("proj-one.example.com@appspot.gserviceaccount.com"),
            "{text}"
        );
        assert!(
            text.contains("service account runner@other-proj.iam.gserviceaccount.com"),
            "{text}"
        );
        assert!(text.ends_with("everyone else is denied\n"), "{text}");
        assert_eq!(
            Allowlist::new().to_string(),
            "nobody (the allowlist is empty)\n"
        );
    }
}
