//! [`ServerError`]: why idgate-server could not start.
//!
//! Each variant says what failed at this level; the cause is its [`source`](std::error::Error::source). Print it
//! with [`idgate_core::ErrorChain`] to see the whole story:
//!
//! ```
//! use idgate_core::ErrorChain;
//! use idgate_core::verify::{BuildError, OidcVerifier};
//! use idgate_server::ServerError;
//!
//! let cause: BuildError = OidcVerifier::builder().build().unwrap_err();
//! let error = ServerError::from(cause);
//! assert_eq!(error.to_string(), "invalid verifier configuration");
//! assert!(ErrorChain(&error).to_string().starts_with("invalid verifier configuration: no audience configured"));
//! ```

use idgate_core::google::MetadataError;
use idgate_core::keys::KeysUnavailable;
use idgate_core::verify::BuildError;

/// Why the layers could not be set up. These are startup errors: fail the deployment, not the
/// first request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A verifier could not be built from the configuration (no audience, bad leeway, ...).
    #[error("invalid verifier configuration")]
    Verifier(#[from] BuildError),
    /// The signing keys could not be fetched at startup.
    #[error("could not prefetch the {which} signing keys")]
    Keys {
        /// `"OIDC"` or `"IAP"`.
        which: &'static str,
        /// Why.
        #[source]
        source: KeysUnavailable,
    },
    /// The IAP audience is neither configured nor discoverable from the metadata server.
    #[error(
        "IAP audience: not configured, and the metadata server did not tell the {what}; set `audience` in the \
         [iap] section, e.g. \"/projects/PROJECT_NUMBER/apps/PROJECT_ID\""
    )]
    IapAudienceDiscovery {
        /// What could not be read: `"project number"` or `"project ID"`.
        what: &'static str,
        /// Why.
        #[source]
        source: MetadataError,
    },
    /// The configuration asks for a way of finding the IAP audience this version does not know.
    #[error("IAP audience: unsupported audience source {0}")]
    UnsupportedIapAudience(String),
    /// The configuration enables neither service-to-service verification nor IAP.
    #[error("the configuration has neither an [inbound] nor an [iap] section: nothing to enforce")]
    NothingConfigured,
}
