//! Service-account key files: the JWT-bearer grant, with `target_audience` (ID tokens) or `scope` (access tokens,
//! with `sub` for domain-wide delegation).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use idgate_core::clock::{Clock, SystemClock};
use idgate_core::google::HttpOptions;
use idgate_core::token::IdToken;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use url::Url;

use super::key_file::Credentials;
use super::{AccessToken, AccessTokenSource, BoxFuture, IdTokenSource};
use crate::Scopes;
use crate::audience::check_audience;
use crate::error::{Endpoint, KeyFileError, KeyOrigin, SourceError};
use crate::transport::Http;

/// Google's token endpoint, used when a key file has no `token_uri`.
pub(crate) const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How far the assertion's `iat` is backdated, as Go does, to absorb a local clock slightly ahead of Google's.
const BACKDATE: Duration = Duration::from_secs(10);
/// The assertion's lifetime (`exp - iat`), as every Google library uses.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A service-account key file (`"type": "service_account"`).
///
/// Mints ID tokens with the JWT-bearer grant: an RS256 assertion (`kid` = `private_key_id`; `iss` = `client_email`,
/// `aud` = `token_uri`, `iat` backdated 10 s, `exp` = `iat` + 1 h, `target_audience` = the audience) POSTed to the
/// file's `token_uri`, whose answer carries `id_token`. The same grant with `scope` (space-separated) instead of
/// `target_audience` gives an [`AccessToken`] ([`AccessTokenSource`]); with [`subject`](Self::subject) set, the
/// assertion also carries `sub` = that Workspace user (**domain-wide delegation**), and Google's
/// `unauthorized_client` answer becomes [`SourceError::DelegationDenied`], which says what to authorise in the
/// Admin console.
///
/// `Debug` shows the email and key ID, never the key.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_client::{IdTokenSource, ServiceAccountKey};
///
/// let key = ServiceAccountKey::from_file("/secrets/caller-key.json")?;
/// let token = key.id_token("https://my-service-abc123-uc.a.run.app").await?;
///
/// // Domain-wide delegation: the Admin SDK as a Workspace user.
/// use idgate_client::{AccessTokenSource, Scopes};
/// let admin = key.clone().subject("admin@example.com");
/// let scopes = Scopes::new(["https://www.googleapis.com/auth/admin.directory.user.readonly"])?;
/// let access = admin.access_token(&scopes).await?;
/// # let _ = (token, access);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceAccountKey {
    email: String,
    key_id: String,
    client_id: Option<String>,
    project_id: Option<String>,
    quota_project: Option<String>,
    subject: Option<String>,
    token_uri: Url,
    key: Arc<EncodingKey>,
    http: Http,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.email)
            .field("private_key_id", &self.key_id)
            .field("subject", &self.subject)
            .field("token_uri", &self.token_uri.as_str())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl ServiceAccountKey {
    /// Reads a key file.
    ///
    /// # Errors
    ///
    /// [`KeyFileError`]: unreadable file, not JSON, wrong `type`, a missing field, or a private key that is not an
    /// RSA key in PEM form.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        Self::from_credentials(&Credentials::from_file(path.as_ref())?)
    }

    /// Parses a key file's content.
    ///
    /// # Errors
    ///
    /// As [`ServiceAccountKey::from_file`], without the I/O.
    pub fn from_json(json: &[u8]) -> Result<Self, KeyFileError> {
        Self::from_credentials(&Credentials::parse(json, KeyOrigin::Json)?)
    }

    pub(crate) fn from_credentials(c: &Credentials) -> Result<Self, KeyFileError> {
        c.expect_kind("service_account")?;
        let email = c.string("client_email")?.trim().to_owned();
        let key_id = c.string("private_key_id")?.trim().to_owned();
        let pem = c.string("private_key")?;
        let token_uri = match c.optional_url("token_uri")? {
            Some(url) => url,
            None => {
                Url::parse(GOOGLE_TOKEN_URI).map_err(|_| c.invalid("token_uri", "not a URL"))?
            }
        };
        let key =
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| KeyFileError::BadPrivateKey {
                origin: c.origin.clone(),
            })?;
        // jsonwebtoken parses the key only when signing: sign once now so a bad key fails at load, not at the
        // first request.
        let probe =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({}), &key);
        if probe.is_err() {
            return Err(KeyFileError::BadPrivateKey {
                origin: c.origin.clone(),
            });
        }
        Ok(Self {
            email,
            key_id,
            client_id: c.optional_string("client_id").map(|s| s.trim().to_owned()),
            project_id: c.optional_string("project_id").map(str::to_owned),
            quota_project: c.optional_string("quota_project_id").map(str::to_owned),
            subject: None,
            token_uri,
            key: Arc::new(key),
            http: Http::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// The service account's email (`client_email`).
    pub fn client_email(&self) -> &str {
        &self.email
    }

    /// The key's ID (`private_key_id`), sent as the assertion's `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The email, key ID, private key and clock, for a local [`Signer`](crate::Signer).
    pub(crate) fn into_signing_parts(self) -> (String, String, Arc<EncodingKey>, Arc<dyn Clock>) {
        (self.email, self.key_id, self.key, self.clock)
    }

    /// Acts for the Google Workspace user `email` (**domain-wide delegation**): access tokens carry `sub` = `email`.
    /// The key's client ID must be authorised for the scopes in the Workspace Admin console (Security → API
    /// controls → Domain-wide delegation); otherwise minting fails with [`SourceError::DelegationDenied`].
    /// ID tokens are unaffected.
    #[must_use]
    pub fn subject(mut self, email: impl Into<String>) -> Self {
        self.subject = Some(email.into().trim().to_owned());
        self
    }

    /// The Workspace user access tokens are minted for, if [`subject`](Self::subject) was set.
    pub fn subject_ref(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The key file's `client_id` (the service account's unique ID), if any.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The key file's `quota_project_id`, if any: the project billed for API calls (`x-goog-user-project`).
    pub fn quota_project_id(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    /// The `project_id` of the key file, if any.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// Where assertions are sent (the file's `token_uri`, else Google's).
    pub fn token_uri_ref(&self) -> &Url {
        &self.token_uri
    }

    /// Sends assertions to `token_uri` instead of the file's (and uses it as the assertion's `aud`).
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

    /// The clock the assertion's `iat` and `exp` come from (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn assertion(
        &self,
        target_audience: Option<&str>,
        scopes: Option<&Scopes>,
    ) -> Result<String, SourceError> {
        let mut claims = GrantClaims::new(&self.email, &self.token_uri, &*self.clock);
        claims.target_audience = target_audience;
        if let Some(scopes) = scopes {
            claims.scope = Some(scopes.as_claim());
            claims.sub = super::checked_subject(self.subject.as_deref())?;
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| SourceError::Assertion {
            reason: format!("{:?}", e.kind()).chars().take(120).collect(),
        })
    }

    async fn grant(&self, assertion: String) -> Result<Vec<u8>, SourceError> {
        jwt_bearer_grant(&self.http, &self.token_uri, &assertion).await
    }

    async fn mint(&self, audience: &str) -> Result<IdToken, SourceError> {
        check_audience(audience)?;
        let assertion = self.assertion(Some(audience), None)?;
        let body = self.grant(assertion).await?;
        let raw = crate::transport::json_field(Endpoint::OAuthToken, &body, "id_token")?;
        crate::transport::id_token(Endpoint::OAuthToken, raw)
    }

    /// An access token for `scopes` through the JWT-bearer grant (for [`subject`](Self::subject) when set).
    ///
    /// # Errors
    ///
    /// Any [`SourceError`]; an answer without `access_token` is [`SourceError::InvalidResponse`]; a refused
    /// domain-wide delegation is [`SourceError::DelegationDenied`].
    pub async fn access_token(&self, scopes: &Scopes) -> Result<AccessToken, SourceError> {
        let assertion = self.assertion(None, Some(scopes))?;
        let result = self.grant(assertion).await;
        let body = match (result, &self.subject) {
            (Err(e), Some(subject)) => {
                return Err(delegation_denied(
                    e,
                    &self.email,
                    self.client_id.as_deref(),
                    scopes,
                    subject,
                ));
            }
            (result, _) => result?,
        };
        crate::transport::access_token(Endpoint::OAuthToken, &body, Some(scopes))
    }
}

/// The claims of a JWT-bearer assertion.
#[derive(serde::Serialize)]
pub(crate) struct GrantClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target_audience: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<&'a str>,
}

