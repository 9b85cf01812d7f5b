//! Access tokens: what the emulator records about each one it issues ([`AccessTokenInfo`]), who may act for
//! whom (IAM's Service Account Token Creator), which service accounts may delegate domain-wide, gcloud user
//! credentials ([`AuthorizedUserFile`]) and the Cloud Storage buckets the emulated Storage API lists.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::emulator::Emulator;
use crate::error::EmulatorError;
use crate::keys::{RsaKey, hex, random_bytes};
use crate::service_account::{file_stem, write_secret_file};
use crate::state::{AccessTokenRecord, Shared, lock, read, write};
use crate::token::{numeric_id, unix_now};

/// `https://www.googleapis.com/auth/cloud-platform`: every Google Cloud API.
pub(crate) const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `https://www.googleapis.com/auth/iam`: the IAM Credentials API.
pub(crate) const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// The lifetime of the access tokens the metadata server and the token endpoint issue (`expires_in`).
pub(crate) const ACCESS_TOKEN_LIFETIME_SECS: i64 = 3599;

/// The scopes `gcloud auth application-default login` asks for, which [`Emulator::create_authorized_user`]
/// grants.
const GCLOUD_ADC_SCOPES: [&str; 4] = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    CLOUD_PLATFORM_SCOPE,
    "https://www.googleapis.com/auth/sqlservice.login",
];

/// What the emulator knows about an access token it issued: see [`Emulator::tokeninfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenInfo {
    email: String,
    subject: Option<String>,
    scopes: Vec<String>,
    expires_at: SystemTime,
}

impl AccessTokenInfo {
    /// The principal the token was issued to: a service account, or a user (refresh-token grant).
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The Workspace user a domain-wide-delegated token acts for (the assertion's `sub`), if any.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The granted scopes, sorted (full URLs as they were asked for).
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// When the token stops being accepted.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl AccessTokenRecord {
    /// A token for `email` (acting for `subject` when delegated) issued to the account's own OAuth client.
    pub(crate) fn service_account(
        email: &str,
        subject: Option<&str>,
        scopes: BTreeSet<String>,
        lifetime_secs: i64,
    ) -> Self {
        Self {
            email: email.to_owned(),
            subject: subject.map(str::to_owned),
            client_id: numeric_id(email),
            scopes,
            expires_at: unix_now().saturating_add(lifetime_secs),
        }
    }

    /// The identity the token acts as: the delegated user if any, else the principal.
    pub(crate) fn acting_as(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.email)
    }

    /// Whether the token carries any of `scopes`.
    pub(crate) fn has_any_scope(&self, scopes: &[&str]) -> bool {
        scopes.iter().any(|s| self.scopes.contains(*s))
    }

    pub(crate) fn info(&self) -> AccessTokenInfo {
        AccessTokenInfo {
            email: self.email.clone(),
            subject: self.subject.clone(),
            scopes: self.scopes.iter().cloned().collect(),
            expires_at: UNIX_EPOCH
                + Duration::from_secs(u64::try_from(self.expires_at).unwrap_or(0)),
        }
    }
}

/// Whether `scope` is one OAuth scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\`), and
/// not a comma-joined list, which Google refuses as an unknown scope.
pub(crate) fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\' && b != b',')
}

/// The scopes of a space-separated `scope` (the token endpoint's form). `None` if one is malformed.
pub(crate) fn space_separated_scopes(scope: &str) -> Option<BTreeSet<String>> {
    scope
        .split([' ', '\t', '\n', '\r'])
        .filter(|s| !s.is_empty())
        .map(|s| valid_scope(s).then(|| s.to_owned()))
        .collect()
}

/// The scopes of the metadata server's comma-separated `scopes` parameter. `None` if one is empty or
/// malformed (e.g. scopes separated by spaces).
pub(crate) fn comma_separated_scopes(scopes: &str) -> Option<BTreeSet<String>> {
    scopes
        .split(',')
        .map(|s| valid_scope(s).then(|| s.to_owned()))
        .collect()
}

/// A user the emulator issued a refresh token to ([`Emulator::create_authorized_user`]).
#[derive(Clone)]
pub(crate) struct UserGrant {
    pub(crate) email: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scopes: BTreeSet<String>,
}

impl fmt::Debug for UserGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserGrant")
            .field("email", &self.email)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Permissions and resources set up by the test through [`Emulator`] methods.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    /// (caller, target): the caller may act as the target (Service Account Token Creator).
    pub(crate) impersonation: HashSet<(String, String)>,
    /// Service account -> the scopes the Admin console authorized its client for.
    pub(crate) domain_wide: HashMap<String, BTreeSet<String>>,
    /// Refresh token -> the user it was issued to.
    pub(crate) refresh_tokens: HashMap<String, UserGrant>,
    /// Bucket name -> project id.
    pub(crate) buckets: BTreeMap<String, String>,
}

