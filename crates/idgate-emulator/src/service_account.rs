//! Service accounts and their JSON key files, in Google's exact format.

use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::error::EmulatorError;
use crate::keys::{RsaKey, hex, random_bytes};
use crate::state::{ServiceAccountRecord, Shared, write};
use crate::token::numeric_id;

/// A service-account JSON key, as the Cloud console downloads it, pointing at the emulator's `/token`.
///
/// `Debug` redacts the private key; [`ServiceAccountKeyFile::to_json`] and
/// [`ServiceAccountKeyFile::write_key_file`] carry it, as a real key file does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = idgate_emulator::Emulator::start().await?;
/// let key = emulator.create_service_account("deployer@my-proj.iam.gserviceaccount.com");
/// let json: serde_json::Value = serde_json::from_str(&key.to_json())?;
/// assert_eq!(json["type"], "service_account");
/// assert_eq!(json["token_uri"], emulator.token_url().as_str());
/// assert!(!format!("{key:?}").contains("PRIVATE KEY"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize)]
pub struct ServiceAccountKeyFile {
    #[serde(rename = "type")]
    kind: &'static str,
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    client_id: String,
    auth_uri: String,
    token_uri: String,
    auth_provider_x509_cert_url: String,
    client_x509_cert_url: String,
    universe_domain: String,
}

impl fmt::Debug for ServiceAccountKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKeyFile")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKeyFile {
    /// `client_email`.
    #[must_use]
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// `client_id`: the account's numeric unique id (the `sub` of its ID tokens).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `private_key_id`: the `kid` its assertions carry.
    #[must_use]
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }

    /// `private_key`: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[must_use]
    pub fn private_key_pem(&self) -> &str {
        &self.private_key
    }

    /// `token_uri`: the emulator's `/token`.
    #[must_use]
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// `project_id`.
    #[must_use]
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The key file's JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings into a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the key file into `dir` (named after the email and key id) and returns its path.
    ///
    /// The file holds a private key, so on Unix it is readable and writable by its owner only (mode `0600`)
    /// from the moment it exists: the key is written to a fresh file created `0600` in `dir`, which is then
    /// renamed over the final name. A file already at that name (whatever its mode) is replaced, never
    /// written through.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Io`] if the file cannot be written.
    pub fn write_key_file(&self, dir: impl AsRef<Path>) -> Result<PathBuf, EmulatorError> {
        let short_id = self
            .private_key_id
            .get(..12)
            .unwrap_or(&self.private_key_id);
        write_secret_file(
            dir.as_ref(),
            &format!("{}-{short_id}.json", file_stem(&self.client_email)),
            self.to_json().as_bytes(),
        )
    }
}

