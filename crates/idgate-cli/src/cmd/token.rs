//! `idgate token --audience AUD [--impersonate EMAIL]`: an ID token from Application Default Credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use idgate_client::{
    Adc, AuthorizedUser, IdTokenSource, Impersonated, MetadataServer, ServiceAccountKey,
};
use idgate_core::google::Endpoints;
use url::Url;

use super::Error;

pub(crate) async fn run(
    audience: &str,
    impersonate: Option<String>,
    delegates: Vec<String>,
    google_base_url: Option<Url>,
) -> Result<ExitCode, Error> {
    let endpoints = google_base_url.as_ref().map(Endpoints::under);
    let source: Box<dyn IdTokenSource> = match impersonate {
        None => {
            let mut adc = Adc::builder();
            if let Some(endpoints) = &endpoints {
                adc = adc.endpoints(endpoints.clone());
            }
            Box::new(adc.build()?)
        }
        Some(target) => {
            let mut impersonated = impersonation(endpoints.as_ref(), target)?.delegates(delegates);
            if let Some(endpoints) = &endpoints {
                impersonated = impersonated.endpoints(endpoints);
            }
            Box::new(impersonated)
        }
    };
    let token = source.id_token(audience).await?;
    // The one place a token is printed: on purpose, to stdout, for a pipe.
    println!("{}", token.as_str());
    Ok(ExitCode::SUCCESS)
}

/// An impersonation of `target`, authenticated by the ADC file if set (a service-account key or a gcloud user
/// login), else gcloud's well-known user credentials, else the metadata server.
fn impersonation(endpoints: Option<&Endpoints>, target: String) -> Result<Impersonated, Error> {
    let from_env = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from);
    let well_known = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/gcloud")))
        .map(|dir| dir.join("application_default_credentials.json"))
        .filter(|path| path.is_file());
    let Some(path) = from_env.or(well_known) else {
        let metadata = endpoints.map_or_else(MetadataServer::new, MetadataServer::from_endpoints);
        return Ok(Impersonated::new(metadata, target));
    };
    let json = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let kind = serde_json::from_slice::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    match kind.as_str() {
        "service_account" => {
            let mut key = ServiceAccountKey::from_json(&json)?;
            if let Some(endpoints) = endpoints {
                key = key.token_uri(endpoints.token.clone());
            }
            Ok(Impersonated::new(key, target))
        }
        "authorized_user" => {
            let mut user = AuthorizedUser::from_json(&json)?;
            if let Some(endpoints) = endpoints {
                user = user.token_uri(endpoints.token.clone());
            }
            Ok(Impersonated::new(user, target))
        }
        other => Err(format!(
            "{}: credentials of type {other:?} cannot authenticate an impersonation; use a service-account key or \
             `gcloud auth application-default login`",
            path.display()
        )
        .into()),
    }
}
