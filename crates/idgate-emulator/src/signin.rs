//! Sign in with Google: OAuth clients registered in the emulator's "Cloud Console" ([`OAuthClient`]), the test
//! users its account chooser lists ([`UserSpec`], [`TestUser`]), and the authorization requests, codes, consents
//! and revocations of Google's OAuth 2.0 / OpenID Connect web-server flow. The HTTP side (the authorization
//! endpoint, the account chooser, the `authorization_code` grant, userinfo, revoke) is in `routes/signin.rs`; the
//! wire formats and where they come from are in `docs/google-signin.md`.

use std::fmt;

use serde_json::json;
use url::Url;

#[cfg(doc)]
use crate::emulator::Emulator;
use crate::error::EmulatorError;
use crate::token::numeric_id;

mod emulator;
mod flow;

pub(crate) use flow::{
    ChallengeMethod, Pending, Refusal, SigninState, full_scope_name, random_token,
    valid_pkce_string,
};

/// How long an authorization code stays exchangeable, seconds (Google documents no figure; its codes are
/// short-lived, and RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const AUTHORIZATION_CODE_LIFETIME_SECS: i64 = 600;
/// How long the account chooser of one authorization request stays answerable, seconds.
pub const AUTHORIZATION_REQUEST_LIFETIME_SECS: i64 = 3600;
/// The most authorization requests (account choosers not yet answered) and, separately, the most unexpired
/// authorization codes the emulator keeps; past it the oldest is forgotten (its chooser or code is then refused, as
/// an expired one is). Anyone who can reach the emulator can open choosers, so they must not grow its memory
/// without bound.
pub const MAX_PENDING_AUTHORIZATIONS: usize = 10_000;
/// The most bytes of caller-supplied text (`state`, `nonce`, `login_hint`, the PKCE challenge, ...) the pending
/// authorization requests, and separately the codes, hold together: a request's `state` alone may be tens of
/// kilobytes, which [`MAX_PENDING_AUTHORIZATIONS`] alone would let reach gigabytes. Past it the oldest go first.
pub const MAX_PENDING_AUTHORIZATION_BYTES: usize = 64 * 1024 * 1024;

/// The `email` scope's full name (Google grants it for `email`; token responses name it so).
pub const USERINFO_EMAIL_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.email";
/// The `profile` scope's full name (Google grants it for `profile`; token responses name it so).
pub const USERINFO_PROFILE_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.profile";

/// The emulator's default test users, listed by every account chooser until [`Emulator::add_user`] adds more:
/// `(email, name, hosted domain)`. Each has a verified email, a stable numeric `sub` ([`numeric_id`] of the
/// email) and a picture the emulator serves.
pub const DEFAULT_USERS: [(&str, &str, Option<&str>); 3] = [
    ("alice@example.com", "Alice Liddell", Some("example.com")),
    ("bob@example.com", "Bob Builder", Some("example.com")),
    ("mallory@gmail.com", "Mallory Mayhem", None),
];

/// An OAuth 2.0 client registered with the emulator, as the Cloud Console's "Credentials" page creates one
/// (type "Web application"): its ID, its secret and its authorized redirect URIs. `Debug` redacts the secret.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = idgate_emulator::Emulator::start().await?;
/// let client = emulator.create_oauth_client(&["http://127.0.0.1:8080/auth/callback"]);
/// assert!(client.client_id().ends_with(".apps.googleusercontent.com"));
/// assert!(client.client_secret().starts_with("GOCSPX-"));
/// assert!(!format!("{client:?}").contains(client.client_secret()));
/// // Google's downloadable client_secret.json, pointing at the emulator.
/// let json: serde_json::Value = serde_json::from_str(&client.client_secrets_json())?;
/// assert_eq!(json["web"]["token_uri"], emulator.token_url().as_str());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    project_id: String,
    auth_uri: String,
    token_uri: String,
    certs_uri: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// The client ID (`NNN-xxx.apps.googleusercontent.com` for [`Emulator::create_oauth_client`]).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret (`GOCSPX-…` for [`Emulator::create_oauth_client`]).
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The authorized redirect URIs: an authorization request must name one of them exactly.
    #[must_use]
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// Google's downloadable `client_secret_….json` for a web client, with `auth_uri` and `token_uri` at the
    /// emulator: `{"web": {client_id, project_id, auth_uri, token_uri, auth_provider_x509_cert_url,
    /// client_secret, redirect_uris}}`, the shape `google_auth_oauthlib.flow.Flow.from_client_config` reads.
    #[must_use]
    pub fn client_secrets_json(&self) -> String {
        json!({"web": {
            "client_id": self.client_id,
            "project_id": self.project_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.certs_uri,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
        }})
        .to_string()
    }

    /// Writes the client secret (and a newline) to `dir/client_secret_{client_id}.txt`, readable by its owner
    /// only (`0600` on Unix; the file is created with that mode and renamed into place, like service-account key
    /// files), and returns its path: what `[signin] client_secret_file` names.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let client = emulator.create_oauth_client(&["http://127.0.0.1:8080/auth/callback"]);
    /// let path = client.write_secret_file(std::env::temp_dir())?;
    /// assert_eq!(std::fs::read_to_string(&path)?.trim_end(), client.client_secret());
    /// # std::fs::remove_file(path)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Io`] when the file cannot be written; [`EmulatorError::Crypto`] when the random source
    /// for the temporary file's name fails.
    pub fn write_secret_file(
        &self,
        dir: impl AsRef<std::path::Path>,
    ) -> Result<std::path::PathBuf, EmulatorError> {
        crate::service_account::write_secret_file(
            dir.as_ref(),
            &format!(
                "client_secret_{}.txt",
                crate::service_account::file_stem(&self.client_id)
            ),
            format!("{}\n", self.client_secret).as_bytes(),
        )
    }
}

