//! What the tests that run `idgate proxy` as a binary share: a free loopback port and the config they start it with.

use std::path::{Path, PathBuf};

/// The service account every binary-level proxy test admits.
pub(crate) const ALLOWED: &str = "caller@allowed-proj.iam.gserviceaccount.com";

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `dir/idgate.toml`: `[inbound]` for `audience` with `/healthz` exempt, admitting [`ALLOWED`], keys from
/// the emulator at `google_base_url`, then `extra` (TOML lines, may be empty). Returns its path.
pub(crate) fn write_proxy_config(
    dir: &Path,
    audience: &str,
    google_base_url: &str,
    extra: &str,
) -> PathBuf {
    let config = dir.join("idgate.toml");
    std::fs::write(
        &config,
        format!(
            "[inbound]\naudiences = [\"{audience}\"]\nexempt_paths = [\"/healthz\"]\n[inbound.allow]\n\
             service_accounts = [\"{ALLOWED}\"]\n[google]\nbase_url = \"{google_base_url}\"\n{extra}\n"
        ),
    )
    .unwrap();
    config
}
