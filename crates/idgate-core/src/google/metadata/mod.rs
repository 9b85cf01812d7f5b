//! The Google Cloud metadata server: the one client every part of idgate that talks to it goes through.
//!
//! It owns everything about the conversation: where the server is (`GCE_METADATA_HOST`, else
//! `metadata.google.internal`, or explicit [`Endpoints`]), the `Metadata-Flavor: Google` header on every request
//! and the check that every answer carries it back, no proxy and no redirects, the per-request timeout, bounded
//! retries on transport errors, 5xx and 429, capped body reads, and a [`MetadataError`] that tells "not on Google
//! Cloud" apart from "answered with an error" and "answered something unusable".
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use idgate_core::google::{HttpOptions, MetadataClient, RetryPolicy};
//! use std::time::Duration;
//!
//! // Nothing listens on port 9: not on Google Cloud.
//! let metadata = MetadataClient::from_base_url(&"http://127.0.0.1:9".parse().unwrap())
//!     .http(HttpOptions::new().timeout(Duration::from_millis(200)).retry(RetryPolicy::none()));
//! assert!(!metadata.is_available().await);
//! let err = metadata.project_id().await.unwrap_err();
//! assert!(err.is_not_on_google_cloud());
//! # }
//! ```

use std::ffi::OsStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use url::Url;

use super::http::CappedReadError;
use super::{Endpoints, HttpOptions};

mod error;
#[cfg(test)]
mod tests;

pub use error::{AnswerProblem, MetadataError};

/// The environment variable Google's libraries read for the metadata server's host (`host` or `host:port`).
pub const GCE_METADATA_HOST: &str = "GCE_METADATA_HOST";

/// How long [`MetadataClient::probe`] waits for an answer (at most; less if the configured timeout is shorter).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The largest body read from the metadata server (the same cap as every Google answer).
pub use super::http::MAX_BODY_BYTES;

/// The path of the root under the metadata server's origin.
const ROOT_PATH: &str = "computeMetadata/v1/";

/// A client of the metadata server of the Google Cloud environment the code runs in (Compute Engine, GKE with
/// workload identity, Cloud Run, App Engine 2nd gen, Cloud Functions). Cheap to clone.
///
/// Every request carries `Metadata-Flavor: Google`, and every answer but a 5xx or 429 must carry it back, or it is
/// rejected as [`MetadataError::NotMetadataServer`] (a captive portal, a proxy, another local service). See the
/// [module docs](self) for an example.
#[derive(Debug, Clone)]
pub struct MetadataClient {
    /// `None` when `GCE_METADATA_HOST` was unusable: every call then reports [`MetadataError::InvalidHost`].
    root: Option<Url>,
    options: HttpOptions,
    probe_timeout: Duration,
}

impl Default for MetadataClient {
    fn default() -> Self {
        Self::new()
    }
}

impl MetadataClient {
    /// The metadata server at `http://{GCE_METADATA_HOST}` when that variable is set (as Google's libraries do),
    /// else at `http://metadata.google.internal`.
    ///
    /// An unusable `GCE_METADATA_HOST` is reported as [`MetadataError::InvalidHost`] by every call.
    pub fn new() -> Self {
        match std::env::var_os(GCE_METADATA_HOST) {
            Some(host) => Self::from_host(host),
            None => Self::from_endpoints(&Endpoints::default()),
        }
    }

    /// The metadata server at `http://{host}`, where `host` is `host` or `host:port` (what `GCE_METADATA_HOST`
    /// holds). Anything else (a path, user info, a non-UTF-8 value) is reported as
    /// [`MetadataError::InvalidHost`] by every call.
    pub fn from_host(host: impl AsRef<OsStr>) -> Self {
        Self::at(root_for_host(host.as_ref()))
    }

    /// The metadata server under `base` (`http://127.0.0.1:8085`, where `idgate-emulator` serves it), on Google's
    /// own paths.
    pub fn from_base_url(base: &Url) -> Self {
        Self::from_endpoints(&Endpoints::under(base))
    }

    /// The metadata server whose root is `endpoints.metadata`.
    pub fn from_endpoints(endpoints: &Endpoints) -> Self {
        Self::from_root(endpoints.metadata.clone())
    }

    /// The metadata server whose root (the URL metadata paths are relative to) is `root`.
    pub fn from_root(mut root: Url) -> Self {
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        root.set_query(None);
        root.set_fragment(None);
        Self::at(Some(root))
    }

    fn at(root: Option<Url>) -> Self {
        Self {
            root,
            options: HttpOptions::default(),
            probe_timeout: PROBE_TIMEOUT,
        }
    }

