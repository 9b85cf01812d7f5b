//! App Engine apps named by the legacy `X-Appengine-Inbound-Appid` header, and the marker that makes it trusted.

use super::{IdentityError, Project, check_project_id};

/// A statement, made in code or configuration, that this service is served by **App Engine's front end**, which is
/// what makes the legacy `X-Appengine-Inbound-Appid` header trustworthy.
///
/// # Read this before constructing one
///
/// App Engine's front end strips the `X-Appengine-Inbound-Appid` header from client requests and sets it only on
/// URLFetch calls from another App Engine app to your `*.appspot.com` URL (`GOOGLE-IDENTITY.md` §3.1, §6.1).
/// **Anywhere else (Cloud Run, GKE, Compute Engine, a custom-domain load balancer, your laptop) nothing strips it,
/// so anyone can send it and claim to be any app.** The header's mere presence proves nothing.
///
/// That is why [`AppEngineApp::from_trusted_header`] demands this marker, and why the only way to get one is the
/// loudly named [`TrustedAppEngineFrontEnd::assume_behind_app_engine`]. Create it only from explicit configuration
/// (`trust_legacy_appengine_header = true`), never because the header showed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedAppEngineFrontEnd {
    _private: (),
}

impl TrustedAppEngineFrontEnd {
    /// Asserts that this service is served by App Engine's front end on its `appspot.com` route, so the
    /// `X-Appengine-Inbound-Appid` header was set by Google and not by the client. See the [type docs](Self):
    /// if this is not true, every caller can impersonate every app.
    pub fn assume_behind_app_engine() -> Self {
        Self { _private: () }
    }
}

/// An App Engine app, identified by the legacy `X-Appengine-Inbound-Appid` header behind App Engine's front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEngineApp {
    project: Project,
}

impl AppEngineApp {
    /// The app ID of a trusted `X-Appengine-Inbound-Appid` header value.
    ///
    /// The value must be a project ID (`my-app`) or a domain-scoped one (`example.com:my-app`), in ASCII, exactly
    /// as App Engine writes it: lowercase, no surrounding whitespace, no partition prefix.
    ///
    /// ```
    /// use idgate_core::identity::{AppEngineApp, TrustedAppEngineFrontEnd};
    ///
    /// // Only because configuration says this service is served by App Engine's front end:
    /// let trust = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    /// let app = AppEngineApp::from_trusted_header(b"other-app-id", trust).unwrap();
    /// assert_eq!(app.app_id(), "other-app-id");
    /// assert!(AppEngineApp::from_trusted_header(b"*", trust).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`IdentityError::InvalidAppId`] for an empty, non-ASCII or malformed value.
    pub fn from_trusted_header(
        value: &[u8],
        trust: TrustedAppEngineFrontEnd,
    ) -> Result<Self, IdentityError> {
        let _ = trust;
        if value.is_empty() {
            return Err(IdentityError::InvalidAppId("the header is empty"));
        }
        if value.len() > 253 + 1 + 30 {
            return Err(IdentityError::InvalidAppId(
                "the header is too long for an app ID",
            ));
        }
        let Ok(value) = std::str::from_utf8(value) else {
            return Err(IdentityError::InvalidAppId("the header is not ASCII"));
        };
        if !value.is_ascii() {
            return Err(IdentityError::InvalidAppId("the header is not ASCII"));
        }
        check_project_id(value).map_err(IdentityError::InvalidAppId)?;
        Ok(Self {
            project: Project::Id(value.to_owned()),
        })
    }

    /// Test-only and crate-internal constructor; `app_id` must be a valid project ID.
    #[cfg(test)]
    pub(crate) fn new_unchecked(app_id: &str) -> Self {
        Self {
            project: Project::Id(app_id.to_owned()),
        }
    }

    /// The calling app's ID (its project ID).
    pub fn app_id(&self) -> &str {
        match &self.project {
            Project::Id(id) => id,
            // Never constructed: `from_trusted_header` only builds `Project::Id`.
            Project::Number(_) => "",
        }
    }

    /// The calling app's project (always a [`Project::Id`]).
    pub fn project(&self) -> &Project {
        &self.project
    }
}
