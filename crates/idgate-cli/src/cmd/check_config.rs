//! `idgate check-config FILE`.

use std::path::Path;
use std::process::ExitCode;

use idgate_core::config::Config;

use super::Error;

pub(crate) fn run(file: &Path) -> Result<ExitCode, Error> {
    match Config::from_path(file) {
        Ok(config) => {
            println!("{} is valid.\n", file.display());
            println!("{}", config.effective_policy());
            println!("{}", idgate_proxy::describe(&config));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            // The error names the file, line and column, and says what to write instead.
            eprintln!("{}", idgate_core::ErrorChain(&error));
            Ok(ExitCode::FAILURE)
        }
    }
}
