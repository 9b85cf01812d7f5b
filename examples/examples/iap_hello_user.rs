//! Identity-Aware Proxy's "Hello *user-email*" app: `RequireIapLayer` verifies IAP's signed assertion, the
//! `UserEmail` extractor reads the user, the page says `Hello alice@example.com`. The code is in
//! `examples/src/iap_hello_user.rs`.
//!
//! IAP is a Google front end, so locally the emulator *library* plays it (`idgate_emulator::IapProxy`): this
//! example starts its own emulator, the app on 127.0.0.1:8080, and an IAP proxy in front of it that signs every
//! request in as the user you name (default `alice@example.com`):
//!
//! ```text
//! # terminal 1
//! cargo run -p idgate-examples --example iap_hello_user -- bob@example.com
//!
//! # terminal 2: through IAP (the proxy URL is printed by terminal 1)
//! curl http://127.0.0.1:PROXY_PORT/                   # Hello bob@example.com
//! # around IAP, with the plain header IAP also sets: it is not identity
//! curl -i -H 'X-Goog-Authenticated-User-Email: accounts.google.com:bob@example.com' http://127.0.0.1:8080/   # 401
//! ```
//!
//! The app's audience is discovered from the emulator's metadata server, as on App Engine. Check it without any
//! terminal: `cargo run -p idgate-examples --example iap_hello_user -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_core::google::Endpoints;
use idgate_emulator::{Emulator, IapProxy, IapUserSpec};
use idgate_examples::{Result, iap_hello_user, support};
use tokio::net::TcpListener;
use url::Url;

const LISTEN: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> ExitCode {
    support::report("iap_hello_user", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return iap_hello_user::self_test().await;
    }
    support::init_tracing();
    let user = support::args()
        .into_iter()
        .next()
        .unwrap_or_else(|| "alice@example.com".to_owned());

    // Google (keys, metadata server) on loopback, in process.
    let google = Emulator::start().await?;
    let endpoints = Endpoints::under(&google.base_url());
    let app = iap_hello_user::app(iap_hello_user::verifier(&endpoints).await?);

    let listener = TcpListener::bind(LISTEN).await?;
    let iap = IapProxy::start(
        &google,
        Url::parse(&format!("http://{LISTEN}/"))?,
        IapUserSpec::new(&user),
    )
    .await?;
    println!("app on http://{LISTEN}/ (401 without IAP's assertion)");
    println!(
        "IAP on {} (signs you in as {user}); Ctrl-C to stop",
        iap.url()
    );
    support::serve_until_ctrl_c(listener, app).await
}
