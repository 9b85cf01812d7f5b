//! Who am I: the app's identity on Google Cloud, from the environment and the metadata server.
//!
//! [`AppIdentity::detect`] merges the process environment and the metadata server into the project ID and
//! number, the service-account email, the region and zone, the universe domain and the [`Runtime`] with its own
//! names (App Engine's service and version, Cloud Run's service and revision, ...). Each value says where it came
//! from ([`Source::Env`] or [`Source::Metadata`]).
//!
//! # Which source wins
//!
//! | value | environment (first set wins) | metadata server | when both |
//! |---|---|---|---|
//! | project ID | `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT`, `GCP_PROJECT`, `GAE_APPLICATION` / `APPLICATION_ID` (partition prefix stripped) | `project/project-id` | env (the rule of Google's libraries); the metadata server is then not asked |
//! | project number | — | `project/numeric-project-id` | |
//! | service-account email | — | `instance/service-accounts/default/email` | |
//! | zone | — | `instance/zone` | |
//! | region | — | `instance/region` (serverless runtimes), else derived from the zone (`us-central1-a` → `us-central1`, marked [`Sourced::derived`]) | |
//! | universe domain | `GOOGLE_CLOUD_UNIVERSE_DOMAIN` | `universe/universe-domain` | env; the metadata server is then not asked |
//! | runtime | see [`Runtime`] | `instance/attributes/cluster-name` (GKE), or its mere presence (Compute Engine) | env |
//!
//! An environment value that is empty or not valid (a project ID that is not one) is ignored.
//!
//! # Fast off Google Cloud
//!
//! Detection first sends one probe to the metadata server, bounded by the probe timeout ([`PROBE_TIMEOUT`],
//! 500 ms, unless set with [`Detector::probe_timeout`]). When nothing answers, no other metadata request is made:
//! detection returns within the probe bound, with [`Runtime::NotGoogleCloud`] and every metadata value `None`.
//! When the probe is answered, every value still needed is fetched concurrently, each once, with the metadata
//! client's timeout and retries.
//!
//! # Never fails
//!
//! Detection always returns an [`AppIdentity`]: what is not known is `None`. A value the metadata server does not
//! define (404: `instance/region` on Compute Engine, `cluster-name` off GKE) is simply unknown. Anything else that
//! went wrong (an answer that is not what it should be, a 5xx after every retry) leaves the value `None` and is
//! kept, typed, in [`AppIdentity::problems`]; why the probe failed is in [`AppIdentity::probe_error`].
//!
//! # Cached
//!
//! [`AppIdentity::current`] detects once per process (concurrent first callers wait on the one detection) and
//! returns the same answer afterwards. A [`Detector`] memoises its own answer the same way. [`AppIdentity::detect`]
//! detects afresh at each call.
//!
//! # Example
//!
//! ```
//! use idgate_core::app::{Detector, Runtime, Source};
//! use idgate_emulator::Emulator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A Cloud Run service: the emulator plays its metadata server; the environment is given, not the process's.
//! let google = Emulator::builder()
//!     .project_id("billing-prod")
//!     .project_number(123_456_789)
//!     .serverless_region("europe-west1")
//!     .start()
//!     .await?;
//! let detector = Detector::with_env([("K_SERVICE", "invoices"), ("K_REVISION", "invoices-00042-abc")])
//!     .metadata_url(&google.base_url());
//! let me = detector.detect().await;
//! assert_eq!(me.project_id(), Some("billing-prod"));
//! assert_eq!(me.project_number(), Some(123_456_789));
//! assert_eq!(me.region(), Some("europe-west1"));
//! assert!(matches!(&me.runtime, Runtime::CloudRunService(s) if s.service == "invoices"));
//! assert_eq!(me.source_of(idgate_core::app::Field::Runtime), Some(Source::Env));
//! assert_eq!(me.source_of(idgate_core::app::Field::ProjectId), Some(Source::Metadata));
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::sync::OnceCell;
use url::Url;

use crate::google::metadata::GCE_METADATA_HOST;
#[cfg(doc)]
use crate::google::metadata::PROBE_TIMEOUT;
use crate::google::{MetadataClient, MetadataError};

mod app_engine;
mod runtime;
#[cfg(test)]
mod tests;

pub use app_engine::{
    app_engine_default_hostname, app_engine_default_service_account, app_engine_region_id,
    default_bucket_name, region_of_zone, strip_partition,
};
pub use runtime::{AppEngine, CloudFunction, CloudRunJob, CloudRunService, Gke, Runtime};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Source {
    /// An environment variable (`"env"` in JSON).
    Env,
    /// The metadata server (`"metadata"` in JSON).
    Metadata,
}

