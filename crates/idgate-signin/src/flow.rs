//! The OAuth 2.0 / OpenID Connect authorization-code flow with PKCE, in Google's wire formats: the attempt, the
//! authorization URL, the code exchange, the ID-token checks beyond the verifier's, userinfo and revocation.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idgate_core::google::{CappedReadError, read_capped};
use idgate_core::verify::GOOGLE_ISSUERS;
use serde::Deserialize;
use url::Url;

use crate::error::{EndpointError, SignInError};
use crate::signin::Shared;

/// How long a sign-in attempt stays redeemable: Google's codes live minutes, a person takes a minute or two.
pub(crate) const ATTEMPT_TTL: Duration = Duration::from_secs(600);

/// Google's issuer as the RFC 9207 `iss` parameter names it.
pub(crate) const GOOGLE_ISSUER: &str = GOOGLE_ISSUERS[0];

/// 32 random bytes, base64url: 256 bits for `state`, `nonce`, the PKCE verifier (43 characters, RFC 7636's minimum
/// length) and the browser binding.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system RNG failing leaves no safe way on; aws-lc-rs aborts rather than return weak bytes.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        unreachable!("the system random number generator failed");
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// The S256 code challenge of a PKCE verifier: `BASE64URL(SHA256(ASCII(verifier)))`.
pub(crate) fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    verify_slices_are_equal(a, b).is_ok()
}

/// One sign-in attempt, kept server-side under the hash of its `state` until the callback redeems it (once).
#[derive(Clone)]
pub(crate) struct Attempt {
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) return_to: String,
    pub(crate) created: SystemTime,
    /// SHA-256 of the binding cookie's value: the attempt is redeemable only by the browser that started it.
    pub(crate) binding: [u8; 32],
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("return_to", &self.return_to)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A started attempt: what the login route sends to the browser.
pub(crate) struct Started {
    pub(crate) authorization_url: Url,
    pub(crate) cookie_name: String,
    pub(crate) binding: String,
}

/// The name of the cookie binding the attempt with this `state` to its browser: a prefix plus 16 characters of the
/// state's hash (96 bits: no two live attempts of one browser collide), so the callback finds it from `state`.
pub(crate) fn binding_cookie_name(prefix: &str, state_hash: &[u8; 32]) -> String {
    let tag = URL_SAFE_NO_PAD.encode(state_hash);
    format!("{prefix}{}", &tag[..16])
}

/// Extra options of one login: from the login route's query.
#[derive(Debug, Default)]
pub(crate) struct LoginOptions {
    pub(crate) return_to: String,
    pub(crate) login_hint: Option<String>,
}

impl Shared {
    /// Starts an attempt: fresh state, nonce and PKCE verifier, remembered server-side (in this process, or in
    /// Redis for every replica); returns the URL of Google's authorization endpoint to send the browser to.
    pub(crate) async fn start(&self, options: LoginOptions) -> Result<Started, SignInError> {
        let state = random_token();
        let nonce = random_token();
        let verifier = random_token();
        let binding = random_token();
        let state_hash = sha256(state.as_bytes());
        let mut url = self.endpoints.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.redirect_url.as_str())
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &code_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            if let Some(hd) = &self.hosted_domain {
                q.append_pair("hd", hd);
            }
            if let Some(hint) = &options.login_hint {
                q.append_pair("login_hint", hint);
            }
            if let Some(prompt) = &self.prompt {
                q.append_pair("prompt", prompt);
            }
            if let Some(access_type) = self.access_type {
                q.append_pair("access_type", access_type.as_str());
            }
        }
        let attempt = Attempt {
            nonce,
            verifier,
            return_to: options.return_to,
            created: self.clock.now(),
            binding: sha256(binding.as_bytes()),
        };
        self.state
            .put_attempt(&state_hash, &attempt, self.max_pending_attempts)
            .await
            .map_err(|e| SignInError::Session(tower_sessions::session::Error::Store(e)))?;
        Ok(Started {
            authorization_url: url,
            cookie_name: binding_cookie_name(self.attempt_cookie_prefix, &state_hash),
            binding,
        })
    }

    /// Takes the live attempt for `state` (so it can never be redeemed again), if the browser's binding cookie
    /// matches. The attempt is consumed even when the binding does not match: a state seen with the wrong cookie
    /// has leaked.
    pub(crate) async fn redeem(
        &self,
        state: &str,
        binding_cookie: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Attempt, SignInError> {
        let state_hash = sha256(state.as_bytes());
        let attempt = self
            .state
            .take_attempt(&state_hash)
            .await
            .map_err(|e| SignInError::Session(tower_sessions::session::Error::Store(e)))?
            .ok_or(SignInError::UnknownState)?;
        let age = self
            .clock
            .now()
            .duration_since(attempt.created)
            .unwrap_or_default();
        if age > ATTEMPT_TTL {
            return Err(SignInError::UnknownState);
        }
        let name = binding_cookie_name(self.attempt_cookie_prefix, &state_hash);
        let bound = binding_cookie(&name)
            .is_some_and(|value| equal(&sha256(value.as_bytes()), &attempt.binding));
        if !bound {
            return Err(SignInError::AttemptNotBound);
        }
        Ok(attempt)
    }
}

