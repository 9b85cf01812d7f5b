//! The metadata server: ID tokens, access tokens and a few facts about where the code runs.

use std::ffi::OsString;

use idgate_core::google::metadata::GCE_METADATA_HOST;
use idgate_core::google::{Endpoints, HttpOptions, MetadataClient};
use idgate_core::token::IdToken;
use url::Url;

use super::{AccessToken, AccessTokenSource, BoxFuture, IdTokenSource};
use crate::Scopes;
use crate::audience::check_audience;
use crate::error::{Endpoint, ResponseProblem, SourceError};

/// The account whose tokens are minted when none is named.
const DEFAULT_ACCOUNT: &str = "default";

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
/// identity, Cloud Run, App Engine 2nd gen, Cloud Functions), as a token source.
///
/// Built on idgate-core's [`MetadataClient`], which owns the conversation: every request carries
/// `Metadata-Flavor: Google`, and every answer must carry it back, or it is rejected as
/// [`SourceError::NotMetadataServer`]. ID tokens come from
/// `GET {root}instance/service-accounts/default/identity?audience=AUD&format=full`, with the audience
/// URL-encoded; access tokens from `GET {root}instance/service-accounts/default/token?scopes=a,b`
/// (`{access_token, expires_in, token_type}`). [`service_account`](Self::service_account) names another of the
/// instance's accounts instead of `default`.
///
/// **Scopes** are honoured on the serverless runtimes (Cloud Run, Cloud Functions, App Engine 2nd gen). On Compute
/// Engine and GKE the instance's (node pool's) access scopes apply, whatever is asked: the token is the same, so
/// its [`AccessToken::scopes`] is `None` unless the server says.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idgate_client::SourceError> {
/// use idgate_client::{IdTokenSource, MetadataServer};
///
/// let metadata = MetadataServer::new(); // GCE_METADATA_HOST, else metadata.google.internal
/// let project = metadata.project_id().await?;
/// let token = metadata.id_token("https://my-service-abc123-uc.a.run.app").await?;
///
/// // An access token for Cloud Storage.
/// use idgate_client::{AccessTokenSource, Scopes};
/// let scopes = Scopes::new(["https://www.googleapis.com/auth/devstorage.read_only"]).unwrap();
/// let access = metadata.access_token(&scopes).await?;
/// # let _ = (project, token, access);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MetadataServer {
    client: MetadataClient,
    format: Format,
    licenses: bool,
    account: String,
}

impl Default for MetadataServer {
    fn default() -> Self {
        Self::new()
    }
}

impl From<MetadataClient> for MetadataServer {
    fn from(client: MetadataClient) -> Self {
        Self::from_client(client)
    }
}

impl MetadataServer {
    /// The metadata server at `http://{GCE_METADATA_HOST}` when that variable is set (as Google's libraries do),
    /// else at `http://metadata.google.internal`.
    ///
    /// An unusable `GCE_METADATA_HOST` is reported as [`SourceError::Config`] by every call.
    pub fn new() -> Self {
        Self::from_client(MetadataClient::new())
    }

    /// The metadata server under `base` (`http://127.0.0.1:8085`, where `idgate-emulator` serves it), on Google's
    /// own paths.
    pub fn from_base_url(base: &Url) -> Self {
        Self::from_client(MetadataClient::from_base_url(base))
    }

    /// The metadata server whose root is `endpoints.metadata`.
    pub fn from_endpoints(endpoints: &Endpoints) -> Self {
        Self::from_client(MetadataClient::from_endpoints(endpoints))
    }

    /// The metadata server `client` talks to, with its HTTP settings.
    pub fn from_client(client: MetadataClient) -> Self {
        Self {
            client,
            format: Format::default(),
            licenses: false,
            account: DEFAULT_ACCOUNT.to_owned(),
        }
    }

    /// `GCE_METADATA_HOST` from `env`; explicit endpoints win over it.
    pub(crate) fn from_env(
        env: &dyn Fn(&str) -> Option<OsString>,
        endpoints: Option<&Endpoints>,
    ) -> Self {
        match (endpoints, env(GCE_METADATA_HOST)) {
            (Some(endpoints), _) => Self::from_endpoints(endpoints),
            (None, Some(host)) => Self::from_client(MetadataClient::from_host(host)),
            (None, None) => Self::from_endpoints(&Endpoints::default()),
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

    /// Mints tokens as the instance's service account `email` instead of its `default` one
    /// (`instance/service-accounts/{email}/...`; the metadata server lists them under
    /// `instance/service-accounts/`). Applies to ID tokens and access tokens.
    ///
    /// ```
    /// use idgate_client::MetadataServer;
    ///
    /// let metadata = MetadataServer::new().service_account("batch@my-project.iam.gserviceaccount.com");
    /// assert_eq!(metadata.account(), "batch@my-project.iam.gserviceaccount.com");
    /// ```
    #[must_use]
    pub fn service_account(mut self, email: impl Into<String>) -> Self {
        self.account = email.into().trim().to_owned();
        self
    }

    /// The account tokens are minted as: `default`, or the email given to
    /// [`service_account`](Self::service_account).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// `instance/service-accounts/{account}/{leaf}`, refusing an account that would change the path.
    fn account_path(&self, leaf: &str) -> Result<String, SourceError> {
        let account = &self.account;
        if account.is_empty()
            || account == "."
            || account == ".."
            || !account
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'%' | b'\\'))
        {
            return Err(SourceError::Config {
                reason: "the metadata service account is not an email or `default`".into(),
            });
        }
        Ok(format!("instance/service-accounts/{account}/{leaf}"))
    }

