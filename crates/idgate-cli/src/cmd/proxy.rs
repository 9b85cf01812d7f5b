//! `idgate proxy`: the authenticating sidecar.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use idgate_core::config::Config;
use idgate_proxy::{Gates, ProxyOptions};
use url::Url;

use super::Error;
use super::emulator::shutdown_signal;
use super::limits::{LimitFlags, server_limits};

pub(crate) async fn run(
    config: &Path,
    listen: SocketAddr,
    upstream: Url,
    flags: &LimitFlags,
    trust_forwarded_headers: bool,
) -> Result<ExitCode, Error> {
    let config_path = config;
    let config = match Config::from_path(config) {
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
