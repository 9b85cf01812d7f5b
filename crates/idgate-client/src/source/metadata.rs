//! The metadata server: ID tokens, access tokens and a few facts about where the code runs.

use std::ffi::OsString;
use std::time::Duration;

use idgate_core::google::Endpoints;
use idgate_core::token::IdToken;
use url::Url;

use super::{AccessToken, AccessTokenSource, BoxFuture, IdTokenSource};
use crate::audience::check_audience;
use crate::error::{Endpoint, ResponseProblem, SourceError};
use crate::transport::{Http, RetryPolicy};

/// The environment variable Google's libraries read for the metadata server's host (`host` or `host:port`).
pub(crate) const GCE_METADATA_HOST: &str = "GCE_METADATA_HOST";

/// The claims format of metadata-server ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// `aud`, `azp`, `exp`, `iat`, `iss`, `sub`, `email`, `email_verified`.
    Standard,
    /// Standard plus the `google.compute_engine` claim (project, zone, instance). What Python always asks for and
    /// Go asks for by default, so idgate does too.
    #[default]
    Full,
}

/// The metadata server of the Google Cloud environment the code runs in (Compute Engine, GKE with workload
/// identity, Cloud Run, App Engine 2nd gen, Cloud Functions).
///
/// Every request carries `Metadata-Flavor: Google`, and every answer must carry it back, or it is rejected as
/// [`SourceError::NotMetadataServer`]. ID tokens come from
/// `GET {root}instance/service-accounts/default/identity?audience=AUD&format=full`, with the audience
/// URL-encoded.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idgate_client::SourceError> {
/// use idgate_client::{IdTokenSource, MetadataServer};
///
/// let metadata = MetadataServer::new(); // GCE_METADATA_HOST, else metadata.google.internal
/// let project = metadata.project_id().await?;
/// let token = metadata.id_token("https://my-service-abc123-uc.a.run.app").await?;
/// # let _ = (project, token);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MetadataServer {
    root: Result<Url, SourceError>,
    format: Format,
    licenses: bool,
    http: Http,
}

impl Default for MetadataServer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetadataServer {
    /// The metadata server at `http://{GCE_METADATA_HOST}` when that variable is set (as Google's libraries do),
    /// else at `http://metadata.google.internal`.
    ///
    /// An unusable `GCE_METADATA_HOST` is reported as [`SourceError::Config`] by every call.
    pub fn new() -> Self {
        Self::from_env(&|name| std::env::var_os(name), None)
    }

    /// The metadata server under `base` (`http://127.0.0.1:8085`): requests go to `{base}/computeMetadata/v1/...`.
    pub fn with_base_url(base: &Url) -> Self {
        Self::at_root(Ok(Endpoints::under(base).metadata))
    }

    /// The metadata server whose `computeMetadata/v1/` root is `endpoints.metadata`.
    pub fn with_endpoints(endpoints: &Endpoints) -> Self {
        Self::at_root(Ok(endpoints.metadata.clone()))
    }

    /// `GCE_METADATA_HOST` from `env`; explicit endpoints win over it.
    pub(crate) fn from_env(
        env: &dyn Fn(&str) -> Option<OsString>,
        endpoints: Option<&Endpoints>,
    ) -> Self {
        if let Some(endpoints) = endpoints {
            return Self::with_endpoints(endpoints);
        }
        let root = match env(GCE_METADATA_HOST) {
            None => Ok(Endpoints::default().metadata),
            Some(host) => root_for_host(&host),
        };
        Self::at_root(root)
    }

    fn at_root(root: Result<Url, SourceError>) -> Self {
        Self {
            root,
            format: Format::default(),
            licenses: false,
            http: Http::metadata(),
        }
    }

    /// The claims format of ID tokens (default [`Format::Full`]).
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Whether full-format ID tokens include the instance's license codes (`licenses=TRUE`; default false).
    /// Ignored with [`Format::Standard`].
    #[must_use]
    pub fn licenses(mut self, licenses: bool) -> Self {
        self.licenses = licenses;
        self
    }

