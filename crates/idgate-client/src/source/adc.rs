//! Application Default Credentials, for ID tokens and access tokens.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use idgate_core::google::{Endpoints, HttpOptions};
use idgate_core::token::IdToken;

use super::key_file::Credentials;
use super::{
    AccessToken, AccessTokenSource, AuthorizedUser, BoxFuture, IdTokenSource, Impersonated,
    MetadataServer, ServiceAccountKey,
};
use crate::Scopes;
use crate::error::{KeyOrigin, SourceError};

/// The environment variable naming a credentials file.
pub(crate) const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The environment variable naming the project billed for API calls; it wins over a file's `quota_project_id`.
pub(crate) const GOOGLE_CLOUD_QUOTA_PROJECT: &str = "GOOGLE_CLOUD_QUOTA_PROJECT";

/// Which credentials [`Adc`] settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdcKind {
    /// A `service_account` key file from `GOOGLE_APPLICATION_CREDENTIALS`.
    ServiceAccountKey,
    /// An `impersonated_service_account` file from `GOOGLE_APPLICATION_CREDENTIALS`.
    Impersonated,
    /// The metadata server.
    MetadataServer,
    /// An `authorized_user` file from `GOOGLE_APPLICATION_CREDENTIALS` (access tokens only; see
    /// [`AdcBuilder::accept_user_credentials`]).
    AuthorizedUser,
}

/// The credentials ADC settled on.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    ServiceAccountKey(ServiceAccountKey),
    Impersonated(Impersonated),
    MetadataServer(MetadataServer),
    AuthorizedUser(AuthorizedUser),
}

/// Application Default Credentials for ID tokens (AIP-4110 as Google's libraries implement it for ID tokens):
///
/// 1. the file named by `GOOGLE_APPLICATION_CREDENTIALS`, which must be a `service_account` key or an
///    `impersonated_service_account` file; any other type (`authorized_user`, `external_account`, ...) is
///    [`SourceError::UnsupportedCredentials`], with advice, because Google cannot mint an ID token for a custom
///    audience from it;
/// 2. otherwise the metadata server (at `GCE_METADATA_HOST` when set).
///
/// The gcloud well-known file (`~/.config/gcloud/application_default_credentials.json`) is skipped, as Python's
/// and Go's ID-token ADC do: it normally holds user credentials. When the metadata server turns out to be
/// unreachable, the error is [`SourceError::NoCredentials`].
///
/// ```
/// use idgate_client::{Adc, AdcKind};
///
/// // The environment is passed explicitly here; `Adc::new()` reads the process's.
/// let adc = Adc::builder().env(|_| None).build().unwrap();
/// assert_eq!(adc.kind(), AdcKind::MetadataServer);
///
/// let err = Adc::builder()
///     .env(|name| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/nonexistent.json".into()))
///     .build()
///     .unwrap_err();
/// assert!(err.is_key_file());
/// ```
///
/// For **access tokens** ([`AccessTokenSource`]) the search order is the same; with
/// [`AdcBuilder::accept_user_credentials`], an `authorized_user` file is accepted too (access tokens work for users).
/// The quota project ([`quota_project`](Self::quota_project), sent as `x-goog-user-project` by the adapters) is
/// `GOOGLE_CLOUD_QUOTA_PROJECT` when set, else the file's `quota_project_id`.
///
/// ```
/// use idgate_client::{AccessTokenSource, Adc};
///
/// let adc = Adc::builder()
///     .env(|name| (name == "GOOGLE_CLOUD_QUOTA_PROJECT").then(|| "billed-project".into()))
///     .build()
///     .unwrap();
/// assert_eq!(adc.quota_project(), Some("billed-project"));
/// ```
#[derive(Debug, Clone)]
pub struct Adc {
    resolved: Resolved,
    quota_project: Option<String>,
}

impl Adc {
    /// Resolves ADC from the process environment and Google's real endpoints.
    ///
    /// # Errors
    ///
    /// See [`AdcBuilder::build`].
    pub fn new() -> Result<Self, SourceError> {
        Self::builder().build()
    }

