//! `idgate proxy`: the authenticating sidecar.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use idgate_core::config::Config;
use idgate_proxy::{Gates, ProxyOptions};
use url::Url;

use super::emulator::shutdown_signal;
use super::limits::{LimitFlags, server_limits};
use super::{Error, admin};

pub(crate) struct Options {
    pub(crate) config: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) upstream: Url,
    pub(crate) limits: LimitFlags,
    pub(crate) trust_forwarded_headers: bool,
    pub(crate) admin_listen: Option<SocketAddr>,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let Options {
        config,
        listen,
        upstream,
        limits: flags,
        trust_forwarded_headers,
        admin_listen,
    } = options;
    let config_path: &Path = &config;
    let flags = &flags;
    // Before the gates are built: layers and verifiers take their metric handles then.
    let recorder = match admin_listen {
        Some(_) => Some(admin::Recorder::install()?),
        None => None,
    };
    let config = match Config::from_path(config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}", idgate_core::ErrorChain(&error));
            return Ok(ExitCode::FAILURE);
        }
    };
    let limits = server_limits(config.proxy(), flags)?;
    let trust_forwarded_headers =
        trust_forwarded_headers || config.proxy().trust_forwarded_headers();
    // Builds every gate ([inbound], [iap], [signin]), prefetches the keys, discovers the IAP audience and checks
    // how they combine: a broken setup fails here, not on the first request.
    let gates = match Gates::from_config(&config).await {
        Ok(gates) => gates,
        Err(error) => {
            eprintln!(
                "{}: {}",
                config_path.display(),
                idgate_core::ErrorChain(&error)
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("binding {listen}: {e}"))?;
    if let (Some(addr), Some(recorder)) = (admin_listen, recorder) {
        let scraped = gates.clone();
        let probed = gates.clone();
        let host = upstream
            .host_str()
            .ok_or_else(|| format!("--upstream {upstream}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = upstream
            .port_or_known_default()
            .ok_or_else(|| format!("--upstream {upstream}: no port"))?;
        admin::Admin::new(recorder)
            .before_scrape(move || scraped.record_metrics())
            .check("keys", move || {
                let gates = probed.clone();
                async move { keys_ready(&gates) }
            })
            .check("upstream", move || admin::tcp_reachable(host.clone(), port))
            .start(addr, shutdown_signal())
            .await?;
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        %upstream,
        header_read_timeout_secs = limits.header_read_timeout().as_secs(),
        idle_timeout_secs = limits.idle_timeout().as_secs(),
        max_connections = limits.max_connections(),
        max_request_body_bytes = limits.max_request_body_bytes(),
        trust_forwarded_headers,
        "idgate proxy ready"
    );
    let options = ProxyOptions::default()
        .limits(limits)
        .trust_forwarded_headers(trust_forwarded_headers);
    idgate_proxy::serve(listener, upstream, gates, options, shutdown_signal()).await?;
    tracing::info!("idgate proxy stopped");
    Ok(ExitCode::SUCCESS)
}

/// The readiness check of the gates' key sets: which are unusable, by source.
fn keys_ready(gates: &Gates) -> admin::CheckResult {
    let missing: Vec<String> = gates
        .key_caches()
        .into_iter()
        .filter(|keys| !keys.status().ready)
        .map(|keys| keys.source_name())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("no usable key set from {}", missing.join(", ")))
    }
}
