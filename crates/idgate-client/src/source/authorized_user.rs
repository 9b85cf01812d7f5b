//! `authorized_user` credentials (gcloud user ADC): access tokens only.

use std::fmt;
use std::path::Path;

use idgate_core::google::HttpOptions;
use url::Url;

use super::key_file::Credentials;
use super::service_account::GOOGLE_TOKEN_URI;
use super::{AccessToken, AccessTokenSource, BoxFuture};
use crate::Scopes;
use crate::error::{Endpoint, KeyFileError, KeyOrigin, SourceError};
use crate::transport::Http;

/// A user's refresh token (`"type": "authorized_user"`, what `gcloud auth application-default login` writes).
///
/// This is deliberately **not** an [`IdTokenSource`](super::IdTokenSource): Google pins the `aud` of an ID token
/// minted from user credentials to the OAuth client ID, so Cloud Run custom audiences and IAP reject it. It is an
/// [`AccessTokenSource`] (the `refresh_token` grant), which is what an
/// [`Impersonated`](super::Impersonated) service account needs: the file
/// `gcloud auth application-default login --impersonate-service-account=SA` writes has exactly this as its
/// `source_credentials`.
///
/// `Debug` never shows the client secret or the refresh token.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_client::{AccessTokenSource, AuthorizedUser, Scopes};
///
/// let user = AuthorizedUser::from_file("/home/me/.config/gcloud/application_default_credentials.json")?;
/// let token = user.access_token(&Scopes::cloud_platform()).await?;
/// # let _ = token;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizedUser {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: Url,
    quota_project: Option<String>,
    http: Http,
}

impl fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri.as_str())
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

impl AuthorizedUser {
    /// Reads an `authorized_user` file.
    ///
    /// # Errors
    ///
    /// [`KeyFileError`]: unreadable, not JSON, wrong `type`, or missing `client_id` / `client_secret` /
    /// `refresh_token`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        Self::from_credentials(&Credentials::from_file(path.as_ref())?)
    }

    /// Parses an `authorized_user` JSON object.
    ///
    /// # Errors
    ///
    /// As [`AuthorizedUser::from_file`], without the I/O.
    pub fn from_json(json: &[u8]) -> Result<Self, KeyFileError> {
        Self::from_credentials(&Credentials::parse(json, KeyOrigin::Json)?)
    }

    pub(crate) fn from_credentials(c: &Credentials) -> Result<Self, KeyFileError> {
        c.expect_kind("authorized_user")?;
        let token_uri = match c.optional_url("token_uri")? {
            Some(url) => url,
            None => {
                Url::parse(GOOGLE_TOKEN_URI).map_err(|_| c.invalid("token_uri", "not a URL"))?
            }
        };
        Ok(Self {
            client_id: c.string("client_id")?.to_owned(),
            client_secret: c.string("client_secret")?.to_owned(),
            refresh_token: c.string("refresh_token")?.to_owned(),
            token_uri,
            quota_project: c.optional_string("quota_project_id").map(str::to_owned),
            http: Http::default(),
        })
    }

    /// Sends the grant to `token_uri` instead of the file's (default `https://oauth2.googleapis.com/token`).
    #[must_use]
    pub fn token_uri(mut self, token_uri: Url) -> Self {
        self.token_uri = token_uri;
        self
    }

    /// Sends to `endpoints.token` instead of the file's `token_uri` (a private deployment; the emulator's key files
    /// already point at it).
    #[must_use]
    pub fn endpoints(self, endpoints: &idgate_core::google::Endpoints) -> Self {
        self.token_uri(endpoints.token.clone())
    }

    /// The HTTP client, timeout and retries (default: a shared client that honours proxy settings, 10 s,
    /// 3 attempts).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.http = Http::new(options);
        self
    }

    /// The file's `quota_project_id`, if any: the project billed for API calls (`x-goog-user-project`).
    pub fn quota_project_id(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    /// An access token for `scopes` through the `refresh_token` grant (`scope`, space-separated, narrows the grant;
    /// it must be within what the user consented to).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; a revoked refresh token is [`SourceError::Status`] 400 `invalid_grant`.
    pub async fn access_token(&self, scopes: &Scopes) -> Result<AccessToken, SourceError> {
        let form = self.refresh_form(scopes);
        let body = self
            .http
            .send(Endpoint::OAuthToken, |client| {
                client.post(self.token_uri.clone()).form(&form)
            })
            .await?;
        crate::transport::access_token(Endpoint::OAuthToken, &body, Some(scopes))
    }

    fn refresh_form<'a>(&'a self, scopes: &'a Scopes) -> [(&'static str, &'a str); 5] {
        [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("refresh_token", self.refresh_token.as_str()),
            ("scope", scopes.as_claim()),
        ]
    }
}

impl AccessTokenSource for AuthorizedUser {
    fn source_name(&self) -> &'static str {
        "authorized_user"
    }

    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(Self::access_token(self, scopes))
    }

    fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_form_carries_the_scopes_space_separated() {
        let user = AuthorizedUser::from_json(
            br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","quota_project_id":"billed"}"#,
        )
        .unwrap();
        let scopes = Scopes::new(["b", "a"]).unwrap();
        let form = user.refresh_form(&scopes);
        assert_eq!(form[0], ("grant_type", "refresh_token"));
        assert_eq!(form[4], ("scope", "a b"));
        assert_eq!(user.quota_project_id(), Some("billed"));
        assert_eq!(AccessTokenSource::quota_project(&user), Some("billed"));
    }
}
