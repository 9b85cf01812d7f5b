//! `idgate emulator`: Google's identity endpoints on loopback, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use idgate_emulator::{Emulator, IapProxy, IapUserSpec};

use super::Error;
use super::limits::{LimitFlags, server_limits};

pub(crate) struct Options {
    pub(crate) addr: SocketAddr,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) project_id: String,
    pub(crate) project_number: u64,
    pub(crate) metadata_service_account: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) zone: Option<String>,
    pub(crate) service_accounts: Vec<String>,
    pub(crate) grants: Vec<(String, String)>,
    pub(crate) key_dir: PathBuf,
    pub(crate) iap_proxy: Option<url::Url>,
    pub(crate) iap_user: String,
    pub(crate) limits: LimitFlags,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let limits = server_limits(&Default::default(), &options.limits)?;
    let mut builder = Emulator::builder()
        .bind(options.addr)
        .project_id(&options.project_id)
        .project_number(options.project_number);
    if !options.addr.ip().is_loopback() {
        eprintln!(
            "warning: serving the emulator on {} (not loopback): anyone who can reach it can mint tokens. \
             Requests must still name it by a loopback name, {} or an --allow-host NAME.",
            options.addr,
            options.addr.ip()
        );
        builder = builder.allow_non_loopback();
    }
    for host in &options.allowed_hosts {
        builder = builder.allow_host(host);
    }
    if let Some(email) = &options.metadata_service_account {
        builder = builder.metadata_service_account(email);
    }
    if let Some(region) = &options.region {
        builder = builder.serverless_region(region);
    }
    if let Some(zone) = &options.zone {
        builder = builder.zone(zone);
    }
    // Served like `idgate proxy`: a silent or slow client cannot hold the emulator's connections.
    let proxy_limits = limits.clone();
    let emulator = builder
        .start_with(move |listener, routes, shutdown| {
            idgate_serve::serve(listener, routes, limits, shutdown)
        })
        .await?;
    let base = emulator.base_url();
    println!("idgate emulator: Google's identity endpoints at {base}");
    println!();
    println!(
        "  OIDC keys     {}  (and {})",
        emulator.oidc_jwks_url(),
        emulator.oidc_pem_certs_url()
    );
    println!(
        "  IAP keys      {}  (and {})",
        emulator.iap_jwks_url(),
        emulator.iap_pem_url()
    );
    println!("  metadata      {}", emulator.metadata_base_url());
    println!("  token         {}", emulator.token_url());
    println!("  IAM           {}", emulator.iam_credentials_url());
    println!("  tokeninfo     {}", emulator.tokeninfo_url());
    println!(
        "  Storage API   {}storage/v1/b?project={}",
        emulator.storage_url(),
        emulator.project_id()
    );
    println!(
        "  project       {} (number {})",
        emulator.project_id(),
        emulator.project_number()
    );
    println!("  IAP audience  {}", emulator.iap_audience_app_engine());
    println!("  metadata SA   {}", emulator.metadata_service_account());
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.0/8".to_owned(),
        "[::1]".to_owned(),
    ];
    if !options.addr.ip().is_loopback() {
        hosts.push(options.addr.ip().to_string());
    }
    hosts.extend(options.allowed_hosts.iter().cloned());
    println!(
        "  Host          {} (others get 403: see --allow-host)",
        hosts.join(", ")
    );
    println!();
    println!("Point your code at it:");
    println!("  export GCE_METADATA_HOST={}", emulator.metadata_host());
    println!("  export IDGATE_GOOGLE_BASE_URL={base}");
    for email in &options.service_accounts {
        let key = emulator.try_create_service_account(email)?;
        let path = key.write_key_file(&options.key_dir)?;
        println!(
            "  export GOOGLE_APPLICATION_CREDENTIALS={}   # {email}",
            path.display()
        );
    }
    for (caller, target) in &options.grants {
        emulator.allow_impersonation(caller, target);
        println!("  # {caller} may act as {target} (Service Account Token Creator)");
    }
    println!();
    println!("and in idgate.toml:");
    println!("  [google]");
    println!("  base_url = \"{base}\"");
    println!();
    println!("Mint a token as the metadata service account:");
    println!(
        "  curl -H 'Metadata-Flavor: Google' '{}?audience=http://127.0.0.1:8080'",
        emulator.metadata_identity_url()
    );
    let proxy = match options.iap_proxy {
        Some(upstream) => {
            let user =
                IapUserSpec::new(&options.iap_user).audience(emulator.iap_audience_app_engine());
            // The IAP proxy mints an assertion for every request: the same listener limits as the emulator's.
            let proxy = IapProxy::start_with(
                &emulator,
                upstream.clone(),
                user,
                move |listener, routes, shutdown| {
                    idgate_serve::serve(listener, routes, proxy_limits, shutdown)
                },
            )
            .await?;
            println!();
            println!(
                "IAP proxy: {} -> {upstream}, signed in as {}",
                proxy.url(),
                options.iap_user
            );
            Some(proxy)
        }
        None => None,
    };
    println!();
    println!("Ctrl-C to stop.");
    shutdown_signal().await;
    if let Some(proxy) = proxy {
        proxy.shutdown().await;
    }
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