impl Source {
    /// `env` or `metadata`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::Metadata => "metadata",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
    /// Computed from another value of the same source rather than read (the region from the zone).
    pub derived: bool,
}

impl<T> Sourced<T> {
    fn read(value: T, source: Source) -> Self {
        Self {
            value,
            source,
            derived: false,
        }
    }
}

/// The values [`AppIdentity`] holds, by their JSON names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Field {
    /// `project_id`.
    ProjectId,
    /// `project_number`.
    ProjectNumber,
    /// `service_account_email`.
    ServiceAccountEmail,
    /// `region`.
    Region,
    /// `zone`.
    Zone,
    /// `universe_domain`.
    UniverseDomain,
    /// `runtime`.
    Runtime,
}

impl Field {
    /// The JSON name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProjectId => "project_id",
            Self::ProjectNumber => "project_number",
            Self::ServiceAccountEmail => "service_account_email",
            Self::Region => "region",
            Self::Zone => "zone",
            Self::UniverseDomain => "universe_domain",
            Self::Runtime => "runtime",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value the metadata server could not give: which one, and why (in [`source`](std::error::Error::source)).
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not read the {field} from the metadata server")]
#[non_exhaustive]
pub struct DetectionProblem {
    /// The value (for [`Field::Runtime`]: the GKE cluster name that tells GKE apart).
    pub field: Field,
    /// Why.
    #[source]
    pub error: MetadataError,
}

/// The app's identity on Google Cloud. See the [module docs](self).
///
/// Its JSON form (`serde::Serialize`, what `idgate whoami` prints) has exactly these keys, `null` when unknown:
/// `project_id`, `project_number` (a number), `service_account_email`, `region`, `zone`, `universe_domain`,
/// `runtime` (see [`Runtime`]) and `sources` (each known value's key → `"env"` or `"metadata"`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppIdentity {
    /// The project ID.
    pub project_id: Option<Sourced<String>>,
    /// The project number.
    pub project_number: Option<Sourced<u64>>,
    /// The email of the attached (default) service account.
    pub service_account_email: Option<Sourced<String>>,
    /// The region (`us-central1`).
    pub region: Option<Sourced<String>>,
    /// The zone (`us-central1-a`; Cloud Run: `us-central1-1`).
    pub zone: Option<Sourced<String>>,
    /// The universe domain (`googleapis.com` outside sovereign clouds).
    pub universe_domain: Option<Sourced<String>>,
    /// The runtime.
    pub runtime: Runtime,
    /// Where the runtime was told from (`None` for [`Runtime::Unknown`]).
    pub runtime_source: Option<Source>,
    /// Why the probe failed, when it did (the metadata server was asked and nothing, or something that is not a
    /// metadata server, answered; or `GCE_METADATA_HOST` is unusable).
    pub probe_error: Option<MetadataError>,
    /// The values the metadata server could not give for another reason than not defining them.
    pub problems: Vec<DetectionProblem>,
}

static CURRENT: OnceCell<AppIdentity> = OnceCell::const_new();

impl AppIdentity {
    /// Detects the identity from the process environment and the metadata server (`GCE_METADATA_HOST`, else
    /// `metadata.google.internal`), afresh. Returns within the probe bound off Google Cloud. For one detection
    /// per process, [`AppIdentity::current`].
    pub async fn detect() -> Self {
        Detector::new().run().await
    }

