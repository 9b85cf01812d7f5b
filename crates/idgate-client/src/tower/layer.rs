use std::sync::Arc;

use tower_layer::Layer;

use super::AddIdToken;
use crate::attach::{AttachConfig, attach_setters};

/// Applies [`AddIdToken`] to a service. Holds only the configuration; cheap to clone.
///
/// See the [module docs](super) for an example.
#[derive(Debug)]
pub struct AddIdTokenLayer<T> {
    pub(crate) source: Arc<T>,
    pub(crate) config: AttachConfig,
}

impl<T> Clone for AddIdTokenLayer<T> {
    fn clone(&self) -> Self {
        Self {
            source: Arc::clone(&self.source),
            config: self.config.clone(),
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
            config: AttachConfig::default(),
        }
    }

    /// Attaches tokens from `source` as `config` says.
    pub fn from_config(source: T, config: AttachConfig) -> Self {
        Self {
            source: Arc::new(source),
            config,
        }
    }

    attach_setters!();
}

impl<S, T> Layer<S> for AddIdTokenLayer<T> {
    type Service = AddIdToken<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        AddIdToken::from_layer(inner, self.clone())
    }
}
