//! `AppIdentity` against the emulator's metadata server: every runtime from its environment variables, each
//! metadata value fetched once, 404s as unknowns, garbage as typed problems, and off Google Cloud.

use std::time::Duration;

use idgate_core::app::{Detector, Field, Gke, Runtime, Source};
use idgate_core::google::{HttpOptions, MetadataClient, RetryPolicy};
use idgate_emulator::{Emulator, Fault, Route};

const METADATA_VALUES: [Route; 7] = [
    Route::MetadataProjectId,
    Route::MetadataNumericProjectId,
    Route::MetadataEmail,
    Route::MetadataZone,
    Route::MetadataRegion,
    Route::MetadataUniverseDomain,
    Route::MetadataClusterName,
];

fn detector(emulator: &Emulator, env: &[(&str, &str)]) -> Detector {
    let client = MetadataClient::from_base_url(&emulator.base_url()).http(
        HttpOptions::new().retry(
            RetryPolicy::default()
                .initial_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(20)),
        ),
    );
    Detector::with_env(env.iter().copied()).metadata(client)
}

async fn serverless() -> Emulator {
    Emulator::builder()
        .project_id("billing-prod")
        .project_number(123_456_789)
        .serverless_region("us-central1")
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn cloud_run_service() {
    let emulator = serverless().await;
    let d = detector(
        &emulator,
        &[
            ("K_SERVICE", "invoices"),
            ("K_REVISION", "invoices-00042-abc"),
            ("K_CONFIGURATION", "invoices"),
        ],
    );
    let me = d.detect().await;
    assert_eq!(me.project_id(), Some("billing-prod"));
    assert_eq!(me.project_number(), Some(123_456_789));
    assert_eq!(
        me.service_account_email(),
        Some(emulator.metadata_service_account())
    );
    assert_eq!(me.region(), Some("us-central1"));
    assert!(!me.region.as_ref().unwrap().derived);
    assert_eq!(me.zone(), Some("us-central1-1"));
    assert_eq!(me.universe_domain(), Some("googleapis.com"));
    let Runtime::CloudRunService(run) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(run.service, "invoices");
    assert_eq!(run.revision.as_deref(), Some("invoices-00042-abc"));
    assert_eq!(me.source_of(Field::Runtime), Some(Source::Env));
    for field in [
        Field::ProjectId,
        Field::ProjectNumber,
        Field::ServiceAccountEmail,
        Field::Region,
        Field::Zone,
        Field::UniverseDomain,
    ] {
        assert_eq!(me.source_of(field), Some(Source::Metadata), "{field}");
    }
    assert!(me.problems.is_empty(), "{:?}", me.problems);
    assert!(me.probe_error.is_none());
    assert_eq!(
        me.app_engine_default_hostname().as_deref(),
        Some("billing-prod.uc.r.appspot.com")
    );

    // Each value once; the runtime came from the environment, so cluster-name was not asked; and a second
    // detect asks nothing.
    d.detect().await;
    assert_eq!(emulator.hits(Route::MetadataRoot), 1);
    for route in METADATA_VALUES {
        let expected = u64::from(route != Route::MetadataClusterName);
        assert_eq!(emulator.hits(route), expected, "{route:?}");
    }
}

#[tokio::test]
async fn app_engine_with_its_partition_prefix() {
    let emulator = serverless().await;
    let d = detector(
        &emulator,
        &[
            ("GAE_APPLICATION", "e~billing-prod"),
            ("GAE_SERVICE", "default"),
            ("GAE_VERSION", "v7"),
            ("GAE_INSTANCE", "aef-default-v7-x1"),
            ("GAE_ENV", "standard"),
            ("GOOGLE_CLOUD_PROJECT", "billing-prod"),
        ],
    );
    let me = d.detect().await;
    let Runtime::AppEngine(gae) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(gae.application.as_deref(), Some("billing-prod"));
    assert_eq!(gae.version.as_deref(), Some("v7"));
    assert_eq!(me.project_id(), Some("billing-prod"));
    assert_eq!(me.source_of(Field::ProjectId), Some(Source::Env));
    // The environment named the project: the metadata server was not asked for it.
    assert_eq!(emulator.hits(Route::MetadataProjectId), 0);
    assert_eq!(me.project_number(), Some(123_456_789));
    assert_eq!(
        me.app_engine_default_service_account().as_deref(),
        Some("billing-prod@appspot.gserviceaccount.com")
    );
    assert_eq!(
        me.default_bucket_name().as_deref(),
        Some("billing-prod.appspot.com")
    );
}

#[tokio::test]
async fn cloud_functions_and_jobs() {
    let emulator = serverless().await;
    let me = detector(
        &emulator,
        &[("K_SERVICE", "resize"), ("FUNCTION_TARGET", "resizeImage")],
    )
    .detect()
    .await
    .clone();
    assert!(
        matches!(&me.runtime, Runtime::CloudFunctions(f) if f.target.as_deref() == Some("resizeImage"))
    );
    let me = detector(
        &emulator,
        &[
            ("CLOUD_RUN_JOB", "nightly"),
            ("CLOUD_RUN_EXECUTION", "nightly-x"),
        ],
    )
    .detect()
    .await
    .clone();
    assert!(matches!(&me.runtime, Runtime::CloudRunJob(j) if j.job == "nightly"));
    assert_eq!(me.region(), Some("us-central1"));
}

#[tokio::test]
async fn gke_from_the_cluster_name_or_the_environment() {
    let emulator = Emulator::builder()
        .gke_cluster("prod-cluster")
        .zone("europe-west4-b")
        .start()
        .await
        .unwrap();
    let me = detector(&emulator, &[]).detect().await.clone();
    assert!(
        matches!(&me.runtime, Runtime::Gke(g) if g.cluster_name.as_deref() == Some("prod-cluster")),
        "{:?}",
        me.runtime
    );
    assert_eq!(me.source_of(Field::Runtime), Some(Source::Metadata));
    // GKE does not serve instance/region: derived from the zone.
    assert_eq!(me.region(), Some("europe-west4"));
    assert!(me.region.as_ref().unwrap().derived);
    assert_eq!(me.source_of(Field::Region), Some(Source::Metadata));

    let gce = Emulator::start().await.unwrap();
    let me = detector(&gce, &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")])
        .detect()
        .await
        .clone();
    assert_eq!(me.runtime, Runtime::Gke(Gke::default()));
    assert_eq!(me.source_of(Field::Runtime), Some(Source::Env));
}

#[tokio::test]
async fn compute_engine_answers_from_the_metadata_server_alone() {
    let emulator = Emulator::builder()
        .project_id("vm-project")
        .start()
        .await
        .unwrap();
    let me = detector(&emulator, &[]).detect().await.clone();
    assert_eq!(me.runtime, Runtime::ComputeEngine);
    assert_eq!(me.project_id(), Some("vm-project"));
    assert_eq!(me.zone(), Some("us-central1-a"));
    assert_eq!(me.region(), Some("us-central1"), "derived from the zone");
    // The 404s of instance/region and cluster-name are unknowns, not problems.
    assert!(me.problems.is_empty(), "{:?}", me.problems);
    assert_eq!(emulator.hits(Route::MetadataRegion), 1);
    assert_eq!(emulator.hits(Route::MetadataClusterName), 1);
}

#[tokio::test]
async fn garbage_is_a_typed_problem_and_the_rest_still_answers() {
    let emulator = serverless().await;
    emulator.inject(Route::MetadataZone, Fault::Garbage, 10);
    emulator.inject(Route::MetadataNumericProjectId, Fault::Status(503), 10);
    let me = detector(&emulator, &[("K_SERVICE", "api")])
        .detect()
        .await
        .clone();
    assert_eq!(me.zone(), None);
    assert_eq!(me.project_number(), None);
    assert_eq!(me.project_id(), Some("billing-prod"));
    assert_eq!(me.region(), Some("us-central1"));
    let fields: Vec<Field> = me.problems.iter().map(|p| p.field).collect();
    assert!(fields.contains(&Field::Zone), "{fields:?}");
    assert!(fields.contains(&Field::ProjectNumber), "{fields:?}");
    let zone = me.problems.iter().find(|p| p.field == Field::Zone).unwrap();
    assert!(zone.error.is_unusable_answer(), "{}", zone.error);
}

#[tokio::test]
async fn off_google_cloud_no_metadata_request_after_the_probe() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let me = Detector::with_env([("K_SERVICE", "api"), ("GOOGLE_CLOUD_PROJECT", "my-project")])
        .metadata_url(&format!("http://127.0.0.1:{port}").parse().unwrap())
        .probe_timeout(Duration::from_millis(300))
        .detect()
        .await
        .clone();
    assert_eq!(me.runtime, Runtime::NotGoogleCloud);
    assert!(me.probe_error.as_ref().unwrap().is_not_on_google_cloud());
    assert_eq!(me.project_id(), Some("my-project"));
    assert_eq!(me.project_number(), None);
    assert_eq!(me.zone(), None);

    // A metadata server that hangs on its probe: not on Google Cloud, and nothing else asked.
    let emulator = serverless().await;
    emulator.inject(Route::MetadataRoot, Fault::Hang, 1);
    let me = detector(&emulator, &[])
        .probe_timeout(Duration::from_millis(200))
        .detect()
        .await
        .clone();
    assert_eq!(me.runtime, Runtime::NotGoogleCloud);
    assert!(me.probe_error.as_ref().unwrap().is_timeout());
    for route in METADATA_VALUES {
        assert_eq!(emulator.hits(route), 0, "{route:?}");
    }

    // An unusable GCE_METADATA_HOST in the given environment: unknown, with the configuration error.
    let me = Detector::with_env([("GCE_METADATA_HOST", "not a host/")])
        .detect()
        .await
        .clone();
    assert_eq!(me.runtime, Runtime::Unknown);
    assert!(me.probe_error.as_ref().unwrap().is_config());
}

#[tokio::test]
async fn gce_metadata_host_from_the_given_environment() {
    let emulator = serverless().await;
    let me = Detector::with_env([("GCE_METADATA_HOST", emulator.metadata_host())])
        .detect()
        .await
        .clone();
    assert_eq!(me.project_id(), Some("billing-prod"));
    assert_eq!(me.runtime, Runtime::ComputeEngine);
}

/// A metadata server answering what the emulator never would: each request's path is matched by suffix against
/// `answers` (200 with `Metadata-Flavor: Google`), else 404. Raw HTTP/1.1, one request per connection.
async fn raw_metadata_server(answers: Vec<(&'static str, String)>) -> url::Url {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                loop {
                    let Ok(n) = conn.read(&mut buf[got..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got += n;
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..got]).to_string();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, body) = answers
                    .iter()
                    .find(|(p, _)| path.ends_with(p))
                    .map_or(("404 Not Found", String::new()), |(_, b)| {
                        ("200 OK", b.clone())
                    });
                let resp = format!(
                    "HTTP/1.1 {status}\r\nMetadata-Flavor: Google\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/").parse().unwrap()
}

/// Found attacking issue #13: the attached account's email and the GKE cluster name were taken as they came
/// (control characters, a newline that forged a line of `whoami --table`), and a zone such as `--a` passed,
/// deriving the region `-`. Now each is a typed problem and the value unknown.
#[tokio::test]
async fn hostile_metadata_answers_are_problems_not_values() {
    let base = raw_metadata_server(vec![
        ("project/project-id", "my-proj".into()),
        ("project/numeric-project-id", "42".into()),
        (
            "service-accounts/default/email",
            "evil\u{1b}[31m@x.com\nproblem: forged".into(),
        ),
        ("instance/zone", "projects/42/zones/--a".into()),
        ("attributes/cluster-name", "prod\r\nzone  forged".into()),
    ])
    .await;
    let client =
        MetadataClient::from_base_url(&base).http(HttpOptions::new().retry(RetryPolicy::none()));
    let me = Detector::with_env(Vec::<(String, String)>::new())
        .metadata(client.clone())
        .detect()
        .await
        .clone();
    assert_eq!(me.project_id(), Some("my-proj"));
    assert_eq!(me.project_number(), Some(42));
    assert_eq!(me.service_account_email(), None);
    assert_eq!(me.zone(), None);
    assert_eq!(me.region(), None);
    assert_eq!(me.runtime, Runtime::ComputeEngine);
    let mut fields: Vec<Field> = me.problems.iter().map(|p| p.field).collect();
    fields.sort();
    assert_eq!(
        fields,
        [Field::ServiceAccountEmail, Field::Zone, Field::Runtime]
    );
    assert!(me.problems.iter().all(|p| p.error.is_unusable_answer()));
    let table = me.to_table();
    assert!(!table.contains("forged"), "{table}");
    assert!(!table.contains('\u{1b}'), "{table}");

    // GKE's Workload Identity answers a pool name, not an email, for an unbound Kubernetes service account.
    let base = raw_metadata_server(vec![(
        "service-accounts/default/email",
        "my-proj.svc.id.goog".into(),
    )])
    .await;
    let client =
        MetadataClient::from_base_url(&base).http(HttpOptions::new().retry(RetryPolicy::none()));
    assert_eq!(
        client.service_account_email().await.unwrap(),
        "my-proj.svc.id.goog"
    );
}