    /// The identity of this process, detected once (as [`AppIdentity::detect`]) and kept: later calls return
    /// the same answer without asking anything.
    pub async fn current() -> &'static Self {
        CURRENT.get_or_init(Self::detect).await
    }

    fn empty(runtime: Runtime) -> Self {
        Self {
            project_id: None,
            project_number: None,
            service_account_email: None,
            region: None,
            zone: None,
            universe_domain: None,
            runtime,
            runtime_source: None,
            probe_error: None,
            problems: Vec::new(),
        }
    }

    /// The project ID, if known.
    #[must_use]
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_ref().map(|s| s.value.as_str())
    }

    /// The project number, if known.
    #[must_use]
    pub fn project_number(&self) -> Option<u64> {
        self.project_number.as_ref().map(|s| s.value)
    }

    /// The service account's email, if known.
    #[must_use]
    pub fn service_account_email(&self) -> Option<&str> {
        self.service_account_email
            .as_ref()
            .map(|s| s.value.as_str())
    }

    /// The region, if known.
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.region.as_ref().map(|s| s.value.as_str())
    }

    /// The zone, if known.
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_ref().map(|s| s.value.as_str())
    }

    /// The universe domain, if known. Google's libraries assume `googleapis.com` when it is not.
    #[must_use]
    pub fn universe_domain(&self) -> Option<&str> {
        self.universe_domain.as_ref().map(|s| s.value.as_str())
    }

    /// Where `field` came from, if it is known.
    #[must_use]
    pub fn source_of(&self, field: Field) -> Option<Source> {
        match field {
            Field::ProjectId => self.project_id.as_ref().map(|s| s.source),
            Field::ProjectNumber => self.project_number.as_ref().map(|s| s.source),
            Field::ServiceAccountEmail => self.service_account_email.as_ref().map(|s| s.source),
            Field::Region => self.region.as_ref().map(|s| s.source),
            Field::Zone => self.zone.as_ref().map(|s| s.source),
            Field::UniverseDomain => self.universe_domain.as_ref().map(|s| s.source),
            Field::Runtime => self.runtime_source,
        }
    }

    /// Every known value's source (the JSON form's `sources`).
    #[must_use]
    pub fn sources(&self) -> BTreeMap<Field, Source> {
        [
            Field::ProjectId,
            Field::ProjectNumber,
            Field::ServiceAccountEmail,
            Field::Region,
            Field::Zone,
            Field::UniverseDomain,
            Field::Runtime,
        ]
        .into_iter()
        .filter_map(|f| self.source_of(f).map(|s| (f, s)))
        .collect()
    }

    /// The App Engine default version's hostname for this project: `PROJECT.REGION_ID.r.appspot.com` when the
    /// region's App Engine region ID is known, else `PROJECT.appspot.com`. See [`app_engine_default_hostname`]
    /// (to pass a region ID yourself) and [`app_engine_region_id`].
    #[must_use]
    pub fn app_engine_default_hostname(&self) -> Option<String> {
        let code = self.region().and_then(app_engine_region_id);
        app_engine_default_hostname(self.project_id()?, code)
    }

    /// The project's default Cloud Storage bucket, `PROJECT.appspot.com` ([`default_bucket_name`]).
    #[must_use]
    pub fn default_bucket_name(&self) -> Option<String> {
        default_bucket_name(self.project_id()?)
    }

    /// The project's App Engine default service account ([`app_engine_default_service_account`]).
    #[must_use]
    pub fn app_engine_default_service_account(&self) -> Option<String> {
        app_engine_default_service_account(self.project_id()?)
    }

    /// The identity as an aligned table for people (what `idgate whoami --table` prints): one line per value,
    /// with its source, then the runtime's names, then any problem.
    ///
    /// ```text
    /// project_id             billing-prod               metadata
    /// region                 europe-west1               metadata (from zone)
    /// runtime                Cloud Run service          env
    ///   service              invoices
    /// ```
    #[must_use]
    pub fn to_table(&self) -> String {
        let number = self.project_number().map(|n| n.to_string());
        let rows: [(Field, Option<&str>, bool); 6] = [
            (Field::ProjectId, self.project_id(), false),
            (Field::ProjectNumber, number.as_deref(), false),
            (
                Field::ServiceAccountEmail,
                self.service_account_email(),
                false,
            ),
            (
                Field::Region,
                self.region(),
                self.region.as_ref().is_some_and(|r| r.derived),
            ),
            (Field::Zone, self.zone(), false),
            (Field::UniverseDomain, self.universe_domain(), false),
        ];
        let mut lines: Vec<(String, String, String)> = rows
            .iter()
            .map(|(field, value, derived)| {
                let source = match (self.source_of(*field), derived) {
                    (Some(s), true) => format!("{s} (from zone)"),
                    (Some(s), false) => s.to_string(),
                    (None, _) => String::new(),
                };
                (
                    field.as_str().to_owned(),
                    printable(value.unwrap_or("-")),
                    source,
                )
            })
            .collect();
        lines.push((
            "runtime".to_owned(),
            self.runtime.description().to_owned(),
            self.runtime_source
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ));
        for (key, value) in self.runtime.names() {
            if let Some(value) = value {
                lines.push((format!("  {key}"), printable(&value), String::new()));
            }
        }
        let key_width = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0);
        let value_width = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value, source) in &lines {
            let line = format!("{key:<key_width$}  {value:<value_width$}  {source}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for problem in &self.problems {
            out.push_str(&format!("problem: {}\n", crate::ErrorChain(problem)));
        }
        out
    }
}

