//! What the tests that run `idgate proxy` as a binary share: a free loopback port, the config they start it with,
//! and a reading of its admin port's Prometheus scrape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The service account every binary-level proxy test admits.
pub(crate) const ALLOWED: &str = "caller@allowed-proj.iam.gserviceaccount.com";

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `dir/idgate.toml`: `[inbound]` for `audience` with `/healthz` exempt, admitting [`ALLOWED`], keys from
/// the emulator at `google_base_url`, then `extra` (TOML lines, may be empty). Returns its path.
pub(crate) fn write_proxy_config(
    dir: &Path,
    audience: &str,
    google_base_url: &str,
    extra: &str,
) -> PathBuf {
    let config = dir.join("idgate.toml");
    std::fs::write(
        &config,
        format!(
            "[inbound]\naudiences = [\"{audience}\"]\nexempt_paths = [\"/healthz\"]\n[inbound.allow]\n\
             service_accounts = [\"{ALLOWED}\"]\n[google]\nbase_url = \"{google_base_url}\"\n{extra}\n"
        ),
    )
    .unwrap();
    config
}

/// A Prometheus text exposition, parsed into samples: `name{labels} value`.
// Not every test binary that includes this module reads a scrape.
#[allow(dead_code)]
pub(crate) struct Scrape {
    pub(crate) text: String,
    pub(crate) samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

#[allow(dead_code)]
impl Scrape {
    pub(crate) fn parse(text: String) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line: series value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').expect("labels end with }");
                    let labels = rest
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push((name, labels, value));
        }
        Self { text, samples }
    }

    /// The value of the one series `name` whose labels are exactly `labels`; 0 when absent (a counter never
    /// incremented is not exported).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
            .collect();
        assert!(found.len() <= 1, "{name}{labels:?} twice:\n{}", self.text);
        found.first().copied().unwrap_or(0.0)
    }

    /// The sum of every series named `name` (0 when there is none).
    pub(crate) fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Every series named `name`.
    pub(crate) fn series(&self, name: &str) -> Vec<&BTreeMap<String, String>> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, _)| l)
            .collect()
    }
}
