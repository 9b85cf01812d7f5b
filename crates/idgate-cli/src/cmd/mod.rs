//! One module per subcommand. Each `run` returns the exit code, or an error for "could not even try" (exit 2).

pub(crate) mod admin;
pub(crate) mod blob;
pub(crate) mod check_config;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod emulator;
pub(crate) mod limits;
pub(crate) mod logging;
pub(crate) mod proxy;
pub(crate) mod token;
pub(crate) mod verify;
pub(crate) mod whoami;

use std::io::Read as _;

/// A boxed error for the "could not even try" path; every message is written for a person.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Logs to stderr in `format`, `RUST_LOG` overriding `default`.
pub(crate) fn init_logging(default: &str, format: logging::LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Only fails when a subscriber is already set (never, in the binary): logging then goes there.
    match format {
        logging::LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        logging::LogFormat::Json => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(logging::CloudLoggingLayer::new(std::io::stderr))
                .try_init();
        }
    }
}

/// The token argument, or standard input when it is `-`. Surrounding whitespace is dropped.
pub(crate) fn read_token(arg: &str) -> Result<String, Error> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut token = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut token)
        .map_err(|e| format!("reading the token from standard input: {e}"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err("no token given: pass it as an argument or on standard input".into());
    }
    Ok(token.to_owned())
}
