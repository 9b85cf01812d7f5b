//! `idgate whoami`: who this process is on Google Cloud, from the environment and the metadata server.
//!
//! Prints [`AppIdentity`]'s JSON form (keys `project_id`, `project_number`, `service_account_email`, `region`,
//! `zone`, `universe_domain`, `runtime`, `sources`; `null` when unknown), or with `--table` an aligned table.
//! Exits 0 whatever the answer, "not on Google Cloud" included; values the metadata server could not give for
//! another reason than not defining them are reported on stderr.

use std::process::ExitCode;
use std::time::Duration;

use idgate_core::app::{AppIdentity, Detector};
use url::Url;

use super::Error;

pub(crate) struct Options {
    pub(crate) table: bool,
    pub(crate) metadata_url: Option<Url>,
    pub(crate) probe_timeout_ms: Option<u64>,
    pub(crate) no_metadata: bool,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let mut detector = Detector::new();
    if let Some(url) = &options.metadata_url {
        detector = detector.metadata_url(url);
    }
    if let Some(ms) = options.probe_timeout_ms {
        detector = detector.probe_timeout(Duration::from_millis(ms));
    }
    if options.no_metadata {
        detector = detector.skip_metadata();
    }
    let me = detector.detect().await;
    report_problems(me);
    if options.table {
        print!("{}", me.to_table());
    } else {
        println!("{}", serde_json::to_string_pretty(me)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// The problems detection kept, one line each on stderr (a configuration error in the metadata host too).
fn report_problems(me: &AppIdentity) {
    if let Some(error) = me.probe_error.as_ref().filter(|e| e.is_config()) {
        eprintln!("idgate whoami: {}", idgate_core::ErrorChain(error));
    }
    for problem in &me.problems {
        eprintln!("idgate whoami: {}", idgate_core::ErrorChain(problem));
    }
}
