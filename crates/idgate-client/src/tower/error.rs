use crate::error::AttachError;

/// The error of an [`AddIdToken`](super::AddIdToken) (and an [`AddAccessToken`](super::AddAccessToken)) service: the inner service's, or why no token could be
/// attached (in which case the inner service was not called).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddIdTokenError<E> {
    /// The inner service failed.
    #[error(transparent)]
    Inner(E),
    /// No token could be attached.
    #[error(transparent)]
    Attach(AttachError),
}

impl<E> AddIdTokenError<E> {
    /// True when the inner service failed.
    pub fn is_inner(&self) -> bool {
        matches!(self, Self::Inner(_))
    }

    /// True when no token could be attached.
    pub fn is_attach(&self) -> bool {
        matches!(self, Self::Attach(_))
    }

    /// The inner service's error, if that is what this is.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Attach(_) => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Attach(_) => None,
        }
    }

    /// Why no token could be attached, if that is what this is.
    pub fn attach_error(&self) -> Option<&AttachError> {
        match self {
            Self::Attach(e) => Some(e),
            Self::Inner(_) => None,
        }
    }
}
