//! The machine the figures were measured on.

use std::process::Command;

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) nproc: String,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) rustc: String,
    pub(crate) date: String,
    pub(crate) commit: String,
    pub(crate) load_start: String,
    pub(crate) kernel: String,
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

pub(crate) fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
        );
    let commit = std::env::var("IDGATE_BENCH_COMMIT").unwrap_or_else(|_| {
        output(
            "git",
            &[
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty",
                "--exclude",
                "*",
            ],
        )
    });
    Machine {
        nproc: output("nproc", &[]),
        cpu,
        memory,
        rustc: output("rustc", &["--version"]),
        date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit,
        load_start: load_average(),
        kernel: output("uname", &["-sr"]),
    }
}