    /// A builder, to pass the environment explicitly, point at other endpoints, or tune the HTTP behaviour.
    pub fn builder() -> AdcBuilder {
        AdcBuilder::default()
    }

    /// Which credentials were found.
    pub fn kind(&self) -> AdcKind {
        match self.resolved {
            Resolved::ServiceAccountKey(_) => AdcKind::ServiceAccountKey,
            Resolved::Impersonated(_) => AdcKind::Impersonated,
            Resolved::MetadataServer(_) => AdcKind::MetadataServer,
            Resolved::AuthorizedUser(_) => AdcKind::AuthorizedUser,
        }
    }

    /// The credentials themselves (for a [`Signer`](crate::Signer)).
    pub(crate) fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    /// The project billed for API calls: `GOOGLE_CLOUD_QUOTA_PROJECT`, else the credentials file's
    /// `quota_project_id`.
    pub fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    async fn mint_access_token(&self, scopes: &Scopes) -> Result<AccessToken, SourceError> {
        match &self.resolved {
            Resolved::ServiceAccountKey(s) => s.access_token(scopes).await,
            Resolved::Impersonated(s) => AccessTokenSource::access_token(s, scopes).await,
            Resolved::AuthorizedUser(s) => s.access_token(scopes).await,
            Resolved::MetadataServer(s) => {
                s.access_token(scopes).await.map_err(not_on_google_cloud)
            }
        }
    }

    async fn mint(&self, audience: &str) -> Result<IdToken, SourceError> {
        match &self.resolved {
            Resolved::ServiceAccountKey(s) => s.id_token(audience).await,
            Resolved::Impersonated(s) => s.id_token(audience).await,
            Resolved::MetadataServer(s) => s.id_token(audience).await.map_err(not_on_google_cloud),
            Resolved::AuthorizedUser(_) => Err(SourceError::UnsupportedCredentials {
                credential_type: "authorized_user".to_owned(),
                origin: None,
            }),
        }
    }
}

/// Nothing answers at the metadata address (or something that is not one): not on Google Cloud.
fn not_on_google_cloud(e: SourceError) -> SourceError {
    if e.is_transport() || e.is_not_metadata_server() {
        SourceError::NoCredentials {
            metadata: Box::new(e),
        }
    } else {
        e
    }
}

impl AdcKind {
    /// The `source` label of the [metrics](crate::metrics) for these credentials.
    pub fn source_name(self) -> &'static str {
        match self {
            Self::ServiceAccountKey => "service_account_key",
            Self::Impersonated => "impersonated",
            Self::MetadataServer => "metadata",
            Self::AuthorizedUser => "authorized_user",
        }
    }
}

impl IdTokenSource for Adc {
    fn source_name(&self) -> &'static str {
        self.kind().source_name()
    }

    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.mint(audience))
    }
}

impl AccessTokenSource for Adc {
    fn source_name(&self) -> &'static str {
        self.kind().source_name()
    }

    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(self.mint_access_token(scopes))
    }

    fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }
}

type EnvLookup = Arc<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// Configures [`Adc`]. See [`Adc`] for an example.
#[derive(Default)]
pub struct AdcBuilder {
    env: Option<EnvLookup>,
    endpoints: Option<Endpoints>,
    http: Option<HttpOptions>,
    user_credentials: bool,
}

impl fmt::Debug for AdcBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdcBuilder")
            .field("env", &self.env.as_ref().map(|_| "<custom>"))
            .field("endpoints", &self.endpoints)
            .field("http", &self.http)
            .field("user_credentials", &self.user_credentials)
            .finish()
    }
}

impl AdcBuilder {
    /// Looks environment variables up with `lookup` instead of the process environment (tests, and programs that
    /// hold their configuration elsewhere). Only `GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST` and
    /// `GOOGLE_CLOUD_QUOTA_PROJECT` are read.
    #[must_use]
    pub fn env(
        mut self,
        lookup: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
    ) -> Self {
        self.env = Some(Arc::new(lookup));
        self
    }

