//! The user's own Google API access (three-legged OAuth): the tokens Google gave at sign-in, kept server-side and
//! encrypted at rest, and [`UserAccessToken`], the extractor that hands a handler a live access token for the
//! signed-in user, refreshing it ahead of expiry with one refresh per session at a time.
//!
//! What the session record holds under its token key:
//!
//! - with a [`TokenEncryptionKey`]: `{"sealed": "…"}`, base64url of `version (1 byte) ‖ nonce (12) ‖ AES-256-GCM
//!   ciphertext ‖ tag (16)` over the JSON of the refresh token, the access token, its expiry and the granted scopes.
//!   The nonce is random for every encryption; the associated data is a fixed label, the version byte and the
//!   user's `sub`, so a record copied into another user's session, altered, or written under another key does not
//!   open.
//! - without one (and without offline access): the token logout revokes, as a JSON string, as before.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use idgate_core::config::{AccessType, Location, TokenKeySource};
use serde::{Deserialize, Deserializer, Serialize};
use tower_sessions::Session;
use tower_sessions::session::Id;

use crate::error::{EndpointError, SignInError};
use crate::extract::SignedInUser;
use crate::flow::{TokenResponse, sha256, unix_secs};
use crate::pages;
use crate::require::{accepts_json, is_page_navigation};
use crate::return_to::sanitize_return_to;
use crate::session::{SignInState, StoredUser, TOKEN_KEY, USER_KEY};
use crate::signin::Shared;

/// How long before its expiry [`UserAccessToken`] replaces an access token: a handler always gets one that lives
/// at least this long (Google's client libraries refresh 3¾ to 5 minutes early).
pub const ACCESS_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The version byte of a sealed token record (in the record and in its associated data).
const SEALED_V1: u8 = 1;
/// The label every sealed record's associated data starts with.
const AAD_LABEL: &[u8] = b"idgate-signin/user-tokens\0";
/// The longest `expires_in` believed: a day (Google's are an hour).
const MAX_EXPIRES_IN: i64 = 86_400;
/// How long this process remembers a refresh's outcome for the record it replaced, so that requests that read the
/// old record from the store after the refresh reuse its result instead of refreshing again.
const OUTCOME_TTL: Duration = Duration::from_secs(600);
/// How many such outcomes it keeps at most.
const OUTCOME_CAPACITY: u64 = 100_000;

// ---------------------------------------------------------------------------------------------------------------
// The key.

/// The AES-256-GCM key that encrypts users' Google tokens in the session store: 32 random bytes. Make one with
/// `openssl rand -base64 32` and pass it through an environment variable or a file (`[signin]
/// token_encryption_key_env` / `token_encryption_key_file`), never in the configuration file or the code.
///
/// `Debug` prints `TokenEncryptionKey(<redacted>)`; there is no `Display` and no way to read the key back.
///
/// ```
/// use idgate_signin::TokenEncryptionKey;
///
/// // What `openssl rand -base64 32` prints (this one is an example: never reuse a published key).
/// let key = TokenEncryptionKey::from_base64("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=").unwrap();
/// assert_eq!(format!("{key:?}"), "TokenEncryptionKey(<redacted>)");
/// assert!(TokenEncryptionKey::from_base64("dG9vIHNob3J0").is_err(), "9 bytes is not a key");
/// ```
#[derive(Clone)]
pub struct TokenEncryptionKey(Arc<LessSafeKey>);

