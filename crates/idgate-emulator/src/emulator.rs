//! [`Emulator`] and its [`EmulatorBuilder`]: the running emulator (keys, faults, hits, minting) here, its
//! configuration in `builder`, and the URLs and audiences it answers for in `urls`.

mod builder;
mod urls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::EmulatorError;
use crate::keys::{EcKey, RsaKey, iap_kid, oidc_kid};
use crate::service_account::ServiceAccountKeyFile;
use crate::state::{Fault, Route, Shared, read, write};
use crate::token::{MintKeys, TokenSpec, mint};

pub use builder::{
    DEFAULT_IAP_MAX_AGE, DEFAULT_OIDC_MAX_AGE, DEFAULT_PROJECT_ID, DEFAULT_PROJECT_NUMBER,
    DEFAULT_SERVICE_ACCOUNT_KEYS_MAX_AGE, DEFAULT_UNIVERSE_DOMAIN, DEFAULT_ZONE, EmulatorBuilder,
    ShutdownSignal,
};

/// A running emulator of Google's identity endpoints on a loopback port. It stops when dropped or on
/// [`Emulator::shutdown`]. See the [crate docs](crate) for an example.
#[derive(Debug)]
pub struct Emulator {
    pub(crate) shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// A builder with Google-like defaults.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Starts an emulator with the defaults.
    ///
    /// # Errors
    ///
    /// See [`EmulatorBuilder::start`].
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::builder().start().await
    }

    /// The address the emulator listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The project id.
    #[must_use]
    pub fn project_id(&self) -> &str {
        &self.shared.config.project_id
    }

    /// The project number.
    #[must_use]
    pub fn project_number(&self) -> u64 {
        self.shared.config.project_number
    }

    /// The zone `instance/zone` names (`projects/NUMBER/zones/ZONE`).
    #[must_use]
    pub fn zone(&self) -> &str {
        &self.shared.config.zone
    }

    /// The region `instance/region` names, if one is configured (else it answers 404).
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.shared.config.region.as_deref()
    }

    /// The universe domain `universe/universe-domain` answers.
    #[must_use]
    pub fn universe_domain(&self) -> &str {
        &self.shared.config.universe_domain
    }

    /// The GKE cluster `instance/attributes/cluster-name` answers, if one is configured (else it answers 404).
    #[must_use]
    pub fn gke_cluster(&self) -> Option<&str> {
        self.shared.config.gke_cluster.as_deref()
    }

    /// The metadata server's default service account email.
    #[must_use]
    pub fn metadata_service_account(&self) -> &str {
        &self.shared.config.metadata_service_account
    }

    /// Mints the token `spec` describes.
    ///
    /// # Panics
    ///
    /// If every key of the needed kind was retired, or the crypto backend fails; use
    /// [`Emulator::try_mint`] to get those as errors.
    #[must_use]
    pub fn mint(&self, spec: &TokenSpec) -> String {
        match self.try_mint(spec) {
            Ok(token) => token,
            Err(error) => panic!("idgate emulator could not mint a token: {error}"),
        }
    }

    /// Mints the token `spec` describes.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::NoSigningKey`] if every key of the needed kind was retired, or a crypto error.
    pub fn try_mint(&self, spec: &TokenSpec) -> Result<String, EmulatorError> {
        self.shared.mint(spec)
    }

    /// How many requests reached `endpoint` (faulted ones included).
    #[must_use]
    pub fn hits(&self, endpoint: Route) -> u64 {
        self.shared.hits(endpoint)
    }

    /// Sets every hit counter back to zero.
    pub fn reset_hits(&self) {
        self.shared.reset_hits();
    }

    /// Makes the next `times` requests to `endpoint` play `fault`. Injections queue up in order.
    pub fn inject(&self, endpoint: Route, fault: Fault, times: u32) {
        self.shared.inject(endpoint, fault, times);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// The published OIDC key ids, in publication order.
    #[must_use]
    pub fn oidc_kids(&self) -> Vec<String> {
        read(&self.shared.oidc)
            .published()
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// The published IAP key ids, in publication order.
    #[must_use]
    pub fn iap_kids(&self) -> Vec<String> {
        read(&self.shared.iap)
            .published()
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// The kid of the key that signs OIDC tokens now (`None` once every key is retired).
    #[must_use]
    pub fn signing_oidc_kid(&self) -> Option<String> {
        read(&self.shared.oidc).signing().map(|k| k.kid.clone())
    }

    /// The kid of the key that signs IAP assertions now.
    #[must_use]
    pub fn signing_iap_kid(&self) -> Option<String> {
        read(&self.shared.iap).signing().map(|k| k.kid.clone())
    }

    /// Publishes a new OIDC key and makes it the signing key; returns its kid.
    ///
    /// # Errors
    ///
    /// A crypto or certificate error from key generation.
    pub fn rotate_oidc_key(&self) -> Result<String, EmulatorError> {
        let key = RsaKey::generate(oidc_kid()?)?;
        let kid = key.kid.clone();
        write(&self.shared.oidc).rotate_in(key);
        Ok(kid)
    }

    /// Stops publishing OIDC key `kid`. If it was the signing key, the newest remaining key signs.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownKey`] if `kid` is not published.
    pub fn retire_oidc_key(&self, kid: &str) -> Result<(), EmulatorError> {
        if write(&self.shared.oidc).retire(kid) {
            Ok(())
        } else {
            Err(EmulatorError::UnknownKey(kid.to_owned()))
        }
    }

    /// Publishes a new IAP key and makes it the signing key; returns its kid.
    ///
    /// # Errors
    ///
    /// A crypto error from key generation.
    pub fn rotate_iap_key(&self) -> Result<String, EmulatorError> {
        let key = EcKey::generate(iap_kid()?)?;
        let kid = key.kid.clone();
        write(&self.shared.iap).rotate_in(key);
        Ok(kid)
    }

    /// Stops publishing IAP key `kid`. If it was the signing key, the newest remaining key signs.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownKey`] if `kid` is not published.
    pub fn retire_iap_key(&self, kid: &str) -> Result<(), EmulatorError> {
        if write(&self.shared.iap).retire(kid) {
            Ok(())
        } else {
            Err(EmulatorError::UnknownKey(kid.to_owned()))
        }
    }

    /// Registers the service account `email` (if new), gives it a fresh RSA key, and returns the key in
    /// Google's JSON key-file format with `token_uri` pointing at the emulator's `/token`.
    ///
    /// # Panics
    ///
    /// If the crypto backend fails to generate a key; [`Emulator::try_create_service_account`] returns
    /// that as an error instead.
    #[must_use]
    pub fn create_service_account(&self, email: &str) -> ServiceAccountKeyFile {
        match self.try_create_service_account(email) {
            Ok(key) => key,
            Err(error) => panic!("idgate emulator could not create a service account: {error}"),
        }
    }

    /// Like [`Emulator::create_service_account`], returning failures.
    ///
    /// # Errors
    ///
    /// A crypto or certificate error from key generation.
    pub fn try_create_service_account(
        &self,
        email: &str,
    ) -> Result<ServiceAccountKeyFile, EmulatorError> {
        self.shared.create_service_account(email)
    }

    /// Deletes the key `key_id` of the service account `email`, as `gcloud iam service-accounts keys delete` does
    /// (or as Google retires a system-managed key): it is no longer in any of the account's public-key documents
    /// (x509, jwk, raw), and the token endpoint and IAM refuse JWTs signed with it. Deleting the key
    /// `signBlob`/`signJwt` sign with makes the next such call create a fresh one. Returns whether the key
    /// existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let key = emulator.create_service_account("old@my-proj.iam.gserviceaccount.com");
    /// assert!(emulator.delete_service_account_key(key.client_email(), key.private_key_id()));
    /// assert!(!emulator.delete_service_account_key(key.client_email(), key.private_key_id()));
    /// let certs: serde_json::Value =
    ///     reqwest::get(emulator.service_account_x509_url(key.client_email())).await?.json().await?;
    /// assert_eq!(certs, serde_json::json!({}));
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_service_account_key(&self, email: &str, key_id: &str) -> bool {
        self.shared.delete_service_account_key(email, key_id)
    }

    /// Gives the service account `email` a new system-managed key, the one IAM `signBlob` and `signJwt` sign with
    /// from now on, and returns its key ID. The previous system key stays published (and accepted) until
    /// [`Emulator::delete_service_account_key`] retires it, as Google keeps publishing a key for a while after it
    /// stops signing with it.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownAccount`] if `email` is not registered; a crypto or certificate error from key
    /// generation.
    pub fn rotate_system_key(&self, email: &str) -> Result<String, EmulatorError> {
        self.shared.rotate_system_key(email)
    }

    /// The key ID `signBlob` and `signJwt` sign with for `email` now, if the account has one yet (it is created on
    /// the first such call, or by [`Emulator::rotate_system_key`]).
    #[must_use]
    pub fn system_key_id(&self, email: &str) -> Option<String> {
        self.shared.system_key_id(email)
    }

    /// Stops serving and waits for in-flight requests to finish (hanging faults are released).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The server task sees this and stops accepting; hanging faults are released.
        let _ = self.shutdown_tx.send(true);
    }
}

impl Shared {
    pub(crate) fn iap_audience_app_engine(&self) -> String {
        format!(
            "/projects/{}/apps/{}",
            self.config.project_number, self.config.project_id
        )
    }

    pub(crate) fn mint(&self, spec: &TokenSpec) -> Result<String, EmulatorError> {
        let oidc = read(&self.oidc).signing();
        let iap = read(&self.iap).signing();
        let keys = MintKeys {
            oidc: oidc.as_deref(),
            iap: iap.as_deref(),
            unknown_rsa: &self.unknown_rsa,
            unknown_ec: &self.unknown_ec,
        };
        mint(spec, &keys, &self.iap_audience_app_engine())
    }
}
