//! [`AttachConfig`]: how the adapters ([`IdTokenMiddleware`](crate::IdTokenMiddleware) for reqwest,
//! [`AddIdTokenLayer`](crate::AddIdTokenLayer) for tower) attach a token: which audience, which header, and what
//! to do with a request that already has one. Both hold one and take the same setters.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::TokenHeader;
use crate::audience::{Audience, AudiencePolicy};
use crate::error::AttachError;
use crate::scopes::Scopes;
use crate::source::AccessToken;

/// How an adapter attaches ID tokens; the configuration [`IdTokenMiddleware`](crate::IdTokenMiddleware) and
/// [`AddIdTokenLayer`](crate::AddIdTokenLayer) share.
///
/// The audience of a request is, in order: an [`Audience`] in the request's extensions, a per-host override
/// ([`audience_for_host`](Self::audience_for_host)), the fixed audience ([`audience`](Self::audience)), else the
/// request URL's origin (`scheme://host[:port]`, what Cloud Run expects by default).
///
/// Each adapter has the same setters; build one of these to give two adapters the same configuration.
///
/// ```
/// use idgate_client::{AddIdTokenLayer, AttachConfig, IdTokenSourceExt, StaticToken, TokenHeader};
/// use idgate_core::token::IdToken;
///
/// let config = AttachConfig::new()
///     .audience_for_host("api.example.com", "https://api.example.com/custom-audience")
///     .header(TokenHeader::XServerlessAuthorization);
/// let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln").unwrap();
/// let layer = AddIdTokenLayer::from_config(StaticToken::new(token).cached(), config.clone());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct AttachConfig {
    policy: AudiencePolicy,
    header: TokenHeader,
    overwrite: bool,
}

impl AttachConfig {
    /// The defaults: the audience is each request's origin, the header `Authorization`, an existing header is
    /// left alone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mints every token for `audience` (unless a per-host override or a per-request [`Audience`] says otherwise).
    /// Needed for clients whose request URIs are not absolute (tonic).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<Audience>) -> Self {
        self.policy.set_fixed(audience.into());
        self
    }

    /// Requests to `host` (compared case-insensitively, any port) get tokens for `audience`.
    #[must_use]
    pub fn audience_for_host(mut self, host: &str, audience: impl Into<Audience>) -> Self {
        self.policy.set_host(host, audience.into());
        self
    }

    /// Which header carries the token (default `Authorization`).
    #[must_use]
    pub fn header(mut self, header: TokenHeader) -> Self {
        self.header = header;
        self
    }

    /// Replace the header when the request already has one (default false: leave it and mint nothing).
    #[must_use]
    pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// How the audience of a request is chosen.
    pub(crate) fn policy(&self) -> &AudiencePolicy {
        &self.policy
    }

    /// The header the token goes into, unless the request already has it and must keep it.
    pub(crate) fn header_for(&self, headers: &HeaderMap) -> Option<HeaderName> {
        let name = self.header.name();
        (self.overwrite || !headers.contains_key(&name)).then_some(name)
    }
}

/// Defines the [`AttachConfig`] setters on an adapter whose configuration is in its `config` field, so that both
/// adapters offer the same setters with the same documentation.
macro_rules! attach_setters {
    () => {
        /// Mints every token for `audience` (unless a per-host override or a per-request
        /// [`Audience`](crate::Audience) says otherwise). Needed for clients whose request URIs are not absolute
        /// (tonic). See [`AttachConfig::audience`](crate::AttachConfig::audience).
        #[must_use]
        pub fn audience(mut self, audience: impl Into<crate::Audience>) -> Self {
            self.config = self.config.audience(audience);
            self
        }

        /// Requests to `host` (compared case-insensitively, any port) get tokens for `audience`.
        #[must_use]
        pub fn audience_for_host(
            mut self,
            host: &str,
            audience: impl Into<crate::Audience>,
        ) -> Self {
            self.config = self.config.audience_for_host(host, audience);
            self
        }

        /// Which header carries the token (default `Authorization`).
        #[must_use]
        pub fn header(mut self, header: crate::TokenHeader) -> Self {
            self.config = self.config.header(header);
            self
        }

        /// Replace the header when the request already has one (default false: leave it and mint nothing).
        #[must_use]
        pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
            self.config = self.config.overwrite_existing(overwrite);
            self
        }

        /// The attach configuration.
        pub fn attach_config(&self) -> &crate::AttachConfig {
            &self.config
        }
    };
}
pub(crate) use attach_setters;

/// How the access-token adapters ([`AccessTokenMiddleware`](crate::AccessTokenMiddleware),
/// [`AddAccessTokenLayer`](crate::AddAccessTokenLayer)) attach a token: the default scopes (a [`Scopes`] in the
/// request's extensions wins), the quota project, and what to do with a request that already has `Authorization`.
#[derive(Debug, Clone)]
pub(crate) struct AccessConfig {
    pub(crate) scopes: Scopes,
    pub(crate) quota_project: Option<String>,
    pub(crate) overwrite: bool,
    /// Hosts besides Google's APIs that get the token (lower-case), e.g. the emulator's `127.0.0.1`.
    pub(crate) extra_hosts: Vec<Box<str>>,
    /// Every host gets the token (opted into with `allow_any_host`).
    pub(crate) any_host: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            scopes: Scopes::cloud_platform(),
            quota_project: None,
            overwrite: false,
            extra_hosts: Vec::new(),
            any_host: false,
        }
    }
}

