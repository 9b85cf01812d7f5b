//! [`Runtime`]: which Google Cloud runtime the code runs on, with that runtime's own names.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::Env;
use super::app_engine::strip_partition;

/// The Google Cloud runtime the code runs on, with the names that runtime gives it.
///
/// Told apart by the environment variables each runtime sets, in this order (the first that matches wins):
///
/// | runtime | told by |
/// |---|---|
/// | [`AppEngine`](Self::AppEngine) | `GAE_APPLICATION`, `GAE_SERVICE`, or first generation's `APPLICATION_ID` |
/// | [`CloudFunctions`](Self::CloudFunctions) | `FUNCTION_TARGET` or `FUNCTION_NAME` (a function deployed on Cloud Run also sets `K_SERVICE`: `FUNCTION_TARGET` wins) |
/// | [`CloudRunJob`](Self::CloudRunJob) | `CLOUD_RUN_JOB` |
/// | [`CloudRunService`](Self::CloudRunService) | `K_SERVICE` |
/// | [`Gke`](Self::Gke) | the metadata server's `instance/attributes/cluster-name`, else `KUBERNETES_SERVICE_HOST` |
/// | [`ComputeEngine`](Self::ComputeEngine) | a metadata server answers, and nothing above matched |
/// | [`NotGoogleCloud`](Self::NotGoogleCloud) | no metadata server answers the probe (whatever the environment says: local emulators such as the Functions Framework set the variables above) |
/// | [`Unknown`](Self::Unknown) | the metadata server was not asked ([`Detector::skip_metadata`](super::Detector::skip_metadata)) and no variable matched, or `GCE_METADATA_HOST` is unusable |
///
/// Its JSON form (what `idgate whoami` prints) is an object with `kind` (the snake-case name below),
/// `description` (for people) and the runtime's names, `null` when not set:
/// `{"kind": "cloud_run_service", "description": "Cloud Run service", "service": "api", "revision": "api-00042-xyz", "configuration": "api"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Runtime {
    /// App Engine (standard or flexible, either generation): `kind` `app_engine`.
    AppEngine(AppEngine),
    /// A Cloud Run service: `kind` `cloud_run_service`.
    CloudRunService(CloudRunService),
    /// A Cloud Run job's task: `kind` `cloud_run_job`.
    CloudRunJob(CloudRunJob),
    /// Cloud Functions (1st gen) or Cloud Run functions: `kind` `cloud_functions`.
    CloudFunctions(CloudFunction),
    /// Google Kubernetes Engine: `kind` `gke`.
    Gke(Gke),
    /// Compute Engine (or anything else with a metadata server and none of the markers above): `kind`
    /// `compute_engine`.
    ComputeEngine,
    /// No metadata server answered: `kind` `not_google_cloud`.
    NotGoogleCloud,
    /// Not known: the metadata server was not asked and the environment names no runtime: `kind` `unknown`.
    Unknown,
}

/// App Engine's names for the running instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppEngine {
    /// The application ID (= project ID) without its partition prefix (`GAE_APPLICATION` `e~my-app` →
    /// `my-app`; first generation: `APPLICATION_ID`).
    pub application: Option<String>,
    /// The service (`GAE_SERVICE`; first generation: `CURRENT_MODULE_ID`).
    pub service: Option<String>,
    /// The version (`GAE_VERSION`; first generation: `CURRENT_VERSION_ID`).
    pub version: Option<String>,
    /// The instance (`GAE_INSTANCE`; first generation: `INSTANCE_ID`).
    pub instance: Option<String>,
    /// The environment (`GAE_ENV`: `standard` on the second generation's standard environment).
    pub environment: Option<String>,
}

/// Cloud Run's names for a service's instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudRunService {
    /// The service (`K_SERVICE`).
    pub service: String,
    /// The revision (`K_REVISION`).
    pub revision: Option<String>,
    /// The configuration (`K_CONFIGURATION`).
    pub configuration: Option<String>,
}

/// Cloud Run's names for a job's task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudRunJob {
    /// The job (`CLOUD_RUN_JOB`).
    pub job: String,
    /// The execution (`CLOUD_RUN_EXECUTION`).
    pub execution: Option<String>,
    /// This task's index, from 0 (`CLOUD_RUN_TASK_INDEX`).
    pub task_index: Option<u32>,
    /// This task's attempt, from 0 (`CLOUD_RUN_TASK_ATTEMPT`).
    pub task_attempt: Option<u32>,
    /// How many tasks the execution has (`CLOUD_RUN_TASK_COUNT`).
    pub task_count: Option<u32>,
}

/// A function's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudFunction {
    /// The function's name (`K_SERVICE`; older 1st gen runtimes: `FUNCTION_NAME`).
    pub name: Option<String>,
    /// The entry point (`FUNCTION_TARGET`).
    pub target: Option<String>,
    /// The revision (`K_REVISION`).
    pub revision: Option<String>,
    /// `http`, `event` or `cloudevent` (`FUNCTION_SIGNATURE_TYPE`).
    pub signature_type: Option<String>,
}

/// GKE's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gke {
    /// The cluster (the metadata server's `instance/attributes/cluster-name`), when known.
    pub cluster_name: Option<String>,
}

