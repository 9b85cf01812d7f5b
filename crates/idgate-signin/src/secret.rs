//! The OAuth client secret: read from the environment or a file, never printed.

use std::fmt;

use idgate_core::config::ClientSecretSource;

use crate::error::SignInError;

/// The OAuth client secret. `Debug` prints `ClientSecret(<redacted>)`; there is no `Display`.
///
/// ```
/// use idgate_signin::ClientSecret;
///
/// let secret = ClientSecret::new("GOCSPX-example");
/// assert_eq!(format!("{secret:?}"), "ClientSecret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// A secret you read yourself.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Reads the secret where the `[signin]` table says: an environment variable, or a file (one trailing newline
    /// is dropped).
    ///
    /// # Errors
    ///
    /// [`SignInError::ClientSecretUnavailable`] when the variable is unset or not Unicode, the file cannot be read,
    /// or the secret is empty. The message names the variable or file, never the value.
    pub fn from_source(source: &ClientSecretSource) -> Result<Self, SignInError> {
        let unavailable = |what: String, source: Option<std::io::Error>| {
            SignInError::ClientSecretUnavailable { what, source }
        };
        let secret = match source {
            ClientSecretSource::Env(name) => std::env::var(name).map_err(|_| {
                unavailable(format!("the environment variable {name} is not set"), None)
            })?,
            ClientSecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                unavailable(
                    format!("the file {} cannot be read", path.display()),
                    Some(e),
                )
            })?,
            _ => return Err(unavailable("an unknown secret source".to_owned(), None)),
        };
        let secret = secret
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&secret);
        if secret.is_empty() {
            return Err(unavailable("the client secret is empty".to_owned(), None));
        }
        Ok(Self(secret.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}
