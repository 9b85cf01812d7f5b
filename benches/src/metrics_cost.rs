//! Metrics on vs off for `RequireIdentityLayer`'s memoized path, measured by `idgate-bench-metrics`
//! (`metrics-probe/`), a package of its own built with idgate's `metrics` feature and run in a child process:
//! neither the feature nor the global recorder it installs reaches the other rows, which measure idgate as built by
//! default.

use std::path::Path;
use std::process::Command;

use crate::report::Report;

const SECTION: &str = "Metrics on vs off (`RequireIdentityLayer`, memo hit)";
const PROBE: &str = "idgate-bench-metrics";

/// Builds the probe with the cargo that runs this harness (same profile, same target directory), so it lands
/// beside this executable.
fn build_probe() -> Result<std::path::PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            PROBE,
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let probe = exe.with_file_name(PROBE);
    if probe.exists() {
        Ok(probe)
    } else {
        Err(format!("built, but {} is missing", probe.display()))
    }
}

fn measure(rounds: usize, batch: u32) -> Result<serde_json::Value, String> {
    let probe = build_probe()?;
    let out = Command::new(probe)
        .args([rounds.to_string(), batch.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

pub(crate) fn run(quick: bool, report: &mut Report) {
    let (rounds, batch) = if quick { (15, 10_000) } else { (41, 20_000) };
    let m = match measure(rounds, batch) {
        Ok(m) => m,
        Err(e) => {
            report.info(SECTION, "metrics on vs off", "not measured (see notes)");
            report.note(SECTION, format!("the metrics probe failed: {e}"));
            return;
        }
    };
    let ns = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    let recorded = m["recorded_decisions"].as_bool() == Some(true)
        && m["recorded_memo_hits"].as_bool() == Some(true);
    report.info(
        SECTION,
        "not recorded: the `metrics` feature compiled in, no recorder installed (the handles are no-ops)",
        format!("{:.0} ns per request (median of rounds)", ns("not_recorded_ns")),
    );
    report.goal(
        SECTION,
        "recorded: a Prometheus recorder installed before the layer was built: added per request",
        format!(
            "{:.0} ns per request; {:+.0} ns added (median of per-round differences; quartiles {:+.0} .. {:+.0}){}",
            ns("recorded_ns"),
            ns("added_ns"),
            ns("added_q1_ns"),
            ns("added_q3_ns"),
            if recorded {
                ""
            } else {
                "; **the recorder shows no idgate metric**"
            }
        ),
        "≤ 50 ns more",
        ns("added_ns") <= 50.0 && recorded,
    );
    report.note(
        SECTION,
        format!(
            "In a child process (`metrics-probe/`, built by the harness with idgate's `metrics` feature, which the \
             other rows do not get): one valid ID token through an axum hello-world behind `RequireIdentityLayer` \
             (`oneshot` in process, memo hit), two layers identical but for their metric handles, {rounds} rounds \
             of {batch} requests each, alternating and the order flipped each round; the figure is the median of \
             the per-round differences. The recorded layer counts `idgate_decisions_total` and the verifier's memo \
             lookups (and times one hit in 16); the Prometheus recorder is rendered between rounds, as a scrape \
             would, and checked to hold both. The feature compiled out entirely is not in this comparison (one \
             build cannot hold both); its no-op handles are what `not recorded` runs."
        ),
    );
}
