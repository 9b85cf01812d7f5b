//! The App Identity guide's "asserting identity to third-party services", in Rust: an app signs a message as
//! itself, and a third party that is not Google checks the signature against the keys Google publishes for the
//! app's service account.
//!
//! The guide's sample calls `app_identity.sign_blob(message)`, sends the signature along, and the receiver calls
//! `get_public_certificates()` and tries every certificate. Here:
//!
//! - **The app** signs with [`Signer`]: as the service account it runs as (the metadata server's, through IAM
//!   `signBlob`/`signJwt`), or locally with a key file. Every signature comes with the ID of the key that made it.
//! - **The third party** trusts one account, by email, and checks with [`ServiceAccountKeys`] (that account's
//!   published keys, cached with Google's key-cache rules) and [`ServiceAccountJwtVerifier`].
//!
//! Two ways to send, both served by [`partner`]:
//!
//! | route | the app sends | proves |
//! |---|---|---|
//! | `POST /messages` | the body, `X-App-Signer`, `X-App-Key-Id`, `X-App-Signature` (a `signBlob` signature) | the body came from the account (the guide's sample). Not when: a signed blob has no expiry and no audience, so anyone who sees it can replay it to anyone who trusts the app |
//! | `POST /webhook` | the body, `Authorization: Bearer <JWT signed by the account>` with `aud` = this receiver, `exp` within the hour, and `body_sha256` | the body came from the account, for this receiver, recently. Prefer this one |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use idgate_client::{MetadataServer, Signer};
use idgate_core::google::{Endpoints, MetadataClient};
use idgate_core::keys::ServiceAccountKeys;
use idgate_core::verify::ServiceAccountJwtVerifier;
use idgate_emulator::Emulator;

use crate::Result;
use crate::support::{Server, expect_body, expect_status, loopback_listener};

/// The header naming the account that signed the body.
pub const SIGNER_HEADER: &str = "x-app-signer";
/// The header naming the key that signed the body.
pub const KEY_ID_HEADER: &str = "x-app-key-id";
/// The header carrying the body's signature (standard base64).
pub const SIGNATURE_HEADER: &str = "x-app-signature";
/// The JWT claim carrying the body's SHA-256 (lower-case hex).
pub const BODY_HASH_CLAIM: &str = "body_sha256";

/// The app in the self-test: an App Engine app's default service account.
pub const APP: &str = "orders-app@appspot.gserviceaccount.com";

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The app: `POST`s `message` to `url` with its signature (`signBlob`) in three headers. The answer's status and
/// body.
///
/// # Errors
///
/// When signing fails (the error says which permission is missing, if that is why) or the request cannot be sent.
pub async fn send_signed_blob(
    http: &reqwest::Client,
    signer: &Signer,
    url: &str,
    message: &[u8],
) -> Result<(StatusCode, String)> {
    let signed = signer.sign_blob(message).await?;
    let response = http
        .post(url)
        .header(SIGNER_HEADER, signer.email().await?)
        .header(KEY_ID_HEADER, signed.key_id())
        .header(SIGNATURE_HEADER, signed.signature_base64())
        .body(message.to_vec())
        .send()
        .await?;
    Ok((response.status(), response.text().await?))
}

/// The app: `POST`s `message` to `url` with a JWT signed as the account (`aud` = `audience`, the body's hash in
/// [`BODY_HASH_CLAIM`]; `iss`, `sub`, `iat` and `exp` filled in by the signer).
///
/// # Errors
///
/// When signing fails or the request cannot be sent.
pub async fn send_with_jwt(
    http: &reqwest::Client,
    signer: &Signer,
    url: &str,
    audience: &str,
    message: &[u8],
) -> Result<(StatusCode, String)> {
    let jwt = signer
        .sign_jwt(&serde_json::json!({"aud": audience, BODY_HASH_CLAIM: sha256_hex(message)}))
        .await?;
    let response = http
        .post(url)
        .bearer_auth(jwt)
        .body(message.to_vec())
        .send()
        .await?;
    Ok((response.status(), response.text().await?))
}

struct Partner {
    trusted: String,
    keys: ServiceAccountKeys,
    jwts: ServiceAccountJwtVerifier,
}

