//! The Bookshelf tutorial's "Authenticating users" in Rust: Sign in with Google (`idgate_signin`), a home page with
//! "Login" or the user's picture, name and "Logout", and a "my books" page only a signed-in user reaches (books kept
//! in memory, per user). The code is in `examples/src/bookshelf.rs`; the sign-in is its `[signin]` TOML table.
//!
//! Run it against the emulator, which plays Google's account chooser and registers the OAuth client:
//!
//! ```text
//! # terminal 1: Google, on loopback, with an OAuth client whose redirect URI is the app's callback
//! cargo run -p idgate-cli -- emulator --port 8085 --oauth-client http://127.0.0.1:8080/auth/callback
//! # it prints: export IDGATE_CLIENT_ID=…, export IDGATE_CLIENT_SECRET=…, and the test users
//!
//! # terminal 2: the two exports terminal 1 printed, then
//! IDGATE_GOOGLE_BASE_URL=http://127.0.0.1:8085/ cargo run -p idgate-examples --example bookshelf
//! # open http://127.0.0.1:8080/ (not localhost: the callback is registered for 127.0.0.1), click "My books":
//! # alice@example.com and bob@example.com get in; mallory@gmail.com gets "Access denied"
//! ```
//!
//! Against the real Google: create a "Web application" OAuth client in the Cloud Console with the redirect URI
//! `http://127.0.0.1:8080/auth/callback`, export its ID and secret the same way, run it without
//! `IDGATE_GOOGLE_BASE_URL`, and change the allowed domain in `config_toml`.
//!
//! Check it without any terminal: `cargo run -p idgate-examples --example bookshelf -- --self-test`.

// An example's job is to print.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use idgate_examples::bookshelf::{self, CLIENT_ID_VAR, CLIENT_SECRET_VAR, SecretFrom};
use idgate_examples::{Result, support};
use tokio::net::TcpListener;

const LISTEN: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> ExitCode {
    support::report("bookshelf", run().await)
}

async fn run() -> Result<()> {
    if support::self_test_requested() {
        return bookshelf::self_test().await;
    }
    support::init_tracing();
    let client_id = std::env::var(CLIENT_ID_VAR).map_err(|_| {
        format!(
            "set {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}: `idgate emulator --oauth-client http://{LISTEN}/auth/callback` \
             prints both"
        )
    })?;
    let toml = bookshelf::config_toml(
        &client_id,
        SecretFrom::Env(CLIENT_SECRET_VAR),
        &format!("http://{LISTEN}/auth/callback"),
        support::google_base_url()?.as_ref(),
    );
    // Fails here, before serving, when the secret is missing or the table is wrong.
    let signin = bookshelf::signin(&toml)?;
    let listener = TcpListener::bind(LISTEN).await?;
    println!("Bookshelf on http://{LISTEN}/ (Ctrl-C to stop), configured by:");
    for line in toml.lines() {
        println!("  | {line}");
    }
    support::serve_until_ctrl_c(listener, bookshelf::app(&signin)).await
}
