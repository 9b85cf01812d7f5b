//! `idgate`: Google Cloud identity for any service, from the command line.
//!
//! ```text
//! idgate demo                                  the whole story on loopback: who gets in, and why
//! idgate emulator [--port 8085]                Google's identity endpoints, locally, until Ctrl-C
//!                 [--oauth-client REDIRECT_URI]   ... and an OAuth client for Sign in with Google
//! idgate proxy --config idgate.toml --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000
//!              [--admin-listen 127.0.0.1:9090]   /metrics, /healthz, /readyz on their own port
//!              [--header-read-timeout SECS] [--idle-timeout SECS] [--max-connections N] [--max-request-body-bytes N]
//! idgate verify --audience AUD [TOKEN | -]     verify a token exactly as the layers do
//! idgate decode [TOKEN | -]                    show a token's header and claims (NOT verified)
//! idgate token --audience AUD [--impersonate EMAIL]   print an ID token from Application Default Credentials
//! idgate sign-blob [--impersonate EMAIL] FILE  sign bytes as your service account: {signer, key_id, signature}
//! idgate verify-blob --signer EMAIL --key-id K --signature S FILE   check such a signature, as anyone can
//! idgate check-config idgate.toml              validate a config file, print the effective policy
//! idgate whoami [--table] [--metadata-url URL] [--probe-timeout-ms MS] [--no-metadata]   who am I on Google Cloud
//! ```

// A command-line program's job is to print.
#![allow(clippy::print_stdout)]

mod cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use url::Url;

/// Google Cloud identity for any service: verify who is calling, prove who you are, and develop offline.
#[derive(Debug, Parser)]
#[command(name = "idgate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format of the commands that log (proxy, emulator): text lines, or one JSON object per line on stderr
    /// in the shape Cloud Logging reads (severity, message, time, httpRequest).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "IDGATE_LOG_FORMAT",
        default_value_t = cmd::logging::LogFormat::Text
    )]
    log_format: cmd::logging::LogFormat,
}

