//! The App Identity guide's "asserting identity to third-party services", in Rust: the app signs a message as its
//! service account; a third party checks it against the keys Google publishes for that account. The code is in
//! `examples/src/signed_by_app.rs`.
//!
//! Run both halves against the emulator:
//!
//! ```text
//! # terminal 1: Google, on loopback; the metadata server's account is the app's
//! cargo run -p idgate-cli -- emulator --port 8085 --project-id orders-app \
//!     --metadata-service-account orders-app@appspot.gserviceaccount.com \
//!     --allow-impersonation orders-app@appspot.gserviceaccount.com=orders-app@appspot.gserviceaccount.com
//!
//! # terminal 2: the third party, trusting that account, on 127.0.0.1:8090
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example signed_by_app -- \
//!     partner orders-app@appspot.gserviceaccount.com
//!
//! # terminal 3: the app signs (as its metadata-server account, through IAM) and sends both ways
//! GCE_METADATA_HOST=127.0.0.1:8085 IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ \
//!     cargo run -p idgate-examples --example signed_by_app -- send http://127.0.0.1:8090 'order 42 shipped'
//! ```
//!
//! (The emulator, like Google, wants the account to hold Service Account Token Creator on itself before it signs
//! as itself through IAM: that is the `--allow-impersonation` grant; without it `send` prints the permission to
//! grant. With a key file in `GOOGLE_APPLICATION_CREDENTIALS` the app signs locally instead.)
//!
//! Check it without any terminal: `cargo run -p idgate-examples --example signed_by_app -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_client::{Adc, Signer};
use idgate_core::keys::ServiceAccountKeys;
use idgate_examples::{Result, signed_by_app, support};

#[tokio::main]
async fn main() -> ExitCode {
    support::report("signed_by_app", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return signed_by_app::self_test().await;
    }
    support::init_tracing();
    let endpoints = support::google_endpoints()?;
    let args = support::args();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["partner", trusted] => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
            let audience = format!("http://{}", listener.local_addr()?);
            let keys = ServiceAccountKeys::new().endpoints(&endpoints);
            println!(
                "the third party, trusting {trusted}, on {audience} (POST /messages, POST /webhook)"
            );
            support::serve_until_ctrl_c(listener, signed_by_app::partner(trusted, &audience, keys)?)
                .await
        }
        ["send", url, message] => {
            let signer = Signer::from_adc(&Adc::builder().endpoints(endpoints.clone()).build()?)?
                .endpoints(&endpoints);
            let http = reqwest::Client::new();
            let url = url.trim_end_matches('/');
            let (status, body) = signed_by_app::send_signed_blob(
                &http,
                &signer,
                &format!("{url}/messages"),
                message.as_bytes(),
            )
            .await?;
            print!("signed blob -> {status}: {body}");
            let (status, body) = signed_by_app::send_with_jwt(
                &http,
                &signer,
                &format!("{url}/webhook"),
                url,
                message.as_bytes(),
            )
            .await?;
            print!("signed JWT  -> {status}: {body}");
            Ok(())
        }
        _ => Err(
            "usage: signed_by_app partner TRUSTED_EMAIL | send URL MESSAGE | --self-test".into(),
        ),
    }
}
