//! The demo's last part: who the service is (`AppIdentity`, as `idgate whoami` prints it) and a third party (not
//! Google) checking a message the service signed as itself.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use idgate_client::{MetadataServer, ServiceAccountKey, Signer};
use idgate_core::app::Detector;
use idgate_core::google::Endpoints;
use idgate_core::keys::ServiceAccountKeys;
use idgate_emulator::Emulator;
use reqwest_middleware::ClientWithMiddleware;

use super::{Case, Decisions, INTRUDER, Judge, PARTNER, Row, send, table};
use crate::cmd::Error;

/// Headers of a message signed with `signBlob`: who signed, with which key, and the signature (base64).
const SIGNER_HEADER: &str = "x-app-signer";
const KEY_ID_HEADER: &str = "x-app-key-id";
const SIGNATURE_HEADER: &str = "x-app-signature";

/// `idgate whoami` for the service (running as `PARTNER` on an emulated Cloud Run), then the service signs a message
/// as itself and a third party that trusts `PARTNER` checks it against the account's published keys.
pub(super) async fn who_am_i(
    emulator: &Emulator,
    plain: &ClientWithMiddleware,
    decisions: &Decisions,
    verbose: bool,
) -> Result<Vec<Row>, Error> {
    // The environment Cloud Run gives the container (passed in, not read from this process).
    let detector = Detector::with_env([
        ("K_SERVICE", "billing"),
        ("K_REVISION", "billing-00007-xuz"),
        ("K_CONFIGURATION", "billing"),
        ("GCE_METADATA_HOST", emulator.metadata_host().as_str()),
    ]);
    let me = detector.detect().await;
    println!();
    println!("Who the service is (idgate whoami, on an emulated Cloud Run):");
    for line in me.to_table().lines() {
        println!("  {line}");
    }

    // The third party: not Google, trusts PARTNER, checks signatures against PARTNER's published keys.
    let endpoints = Endpoints::under(&emulator.base_url());
    let keys = ServiceAccountKeys::new().endpoints(&endpoints);
    let third_party = Router::new().route(
        "/messages",
        post(move |headers: HeaderMap, body: Bytes| {
            let keys = keys.clone();
            async move { check_signed_message(&keys, &headers, &body).await }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let messages = format!("http://{}/messages", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, third_party).await });

    // The service signs as itself through IAM signBlob: Google wants Token Creator on itself for that.
    emulator.allow_impersonation(PARTNER, PARTNER);
    let signer =
        Signer::attached(MetadataServer::from_base_url(&emulator.base_url())).endpoints(&endpoints);
    let message = b"invoice 7 paid".as_slice();
    let signed = signer.sign_blob(message).await?;
    let intruder_key = emulator.try_create_service_account(INTRUDER)?;
    let forged = Signer::from_key(ServiceAccountKey::from_json(
        intruder_key.to_json().as_bytes(),
    )?)
    .sign_blob(message)
    .await?;
    println!();
    println!(
        "The service proves who it is to a third party (not Google): it signs a message as {PARTNER}"
    );
    println!(
        "  (Signer: IAM signBlob, key {}), the third party checks it against",
        signed.key_id()
    );
    println!("  {}", keys_document(&endpoints));
    println!();
    let post = |body: &'static [u8], blob: &idgate_client::SignedBlob| {
        plain
            .post(&messages)
            .header(SIGNER_HEADER, PARTNER)
            .header(KEY_ID_HEADER, blob.key_id())
            .header(SIGNATURE_HEADER, blob.signature_base64())
            .body(body)
    };
    let cases = vec![
        Case {
            caller: PARTNER.into(),
            sends: "message + signBlob signature",
            expect: 200,
            request: post(message, &signed),
        },
        Case {
            caller: "someone on the way".into(),
            sends: "the same signature, altered message",
            expect: 401,
            request: post(b"invoice 7 refunded", &signed),
        },
        Case {
            caller: INTRUDER.into(),
            sends: "its own key's signature, claims to be the service",
            expect: 401,
            request: post(message, &forged),
        },
    ];
    let rows = send(cases, Judge::Body, decisions, verbose).await?;
    print!("{}", table(&rows));
    Ok(rows)
}

/// Where the third party reads PARTNER's keys.
fn keys_document(endpoints: &Endpoints) -> String {
    ServiceAccountKeys::new()
        .endpoints(endpoints)
        .document_url(PARTNER)
        .map_or_else(|e| e.to_string(), |url| url.to_string())
}

/// The third party's check: only PARTNER, and only a signature one of PARTNER's published keys made over this body.
async fn check_signed_message(
    keys: &ServiceAccountKeys,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signer), Some(key_id), Some(signature)) = (
        header(SIGNER_HEADER),
        header(KEY_ID_HEADER),
        header(SIGNATURE_HEADER),
    ) else {
        return (StatusCode::UNAUTHORIZED, "unsigned".to_owned());
    };
    if !signer.eq_ignore_ascii_case(PARTNER) {
        return (StatusCode::FORBIDDEN, "not a trusted signer".to_owned());
    }
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return (StatusCode::UNAUTHORIZED, "malformed_signature".to_owned());
    };
    match keys
        .verify_signed_blob(PARTNER, key_id, body, &signature)
        .await
    {
        Ok(()) => (StatusCode::OK, format!("verified: signed by {PARTNER}")),
        Err(e) if e.is_keys_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, e.reason().to_owned())
        }
        Err(e) => (StatusCode::UNAUTHORIZED, e.reason().to_owned()),
    }
}