    /// Uses this HTTP client instead of the shared default (which never uses a proxy).
    #[must_use]
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.http.set_client(client);
        self
    }

    /// The per-request timeout (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// How transient failures are retried (default: 3 attempts with exponential backoff).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.http.retry = retry;
        self
    }

    /// The `computeMetadata/v1/` root requests go to.
    ///
    /// # Errors
    ///
    /// [`SourceError::Config`] when `GCE_METADATA_HOST` was unusable.
    pub fn root(&self) -> Result<&Url, SourceError> {
        self.root.as_ref().map_err(Clone::clone)
    }

    fn url(&self, path: &str) -> Result<Url, SourceError> {
        let root = self.root()?;
        root.join(path).map_err(|_| SourceError::Config {
            reason: format!("cannot join {path} to {root}"),
        })
    }

    async fn get_bytes(&self, url: Url) -> Result<Vec<u8>, SourceError> {
        self.http
            .send(Endpoint::MetadataServer, true, |client| {
                client.get(url.clone()).header("Metadata-Flavor", "Google")
            })
            .await
    }

    /// A metadata value as text, e.g. `instance/zone` or `project/project-id` (relative to `computeMetadata/v1/`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; a missing value is [`SourceError::Status`] 404.
    pub async fn get(&self, path: &str) -> Result<String, SourceError> {
        let url = self.url(path.trim_start_matches('/'))?;
        let body = self.get_bytes(url).await?;
        String::from_utf8(body)
            .map(|s| s.trim().to_owned())
            .map_err(|_| SourceError::invalid(Endpoint::MetadataServer, ResponseProblem::NotText))
    }

    /// The project ID (`project/project-id`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`].
    pub async fn project_id(&self) -> Result<String, SourceError> {
        self.get("project/project-id").await
    }

    /// The project number (`project/numeric-project-id`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; a non-numeric answer is [`SourceError::InvalidResponse`].
    pub async fn numeric_project_id(&self) -> Result<u64, SourceError> {
        self.get("project/numeric-project-id")
            .await?
            .parse()
            .map_err(|_| SourceError::invalid(Endpoint::MetadataServer, ResponseProblem::NotText))
    }

    /// The email of the attached service account (`instance/service-accounts/default/email`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`].
    pub async fn service_account_email(&self) -> Result<String, SourceError> {
        self.get("instance/service-accounts/default/email").await
    }

    /// An access token of the attached service account (`instance/service-accounts/default/token`): the source
    /// credential for [`Impersonated`](super::Impersonated).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`].
    pub async fn access_token(&self) -> Result<AccessToken, SourceError> {
        let url = self.url("instance/service-accounts/default/token")?;
        let body = self.get_bytes(url).await?;
        let token = crate::transport::json_field(Endpoint::MetadataServer, &body, "access_token")?;
        Ok(AccessToken::new(token, crate::transport::expires_in(&body)))
    }

    /// The identity URL for `audience`, with the audience URL-encoded by `url`'s query serializer.
    fn identity_url(&self, audience: &str) -> Result<Url, SourceError> {
        let mut url = self.url("instance/service-accounts/default/identity")?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("audience", audience);
            if self.format == Format::Full {
                query.append_pair("format", "full");
                if self.licenses {
                    query.append_pair("licenses", "TRUE");
                }
            }
        }
        Ok(url)
    }

    async fn mint(&self, audience: &str) -> Result<IdToken, SourceError> {
        check_audience(audience)?;
        let url = self.identity_url(audience)?;
        let body = self.get_bytes(url).await?;
        let raw = String::from_utf8(body).map_err(|_| {
            SourceError::invalid(Endpoint::MetadataServer, ResponseProblem::NotText)
        })?;
        crate::transport::id_token(Endpoint::MetadataServer, raw)
    }
}

fn root_for_host(host: &OsString) -> Result<Url, SourceError> {
    let bad = || SourceError::Config {
        reason: format!("{GCE_METADATA_HOST} is not a usable host[:port]"),
    };
    let host = host
        .to_str()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(bad)?;
    if host.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let url = Url::parse(&format!("http://{host}/computeMetadata/v1/")).map_err(|_| bad())?;
    if url.host().is_none() {
        return Err(bad());
    }
    Ok(url)
}

impl IdTokenSource for MetadataServer {
    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.mint(audience))
    }
}

impl AccessTokenSource for MetadataServer {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, SourceError>> {
        Box::pin(Self::access_token(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn host_selection() {
        let m = MetadataServer::from_env(&env(&[]), None);
        assert_eq!(
            m.root().unwrap().as_str(),
            "http://metadata.google.internal/computeMetadata/v1/"
        );
        let m = MetadataServer::from_env(&env(&[("GCE_METADATA_HOST", "127.0.0.1:8085")]), None);
        assert_eq!(
            m.root().unwrap().as_str(),
            "http://127.0.0.1:8085/computeMetadata/v1/"
        );
        let m = MetadataServer::from_env(&env(&[("GCE_METADATA_HOST", "evil/path")]), None);
        assert!(m.root().unwrap_err().is_config());
        let endpoints = Endpoints::under(&"http://10.0.0.1:9".parse().unwrap());
        let m = MetadataServer::from_env(
            &env(&[("GCE_METADATA_HOST", "127.0.0.1:8085")]),
            Some(&endpoints),
        );
        assert_eq!(
            m.root().unwrap().as_str(),
            "http://10.0.0.1:9/computeMetadata/v1/"
        );
    }

    #[test]
    fn identity_url_encodes_the_audience() {
        let m = MetadataServer::with_base_url(&"http://127.0.0.1:1".parse().unwrap());
        let url = m.identity_url("https://a.example/x?y=1&z=2 w").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/computeMetadata/v1/instance/service-accounts/default/identity?\
             audience=https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2+w&format=full"
        );
        let url = m.clone().licenses(true).identity_url("a").unwrap();
        assert!(
            url.as_str()
                .ends_with("audience=a&format=full&licenses=TRUE")
        );
        let url = m
            .format(Format::Standard)
            .licenses(true)
            .identity_url("a")
            .unwrap();
        assert!(url.as_str().ends_with("identity?audience=a"));
    }
}
