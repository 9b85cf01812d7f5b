//! The listener-limit flags `idgate proxy` and `idgate emulator` share, and how they combine with `[proxy]`.

use std::time::Duration;

use idgate_core::config::ProxySettings;
use idgate_serve::{LimitError, ServerLimits};

/// Limits on the listener: slow, silent or numerous clients cannot hold its connections and descriptors.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct LimitFlags {
    /// Close a connection whose request head is not complete within SECS of the accept (a connection that sends
    /// nothing too), or of the first byte of its next request [default: 10; for `proxy`, the config's
    /// `[proxy]` header_read_timeout_secs when set]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) header_read_timeout: Option<u64>,
    /// Close a connection with no request in flight after SECS [default: 60; for `proxy`, the config's
    /// idle_timeout_secs when set]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) idle_timeout: Option<u64>,
    /// Serve at most N connections at once; more clients wait in the kernel's backlog [default: 1024; for
    /// `proxy`, the config's max_connections when set]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub(crate) max_connections: Option<u64>,
    /// Answer 413 to a larger Content-Length, and cut a larger streamed body [default: 33554432 (32 MiB); for
    /// `proxy`, the config's max_request_body_bytes when set]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_request_body_bytes: Option<u64>,
}

/// `settings` (the config's `[proxy]` table, or its defaults), each flag given overriding its key.
pub(crate) fn server_limits(
    settings: &ProxySettings,
    flags: &LimitFlags,
) -> Result<ServerLimits, LimitError> {
    let secs = |flag: Option<u64>, setting: Duration| flag.map_or(setting, Duration::from_secs);
    ServerLimits::default()
        .with_header_read_timeout(secs(
            flags.header_read_timeout,
            settings.header_read_timeout(),
        ))?
        .with_idle_timeout(secs(flags.idle_timeout, settings.idle_timeout()))?
        .with_max_connections(
            flags
                .max_connections
                .map_or(settings.max_connections(), |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
        )?
        .with_max_request_body_bytes(
            flags
                .max_request_body_bytes
                .unwrap_or(settings.max_request_body_bytes()),
        )
}

#[cfg(test)]
mod tests {
    use idgate_core::config::Config;

    use super::*;

    #[test]
    fn the_config_defaults_are_the_serve_loops_defaults() {
        assert_eq!(
            server_limits(&ProxySettings::default(), &LimitFlags::default()),
            Ok(ServerLimits::default())
        );
    }

    #[test]
    fn flags_override_the_config_key_by_key() {
        let config = Config::from_toml_str(
            "[inbound]\naudiences = [\"https://svc.example\"]\n[inbound.allow]\nproject_ids = [\"caller-app\"]\n\
             [proxy]\nheader_read_timeout_secs = 30\nmax_connections = 100\n",
        )
        .unwrap();
        let flags = LimitFlags {
            header_read_timeout: Some(1),
            max_request_body_bytes: Some(1024),
            ..LimitFlags::default()
        };
        let limits = server_limits(config.proxy(), &flags).unwrap();
        assert_eq!(limits.header_read_timeout(), Duration::from_secs(1));
        assert_eq!(limits.max_connections(), 100);
        assert_eq!(limits.idle_timeout(), Duration::from_secs(60));
        assert_eq!(limits.max_request_body_bytes(), Some(1024));
    }
}
