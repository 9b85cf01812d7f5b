//! Shared test helpers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_emulator::{Emulator, ServiceAccountKeyFile};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

pub(crate) async fn emulator() -> Emulator {
    Emulator::builder()
        .oidc_key_count(1)
        .iap_key_count(1)
        .start()
        .await
        .expect("emulator starts")
}

pub(crate) async fn get_json(url: url::Url) -> Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// The decoded header and payload of a compact JWS.
pub(crate) fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let h = it.next().expect("header");
    let p = it.next().expect("payload");
    let s = it.next().expect("signature").to_owned();
    let dec = |x: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(x).expect("b64")).expect("json")
    };
    (dec(h), dec(p), s)
}

/// Verifies `token` with jsonwebtoken against the keys the emulator serves (JWKS), checking `aud` and
/// `iss`. Returns the claims.
pub(crate) async fn verify(
    jwks_url: url::Url,
    token: &str,
    audience: &str,
    issuer: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let jwks: Value = get_json(jwks_url).await;
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.unwrap_or_default();
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .cloned()
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let (key, alg) = if jwk["kty"] == "RSA" {
        (
            DecodingKey::from_rsa_components(
                jwk["n"].as_str().expect("n"),
                jwk["e"].as_str().expect("e"),
            )?,
            Algorithm::RS256,
        )
    } else {
        (
            DecodingKey::from_ec_components(
                jwk["x"].as_str().expect("x"),
                jwk["y"].as_str().expect("y"),
            )?,
            Algorithm::ES256,
        )
    };
    let mut v = Validation::new(alg);
    v.set_audience(&[audience]);
    v.set_issuer(&[issuer]);
    v.leeway = 0;
    Ok(jsonwebtoken::decode::<Value>(token, &key, &v)?.claims)
}

/// The JWT-bearer grant type of Google's token endpoint.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An assertion exactly as google-auth builds one: RS256, `kid` = the key file's `private_key_id`.
pub(crate) fn assertion(key: &ServiceAccountKeyFile, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(key.private_key_id().to_owned());
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &enc).unwrap()
}

/// POSTs `form` to the emulator's `/token`: the status and the JSON answer.
pub(crate) async fn post_token(
    emu: &Emulator,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}