impl Runtime {
    /// The stable snake-case name of the kind: `app_engine`, `cloud_run_service`, `cloud_run_job`,
    /// `cloud_functions`, `gke`, `compute_engine`, `not_google_cloud`, `unknown`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AppEngine(_) => "app_engine",
            Self::CloudRunService(_) => "cloud_run_service",
            Self::CloudRunJob(_) => "cloud_run_job",
            Self::CloudFunctions(_) => "cloud_functions",
            Self::Gke(_) => "gke",
            Self::ComputeEngine => "compute_engine",
            Self::NotGoogleCloud => "not_google_cloud",
            Self::Unknown => "unknown",
        }
    }

    /// The kind, for people: `App Engine`, `Cloud Run service`, ..., `not on Google Cloud`.
    #[must_use]
    pub fn description(&self) -> &'static str {
        match self {
            Self::AppEngine(_) => "App Engine",
            Self::CloudRunService(_) => "Cloud Run service",
            Self::CloudRunJob(_) => "Cloud Run job",
            Self::CloudFunctions(_) => "Cloud Functions",
            Self::Gke(_) => "GKE",
            Self::ComputeEngine => "Compute Engine",
            Self::NotGoogleCloud => "not on Google Cloud",
            Self::Unknown => "unknown",
        }
    }

    /// Whether this is a Google Cloud runtime (not [`NotGoogleCloud`](Self::NotGoogleCloud) nor
    /// [`Unknown`](Self::Unknown)).
    #[must_use]
    pub fn is_google_cloud(&self) -> bool {
        !matches!(self, Self::NotGoogleCloud | Self::Unknown)
    }

    /// The runtime's names as `(key, value)` pairs, in a fixed order, `None` when not set (the JSON form's keys
    /// after `kind` and `description`).
    #[must_use]
    pub fn names(&self) -> Vec<(&'static str, Option<String>)> {
        let n = |v: &u32| v.to_string();
        match self {
            Self::AppEngine(a) => vec![
                ("application", a.application.clone()),
                ("service", a.service.clone()),
                ("version", a.version.clone()),
                ("instance", a.instance.clone()),
                ("environment", a.environment.clone()),
            ],
            Self::CloudRunService(s) => vec![
                ("service", Some(s.service.clone())),
                ("revision", s.revision.clone()),
                ("configuration", s.configuration.clone()),
            ],
            Self::CloudRunJob(j) => vec![
                ("job", Some(j.job.clone())),
                ("execution", j.execution.clone()),
                ("task_index", j.task_index.as_ref().map(n)),
                ("task_attempt", j.task_attempt.as_ref().map(n)),
                ("task_count", j.task_count.as_ref().map(n)),
            ],
            Self::CloudFunctions(f) => vec![
                ("name", f.name.clone()),
                ("target", f.target.clone()),
                ("revision", f.revision.clone()),
                ("signature_type", f.signature_type.clone()),
            ],
            Self::Gke(g) => vec![("cluster_name", g.cluster_name.clone())],
            Self::ComputeEngine | Self::NotGoogleCloud | Self::Unknown => Vec::new(),
        }
    }

    /// The runtime the environment names, if any (see the table above; GKE only by `KUBERNETES_SERVICE_HOST`).
    pub(super) fn from_env(env: &Env) -> Option<Self> {
        let s = |name: &str| env.get(name).map(str::to_owned);
        let number = |name: &str| env.get(name).and_then(|v| v.parse::<u32>().ok());
        if env.has("GAE_APPLICATION") || env.has("GAE_SERVICE") || env.has("APPLICATION_ID") {
            let application = env
                .get("GAE_APPLICATION")
                .or_else(|| env.get("APPLICATION_ID"))
                .map(strip_partition)
                .filter(|id| !id.is_empty())
                .map(str::to_owned);
            return Some(Self::AppEngine(AppEngine {
                application,
                service: s("GAE_SERVICE").or_else(|| s("CURRENT_MODULE_ID")),
                version: s("GAE_VERSION").or_else(|| s("CURRENT_VERSION_ID")),
                instance: s("GAE_INSTANCE").or_else(|| s("INSTANCE_ID")),
                environment: s("GAE_ENV"),
            }));
        }
        if env.has("FUNCTION_TARGET") || env.has("FUNCTION_NAME") {
            return Some(Self::CloudFunctions(CloudFunction {
                name: s("K_SERVICE").or_else(|| s("FUNCTION_NAME")),
                target: s("FUNCTION_TARGET"),
                revision: s("K_REVISION"),
                signature_type: s("FUNCTION_SIGNATURE_TYPE"),
            }));
        }
        if let Some(job) = s("CLOUD_RUN_JOB") {
            return Some(Self::CloudRunJob(CloudRunJob {
                job,
                execution: s("CLOUD_RUN_EXECUTION"),
                task_index: number("CLOUD_RUN_TASK_INDEX"),
                task_attempt: number("CLOUD_RUN_TASK_ATTEMPT"),
                task_count: number("CLOUD_RUN_TASK_COUNT"),
            }));
        }
        if let Some(service) = s("K_SERVICE") {
            return Some(Self::CloudRunService(CloudRunService {
                service,
                revision: s("K_REVISION"),
                configuration: s("K_CONFIGURATION"),
            }));
        }
        None
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())?;
        let names: Vec<String> = self
            .names()
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        if !names.is_empty() {
            write!(f, " ({})", names.join(", "))?;
        }
        Ok(())
    }
}

impl Serialize for Runtime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names = self.names();
        let mut map = serializer.serialize_map(Some(2 + names.len()))?;
        map.serialize_entry("kind", self.kind())?;
        map.serialize_entry("description", self.description())?;
        for (key, value) in &names {
            match (self, *key) {
                // Numbers stay numbers in JSON.
                (Self::CloudRunJob(j), "task_index") => map.serialize_entry(key, &j.task_index)?,
                (Self::CloudRunJob(j), "task_attempt") => {
                    map.serialize_entry(key, &j.task_attempt)?;
                }
                (Self::CloudRunJob(j), "task_count") => map.serialize_entry(key, &j.task_count)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}