/// The shared HTTP client for Google's endpoints when none is configured: proxy settings honoured, no redirect
/// followed (a followed 307 would re-post the code, the client secret and the PKCE verifier elsewhere).
pub(crate) fn default_client() -> Result<reqwest::Client, EndpointError> {
    static SHARED: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(Arc::new)
        })
        .clone()
        .map_err(|_| EndpointError::Status(0))
}

/// Google's token response (`authorization_code` grant).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Option<String>,
    pub(crate) id_token: Option<String>,
    pub(crate) refresh_token: Option<String>,
    /// The access token's lifetime in seconds (kept with it when a token encryption key is configured).
    #[serde(default, deserialize_with = "crate::tokens::lenient_secs")]
    pub(crate) expires_in: Option<i64>,
    /// The scopes granted, space-separated.
    pub(crate) scope: Option<String>,
}

/// An OAuth error body: `{"error": "invalid_grant", "error_description": "..."}`.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

/// What the token endpoint answered.
pub(crate) struct TokenEndpointAnswer {
    pub(crate) status: http::StatusCode,
    pub(crate) body: Vec<u8>,
}

impl TokenEndpointAnswer {
    /// The OAuth error code of a `4xx` answer with an error body, sanitized; `None` otherwise (a `5xx`, a proxy's
    /// page): the endpoint failed rather than refused.
    pub(crate) fn oauth_error(&self) -> Option<String> {
        if !self.status.is_client_error() {
            return None;
        }
        serde_json::from_slice::<OAuthError>(&self.body)
            .ok()
            .map(|e| sanitize_error_code(&e.error))
    }
}

/// An OAuth error code as it may appear in a message or a page: `[a-z0-9_]`, at most 64 characters.
pub(crate) fn sanitize_error_code(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        "unknown".to_owned()
    } else {
        clean.to_ascii_lowercase()
    }
}

impl Shared {
    pub(crate) fn client(&self) -> Result<reqwest::Client, SignInError> {
        self.http_client().map_err(SignInError::TokenEndpoint)
    }

    /// The configured HTTP client, else the shared default one.
    fn http_client(&self) -> Result<reqwest::Client, EndpointError> {
        match &self.http.client {
            Some(client) => Ok(client.clone()),
            None => default_client(),
        }
    }

    /// Redeems `code` at the token endpoint with the client secret and the PKCE verifier. One attempt only: a code
    /// is single-use, so a retry after a lost answer could only fail.
    pub(crate) async fn exchange(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, SignInError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_url.as_str()),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
            ("code_verifier", verifier),
        ];
        let answer = self
            .token_endpoint(&form)
            .await
            .map_err(SignInError::TokenEndpoint)?;
        if !answer.status.is_success() {
            return Err(match answer.oauth_error() {
                Some(error) => SignInError::TokenRejected {
                    status: answer.status.as_u16(),
                    error,
                },
                None => SignInError::TokenEndpoint(EndpointError::Status(answer.status.as_u16())),
            });
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| SignInError::TokenEndpoint(EndpointError::Json(e)))
    }

    /// One POST of `form` to the token endpoint (never retried: an authorization code is single-use, and a refresh
    /// that failed is tried again by the next request), its answer read up to the size cap.
    pub(crate) async fn token_endpoint(
        &self,
        form: &[(&str, &str)],
    ) -> Result<TokenEndpointAnswer, EndpointError> {
        let response = self
            .http_client()?
            .post(self.endpoints.token.clone())
            .timeout(self.http.timeout)
            .header(http::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| EndpointError::Transport(e.without_url()))?;
        let status = response.status();
        let body = read_capped(response).await.map_err(|e| match e {
            CappedReadError::TooLarge => EndpointError::TooLarge,
            CappedReadError::Transport(e) => EndpointError::Transport(e.without_url()),
        })?;
        Ok(TokenEndpointAnswer { status, body })
    }

    /// Reads the profile from the userinfo endpoint (only when configured). Best effort: `None` on any failure.
    pub(crate) async fn userinfo(&self, access_token: &str) -> Option<UserinfoClaims> {
        let client = self.client().ok()?;
        let response = client
            .get(self.endpoints.userinfo.clone())
            .timeout(self.http.timeout)
            .bearer_auth(access_token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            tracing::warn!(target: "idgate::signin", status = response.status().as_u16(), "userinfo refused");
            return None;
        }
        let body = read_capped(response).await.ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// Revokes `token` at Google (best effort, bounded by the HTTP timeout and at most 5 s): logout must not hang
    /// on Google.
    pub(crate) async fn revoke(&self, token: &str) {
        let Ok(client) = self.client() else { return };
        let outcome = client
            .post(self.endpoints.revoke.clone())
            .timeout(self.http.timeout.min(Duration::from_secs(5)))
            .form(&[("token", token)])
            .send()
            .await;
        match outcome {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(target: "idgate::signin", "token revoked at logout");
            }
            Ok(r) => {
                tracing::info!(target: "idgate::signin", status = r.status().as_u16(), "revocation refused at logout");
            }
            Err(e) => {
                let e = e.without_url();
                tracing::info!(target: "idgate::signin", error = &e as &dyn std::error::Error, "revocation failed at logout");
            }
        }
    }
}

