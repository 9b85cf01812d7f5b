//! The text pieces of error messages: Google's explanation of an error answer, bounded strings, advice.

use std::fmt;
use std::time::SystemTime;

use super::KeyOrigin;

/// `: {detail}` when there is one.
pub(super) struct Detail<'a>(pub(super) Option<&'a str>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn unsupported_message(credential_type: &str, origin: Option<&KeyOrigin>) -> String {
    let from = origin.map(|o| format!(" (from {o})")).unwrap_or_default();
    let why = match credential_type {
        "authorized_user" | "external_account_authorized_user" => {
            "Google pins the `aud` of an ID token minted from user credentials to the OAuth client ID, so Cloud Run \
             custom audiences and IAP reject it"
        }
        "external_account" => {
            "workload identity federation credentials can mint ID tokens only by impersonating a service account"
        }
        _ => {
            "idgate mints ID tokens only from service_account and impersonated_service_account credentials"
        }
    };
    format!(
        "credentials of type `{credential_type}`{from} cannot mint an ID token for a custom audience: {why}. \
         Impersonate a service account instead: `idgate token --impersonate SA_EMAIL --audience AUD`, or \
         `gcloud auth print-identity-token --impersonate-service-account=SA_EMAIL --audiences=AUD`; for ADC, run \
         `gcloud auth application-default login --impersonate-service-account=SA_EMAIL` or point \
         GOOGLE_APPLICATION_CREDENTIALS at a service-account key"
    )
}

/// Extracts Google's explanation from an error body: OAuth's `error` / `error_description`, or the Google API
/// error's `error.status` / `error.message`. Bounded in length, control characters removed. Bodies that are not JSON
/// give nothing (they are never echoed: they might carry anything).
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let text = if let Some(code) = error.as_str() {
        match value.get("error_description").and_then(|d| d.as_str()) {
            Some(desc) => format!("{code}: {desc}"),
            None => code.to_owned(),
        }
    } else {
        let status = error.get("status").and_then(|s| s.as_str());
        let message = error.get("message").and_then(|s| s.as_str());
        match (status, message) {
            (Some(s), Some(m)) => format!("{s}: {m}"),
            (Some(s), None) => s.to_owned(),
            (None, Some(m)) => m.to_owned(),
            (None, None) => return None,
        }
    };
    Some(bounded(&text, 300))
}

/// At most `max` characters of `s`, with control characters replaced.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// `client ID N` when known, else how to find the client ID of the service account.
pub(super) struct ClientId<'a>(pub(super) Option<&'a str>, pub(super) &'a str);

impl fmt::Display for ClientId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "client ID {id} ({})", self.1),
            None => write!(
                f,
                "the client ID of {sa} (its unique ID: `gcloud iam service-accounts describe {sa} \
                 --format='value(uniqueId)'`)",
                sa = self.1
            ),
        }
    }
}