    /// Sends metadata-server requests to `endpoints.metadata` (over `GCE_METADATA_HOST`) and impersonation requests
    /// to `endpoints.iam_credentials`. Key files keep their own `token_uri`.
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Accept an `authorized_user` file (gcloud user credentials) from `GOOGLE_APPLICATION_CREDENTIALS`, for
    /// access tokens (default false: refused at build, because it cannot mint ID tokens for a custom audience;
    /// with true, its ID-token calls fail with [`SourceError::UnsupportedCredentials`]).
    ///
    /// ```
    /// use idgate_client::{Adc, AdcKind};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("user.json");
    /// # std::fs::write(&path, r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#).unwrap();
    /// let env = move |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone().into());
    /// assert!(Adc::builder().env(env.clone()).build().unwrap_err().is_unsupported_credentials());
    /// let adc = Adc::builder().env(env).accept_user_credentials(true).build().unwrap();
    /// assert_eq!(adc.kind(), AdcKind::AuthorizedUser);
    /// ```
    #[must_use]
    pub fn accept_user_credentials(mut self, accept: bool) -> Self {
        self.user_credentials = accept;
        self
    }

    /// The HTTP client, timeout and retries of every request (default: each source's shared client, 10 s,
    /// 3 attempts).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.http = Some(options);
        self
    }

    /// Resolves the credentials. Reads the credentials file, if any; makes no request.
    ///
    /// # Errors
    ///
    /// - [`SourceError::KeyFile`]: `GOOGLE_APPLICATION_CREDENTIALS` names a file that cannot be read or parsed;
    /// - [`SourceError::UnsupportedCredentials`]: the file is of a type Google cannot mint custom-audience ID tokens
    ///   from (`authorized_user`, `external_account`, ...);
    /// - [`SourceError::Config`]: `GCE_METADATA_HOST` is unusable.
    pub fn build(self) -> Result<Adc, SourceError> {
        let env: EnvLookup = self
            .env
            .clone()
            .unwrap_or_else(|| Arc::new(|name| std::env::var_os(name)));
        let path = env(GOOGLE_APPLICATION_CREDENTIALS)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut quota_project = None;
        let resolved = match path {
            Some(path) => {
                let creds = Credentials::from_file(&path)?;
                quota_project = creds.optional_string("quota_project_id").map(str::to_owned);
                match creds.kind().as_deref() {
                    Some("authorized_user") if self.user_credentials => Resolved::AuthorizedUser(
                        self.tune_user(AuthorizedUser::from_credentials(&creds)?),
                    ),
                    Some("service_account") => Resolved::ServiceAccountKey(
                        self.tune_key(ServiceAccountKey::from_credentials(&creds)?),
                    ),
                    Some("impersonated_service_account") => Resolved::Impersonated(
                        self.tune_impersonated(Impersonated::from_credentials(&creds)?),
                    ),
                    other => {
                        return Err(SourceError::UnsupportedCredentials {
                            credential_type: other.unwrap_or("<missing>").to_owned(),
                            origin: Some(KeyOrigin::File(path)),
                        });
                    }
                }
            }
            None => {
                let metadata = MetadataServer::from_env(&*env, self.endpoints.as_ref());
                metadata.root()?;
                Resolved::MetadataServer(self.tune_metadata(metadata))
            }
        };
        if let Some(project) = env(GOOGLE_CLOUD_QUOTA_PROJECT)
            .and_then(|p| p.into_string().ok())
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
        {
            quota_project = Some(project);
        }
        Ok(Adc {
            resolved,
            quota_project,
        })
    }

    fn tune_user(&self, s: AuthorizedUser) -> AuthorizedUser {
        match &self.http {
            Some(options) => s.http(options.clone()),
            None => s,
        }
    }

    fn tune_key(&self, s: ServiceAccountKey) -> ServiceAccountKey {
        match &self.http {
            Some(options) => s.http(options.clone()),
            None => s,
        }
    }

    fn tune_impersonated(&self, mut s: Impersonated) -> Impersonated {
        if let Some(e) = &self.endpoints {
            s = s.endpoints(e);
        }
        match &self.http {
            Some(options) => s.http(options.clone()),
            None => s,
        }
    }

    fn tune_metadata(&self, s: MetadataServer) -> MetadataServer {
        match &self.http {
            Some(options) => s.http(options.clone()),
            None => s,
        }
    }
}
