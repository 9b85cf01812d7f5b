//! Who may call: the [`Allowlist`] and its [`Decision`]s, and the suite's TOML [`Config`].
//!
//! An [`Allowlist`] turns a verified [`Caller`](crate::identity::Caller) into a [`Decision`] with a stable,
//! machine-readable reason. A [`Config`] is one TOML file for the whole suite (service-to-service verification,
//! IAP, endpoint overrides, the proxy's listener limits), validated when loaded with errors that name the line and
//! column and say what to write instead. See [`Config`] for the format.

mod allowlist;
mod config;

pub use allowlist::{
    AllowReason, Allowlist, AllowlistBuilder, AllowlistError, Decision, DenyReason, ListKind,
};
pub use config::{
    Config, ConfigError, ConfigErrorKind, GoogleConfig, IapAudience, IapConfig, InboundConfig,
    Location, ProxySettings,
};