    /// The HTTP client, timeout and retries (default: a shared client that never uses a proxy and never follows
    /// redirects, 10 s, 3 attempts).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.client = self.client.http(options);
        self
    }

    /// The metadata-server client underneath, for facts this source does not wrap.
    pub fn client(&self) -> &MetadataClient {
        &self.client
    }

    /// The metadata server's root, which metadata paths are relative to.
    ///
    /// # Errors
    ///
    /// [`SourceError::Config`] when `GCE_METADATA_HOST` was unusable.
    pub fn root(&self) -> Result<&Url, SourceError> {
        Ok(self.client.root()?)
    }

    /// A metadata value as text, e.g. `instance/zone` or `project/project-id` (relative to the root).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; a missing value is [`SourceError::Status`] 404.
    pub async fn get(&self, path: &str) -> Result<String, SourceError> {
        Ok(self.client.get(path).await?)
    }

    /// The project ID (`project/project-id`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; an answer that is not a project ID is [`SourceError::InvalidResponse`].
    pub async fn project_id(&self) -> Result<String, SourceError> {
        Ok(self.client.project_id().await?)
    }

    /// The project number (`project/numeric-project-id`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; a non-numeric answer is [`SourceError::InvalidResponse`].
    pub async fn numeric_project_id(&self) -> Result<u64, SourceError> {
        Ok(self.client.numeric_project_id().await?)
    }

    /// The email of the attached service account (`instance/service-accounts/default/email`).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`].
    pub async fn service_account_email(&self) -> Result<String, SourceError> {
        Ok(self.client.service_account_email().await?)
    }

    /// An access token for `scopes` (`instance/service-accounts/{account}/token?scopes=a,b`). See the type's
    /// documentation for where the scopes are honoured.
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; an answer without `access_token` or `expires_in` is
    /// [`SourceError::InvalidResponse`], one with `expires_in` ≤ 0 is [`SourceError::Expired`].
    pub async fn access_token(&self, scopes: &Scopes) -> Result<AccessToken, SourceError> {
        let path = self.account_path("token")?;
        let query = scopes.as_query();
        let body = self
            .client
            .get_bytes(&path, &[("scopes", query.as_str())])
            .await?;
        crate::transport::access_token(Endpoint::MetadataServer, &body, None)
    }

    /// The query of the identity request for `audience` (URL-encoded by `url`'s query serializer).
    fn identity_query<'a>(&self, audience: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut query = vec![("audience", audience)];
        if self.format == Format::Full {
            query.push(("format", "full"));
            if self.licenses {
                query.push(("licenses", "TRUE"));
            }
        }
        query
    }

    async fn mint(&self, audience: &str) -> Result<IdToken, SourceError> {
        check_audience(audience)?;
        let path = self.account_path("identity")?;
        let body = self
            .client
            .get_bytes(&path, &self.identity_query(audience))
            .await?;
        let raw = String::from_utf8(body).map_err(|_| {
            SourceError::invalid(Endpoint::MetadataServer, ResponseProblem::NotText)
        })?;
        crate::transport::id_token(Endpoint::MetadataServer, raw)
    }
}

impl IdTokenSource for MetadataServer {
    fn source_name(&self) -> &'static str {
        "metadata"
    }

    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.mint(audience))
    }
}

impl AccessTokenSource for MetadataServer {
    fn source_name(&self) -> &'static str {
        "metadata"
    }

    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(Self::access_token(self, scopes))
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

    impl MetadataServer {
        fn identity_url(&self, audience: &str) -> Result<Url, SourceError> {
            Ok(self.client.url(
                &self.account_path("identity")?,
                &self.identity_query(audience),
            )?)
        }
    }

    #[test]
    fn token_url_names_the_account_and_joins_scopes() {
        let m = MetadataServer::from_base_url(&"http://127.0.0.1:1".parse().unwrap());
        let scopes = Scopes::new(["b", "a"]).unwrap();
        let url = m
            .client
            .url(
                &m.account_path("token").unwrap(),
                &[("scopes", &scopes.as_query())],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/computeMetadata/v1/instance/service-accounts/default/token?scopes=a%2Cb"
        );
        let m = m.service_account("x@p.iam.gserviceaccount.com");
        assert!(
            m.account_path("token")
                .unwrap()
                .ends_with("service-accounts/x@p.iam.gserviceaccount.com/token")
        );
        for bad in ["", "..", "a/b", "a?b", "a b", "a%2Fb"] {
            let m = m.clone().service_account(bad);
            assert!(m.account_path("token").unwrap_err().is_config(), "{bad}");
        }
    }

    #[test]
    fn identity_url_encodes_the_audience() {
        let m = MetadataServer::from_base_url(&"http://127.0.0.1:1".parse().unwrap());
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
