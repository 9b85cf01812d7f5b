//! Who is calling: a [`Caller`] derived from a verified token or from a trusted legacy header.
//!
//! Every caller type here has private fields and no public constructor that takes raw claims. A [`Caller`] can
//! only come from:
//!
//! - [`Caller::from_id_token`]: a [`VerifiedIdToken`](crate::verify::VerifiedIdToken) (Google-signed OIDC ID token) with a verified email;
//! - [`Caller::from_iap`]: a [`VerifiedIapAssertion`](crate::verify::VerifiedIapAssertion) (Identity-Aware Proxy's signed header);
//! - [`Caller::from_session`]: a [`SessionUser`] that a server-side sign-in session made from a verified ID token;
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

mod app_engine;
mod caller;
mod email;
mod error;
mod project;
mod service_account;
mod session;
#[cfg(test)]
mod tests;
mod user;

pub use app_engine::{AppEngineApp, TrustedAppEngineFrontEnd};
pub use caller::{Caller, CallerKind};
pub use error::IdentityError;
pub use project::{Project, is_valid_project_id};
pub use service_account::{ServiceAccount, ServiceAccountKind, project_of_service_account};
pub use session::SessionUser;
pub use user::{GoogleUser, IapUser};

// Shared inside the crate (the allowlist validates entries with the same rules).
pub(crate) use email::{email_domain, is_service_account_domain, normalize_email, split_email};
pub(crate) use project::{check_dns_domain, check_plain_project_id, check_project_id};
pub(crate) use service_account::SA_ROOT_DOMAIN;

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