/// The ID token's claims that the verifier does not keep: read from the same, already verified, payload.
#[derive(Deserialize, Default)]
pub(crate) struct ProfileClaims {
    pub(crate) nonce: Option<String>,
    pub(crate) azp: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) given_name: Option<String>,
    pub(crate) family_name: Option<String>,
    pub(crate) picture: Option<String>,
}

/// The userinfo endpoint's answer (OpenID Connect standard claims).
#[derive(Deserialize)]
pub(crate) struct UserinfoClaims {
    pub(crate) sub: String,
    pub(crate) name: Option<String>,
    pub(crate) given_name: Option<String>,
    pub(crate) family_name: Option<String>,
    pub(crate) picture: Option<String>,
}

/// Reads [`ProfileClaims`] from a token the verifier accepted (so its payload is Google's, byte for byte).
pub(crate) fn profile_claims(id_token: &str) -> Result<ProfileClaims, SignInError> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or(SignInError::MalformedIdToken)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| SignInError::MalformedIdToken)?;
    serde_json::from_slice(&bytes).map_err(|_| SignInError::MalformedIdToken)
}

/// The checks an ID token from the authorization-code flow needs beyond the verifier's (signature, issuer,
/// audience = client ID, times, verified email): `azp` (when present) is this client, `nonce` is the attempt's.
pub(crate) fn check_flow_claims(
    claims: &ProfileClaims,
    client_id: &str,
    nonce: &str,
) -> Result<(), SignInError> {
    if claims.azp.as_deref().is_some_and(|azp| azp != client_id) {
        return Err(SignInError::WrongAuthorizedParty);
    }
    match claims.nonce.as_deref() {
        Some(got) if equal(got.as_bytes(), nonce.as_bytes()) => Ok(()),
        _ => Err(SignInError::NonceMismatch),
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_256_bits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn flow_claims() {
        let claims = |azp: Option<&str>, nonce: Option<&str>| ProfileClaims {
            azp: azp.map(str::to_owned),
            nonce: nonce.map(str::to_owned),
            ..ProfileClaims::default()
        };
        assert!(check_flow_claims(&claims(Some("c"), Some("n")), "c", "n").is_ok());
        assert!(check_flow_claims(&claims(None, Some("n")), "c", "n").is_ok());
        assert_eq!(
            check_flow_claims(&claims(Some("other"), Some("n")), "c", "n")
                .unwrap_err()
                .reason(),
            "wrong_azp"
        );
        assert_eq!(
            check_flow_claims(&claims(Some("c"), None), "c", "n")
                .unwrap_err()
                .reason(),
            "nonce_mismatch"
        );
        assert_eq!(
            check_flow_claims(&claims(Some("c"), Some("m")), "c", "n")
                .unwrap_err()
                .reason(),
            "nonce_mismatch"
        );
    }

    #[test]
    fn error_codes_are_sanitized() {
        assert_eq!(sanitize_error_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_error_code("<script>x</script>"), "scriptxscript");
        assert_eq!(sanitize_error_code(""), "unknown");
        assert_eq!(sanitize_error_code(&"a".repeat(100)).len(), 64);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert!(profile_claims("a").is_err());
        assert!(profile_claims("a.!!!.c").is_err());
        let dup = URL_SAFE_NO_PAD.encode(br#"{"nonce":"a","nonce":"b"}"#);
        assert!(
            profile_claims(&format!("h.{dup}.s")).is_err(),
            "duplicate claims are ambiguous"
        );
    }
}
