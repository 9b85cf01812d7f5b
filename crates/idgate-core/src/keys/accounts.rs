//! The public keys every service account publishes, and checking a signature made with one of them
//! (`signBlob`, a key file's key): what lets a third party that is not Google check that bytes really come from
//! app X.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use futures_util::future::BoxFuture;

use super::{
    FetchError, FetchedKeys, HttpKeySource, KeyAlgorithm, KeyCache, KeyCacheConfig, KeyFormat,
    KeyLookupError, KeySet, KeySetError, KeySource, KeysUnavailable, VerifyingKey, truncate,
};
use crate::clock::{self, Clock};
use crate::google::Endpoints;

/// How many accounts' key caches a [`ServiceAccountKeys`] holds by default; the least recently used is dropped
/// (and fetched again when next needed), so callers naming many accounts cannot grow memory without bound.
pub const DEFAULT_ACCOUNT_CAPACITY: u64 = 1_000;

/// Which of the documents Google publishes per service account is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ServiceAccountKeyFormat {
    /// `{root}x509/{EMAIL}`: `{key ID: "-----BEGIN CERTIFICATE-----..."}` (what the App Identity API's
    /// `get_public_certificates` returned). The default.
    #[default]
    X509,
    /// `{root}jwk/{EMAIL}`: a JWKS of RSA keys.
    Jwk,
}

impl ServiceAccountKeyFormat {
    /// The path segment Google uses for this document (`x509`, `jwk`).
    pub fn segment(self) -> &'static str {
        match self {
            Self::X509 => "x509",
            Self::Jwk => "jwk",
        }
    }

    fn key_format(self) -> KeyFormat {
        match self {
            Self::X509 => KeyFormat::OidcPemCertificates,
            Self::Jwk => KeyFormat::OidcJwks,
        }
    }
}

/// Why a signature made by a service account was not accepted. Carries no signature and no signed bytes.
///
/// Everything but [`SignatureError::KeysUnavailable`] is the presenter's fault; `KeysUnavailable` is ours (the
/// account's keys could not be fetched: answer 503, retry later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The account is not a service-account email (`NAME@PROJECT.iam.gserviceaccount.com`,
    /// `PROJECT@appspot.gserviceaccount.com`, ...): no document is fetched for it.
    #[error("{account:?} is not a service-account email")]
    InvalidAccount {
        /// What was given (truncated to 64 characters).
        account: String,
    },
    /// The key ID is empty or longer than 256 bytes.
    #[error("the key ID is empty or too long")]
    InvalidKeyId,
    /// The account publishes no key with this ID, even after a (rate-limited) refetch: the key was retired
    /// (deleted, or a system key rotated out), it was never this account's, or the account does not exist (Google
    /// answers its document with 404: no keys).
    #[error("{account} publishes no key {key_id:?}: the key was retired, or is not this account's")]
    UnknownKeyId {
        /// The account.
        account: String,
        /// The key ID given (truncated to 64 characters).
        key_id: String,
    },
    /// The signature does not verify with the named key: the bytes were changed, or another key signed them.
    #[error("the signature does not verify with key {key_id:?} of {account}")]
    InvalidSignature {
        /// The account.
        account: String,
        /// The key ID given (truncated to 64 characters).
        key_id: String,
    },
    /// The account's keys could not be fetched (and no earlier copy is within the stale bound).
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
}

impl SignatureError {
    /// A short, stable, machine-readable reason for logs and metrics: `invalid_account`, `invalid_key_id`,
    /// `unknown_key_id`, `invalid_signature`, `keys_unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidAccount { .. } => "invalid_account",
            Self::InvalidKeyId => "invalid_key_id",
            Self::UnknownKeyId { .. } => "unknown_key_id",
            Self::InvalidSignature { .. } => "invalid_signature",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// The keys could not be fetched: not the presenter's fault.
    pub fn is_keys_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }

    /// The key is not (or no longer) published by the account.
    pub fn is_unknown_key_id(&self) -> bool {
        matches!(self, Self::UnknownKeyId { .. })
    }

    /// The signature does not verify.
    pub fn is_invalid_signature(&self) -> bool {
        matches!(self, Self::InvalidSignature { .. })
    }
}

