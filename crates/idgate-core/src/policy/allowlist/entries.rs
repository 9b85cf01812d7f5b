//! Allowlist entries: which list each belongs to, how each is validated, and why one is refused.

use std::fmt;

use crate::identity::{
    check_dns_domain, check_project_id, email_domain, is_service_account_domain, normalize_email,
};

/// Which list of an [`Allowlist`](super::Allowlist) an entry belongs to (for error messages).
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

/// What is wrong with the shape of a listed value, whatever the list: the rule every list in the configuration
/// shares (allowlist entries here, and `audiences`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadShape {
    /// Empty or all whitespace.
    Empty,
    /// Contains `*`: there are no wildcards.
    Wildcard,
    /// Leading or trailing whitespace.
    Padded,
}

/// Checks the shape every listed value keeps: not empty, no `*`, no padding (in that order).
pub(crate) fn check_shape(entry: &str) -> Result<(), BadShape> {
    if entry.trim().is_empty() {
        Err(BadShape::Empty)
    } else if entry.contains('*') {
        Err(BadShape::Wildcard)
    } else if entry.trim() != entry {
        Err(BadShape::Padded)
    } else {
        Ok(())
    }
}

/// Rejects empty, wildcard and padded entries.
fn check_common(list: ListKind, entry: &str) -> Result<(), AllowlistError> {
    check_shape(entry).map_err(|bad| match bad {
        BadShape::Empty => AllowlistError::EmptyEntry { list },
        BadShape::Wildcard => AllowlistError::Wildcard {
            list,
            entry: entry.to_owned(),
        },
        BadShape::Padded => AllowlistError::Whitespace {
            list,
            entry: entry.to_owned(),
        },
    })
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
