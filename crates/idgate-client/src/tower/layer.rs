use std::sync::Arc;

use tower_layer::Layer;

use super::AddIdToken;
use crate::TokenHeader;
use crate::audience::{Audience, AudiencePolicy};

/// Applies [`AddIdToken`] to a service. Holds only the configuration; cheap to clone.
///
/// See the [module docs](super) for an example.
#[derive(Debug)]
pub struct AddIdTokenLayer<T> {
    pub(crate) source: Arc<T>,
    pub(crate) policy: AudiencePolicy,
    pub(crate) header: TokenHeader,
    pub(crate) overwrite: bool,
}

impl<T> Clone for AddIdTokenLayer<T> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            policy: self.policy.clone(),
            header: self.header,
            overwrite: self.overwrite,
        }
    }
}

impl<T> AddIdTokenLayer<T> {
    /// Attaches tokens from `source` (give it a [`CachedSource`](crate::CachedSource)), with the audience derived
    /// from each request's absolute URI.
    pub fn new(source: T) -> Self {
        Self::from_arc(Arc::new(source))
    }

    /// As [`AddIdTokenLayer::new`], for a source that is already shared.
    pub fn from_arc(source: Arc<T>) -> Self {
        Self {
            source,
            policy: AudiencePolicy::default(),
            header: TokenHeader::default(),
            overwrite: false,
        }
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
}

impl<S, T> Layer<S> for AddIdTokenLayer<T> {
    type Service = AddIdToken<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        AddIdToken::from_layer(inner, self.clone())
    }
}