impl TokenEncryptionKey {
    /// The key `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        match UnboundKey::new(&AES_256_GCM, bytes) {
            Ok(key) => Self(Arc::new(LessSafeKey::new(key))),
            // AES-256 takes any 32 bytes; aws-lc-rs refuses only a wrong length.
            Err(_) => unreachable!("an AES-256 key is 32 bytes"),
        }
    }

    /// A fresh random key (tests, or a process that accepts that its users sign in again when it restarts).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        if SystemRandom::new().fill(&mut bytes).is_err() {
            unreachable!("the system random number generator failed");
        }
        Self::from_bytes(&bytes)
    }

    /// The key from its standard base64 text (what `openssl rand -base64 32` prints; surrounding whitespace is
    /// ignored).
    ///
    /// # Errors
    ///
    /// [`SignInError::TokenKeyUnavailable`] when the text is not base64 or does not hold exactly 32 bytes. The
    /// message never holds the text.
    pub fn from_base64(text: &str) -> Result<Self, SignInError> {
        Self::parse(text, "the token encryption key")
    }

    /// Reads the key where the `[signin]` table says (an environment variable or a file). `at`, where the table
    /// names it, goes into the messages.
    ///
    /// # Errors
    ///
    /// [`SignInError::TokenKeyUnavailable`] when the variable is unset, the file unreadable, or the value is not 32
    /// bytes in base64. Messages name the variable or file, never the value.
    pub fn from_source(source: &TokenKeySource, at: Option<Location>) -> Result<Self, SignInError> {
        let line = at.map_or_else(String::new, |at| {
            format!(" (line {} of the configuration)", at.line)
        });
        let (text, what) = match source {
            TokenKeySource::Env(name) => {
                let what = format!("the environment variable {name}{line}");
                let text = std::env::var(name).map_err(|_| SignInError::TokenKeyUnavailable {
                    what: format!("{what} is not set"),
                    source: None,
                })?;
                (text, what)
            }
            TokenKeySource::File(path) => {
                let what = format!("the file {}{line}", path.display());
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SignInError::TokenKeyUnavailable {
                        what: format!("{what} cannot be read"),
                        source: Some(e),
                    }
                })?;
                (text, what)
            }
            _ => {
                return Err(SignInError::TokenKeyUnavailable {
                    what: "an unknown key source".to_owned(),
                    source: None,
                });
            }
        };
        Self::parse(&text, &what)
    }

    fn parse(text: &str, what: &str) -> Result<Self, SignInError> {
        let bad = || SignInError::TokenKeyUnavailable {
            what: format!(
                "{what} does not hold 32 bytes in base64 (make a key with `openssl rand -base64 32`)"
            ),
            source: None,
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self::from_bytes(&bytes))
    }

    fn seal(&self, sub: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        if SystemRandom::new().fill(&mut nonce).is_err() {
            unreachable!("the system random number generator failed");
        }
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        let mut in_out = plaintext.to_vec();
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(SEALED_V1, sub)),
                &mut in_out,
            )
            .is_err()
        {
            // Sealing fails only for a plaintext of more than 64 GiB.
            unreachable!("a token record is small");
        }
        out.extend_from_slice(&in_out);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a sealed record of `sub`'s session; `None` for anything altered, moved, or sealed under another key.
    fn open(&self, sub: &str, sealed: &str) -> Option<Vec<u8>> {
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || bytes[0] != SEALED_V1 {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[1..=NONCE_LEN]).ok()?;
        let opened = self
            .0
            .open_in_place(
                nonce,
                Aad::from(aad(SEALED_V1, sub)),
                &mut bytes[1 + NONCE_LEN..],
            )
            .ok()?;
        Some(opened.to_vec())
    }
}

impl fmt::Debug for TokenEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenEncryptionKey(<redacted>)")
    }
}

fn aad(version: u8, sub: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 1 + sub.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(version);
    aad.extend_from_slice(sub.as_bytes());
    aad
}

// ---------------------------------------------------------------------------------------------------------------
// What the session keeps.

/// The value under the session's token key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum TokenRecord {
    /// No key configured: the token logout revokes, sealed with the key derived from the client secret
    /// ([`TokenKey`](crate::secret::TokenKey)).
    Plain(String),
    /// Encrypted: see the module docs.
    Sealed {
        /// base64url(version ‖ nonce ‖ ciphertext ‖ tag).
        sealed: String,
    },
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenRecord(<redacted>)")
    }
}

/// What a sealed record holds.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Bundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// When the access token expires (Unix seconds).
    #[serde(default)]
    expires_at: i64,
    /// When it was obtained (Unix seconds): a token that lives less than twice the margin is refreshed at half
    /// its life instead, so that a short-lived one is not refreshed on every request.
    #[serde(default)]
    obtained_at: i64,
    /// The scopes granted, space-separated (the token response's `scope`).
    #[serde(default)]
    scope: String,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// `expires_in` as a number or a numeric string; anything else counts as absent (it never fails a sign-in).
pub(crate) fn lenient_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// When a token that `expires_in` seconds from `now` expires (a missing or absurd value: the hour Google gives).
fn expiry(now: i64, expires_in: Option<i64>) -> i64 {
    now.saturating_add(expires_in.unwrap_or(3600).clamp(0, MAX_EXPIRES_IN))
}

/// How long before `bundle`'s access token expires it is replaced: [`ACCESS_TOKEN_REFRESH_MARGIN`], or half its
/// lifetime for a token that lives less than twice that.
fn margin(bundle: &Bundle) -> i64 {
    let margin = i64::try_from(ACCESS_TOKEN_REFRESH_MARGIN.as_secs()).unwrap_or(300);
    let lifetime = bundle.expires_at.saturating_sub(bundle.obtained_at).max(0);
    margin.min(lifetime / 2)
}

/// The part of [`Shared`] that keeps users' tokens: present when a [`TokenEncryptionKey`] is configured.
pub(crate) struct Tokens {
    key: TokenEncryptionKey,
    /// Refreshes in flight and their outcomes, by (session, hash of the record they replace): one refresh per
    /// record however many requests find it stale at once.
    outcomes: moka::future::Cache<(Id, [u8; 32]), Arc<Outcome>>,
}

