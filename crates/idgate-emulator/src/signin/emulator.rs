//! The sign-in flow's [`Emulator`] methods: OAuth clients, test users, consent without a browser, revocation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

#[cfg(doc)]
use super::{AUTHORIZATION_CODE_LIFETIME_SECS, DEFAULT_USERS};
use super::{OAuthClient, TestUser, UserSpec};
use crate::emulator::Emulator;
use crate::error::EmulatorError;
use crate::keys::random_bytes;
use crate::state::{lock, read};
use crate::token::unix_now;

impl Emulator {
    /// Registers the OAuth client `client_id` with `client_secret` and its authorized `redirect_uris`, as the Cloud
    /// Console does (registering the same ID again replaces it). An authorization request must name one of
    /// `redirect_uris` exactly (scheme, host, port, path, trailing slash and query all count), or it gets
    /// Google's `redirect_uri_mismatch` error page.
    pub fn register_oauth_client(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[&str],
    ) -> OAuthClient {
        let client = OAuthClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.iter().map(|r| (*r).to_owned()).collect(),
            project_id: self.project_id().to_owned(),
            auth_uri: self.authorization_url().to_string(),
            token_uri: self.token_url().to_string(),
            certs_uri: self.oidc_pem_certs_url().to_string(),
        };
        lock(&self.shared.signin)
            .clients
            .insert(client.client_id.clone(), client.clone());
        client
    }

    /// Creates a web-application OAuth client with Google-shaped credentials (ID
    /// `PROJECT_NUMBER-<32 characters>.apps.googleusercontent.com`, secret `GOCSPX-<28 characters>`) and
    /// registers it with `redirect_uris`; see [`Emulator::register_oauth_client`].
    ///
    /// # Panics
    ///
    /// If the system's random source fails; [`Emulator::try_create_oauth_client`] returns that as an error.
    #[must_use]
    pub fn create_oauth_client(&self, redirect_uris: &[&str]) -> OAuthClient {
        match self.try_create_oauth_client(redirect_uris) {
            Ok(client) => client,
            Err(error) => panic!("idgate emulator could not create an OAuth client: {error}"),
        }
    }

    /// Like [`Emulator::create_oauth_client`], returning failures.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Crypto`] if the system's random source fails.
    pub fn try_create_oauth_client(
        &self,
        redirect_uris: &[&str],
    ) -> Result<OAuthClient, EmulatorError> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id: String = random_bytes::<32>()?
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let secret: String = random_bytes::<21>()
            .map(|b| URL_SAFE_NO_PAD.encode(b))?
            .chars()
            .take(28)
            .collect();
        Ok(self.register_oauth_client(
            &format!("{}-{id}.apps.googleusercontent.com", self.project_number()),
            &format!("GOCSPX-{secret}"),
            redirect_uris,
        ))
    }

    /// Adds a test user to the account chooser (after the ones already there; a user with the same email is
    /// replaced in place). The chooser starts with [`DEFAULT_USERS`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use idgate_emulator::UserSpec;
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let carol = emulator.add_user(UserSpec::new("carol@corp.example").name("Carol Danvers"));
    /// assert_eq!(carol.given_name(), "Carol");
    /// assert_eq!(carol.sub(), idgate_emulator::numeric_id("carol@corp.example"));
    /// assert_eq!(emulator.users().len(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_user(&self, spec: UserSpec) -> TestUser {
        let user = TestUser::resolve(spec, &self.shared.base_url);
        let mut signin = lock(&self.shared.signin);
        match signin.users.iter_mut().find(|u| u.email == user.email) {
            Some(existing) => *existing = user.clone(),
            None => signin.users.push(user.clone()),
        }
        user
    }

    /// Removes the test user `email` from the account chooser; returns whether it was there.
    pub fn remove_user(&self, email: &str) -> bool {
        let mut signin = lock(&self.shared.signin);
        let before = signin.users.len();
        signin.users.retain(|u| u.email != email);
        signin.users.len() != before
    }

    /// The test users, in the account chooser's order.
    #[must_use]
    pub fn users(&self) -> Vec<TestUser> {
        lock(&self.shared.signin).users.clone()
    }

    /// Does what clicking `email` on the account chooser of `authorization_url` does, without HTTP: validates
    /// the request as `GET /o/oauth2/v2/auth` does, then returns the redirect to the client, with a code
    /// (`?state=…&iss=https://accounts.google.com&code=…&scope=…&authuser=0[&hd=…]&prompt=consent|none`), or
    /// with `?error=…` where Google redirects with an error (an unsupported `response_type`; `prompt=none`
    /// without a consented `login_hint` user). Only the URL's query is read. Counts no hits.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::AuthorizationRefused`] where Google shows an error page and does not redirect (unknown
    /// client, unregistered redirect URI, malformed request), [`EmulatorError::UnknownUser`] if `email` is not a
    /// test user, or [`EmulatorError::Crypto`] if the random source fails.
    pub fn consent(&self, authorization_url: &Url, email: &str) -> Result<Url, EmulatorError> {
        let query: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
        let pending = match self.shared.authorization_request(&query) {
            Ok(pending) => pending,
            Err(refusal) => return refusal.into_error(),
        };
        if pending.prompt_none {
            return self.shared.silent(pending);
        }
        self.shared.complete(pending, email)
    }

    /// Does what clicking "Deny" on the account chooser of `authorization_url` does: returns the redirect
    /// `?error=access_denied&state=…&iss=…`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::AuthorizationRefused`] where Google shows an error page instead (see
    /// [`Emulator::consent`]).
    pub fn deny(&self, authorization_url: &Url) -> Result<Url, EmulatorError> {
        let query: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
        match self.shared.authorization_request(&query) {
            Ok(pending) => Ok(self.shared.deny_with(&pending, "access_denied")),
            Err(refusal) => refusal.into_error(),
        }
    }

    /// Whether `token` (an access or refresh token) was revoked: through `POST /revoke`, with its grant, or
    /// because the code it was issued for was replayed.
    #[must_use]
    pub fn is_revoked(&self, token: &str) -> bool {
        lock(&self.shared.signin).revoked.contains(token)
    }

    /// The live refresh tokens `email` has granted the OAuth client `client_id` (one per offline sign-in that
    /// showed the consent screen), in no particular order. A test's view of what Google keeps: the app under test
    /// should hold them only where the test expects (never in a cookie, only encrypted in its store).
    #[must_use]
    pub fn refresh_tokens(&self, client_id: &str, email: &str) -> Vec<String> {
        read(&self.shared.grants)
            .refresh_tokens
            .iter()
            .filter(|(_, grant)| grant.client_id == client_id && grant.email == email)
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// The user `email` removes the app `client_id` from their Google Account ("Third-party apps & services"):
    /// every access and refresh token of that grant is revoked and the consent forgotten, as `POST /revoke` of one
    /// of them does. The app learns it only when it next uses a token (`invalid_grant` on refresh, `401` from an
    /// API). Returns whether there was a grant.
    pub fn remove_access(&self, client_id: &str, email: &str) -> bool {
        match self.refresh_tokens(client_id, email).first() {
            Some(token) => self.shared.revoke(token),
            None => false,
        }
    }

    /// Makes the authorization code `code` expire now, as if its [`AUTHORIZATION_CODE_LIFETIME_SECS`] had passed
    /// (the emulator has no clock of its own). Returns whether the emulator knew the code.
    pub fn expire_authorization_code(&self, code: &str) -> bool {
        match lock(&self.shared.signin).codes.get_mut(code) {
            Some(record) => {
                record.expires_at = unix_now().saturating_sub(1);
                true
            }
            None => false,
        }
    }
}
