//! Integration tests for the emulator: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod faults;
mod fidelity;
mod helpers;
mod hosts;
mod keys;
mod metadata;
mod oauth;
mod proxy;
mod rotation;
mod serving;
mod signin;
mod signin_tokens;
mod signing;
mod tokens;
