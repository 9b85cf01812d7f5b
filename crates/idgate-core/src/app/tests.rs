//! Unit tests of the app identity: the environment's rules, the helpers, the JSON form. (Against the emulator's
//! metadata server: `tests/core/app.rs`.)

use super::*;

async fn env_only(vars: &[(&str, &str)]) -> AppIdentity {
    Detector::with_env(vars.iter().copied())
        .skip_metadata()
        .detect()
        .await
        .clone()
}

#[tokio::test]
async fn runtimes_from_the_environment() {
    let me = env_only(&[
        ("GAE_APPLICATION", "e~my-app"),
        ("GAE_SERVICE", "default"),
        ("GAE_VERSION", "20240101t000000"),
        ("GAE_INSTANCE", "00c61b117c"),
        ("GAE_ENV", "standard"),
        ("K_SERVICE", "ignored"),
    ])
    .await;
    let Runtime::AppEngine(gae) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(gae.application.as_deref(), Some("my-app"));
    assert_eq!(gae.service.as_deref(), Some("default"));
    assert_eq!(gae.version.as_deref(), Some("20240101t000000"));
    assert_eq!(gae.environment.as_deref(), Some("standard"));
    assert_eq!(me.project_id(), Some("my-app"));
    assert_eq!(me.source_of(Field::ProjectId), Some(Source::Env));
    assert_eq!(me.runtime_source, Some(Source::Env));

    // First generation: APPLICATION_ID with its `s~`, and a domain-scoped app.
    let me = env_only(&[
        ("APPLICATION_ID", "s~example.com:legacy-app"),
        ("CURRENT_MODULE_ID", "worker"),
    ])
    .await;
    assert_eq!(me.project_id(), Some("example.com:legacy-app"));
    assert!(matches!(&me.runtime, Runtime::AppEngine(a) if a.service.as_deref() == Some("worker")));

    // A function deployed on Cloud Run sets K_SERVICE too: FUNCTION_TARGET wins.
    let me = env_only(&[
        ("K_SERVICE", "resize"),
        ("K_REVISION", "resize-00003-abc"),
        ("FUNCTION_TARGET", "resizeImage"),
        ("FUNCTION_SIGNATURE_TYPE", "cloudevent"),
    ])
    .await;
    let Runtime::CloudFunctions(f) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(f.name.as_deref(), Some("resize"));
    assert_eq!(f.target.as_deref(), Some("resizeImage"));
    assert_eq!(me.runtime.kind(), "cloud_functions");

    let me = env_only(&[
        ("CLOUD_RUN_JOB", "nightly"),
        ("CLOUD_RUN_EXECUTION", "nightly-abc12"),
        ("CLOUD_RUN_TASK_INDEX", "3"),
        ("CLOUD_RUN_TASK_COUNT", "not a number"),
    ])
    .await;
    let Runtime::CloudRunJob(job) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(job.job, "nightly");
    assert_eq!(job.task_index, Some(3));
    assert_eq!(job.task_count, None);

    let me = env_only(&[("K_SERVICE", "api"), ("K_CONFIGURATION", "api")]).await;
    assert_eq!(me.runtime.kind(), "cloud_run_service");
    assert_eq!(me.project_id(), None, "Cloud Run does not set the project");

    let me = env_only(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]).await;
    assert_eq!(me.runtime, Runtime::Gke(Gke::default()));

    // Nothing: without the metadata server, unknown (not "not on Google Cloud").
    let me = env_only(&[("K_SERVICE", "  ")]).await;
    assert_eq!(me.runtime, Runtime::Unknown);
    assert_eq!(me.runtime_source, None);
    assert!(me.sources().is_empty());
}

