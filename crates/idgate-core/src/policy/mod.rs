//! Who may call: the [`Allowlist`] and its [`Decision`]s.
//!
//! An [`Allowlist`] turns a verified [`Caller`](crate::identity::Caller) into a [`Decision`] with a stable,
//! machine-readable reason. The TOML file that configures it (and everything else) is [`crate::config`].

mod allowlist;

pub use allowlist::{
    AllowReason, Allowlist, AllowlistBuilder, AllowlistError, Decision, DenyReason, ListKind,
};
pub(crate) use allowlist::{BadShape, check_shape};