impl Serialize for AppIdentity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(8))?;
        map.serialize_entry("project_id", &self.project_id())?;
        map.serialize_entry("project_number", &self.project_number())?;
        map.serialize_entry("service_account_email", &self.service_account_email())?;
        map.serialize_entry("region", &self.region())?;
        map.serialize_entry("zone", &self.zone())?;
        map.serialize_entry("universe_domain", &self.universe_domain())?;
        map.serialize_entry("runtime", &self.runtime)?;
        map.serialize_entry("sources", &self.sources())?;
        map.end()
    }
}

/// `value` for a terminal: control characters (an escape sequence, a newline that would forge a table line)
/// written as Rust escapes (`\u{1b}`, `\n`). The runtime's names come from the environment unchecked.
fn printable(value: &str) -> String {
    if !value.chars().any(char::is_control) {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An environment to detect from: the process's ([`Detector::new`]) or one given ([`Detector::with_env`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Env(HashMap<String, String>);

impl Env {
    fn process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// The variable's value, trimmed; `None` when unset or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Detects an [`AppIdentity`] with a chosen environment, metadata server and probe timeout, and memoises the
/// answer: [`detect`](Self::detect) asks once, then returns the same answer.
///
/// ```
/// use idgate_core::app::{Detector, Runtime};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Nothing listens on port 9: not on Google Cloud, decided within the probe timeout.
/// let detector = Detector::with_env([("GOOGLE_CLOUD_PROJECT", "my-project")])
///     .metadata_url(&"http://127.0.0.1:9".parse().unwrap())
///     .probe_timeout(Duration::from_millis(200));
/// let me = detector.detect().await;
/// assert_eq!(me.runtime, Runtime::NotGoogleCloud);
/// assert_eq!(me.project_id(), Some("my-project")); // from the environment
/// assert_eq!(me.project_number(), None);
/// # }
/// ```
#[derive(Debug)]
pub struct Detector {
    env: Env,
    metadata: Option<MetadataClient>,
    probe_timeout: Option<Duration>,
    skip_metadata: bool,
    answer: OnceCell<AppIdentity>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// The process environment (read now) and its metadata server (`GCE_METADATA_HOST`, else
    /// `metadata.google.internal`).
    #[must_use]
    pub fn new() -> Self {
        Self::from_env(Env::process())
    }

    /// Exactly these environment variables, and no others (the process's are not read): for tests and for
    /// callers that know better. The metadata server is the one `GCE_METADATA_HOST` names among them, else
    /// `metadata.google.internal`, unless set with [`metadata`](Self::metadata).
    #[must_use]
    pub fn with_env<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_env(Env(vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()))
    }

    fn from_env(env: Env) -> Self {
        Self {
            env,
            metadata: None,
            probe_timeout: None,
            skip_metadata: false,
            answer: OnceCell::new(),
        }
    }

    /// Asks this metadata server (its HTTP options, retries and probe timeout; [`probe_timeout`](Self::probe_timeout)
    /// still overrides the latter).
    #[must_use]
    pub fn metadata(mut self, client: MetadataClient) -> Self {
        self.metadata = Some(client);
        self
    }

    /// Asks the metadata server under `base` (e.g. `idgate-emulator`'s base URL), on Google's paths.
    #[must_use]
    pub fn metadata_url(self, base: &Url) -> Self {
        self.metadata(MetadataClient::from_base_url(base))
    }

    /// How long the probe waits for the metadata server (default [`PROBE_TIMEOUT`], 500 ms): off Google Cloud,
    /// detection takes about this long.
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = Some(timeout);
        self
    }

    /// Does not ask the metadata server at all: only the environment is read. The runtime is then the one the
    /// environment names, else [`Runtime::Unknown`].
    #[must_use]
    pub fn skip_metadata(mut self) -> Self {
        self.skip_metadata = true;
        self
    }

    /// The identity, detected at the first call and memoised: later calls (and concurrent ones) get the same
    /// answer.
    pub async fn detect(&self) -> &AppIdentity {
        self.answer.get_or_init(|| self.run()).await
    }

    fn client(&self) -> MetadataClient {
        let client =
            self.metadata
                .clone()
                .unwrap_or_else(|| match self.env.get(GCE_METADATA_HOST) {
                    Some(host) => MetadataClient::from_host(host),
                    None => MetadataClient::from_endpoints(&crate::google::Endpoints::default()),
                });
        match self.probe_timeout {
            Some(timeout) => client.probe_timeout(timeout),
            None => client,
        }
    }

    async fn run(&self) -> AppIdentity {
        let env = &self.env;
        let env_runtime = Runtime::from_env(env);
        let mut id = AppIdentity::empty(Runtime::Unknown);
        id.project_id = project_id_from_env(env).map(|p| Sourced::read(p, Source::Env));
        id.universe_domain = env
            .get("GOOGLE_CLOUD_UNIVERSE_DOMAIN")
            .filter(|d| crate::google::metadata::is_domain_name(d))
            .map(|d| Sourced::read(d.to_owned(), Source::Env));
        if self.skip_metadata {
            if let Some(runtime) = env_runtime {
                id.runtime = runtime;
                id.runtime_source = Some(Source::Env);
            } else if env.has("KUBERNETES_SERVICE_HOST") {
                id.runtime = Runtime::Gke(Gke::default());
                id.runtime_source = Some(Source::Env);
            }
            return id;
        }
        let client = self.client();
        if let Err(error) = client.probe().await {
            if !error.is_config() {
                id.runtime = Runtime::NotGoogleCloud;
                id.runtime_source = Some(Source::Metadata);
            }
            id.probe_error = Some(error);
            return id;
        }
        self.fill_from_metadata(&client, env_runtime, &mut id).await;
        id
    }

    /// Every value still unknown, concurrently, each once.
    async fn fill_from_metadata(
        &self,
        client: &MetadataClient,
        env_runtime: Option<Runtime>,
        id: &mut AppIdentity,
    ) {
        let want_project = id.project_id.is_none();
        let want_universe = id.universe_domain.is_none();
        let want_cluster = env_runtime.is_none();
        let (project, number, email, zone, region, universe, cluster) = tokio::join!(
            async {
                match want_project {
                    true => Some(client.project_id().await),
                    false => None,
                }
            },
            client.numeric_project_id(),
            client.service_account_email(),
            client.zone(),
            client.region(),
            async {
                match want_universe {
                    true => Some(client.universe_domain().await),
                    false => None,
                }
            },
            async {
                match want_cluster {
                    true => Some(client.gke_cluster_name().await),
                    false => None,
                }
            },
        );
        let mut problems = Vec::new();
        let mut keep = |field: Field, result: Result<Option<String>, MetadataError>| match result {
            Ok(value) => value.map(|v| Sourced::read(v, Source::Metadata)),
            Err(error) if error.status() == Some(http::StatusCode::NOT_FOUND) => None,
            Err(error) => {
                problems.push(DetectionProblem { field, error });
                None
            }
        };
        if let Some(project) = project {
            id.project_id = keep(Field::ProjectId, project.map(Some));
        }
        let number = keep(Field::ProjectNumber, number.map(|n| Some(n.to_string())));
        id.project_number = number.and_then(|n| {
            n.value
                .parse()
                .ok()
                .map(|v| Sourced::read(v, Source::Metadata))
        });
        id.service_account_email = keep(Field::ServiceAccountEmail, email.map(Some));
        id.zone = keep(Field::Zone, zone.map(Some));
        id.region = keep(Field::Region, region);
        if id.region.is_none() {
            id.region = id.zone.as_ref().and_then(|zone| {
                region_of_zone(&zone.value).map(|r| Sourced {
                    value: r.to_owned(),
                    source: zone.source,
                    derived: true,
                })
            });
        }
        if let Some(universe) = universe {
            id.universe_domain = keep(Field::UniverseDomain, universe);
        }
        let cluster = cluster.and_then(|c| keep(Field::Runtime, c));
        (id.runtime, id.runtime_source) = match (env_runtime, cluster) {
            (Some(runtime), _) => (runtime, Some(Source::Env)),
            (None, Some(cluster)) => (
                Runtime::Gke(Gke {
                    cluster_name: Some(cluster.value),
                }),
                Some(Source::Metadata),
            ),
            (None, None) if self.env.has("KUBERNETES_SERVICE_HOST") => {
                (Runtime::Gke(Gke::default()), Some(Source::Env))
            }
            (None, None) => (Runtime::ComputeEngine, Some(Source::Metadata)),
        };
        id.problems = problems;
    }
}

/// The project ID the environment names (see the module docs' table), if any is valid.
fn project_id_from_env(env: &Env) -> Option<String> {
    let direct = ["GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCP_PROJECT"]
        .into_iter()
        .filter_map(|name| env.get(name));
    let app_engine = ["GAE_APPLICATION", "APPLICATION_ID"]
        .into_iter()
        .filter_map(|name| env.get(name).map(strip_partition));
    direct
        .chain(app_engine)
        .find(|id| crate::identity::is_valid_project_id(id))
        .map(str::to_owned)
}
