//! App Engine's App Identity → OIDC migration, both sides: a receiver that accepts the legacy
//! `X-Appengine-Inbound-Appid` header *and* ID tokens, and a caller that sends ID tokens.
//!
//! The receiver answers `Hello, <app id>` to the apps on its list (`caller-app`, `other-caller-app`) and 403 to
//! the others. It trusts the legacy header only because it declares it sits behind App Engine's front end
//! (`TrustedAppEngineFrontEnd`). On loopback that declaration is false, so here anyone can send the header:
//! this is why it is off unless you turn it on, and why it must stay off anywhere but App Engine. The code is in
//! `examples/src/appengine_dual_mode.rs`.
//!
//! Run it against the emulator:
//!
//! ```text
//! # terminal 1: Google, on loopback; its metadata server mints tokens as caller-app's App Engine account
//! cargo run -p idgate-cli -- emulator --port 8085 --metadata-service-account caller-app@appspot.gserviceaccount.com
//!
//! # terminal 2: the receiver, on 127.0.0.1:8080
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example appengine_dual_mode
//!
//! # terminal 3: a migrated caller (ID token from Application Default Credentials: here the metadata server)...
//! GCE_METADATA_HOST=127.0.0.1:8085 cargo run -p idgate-examples --example appengine_dual_mode -- call http://127.0.0.1:8080/
//! # ...and a legacy one, as URL Fetch sends it
//! curl -H 'X-Appengine-Inbound-Appid: caller-app' http://127.0.0.1:8080/     # Hello, caller-app (via X-Appengine-Inbound-Appid)
//! curl -i -H 'X-Appengine-Inbound-Appid: intruder' http://127.0.0.1:8080/    # 403
//! ```
//!
//! With a key file instead of the metadata server: add `--service-account caller-app@appspot.gserviceaccount.com`
//! to terminal 1 and use the `GOOGLE_APPLICATION_CREDENTIALS=...` line it prints. Check it without any terminal:
//! `cargo run -p idgate-examples --example appengine_dual_mode -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_client::Adc;
use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_examples::{Result, appengine_dual_mode, support};
use tokio::net::TcpListener;

const LISTEN: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> ExitCode {
    support::report("appengine_dual_mode", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return appengine_dual_mode::self_test().await;
    }
    support::init_tracing();
    match support::args().as_slice() {
        [] => serve().await,
        [call, url] if call == "call" => call_it(url).await,
        _ => Err("usage: appengine_dual_mode [call URL] [--self-test]".into()),
    }
}

/// The receiver.
async fn serve() -> Result<()> {
    let audience = format!("http://{LISTEN}");
    // On App Engine this declaration is true: its front end strips the header from client requests. Here it is
    // not; it is made only so the legacy path can be tried with curl.
    let front_end = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    let app =
        appengine_dual_mode::receiver(&audience, &support::google_endpoints()?, Some(front_end))?;
    let listener = TcpListener::bind(LISTEN).await?;
    println!(
        "receiver on {audience}: X-Appengine-Inbound-Appid (trusted!) or an ID token; Ctrl-C to stop"
    );
    support::serve_until_ctrl_c(listener, app).await
}

/// The caller: one request with the token minted for the target's origin, one for the full URL.
async fn call_it(url: &str) -> Result<()> {
    let mut adc = Adc::builder();
    if let Some(base) = support::google_base_url()? {
        adc = adc.endpoints(idgate_core::google::Endpoints::under(&base));
    }
    let adc = adc.build()?;
    println!("minting with {:?}", adc.kind());
    let client = appengine_dual_mode::caller(adc);

    let response = client.get(url).send().await?;
    println!(
        "audience = origin:   {} {}",
        response.status(),
        response.text().await?
    );
    let response = appengine_dual_mode::call_like_google_sample(&client, url).await?;
    println!(
        "audience = full URL: {} {}",
        response.status(),
        response.text().await?
    );
    Ok(())
}
