//! Runs every example's self-test: the same code the examples' `main` runs with `--self-test`.

use idgate_examples::{
    Result, appengine_dual_mode, bookshelf, iap_hello_user, list_buckets, reqwest_client,
    service_to_service, signed_by_app, tower_client,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_passes_its_self_test() {
    let results: [(&str, Result<()>); 8] = [
        ("service_to_service", service_to_service::self_test().await),
        (
            "appengine_dual_mode",
            appengine_dual_mode::self_test().await,
        ),
        ("iap_hello_user", iap_hello_user::self_test().await),
        ("reqwest_client", reqwest_client::self_test().await),
        ("tower_client", tower_client::self_test().await),
        ("list_buckets", list_buckets::self_test().await),
        ("signed_by_app", signed_by_app::self_test().await),
        ("bookshelf", bookshelf::self_test().await),
    ];
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "self-tests failed:\n{}",
        failures.join("\n")
    );
}
