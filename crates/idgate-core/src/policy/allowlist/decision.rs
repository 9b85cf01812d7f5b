//! What [`Allowlist::decide`](super::Allowlist::decide) answers, and why.

use std::fmt;

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
    /// No allowlist was configured at all. idgate never reads "no allowlist" as "everyone": a layer built without
    /// one denies every caller. [`Allowlist::decide`](super::Allowlist::decide) never answers this; the layers of
    /// `idgate-server` do.
    NoAllowlistConfigured,
}

impl DenyReason {
    /// A stable, machine-readable reason (`"not_listed"`, `"empty_allowlist"`, `"email_not_verified"`,
    /// `"no_allowlist_configured"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotListed => "not_listed",
            Self::EmptyAllowlist => "empty_allowlist",
            Self::EmailNotVerified => "email_not_verified",
            Self::NoAllowlistConfigured => "no_allowlist_configured",
        }
    }
}

/// The outcome of [`Allowlist::decide`](super::Allowlist::decide). `Display` gives `allow (reason)` / `deny (reason)` for logs.
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