    /// How long [`probe`](Self::probe) waits for an answer, at most (default [`PROBE_TIMEOUT`]; never more than
    /// the configured HTTP timeout).
    ///
    /// ```
    /// use idgate_core::google::{MetadataClient, PROBE_TIMEOUT};
    /// use std::time::Duration;
    ///
    /// let metadata = MetadataClient::from_host("127.0.0.1:9");
    /// assert_eq!(metadata.probe_timeout_value(), PROBE_TIMEOUT);
    /// let metadata = metadata.probe_timeout(Duration::from_millis(100));
    /// assert_eq!(metadata.probe_timeout_value(), Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }

    /// The longest [`probe`](Self::probe) waits: the probe timeout, or the HTTP timeout when that is shorter.
    pub fn probe_timeout_value(&self) -> Duration {
        self.options.timeout.min(self.probe_timeout)
    }

    /// The HTTP client, timeout and retries (default: a shared client that never uses a proxy and never follows
    /// redirects, 10 s, 3 attempts).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.options = options;
        self
    }

    /// The HTTP settings in use.
    pub fn http_options(&self) -> &HttpOptions {
        &self.options
    }

    /// The root metadata paths are relative to.
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidHost`] when `GCE_METADATA_HOST` was unusable.
    pub fn root(&self) -> Result<&Url, MetadataError> {
        self.root.as_ref().ok_or(MetadataError::InvalidHost)
    }

    /// The URL of `path` (relative to the root, e.g. `project/project-id`) with `query` form-encoded.
    ///
    /// ```
    /// use idgate_core::google::MetadataClient;
    ///
    /// let metadata = MetadataClient::from_base_url(&"http://127.0.0.1:8085".parse().unwrap());
    /// let url = metadata.url("instance/service-accounts/default/identity", &[("audience", "https://a.example/?x=1")]);
    /// assert_eq!(
    ///     url.unwrap().as_str(),
    ///     "http://127.0.0.1:8085/computeMetadata/v1/instance/service-accounts/default/identity?audience=https%3A%2F%2Fa.example%2F%3Fx%3D1"
    /// );
    /// assert!(metadata.url("../../elsewhere", &[]).unwrap_err().is_config());
    /// ```
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidHost`], or [`MetadataError::InvalidPath`] for a path that would leave the root
    /// (`..`, an absolute URL) or carries its own query.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, MetadataError> {
        let root = self.root()?;
        let invalid = || MetadataError::InvalidPath {
            path: path.chars().take(200).collect(),
        };
        let relative = path.trim_start_matches('/');
        if relative.contains(['?', '#']) {
            return Err(invalid());
        }
        let mut url = root.join(relative).map_err(|_| invalid())?;
        if !url.as_str().starts_with(root.as_str()) {
            return Err(invalid());
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// The body of a 2xx answer to `GET {root}{path}?{query}`.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; a missing value is [`MetadataError::Status`] 404.
    pub async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, MetadataError> {
        let url = self.url(path, query)?;
        let path = path.trim_start_matches('/');
        let client = self.client().map_err(|source| MetadataError::Unreachable {
            path: path.to_owned(),
            attempts: 0,
            source,
        })?;
        let (result, attempts) = self
            .options
            .retry
            .run(
                || self.attempt(&client, &url, path),
                MetadataError::is_transient,
            )
            .await;
        result.map_err(|e| e.with_attempts(attempts))
    }

    /// A metadata value as trimmed text, e.g. `instance/zone` or `project/project-id` (relative to the root).
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; a missing value is [`MetadataError::Status`] 404, a body that is not UTF-8 is
    /// [`MetadataError::UnusableAnswer`].
    pub async fn get(&self, path: &str) -> Result<String, MetadataError> {
        let body = self.get_bytes(path, &[]).await?;
        String::from_utf8(body)
            .map(|s| s.trim().to_owned())
            .map_err(|_| unusable(path, AnswerProblem::NotText))
    }

    /// A JSON answer, e.g. `instance/service-accounts/default/token` or `instance/service-accounts/default/` with
    /// `recursive=true`.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; a body that is not JSON of type `T` is [`MetadataError::UnusableAnswer`] (without
    /// the parser's message, which could quote the body).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, MetadataError> {
        let body = self.get_bytes(path, query).await?;
        serde_json::from_slice(&body).map_err(|_| unusable(path, AnswerProblem::NotJson))
    }

    /// The project ID (`project/project-id`), checked to be one.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; an answer that is not a project ID is [`MetadataError::UnusableAnswer`].
    pub async fn project_id(&self) -> Result<String, MetadataError> {
        const PATH: &str = "project/project-id";
        let id = self.get(PATH).await?;
        if crate::identity::is_valid_project_id(&id) {
            Ok(id)
        } else {
            Err(unusable(PATH, AnswerProblem::NotAProjectId))
        }
    }

    /// The project number (`project/numeric-project-id`).
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; an answer that is not a decimal number is [`MetadataError::UnusableAnswer`].
    pub async fn numeric_project_id(&self) -> Result<u64, MetadataError> {
        const PATH: &str = "project/numeric-project-id";
        let number = self.get(PATH).await?;
        // `u64::from_str` alone would take a leading `+`.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unusable(PATH, AnswerProblem::NotANumber));
        }
        number
            .parse()
            .map_err(|_| unusable(PATH, AnswerProblem::NotANumber))
    }

    /// The email of the attached service account (`instance/service-accounts/default/email`): printable ASCII
    /// without whitespace, at most 254 bytes. (Not necessarily an email: GKE's Workload Identity answers
    /// `PROJECT.svc.id.goog` for a Kubernetes service account bound to no Google one.)
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; an empty answer or one with whitespace or control characters (which would reach
    /// logs, terminals and IAM URLs as they are) is [`MetadataError::UnusableAnswer`].
    pub async fn service_account_email(&self) -> Result<String, MetadataError> {
        const PATH: &str = "instance/service-accounts/default/email";
        let email = self.get(PATH).await?;
        if is_printable_name(&email, 254) {
            Ok(email)
        } else {
            Err(unusable(PATH, AnswerProblem::NotAName))
        }
    }

    /// The instance's zone (`instance/zone`, answered as `projects/NUMBER/zones/ZONE`): the `ZONE`, e.g.
    /// `us-central1-a` on Compute Engine or `us-central1-1` on Cloud Run.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`]; an answer that is not a zone is [`MetadataError::UnusableAnswer`].
    pub async fn zone(&self) -> Result<String, MetadataError> {
        const PATH: &str = "instance/zone";
        let answer = self.get(PATH).await?;
        last_resource_segment(&answer, "zones")
            .map(str::to_owned)
            .ok_or_else(|| unusable(PATH, AnswerProblem::NotALocation))
    }

    /// The region of a serverless instance (`instance/region`, answered as `projects/NUMBER/regions/REGION` by
    /// Cloud Run, Cloud Run functions and App Engine): the `REGION`, e.g. `us-central1`. `Ok(None)` when the
    /// server has no such value (404), as on Compute Engine and GKE.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`] but a 404; an answer that is not a region is [`MetadataError::UnusableAnswer`].
    pub async fn region(&self) -> Result<Option<String>, MetadataError> {
        const PATH: &str = "instance/region";
        let Some(answer) = self.get_optional(PATH).await? else {
            return Ok(None);
        };
        last_resource_segment(&answer, "regions")
            .map(|r| Some(r.to_owned()))
            .ok_or_else(|| unusable(PATH, AnswerProblem::NotALocation))
    }

    /// The universe domain (`universe/universe-domain`): `googleapis.com` outside sovereign clouds. `Ok(None)`
    /// when the server has no such value (404; Google's libraries then assume `googleapis.com`).
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`] but a 404; an empty answer or one that is not a domain name is
    /// [`MetadataError::UnusableAnswer`].
    pub async fn universe_domain(&self) -> Result<Option<String>, MetadataError> {
        const PATH: &str = "universe/universe-domain";
        let Some(domain) = self.get_optional(PATH).await? else {
            return Ok(None);
        };
        if is_domain_name(&domain) {
            Ok(Some(domain))
        } else {
            Err(unusable(PATH, AnswerProblem::NotADomain))
        }
    }

    /// The GKE cluster's name (`instance/attributes/cluster-name`), or `Ok(None)` off GKE (404).
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`] but a 404; an answer with whitespace or control characters, or longer than a
    /// cluster name can be, is [`MetadataError::UnusableAnswer`].
    pub async fn gke_cluster_name(&self) -> Result<Option<String>, MetadataError> {
        const PATH: &str = "instance/attributes/cluster-name";
        match self.get_optional(PATH).await? {
            Some(name) if !is_printable_name(&name, 100) => {
                Err(unusable(PATH, AnswerProblem::NotAName))
            }
            name => Ok(name),
        }
    }

    /// [`get`](Self::get), with a 404 (the value is not defined here) as `Ok(None)`; an empty answer is also
    /// `Ok(None)`.
    ///
    /// # Errors
    ///
    /// Any [`MetadataError`] but a 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<String>, MetadataError> {
        match self.get(path).await {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a metadata server answers, in at most the probe timeout ([`PROBE_TIMEOUT`] unless set with
    /// [`probe_timeout`](Self::probe_timeout); one attempt, no retries): the cheap "am I on Google Cloud?" check. Any answer carrying `Metadata-Flavor: Google` counts, whatever its status.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Unreachable`] when nothing answers in time, [`MetadataError::NotMetadataServer`] when
    /// something else answers, [`MetadataError::InvalidHost`] for an unusable `GCE_METADATA_HOST`.
    pub async fn probe(&self) -> Result<(), MetadataError> {
        const PATH: &str = "/";
        let root = self.root()?;
        // The origin's `/` is what Google's libraries ping; an unusual root is pinged as is.
        let url = match root.path().strip_suffix(ROOT_PATH) {
            Some(prefix) => {
                let mut url = root.clone();
                url.set_path(prefix);
                url
            }
            None => root.clone(),
        };
        let unreachable = |source| MetadataError::Unreachable {
            path: PATH.to_owned(),
            attempts: 1,
            source,
        };
        let client = self.client().map_err(unreachable)?;
        let response = client
            .get(url)
            .header("Metadata-Flavor", "Google")
            .timeout(self.probe_timeout_value())
            .send()
            .await
            .map_err(|e| unreachable(Arc::new(e)))?;
        if has_flavor(&response) {
            Ok(())
        } else {
            Err(not_metadata_server(&response))
        }
    }

    /// [`probe`](Self::probe) as a yes or no.
    pub async fn is_available(&self) -> bool {
        self.probe().await.is_ok()
    }

    fn client(&self) -> Result<reqwest::Client, Arc<reqwest::Error>> {
        static SHARED: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
        if let Some(client) = &self.options.client {
            return Ok(client.clone());
        }
        SHARED
            .get_or_init(|| {
                // The metadata server is link-local: never through a proxy, and never anywhere it redirects to.
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(Arc::new)
            })
            .clone()
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &Url,
        path: &str,
    ) -> Result<Vec<u8>, MetadataError> {
        let unreachable = |e| MetadataError::Unreachable {
            path: path.to_owned(),
            attempts: 1,
            source: Arc::new(e),
        };
        let response = client
            .get(url.clone())
            .header("Metadata-Flavor", "Google")
            .timeout(self.options.timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !is_transient_status(status) && !has_flavor(&response) {
            return Err(not_metadata_server(&response));
        }
        if !status.is_success() {
            return Err(MetadataError::Status {
                path: path.to_owned(),
                status,
                attempts: 1,
            });
        }
        super::http::read_capped(response)
            .await
            .map_err(|e| match e {
                CappedReadError::TooLarge => {
                    unusable(path, AnswerProblem::TooLarge(MAX_BODY_BYTES))
                }
                CappedReadError::Transport(e) => unreachable(e),
            })
    }
}

fn root_for_host(host: &OsStr) -> Option<Url> {
    let host = host.to_str().map(str::trim).filter(|h| !h.is_empty())?;
    if host.contains(['/', '?', '#', '@', ' ', '\\']) {
        return None;
    }
    let url = Url::parse(&format!("http://{host}/{ROOT_PATH}")).ok()?;
    url.host().is_some().then_some(url)
}

fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn has_flavor(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"))
}

fn not_metadata_server(response: &reqwest::Response) -> MetadataError {
    let mut url = response.url().clone();
    url.set_query(None);
    MetadataError::NotMetadataServer { url }
}

/// `NAME` from `projects/NUMBER/{collection}/NAME` (also a bare `NAME`), if it is a location name: lowercase
/// letters, digits and `-`, 1 to 63 characters.
fn last_resource_segment<'a>(answer: &'a str, collection: &str) -> Option<&'a str> {
    let name = match answer.rsplit_once('/') {
        Some((prefix, name)) => {
            let mut parts = prefix.split('/');
            let shaped = parts.next() == Some("projects")
                && parts.next().is_some_and(|p| !p.is_empty())
                && parts.next() == Some(collection)
                && parts.next().is_none();
            if !shaped {
                return None;
            }
            name
        }
        None => answer,
    };
    // An RFC 1035 label, as Google's location names are: a letter first, no `-` last (`--a` is no zone, and
    // the region derived from it would be `-`).
    let ok = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(name)
}

/// Non-empty, at most `max` bytes, printable ASCII without whitespace: a value that is printed and put in URLs
/// as it is.
fn is_printable_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A DNS name of at least two labels: letters, digits and `-`, no empty label.
pub(crate) fn is_domain_name(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn unusable(path: &str, problem: AnswerProblem) -> MetadataError {
    MetadataError::UnusableAnswer {
        path: path.trim_start_matches('/').to_owned(),
        problem,
    }
}