/// `account` as a file-name stem: letters, digits and `-` kept, anything else `_`.
pub(crate) fn file_stem(account: &str) -> String {
    account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes a credentials file (`contents` holds a secret) as `dir/name`, through a fresh owner-only temporary file
/// renamed over it (see [`write_private`]), and returns its path.
pub(crate) fn write_secret_file(
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<PathBuf, EmulatorError> {
    let path = dir.join(name);
    // A directory that does not exist yet is made, owner-only (on Unix): `--key-dir keys` on a fresh checkout.
    create_private_dir(dir).map_err(|source| EmulatorError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&random_bytes::<8>()?)));
    write_private(&tmp, &path, contents).map_err(|source| {
        // Best effort: the temporary file may not exist, and the error to report is the first one.
        let _ = std::fs::remove_file(&tmp);
        EmulatorError::Io {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// Makes `dir` (and its parents) if it is missing; a directory made here only its owner can enter (on Unix).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `contents` to `tmp`, a new file only its owner can read (on Unix), then renames it to `path`.
///
/// Creating the file with its final mode, instead of narrowing it after the write, leaves no moment in which
/// another local user could open the private key; `create_new` refuses to follow a link or reuse a file
/// someone else planted at `tmp`; and the rename replaces any file at `path` with this new one, so a
/// pre-existing world-readable file (or a descriptor someone holds on it) never sees the key.
pub(crate) fn write_private(tmp: &Path, path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(tmp)?;
    file.write_all(contents)?;
    drop(file);
    std::fs::rename(tmp, path)
}

impl Shared {
    /// Registers `email` (if new) and gives it a fresh key.
    pub(crate) fn create_service_account(
        &self,
        email: &str,
    ) -> Result<ServiceAccountKeyFile, EmulatorError> {
        let private_key_id = hex(&random_bytes::<20>()?);
        let key = RsaKey::generate(private_key_id.clone())?;
        let private_key = key.private_key_pem()?;
        let unique_id = numeric_id(email);
        write(&self.service_accounts)
            .entry(email.to_owned())
            .or_insert_with(|| ServiceAccountRecord {
                unique_id: unique_id.clone(),
                keys: HashMap::new(),
                system_key: None,
            })
            .keys
            .insert(private_key_id.clone(), Arc::new(key));
        let encoded: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
        Ok(ServiceAccountKeyFile {
            kind: "service_account",
            project_id: project_of(email)
                .unwrap_or(&self.config.project_id)
                .to_owned(),
            private_key_id,
            private_key,
            client_email: email.to_owned(),
            client_id: unique_id,
            auth_uri: "https://accounts.google.com/o/oauth2/auth".to_owned(),
            token_uri: self.url("/token").to_string(),
            auth_provider_x509_cert_url: self.url("/oauth2/v1/certs").to_string(),
            client_x509_cert_url: self
                .url(&format!("/robot/v1/metadata/x509/{encoded}"))
                .to_string(),
            universe_domain: "googleapis.com".to_owned(),
        })
    }
}

impl Shared {
    /// Deletes `email`'s key `key_id` (a key file's or the system-managed one): it is no longer published and no
    /// longer accepted. Deleting the system key makes the next `signBlob`/`signJwt` create a new one.
    pub(crate) fn delete_service_account_key(&self, email: &str, key_id: &str) -> bool {
        let mut accounts = write(&self.service_accounts);
        let Some(record) = accounts.get_mut(email) else {
            return false;
        };
        if record.system_key.as_deref() == Some(key_id) {
            record.system_key = None;
        }
        record.keys.remove(key_id).is_some()
    }

    /// Gives `email` a new system-managed key (the one `signBlob`/`signJwt` sign with from now on); the previous
    /// one stays published, as Google keeps publishing a key after it stops signing with it.
    pub(crate) fn rotate_system_key(&self, email: &str) -> Result<String, EmulatorError> {
        // Key generation is slow: outside the lock.
        let key = Arc::new(RsaKey::generate(hex(&random_bytes::<20>()?))?);
        let kid = key.kid.clone();
        let mut accounts = write(&self.service_accounts);
        let record = accounts
            .get_mut(email)
            .ok_or_else(|| EmulatorError::UnknownAccount(email.to_owned()))?;
        record.system_key = Some(kid.clone());
        record.keys.insert(kid.clone(), key);
        Ok(kid)
    }

    /// The ID of `email`'s current system-managed key, if it has one yet.
    pub(crate) fn system_key_id(&self, email: &str) -> Option<String> {
        crate::state::read(&self.service_accounts)
            .get(email)
            .and_then(|record| record.system_key.clone())
    }
}

/// `NAME@PROJECT.iam.gserviceaccount.com` -> `PROJECT`.
fn project_of(email: &str) -> Option<&str> {
    email
        .rsplit_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
}

#[cfg(test)]
mod tests {
    use super::project_of;

    #[test]
    fn project_from_user_managed_email() {
        assert_eq!(
            project_of("a@proj-1.iam.gserviceaccount.com"),
            Some("proj-1")
        );
        assert_eq!(project_of("1-compute@developer.gserviceaccount.com"), None);
    }
}