#[tokio::test]
async fn project_and_universe_from_the_environment() {
    let me = env_only(&[
        ("GOOGLE_CLOUD_PROJECT", "Not_A_Project"),
        ("GCLOUD_PROJECT", "second-choice"),
        ("GAE_APPLICATION", "e~third-choice"),
        ("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "example-universe.test"),
    ])
    .await;
    assert_eq!(me.project_id(), Some("second-choice"));
    assert_eq!(me.universe_domain(), Some("example-universe.test"));
    assert_eq!(me.source_of(Field::UniverseDomain), Some(Source::Env));
    let me = env_only(&[("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "not a domain")]).await;
    assert_eq!(me.universe_domain(), None);
}

#[tokio::test]
async fn json_form_has_exactly_the_documented_keys() {
    let me = env_only(&[("K_SERVICE", "api"), ("GOOGLE_CLOUD_PROJECT", "my-project")]).await;
    let json = serde_json::to_value(&me).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "project_id",
        "project_number",
        "service_account_email",
        "region",
        "zone",
        "universe_domain",
        "runtime",
        "sources",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["project_id"], "my-project");
    assert!(json["project_number"].is_null());
    assert_eq!(
        json["runtime"],
        serde_json::json!({
            "kind": "cloud_run_service", "description": "Cloud Run service",
            "service": "api", "revision": null, "configuration": null,
        })
    );
    assert_eq!(
        json["sources"],
        serde_json::json!({"project_id": "env", "runtime": "env"})
    );
    let table = me.to_table();
    assert!(table.contains("project_id"), "{table}");
    assert!(table.contains("Cloud Run service"), "{table}");
    assert!(table.contains("  service"), "{table}");
}

#[tokio::test]
async fn detectors_memoise() {
    let detector = Detector::with_env([("K_SERVICE", "api")]).skip_metadata();
    let first: *const AppIdentity = detector.detect().await;
    let second: *const AppIdentity = detector.detect().await;
    assert_eq!(first, second);
}

#[test]
fn app_engine_helpers() {
    assert_eq!(strip_partition("e~a~b"), "a~b");
    assert_eq!(strip_partition("~x"), "x");
    assert_eq!(
        app_engine_default_hostname("my-app", Some("ew")).as_deref(),
        Some("my-app.ew.r.appspot.com")
    );
    assert_eq!(app_engine_default_hostname("my-app", Some("e.w")), None);
    assert_eq!(app_engine_default_hostname("My App", None), None);
    assert_eq!(default_bucket_name("example.com:my-app"), None);
    assert_eq!(app_engine_default_service_account("x"), None);
    assert_eq!(app_engine_region_id("us-east1"), Some("ue"));
    assert_eq!(region_of_zone("us-central1"), None);
    assert_eq!(region_of_zone("a-b"), None, "no region part");
    assert_eq!(region_of_zone("us-central1-"), None);
    assert_eq!(region_of_zone("--a"), None, "the region would be `-`");
    assert_eq!(region_of_zone("us--a"), None);
    assert_eq!(region_of_zone("us-central1-\u{1b}"), None);

    let mut me = AppIdentity::empty(Runtime::Unknown);
    assert_eq!(me.app_engine_default_hostname(), None);
    me.project_id = Some(Sourced::read("my-app".to_owned(), Source::Env));
    assert_eq!(
        me.app_engine_default_hostname().as_deref(),
        Some("my-app.appspot.com")
    );
    me.region = Some(Sourced::read("us-central1".to_owned(), Source::Metadata));
    assert_eq!(
        me.app_engine_default_hostname().as_deref(),
        Some("my-app.uc.r.appspot.com")
    );
    assert_eq!(
        me.default_bucket_name().as_deref(),
        Some("my-app.appspot.com")
    );
    assert_eq!(
        me.app_engine_default_service_account().as_deref(),
        Some("my-app@appspot.gserviceaccount.com")
    );
}

#[test]
fn problems_keep_their_cause_out_of_the_message() {
    let problem = DetectionProblem {
        field: Field::Zone,
        error: MetadataError::InvalidHost,
    };
    assert_eq!(
        problem.to_string(),
        "could not read the zone from the metadata server"
    );
    assert!(
        crate::ErrorChain(&problem)
            .to_string()
            .ends_with("is not a usable host[:port]")
    );
}

/// Found attacking issue #13: the environment's universe domain passed a looser check than the metadata server's
/// (`evil.com?x#y`, `a@b.c` and control characters were kept), `GAE_APPLICATION=e~` gave an empty application
/// name, and the table printed the environment's names with their control characters (a forged line, an escape
/// sequence for the terminal).
#[tokio::test]
async fn hostile_environment_values() {
    for bad in [
        "evil.com?x#y",
        "a@b.c",
        "evil.com\u{1b}[2J",
        "a..b",
        "x.y/z",
    ] {
        let me = env_only(&[("GOOGLE_CLOUD_UNIVERSE_DOMAIN", bad)]).await;
        assert_eq!(me.universe_domain(), None, "{bad:?}");
    }

    let me = env_only(&[("GAE_APPLICATION", "e~")]).await;
    let Runtime::AppEngine(gae) = &me.runtime else {
        panic!("{:?}", me.runtime)
    };
    assert_eq!(gae.application, None);
    assert_eq!(me.project_id(), None);

    let me = env_only(&[
        ("K_SERVICE", "api\nproblem: forged\u{1b}[31m"),
        ("K_REVISION", "r\u{7}"),
    ])
    .await;
    let table = me.to_table();
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table:?}"
    );
    assert!(!table.contains("\nproblem: forged"), "{table}");
    assert!(table.contains(r"api\nproblem: forged\u{1b}[31m"), "{table}");
    assert!(table.contains(r"r\u{7}"), "{table}");
    // The JSON form keeps the value as it is (JSON escapes it).
    let json = serde_json::to_value(&me).unwrap();
    assert_eq!(json["runtime"]["service"], "api\nproblem: forged\u{1b}[31m");
}