/// A gcloud user ADC file (`type: authorized_user`), as `gcloud auth application-default login` writes it,
/// plus `token_uri` pointing at the emulator's `/token` (gcloud leaves it out, and clients default it to
/// `https://oauth2.googleapis.com/token`; google-auth and idgate read it when present).
///
/// `Debug` redacts the client secret and the refresh token; [`AuthorizedUserFile::to_json`] and
/// [`AuthorizedUserFile::write_key_file`] carry them, as the real file does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = idgate_emulator::Emulator::start().await?;
/// let user = emulator.create_authorized_user("dev@example.com");
/// let json: serde_json::Value = serde_json::from_str(&user.to_json())?;
/// assert_eq!(json["type"], "authorized_user");
/// assert_eq!(json["token_uri"], emulator.token_url().as_str());
/// assert!(!format!("{user:?}").contains(user.refresh_token()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize)]
pub struct AuthorizedUserFile {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip)]
    account: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: String,
    universe_domain: &'static str,
}

impl fmt::Debug for AuthorizedUserFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUserFile")
            .field("account", &self.account)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl AuthorizedUserFile {
    /// The user's email (not in the file; gcloud's file does not name its user either).
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// `client_id`: the OAuth client the refresh token was issued to.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `client_secret`.
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// `refresh_token`.
    #[must_use]
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// `token_uri`: the emulator's `/token`.
    #[must_use]
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The file's JSON text.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings into a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the file into `dir` (named after the account) and returns its path. Like
    /// [`ServiceAccountKeyFile::write_key_file`](crate::ServiceAccountKeyFile::write_key_file), it holds a
    /// secret: mode `0600` on Unix from creation on, and a file already at that name is replaced.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Io`] if the file cannot be written.
    pub fn write_key_file(&self, dir: impl AsRef<Path>) -> Result<PathBuf, EmulatorError> {
        write_secret_file(
            dir.as_ref(),
            &format!("{}-authorized-user.json", file_stem(&self.account)),
            self.to_json().as_bytes(),
        )
    }
}

/// `len` random bytes as URL-safe base64.
fn random_token<const N: usize>() -> Result<String, EmulatorError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

impl Shared {
    /// Records `record` under a fresh opaque `ya29.` token and returns the token.
    pub(crate) fn issue_access_token(
        &self,
        record: AccessTokenRecord,
    ) -> Result<String, EmulatorError> {
        let token = format!("ya29.c.{}", random_token::<48>()?);
        lock(&self.access_tokens).insert(token.clone(), record);
        Ok(token)
    }

    /// The record of `token` if the emulator issued it and it has not expired.
    pub(crate) fn live_access_token(&self, token: &str) -> Option<AccessTokenRecord> {
        lock(&self.access_tokens)
            .get(token)
            .filter(|r| r.expires_at > unix_now())
            .cloned()
    }

    /// Whether `caller` may act as `target` (Service Account Token Creator on the target).
    pub(crate) fn may_impersonate(&self, caller: &str, target: &str) -> bool {
        read(&self.grants)
            .impersonation
            .contains(&(caller.to_owned(), target.to_owned()))
    }

    /// The scopes `service_account` may delegate domain-wide, if it may at all.
    pub(crate) fn domain_wide_scopes(&self, service_account: &str) -> Option<BTreeSet<String>> {
        read(&self.grants).domain_wide.get(service_account).cloned()
    }

    /// The key the emulator holds for `email` to `signJwt` with, created on first use (and published at the
    /// account's x509 URL like its key-file keys). `None` if the account is not registered.
    pub(crate) fn system_key(&self, email: &str) -> Result<Option<Arc<RsaKey>>, EmulatorError> {
        let existing = |accounts: &HashMap<String, crate::state::ServiceAccountRecord>| {
            accounts.get(email).map(|record| {
                record
                    .system_key
                    .as_ref()
                    .and_then(|kid| record.keys.get(kid).cloned())
            })
        };
        match existing(&read(&self.service_accounts)) {
            None => return Ok(None),
            Some(Some(key)) => return Ok(Some(key)),
            Some(None) => {}
        }
        // Key generation is slow: do it outside the lock, and keep whichever key won a race.
        let key = Arc::new(RsaKey::generate(hex(&random_bytes::<20>()?))?);
        let mut accounts = write(&self.service_accounts);
        let Some(record) = accounts.get_mut(email) else {
            return Ok(None);
        };
        if let Some(winner) = record
            .system_key
            .as_ref()
            .and_then(|kid| record.keys.get(kid))
        {
            return Ok(Some(Arc::clone(winner)));
        }
        record.system_key = Some(key.kid.clone());
        record.keys.insert(key.kid.clone(), Arc::clone(&key));
        Ok(Some(key))
    }
}

