//! idgate-core against the emulator: tokens minted by a faithful twin of Google, keys served over real HTTP on
//! loopback, every verification rule asserted by its typed error.

mod app;
mod http_keys;
mod iap;
mod metadata;
mod oidc;
mod signed_by;
mod support;
