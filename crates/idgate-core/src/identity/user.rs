//! People: Google accounts with verified ID tokens, and users admitted by Identity-Aware Proxy.

use std::fmt;
use std::sync::Arc;

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
    /// by [`subject`](Self::subject) instead. [`Caller::email`](super::Caller::email) returns `None` for such a user.
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