impl<'a> GrantClaims<'a> {
    /// `iss`, `aud` = the token URI, `iat` (backdated) and `exp` = `iat` + 1 h.
    pub(crate) fn new(iss: &'a str, token_uri: &'a Url, clock: &dyn Clock) -> Self {
        let now = u64::try_from(clock.unix_seconds()).unwrap_or(0);
        let iat = now.saturating_sub(BACKDATE.as_secs());
        Self {
            iss,
            aud: token_uri.as_str(),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            target_audience: None,
            scope: None,
            sub: None,
        }
    }
}

/// `POST token_uri` with `grant_type=jwt-bearer&assertion=...`; the 2xx body.
pub(crate) async fn jwt_bearer_grant(
    http: &Http,
    token_uri: &Url,
    assertion: &str,
) -> Result<Vec<u8>, SourceError> {
    let form = [("grant_type", JWT_BEARER), ("assertion", assertion)];
    http.send(Endpoint::OAuthToken, |client| {
        client.post(token_uri.clone()).form(&form)
    })
    .await
}

/// Google's `unauthorized_client` answer to a delegated grant as [`SourceError::DelegationDenied`]; any other error
/// as is.
pub(crate) fn delegation_denied(
    error: SourceError,
    service_account: &str,
    client_id: Option<&str>,
    scopes: &Scopes,
    subject: &str,
) -> SourceError {
    if crate::transport::oauth_error_code(&error) == Some("unauthorized_client") {
        SourceError::DelegationDenied {
            service_account: service_account.to_owned(),
            client_id: client_id.map(str::to_owned),
            scopes: scopes.clone(),
            subject: subject.to_owned(),
            answer: Box::new(error),
        }
    } else {
        error
    }
}

