//! `idgate emulator`: Google's identity endpoints on loopback, until Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use idgate_emulator::{Emulator, IapProxy, IapUserSpec};

use super::limits::{LimitFlags, server_limits};
use super::{Error, admin};

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
    pub(crate) oauth_redirect_uris: Vec<url::Url>,
    pub(crate) limits: LimitFlags,
    pub(crate) admin_listen: Option<SocketAddr>,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let limits = server_limits(&Default::default(), &options.limits)?;
    if let Some(bad) = options
        .oauth_redirect_uris
        .iter()
        .find(|uri| !matches!(uri.scheme(), "http" | "https"))
    {
        return Err(format!(
            "--oauth-client {bad}: a redirect URI is an http(s) URL, e.g. http://127.0.0.1:8080/auth/callback"
        )
        .into());
    }
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
    let recorder = match options.admin_listen {
        Some(_) => Some(admin::Recorder::install()?),
        None => None,
    };
    let counted = recorder.is_some();
    // Served like `idgate proxy`: a silent or slow client cannot hold the emulator's connections.
    let proxy_limits = limits.clone();
    let emulator = builder
        .start_with(move |listener, routes, shutdown| {
            let routes = if counted {
                routes.layer(axum::middleware::from_fn(count_request))
            } else {
                routes
            };
            idgate_serve::serve(listener, routes, limits, shutdown)
        })
        .await?;
    if let (Some(addr), Some(recorder)) = (options.admin_listen, recorder) {
        let serving = emulator.local_addr();
        admin::Admin::new(recorder)
            .check("emulator", move || {
                admin::tcp_reachable(serving.ip().to_string(), serving.port())
            })
            .start(addr, shutdown_signal())
            .await?;
    }
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
    let signin = match options.oauth_redirect_uris.as_slice() {
        [] => None,
        uris => Some(oauth_client(&emulator, uris, &options.key_dir)?),
    };
    println!();
    println!("and in idgate.toml:");
    println!("  [google]");
    println!("  base_url = \"{base}\"");
    if let Some(toml) = signin {
        print!("{toml}");
    }
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

/// Registers one OAuth client for `uris`, writes its secret to `key_dir`, prints how to use it (its ID and secret as
/// environment variables, the account chooser, the test users) and returns the `[signin]` table for idgate.toml.
fn oauth_client(emulator: &Emulator, uris: &[url::Url], key_dir: &Path) -> Result<String, Error> {
    let uris: Vec<&str> = uris.iter().map(url::Url::as_str).collect();
    let client = emulator.try_create_oauth_client(&uris)?;
    let secret_file = client.write_secret_file(key_dir)?;
    // idgate.toml may be read from another directory than this one.
    let secret_file = std::fs::canonicalize(&secret_file).unwrap_or(secret_file);
    println!();
    println!(
        "Sign in with Google: an OAuth client (web application) for {}",
        uris.join(", ")
    );
    println!("  export IDGATE_CLIENT_ID={}", client.client_id());
    // The emulator's own secret, valid for this run only: printing it to the developer's terminal is harmless.
    println!("  export IDGATE_CLIENT_SECRET={}", client.client_secret());
    println!(
        "  # the secret is also in {} (owner-only)",
        secret_file.display()
    );
    println!("  account chooser  {}", emulator.authorization_url());
    let users = emulator.users();
    for (i, user) in users.iter().enumerate() {
        let label = if i == 0 { "test users" } else { "" };
        let hd = user
            .hosted_domain()
            .map_or_else(String::new, |hd| format!(", hd {hd}"));
        println!("  {label:15}  {} ({}{hd})", user.email(), user.name());
    }
    let mut toml = String::new();
    toml.push_str("  [signin]\n");
    toml.push_str(&format!(
        "  client_id = {}\n",
        toml_string(client.client_id())
    ));
    toml.push_str(&format!(
        "  client_secret_file = {}   # or client_secret_env = \"IDGATE_CLIENT_SECRET\"\n",
        toml_string(&secret_file.display().to_string())
    ));
    toml.push_str(&format!("  redirect_url = {}\n", toml_string(uris[0])));
    toml.push_str("  [signin.allow]\n");
    toml.push_str(
        "  domains = [\"example.com\"]   # alice and bob; mallory@gmail.com signs in and is refused (403)\n",
    );
    Ok(toml)
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

/// Counts each request the emulator answers, by route template (never the path itself: it holds emails, audiences)
/// and status.
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics::counter!(
        admin::EMULATOR_REQUESTS_TOTAL,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