// Parsed once at startup and matched once: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole story on loopback: the emulator plays Google, two protected services, a dozen callers,
    /// one Google API call with access tokens, and a table of who got in and why. Exits 0 when every outcome is
    /// the expected one.
    Demo {
        /// Also print every decision the layers logged.
        #[arg(long)]
        verbose: bool,
    },
    /// Serve Google's identity endpoints locally (keys, metadata server, token endpoint, IAM) until Ctrl-C.
    Emulator {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8085)]
        port: u16,
        /// Address to bind; loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Also answer requests whose Host is NAME (a host name or IP address, no port; repeatable). By default
        /// only localhost, 127.0.0.0/8, `[::1]` and the --bind address are answered, so that a web page cannot
        /// use DNS rebinding to have your browser mint tokens; other requests get 403.
        #[arg(long = "allow-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// Project ID the metadata server reports.
        #[arg(long, default_value = "my-project")]
        project_id: String,
        /// Project number the metadata server reports.
        #[arg(long, default_value_t = 123_456_789)]
        project_number: u64,
        /// Service account the metadata server mints ID tokens for.
        #[arg(long)]
        metadata_service_account: Option<String>,
        /// Play a serverless runtime in this region: the metadata server's `instance/region` answers it and
        /// `instance/zone` answers REGION-1, as on Cloud Run [default: no region (404), as on Compute Engine]
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// The zone the metadata server's `instance/zone` names [default: us-central1-a, or REGION-1 with --region]
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
        /// Create this service account and write its key file (repeatable).
        #[arg(long = "service-account", value_name = "EMAIL")]
        service_accounts: Vec<String>,
        /// Grant CALLER Service Account Token Creator on TARGET (repeatable): CALLER may then mint tokens as TARGET
        /// and sign as it (IAM generateIdToken, generateAccessToken, signJwt, signBlob). An account signing as
        /// itself through IAM needs `--allow-impersonation SA=SA`, as on Google.
        #[arg(long = "allow-impersonation", value_name = "CALLER=TARGET", value_parser = parse_grant)]
        grants: Vec<(String, String)>,
        /// Where to write key files.
        #[arg(long, default_value = ".")]
        key_dir: PathBuf,
        /// Also run Identity-Aware Proxy in front of this upstream (e.g. http://127.0.0.1:9000): every request gets a
        /// freshly signed `x-goog-iap-jwt-assertion` for --iap-user, and client-sent copies are stripped.
        #[arg(long, value_name = "UPSTREAM")]
        iap_proxy: Option<Url>,
        /// The signed-in user the IAP proxy asserts.
        #[arg(
            long,
            value_name = "EMAIL",
            default_value = "alice@example.com",
            requires = "iap_proxy"
        )]
        iap_user: String,
        /// Register an OAuth client for Sign in with Google whose authorized redirect URI is this (e.g.
        /// http://127.0.0.1:8080/auth/callback; repeat for more URIs of the same client). Prints its client ID, its
        /// secret (also written, owner-only, to --key-dir) and the `[signin]` table for idgate.toml.
        #[arg(long = "oauth-client", value_name = "REDIRECT_URI")]
        oauth_redirect_uris: Vec<Url>,
        /// Serve /metrics (Prometheus text), /healthz and /readyz on this address, never on the served port (e.g.
        /// 127.0.0.1:9090). Off unless given.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
        #[command(flatten)]
        limits: cmd::limits::LimitFlags,
    },
    /// The authenticating sidecar: verify every request with the config's layers, forward the admitted ones to the
    /// upstream with the caller in X-Idgate-Caller-* headers.
    Proxy {
        /// The idgate TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Address to listen on [default: 0.0.0.0:$PORT when PORT is set (Cloud Run's contract: it sends traffic
        /// to every interface of the container on PORT), else 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// The service to protect, e.g. http://127.0.0.1:9000.
        #[arg(long)]
        upstream: Url,
        // Each of these overrides its key in the config's `[proxy]` table.
        #[command(flatten)]
        limits: cmd::limits::LimitFlags,
        /// Keep a front end's X-Forwarded-Host, X-Forwarded-Proto and Forwarded (Cloud Run, a TLS load balancer)
        /// instead of replacing them; only when no client can reach the proxy directly [default: the config's
        /// `[proxy]` trust_forwarded_headers, else off]
        #[arg(long)]
        trust_forwarded_headers: bool,
        /// Serve /metrics (Prometheus text), /healthz and /readyz on this address, never on the served port (e.g.
        /// 127.0.0.1:9090). Off unless given.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<SocketAddr>,
        /// Serving threads, as nginx's workers: each serves its share of the connections (every new one goes to the
        /// thread serving the fewest) with upstream connections of its own [default: one per core the process may
        /// use]
        #[arg(long, value_name = "N")]
        threads: Option<std::num::NonZeroUsize>,
    },
    /// Verify a token exactly as the layers do; print the caller and claims as JSON (exit 0) or the reason (exit 1).
    Verify {
        /// Verify an IAP assertion (ES256, IAP keys) instead of a Google ID token.
        #[arg(long)]
        iap: bool,
        /// Audience(s) to accept (repeatable).
        #[arg(long = "audience", required = true)]
        audiences: Vec<String>,
        /// Accept an `aud` whose origin equals an audience (Google's sample callers put the full URL in `aud`).
        #[arg(long)]
        origin_match: bool,
        /// Key set URL (default: Google's JWKS for the token kind). Any of Google's documents for that kind works:
        /// the format is read from the document unless --keys-format pins it.
        #[arg(long)]
        keys_url: Option<Url>,
        /// Key set format: read from the document (auto), or pinned. With `pem` and no --keys-url, Google's PEM
        /// document for the token kind.
        #[arg(long, value_enum, default_value_t = KeysFormat::Auto)]
        keys_format: KeysFormat,
        /// Put every Google endpoint under this base URL (e.g. the emulator's).
        #[arg(long, env = "IDGATE_GOOGLE_BASE_URL")]
        google_base_url: Option<Url>,
        /// Clock skew tolerated, in seconds (max 300).
        #[arg(long, default_value_t = 30)]
        leeway: u64,
        /// The token, or `-` (the default) to read it from standard input.
        #[arg(default_value = "-")]
        token: String,
    },
    /// Show a token's header and claims WITHOUT verifying anything.
    Decode {
        /// The token, or `-` (the default) to read it from standard input.
        #[arg(default_value = "-")]
        token: String,
    },
    /// Print a Google ID token for an audience (like `gcloud auth print-identity-token`), or an OAuth 2.0 access
    /// token for scopes (like `gcloud auth print-access-token`), from Application Default Credentials.
    #[command(group = clap::ArgGroup::new("kind").required(true).args(["audience", "scopes"]))]
    Token {
        /// An ID token for this audience (the receiving service's URL or custom audience).
        #[arg(long)]
        audience: Option<String>,
        /// An access token for these OAuth scopes, comma-separated (full URLs, e.g.
        /// `https://www.googleapis.com/auth/devstorage.read_only`).
        #[arg(long, value_name = "SCOPE[,SCOPE...]", value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// With --scopes: act for this Google Workspace user (domain-wide delegation). Needs a service-account key
        /// in GOOGLE_APPLICATION_CREDENTIALS, or --impersonate (keyless: IAM signJwt as that account).
        #[arg(
            long,
            value_name = "USER",
            requires = "scopes",
            conflicts_with = "audience"
        )]
        subject: Option<String>,
        /// Mint the token as this service account through IAM, authenticated as you; after the account, its
        /// delegation chain in order (you → first delegate → ... → the account).
        #[arg(long, value_name = "EMAIL[,DELEGATE...]", value_delimiter = ',')]
        impersonate: Option<Vec<String>>,
        /// Delegation chain for --impersonate (repeatable; appended to the delegates given in --impersonate).
        #[arg(long = "delegate", value_name = "EMAIL", requires = "impersonate")]
        delegates: Vec<String>,
        /// Put every Google endpoint under this base URL (e.g. the emulator's).
        #[arg(long, env = "IDGATE_GOOGLE_BASE_URL")]
        google_base_url: Option<Url>,
    },
    /// Sign a file's bytes as a service account (RSASSA-PKCS1-v1_5 SHA-256): locally with the key file in
    /// Application Default Credentials, else through IAM signBlob (the metadata server's account, an impersonated
    /// file), or as --impersonate through IAM. Prints `{"signer", "key_id", "signature"}` (standard base64).
    SignBlob {
        /// Sign as this service account through IAM signBlob, authenticated as you; after the account, its
        /// delegation chain in order.
        #[arg(long, value_name = "EMAIL[,DELEGATE...]", value_delimiter = ',')]
        impersonate: Option<Vec<String>>,
        /// Put every Google endpoint under this base URL (e.g. the emulator's).
        #[arg(long, env = "IDGATE_GOOGLE_BASE_URL")]
        google_base_url: Option<Url>,
        /// The file to sign, or `-` for standard input (at most 64 MiB).
        file: PathBuf,
    },
    /// Check a signature made by a service account (sign-blob, IAM signBlob, a key file's key) against the keys the
    /// account publishes. Exit 0 and `{"verified": true, ...}`, or exit 1 and the reason; exit 2 when the account's
    /// keys could not be fetched (`keys_unavailable`: not checked, try again later).
    VerifyBlob {
        /// The service account that signed.
        #[arg(long, value_name = "EMAIL")]
        signer: String,
        /// The ID of the key that signed (sign-blob's `key_id`).
        #[arg(long, value_name = "KEY_ID")]
        key_id: String,
        /// The signature, base64 (standard or URL-safe).
        #[arg(long, value_name = "BASE64")]
        signature: String,
        /// Read the account's JWKS (`.../jwk/EMAIL`) instead of its X.509 certificates.
        #[arg(long)]
        jwk: bool,
        /// Put every Google endpoint under this base URL (e.g. the emulator's).
        #[arg(long, env = "IDGATE_GOOGLE_BASE_URL")]
        google_base_url: Option<Url>,
        /// The signed file, or `-` for standard input.
        file: PathBuf,
    },
    /// Validate an idgate TOML config; print the effective policy, or the error with line:column.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Who am I on Google Cloud: project ID and number, service account, region, zone, universe domain and
    /// runtime, from the environment and the metadata server, each with its source. Prints JSON (null when
    /// unknown); exits 0 even off Google Cloud.
    Whoami {
        /// Print an aligned table for people instead of JSON.
        #[arg(long)]
        table: bool,
        /// The metadata server's base URL (e.g. the emulator's, http://127.0.0.1:8085) [default:
        /// the host GCE_METADATA_HOST names, else metadata.google.internal]
        #[arg(long, value_name = "URL", conflicts_with = "no_metadata")]
        metadata_url: Option<Url>,
        /// How long to wait for the metadata server to answer the probe, in milliseconds [default: 500]
        #[arg(long, value_name = "MS", conflicts_with = "no_metadata")]
        probe_timeout_ms: Option<u64>,
        /// Do not ask the metadata server: the environment only.
        #[arg(long)]
        no_metadata: bool,
    },
}

