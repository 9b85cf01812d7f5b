//! [`Emulator`] and its [`EmulatorBuilder`].

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::error::EmulatorError;
use crate::host::AllowedHosts;
use crate::keys::{EcKey, KeyRing, RsaKey, iap_kid, oidc_kid};
use crate::routes;
use crate::service_account::ServiceAccountKey;
use crate::state::{Config, Endpoint, Fault, Shared, read, write};
use crate::token::{MintKeys, TokenSpec, mint, numeric_id, unix_now};

/// Google's `oauth2/v1/certs` and `v3/certs` max-age is in this neighbourhood (it varies, ~19000–25000 s).
pub const DEFAULT_OIDC_MAX_AGE: Duration = Duration::from_secs(20_000);
/// The max-age the emulator's IAP key endpoints advertise by default.
pub const DEFAULT_IAP_MAX_AGE: Duration = Duration::from_secs(3_600);
/// The default project id.
pub const DEFAULT_PROJECT_ID: &str = "idgate-emulated";
/// The default project number.
pub const DEFAULT_PROJECT_NUMBER: u64 = 123_456_789_012;

/// Resolves when the emulator is asked to stop ([`Emulator::shutdown`] or drop): the graceful-shutdown signal
/// [`EmulatorBuilder::start_with`] hands its serve loop.
pub type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Configures and starts an [`Emulator`]. Get one with [`Emulator::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EmulatorBuilder {
    bind: SocketAddr,
    allow_non_loopback: bool,
    allowed_hosts: Vec<String>,
    allow_any_host: bool,
    project_id: String,
    project_number: u64,
    oidc_max_age: Duration,
    iap_max_age: Duration,
    age: Duration,
    metadata_service_account: Option<String>,
    oidc_key_count: usize,
    iap_key_count: usize,
    zone: String,
    instance_name: String,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            allow_non_loopback: false,
            allowed_hosts: Vec::new(),
            allow_any_host: false,
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            project_number: DEFAULT_PROJECT_NUMBER,
            oidc_max_age: DEFAULT_OIDC_MAX_AGE,
            iap_max_age: DEFAULT_IAP_MAX_AGE,
            age: Duration::ZERO,
            metadata_service_account: None,
            oidc_key_count: 2,
            iap_key_count: 2,
            zone: "us-central1-a".to_owned(),
            instance_name: "idgate-emulated-instance".to_owned(),
        }
    }
}

impl EmulatorBuilder {
    /// Listens on `addr` instead of `127.0.0.1:0`. A non-loopback address is refused unless
    /// [`EmulatorBuilder::allow_non_loopback`] is also called.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Permits binding a non-loopback address. Only for a user who explicitly asked for it.
    ///
    /// This does not widen the Host rule (see [`EmulatorBuilder::allow_host`]) beyond the literal of the
    /// bound address: clients that reach the emulator by another name or address need it allowed.
    pub fn allow_non_loopback(mut self) -> Self {
        self.allow_non_loopback = true;
        self
    }

    /// Also answers requests whose `Host` (or HTTP/2 `:authority`) names `host`: a host name (compared
    /// case-insensitively) or an IP address, without a port (any port is accepted). Repeatable.
    ///
    /// By default the emulator and its [`IapProxy`](crate::IapProxy) answer only requests addressed to
    /// `localhost`, a `127.0.0.0/8` address, `[::1]` or the literal of the address they are bound to; any
    /// other request gets `403 Forbidden`, mints nothing and is not counted in [`Emulator::hits`]. That stops
    /// a web page from using DNS rebinding to have the developer's browser mint tokens and read them.
    /// Allow a name only when clients use it legitimately (a container's name, `host.docker.internal`).
    /// An entry that is not a host name or an IP address makes [`EmulatorBuilder::start`] fail with
    /// [`EmulatorError::AllowedHost`].
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts.push(host.into());
        self
    }

    /// Answers requests whatever their `Host`, turning off the protection against DNS rebinding that
    /// [`EmulatorBuilder::allow_host`] describes. Prefer naming the hosts.
    pub fn allow_any_host(mut self) -> Self {
        self.allow_any_host = true;
        self
    }

    /// The project id (default [`DEFAULT_PROJECT_ID`]).
    pub fn project_id(mut self, id: impl Into<String>) -> Self {
        self.project_id = id.into();
        self
    }

    /// The project number (default [`DEFAULT_PROJECT_NUMBER`]).
    pub fn project_number(mut self, number: u64) -> Self {
        self.project_number = number;
        self
    }

    /// The `max-age` of the OIDC key endpoints' `Cache-Control` (whole seconds; default
    /// [`DEFAULT_OIDC_MAX_AGE`]).
    pub fn oidc_max_age(mut self, max_age: Duration) -> Self {
        self.oidc_max_age = max_age;
        self
    }

    /// The `max-age` of the IAP key endpoints' `Cache-Control` (default [`DEFAULT_IAP_MAX_AGE`]).
    pub fn iap_max_age(mut self, max_age: Duration) -> Self {
        self.iap_max_age = max_age;
        self
    }

    /// The `Age` header of the key endpoints (whole seconds; default 0), as a CDN in front of Google sends it.
    pub fn age(mut self, age: Duration) -> Self {
        self.age = age;
        self
    }

    /// The metadata server's default service account (default
    /// `PROJECT_NUMBER-compute@developer.gserviceaccount.com`).
    pub fn metadata_service_account(mut self, email: impl Into<String>) -> Self {
        self.metadata_service_account = Some(email.into());
        self
    }

    /// How many OIDC keys are published at start (default 2, as Google does; at least 1).
    pub fn oidc_key_count(mut self, count: usize) -> Self {
        self.oidc_key_count = count.max(1);
        self
    }

    /// How many IAP keys are published at start (default 2; at least 1).
    pub fn iap_key_count(mut self, count: usize) -> Self {
        self.iap_key_count = count.max(1);
        self
    }

    /// The metadata server's instance zone (default `us-central1-a`).
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// The metadata server's instance name.
    pub fn instance_name(mut self, name: impl Into<String>) -> Self {
        self.instance_name = name.into();
        self
    }

    /// Generates the keys, binds the socket and starts serving (with `axum::serve`) on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::NonLoopback`] for a non-loopback address without consent,
    /// [`EmulatorError::AllowedHost`] for an invalid [`EmulatorBuilder::allow_host`] entry,
    /// [`EmulatorError::Bind`] when the socket cannot be bound, or a crypto/certificate error from key
    /// generation.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        self.start_with(|listener, app, shutdown| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        })
        .await
    }

    /// Like [`EmulatorBuilder::start`], but the emulator's routes are served by `serve`: it gets the bound
    /// listener, the routes and a [`ShutdownSignal`], and its future is spawned on the current tokio runtime.
    /// For a serve loop with limits (the `idgate emulator` command uses `idgate-serve`'s); it should stop
    /// accepting when the signal resolves and let the requests in flight finish.
    ///
    /// # Errors
    ///
    /// As [`EmulatorBuilder::start`]; an error `serve`'s future returns later is logged.
    pub async fn start_with<S, F>(self, serve: S) -> Result<Emulator, EmulatorError>
    where
        S: FnOnce(TcpListener, axum::Router, ShutdownSignal) -> F,
        F: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        if !self.bind.ip().is_loopback() && !self.allow_non_loopback {
            return Err(EmulatorError::NonLoopback(self.bind));
        }
        let allowed_hosts =
            AllowedHosts::new(self.bind.ip(), &self.allowed_hosts, self.allow_any_host)?;
        let oidc = (0..self.oidc_key_count)
            .map(|_| RsaKey::generate(oidc_kid()?))
            .collect::<Result<Vec<_>, _>>()?;
        let iap = (0..self.iap_key_count)
            .map(|_| EcKey::generate(iap_kid()?))
            .collect::<Result<Vec<_>, _>>()?;
        let unknown_rsa = RsaKey::generate(oidc_kid()?)?;
        let unknown_ec = EcKey::generate(iap_kid()?)?;

        let listener =
            TcpListener::bind(self.bind)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: self.bind,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: self.bind,
                source,
            })?;
        let base_url = Url::parse(&format!("http://{local_addr}/"))?;
        let metadata_service_account = self.metadata_service_account.unwrap_or_else(|| {
            format!(
                "{}-compute@developer.gserviceaccount.com",
                self.project_number
            )
        });
        let config = Config {
            instance_id: numeric_id(&format!("instance:{}", self.instance_name))[..19].to_owned(),
            project_id: self.project_id,
            project_number: self.project_number,
            oidc_max_age: self.oidc_max_age.as_secs(),
            iap_max_age: self.iap_max_age.as_secs(),
            age: self.age.as_secs(),
            metadata_service_account,
            zone: self.zone,
            instance_name: self.instance_name,
            instance_creation_timestamp: unix_now(),
            license_ids: vec![numeric_id("license:idgate-emulated")[..19].to_owned()],
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(
            config,
            base_url.clone(),
            KeyRing::new(oidc),
            KeyRing::new(iap),
            unknown_rsa,
            unknown_ec,
            allowed_hosts,
            shutdown_rx,
        ));
        shared.register_metadata_account();
        let app = routes::router(Arc::clone(&shared));
        let mut stop = shutdown_tx.subscribe();
        let serving = serve(
            listener,
            app,
            Box::pin(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }),
        );
        let task = tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::warn!(%error, "idgate emulator server stopped with an error");
            }
        });
        tracing::debug!(%base_url, "idgate emulator listening");
        Ok(Emulator {
            shared,
            local_addr,
            shutdown_tx,
            task: Some(task),
        })
    }
}

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

    /// `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// The URL of `endpoint` (for endpoints with a path parameter, the metadata server's default account
    /// or the `-` project is used; [`Endpoint::GenerateIdToken`] and [`Endpoint::ServiceAccountCerts`] use
    /// the metadata service account).
    #[must_use]
    pub fn url(&self, endpoint: Endpoint) -> Url {
        let sa = &self.shared.config.metadata_service_account;
        let path = match endpoint {
            Endpoint::OidcJwks => "/oauth2/v3/certs".to_owned(),
            Endpoint::OidcPemCerts => "/oauth2/v1/certs".to_owned(),
            Endpoint::OpenIdConfiguration => "/.well-known/openid-configuration".to_owned(),
            Endpoint::IapJwks => "/iap/verify/public_key-jwk".to_owned(),
            Endpoint::IapPem => "/iap/verify/public_key".to_owned(),
            Endpoint::MetadataIdentity => {
                "/computeMetadata/v1/instance/service-accounts/default/identity".to_owned()
            }
            Endpoint::MetadataEmail => {
                "/computeMetadata/v1/instance/service-accounts/default/email".to_owned()
            }
            Endpoint::MetadataAccessToken => {
                "/computeMetadata/v1/instance/service-accounts/default/token".to_owned()
            }
            Endpoint::MetadataServiceAccountInfo => {
                "/computeMetadata/v1/instance/service-accounts/default/".to_owned()
            }
            Endpoint::MetadataRoot => "/".to_owned(),
            Endpoint::MetadataProjectId => "/computeMetadata/v1/project/project-id".to_owned(),
            Endpoint::MetadataNumericProjectId => {
                "/computeMetadata/v1/project/numeric-project-id".to_owned()
            }
            Endpoint::Token => "/token".to_owned(),
            Endpoint::GenerateIdToken => {
                format!("/v1/projects/-/serviceAccounts/{sa}:generateIdToken")
            }
            Endpoint::ServiceAccountCerts => format!("/robot/v1/metadata/x509/{sa}"),
        };
        self.shared.url(&path)
    }

    /// `/oauth2/v3/certs`: the OIDC JWKS (Google's `https://www.googleapis.com/oauth2/v3/certs`).
    #[must_use]
    pub fn oidc_jwks_url(&self) -> Url {
        self.url(Endpoint::OidcJwks)
    }

    /// `/oauth2/v1/certs`: the OIDC X.509 certificates (Google's `https://www.googleapis.com/oauth2/v1/certs`).
    #[must_use]
    pub fn oidc_pem_certs_url(&self) -> Url {
        self.url(Endpoint::OidcPemCerts)
    }

    /// `/.well-known/openid-configuration`.
    #[must_use]
    pub fn openid_configuration_url(&self) -> Url {
        self.url(Endpoint::OpenIdConfiguration)
    }

    /// `/iap/verify/public_key-jwk` (Google's `https://www.gstatic.com/iap/verify/public_key-jwk`).
    #[must_use]
    pub fn iap_jwks_url(&self) -> Url {
        self.url(Endpoint::IapJwks)
    }

    /// `/iap/verify/public_key` (Google's `https://www.gstatic.com/iap/verify/public_key`).
    #[must_use]
    pub fn iap_pem_url(&self) -> Url {
        self.url(Endpoint::IapPem)
    }

    /// `http://127.0.0.1:PORT/computeMetadata/v1/`: the metadata server's root.
    #[must_use]
    pub fn metadata_base_url(&self) -> Url {
        self.shared.url("/computeMetadata/v1/")
    }

    /// `127.0.0.1:PORT`, the value for `GCE_METADATA_HOST`.
    #[must_use]
    pub fn metadata_host(&self) -> String {
        self.local_addr.to_string()
    }

    /// `/computeMetadata/v1/instance/service-accounts/default/identity`.
    #[must_use]
    pub fn metadata_identity_url(&self) -> Url {
        self.url(Endpoint::MetadataIdentity)
    }

    /// `/token`: the OAuth 2.0 token endpoint (Google's `https://oauth2.googleapis.com/token`).
    #[must_use]
    pub fn token_url(&self) -> Url {
        self.url(Endpoint::Token)
    }

    /// The IAM Credentials API root (Google's `https://iamcredentials.googleapis.com/`): the base URL.
    #[must_use]
    pub fn iam_credentials_url(&self) -> Url {
        self.base_url()
    }

    /// `/v1/projects/-/serviceAccounts/{email}:generateIdToken`.
    #[must_use]
    pub fn generate_id_token_url(&self, email: &str) -> Url {
        self.shared.url(&format!(
            "/v1/projects/-/serviceAccounts/{email}:generateIdToken"
        ))
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

    /// The metadata server's default service account email.
    #[must_use]
    pub fn metadata_service_account(&self) -> &str {
        &self.shared.config.metadata_service_account
    }

    /// IAP's audience for App Engine: `/projects/PROJECT_NUMBER/apps/PROJECT_ID`. The default audience of
    /// [`TokenSpec::iap_user`] tokens.
    #[must_use]
    pub fn iap_audience_app_engine(&self) -> String {
        self.shared.iap_audience_app_engine()
    }

    /// IAP's audience for a global backend service: `/projects/PROJECT_NUMBER/global/backendServices/ID`.
    #[must_use]
    pub fn iap_audience_backend_service(&self, service_id: u64) -> String {
        format!(
            "/projects/{}/global/backendServices/{service_id}",
            self.project_number()
        )
    }

    /// IAP's audience for Cloud Run: `/projects/PROJECT_NUMBER/locations/REGION/services/NAME`.
    #[must_use]
    pub fn iap_audience_cloud_run(&self, region: &str, service: &str) -> String {
        format!(
            "/projects/{}/locations/{region}/services/{service}",
            self.project_number()
        )
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
    pub fn hits(&self, endpoint: Endpoint) -> u64 {
        self.shared.hits(endpoint)
    }

    /// Sets every hit counter back to zero.
    pub fn reset_hits(&self) {
        self.shared.reset_hits();
    }

    /// Makes the next `times` requests to `endpoint` play `fault`. Injections queue up in order.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
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
    pub fn create_service_account(&self, email: &str) -> ServiceAccountKey {
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
    ) -> Result<ServiceAccountKey, EmulatorError> {
        self.shared.create_service_account(email)
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
