//! `idgate sign-blob` and `idgate verify-blob`: sign bytes as a service account, and check such a signature
//! against the keys the account publishes, as any third party can.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use idgate_client::Signer;
use idgate_core::ErrorChain;
use idgate_core::google::Endpoints;
use idgate_core::keys::{ServiceAccountKeyFormat, ServiceAccountKeys};
use url::Url;

use super::Error;

/// The largest file signed or verified: a signature is over bytes held in memory.
const MAX_BLOB_BYTES: u64 = 64 * 1024 * 1024;

/// The bytes of `file`, or of standard input when it is `-`.
pub(crate) fn read_blob(file: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let read = if file == Path::new("-") {
        std::io::stdin()
            .take(MAX_BLOB_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_BLOB_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| format!("reading {}: {e}", file.display()))?;
    if bytes.len() as u64 > MAX_BLOB_BYTES {
        return Err(format!(
            "{} is larger than {} MiB",
            file.display(),
            MAX_BLOB_BYTES / 1024 / 1024
        )
        .into());
    }
    Ok(bytes)
}

/// A signature as base64: standard (what `sign-blob` prints and IAM returns) or URL-safe, padded or not.
fn decode_signature(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
        .filter(|s| !s.is_empty())
}

/// Signs `file` as Application Default Credentials' service account (locally with a key file, else through IAM
/// `signBlob`), or as `impersonate` through IAM with its `delegates`; prints `{signer, key_id, signature}`.
pub(crate) async fn sign(
    file: &Path,
    impersonate: Option<String>,
    delegates: Vec<String>,
    google_base_url: Option<Url>,
) -> Result<ExitCode, Error> {
    let bytes = read_blob(file)?;
    let endpoints = google_base_url.as_ref().map(Endpoints::under);
    let signer = match impersonate {
        Some(target) => Signer::from_impersonated(&super::token::impersonated(
            endpoints.as_ref(),
            target,
            delegates,
        )?),
        None => {
            let signer = Signer::from_adc(&super::token::adc(endpoints.as_ref(), false)?)?;
            match &endpoints {
                Some(endpoints) => signer.endpoints(endpoints),
                None => signer,
            }
        }
    };
    let signed = signer.sign_blob(&bytes).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "signer": signer.email().await?,
            "key_id": signed.key_id(),
            "signature": signed.signature_base64(),
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct VerifyOptions {
    pub(crate) signer: String,
    pub(crate) key_id: String,
    pub(crate) signature: String,
    pub(crate) jwk: bool,
    pub(crate) google_base_url: Option<Url>,
    pub(crate) file: std::path::PathBuf,
}

/// Exit 0 and `{"verified": true, ...}` when the signature verifies; exit 1 and the reason when it does not; exit 2
/// (with `"reason": "keys_unavailable"`) when the account's keys could not be fetched, so the signature could not
/// be checked at all: a script can tell "refused" from "try again later".
pub(crate) async fn verify(options: VerifyOptions) -> Result<ExitCode, Error> {
    let bytes = read_blob(&options.file)?;
    let endpoints = options
        .google_base_url
        .as_ref()
        .map_or_else(Endpoints::default, Endpoints::under);
    let keys = ServiceAccountKeys::new()
        .endpoints(&endpoints)
        .format(if options.jwk {
            ServiceAccountKeyFormat::Jwk
        } else {
            ServiceAccountKeyFormat::X509
        });
    let refused = |reason: &str, detail: String| -> Result<ExitCode, Error> {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "verified": false,
                "reason": reason,
                "detail": detail,
            }))?
        );
        Ok(if reason == "keys_unavailable" {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        })
    };
    let Some(signature) = decode_signature(&options.signature) else {
        return refused(
            "malformed_signature",
            "the signature is not base64 (standard or URL-safe)".to_owned(),
        );
    };
    match keys
        .verify_signed_blob(&options.signer, &options.key_id, &bytes, &signature)
        .await
    {
        Ok(()) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "verified": true,
                    "signer": options.signer.to_ascii_lowercase(),
                    "key_id": options.key_id,
                    "bytes": bytes.len(),
                }))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => refused(error.reason(), ErrorChain(&error).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::decode_signature;

    #[test]
    fn signatures_in_every_base64_alphabet() {
        assert_eq!(decode_signature("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_signature("-_8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_signature("-_8").unwrap(), [0xfb, 0xff]);
        assert!(decode_signature("").is_none());
        assert!(decode_signature("not base64!").is_none());
    }
}