/// The published public keys of any number of service accounts, one [`KeyCache`] per account (so each gets
/// Google's key-cache semantics: `Cache-Control: max-age`, single flight, a rate-limited refetch on an unknown
/// key ID, stale-while-error). Cheap to clone; clones share the caches.
///
/// Keys come from `https://www.googleapis.com/service_accounts/v1/metadata/x509/EMAIL` unless told otherwise
/// ([`endpoints`](Self::endpoints), [`format`](Self::format)). A key Google stops publishing (a deleted
/// user-managed key, a rotated-out system key) is refused once the cached document expires (its `max-age`), or
/// at once by a verifier that had not fetched it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_core::google::Endpoints;
/// use idgate_core::keys::ServiceAccountKeys;
///
/// let google = idgate_emulator::Emulator::start().await?;
/// let key_file = google.create_service_account("signer@my-project.iam.gserviceaccount.com");
///
/// let keys = ServiceAccountKeys::new().endpoints(&Endpoints::under(&google.base_url()));
/// let published = keys.public_certificates("signer@my-project.iam.gserviceaccount.com").await?;
/// assert!(published.get(key_file.private_key_id()).is_some());
///
/// // Anything that is not a service-account email is refused before any fetch.
/// let err = keys.public_certificates("../../oauth2/v1/certs").await.unwrap_err();
/// assert_eq!(err.reason(), "invalid_account");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceAccountKeys {
    root: Url,
    format: ServiceAccountKeyFormat,
    config: KeyCacheConfig,
    clock: Arc<dyn Clock>,
    client: Option<reqwest::Client>,
    capacity: u64,
    caches: moka::sync::Cache<Arc<str>, KeyCache>,
}

