//! `idgate decode [TOKEN | -]`: header and claims, loudly unverified.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use idgate_core::token::decode_unverified;

use super::{Error, read_token};

pub(crate) fn run(token: &str) -> Result<ExitCode, Error> {
    let token = read_token(token)?;
    let parts = decode_unverified(&token).map_err(|e| format!("not a JWT: {e}"))?;
    eprintln!(
        "WARNING: decoded only. NOTHING was verified: not the signature, not the issuer, not the audience,"
    );
    eprintln!(
        "         not the expiry. Use `idgate verify` to decide whether to trust this token."
    );
    if let Some(exp) = parts.claims.get("exp").and_then(serde_json::Value::as_i64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if exp > now {
            eprintln!("         exp is {} s from now.", exp - now);
        } else {
            eprintln!("         exp passed {} s ago.", now - exp);
        }
    }
    let out =
        serde_json::json!({ "verified": false, "header": parts.header, "claims": parts.claims });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