impl Tokens {
    pub(crate) fn new(key: TokenEncryptionKey) -> Self {
        Self {
            key,
            outcomes: moka::future::Cache::builder()
                .max_capacity(OUTCOME_CAPACITY)
                .time_to_live(OUTCOME_TTL)
                .build(),
        }
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// Put in the request extensions by the session layer when tokens are kept, for [`UserAccessToken`].
#[derive(Clone)]
pub(crate) struct TokenAccess(pub(crate) Arc<Shared>);

/// Keeps what the code exchange returned, at sign-in: sealed with the key when there is one, else (as before) the
/// token logout revokes.
pub(crate) async fn keep_at_sign_in(
    shared: &Shared,
    session: &Session,
    sub: &str,
    tokens: TokenResponse,
) -> Result<(), SignInError> {
    let offline = shared.access_type == Some(AccessType::Offline);
    if offline && tokens.refresh_token.is_none() {
        tracing::info!(
            target: "idgate::signin",
            "offline access was asked but Google returned no refresh token (it gives one only when the user \
             consents; set prompt = \"consent\" to ask every time): the user's access token works until it expires"
        );
    }
    let record = match &shared.tokens {
        Some(kept) => {
            let now = unix_secs(shared.clock.now());
            let bundle = Bundle {
                expires_at: expiry(now, tokens.expires_in),
                obtained_at: now,
                scope: tokens.scope.unwrap_or_else(|| shared.scopes.join(" ")),
                refresh_token: tokens.refresh_token,
                access_token: tokens.access_token,
            };
            if bundle.refresh_token.is_none() && bundle.access_token.is_none() {
                return Ok(());
            }
            seal(&kept.key, sub, &bundle)
        }
        // No key configured: sealed with the key derived from the client secret, so that whoever reads the store
        // (Redis, its backups) does not get a token Google accepts.
        None => match tokens
            .refresh_token
            .or(tokens.access_token)
            .and_then(|token| shared.token_key.seal(&token))
        {
            Some(sealed) => TokenRecord::Plain(sealed),
            None => return Ok(()),
        },
    };
    session
        .insert(TOKEN_KEY, record)
        .await
        .map_err(SignInError::Session)
}

fn seal(key: &TokenEncryptionKey, sub: &str, bundle: &Bundle) -> TokenRecord {
    // Serializing plain strings and numbers cannot fail.
    let json = serde_json::to_vec(bundle).unwrap_or_default();
    TokenRecord::Sealed {
        sealed: key.seal(sub, &json),
    }
}

fn open(key: &TokenEncryptionKey, sub: &str, sealed: &str) -> Option<Bundle> {
    serde_json::from_slice(&key.open(sub, sealed)?).ok()
}

/// The token logout revokes (the refresh token, else the access token), decrypted. Best effort: `None` when there
/// is none or it cannot be read.
pub(crate) async fn revocable(shared: &Shared, session: &Session) -> Option<String> {
    let value = match session.get_value(TOKEN_KEY).await {
        Ok(value) => value?,
        Err(e) => {
            tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "session store failed at logout");
            return None;
        }
    };
    let Ok(record) = serde_json::from_value::<TokenRecord>(value) else {
        tracing::warn!(target: "idgate::signin", "the session's token record is malformed: nothing revoked at logout");
        return None;
    };
    match record {
        // A token that does not open (sealed with another client secret, or written by hand) cannot be revoked.
        TokenRecord::Plain(sealed) => shared.token_key.open(&sealed),
        TokenRecord::Sealed { sealed } => {
            let key = &shared.tokens.as_ref()?.key;
            let user = session.get::<StoredUser>(USER_KEY).await.ok()??;
            let Some(bundle) = open(key, user.user.subject(), &sealed) else {
                tracing::warn!(target: "idgate::signin", "the session's token record does not open (another key, altered, or moved): nothing revoked at logout");
                return None;
            };
            bundle.refresh_token.or(bundle.access_token)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Refreshing.

/// What a refresh of one record came to: what every request that found that record stale gets.
enum Outcome {
    Fresh {
        sub: String,
        bundle: Bundle,
        record: TokenRecord,
    },
    /// Google refused the refresh token (`invalid_grant`): the session ends.
    Ended,
}

/// Why a refresh failed without ending the session.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error("the token endpoint refused the refresh with `{error}` (HTTP {status})")]
    Refused { status: u16, error: String },
    #[error("the token endpoint could not be used")]
    Endpoint(#[source] EndpointError),
}

/// Google's token response to the `refresh_token` grant.
#[derive(Deserialize)]
struct RefreshResponse {
    access_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_secs")]
    expires_in: Option<i64>,
    scope: Option<String>,
    /// Google keeps the refresh token; should it ever send a new one, that one replaces it.
    refresh_token: Option<String>,
}

impl Shared {
    /// `grant_type=refresh_token` at the token endpoint, once (a failure answers `503`; the next request tries
    /// again). `Ok(None)`: Google refused the refresh token with `invalid_grant`.
    async fn refresh(&self, refresh_token: &str) -> Result<Option<RefreshResponse>, RefreshError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
        ];
        let answer = self
            .token_endpoint(&form)
            .await
            .map_err(RefreshError::Endpoint)?;
        let (status, body) = (answer.status, &answer.body);
        if !status.is_success() {
            return match answer.oauth_error() {
                Some(error) if error == "invalid_grant" => Ok(None),
                Some(error) => Err(RefreshError::Refused {
                    status: status.as_u16(),
                    error,
                }),
                None => Err(RefreshError::Endpoint(EndpointError::Status(
                    status.as_u16(),
                ))),
            };
        }
        let answer: RefreshResponse = serde_json::from_slice(body)
            .map_err(|e| RefreshError::Endpoint(EndpointError::Json(e)))?;
        if answer.access_token.as_deref().is_none_or(str::is_empty) {
            return Err(RefreshError::Endpoint(EndpointError::Status(
                status.as_u16(),
            )));
        }
        Ok(Some(answer))
    }

    /// Refreshes `bundle` (of `sub`'s session): the outcome every request holding the same record shares.
    async fn refreshed(
        &self,
        key: &TokenEncryptionKey,
        sub: &str,
        bundle: &Bundle,
        refresh_token: &str,
    ) -> Result<Arc<Outcome>, RefreshError> {
        let Some(answer) = self.refresh(refresh_token).await? else {
            tracing::info!(target: "idgate::signin", "Google refused the user's refresh token (invalid_grant): the session ends");
            return Ok(Arc::new(Outcome::Ended));
        };
        let now = unix_secs(self.clock.now());
        let fresh = Bundle {
            refresh_token: answer
                .refresh_token
                .filter(|t| !t.is_empty())
                .or_else(|| bundle.refresh_token.clone()),
            access_token: answer.access_token,
            expires_at: expiry(now, answer.expires_in),
            obtained_at: now,
            scope: answer.scope.unwrap_or_else(|| bundle.scope.clone()),
        };
        tracing::debug!(target: "idgate::signin", "user access token refreshed");
        Ok(Arc::new(Outcome::Fresh {
            sub: sub.to_owned(),
            record: seal(key, sub, &fresh),
            bundle: fresh,
        }))
    }

    /// Ends `session` (a refused refresh token, an unreadable token record): deleted from the store, this process's
    /// copy of its user dropped.
    async fn end_session(&self, session: &Session) {
        self.forget(session);
        if let Err(e) = session.flush().await {
            tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not delete an ended session");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The extractor.

/// A live Google access token of the signed-in user, for calling Google APIs as them with the scopes they granted
/// at sign-in (`[signin] scopes`, with `access_type = "offline"` so that it can be refreshed).
///
/// As an extractor it needs [`SignIn::layer`](crate::SignIn::layer) and a
/// [`TokenEncryptionKey`](crate::TokenEncryptionKey) (`[signin] token_encryption_key_env`). It reads the user's
/// tokens from the session (decrypting them), and when the access token expires within
/// [`ACCESS_TOKEN_REFRESH_MARGIN`] it gets a new one at Google's token endpoint with the refresh token and writes
/// it back to the session (encrypted). Concurrent requests of one session that find it stale wait for **one**
/// refresh; sessions refresh independently. (Several processes sharing a store may each refresh once.)
///
/// Refusals ([`UserAccessTokenRejection`]): a signed-out user gets what `RequireSignInLayer` answers (`302` to the
/// login route for a page, `401` for a script); when Google refuses the refresh token (`invalid_grant`: the user
/// revoked the app's access, the token expired or was replaced) the session **ends** and the user must sign in
/// again, answered the same way; Google unreachable or failing answers `503` and keeps the session.
///
/// `Debug` never prints the token; [`secret`](Self::secret) is the only way to read it.
///
/// ```
/// use axum::http::StatusCode;
/// use idgate_signin::UserAccessToken;
///
/// /// Lists the user's Google Drive files, as the user (with the Drive scope granted at sign-in).
/// async fn my_files(token: UserAccessToken) -> Result<String, StatusCode> {
///     if !token.has_scope("https://www.googleapis.com/auth/drive.readonly") {
///         return Err(StatusCode::FORBIDDEN);
///     }
///     let answer = reqwest::Client::new()
///         .get("https://www.googleapis.com/drive/v3/files")
///         .bearer_auth(token.secret())
///         .send()
///         .await
///         .map_err(|_| StatusCode::BAD_GATEWAY)?;
///     answer.text().await.map_err(|_| StatusCode::BAD_GATEWAY)
/// }
/// # let _ = my_files;
/// ```
#[derive(Clone)]
pub struct UserAccessToken {
    token: Arc<str>,
    expires_at: i64,
    scope: Arc<str>,
}

impl UserAccessToken {
    fn from_bundle(bundle: &Bundle) -> Option<Self> {
        Some(Self {
            token: Arc::from(bundle.access_token.as_deref()?),
            expires_at: bundle.expires_at,
            scope: Arc::from(bundle.scope.as_str()),
        })
    }

    /// The access token, to send as `Authorization: Bearer <token>` to a Google API. Never log it.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// `Bearer <token>`, as a header value marked sensitive (HTTP/2 never indexes it; `Debug` hides it).
    pub fn authorization(&self) -> HeaderValue {
        idgate_core::token::bearer_header_value(&self.token).unwrap_or_else(|| {
            let mut value = HeaderValue::from_static("Bearer");
            value.set_sensitive(true);
            value
        })
    }

    /// When the token expires (at least [`ACCESS_TOKEN_REFRESH_MARGIN`] after it was handed out).
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.expires_at).unwrap_or(0))
    }

    /// The scopes the user granted (Google's `scope` in the token response), e.g. `openid`,
    /// `https://www.googleapis.com/auth/userinfo.email`, `https://www.googleapis.com/auth/drive.readonly`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the user granted `scope` (the full URL form, as Google reports scopes; the userinfo scopes'
    /// short names `email` and `profile` match too).
    pub fn has_scope(&self, scope: &str) -> bool {
        let full = match scope {
            "email" => "https://www.googleapis.com/auth/userinfo.email",
            "profile" => "https://www.googleapis.com/auth/userinfo.profile",
            other => other,
        };
        self.scopes().any(|s| s == scope || s == full)
    }
}

impl fmt::Debug for UserAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAccessToken")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why [`UserAccessToken`] could not be extracted: [`kind`](UserAccessTokenRejection::kind) says what happened;
/// as a response it is what the table on [`UserAccessTokenRejectionKind`] says.
#[derive(Debug)]
pub struct UserAccessTokenRejection {
    kind: UserAccessTokenRejectionKind,
    answer: Answer,
}

/// What [`UserAccessTokenRejection`] answers with.
#[derive(Debug)]
enum Answer {
    /// `302` to the login route, back to `return_to` afterwards.
    Login {
        login_path: String,
        return_to: String,
    },
    /// `401`, `{"error":"sign_in_required"}` when the client accepts JSON.
    SignInRequired {
        json: bool,
    },
    NotAllowed {
        logout_path: String,
    },
    StoreUnavailable,
    TokenEndpointUnavailable,
    Misconfigured,
}

/// What went wrong extracting a [`UserAccessToken`].
///
/// | kind | answer |
/// |---|---|
/// | `NotSignedIn`, `SessionEnded`, `ReauthorizationRequired` | `302` to the login route for a page navigation, else `401` (`{"error":"sign_in_required"}` when `Accept` names JSON) |
/// | `NotAllowed` | `403` page |
/// | `StoreUnavailable`, `TokenEndpointUnavailable` | `503` (the session is kept; try again) |
/// | `NotConfigured`, `MissingLayer` | `500` naming what is missing |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserAccessTokenRejectionKind {
    /// Nobody is signed in.
    NotSignedIn,
    /// Google refused the refresh token (`invalid_grant`), or the session's token record does not open (altered,
    /// copied from another session, or sealed under another key): the session was ended.
    SessionEnded,
    /// The session holds no token that can be used or refreshed (Google returned no refresh token because the user
    /// had consented before, or the session predates the key): signing in again gets one.
    ReauthorizationRequired,
    /// The signed-in user is not (or no longer) allowed.
    NotAllowed,
    /// The session store failed.
    StoreUnavailable,
    /// Google's token endpoint is unreachable, slow, or failing.
    TokenEndpointUnavailable,
    /// The sign-in keeps no tokens: no [`TokenEncryptionKey`](crate::TokenEncryptionKey) is configured.
    NotConfigured,
    /// [`SignIn::layer`](crate::SignIn::layer) is not around this route.
    MissingLayer,
}

impl UserAccessTokenRejection {
    /// What happened.
    pub fn kind(&self) -> UserAccessTokenRejectionKind {
        self.kind
    }

