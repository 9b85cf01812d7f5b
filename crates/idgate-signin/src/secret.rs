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

/// The key that seals the Google token a session keeps for logout to revoke (AES-256-GCM): derived from the OAuth
/// client secret, which every replica of the service has and a reader of the session store (Redis, its backups)
/// does not. The store then holds `v1.` + base64url(nonce ‖ ciphertext ‖ tag), never the token itself.
pub(crate) struct TokenKey(aws_lc_rs::aead::LessSafeKey);

/// What the sealed token is bound to: a value sealed for anything else does not open as a session's token.
const TOKEN_AAD: &[u8] = b"idgate.signin.token";

impl TokenKey {
    pub(crate) fn derive(secret: &ClientSecret, client_id: &str) -> Self {
        use aws_lc_rs::{aead, hmac};
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
            format!("idgate-signin: the key sealing a session's Google token\n{client_id}")
                .as_bytes(),
        );
        // HMAC-SHA256 gives 32 bytes, exactly AES-256's key: `new` cannot refuse it.
        let Ok(key) = aead::UnboundKey::new(&aead::AES_256_GCM, derived.as_ref()) else {
            unreachable!("an HMAC-SHA256 output is an AES-256 key");
        };
        Self(aead::LessSafeKey::new(key))
    }

    /// `token`, sealed; `None` only if the system's random generator fails.
    pub(crate) fn seal(&self, token: &str) -> Option<String> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        use base64::Engine as _;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut sealed = token.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(TOKEN_AAD),
                &mut sealed,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(format!(
            "v1.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// The token in `sealed`, or `None` for anything this key did not seal (tampered with, another client secret,
    /// a record written before tokens were sealed).
    pub(crate) fn open(&self, sealed: &str) -> Option<String> {
        use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix("v1.")?)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let token = self
            .0
            .open_in_place(nonce, Aad::from(TOKEN_AAD), &mut rest)
            .ok()?;
        String::from_utf8(token.to_vec()).ok()
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_under_the_same_client() {
        let key = TokenKey::derive(&ClientSecret::new("s3cret"), "client-a");
        let sealed = key.seal("ya29.token").unwrap();
        assert!(!sealed.contains("ya29.token"));
        assert_ne!(
            sealed,
            key.seal("ya29.token").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).as_deref(), Some("ya29.token"));
        // Another secret or another client: not opened.
        let other = TokenKey::derive(&ClientSecret::new("other"), "client-a");
        assert_eq!(other.open(&sealed), None);
        let other = TokenKey::derive(&ClientSecret::new("s3cret"), "client-b");
        assert_eq!(other.open(&sealed), None);
        // Tampered with, truncated, in clear, garbage: not opened, no panic.
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(&String::from_utf8(flipped).unwrap()), None);
        for bad in [
            "",
            "v1.",
            "v1.AAAA",
            "ya29.token",
            "v1.!!!!",
            &sealed[..sealed.len() - 4],
        ] {
            assert_eq!(key.open(bad), None, "{bad}");
        }
        assert_eq!(format!("{key:?}"), "TokenKey(<redacted>)");
    }
}