impl fmt::Debug for ServiceAccountKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKeys")
            .field("root", &self.root.as_str())
            .field("format", &self.format)
            .field("accounts_cached", &self.caches.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for ServiceAccountKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceAccountKeys {
    /// Google's documents (`https://www.googleapis.com/service_accounts/v1/metadata/x509/EMAIL`), the default
    /// [`KeyCacheConfig`], the system clock, at most [`DEFAULT_ACCOUNT_CAPACITY`] accounts.
    pub fn new() -> Self {
        Self {
            root: Endpoints::default().service_account_keys,
            format: ServiceAccountKeyFormat::default(),
            config: KeyCacheConfig::default(),
            clock: clock::system(),
            client: None,
            capacity: DEFAULT_ACCOUNT_CAPACITY,
            caches: new_caches(DEFAULT_ACCOUNT_CAPACITY),
        }
    }

    /// Reads the documents under `endpoints.service_account_keys` (the emulator:
    /// `Endpoints::under(&emulator.base_url())`). Drops any cache already held.
    #[must_use]
    pub fn endpoints(self, endpoints: &Endpoints) -> Self {
        self.root(endpoints.service_account_keys.clone())
    }

    /// Reads the documents under `root` (`{root}x509/{EMAIL}`). Drops any cache already held.
    #[must_use]
    pub fn root(mut self, mut root: Url) -> Self {
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        self.root = root;
        self.reset()
    }

    /// Which document to read (default [`ServiceAccountKeyFormat::X509`]). Drops any cache already held.
    #[must_use]
    pub fn format(mut self, format: ServiceAccountKeyFormat) -> Self {
        self.format = format;
        self.reset()
    }

    /// How each account's cache times its fetches. Drops any cache already held.
    #[must_use]
    pub fn cache_config(mut self, config: KeyCacheConfig) -> Self {
        self.config = config;
        self.reset()
    }

    /// The clock every cache reads (tests). Drops any cache already held.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self.reset()
    }

    /// The HTTP client the documents are fetched with. Drops any cache already held.
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self.reset()
    }

    /// How many accounts' caches are held at most (default [`DEFAULT_ACCOUNT_CAPACITY`]). Drops any cache already
    /// held.
    #[must_use]
    pub fn capacity(mut self, accounts: u64) -> Self {
        self.capacity = accounts.max(1);
        self.reset()
    }

    fn reset(mut self) -> Self {
        self.caches = new_caches(self.capacity);
        self
    }

    /// The URL of `account`'s document in the configured format.
    ///
    /// ```
    /// use idgate_core::keys::ServiceAccountKeys;
    ///
    /// let url = ServiceAccountKeys::new().document_url("app@my-project.iam.gserviceaccount.com").unwrap();
    /// assert_eq!(
    ///     url.as_str(),
    ///     "https://www.googleapis.com/service_accounts/v1/metadata/x509/app@my-project.iam.gserviceaccount.com"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidAccount`] when `account` is not a service-account email.
    pub fn document_url(&self, account: &str) -> Result<Url, SignatureError> {
        let account = checked_account(account)?;
        Ok(self.url_for(&account))
    }

    fn url_for(&self, account: &str) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend([self.format.segment(), account]);
        }
        url
    }

    /// The key cache of `account` (created on first use; share it with a verifier, warm it, read its status).
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidAccount`] when `account` is not a service-account email.
    pub fn cache(&self, account: &str) -> Result<KeyCache, SignatureError> {
        let account = checked_account(account)?;
        Ok(self.caches.get_with(Arc::from(account.as_str()), || {
            let mut document = HttpKeySource::new(self.url_for(&account), self.format.key_format());
            if let Some(client) = &self.client {
                document = document.client(client.clone());
            }
            let mut config = self.config.clone();
            config.metrics_label = config.metrics_label.or(Some("service_account"));
            KeyCache::with_config(AccountDocument(document), config, self.clock.clone())
        }))
    }

    /// The keys `account` publishes now (through its cache): what verifies its `signBlob`/`signJwt` signatures
    /// and the signatures of its key files' keys.
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidAccount`], or [`SignatureError::KeysUnavailable`] when the document cannot be
    /// fetched.
    pub async fn public_certificates(&self, account: &str) -> Result<KeySet, SignatureError> {
        Ok(self.cache(account)?.key_set().await?)
    }

    /// The key `key_id` of `account`, refetching the account's document (rate-limited) when the ID is unknown.
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidAccount`], [`SignatureError::InvalidKeyId`], [`SignatureError::UnknownKeyId`],
    /// [`SignatureError::KeysUnavailable`].
    pub async fn key(
        &self,
        account: &str,
        key_id: &str,
    ) -> Result<Arc<VerifyingKey>, SignatureError> {
        if key_id.is_empty() || key_id.len() > 256 {
            return Err(SignatureError::InvalidKeyId);
        }
        let cache = self.cache(account)?;
        cache.key(key_id).await.map_err(|e| match e {
            KeyLookupError::UnknownKeyId => SignatureError::UnknownKeyId {
                account: truncate(account),
                key_id: truncate(key_id),
            },
            KeyLookupError::Unavailable(u) => SignatureError::KeysUnavailable(u),
        })
    }

    /// Checks that `signature` over `bytes` was made by `account`'s key `key_id` (RSASSA-PKCS1-v1_5 with
    /// SHA-256, what IAM `signBlob` and a key file's key produce): the check a third party runs on a message an
    /// app signed as itself.
    ///
    /// Pass the account **you** trust, not one the presenter names: any service account can sign, so a valid
    /// signature only says which account signed; and each new account costs a document fetch (at most
    /// [`capacity`](Self::capacity) accounts are cached).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use idgate_core::google::Endpoints;
    /// use idgate_core::keys::ServiceAccountKeys;
    ///
    /// let google = idgate_emulator::Emulator::start().await?;
    /// let key_file = google.create_service_account("signer@my-project.iam.gserviceaccount.com");
    /// // The app signs with its key file's private key (idgate-client's `Signer` does this, or IAM `signBlob`).
    /// let message = b"order 42 shipped";
    /// # use base64::Engine as _;
    /// # let private = jsonwebtoken::EncodingKey::from_rsa_pem(key_file.private_key_pem().as_bytes())?;
    /// # let signature = jsonwebtoken::crypto::sign(message, &private, jsonwebtoken::Algorithm::RS256)?;
    /// # let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature)?;
    ///
    /// let keys = ServiceAccountKeys::new().endpoints(&Endpoints::under(&google.base_url()));
    /// let account = "signer@my-project.iam.gserviceaccount.com";
    /// keys.verify_signed_blob(account, key_file.private_key_id(), message, &signature).await?;
    ///
    /// let err = keys
    ///     .verify_signed_blob(account, key_file.private_key_id(), b"order 43 shipped", &signature)
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.reason(), "invalid_signature");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`SignatureError`] naming why the signature is not accepted.
    pub async fn verify_signed_blob(
        &self,
        account: &str,
        key_id: &str,
        bytes: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let key = self.key(account, key_id).await?;
        if key.verify(bytes, signature) {
            Ok(())
        } else {
            Err(SignatureError::InvalidSignature {
                account: truncate(account),
                key_id: truncate(key_id),
            })
        }
    }
}

/// One account's document. Google answers 404 for an account that does not exist (or was deleted), and an account
/// may publish no key: both are an answer, "no keys", not an outage. So the cache holds an empty set, every
/// signature is refused (`unknown_key_id`), and keys cached before a deletion are dropped at the next fetch instead
/// of being served stale for hours as they would be through a failure.
#[derive(Debug)]
struct AccountDocument(HttpKeySource);

impl KeySource for AccountDocument {
    fn fetch(&self) -> BoxFuture<'_, Result<FetchedKeys, FetchError>> {
        Box::pin(async move {
            match self.0.fetch().await {
                Err(FetchError::Status(404))
                | Err(FetchError::Parse(KeySetError::NoUsableKeys(_))) => Ok(FetchedKeys {
                    keys: KeySet::empty(KeyAlgorithm::Rs256),
                    max_age: None,
                }),
                other => other,
            }
        })
    }

    fn describe(&self) -> String {
        self.0.describe()
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.0.algorithm()
    }
}

fn new_caches(capacity: u64) -> moka::sync::Cache<Arc<str>, KeyCache> {
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        // An account nobody asked about for a day is dropped; its keys are fetched again if it comes back.
        .time_to_idle(Duration::from_secs(24 * 3600))
        .build()
}

/// `account` if it is a service-account email, lower-cased (Google's are; `iss` and the documents use that
/// form): one `@`, a non-empty name of ASCII letters, digits, `-`, `_`, `.` and `+`, and a domain of ASCII
/// letters, digits, `-` and `.` containing a dot; at most 254 bytes. Nothing that could leave the document's path
/// (`/`, `?`, `#`, `%`, `..`) passes.
pub(crate) fn checked_account(account: &str) -> Result<String, SignatureError> {
    let invalid = || SignatureError::InvalidAccount {
        account: truncate(account),
    };
    if account.len() > 254 {
        return Err(invalid());
    }
    let (name, domain) = account.split_once('@').ok_or_else(invalid)?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    if name_ok && domain_ok && !name.starts_with('.') {
        Ok(account.to_ascii_lowercase())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_checked_and_lower_cased() {
        for ok in [
            "app@my-project.iam.gserviceaccount.com",
            "my-project@appspot.gserviceaccount.com",
            "123456789-compute@developer.gserviceaccount.com",
            "proj.example.com@appspot.gserviceaccount.com",
        ] {
            assert_eq!(checked_account(ok).unwrap(), ok);
        }
        assert_eq!(
            checked_account("App@My-Project.iam.gserviceaccount.com").unwrap(),
            "app@my-project.iam.gserviceaccount.com"
        );
        for bad in [
            "",
            "@",
            "app",
            "app@",
            "@x.com",
            "a@b@c.com",
            "app@localhost",
            "../x@y.com",
            "a@b.com/../../oauth2/v1/certs",
            "a@b.com?x=1",
            "a@b.com#x",
            "a%40b@c.com",
            "a@.com",
            "a@b..com",
            "a@b.com.",
            " a@b.com",
            "a@b.com\n",
            "ä@b.com",
        ] {
            assert_eq!(
                checked_account(bad).unwrap_err().reason(),
                "invalid_account",
                "{bad:?}"
            );
        }
        assert!(checked_account(&format!("{}@b.com", "a".repeat(300))).is_err());
    }

    #[test]
    fn document_urls() {
        let keys = ServiceAccountKeys::new()
            .root("http://127.0.0.1:9/base".parse().unwrap())
            .format(ServiceAccountKeyFormat::Jwk);
        assert_eq!(
            keys.document_url("a+b@p.iam.gserviceaccount.com")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/base/jwk/a+b@p.iam.gserviceaccount.com"
        );
    }

    #[tokio::test]
    async fn bad_key_ids_are_refused_before_any_fetch() {
        // Port 9: nothing listens, so a fetch would surface as keys_unavailable, not these reasons.
        let keys = ServiceAccountKeys::new().root("http://127.0.0.1:9/".parse().unwrap());
        let account = "a@p.iam.gserviceaccount.com";
        for kid in ["", &"k".repeat(257)] {
            let err = keys.verify_signed_blob(account, kid, b"x", b"y").await;
            assert_eq!(err.unwrap_err().reason(), "invalid_key_id");
        }
        assert_eq!(keys.caches.entry_count(), 0);
    }
}