    /// A short, stable, machine-readable reason (`"session_ended"`, `"token_endpoint"`, ...).
    pub fn reason(&self) -> &'static str {
        use UserAccessTokenRejectionKind as K;
        match self.kind {
            K::NotSignedIn => "not_signed_in",
            K::SessionEnded => "session_ended",
            K::ReauthorizationRequired => "reauthorization_required",
            K::NotAllowed => "not_allowed",
            K::StoreUnavailable => "session_store",
            K::TokenEndpointUnavailable => "token_endpoint",
            K::NotConfigured => "not_configured",
            K::MissingLayer => "missing_layer",
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match &self.answer {
            Answer::Login { .. } => StatusCode::FOUND,
            Answer::SignInRequired { .. } => StatusCode::UNAUTHORIZED,
            Answer::NotAllowed { .. } => StatusCode::FORBIDDEN,
            Answer::StoreUnavailable | Answer::TokenEndpointUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Answer::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn sign_in(kind: UserAccessTokenRejectionKind, shared: &Shared, parts: &Parts) -> Self {
        let mut probe = Request::new(());
        *probe.method_mut() = parts.method.clone();
        *probe.headers_mut() = parts.headers.clone();
        let answer = if is_page_navigation(&probe) {
            let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            Answer::Login {
                login_path: shared.login_path.clone(),
                return_to: sanitize_return_to(here).into_owned(),
            }
        } else {
            Answer::SignInRequired {
                json: accepts_json(&probe),
            }
        };
        Self { kind, answer }
    }

    fn plain(kind: UserAccessTokenRejectionKind, answer: Answer) -> Self {
        Self { kind, answer }
    }
}

impl fmt::Display for UserAccessTokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no user access token: {}", self.reason())
    }
}

impl std::error::Error for UserAccessTokenRejection {}

impl IntoResponse for UserAccessTokenRejection {
    fn into_response(self) -> Response {
        match self.answer {
            Answer::Login {
                login_path,
                return_to,
            } => pages::to_login(&login_path, &return_to),
            Answer::SignInRequired { json } => pages::not_signed_in(json),
            Answer::NotAllowed { logout_path } => pages::not_allowed(&logout_path),
            Answer::StoreUnavailable => pages::unavailable(),
            Answer::TokenEndpointUnavailable => {
                let mut response = pages::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "token_endpoint",
                    "Google unavailable",
                    "<p>Google cannot be reached right now. Please try again in a moment.</p>",
                );
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            Answer::Misconfigured => pages::missing_layer(match self.kind {
                UserAccessTokenRejectionKind::NotConfigured => {
                    "UserAccessToken (with a token encryption key configured)"
                }
                _ => "UserAccessToken",
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserAccessToken {
    type Rejection = UserAccessTokenRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        use UserAccessTokenRejectionKind as K;
        let Some(TokenAccess(shared)) = parts.extensions.get::<TokenAccess>().cloned() else {
            let kind = if parts.extensions.get::<SignInState>().is_some() {
                tracing::error!(target: "idgate::signin", "UserAccessToken needs a token encryption key ([signin] token_encryption_key_env)");
                K::NotConfigured
            } else {
                K::MissingLayer
            };
            return Err(UserAccessTokenRejection::plain(kind, Answer::Misconfigured));
        };
        match parts.extensions.get::<SignInState>() {
            Some(SignInState::SignedIn) => {}
            Some(SignInState::NotAllowed(_)) => {
                return Err(UserAccessTokenRejection::plain(
                    K::NotAllowed,
                    Answer::NotAllowed {
                        logout_path: shared.logout_path.clone(),
                    },
                ));
            }
            Some(SignInState::Unavailable) => {
                return Err(UserAccessTokenRejection::plain(
                    K::StoreUnavailable,
                    Answer::StoreUnavailable,
                ));
            }
            _ => {
                return Err(UserAccessTokenRejection::sign_in(
                    K::NotSignedIn,
                    &shared,
                    parts,
                ));
            }
        }
        let (Some(user), Some(session), Some(kept)) = (
            parts.extensions.get::<SignedInUser>().cloned(),
            parts.extensions.get::<Session>().cloned(),
            shared.tokens.as_ref(),
        ) else {
            return Err(UserAccessTokenRejection::sign_in(
                K::NotSignedIn,
                &shared,
                parts,
            ));
        };
        match access_token(&shared, kept, &session, user.subject()).await {
            Ok(token) => Ok(token),
            Err(kind @ (K::StoreUnavailable | K::TokenEndpointUnavailable)) => {
                let answer = if kind == K::StoreUnavailable {
                    Answer::StoreUnavailable
                } else {
                    Answer::TokenEndpointUnavailable
                };
                Err(UserAccessTokenRejection::plain(kind, answer))
            }
            Err(kind) => Err(UserAccessTokenRejection::sign_in(kind, &shared, parts)),
        }
    }
}

/// The live access token of `sub`'s `session`, refreshed if it expires within the margin.
async fn access_token(
    shared: &Shared,
    kept: &Tokens,
    session: &Session,
    sub: &str,
) -> Result<UserAccessToken, UserAccessTokenRejectionKind> {
    use UserAccessTokenRejectionKind as K;
    let value = match session.get_value(TOKEN_KEY).await {
        Ok(Some(value)) => value,
        Ok(None) => return Err(K::ReauthorizationRequired),
        Err(e) => {
            tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "session store failed reading the user's tokens");
            return Err(K::StoreUnavailable);
        }
    };
    let sealed = match serde_json::from_value::<TokenRecord>(value) {
        Ok(TokenRecord::Sealed { sealed }) => Some(sealed),
        // Kept in clear before a key was configured: never used as an API token.
        Ok(TokenRecord::Plain(_)) => return Err(K::ReauthorizationRequired),
        Err(_) => None,
    };
    let Some((sealed, bundle)) =
        sealed.and_then(|sealed| open(&kept.key, sub, &sealed).map(|bundle| (sealed, bundle)))
    else {
        tracing::warn!(
            target: "idgate::signin",
            "the session's token record does not open (another key, altered, or copied from another session): the session ends"
        );
        shared.end_session(session).await;
        return Err(K::SessionEnded);
    };
    let now = unix_secs(shared.clock.now());
    if bundle.access_token.is_some() && bundle.expires_at.saturating_sub(now) > margin(&bundle) {
        return UserAccessToken::from_bundle(&bundle).ok_or(K::ReauthorizationRequired);
    }
    let Some(refresh_token) = bundle.refresh_token.clone() else {
        return Err(K::ReauthorizationRequired);
    };
    let Some(id) = session.id() else {
        return Err(K::NotSignedIn);
    };
    // Every request holding this very record shares one refresh (and, for a while, its outcome).
    let flight = (id, sha256(sealed.as_bytes()));
    let outcome = kept
        .outcomes
        .try_get_with(
            flight,
            shared.refreshed(&kept.key, sub, &bundle, &refresh_token),
        )
        .await;
    match outcome.as_deref() {
        Ok(Outcome::Fresh {
            sub: owner,
            bundle,
            record,
        }) if owner == sub => {
            // Logged out (or replaced by a sign-in) in this process while the refresh was in flight: writing the
            // token back would save this request's copy of the session over the deletion.
            if shared.recent.was_forgotten(&id) {
                shared.end_session(session).await;
                return Err(K::NotSignedIn);
            }
            // This request's copy of the session gets the new record too, so that whichever request is saved last
            // leaves the new token in the store.
            if let Err(e) = session.insert(TOKEN_KEY, record.clone()).await {
                tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not keep the refreshed token");
            }
            UserAccessToken::from_bundle(bundle).ok_or(K::ReauthorizationRequired)
        }
        Ok(Outcome::Fresh { .. }) => Err(K::NotSignedIn),
        Ok(Outcome::Ended) => {
            shared.end_session(session).await;
            Err(K::SessionEnded)
        }
        Err(e) => {
            let error = idgate_core::ErrorChain(e.as_ref());
            tracing::warn!(target: "idgate::signin", error = %error, "could not refresh the user's access token");
            Err(K::TokenEndpointUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            refresh_token: Some("1//refresh-secret".into()),
            access_token: Some("ya29.access-secret".into()),
            expires_at: 1_700_000_000,
            obtained_at: 1_700_000_000 - 3599,
            scope: "openid email".into(),
        }
    }

    #[test]
    fn short_lived_tokens_are_refreshed_at_half_their_life() {
        let at = |obtained_at, expires_at| {
            margin(&Bundle {
                obtained_at,
                expires_at,
                ..Bundle::default()
            })
        };
        assert_eq!(at(0, 3599), 300);
        assert_eq!(at(0, 120), 60);
        assert_eq!(at(100, 100), 0);
        assert_eq!(at(100, 0), 0);
        // A record without `obtained_at` (0) and a real expiry: the full margin.
        assert_eq!(margin(&bundle()), 300);
        assert_eq!(at(0, 1_700_000_000), 300);
    }

    fn sealed(record: &TokenRecord) -> &str {
        match record {
            TokenRecord::Sealed { sealed } => sealed,
            TokenRecord::Plain(_) => panic!("not sealed"),
        }
    }

    #[test]
    fn a_sealed_record_opens_only_for_its_user_and_key() {
        let key = TokenEncryptionKey::generate();
        let record = seal(&key, "111", &bundle());
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("secret"), "{text}");
        let opened = open(&key, "111", sealed(&record)).unwrap();
        assert_eq!(opened.refresh_token.as_deref(), Some("1//refresh-secret"));
        assert_eq!(opened.access_token.as_deref(), Some("ya29.access-secret"));
        assert_eq!(opened.expires_at, 1_700_000_000);
        // Another user's session, another key.
        assert!(open(&key, "222", sealed(&record)).is_none());
        assert!(open(&TokenEncryptionKey::generate(), "111", sealed(&record)).is_none());
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let key = TokenEncryptionKey::generate();
        let (a, b) = (seal(&key, "1", &bundle()), seal(&key, "1", &bundle()));
        assert_ne!(sealed(&a), sealed(&b));
    }

    #[test]
    fn altered_records_do_not_open_and_never_panic() {
        let key = TokenEncryptionKey::generate();
        let record = seal(&key, "1", &bundle());
        let bytes = URL_SAFE_NO_PAD.decode(sealed(&record)).unwrap();
        for i in 0..bytes.len() {
            let mut bent = bytes.clone();
            bent[i] ^= 0x01;
            assert!(
                open(&key, "1", &URL_SAFE_NO_PAD.encode(&bent)).is_none(),
                "byte {i}"
            );
        }
        for len in 0..bytes.len() {
            assert!(open(&key, "1", &URL_SAFE_NO_PAD.encode(&bytes[..len])).is_none());
        }
        for junk in ["", "!", "AA", "not base64 at all", "AQ"] {
            assert!(open(&key, "1", junk).is_none());
        }
    }

    #[test]
    fn the_key_is_32_bytes_of_base64_and_never_printed() {
        let text = STANDARD.encode([7u8; 32]);
        assert!(TokenEncryptionKey::from_base64(&format!("  {text}\n")).is_ok());
        for bad in [
            STANDARD.encode([7u8; 31]),
            STANDARD.encode([7u8; 33]),
            "not base64!".to_owned(),
            String::new(),
        ] {
            let e = TokenEncryptionKey::from_base64(&bad).unwrap_err();
            assert_eq!(e.reason(), "token_key_unavailable");
            assert!(e.to_string().contains("openssl rand -base64 32"), "{e}");
        }
        let e = TokenEncryptionKey::from_source(
            &TokenKeySource::Env("IDGATE_TEST_TOKEN_KEY_SURELY_UNSET".into()),
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("IDGATE_TEST_TOKEN_KEY_SURELY_UNSET"),
            "{e}"
        );
        let file = std::env::temp_dir().join(format!("idgate-token-key-{}", std::process::id()));
        std::fs::write(&file, "c2hvcnQ=\n").unwrap();
        let e =
            TokenEncryptionKey::from_source(&TokenKeySource::File(file.clone()), None).unwrap_err();
        assert!(!e.to_string().contains("c2hvcnQ"), "{e}");
        std::fs::write(&file, format!("{text}\n")).unwrap();
        assert!(TokenEncryptionKey::from_source(&TokenKeySource::File(file.clone()), None).is_ok());
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn nothing_secret_in_debug() {
        let record = TokenRecord::Plain("1//refresh-secret".into());
        assert!(!format!("{record:?} {:?}", bundle()).contains("secret"));
        let token = UserAccessToken::from_bundle(&bundle()).unwrap();
        assert!(!format!("{token:?} {:?}", token.authorization()).contains("secret"));
        assert!(token.has_scope("email") && token.has_scope("openid") && !token.has_scope("drive"));
    }

    #[test]
    fn plain_records_keep_the_old_format() {
        // A session written by an earlier version (a JSON string) still reads, and a plain one still writes so.
        let record: TokenRecord = serde_json::from_str("\"1//old\"").unwrap();
        assert!(matches!(record, TokenRecord::Plain(ref t) if t == "1//old"));
        assert_eq!(
            serde_json::to_string(&TokenRecord::Plain("x".into())).unwrap(),
            "\"x\""
        );
    }

    #[test]
    fn expires_in_is_read_leniently_and_bounded() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "lenient_secs")]
            expires_in: Option<i64>,
        }
        let read = |s: &str| serde_json::from_str::<T>(s).unwrap().expires_in;
        assert_eq!(read(r#"{"expires_in": 3599}"#), Some(3599));
        assert_eq!(read(r#"{"expires_in": "3599"}"#), Some(3599));
        assert_eq!(read(r#"{"expires_in": [1]}"#), None);
        assert_eq!(read("{}"), None);
        assert_eq!(expiry(100, Some(-5)), 100);
        assert_eq!(expiry(100, Some(i64::MAX)), 100 + MAX_EXPIRES_IN);
        assert_eq!(expiry(100, None), 3700);
    }
}
