//! A tower client: hyper-util's legacy `Client` wrapped in [`AddIdTokenLayer`], which mints a Google ID token for
//! each request's origin (the URI must be absolute, as hyper-util's are) and attaches it. The same layer goes on a
//! tonic channel, with a fixed [`AddIdTokenLayer::audience`] since gRPC URIs are relative.

use std::ffi::OsString;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use idgate_client::{
    Adc, AddIdToken, AddIdTokenLayer, CachedSource, IdTokenSource, IdTokenSourceExt as _,
};
use idgate_emulator::Emulator;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::support::{expect_body, expect_status, loopback_listener};
use crate::{Result, service_to_service};

/// The client: hyper-util over plain HTTP (add a TLS connector such as `hyper-rustls` for https), with tokens from
/// `source`.
pub type HttpClient<S> = AddIdToken<Client<HttpConnector, Full<Bytes>>, CachedSource<S>>;

/// Wraps a hyper-util client in [`AddIdTokenLayer`], with tokens from `source`, cached per audience.
pub fn client<S: IdTokenSource + 'static>(source: S) -> HttpClient<S> {
    let hyper = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .layer(AddIdTokenLayer::new(source.cached()))
        .service(hyper)
}

/// GETs `url` through `client`; returns the status and the body as text.
///
/// # Errors
///
/// When no token can be minted (the request is then not sent), or the request fails.
pub async fn get<S: IdTokenSource + 'static>(
    client: &HttpClient<S>,
    url: &str,
) -> Result<(StatusCode, String)> {
    let request = http::Request::get(url).body(Full::default())?;
    // `oneshot` waits for readiness, then calls; clone first, as tower services are used one call at a time.
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Calls the `service_to_service` example through the layer and checks every outcome.
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

    // Application Default Credentials, here the metadata server, as on Google Cloud.
    let host = OsString::from(google.metadata_host());
    let adc = Adc::builder()
        .env(move |name| (name == "GCE_METADATA_HOST").then(|| host.clone()))
        .build()?;
    let client = client(adc);

    let (status, body) = get(&client, &service.url("/whoami")).await?;
    expect_status("through AddIdTokenLayer", status, StatusCode::OK)?;
    expect_body(
        "through AddIdTokenLayer",
        &body,
        "hello service_account caller-app@appspot.gserviceaccount.com from project caller-app",
    )?;

    // The second call reuses the cached token: the metadata server is asked once.
    let (status, _) = get(&client, &service.url("/whoami")).await?;
    expect_status("second call", status, StatusCode::OK)?;
    let mints = google.hits(idgate_emulator::Route::MetadataIdentity);
    if mints != 1 {
        return Err(
            format!("expected one token minted, the metadata server minted {mints}").into(),
        );
    }
    Ok(())
}