impl Emulator {
    /// What the emulator recorded about `access_token` when it issued it (principal, delegated subject,
    /// scopes, expiry), or `None` if it never issued it or the token has expired. `GET /oauth2/v3/tokeninfo`
    /// answers the same over HTTP.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let url = emulator.metadata_base_url().join("instance/service-accounts/default/token?scopes=a,b")?;
    /// let body: serde_json::Value = reqwest::Client::new()
    ///     .get(url)
    ///     .header("Metadata-Flavor", "Google")
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// let info = emulator.tokeninfo(body["access_token"].as_str().unwrap_or_default()).unwrap();
    /// assert_eq!(info.email(), emulator.metadata_service_account());
    /// assert_eq!(info.scopes(), ["a", "b"]);
    /// assert_eq!(emulator.tokeninfo("ya29.never-issued"), None);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tokeninfo(&self, access_token: &str) -> Option<AccessTokenInfo> {
        self.shared
            .live_access_token(access_token)
            .map(|r| r.info())
    }

    /// Makes an access token the emulator issued expire now, as if its hour had passed (the emulator has no
    /// clock of its own). Returns whether the emulator knew the token.
    pub fn expire_access_token(&self, access_token: &str) -> bool {
        match lock(&self.shared.access_tokens).get_mut(access_token) {
            Some(record) => {
                record.expires_at = unix_now().saturating_sub(1);
                true
            }
            None => false,
        }
    }

    /// Authorizes the service account `service_account_email`'s client for domain-wide delegation of
    /// `scopes`, as a Workspace admin does in the Admin console (Security > API controls > Domain-wide
    /// delegation). Replaces the scopes authorized before, as editing the entry does.
    ///
    /// Without it, a JWT-bearer assertion with `sub` (a user to act for) is refused with Google's
    /// `401 unauthorized_client`; with it, the requested scopes must be a subset of `scopes`.
    pub fn enable_domain_wide_delegation(&self, service_account_email: &str, scopes: &[&str]) {
        write(&self.shared.grants).domain_wide.insert(
            service_account_email.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        );
    }

    /// Grants `caller_email` (a service account or a user) the Service Account Token Creator role on
    /// `target_email`: the caller may `generateIdToken`, `generateAccessToken`, `signJwt` and `signBlob` as the
    /// target. With delegates, each hop of caller → delegate₁ → … → target needs its own grant. As on Google, an
    /// account acting as itself through these methods needs the grant on itself too.
    pub fn allow_impersonation(&self, caller_email: &str, target_email: &str) {
        write(&self.shared.grants)
            .impersonation
            .insert((caller_email.to_owned(), target_email.to_owned()));
    }

    /// Creates the bucket `name` in `project` for the emulated Cloud Storage bucket list
    /// (`GET /storage/v1/b?project=P`). Bucket names are global: creating a name again moves it to `project`.
    /// The App Engine default bucket `PROJECT_ID.appspot.com` of the emulator's own project always exists.
    pub fn create_bucket(&self, project: &str, name: &str) {
        write(&self.shared.grants)
            .buckets
            .insert(name.to_owned(), project.to_owned());
    }

    /// Creates a user credential as `gcloud auth application-default login` does: a refresh token for
    /// `email` issued to an OAuth client, granting gcloud's scopes (`openid`, `userinfo.email`,
    /// `cloud-platform`, `sqlservice.login`). The token endpoint's refresh-token grant turns it into access
    /// tokens for the user.
    ///
    /// # Panics
    ///
    /// If the system's random source fails; [`Emulator::try_create_authorized_user`] returns that as an error.
    #[must_use]
    pub fn create_authorized_user(&self, email: &str) -> AuthorizedUserFile {
        match self.try_create_authorized_user(email) {
            Ok(file) => file,
            Err(error) => panic!("idgate emulator could not create a user credential: {error}"),
        }
    }

    /// Like [`Emulator::create_authorized_user`], returning failures.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Crypto`] if the system's random source fails.
    pub fn try_create_authorized_user(
        &self,
        email: &str,
    ) -> Result<AuthorizedUserFile, EmulatorError> {
        let client_id = format!(
            "{}-idgate-emulated.apps.googleusercontent.com",
            self.project_number()
        );
        let client_secret = format!("GOCSPX-{}", random_token::<21>()?);
        let refresh_token = format!("1//{}", random_token::<72>()?);
        write(&self.shared.grants).refresh_tokens.insert(
            refresh_token.clone(),
            UserGrant {
                email: email.to_owned(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                scopes: GCLOUD_ADC_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            },
        );
        Ok(AuthorizedUserFile {
            kind: "authorized_user",
            account: email.to_owned(),
            client_id,
            client_secret,
            refresh_token,
            token_uri: self.token_url().to_string(),
            universe_domain: "googleapis.com",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_parse_strictly() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(space_separated_scopes(" b  a\tb "), Some(set(&["a", "b"])));
        assert_eq!(space_separated_scopes(""), Some(set(&[])));
        assert_eq!(space_separated_scopes("a,b"), None);
        assert_eq!(comma_separated_scopes("b,a"), Some(set(&["a", "b"])));
        assert_eq!(comma_separated_scopes("a b"), None);
        assert_eq!(comma_separated_scopes("a,,b"), None);
        assert_eq!(comma_separated_scopes(""), None);
    }
}
