//! A service calling another: reqwest with [`IdTokenMiddleware`] over Application Default Credentials.
//!
//! [`Adc`] picks the credentials the way Google's libraries do for ID tokens: the key file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server (at `GCE_METADATA_HOST` when set). Every request then
//! carries a token minted for its target's origin, cached per audience. On Cloud Run, send it in
//! `X-Serverless-Authorization` ([`TokenHeader::XServerlessAuthorization`]): Cloud Run checks that header and leaves
//! `Authorization` to the application.

use std::ffi::OsString;

use http::StatusCode;
use idgate_client::{Adc, AdcKind, IdTokenMiddleware, IdTokenSourceExt as _, TokenHeader};
use idgate_emulator::Emulator;
use reqwest_middleware::ClientWithMiddleware;

use crate::support::{expect_body, expect_status, loopback_listener};
use crate::{Result, service_to_service};

/// The HTTP client: tokens from `adc`, in `header`.
///
/// # Errors
///
/// When the reqwest client cannot be built.
pub fn client(adc: Adc, header: TokenHeader) -> Result<ClientWithMiddleware> {
    // reqwest drops `Authorization` on a redirect to another host, but not `X-Serverless-Authorization`: follow no
    // redirects, so a token is only ever sent to the host it was minted for.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(reqwest_middleware::ClientBuilder::new(http)
        .with(IdTokenMiddleware::new(adc.cached()).header(header))
        .build())
}

/// Calls the `service_to_service` example with credentials of each ADC kind, and checks every outcome.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::builder()
        .metadata_service_account(service_to_service::APP_ENGINE_CALLER)
        .start()
        .await?;
    let service =
        service_to_service::start(loopback_listener().await?, Some(&google.base_url())).await?;
    let whoami = service.url("/whoami");

    // On Google Cloud (here: GCE_METADATA_HOST points at the emulator), ADC is the metadata server.
    let host = google.metadata_host();
    let adc = Adc::builder()
        .env(move |name| (name == "GCE_METADATA_HOST").then(|| OsString::from(&host)))
        .build()?;
    if adc.kind() != AdcKind::MetadataServer {
        return Err(format!("expected the metadata server, got {:?}", adc.kind()).into());
    }
    let response = client(adc, TokenHeader::Authorization)?
        .get(&whoami)
        .send()
        .await?;
    expect_status("metadata server", response.status(), StatusCode::OK)?;
    expect_body(
        "metadata server",
        &response.text().await?,
        "hello service_account caller-app@appspot.gserviceaccount.com from project caller-app",
    )?;

    // Elsewhere, a key file named by GOOGLE_APPLICATION_CREDENTIALS; this time in X-Serverless-Authorization.
    let dir = tempfile::tempdir()?;
    let key_file = google
        .try_create_service_account(service_to_service::PARTNER)?
        .write_key_file(dir.path())?;
    let adc = adc_with_key_file(key_file.into_os_string())?;
    let response = client(adc, TokenHeader::XServerlessAuthorization)?
        .get(&whoami)
        .send()
        .await?;
    expect_status(
        "key file, X-Serverless-Authorization",
        response.status(),
        StatusCode::OK,
    )?;

    // Credentials the service does not list: the call goes through, the answer is 403.
    let key_file = google
        .try_create_service_account("intruder@evil-proj.iam.gserviceaccount.com")?
        .write_key_file(dir.path())?;
    let response = client(
        adc_with_key_file(key_file.into_os_string())?,
        TokenHeader::Authorization,
    )?
    .get(&whoami)
    .send()
    .await?;
    expect_status(
        "not on the allowlist",
        response.status(),
        StatusCode::FORBIDDEN,
    )?;
    Ok(())
}

fn adc_with_key_file(path: OsString) -> Result<Adc> {
    let adc = Adc::builder()
        .env(move |name| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone()))
        .build()?;
    if adc.kind() == AdcKind::ServiceAccountKey {
        Ok(adc)
    } else {
        Err(format!("expected a service-account key, got {:?}", adc.kind()).into())
    }
}
