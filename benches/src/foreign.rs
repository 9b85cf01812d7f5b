//! Python `google-auth` and Node `google-auth-library`, installed into git-ignored local directories from PyPI
//! and npm, timed in their own processes on the same tokens and certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::env::{Env, GOOGLE_ISSUERS, IAP_ISSUER, OIDC_AUDIENCE};
use crate::report::Report;
use crate::verify::{ColdRates, fmt_us};

const SECTION: &str = "Verification vs Python and Node (single thread, same tokens)";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn status(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `benches/.venv` with google-auth and cryptography (google-auth's RSA and ECDSA backend).
fn python() -> Result<PathBuf, String> {
    let venv = dir().join(".venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let ok = Command::new(&py)
        .args(["-c", "import google.auth, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        status(Command::new(&py).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "google-auth",
            "cryptography",
        ]))?;
    }
    Ok(py)
}

/// `benches/.tools/node/node_modules/google-auth-library`.
fn node_modules() -> Result<PathBuf, String> {
    let prefix = dir().join(".tools/node");
    let modules = prefix.join("node_modules");
    if !modules.join("google-auth-library/package.json").exists() {
        std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        status(
            Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-package-lock",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(&prefix)
                .arg("google-auth-library"),
        )?;
    }
    Ok(modules)
}

fn run_script(mut cmd: Command) -> Result<Value, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("output of {cmd:?}: {e}"))
}

fn write_input(env: &Env, oidc: &[String], iap: &[String], path: &Path) {
    let input = json!({
        "rounds": 4,
        "slice_ms": 400,
        "chunk": 16,
        "rs256": {
            "tokens": oidc,
            "certs": env.get_json(env.emulator.oidc_pem_certs_url()),
            "audience": OIDC_AUDIENCE,
            "issuers": GOOGLE_ISSUERS,
        },
        "es256": {
            "tokens": iap,
            "certs": env.get_json(env.emulator.iap_pem_url()),
            "audience": env.iap_audience,
            "issuers": [IAP_ISSUER],
        },
    });
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, input.to_string()).expect("write input");
}

pub(crate) fn compare(
    env: &Env,
    oidc: &[String],
    iap: &[String],
    rust: ColdRates,
    report: &mut Report,
) {
    let input = dir().join(".tmp/verify-input.json");
    write_input(env, oidc, iap, &input);
    let scripts = dir().join("scripts");

    let python = python().and_then(|py| {
        let mut cmd = Command::new(py);
        cmd.arg(scripts.join("google_auth_py.py")).arg(&input);
        run_script(cmd)
    });
    let node = node_modules().and_then(|modules| {
        let mut cmd = Command::new("node");
        cmd.env("NODE_PATH", modules)
            .arg(scripts.join("google_auth_library.js"))
            .arg(&input);
        run_script(cmd)
    });
    let _ = std::fs::remove_file(&input);
    let mut missed = Vec::new();

    for (who, result) in [
        ("Python google-auth", python),
        ("Node google-auth-library", node),
    ] {
        match result {
            Ok(v) => {
                let versions = v["versions"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                for (kind, alg, ours, ours_us, memo) in [
                    (
                        "rs256",
                        "RS256",
                        rust.rs256_ops,
                        rust.rs256_us,
                        rust.rs256_memo_ops,
                    ),
                    (
                        "es256",
                        "ES256",
                        rust.es256_ops,
                        rust.es256_us,
                        rust.es256_memo_ops,
                    ),
                ] {
                    let theirs = v[kind]["ops_per_s"].as_f64().unwrap_or(f64::NAN);
                    let their_us = v[kind]["median_us"].as_f64().unwrap_or(f64::NAN);
                    let ratio = ours / theirs;
                    report.goal(
                        SECTION,
                        format!("{alg}: {who} ({versions})"),
                        format!(
                            "{theirs:.0} ops/s, median {}; idgate cold {ours:.0} ops/s, median {} = {ratio:.1} × theirs",
                            fmt_us(their_us),
                            fmt_us(ours_us)
                        ),
                        "idgate ≥ 10 × throughput",
                        ratio >= 10.0,
                    );
                    report.info(
                        SECTION,
                        format!("{alg}: idgate memo hit vs {who}"),
                        format!("{memo:.0} ops/s = {:.0} × theirs", memo / theirs),
                    );
                    if ratio < 10.0 {
                        missed.push(format!(
                            "{who} {alg}: {} per verification vs idgate cold {} ({:.1} ×)",
                            fmt_us(their_us),
                            fmt_us(ours_us),
                            ratio
                        ));
                    }
                }
            }
            Err(e) => {
                report.info(SECTION, who, "not measured (see notes)");
                report.note(SECTION, format!("{who} could not be run: {e}"));
            }
        }
    }
    if !missed.is_empty() {
        report.note(
            SECTION,
            format!(
                "Where idgate's full (memo-off) verification is less than 10 × faster ({}): the cold path of every \
                 contender is dominated by the signature check, which is native code on all sides (aws-lc in idgate; \
                 OpenSSL through `cryptography` in Python and through `node:crypto` in Node). idgate cold is already \
                 {:.2} × jsonwebtoken's `decode` for RS256, so the ratio is the other side's overhead over one \
                 native signature check: Python re-parses the PEM certificate for every call \
                 (`google.auth.crypt.verify_signature` calls `RSAVerifier.from_string(cert)` / `ES256Verifier` per \
                 verification), Node passes the PEM string to `crypto.createVerify().verify()` per call (parsed each \
                 time), plus interpreter work. For ES256, where the P-256 check itself costs ~40 µs, that overhead is \
                 small next to it, hence the lowest ratios. A 10 × margin on a full verification would need the \
                 other side to spend nine extra signature checks' worth of time per token. The memo (default on) \
                 clears the goal by far for a caller that presents its token again (rows \"memo hit vs …\").",
                missed.join("; "),
                rust.rs256_cold_over_jsonwebtoken
            ),
        );
    }
    report.note(
        SECTION,
        "Python: `google.auth.jwt.decode(token, certs=…, audience=…)` plus the issuer check, with the certificates \
         (`oauth2/v1/certs` X.509 for RS256, IAP's `public_key` PEM for ES256) fetched once and passed in, so no \
         network per call (`id_token.verify_token` would fetch the certificates on every call). Node: \
         `OAuth2Client.verifySignedJwtWithCertsAsync(token, certs, audience, issuers)`, certificates passed in. \
         Both are timed in their own process, interleaved and chunked like the Rust contenders. They are compared \
         with idgate's memo-off figure: the same work (a full verification of every token).",
    );
}