/// `CALLER=TARGET`, both non-empty.
fn parse_grant(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((caller, target)) if !caller.trim().is_empty() && !target.trim().is_empty() => {
            Ok((caller.trim().to_owned(), target.trim().to_owned()))
        }
        _ => Err(format!(
            "expected CALLER=TARGET (two service-account emails), got {text:?}"
        )),
    }
}

/// `--impersonate EMAIL[,DELEGATE...]`: the account to act as, then its delegation chain.
fn split_impersonation(impersonate: Option<Vec<String>>) -> (Option<String>, Vec<String>) {
    match impersonate {
        Some(mut list) if !list.is_empty() => {
            let target = list.remove(0);
            (Some(target), list)
        }
        _ => (None, Vec::new()),
    }
}

/// The key document formats Google publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeysFormat {
    /// Whichever the document is, as Google's libraries decide (the family still comes from the token kind).
    Auto,
    /// A JWKS (`oauth2/v3/certs`, `iap/verify/public_key-jwk`).
    Jwks,
    /// PEM (`oauth2/v1/certs` certificates, `iap/verify/public_key` SPKI keys).
    Pem,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { verbose } => cmd::demo::run(verbose).await,
        Command::Emulator {
            port,
            bind,
            allowed_hosts,
            project_id,
            project_number,
            metadata_service_account,
            region,
            zone,
            service_accounts,
            grants,
            key_dir,
            iap_proxy,
            iap_user,
            oauth_redirect_uris,
            limits,
            admin_listen,
        } => {
            cmd::init_logging("info", cli.log_format);
            cmd::emulator::run(cmd::emulator::Options {
                addr: SocketAddr::new(bind, port),
                allowed_hosts,
                project_id,
                project_number,
                metadata_service_account,
                region,
                zone,
                service_accounts,
                grants,
                key_dir,
                iap_proxy,
                iap_user,
                oauth_redirect_uris,
                limits,
                admin_listen,
            })
            .await
        }
        Command::Proxy {
            config,
            listen,
            upstream,
            limits,
            trust_forwarded_headers,
            admin_listen,
            threads,
        } => {
            cmd::init_logging("info,idgate::decision=debug", cli.log_format);
            cmd::proxy::run(cmd::proxy::Options {
                config,
                listen,
                upstream,
                limits,
                trust_forwarded_headers,
                admin_listen,
                threads,
            })
            .await
        }
        Command::Verify {
            iap,
            audiences,
            origin_match,
            keys_url,
            keys_format,
            google_base_url,
            leeway,
            token,
        } => {
            cmd::verify::run(cmd::verify::Options {
                iap,
                audiences,
                origin_match,
                keys_url,
                keys_format,
                google_base_url,
                leeway,
                token,
            })
            .await
        }
        Command::Decode { token } => cmd::decode::run(&token),
        Command::Token {
            audience,
            scopes,
            subject,
            impersonate,
            delegates,
            google_base_url,
        } => {
            let what = cmd::token::Wanted::from_args(audience, scopes, subject);
            let (target, mut chain) = split_impersonation(impersonate);
            chain.extend(delegates);
            match what {
                Ok(what) => cmd::token::run(what, target, chain, google_base_url).await,
                Err(error) => Err(error),
            }
        }
        Command::SignBlob {
            impersonate,
            google_base_url,
            file,
        } => {
            let (target, delegates) = split_impersonation(impersonate);
            cmd::blob::sign(&file, target, delegates, google_base_url).await
        }
        Command::VerifyBlob {
            signer,
            key_id,
            signature,
            jwk,
            google_base_url,
            file,
        } => {
            cmd::blob::verify(cmd::blob::VerifyOptions {
                signer,
                key_id,
                signature,
                jwk,
                google_base_url,
                file,
            })
            .await
        }
        Command::CheckConfig { file } => cmd::check_config::run(&file),
        Command::Whoami {
            table,
            metadata_url,
            probe_timeout_ms,
            no_metadata,
        } => {
            cmd::whoami::run(cmd::whoami::Options {
                table,
                metadata_url,
                probe_timeout_ms,
                no_metadata,
            })
            .await
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // The whole chain: each idgate error says one level and keeps its cause in `source()`.
            eprintln!("idgate: {}", idgate_core::ErrorChain(&*error));
            ExitCode::from(2)
        }
    }
}
