//! A service that only answers the services on its TOML allowlist.
//!
//! `RequireIdentityLayer` from `idgate_server::from_config`: callers send a Google-signed ID token minted for this
//! service's URL; the layer verifies it, maps the service account to its project, and applies the allowlist (the
//! App Engine app `caller-app`, and `billing@partner-proj.iam.gserviceaccount.com`). `/healthz` is exempt,
//! `/readyz` reports whether Google's keys are held. The code is in `examples/src/service_to_service.rs`.
//!
//! Run it against the emulator:
//!
//! ```text
//! # terminal 1: Google, on loopback; its metadata server mints tokens as caller-app's App Engine account
//! cargo run -p idgate-cli -- emulator --port 8085 --metadata-service-account caller-app@appspot.gserviceaccount.com
//!
//! # terminal 2: this service, on 127.0.0.1:8080
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example service_to_service
//!
//! # terminal 3: a token from the metadata server (Application Default Credentials), then the call
//! TOKEN=$(GCE_METADATA_HOST=127.0.0.1:8085 cargo run -q -p idgate-cli -- token --audience http://127.0.0.1:8080)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/whoami   # 200 hello service_account caller-app@...
//! curl -i http://127.0.0.1:8080/whoami                                  # 401, WWW-Authenticate: Bearer
//! curl http://127.0.0.1:8080/healthz http://127.0.0.1:8080/readyz       # ok, ready
//! ```
//!
//! Or call it with the `reqwest_client` or `tower_client` example. Check it without any terminal:
//! `cargo run -p idgate-examples --example service_to_service -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_core::config::Config;
use idgate_examples::{Result, service_to_service, support};
use tokio::net::TcpListener;

const LISTEN: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> ExitCode {
    support::report("service_to_service", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return service_to_service::self_test().await;
    }
    support::init_tracing();
    let audience = format!("http://{LISTEN}");
    let toml = service_to_service::config_toml(&audience, support::google_base_url()?.as_ref());
    let config = Config::from_toml_str(&toml)?;
    println!("{config}");
    let app = service_to_service::app(&config).await?;
    let listener = TcpListener::bind(LISTEN).await?;
    println!(
        "listening on {audience}: /whoami (identity required), /healthz, /readyz; Ctrl-C to stop"
    );
    support::serve_until_ctrl_c(listener, app).await
}
