//! The logic of idgate's examples, one module per example, so that each example's `main` and the
//! `run_examples` integration test call the same code.
//!
//! | example | module | shows |
//! |---|---|---|
//! | `service_to_service` | [`service_to_service`] | axum + `RequireIdentityLayer` from a TOML allowlist, `VerifiedCaller`, `/healthz`, `/readyz` |
//! | `appengine_dual_mode` | [`appengine_dual_mode`] | App Engine's App Identity → OIDC migration: legacy header and ID tokens side by side; the caller side |
//! | `iap_hello_user` | [`iap_hello_user`] | Identity-Aware Proxy's "Hello *user-email*" app with `RequireIapLayer` and `UserEmail` |
//! | `reqwest_client` | [`reqwest_client`] | `IdTokenMiddleware` over Application Default Credentials, `X-Serverless-Authorization` |
//! | `tower_client` | [`tower_client`] | a hyper-util client wrapped in `AddIdTokenLayer` |
//! | `list_buckets` | [`list_buckets`] | the App Identity guide's Google API call: Cloud Storage's bucket list with `AccessTokenMiddleware` |
//! | `bookshelf` | [`bookshelf`] | the Bookshelf tutorial's "Authenticating users": Sign in with Google (`idgate_signin`) from a `[signin]` TOML table, "Login" / picture, name and "Logout", a "my books" page only signed-in users reach |
//! | `signed_by_app` | [`signed_by_app`] | the App Identity guide's "asserting identity to third parties": `Signer` (IAM `signBlob`/`signJwt`) on one side, `ServiceAccountKeys` and `ServiceAccountJwtVerifier` on the other |
//!
//! Run one with `cargo run -p idgate-examples --example NAME` (its top doc says what else to start), or check it
//! with `cargo run -p idgate-examples --example NAME -- --self-test`: an in-process `idgate_emulator::Emulator`
//! plays Google, everything listens on `127.0.0.1`, and the example asserts what must happen.

pub mod appengine_dual_mode;
pub mod bookshelf;
pub mod iap_hello_user;
pub mod list_buckets;
pub mod reqwest_client;
pub mod service_to_service;
pub mod signed_by_app;
pub mod support;
pub mod tower_client;

pub use support::{Error, Result};

/// The workspace README's Rust snippets, compiled as doctests so they cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
