//! `idgate whoami` as a user runs it, against the emulator's metadata server. Each child process gets a cleared
//! environment and only the variables a test sets, so the test machine's own (a CI runner on Google Cloud, a
//! developer's GOOGLE_CLOUD_PROJECT) cannot leak into the answer.

use std::process::{Command, Output};

use idgate_emulator::Emulator;
use serde_json::{Value, json};

fn whoami(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("idgate"));
    cmd.env_clear()
        .envs(env.iter().copied())
        .arg("whoami")
        .args(args);
    cmd
}

/// Runs `cmd` off the async runtime (the emulator keeps serving on its worker threads meanwhile).
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

async fn json(cmd: Command) -> Value {
    let out = run(cmd).await;
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

async fn serverless() -> Emulator {
    Emulator::builder()
        .project_id("billing-prod")
        .project_number(123_456_789)
        .serverless_region("europe-west1")
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_run_service_with_the_emulators_metadata() {
    let google = serverless().await;
    let url = google.base_url().to_string();
    let out = json(whoami(
        &[
            ("K_SERVICE", "invoices"),
            ("K_REVISION", "invoices-00042-abc"),
            ("K_CONFIGURATION", "invoices"),
        ],
        &["--metadata-url", &url],
    ))
    .await;
    assert_eq!(
        keys(&out),
        [
            "project_id",
            "project_number",
            "region",
            "runtime",
            "service_account_email",
            "sources",
            "universe_domain",
            "zone"
        ]
    );
    assert_eq!(out["project_id"], "billing-prod");
    assert_eq!(out["project_number"], 123_456_789);
    assert_eq!(
        out["service_account_email"],
        google.metadata_service_account()
    );
    assert_eq!(out["region"], "europe-west1");
    assert_eq!(out["zone"], "europe-west1-1");
    assert_eq!(out["universe_domain"], "googleapis.com");
    assert_eq!(
        out["runtime"],
        json!({
            "kind": "cloud_run_service", "description": "Cloud Run service",
            "service": "invoices", "revision": "invoices-00042-abc", "configuration": "invoices",
        })
    );
    assert_eq!(
        out["sources"],
        json!({
            "project_id": "metadata", "project_number": "metadata", "service_account_email": "metadata",
            "region": "metadata", "zone": "metadata", "universe_domain": "metadata", "runtime": "env",
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_engine_with_its_partition_prefix() {
    let google = serverless().await;
    let out = json(whoami(
        &[
            ("GAE_APPLICATION", "e~billing-prod"),
            ("GAE_SERVICE", "default"),
            ("GAE_VERSION", "v7"),
            ("GAE_INSTANCE", "00c61b117c"),
            ("GAE_ENV", "standard"),
            // GCE_METADATA_HOST, as Google's libraries read it, instead of --metadata-url.
            ("GCE_METADATA_HOST", &google.metadata_host()),
        ],
        &[],
    ))
    .await;
    assert_eq!(out["project_id"], "billing-prod");
    assert_eq!(out["sources"]["project_id"], "env");
    assert_eq!(out["runtime"]["kind"], "app_engine");
    assert_eq!(out["runtime"]["application"], "billing-prod");
    assert_eq!(out["runtime"]["version"], "v7");
    assert_eq!(out["project_number"], 123_456_789);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gke_and_gce() {
    let gke = Emulator::builder()
        .gke_cluster("prod-cluster")
        .zone("europe-west4-b")
        .start()
        .await
        .unwrap();
    let url = gke.base_url().to_string();
    let out = json(whoami(&[], &["--metadata-url", &url])).await;
    assert_eq!(
        out["runtime"],
        json!({"kind": "gke", "description": "GKE", "cluster_name": "prod-cluster"})
    );
    assert_eq!(out["region"], "europe-west4", "derived from the zone");
    assert_eq!(out["sources"]["region"], "metadata");

    let gce = Emulator::builder()
        .project_id("vm-project")
        .start()
        .await
        .unwrap();
    let url = gce.base_url().to_string();
    let out = json(whoami(&[], &["--metadata-url", &url])).await;
    assert_eq!(
        out["runtime"],
        json!({"kind": "compute_engine", "description": "Compute Engine"})
    );
    assert_eq!(out["project_id"], "vm-project");
    assert_eq!(out["zone"], "us-central1-a");

    // The table, for people.
    let out = run(whoami(&[], &["--metadata-url", &url, "--table"])).await;
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("vm-project"), "{table}");
    assert!(table.contains("Compute Engine"), "{table}");
    assert!(table.contains("metadata (from zone)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_google_cloud_is_an_answer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = json(whoami(
        &[],
        &["--metadata-url", &url, "--probe-timeout-ms", "300"],
    ))
    .await;
    for key in [
        "project_id",
        "project_number",
        "service_account_email",
        "region",
        "zone",
        "universe_domain",
    ] {
        assert!(out[key].is_null(), "{key}: {out}");
    }
    assert_eq!(out["runtime"]["kind"], "not_google_cloud");
    assert_eq!(out["runtime"]["description"], "not on Google Cloud");

    // --no-metadata: the environment only.
    let out = json(whoami(
        &[("K_SERVICE", "api"), ("GOOGLE_CLOUD_PROJECT", "my-project")],
        &["--no-metadata"],
    ))
    .await;
    assert_eq!(out["project_id"], "my-project");
    assert_eq!(out["runtime"]["kind"], "cloud_run_service");
    assert!(out["zone"].is_null());
}
