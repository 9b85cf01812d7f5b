//! [`AttachConfig`]: how the adapters ([`IdTokenMiddleware`](crate::IdTokenMiddleware) for reqwest,
//! [`AddIdTokenLayer`](crate::AddIdTokenLayer) for tower) attach a token: which audience, which header, and what
//! to do with a request that already has one. Both hold one and take the same setters.

use http::{HeaderMap, HeaderName, HeaderValue};
use idgate_core::token::IdToken;

use crate::TokenHeader;
use crate::audience::{Audience, AudiencePolicy};
use crate::error::AttachError;

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

/// `Bearer <token>`, marked sensitive.
pub(crate) fn bearer_value(token: &IdToken) -> Result<HeaderValue, AttachError> {
    let mut value = String::with_capacity(7 + token.as_str().len());
    value.push_str("Bearer ");
    value.push_str(token.as_str());
    let mut value = HeaderValue::try_from(value).map_err(|_| AttachError::InvalidHeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}