/// The third party: accepts messages signed by `trusted` only, checked against `keys` (Google's documents, or the
/// emulator's); `audience` is the name the app uses for this receiver in its JWTs (its URL).
///
/// # Errors
///
/// When `trusted` is not a service-account email or `audience` is not a valid audience.
pub fn partner(trusted: &str, audience: &str, keys: ServiceAccountKeys) -> Result<Router> {
    let jwts = ServiceAccountJwtVerifier::builder(trusted)
        .audience(audience)
        .keys(keys.clone())
        .build()?;
    let state = Arc::new(Partner {
        trusted: jwts.account().to_owned(),
        keys,
        jwts,
    });
    Ok(Router::new()
        .route("/messages", post(signed_blob))
        .route("/webhook", post(webhook))
        .with_state(state))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A refusal: 503 when the keys could not be fetched (try later), else 401 with the reason.
fn refused(unavailable: bool, reason: &str) -> (StatusCode, String) {
    if unavailable {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"))
    } else {
        (StatusCode::UNAUTHORIZED, format!("{reason}\n"))
    }
}

async fn signed_blob(
    State(partner): State<Arc<Partner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (Some(signer), Some(key_id), Some(signature)) = (
        header(&headers, SIGNER_HEADER),
        header(&headers, KEY_ID_HEADER),
        header(&headers, SIGNATURE_HEADER),
    ) else {
        return (StatusCode::UNAUTHORIZED, "unsigned\n".to_owned());
    };
    // Only the app we trust: any service account can sign, so a valid signature alone proves nothing.
    if !signer.eq_ignore_ascii_case(&partner.trusted) {
        return (StatusCode::FORBIDDEN, "not a trusted signer\n".to_owned());
    }
    let Ok(signature) = STANDARD.decode(signature) else {
        return (StatusCode::UNAUTHORIZED, "malformed_signature\n".to_owned());
    };
    match partner
        .keys
        .verify_signed_blob(&partner.trusted, key_id, &body, &signature)
        .await
    {
        Ok(()) => (
            StatusCode::OK,
            format!("accepted {} bytes from {}\n", body.len(), partner.trusted),
        ),
        Err(e) => refused(e.is_keys_unavailable(), e.reason()),
    }
}

async fn webhook(
    State(partner): State<Arc<Partner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(token) =
        header(&headers, header::AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer "))
    else {
        return (StatusCode::UNAUTHORIZED, "unsigned\n".to_owned());
    };
    let verified = match partner.jwts.verify(token).await {
        Ok(verified) => verified,
        Err(e) => return refused(e.is_keys_unavailable(), e.reason()),
    };
    // The token vouches for one body: this one.
    if verified.claim(BODY_HASH_CLAIM).and_then(|h| h.as_str()) != Some(&sha256_hex(&body)) {
        return (StatusCode::UNAUTHORIZED, "body_mismatch\n".to_owned());
    }
    (
        StatusCode::OK,
        format!(
            "accepted {} bytes from {}\n",
            body.len(),
            verified.account()
        ),
    )
}

/// The app (on an emulated App Engine, signing through IAM as its attached account) sends to a partner that trusts
/// it; then a tampered body, a replay to another receiver, an untrusted signer and a missing permission are each
/// refused for the right reason.
///
/// # Errors
///
/// The first outcome that is not the expected one.
pub async fn self_test() -> Result<()> {
    let google = Emulator::builder()
        .project_id("orders-app")
        .metadata_service_account(APP)
        .start()
        .await?;
    let endpoints = Endpoints::under(&google.base_url());
    // As on Google Cloud with GCE_METADATA_HOST pointing at the emulator, without touching the process's env.
    let metadata = MetadataServer::from_client(MetadataClient::from_host(google.metadata_host()));
    let signer = Signer::attached(metadata).endpoints(&endpoints);
    let keys = ServiceAccountKeys::new().endpoints(&endpoints);
    let partner_listener = loopback_listener().await?;
    let audience = format!("http://{}", partner_listener.local_addr()?);
    let receiver = Server::spawn(partner_listener, partner(APP, &audience, keys.clone())?)?;
    let elsewhere_listener = loopback_listener().await?;
    let elsewhere_audience = format!("http://{}", elsewhere_listener.local_addr()?);
    let elsewhere = Server::spawn(
        elsewhere_listener,
        partner(APP, &elsewhere_audience, keys.clone())?,
    )?;
    let http = reqwest::Client::new();
    let message = b"{\"order\": 42, \"status\": \"shipped\"}";

    // Signing as itself through IAM needs Token Creator on itself, as on Google; without it the error says so.
    let Err(denied) = signer.sign_blob(message).await else {
        return Err("signing without iam.serviceAccounts.signBlob succeeded".into());
    };
    if !denied.is_permission_denied() || !denied.to_string().contains("signBlob") {
        return Err(format!("expected a permission error naming signBlob, got: {denied}").into());
    }
    google.allow_impersonation(APP, APP);

    let (status, body) =
        send_signed_blob(&http, &signer, &receiver.url("/messages"), message).await?;
    expect_status("a signed blob", status, StatusCode::OK)?;
    expect_body(
        "a signed blob",
        &body,
        &format!("accepted {} bytes from {APP}\n", message.len()),
    )?;
    let (status, _) = send_with_jwt(
        &http,
        &signer,
        &receiver.url("/webhook"),
        &audience,
        message,
    )
    .await?;
    expect_status("a signed JWT", status, StatusCode::OK)?;

    // A body changed on the way: the signature (or the JWT's hash) no longer matches.
    let signed = signer.sign_blob(message).await?;
    let tampered = http
        .post(receiver.url("/messages"))
        .header(SIGNER_HEADER, APP)
        .header(KEY_ID_HEADER, signed.key_id())
        .header(SIGNATURE_HEADER, signed.signature_base64())
        .body(&b"{\"order\": 42, \"status\": \"refunded\"}"[..])
        .send()
        .await?;
    expect_status(
        "a tampered blob",
        tampered.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    expect_body(
        "a tampered blob",
        &tampered.text().await?,
        "invalid_signature\n",
    )?;
    let jwt = signer
        .sign_jwt(&serde_json::json!({"aud": audience, BODY_HASH_CLAIM: sha256_hex(message)}))
        .await?;
    let swapped = http
        .post(receiver.url("/webhook"))
        .bearer_auth(&jwt)
        .body(&b"{\"order\": 43}"[..])
        .send()
        .await?;
    expect_status(
        "a JWT with another body",
        swapped.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    expect_body(
        "a JWT with another body",
        &swapped.text().await?,
        "body_mismatch\n",
    )?;

    // The JWT made for this receiver, replayed to another one that trusts the same app: refused on its audience.
    let replayed = http
        .post(elsewhere.url("/webhook"))
        .bearer_auth(&jwt)
        .body(&message[..])
        .send()
        .await?;
    expect_status(
        "a replayed JWT",
        replayed.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    expect_body(
        "a replayed JWT",
        &replayed.text().await?,
        "wrong_audience\n",
    )?;

    // Another service account signs perfectly well, as itself: not the app this receiver trusts.
    let stranger = google.create_service_account("stranger@other-proj.iam.gserviceaccount.com");
    let stranger = Signer::from_key(idgate_client::ServiceAccountKey::from_json(
        stranger.to_json().as_bytes(),
    )?);
    let (status, _) =
        send_signed_blob(&http, &stranger, &receiver.url("/messages"), message).await?;
    expect_status("an untrusted signer", status, StatusCode::FORBIDDEN)?;
    // Claiming to be the app, with the stranger's key: the key is not one the app publishes.
    let forged = stranger.sign_blob(message).await?;
    let response = http
        .post(receiver.url("/messages"))
        .header(SIGNER_HEADER, APP)
        .header(KEY_ID_HEADER, forged.key_id())
        .header(SIGNATURE_HEADER, forged.signature_base64())
        .body(&message[..])
        .send()
        .await?;
    expect_status(
        "a forged signer",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    expect_body(
        "a forged signer",
        &response.text().await?,
        "unknown_key_id\n",
    )?;
    let stranger_jwt = stranger
        .sign_jwt(&serde_json::json!({"aud": audience, BODY_HASH_CLAIM: sha256_hex(message)}))
        .await?;
    let response = http
        .post(receiver.url("/webhook"))
        .bearer_auth(stranger_jwt)
        .body(&message[..])
        .send()
        .await?;
    expect_status(
        "a stranger's JWT",
        response.status(),
        StatusCode::UNAUTHORIZED,
    )?;
    Ok(())
}