/// `x-goog-user-project`: the project billed for the call.
pub(crate) const X_GOOG_USER_PROJECT: HeaderName = HeaderName::from_static("x-goog-user-project");

impl AccessConfig {
    /// The scopes of a request: its [`Scopes`] extension, else the configured ones.
    pub(crate) fn scopes_for<'a>(&'a self, extension: Option<&'a Scopes>) -> &'a Scopes {
        extension.unwrap_or(&self.scopes)
    }

    /// False when the request already carries `Authorization` and must keep it, or goes to a host that must not
    /// see the token.
    pub(crate) fn wants_token(
        &self,
        scheme: Option<&str>,
        host: Option<&str>,
        headers: &HeaderMap,
    ) -> bool {
        self.sends_token_to(scheme, host)
            && (self.overwrite || !headers.contains_key(http::header::AUTHORIZATION))
    }

    /// An access token is a bearer credential for every Google API the account may call, so it goes only to
    /// Google's APIs over https (`googleapis.com` and its subdomains), to hosts added with `allow_host`, or
    /// anywhere after `allow_any_host`. A client that also calls other URLs (a webhook, a URL a user supplied)
    /// must not hand them a live token, nor mint a fresh one when they answer 401.
    pub(crate) fn sends_token_to(&self, scheme: Option<&str>, host: Option<&str>) -> bool {
        if self.any_host {
            return true;
        }
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return false;
        };
        let host = host.trim_end_matches('.');
        if self
            .extra_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
        {
            return true;
        }
        let google = host.eq_ignore_ascii_case("googleapis.com")
            || host.len() > ".googleapis.com".len()
                && host[host.len() - ".googleapis.com".len()..]
                    .eq_ignore_ascii_case(".googleapis.com");
        google && scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"))
    }

    /// Writes `Authorization: Bearer <token>` (sensitive) and, when a quota project is configured here or by the
    /// source and the request has none, `x-goog-user-project`.
    pub(crate) fn apply(
        &self,
        headers: &mut HeaderMap,
        token: &AccessToken,
        source_quota_project: Option<&str>,
    ) -> Result<(), AttachError> {
        let bearer = token
            .bearer_header()
            .ok_or(AttachError::InvalidHeaderValue)?;
        headers.insert(http::header::AUTHORIZATION, bearer);
        if let Some(project) = self.quota_project.as_deref().or(source_quota_project)
            && !headers.contains_key(&X_GOOG_USER_PROJECT)
        {
            let value =
                HeaderValue::from_str(project).map_err(|_| AttachError::InvalidQuotaProject)?;
            headers.insert(X_GOOG_USER_PROJECT, value);
        }
        Ok(())
    }
}

/// Defines the [`AccessConfig`] setters on an access-token adapter whose configuration is in its `config` field.
macro_rules! access_setters {
    () => {
        /// The scopes asked for when the request carries no [`Scopes`](crate::Scopes) extension (default
        /// `cloud-platform`).
        #[must_use]
        pub fn scopes(mut self, scopes: crate::Scopes) -> Self {
            self.config.scopes = scopes;
            self
        }

        /// Sends `x-goog-user-project: project` (the project billed for the call) on every request that has none,
        /// over the source's own quota project ([`AccessTokenSource::quota_project`](crate::AccessTokenSource)).
        #[must_use]
        pub fn quota_project(mut self, project: impl Into<String>) -> Self {
            self.config.quota_project = Some(project.into());
            self
        }

        /// Replace `Authorization` when the request already has one (default false: leave it and mint nothing).
        #[must_use]
        pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
            self.config.overwrite = overwrite;
            self
        }

        /// Also send the token to `host` (any scheme), e.g. `127.0.0.1` for `idgate-emulator`, or a private
        /// endpoint of a Google API. By default only Google's APIs get it: `https` to `googleapis.com` and its
        /// subdomains; requests to any other host pass through untouched, without a token.
        #[must_use]
        pub fn allow_host(mut self, host: impl Into<String>) -> Self {
            let host = host.into().trim_end_matches('.').to_ascii_lowercase();
            self.config.extra_hosts.push(host.into_boxed_str());
            self
        }

        /// Send the token to every host and scheme the client calls. Only for a client that never calls anything
        /// but Google APIs: an access token is a bearer credential for every API the account may use.
        #[must_use]
        pub fn allow_any_host(mut self) -> Self {
            self.config.any_host = true;
            self
        }
    };
}
pub(crate) use access_setters;

/// A counting access-token source for the adapters' tests: `ya29.0`, `ya29.1`, ...
#[cfg(test)]
pub(crate) mod test_source {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::error::SourceError;
    use crate::scopes::Scopes;
    use crate::source::{AccessToken, AccessTokenSource, BoxFuture};

    #[derive(Debug, Default)]
    pub(crate) struct Counting {
        pub(crate) mints: AtomicUsize,
        pub(crate) quota_project: Option<String>,
    }

    impl AccessTokenSource for Counting {
        fn access_token<'a>(
            &'a self,
            scopes: &'a Scopes,
        ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
            let n = self.mints.fetch_add(1, Ordering::SeqCst);
            let token = AccessToken::new(format!("ya29.{n}"), Some(Duration::from_secs(3600)))
                .with_scopes(scopes.clone());
            Box::pin(std::future::ready(Ok(token)))
        }

        fn quota_project(&self) -> Option<&str> {
            self.quota_project.as_deref()
        }
    }
}
