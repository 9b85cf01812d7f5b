//! [`EmulatorBuilder`]: what an [`Emulator`] is configured with (address, Host rule, project, key counts, cache
//! headers, metadata instance), and how it starts.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use tokio::sync::watch;
use url::Url;

use super::Emulator;
use crate::error::EmulatorError;
use crate::host::AllowedHosts;
use crate::keys::{EcKey, KeyRing, RsaKey, iap_kid, oidc_kid};
use crate::routes;
use crate::state::{Config, Shared};
use crate::token::{numeric_id, unix_now};

/// Google's `oauth2/v1/certs` and `v3/certs` max-age is in this neighbourhood (it varies, ~19000–25000 s).
pub const DEFAULT_OIDC_MAX_AGE: Duration = Duration::from_secs(20_000);
/// The max-age the emulator's IAP key endpoints advertise by default.
pub const DEFAULT_IAP_MAX_AGE: Duration = Duration::from_secs(3_600);
/// The max-age the emulator's service-account key documents (`service_accounts/v1/metadata/{x509,jwk,raw}/EMAIL`)
/// advertise by default: 15 minutes, how often Google's IAM documentation recommends refreshing a cached
/// service-account key set (user-managed keys can be added and deleted at any time).
pub const DEFAULT_SERVICE_ACCOUNT_KEYS_MAX_AGE: Duration = Duration::from_secs(900);
/// The default project id.
pub const DEFAULT_PROJECT_ID: &str = "idgate-emulated";
/// The default project number.
pub const DEFAULT_PROJECT_NUMBER: u64 = 123_456_789_012;
/// The default zone of the metadata server's instance (a Compute Engine zone).
pub const DEFAULT_ZONE: &str = "us-central1-a";
/// The universe domain the metadata server reports by default: Google Cloud's, outside sovereign clouds.
pub const DEFAULT_UNIVERSE_DOMAIN: &str = "googleapis.com";

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
    service_account_keys_max_age: Duration,
    age: Duration,
    metadata_service_account: Option<String>,
    oidc_key_count: usize,
    iap_key_count: usize,
    zone: String,
    region: Option<String>,
    universe_domain: String,
    gke_cluster: Option<String>,
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
            service_account_keys_max_age: DEFAULT_SERVICE_ACCOUNT_KEYS_MAX_AGE,
            age: Duration::ZERO,
            metadata_service_account: None,
            oidc_key_count: 2,
            iap_key_count: 2,
            zone: DEFAULT_ZONE.to_owned(),
            region: None,
            universe_domain: DEFAULT_UNIVERSE_DOMAIN.to_owned(),
            gke_cluster: None,
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

    /// The `max-age` of the service-account key documents' `Cache-Control`
    /// (`service_accounts/v1/metadata/{x509,jwk,raw}/EMAIL`; default [`DEFAULT_SERVICE_ACCOUNT_KEYS_MAX_AGE`]).
    pub fn service_account_keys_max_age(mut self, max_age: Duration) -> Self {
        self.service_account_keys_max_age = max_age;
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

    /// The metadata server's instance zone (default [`DEFAULT_ZONE`], a Compute Engine zone). `instance/zone`
    /// answers `projects/NUMBER/zones/ZONE`. Cloud Run answers a zone named after its region with a `-1`
    /// suffix (`us-central1-1`): [`EmulatorBuilder::serverless_region`] sets both.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// The region `instance/region` answers (`projects/NUMBER/regions/REGION`), as Cloud Run, Cloud Run
    /// functions and App Engine do. By default none: `instance/region` answers 404, as on Compute Engine and GKE.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A serverless runtime's location (Cloud Run, Cloud Run functions, App Engine): `instance/region` answers
    /// `region` and `instance/zone` answers `region-1`, as Cloud Run's metadata server does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = idgate_emulator::Emulator::builder()
    ///     .project_number(42)
    ///     .serverless_region("europe-west1")
    ///     .start()
    ///     .await?;
    /// assert_eq!(emulator.region(), Some("europe-west1"));
    /// assert_eq!(emulator.zone(), "europe-west1-1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn serverless_region(self, region: impl Into<String>) -> Self {
        let region = region.into();
        let zone = format!("{region}-1");
        self.region(region).zone(zone)
    }

    /// The universe domain `universe/universe-domain` answers (default [`DEFAULT_UNIVERSE_DOMAIN`]; a sovereign
    /// cloud has its own).
    pub fn universe_domain(mut self, domain: impl Into<String>) -> Self {
        self.universe_domain = domain.into();
        self
    }

    /// Plays a GKE node: `instance/attributes/cluster-name` answers `name` (by default it answers 404, as
    /// off GKE).
    pub fn gke_cluster(mut self, name: impl Into<String>) -> Self {
        self.gke_cluster = Some(name.into());
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
            service_account_keys_max_age: self.service_account_keys_max_age.as_secs(),
            age: self.age.as_secs(),
            metadata_service_account,
            zone: self.zone,
            region: self.region,
            universe_domain: self.universe_domain,
            gke_cluster: self.gke_cluster,
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
