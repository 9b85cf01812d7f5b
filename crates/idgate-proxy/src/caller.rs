//! The caller headers the upstream reads: `X-Idgate-Caller-*`, and IAP's plain headers rebuilt from a verified
//! assertion.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use idgate_core::identity::Caller;

use crate::{X_IDGATE_CALLER_EMAIL, X_IDGATE_CALLER_KIND, X_IDGATE_CALLER_PROJECT};

/// `X-Goog-Authenticated-User-Email`: IAP's unsigned convenience header, rebuilt from a verified assertion.
static X_GOOG_AUTHENTICATED_USER_EMAIL: HeaderName =
    HeaderName::from_static("x-goog-authenticated-user-email");

pub(crate) fn insert_caller_headers(headers: &mut HeaderMap, caller: &Caller) {
    headers.insert(
        X_IDGATE_CALLER_KIND.clone(),
        HeaderValue::from_static(caller.kind().as_str()),
    );
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
