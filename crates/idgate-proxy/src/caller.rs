//! The caller headers the upstream reads: `X-Idgate-Caller-*`, and IAP's plain headers rebuilt from a verified
//! assertion.

use http::Extensions;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use idgate_core::identity::{Caller, IapUser};
use idgate_server::CredentialHeader;
use idgate_signin::SignedInUser;

use crate::{
    X_IDGATE_CALLER_CREDENTIAL, X_IDGATE_CALLER_EMAIL, X_IDGATE_CALLER_KIND,
    X_IDGATE_CALLER_PROJECT,
};

/// The credential that admitted a request: the value of `X-Idgate-Caller-Credential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdmittedBy {
    /// A Google-signed ID token (`Authorization` or `X-Serverless-Authorization`).
    IdToken,
    /// The trusted legacy `X-Appengine-Inbound-Appid`.
    AppEngineHeader,
    /// An IAP assertion.
    IapAssertion,
    /// A sign-in session.
    Session,
    /// Something else put a caller there (not a gate of this proxy): never the case today.
    Unknown,
}

impl AdmittedBy {
    /// Read from what the gates put in the extensions: the ID-token gate's [`CredentialHeader`] first (it replaced
    /// the caller a session may have put there), then the IAP gate's [`IapUser`], then the sign-in's
    /// [`SignedInUser`].
    pub(crate) fn from_extensions(extensions: &Extensions) -> Self {
        match extensions.get::<CredentialHeader>() {
            Some(CredentialHeader::AppEngineInboundAppid) => Self::AppEngineHeader,
            Some(_) => Self::IdToken,
            None if extensions.get::<IapUser>().is_some() => Self::IapAssertion,
            None if extensions.get::<SignedInUser>().is_some() => Self::Session,
            None => Self::Unknown,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::IdToken => "id_token",
            Self::AppEngineHeader => "app_engine_header",
            Self::IapAssertion => "iap_assertion",
            Self::Session => "session",
            Self::Unknown => "unknown",
        }
    }
}

/// `X-Goog-Authenticated-User-Email`: IAP's unsigned convenience header, rebuilt from a verified assertion.
static X_GOOG_AUTHENTICATED_USER_EMAIL: HeaderName =
    HeaderName::from_static("x-goog-authenticated-user-email");

pub(crate) fn insert_caller_headers(
    headers: &mut HeaderMap,
    caller: &Caller,
    credential: Option<AdmittedBy>,
) {
    headers.insert(
        X_IDGATE_CALLER_KIND.clone(),
        HeaderValue::from_static(caller.kind().as_str()),
    );
    if let Some(credential) = credential {
        headers.insert(
            X_IDGATE_CALLER_CREDENTIAL.clone(),
            HeaderValue::from_static(credential.as_str()),
        );
    }
    if let Some(email) = caller.email().and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(X_IDGATE_CALLER_EMAIL.clone(), email);
    }
    if let Some(project) = caller
        .project()
        .and_then(|p| HeaderValue::from_str(&p.to_string()).ok())
    {
        headers.insert(X_IDGATE_CALLER_PROJECT.clone(), project);
    }
    // For an upstream written against IAP's plain headers: the same values IAP sends, taken from the verified
    // assertion (never from the client).
    // Google accounts only: IAP names external identities in another namespace, and their email may be unverified.
    if let Caller::IapUser(user) = caller
        && !user.is_external_identity()
    {
        let email = HeaderValue::from_str(&format!("accounts.google.com:{}", user.email()));
        let id = HeaderValue::from_str(user.subject());
        if let (Ok(email), Ok(id)) = (email, id) {
            headers.insert(X_GOOG_AUTHENTICATED_USER_EMAIL.clone(), email);
            headers.insert(HeaderName::from_static("x-goog-authenticated-user-id"), id);
        }
    }
}
