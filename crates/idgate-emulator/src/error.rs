//! The emulator's error type.

use std::io;
use std::net::SocketAddr;

/// Why the emulator (or its IAP proxy) could not start or do what was asked.
///
/// The message says what failed; the underlying error (the operating system's, the certificate or JSON
/// library's) is its [`source`](std::error::Error::source), not repeated in the message. Print the whole chain by
/// walking `source()` (as `idgate_core::ErrorChain` does).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// A non-loopback address was asked for without [`crate::EmulatorBuilder::allow_non_loopback`].
    #[error(
        "refusing to bind non-loopback address {0}; call allow_non_loopback() if you really mean it"
    )]
    NonLoopback(SocketAddr),
    /// An [`crate::EmulatorBuilder::allow_host`] entry is neither a host name nor an IP address (a port,
    /// userinfo, a scheme or a path do not belong there).
    #[error("cannot allow host {0:?}: expected a host name or an IP address, without a port")]
    AllowedHost(String),
    /// Key generation, encoding or signing failed in the crypto backend.
    #[error("crypto backend failure: {0}")]
    Crypto(&'static str),
    /// Building an X.509 certificate or PEM encoding failed.
    #[error("certificate generation failed")]
    Certificate(#[from] rcgen::Error),
    /// A URL could not be built.
    #[error("invalid URL")]
    Url(#[from] url::ParseError),
    /// Writing a service-account key file failed.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// JSON encoding failed.
    #[error("JSON encoding failed")]
    Json(#[from] serde_json::Error),
    /// The named key is not published, or the last key cannot be retired.
    #[error("no such key: {0}")]
    UnknownKey(String),
    /// No service account with this email is registered.
    #[error("no such service account: {0}")]
    UnknownAccount(String),
    /// There is no published key to sign with (every key was retired).
    #[error("no published {0} key to sign with")]
    NoSigningKey(&'static str),
    /// The authorization endpoint refused the request with an error page, as Google does (no redirect to the
    /// client): an unknown client (`invalid_client`, 401), a redirect URI the client did not register
    /// (`redirect_uri_mismatch`, 400), or a malformed request (`invalid_request`, `invalid_scope`, 400). See
    /// [`crate::Emulator::consent`].
    #[error("the authorization request was refused: Error {status}: {error}")]
    AuthorizationRefused {
        /// The HTTP status of Google's error page.
        status: u16,
        /// The OAuth error code (`invalid_client`, `redirect_uri_mismatch`, ...).
        error: String,
        /// Google's explanation, as its error page shows it.
        description: String,
    },
    /// No test user with this email is in the account chooser ([`crate::Emulator::add_user`]).
    #[error("no such test user: {0}")]
    UnknownUser(String),
    /// The upstream URL of an IAP proxy is not an `http` URL with a host.
    #[error("unsupported upstream URL {0}: only http://host[:port][/path] is supported")]
    Upstream(String),
}
