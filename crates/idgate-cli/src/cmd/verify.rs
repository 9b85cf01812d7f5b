//! `idgate verify`: the same verifiers the layers use, on one token.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use idgate_core::ErrorChain;
use idgate_core::google::Endpoints;
use idgate_core::identity::Caller;
use idgate_core::keys::{KeyAlgorithm, KeyDocumentFormat, KeyFormat};
use idgate_core::token::decode_unverified;
use idgate_core::verify::{AudienceMatch, IapVerifier, OidcVerifier, VerifyError};
use url::Url;

use super::{Error, read_token};
use crate::KeysFormat;

pub(crate) struct Options {
    pub(crate) iap: bool,
    pub(crate) audiences: Vec<String>,
    pub(crate) origin_match: bool,
    pub(crate) keys_url: Option<Url>,
    pub(crate) keys_format: KeysFormat,
    pub(crate) google_base_url: Option<Url>,
    pub(crate) leeway: u64,
    pub(crate) token: String,
}

pub(crate) async fn run(options: Options) -> Result<ExitCode, Error> {
    let token = read_token(&options.token)?;
    let endpoints = options
        .google_base_url
        .as_ref()
        .map_or_else(Endpoints::default, Endpoints::under);
    let leeway = Duration::from_secs(options.leeway);
    // The family comes from the token kind; the document's format is read from it unless pinned (issue #10:
    // `--keys-url https://www.googleapis.com/oauth2/v1/certs` must work as it does for google-auth).
    let outcome = if options.iap {
        let (default_url, format): (_, KeyDocumentFormat) = match options.keys_format {
            KeysFormat::Auto => (endpoints.iap_jwks, KeyAlgorithm::Es256.into()),
            KeysFormat::Jwks => (endpoints.iap_jwks, KeyFormat::IapJwks.into()),
            KeysFormat::Pem => (endpoints.iap_pem, KeyFormat::IapPem.into()),
        };
        let mut builder = IapVerifier::builder()
            .leeway(leeway)
            .keys_url_as(options.keys_url.unwrap_or(default_url), format);
        for audience in &options.audiences {
            builder = builder.audience(audience);
        }
        let verifier = builder.build()?;
        verifier.verify(&token).await.map(|v| Caller::from_iap(&v))
    } else {
        let (default_url, format): (_, KeyDocumentFormat) = match options.keys_format {
            KeysFormat::Auto => (endpoints.oidc_jwks, KeyAlgorithm::Rs256.into()),
            KeysFormat::Jwks => (endpoints.oidc_jwks, KeyFormat::OidcJwks.into()),
            KeysFormat::Pem => (endpoints.oidc_pem, KeyFormat::OidcPemCertificates.into()),
        };
        let verifier = OidcVerifier::builder()
            .audiences(&options.audiences)
            .audience_match(if options.origin_match {
                AudienceMatch::Origin
            } else {
                AudienceMatch::Exact
            })
            .leeway(leeway)
            .keys_url_as(options.keys_url.unwrap_or(default_url), format)
            .build()?;
        match verifier.verify(&token).await {
            Ok(verified) => Caller::from_id_token(&verified).map_err(|e| {
                // The verifier requires a verified email, so this is unreachable in practice; report it anyway.
                eprintln!("verified, but no caller identity: {}", ErrorChain(&e));
                VerifyError::EmailNotVerified
            }),
            Err(e) => Err(e),
        }
    };
    match outcome {
        Ok(caller) => {
            // The token is genuine: its claims may now be shown as facts.
            let parts = decode_unverified(&token)?;
            let out = serde_json::json!({
                "verified": true,
                "caller": {
                    "kind": caller.kind().as_str(),
                    "email": caller.email(),
                    "project": caller.project().map(ToString::to_string),
                    "display": caller.to_string(),
                },
                "claims": parts.claims,
                "expires_in_secs": parts.claims.get("exp").and_then(serde_json::Value::as_u64).map(|exp| {
                    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    exp.saturating_sub(now)
                }),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "verified": false,
                    "reason": error.reason(),
                    "detail": ErrorChain(&error).to_string(),
                }))?
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
