//! Sign in with Google for axum/tower: the OAuth 2.0 / OpenID Connect authorization-code flow, hardened.
//!
//! | item | what |
//! |---|---|
//! | [`SignIn`] | the configured sign-in, from the `[signin]` TOML table ([`SignIn::from_config`]) or a [`SignIn::builder`] |
//! | [`SignIn::router`] | `GET /auth/login?return_to=`, `GET /auth/callback`, `POST /auth/logout` (paths configurable) |
//! | [`SignIn::layer`] → [`SignInLayer`] | sessions (`tower-sessions`, any store; in memory by default) around the whole app |
//! | [`SignIn::require`] → [`RequireSignInLayer`] | the gate on protected routes: `302` to login for a page, `401` for a script, `403` for a refused account |
//! | [`SignedInUser`] | the signed-in person in a handler (`Option<SignedInUser>` where sign-in is optional); `idgate_server::extract::VerifiedCaller` works too |
//! | [`sanitize_return_to`] | the return URL rule: same-origin relative paths only |
//! | [`UserAccessToken`] | the signed-in user's own Google access token (offline access), refreshed ahead of expiry; needs a [`TokenEncryptionKey`] |
//!
//! # What it checks
//!
//! - **Login** sends the browser to Google's authorization endpoint with `client_id`, `redirect_uri`,
//!   `response_type=code`, `scope`, a 256-bit `state`, a `nonce`, a PKCE `code_challenge` (S256) and the optional
//!   `hd`, `login_hint`, `prompt`, `access_type`. The attempt (nonce, PKCE verifier, return URL, start time) is kept
//!   server-side under the hash of its `state`, **one per attempt** (several tabs can sign in at once), bound to the
//!   browser by a per-attempt `HttpOnly` cookie, for at most 10 minutes, redeemable once.
//! - **Callback**: the `state` must name a live attempt of this browser (else a clear `400` page, never a `500`);
//!   RFC 9207's `iss` parameter, when present, must be Google's; `error=access_denied` gets a "cancelled" page. The
//!   code is exchanged with the client secret and the PKCE verifier; the ID token is verified by idgate-core's
//!   `OidcVerifier` (signature, both issuer forms, audience = the client ID, expiry, `email_verified`), then `azp`
//!   (when present) must be the client ID, `nonce` the attempt's, `hd` the configured domain (when configured);
//!   the account is judged by the same [`Allowlist`](idgate_core::policy::Allowlist) as IAP users. Only then does
//!   the session start, **under a new session ID** (session fixation), and the browser goes to the sanitized
//!   return URL.
//! - **Logout** is `POST` only (`GET` answers `405`), and only from this site: `SameSite=Lax` keeps the session
//!   cookie off cross-site POSTs, and the request must carry `Origin` equal to the redirect URL's origin (or, without
//!   `Origin`, `Sec-Fetch-Site: same-origin`), else `403`. It revokes the Google token (best effort, at most 5 s),
//!   deletes the session and answers `303 /` with `Clear-Site-Data: "cookies"`.
//! - **Cookies**: `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` prefixed, except on a plain-http loopback
//!   redirect URL (development). The session cookie holds only the session ID: the profile and tokens stay in the
//!   store.
//! - **The user's Google tokens** (with [`SignInBuilder::token_encryption_key`], required for `access_type =
//!   "offline"`): the refresh token, the access token, its expiry and the granted scopes are sealed with AES-256-GCM
//!   (a random nonce each time; associated data binds them to the user's `sub` and a version), kept in the session
//!   store, never in a cookie, a log or a `Debug` output. [`UserAccessToken`] refreshes the access token
//!   [`ACCESS_TOKEN_REFRESH_MARGIN`] before it expires, once per session however many requests ask at once; a
//!   refresh token Google refuses (`invalid_grant`) ends the session; logout revokes it.
//! - **Sessions** end after the idle timeout (sliding, pushed back at most once a minute) or the absolute lifetime,
//!   whichever comes first.
//!
//! # Tracing
//!
//! The login, callback and logout routes each run in a span (`INFO`, target `idgate::signin`):
//! `idgate.signin.login`, `idgate.signin.callback` and `idgate.signin.logout`, with `idgate.outcome` (`ok`, `reject`
//! for a 4xx, `error` for a 5xx), `idgate.reason` (the failure's [`SignInError::reason`]) and `otel.status_code =
//! ERROR` on a 5xx. No code, state, cookie or token value is ever a span field. The workspace's spans are listed
//! in `docs/tracing.md`.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use idgate_core::Config;
//! use idgate_signin::{SignIn, SignedInUser};
//!
//! async fn home(user: Option<SignedInUser>) -> String {
//!     match user {
//!         Some(user) => format!("Hello {}", user.name().unwrap_or(user.email())),
//!         None => "Hello, stranger: <a href=\"/auth/login\">Login</a>".to_owned(),
//!     }
//! }
//!
//! async fn my_books(user: SignedInUser) -> String {
//!     format!("the books of {}", user.email())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let secret = std::env::temp_dir().join("idgate-signin-lib-doctest-secret");
//! # std::fs::write(&secret, "GOCSPX-example\n")?;
//! // The secret is read from an environment variable or a file, never written in the configuration.
//! let config = Config::from_toml_str(&format!(r#"
//!     [signin]
//!     client_id = "123-abc.apps.googleusercontent.com"
//!     client_secret_file = '{}'
//!     redirect_url = "https://app.example.com/auth/callback"
//!     [signin.allow]
//!     domains = ["example.com"]
//! "#, secret.display()))?;
//! let signin = SignIn::from_config(&config)?;
//!
//! let protected = Router::new()
//!     .route("/books/mine", get(my_books))
//!     .layer(signin.require());
//! let app: Router = Router::new()
//!     .route("/", get(home))
//!     .merge(protected)
//!     .merge(signin.router())
//!     .layer(signin.layer());
//! assert_eq!(signin.session_cookie_name(), "__Host-idgate_session");
//! # let _ = app; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled and run as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod error;
mod extract;
mod flow;
mod local_copy;
mod memory_store;
pub mod metrics;
mod pages;
#[cfg(feature = "redis")]
mod redis_store;
mod require;
mod return_to;
mod routes;
mod secret;
mod session;
mod shared_state;
mod signin;
mod tokens;

pub use error::{EndpointError, SignInError};
pub use extract::{SignedInUser, SignedInUserRejection};
pub use memory_store::{DEFAULT_MEMORY_SESSIONS, MemorySessionStore};
pub use pages::escape_html;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_store::{DEFAULT_REDIS_TIMEOUT, RedisStore, RedisStoreError};
pub use require::{RequireSignIn, RequireSignInLayer};
pub use return_to::{MAX_RETURN_TO_LEN, sanitize_return_to};
pub use secret::ClientSecret;
pub use session::{AnySessionStore, LoadUser, RECENT_USER_TTL, SignInLayer, SignInService};
pub use signin::{DEFAULT_MAX_PENDING_ATTEMPTS, SignIn, SignInBuilder};
pub use tokens::{
    ACCESS_TOKEN_REFRESH_MARGIN, TokenEncryptionKey, UserAccessToken, UserAccessTokenRejection,
    UserAccessTokenRejectionKind,
};
/// The session store trait and `tower-sessions`' own in-memory store, re-exported so that a store can be passed to
/// [`SignInBuilder::store`] without naming that crate's version. (The default store is [`MemorySessionStore`], which,
/// unlike `MemoryStore`, forgets expired sessions and is bounded.)
pub use tower_sessions::{MemoryStore, SessionStore};
