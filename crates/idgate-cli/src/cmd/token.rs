//! `idgate token --audience AUD | --scopes S[,S...] [--subject USER] [--impersonate EMAIL[,DELEGATE...]]`: an ID
//! token or an access token from Application Default Credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use idgate_client::{
    AccessTokenSource, Adc, AuthorizedUser, IdTokenSource, Impersonated, MetadataServer, Scopes,
    ServiceAccountKey,
};
use idgate_core::google::Endpoints;
use url::Url;

use super::Error;

/// What `idgate token` prints.
#[derive(Debug)]
pub(crate) enum Wanted {
    /// A Google-signed ID token for an audience.
    IdToken { audience: String },
    /// An OAuth 2.0 access token for scopes, optionally for a Workspace user (domain-wide delegation).
    AccessToken {
        scopes: Scopes,
        subject: Option<String>,
    },
}

impl Wanted {
    /// The flags as parsed; clap already refuses both or neither of `--audience` and `--scopes`.
    pub(crate) fn from_args(
        audience: Option<String>,
        scopes: Option<Vec<String>>,
        subject: Option<String>,
    ) -> Result<Self, Error> {
        match (audience, scopes) {
            (Some(_), None) if subject.is_some() => Err(
                "--subject is for access tokens (--scopes); an ID token has no delegated user"
                    .into(),
            ),
            (Some(audience), None) => Ok(Self::IdToken { audience }),
            (None, Some(scopes)) => {
                let scopes = Scopes::new(scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()))
                    .map_err(|e| format!("--scopes: {}", idgate_core::ErrorChain(&e)))?;
                if scopes.is_empty() {
                    return Err("--scopes: give at least one scope".into());
                }
                Ok(Self::AccessToken { scopes, subject })
            }
            _ => Err(
                "give exactly one of --audience (an ID token) and --scopes (an access token)"
                    .into(),
            ),
        }
    }
}

pub(crate) async fn run(
    what: Wanted,
    impersonate: Option<String>,
    delegates: Vec<String>,
    google_base_url: Option<Url>,
) -> Result<ExitCode, Error> {
    let endpoints = google_base_url.as_ref().map(Endpoints::under);
    let printed = match what {
        Wanted::IdToken { audience } => {
            let source: Box<dyn IdTokenSource> = match impersonate {
                None => Box::new(adc(endpoints.as_ref(), false)?),
                Some(target) => Box::new(impersonated(endpoints.as_ref(), target, delegates)?),
            };
            source.id_token(&audience).await?.as_str().to_owned()
        }
        Wanted::AccessToken { scopes, subject } => {
            let source: Box<dyn AccessTokenSource> = match (impersonate, subject) {
                (None, None) => Box::new(adc(endpoints.as_ref(), true)?),
                (None, Some(user)) => Box::new(delegating_key(endpoints.as_ref(), user)?),
                (Some(target), subject) => {
                    let mut source = impersonated(endpoints.as_ref(), target, delegates)?;
                    if let Some(user) = subject {
                        // Keyless domain-wide delegation: IAM signJwt as the account, then the JWT-bearer grant.
                        source = source.subject(user);
                    }
                    Box::new(source)
                }
            };
            source.access_token(&scopes).await?.as_str().to_owned()
        }
    };
    // The one place a token is printed: on purpose, to stdout, for a pipe.
    println!("{printed}");
    Ok(ExitCode::SUCCESS)
}

/// Application Default Credentials; user credentials (`gcloud auth application-default login`) only for access
/// tokens, which Google issues to users (an ID token for a custom audience it does not).
pub(crate) fn adc(endpoints: Option<&Endpoints>, access_tokens: bool) -> Result<Adc, Error> {
    let mut adc = Adc::builder().accept_user_credentials(access_tokens);
    if let Some(endpoints) = endpoints {
        adc = adc.endpoints(endpoints.clone());
    }
    Ok(adc.build()?)
}

/// Domain-wide delegation with a key: the service-account key in `GOOGLE_APPLICATION_CREDENTIALS`, acting for `user`.
fn delegating_key(endpoints: Option<&Endpoints>, user: String) -> Result<ServiceAccountKey, Error> {
    let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from) else {
        return Err("--subject needs a service-account key in GOOGLE_APPLICATION_CREDENTIALS, or --impersonate \
                    EMAIL to delegate without a key (IAM signJwt as that account)"
            .into());
    };
    let json = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut key = ServiceAccountKey::from_json(&json).map_err(|e| {
        format!(
            "{}: --subject needs a service-account key here ({}); or use --impersonate EMAIL to delegate without \
             a key",
            path.display(),
            idgate_core::ErrorChain(&e)
        )
    })?;
    if let Some(endpoints) = endpoints {
        key = key.token_uri(endpoints.token.clone());
    }
    Ok(key.subject(user))
}

/// `target` through IAM with its delegation chain, at `endpoints` when given.
pub(crate) fn impersonated(
    endpoints: Option<&Endpoints>,
    target: String,
    delegates: Vec<String>,
) -> Result<Impersonated, Error> {
    let mut source = impersonation(endpoints, target)?.delegates(delegates);
    if let Some(endpoints) = endpoints {
        source = source.endpoints(endpoints);
    }
    Ok(source)
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
