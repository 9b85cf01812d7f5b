//! A faithful, loopback-only local twin of Google's identity endpoints, for tests and local development.
//!
//! One [`Emulator`] serves, on `127.0.0.1:PORT`:
//!
//! | path | Google's original |
//! |---|---|
//! | `/oauth2/v3/certs` | OIDC JWKS (`www.googleapis.com/oauth2/v3/certs`) |
//! | `/oauth2/v1/certs` | OIDC X.509 certificates (`www.googleapis.com/oauth2/v1/certs`) |
//! | `/.well-known/openid-configuration` | discovery (`accounts.google.com`) |
//! | `/iap/verify/public_key-jwk`, `/iap/verify/public_key` | IAP keys (`www.gstatic.com`) |
//! | `/computeMetadata/v1/...` | the metadata server (identity, email, token `?scopes=`, project ID and number, zone, region, universe domain, GKE cluster name) |
//! | `POST /token` | the OAuth 2.0 token endpoint (`oauth2.googleapis.com/token`): jwt-bearer grant (ID tokens, access tokens with `scope`, domain-wide delegation with `sub`), refresh-token grant |
//! | `GET /oauth2/v3/tokeninfo` | what an access token grants (`www.googleapis.com/oauth2/v3/tokeninfo`) |
//! | `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken` | IAM Credentials (`iamcredentials.googleapis.com`) |
//! | `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`, `:signJwt`, `:signBlob` | IAM Credentials, with Token Creator grants and delegate chains |
//! | `/service_accounts/v1/metadata/{x509,jwk,raw}/{email}` (and `/robot/v1/metadata/x509/{email}`) | a service account's public keys (every key file's and the one `signBlob`/`signJwt` use), as X.509 certificates, a JWKS, or raw modulus/exponent |
//! | `GET /storage/v1/b?project=P` | Cloud Storage's bucket list (`storage.googleapis.com`), checking the bearer token and its scopes |
//! | `GET /o/oauth2/v2/auth` (+ `POST /o/oauth2/v2/auth/oauthchooseaccount`) | sign in with Google: the authorization endpoint (`accounts.google.com`) as an account chooser of test users |
//! | `POST /token` `grant_type=authorization_code` | the code exchange (PKCE, single-use codes bound to client and redirect URI), refresh tokens for `access_type=offline` |
//! | `GET /v1/userinfo` | OpenID Connect userinfo (`openidconnect.googleapis.com`) |
//! | `POST /revoke` | token revocation (`oauth2.googleapis.com/revoke`) |
//! | `GET /picture/{sub}` | the test users' profile pictures |
//!
//! Sign in with Google: [`Emulator::create_oauth_client`] / [`Emulator::register_oauth_client`] register a web
//! client and its redirect URIs; [`Emulator::add_user`] adds [`UserSpec`] test users to the chooser (which starts
//! with [`DEFAULT_USERS`]); [`Emulator::consent`] and [`Emulator::deny`] answer an authorization URL without a
//! browser. The chooser page is built for WebDriver: each user's button is `button[data-email="EMAIL"]` (also
//! `id="choose-EMAIL"`, with the email as its text), the deny button is `#deny`, the page is `#account-chooser`,
//! an error page is `#error[data-error="CODE"]`.
//!
//! Access tokens are opaque `ya29.` strings; the emulator records who each was issued to, for whom (domain-wide
//! delegation), with which scopes and until when: [`Emulator::tokeninfo`]. [`Emulator::allow_impersonation`],
//! [`Emulator::enable_domain_wide_delegation`], [`Emulator::create_authorized_user`] and
//! [`Emulator::create_bucket`] set up what Google's IAM, Admin console, gcloud and Cloud Storage would hold.
//!
//! Every answer has Google's wire format. [`TokenSpec`] + [`Emulator::mint`] mint any token, good or
//! deliberately broken; [`Emulator::hits`] counts requests per [`Route`]; [`Emulator::inject`] plays
//! a [`Fault`]; keys rotate (service-account keys too: [`Emulator::rotate_system_key`],
//! [`Emulator::delete_service_account_key`]); [`IapProxy`] puts the emulator's IAP in front of any upstream. The emulator
//! never calls the real Google.
//!
//! # Loopback only
//!
//! Anyone who can send it a request can mint tokens, so the emulator binds `127.0.0.1` unless
//! [`EmulatorBuilder::allow_non_loopback`] is called. It also answers only requests addressed to it by a
//! loopback name. That name can be `localhost`, a `127.0.0.0/8` address, `[::1]`, or the literal of the
//! bound address, with any port, given in `Host` or, in HTTP/2, in `:authority`. Without this rule, a web
//! page could use DNS rebinding to have the developer's browser mint tokens and read them. Any other request,
//! including one with a missing, empty, repeated or userinfo-bearing `Host`, gets `403 Forbidden` with a
//! short plain-text body. It mints nothing and counts in no [`Emulator::hits`]. The [`IapProxy`] applies the
//! same rule. [`EmulatorBuilder::allow_host`] adds names (e.g. for a container), and
//! [`EmulatorBuilder::allow_any_host`] turns the check off.
//!
//! [`ServiceAccountKeyFile::write_key_file`] creates key files with mode `0600` on Unix.
//!
//! # Example
//!
//! ```
//! use idgate_emulator::{Emulator, Route, TokenSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::builder().project_id("my-project").start().await?;
//! let token = emulator.mint(
//!     &TokenSpec::service_account("caller@my-project.iam.gserviceaccount.com")
//!         .audience("https://api.example.com"),
//! );
//! assert_eq!(token.split('.').count(), 3);
//!
//! let jwks: serde_json::Value = reqwest::get(emulator.oidc_jwks_url()).await?.json().await?;
//! assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
//! assert_eq!(emulator.hits(Route::OidcJwks), 1);
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's example is compiled (and run, unless marked `no_run`) as a doctest, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod access;
mod emulator;
mod error;
mod host;
mod keys;
pub mod proxy;
mod routes;
mod service_account;
mod signin;
mod state;
mod token;

pub use access::{AccessTokenInfo, AuthorizedUserFile};
pub use emulator::{
    DEFAULT_IAP_MAX_AGE, DEFAULT_OIDC_MAX_AGE, DEFAULT_PROJECT_ID, DEFAULT_PROJECT_NUMBER,
    DEFAULT_SERVICE_ACCOUNT_KEYS_MAX_AGE, DEFAULT_UNIVERSE_DOMAIN, DEFAULT_ZONE, Emulator,
    EmulatorBuilder, ShutdownSignal,
};
pub use error::EmulatorError;
pub use proxy::{IapProxy, IapUserSpec};
pub use service_account::ServiceAccountKeyFile;
pub use signin::{
    AUTHORIZATION_CODE_LIFETIME_SECS, AUTHORIZATION_REQUEST_LIFETIME_SECS, DEFAULT_USERS,
    MAX_PENDING_AUTHORIZATION_BYTES, MAX_PENDING_AUTHORIZATIONS, OAuthClient, TestUser,
    USERINFO_EMAIL_SCOPE, USERINFO_PROFILE_SCOPE, UserSpec,
};
pub use state::{Fault, Route};
pub use token::{
    DEFAULT_AUDIENCE, GOOGLE_ISSUER, HmacKeyMaterial, IAP_ISSUER, IAP_LIFETIME_SECS,
    OIDC_LIFETIME_SECS, SIGNATURE_REMOVED, TokenSpec, numeric_id,
};