impl IdTokenSource for ServiceAccountKey {
    fn source_name(&self) -> &'static str {
        "service_account_key"
    }

    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.mint(audience))
    }
}

impl AccessTokenSource for ServiceAccountKey {
    fn source_name(&self) -> &'static str {
        "service_account_key"
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
    use idgate_core::clock::ManualClock;

    async fn key() -> (idgate_emulator::Emulator, ServiceAccountKey) {
        let emu = idgate_emulator::Emulator::builder()
            .project_id("p")
            .start()
            .await
            .unwrap();
        let file = emu.create_service_account("dwd@p.iam.gserviceaccount.com");
        let dir = tempfile::tempdir().unwrap();
        let path = file.write_key_file(dir.path()).unwrap();
        let key = ServiceAccountKey::from_file(&path)
            .unwrap()
            .clock(Arc::new(ManualClock::at_unix(1_700_000_000)));
        (emu, key)
    }

    #[tokio::test]
    async fn access_token_assertion_claims() {
        let (_emu, key) = key().await;
        let scopes = Scopes::new(["s2", "s1"]).unwrap();
        let jwt = key.assertion(None, Some(&scopes)).unwrap();
        let decoded = idgate_core::token::decode_unverified(&jwt).unwrap();
        assert_eq!(decoded.header["alg"], "RS256");
        assert_eq!(decoded.header["kid"], key.key_id());
        let c = decoded.claims;
        assert_eq!(c["iss"], "dwd@p.iam.gserviceaccount.com");
        assert_eq!(c["aud"], key.token_uri_ref().as_str());
        assert_eq!(c["scope"], "s1 s2");
        assert_eq!(c["iat"], 1_700_000_000 - 10);
        assert_eq!(c["exp"], 1_700_000_000 - 10 + 3600);
        assert!(c.get("sub").is_none() && c.get("target_audience").is_none());

        let delegated = key.subject(" user@example.com ");
        assert_eq!(delegated.subject_ref(), Some("user@example.com"));
        let c = idgate_core::token::decode_unverified(
            &delegated.assertion(None, Some(&scopes)).unwrap(),
        )
        .unwrap()
        .claims;
        assert_eq!(c["sub"], "user@example.com");
        // ID-token assertions never carry `sub` or `scope`.
        let c = idgate_core::token::decode_unverified(
            &delegated.assertion(Some("https://a"), None).unwrap(),
        )
        .unwrap()
        .claims;
        assert!(c.get("sub").is_none() && c.get("scope").is_none());
        assert_eq!(c["target_audience"], "https://a");
    }

    #[test]
    fn unauthorized_client_becomes_delegation_denied_with_advice() {
        let answer = SourceError::Status {
            endpoint: Endpoint::OAuthToken,
            status: http::StatusCode::UNAUTHORIZED,
            attempts: 1,
            detail: crate::error::error_detail(
                br#"{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}"#,
            ),
        };
        let scopes = Scopes::new([
            "https://www.googleapis.com/auth/admin.directory.user.readonly",
            "b",
        ])
        .unwrap();
        let err = delegation_denied(
            answer.clone(),
            "dwd@p.iam.gserviceaccount.com",
            Some("123456789"),
            &scopes,
            "user@example.com",
        );
        assert!(err.is_delegation_denied(), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("Security → API controls → Domain-wide delegation"),
            "{message}"
        );
        assert!(message.contains("client ID 123456789"), "{message}");
        assert!(
            message.contains("b,https://www.googleapis.com/auth/admin.directory.user.readonly"),
            "{message}"
        );
        assert!(message.contains("user@example.com"), "{message}");
        // The answer is the cause, not part of the message.
        assert!(!message.contains("Client is unauthorized"), "{message}");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            answer.to_string()
        );
        assert_eq!(err.endpoint(), Some(Endpoint::OAuthToken));
        // Without a client ID the message says how to find it.
        let err = delegation_denied(
            answer,
            "dwd@p.iam.gserviceaccount.com",
            None,
            &scopes,
            "u@example.com",
        );
        assert!(err.to_string().contains("uniqueId"), "{err}");
        // Other errors pass through.
        let other = SourceError::Status {
            endpoint: Endpoint::OAuthToken,
            status: http::StatusCode::BAD_REQUEST,
            attempts: 1,
            detail: Some("invalid_grant: Invalid JWT".into()),
        };
        assert!(!delegation_denied(other, "a", None, &scopes, "u").is_delegation_denied());
    }
}
