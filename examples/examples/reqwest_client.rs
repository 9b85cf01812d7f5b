//! A service calling another with reqwest: `IdTokenMiddleware` mints a Google ID token for each request's target
//! from Application Default Credentials (a key file from `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata
//! server at `GCE_METADATA_HOST`) and attaches it, in `Authorization` or, with `--x-serverless-authorization`, in
//! `X-Serverless-Authorization` as on Cloud Run. The code is in `examples/src/reqwest_client.rs`.
//!
//! Run it against the emulator and the `service_to_service` example:
//!
//! ```text
//! # terminal 1: Google, on loopback, with a key file for an allowed service account
//! cargo run -p idgate-cli -- emulator --port 8085 --metadata-service-account caller-app@appspot.gserviceaccount.com \
//!     --service-account billing@partner-proj.iam.gserviceaccount.com --key-dir /tmp
//!
//! # terminal 2: the service to call, on 127.0.0.1:8080
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example service_to_service
//!
//! # terminal 3: as on Google Cloud (the metadata server)...
//! GCE_METADATA_HOST=127.0.0.1:8085 cargo run -p idgate-examples --example reqwest_client -- http://127.0.0.1:8080/whoami
//! # ...or with a key file (the path terminal 1 printed), in X-Serverless-Authorization
//! GOOGLE_APPLICATION_CREDENTIALS=/tmp/billing_partner-proj_iam_gserviceaccount_com-....json \
//!     cargo run -p idgate-examples --example reqwest_client -- --x-serverless-authorization http://127.0.0.1:8080/whoami
//! ```
//!
//! Check it without any terminal: `cargo run -p idgate-examples --example reqwest_client -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_client::{Adc, TokenHeader};
use idgate_core::google::Endpoints;
use idgate_examples::{Result, reqwest_client, support};

#[tokio::main]
async fn main() -> ExitCode {
    support::report("reqwest_client", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return reqwest_client::self_test().await;
    }
    support::init_tracing();
    let args = support::args();
    let header = if args.iter().any(|a| a == "--x-serverless-authorization") {
        TokenHeader::XServerlessAuthorization
    } else {
        TokenHeader::Authorization
    };
    let url = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("http://127.0.0.1:8080/whoami", String::as_str);

    // Application Default Credentials from the environment; IDGATE_GOOGLE_BASE_URL moves the metadata server.
    let mut adc = Adc::builder();
    if let Some(base) = support::google_base_url()? {
        adc = adc.endpoints(Endpoints::under(&base));
    }
    let adc = adc.build()?;
    println!("credentials: {:?}; token in {}", adc.kind(), header.name());

    let client = reqwest_client::client(adc, header)?;
    let response = client.get(url).send().await?;
    println!("{} {}", response.status(), response.text().await?);
    Ok(())
}
