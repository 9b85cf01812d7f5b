//! [`Caller`]: who is calling, whichever way it was established.

use std::fmt;

use super::{
    AppEngineApp, GoogleUser, IapUser, IdentityError, Project, ServiceAccount, email_domain,
    is_service_account_domain, normalize_email,
};
use crate::verify::{VerifiedIapAssertion, VerifiedIdToken};

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

    /// The caller's project: the service account's (see [`project_of_service_account`](super::project_of_service_account)) or the app's.
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
