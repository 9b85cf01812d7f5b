//! A tower client calling a protected service: a hyper-util `Client` wrapped in `AddIdTokenLayer`, minting from
//! Application Default Credentials (a key file from `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server at
//! `GCE_METADATA_HOST`). The code is in `examples/src/tower_client.rs`.
//!
//! Run it against the emulator and the `service_to_service` example:
//!
//! ```text
//! # terminal 1: Google, on loopback; its metadata server mints tokens as caller-app's App Engine account
//! cargo run -p idgate-cli -- emulator --port 8085 --metadata-service-account caller-app@appspot.gserviceaccount.com
//!
//! # terminal 2: the service to call, on 127.0.0.1:8080
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example service_to_service
//!
//! # terminal 3
//! GCE_METADATA_HOST=127.0.0.1:8085 cargo run -p idgate-examples --example tower_client -- http://127.0.0.1:8080/whoami
//! ```
//!
//! Check it without any terminal: `cargo run -p idgate-examples --example tower_client -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_client::Adc;
use idgate_core::google::Endpoints;
use idgate_examples::{Result, support, tower_client};

#[tokio::main]
async fn main() -> ExitCode {
    support::report("tower_client", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return tower_client::self_test().await;
    }
    support::init_tracing();
    let url = support::args()
        .into_iter()
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/whoami".to_owned());

    let mut adc = Adc::builder();
    if let Some(base) = support::google_base_url()? {
        adc = adc.endpoints(Endpoints::under(&base));
    }
    let adc = adc.build()?;
    println!("credentials: {:?}", adc.kind());

    let client = tower_client::client(adc);
    let (status, body) = tower_client::get(&client, &url).await?;
    println!("{status} {body}");
    Ok(())
}
