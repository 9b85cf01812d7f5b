//! `idgate proxy`: the authenticating sidecar.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use idgate_core::config::Config;
use idgate_proxy::{Gates, ProxyOptions};
use url::Url;

use super::emulator::shutdown_signal;
use super::limits::{LimitFlags, server_limits};
use super::{Error, admin};

/// Where the proxy listens when `--listen` is not given and PORT is not set.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// `--listen` when given; else `0.0.0.0:$PORT` when PORT is set (Cloud Run's contract: the ingress container listens
/// on PORT, and Cloud Run sends traffic to every interface, so loopback would never see it); else 127.0.0.1:8080.
/// A PORT that is not a port number (1-65535) is an error naming PORT: listening elsewhere would leave the service
/// unreachable with nothing saying why.
fn listen_address(flag: Option<SocketAddr>, port: Option<OsString>) -> Result<SocketAddr, Error> {
    if let Some(addr) = flag {
        return Ok(addr);
    }
    let Some(port) = port else {
        return Ok(DEFAULT_LISTEN);
    };
    match port.to_str().map(|p| p.trim().parse::<u16>()) {
        Some(Ok(port)) if port != 0 => Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)),
        _ => Err(format!(
            "the PORT environment variable is {port:?}, not a port number (1-65535); set PORT to the port to \
             listen on (Cloud Run sets it), unset it, or pass --listen ADDR"
        )
        .into()),
    }
}

pub(crate) struct Options {
    pub(crate) config: PathBuf,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) upstream: Url,
    pub(crate) limits: LimitFlags,
    pub(crate) trust_forwarded_headers: bool,
    pub(crate) admin_listen: Option<SocketAddr>,
    pub(crate) threads: Option<std::num::NonZeroUsize>,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let Options {
        config,
        listen,
        upstream,
        limits: flags,
        trust_forwarded_headers,
        admin_listen,
        threads,
    } = options;
    let listen = listen_address(listen, std::env::var_os("PORT"))?;
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
    let mut options = ProxyOptions::default()
        .limits(limits)
        .trust_forwarded_headers(trust_forwarded_headers);
    if let Some(threads) = threads {
        options = options.threads(threads);
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        %upstream,
        header_read_timeout_secs = options.server_limits().header_read_timeout().as_secs(),
        idle_timeout_secs = options.server_limits().idle_timeout().as_secs(),
        max_connections = options.server_limits().max_connections(),
        max_request_body_bytes = options.server_limits().max_request_body_bytes(),
        trust_forwarded_headers,
        threads = options.serving_threads(),
        "idgate proxy ready"
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> Option<OsString> {
        Some(text.into())
    }

    #[test]
    fn listen_is_the_flag_then_port_on_every_interface_then_loopback() {
        let flag: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        assert_eq!(listen_address(Some(flag), port("8081")).unwrap(), flag);
        assert_eq!(listen_address(Some(flag), port("nonsense")).unwrap(), flag);
        assert_eq!(
            listen_address(None, port("8081")).unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
        assert_eq!(listen_address(None, None).unwrap(), DEFAULT_LISTEN);
    }

    #[test]
    fn a_port_that_is_not_a_port_number_is_an_error_naming_port() {
        for bad in ["", "0", "-1", "65536", "80a", "8080 8081", "1e3"] {
            let error = listen_address(None, port(bad)).unwrap_err().to_string();
            assert!(error.contains("PORT"), "{bad:?}: {error}");
            assert!(error.contains(&format!("{bad:?}")), "{bad:?}: {error}");
        }
    }
}