/// A test user for the account chooser: [`Emulator::add_user`]. Only the email is required; the rest has
/// defaults (a name made from the email, `email_verified: true`, `sub` = [`numeric_id`] of the email, a
/// picture the emulator serves, no hosted domain).
///
/// ```
/// use idgate_emulator::UserSpec;
/// let carol = UserSpec::new("carol@corp.example")
///     .name("Carol Danvers")
///     .hosted_domain("corp.example");
/// let unverified = UserSpec::new("eve@example.net").email_verified(false);
/// # let _ = (carol, unverified);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct UserSpec {
    email: String,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    hosted_domain: Option<String>,
    email_verified: bool,
    sub: Option<String>,
}

impl UserSpec {
    /// A user with this email.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
            given_name: None,
            family_name: None,
            picture: None,
            hosted_domain: None,
            email_verified: true,
            sub: None,
        }
    }

    /// `name` (default: the email's local part, capitalised). `given_name` and `family_name` default to its
    /// first word and the rest.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `given_name`.
    pub fn given_name(mut self, name: impl Into<String>) -> Self {
        self.given_name = Some(name.into());
        self
    }

    /// `family_name`.
    pub fn family_name(mut self, name: impl Into<String>) -> Self {
        self.family_name = Some(name.into());
        self
    }

    /// `picture` (default: `{emulator}/picture/{sub}`, an SVG the emulator serves).
    pub fn picture(mut self, url: impl Into<String>) -> Self {
        self.picture = Some(url.into());
        self
    }

    /// `hd`: the user's Google Workspace domain (default: none, a consumer account).
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.hosted_domain = Some(domain.into());
        self
    }

    /// `email_verified` (default `true`).
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    /// `sub`, the stable account ID (default: [`numeric_id`] of the email, 21 digits).
    // Named after the claim, like every other setter here; it is no subtraction.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }
}

/// A test user as the emulator holds it: every claim resolved. See [`Emulator::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    pub(crate) email: String,
    pub(crate) sub: String,
    pub(crate) name: String,
    pub(crate) given_name: String,
    pub(crate) family_name: String,
    pub(crate) picture: String,
    pub(crate) hosted_domain: Option<String>,
    pub(crate) email_verified: bool,
}

impl TestUser {
    /// `email`.
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }

    /// `sub`.
    #[must_use]
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `name`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `given_name`.
    #[must_use]
    pub fn given_name(&self) -> &str {
        &self.given_name
    }

    /// `family_name`.
    #[must_use]
    pub fn family_name(&self) -> &str {
        &self.family_name
    }

    /// `picture`.
    #[must_use]
    pub fn picture(&self) -> &str {
        &self.picture
    }

    /// `hd`, for a Workspace account.
    #[must_use]
    pub fn hosted_domain(&self) -> Option<&str> {
        self.hosted_domain.as_deref()
    }

    /// `email_verified`.
    #[must_use]
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    pub(crate) fn resolve(spec: UserSpec, base_url: &Url) -> Self {
        let sub = spec.sub.unwrap_or_else(|| numeric_id(&spec.email));
        let name = spec.name.unwrap_or_else(|| {
            let local = spec.email.split('@').next().unwrap_or_default();
            let mut chars = local.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        });
        let (first, rest) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        let given_name = spec.given_name.unwrap_or_else(|| first.to_owned());
        let family_name = spec.family_name.unwrap_or_else(|| rest.to_owned());
        let picture = spec.picture.unwrap_or_else(|| {
            let mut url = base_url.clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.clear().extend(["picture", sub.as_str()]);
            }
            url.to_string()
        });
        Self {
            email: spec.email,
            sub,
            name,
            given_name,
            family_name,
            picture,
            hosted_domain: spec.hosted_domain,
            email_verified: spec.email_verified,
        }
    }
}
