//! Service-account impersonation through IAM Credentials: `generateIdToken`, `generateAccessToken`, and `signJwt`
//! for keyless domain-wide delegation.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use idgate_core::clock::Clock;
use idgate_core::google::{Endpoints, HttpOptions};
use idgate_core::token::IdToken;
use url::Url;

use super::key_file::Credentials;
use super::service_account::{GrantClaims, delegation_denied, jwt_bearer_grant};
use super::{
    AccessToken, AccessTokenSource, AuthorizedUser, BoxFuture, IdTokenSource, ServiceAccountKey,
};
use crate::Scopes;
use crate::audience::check_audience;
use crate::error::{Endpoint, KeyFileError, KeyOrigin, SourceError};
use crate::iam::IamClient;
/// The lifetime asked of `generateAccessToken` by default (Google's default and, without an org policy, maximum).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Impersonates a service account: `POST {iam}/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken` with
/// `Authorization: Bearer <access token of the source credential>` and
/// `{"audience": AUD, "delegates": [...], "includeEmail": true}`; the answer is `{"token": JWT}`.
///
/// Access tokens ([`AccessTokenSource`]) come from `generateAccessToken`
/// (`{"delegates": [...], "scope": [...], "lifetime": "3600s"}` → `{accessToken, expireTime}`). With
/// [`subject`](Self::subject) set, they come from **keyless domain-wide delegation** instead: IAM `signJwt` signs,
/// as the target, the claims `iss` = target, `sub` = the user, `scope`, `aud` = the token URI, `iat`, `exp`; the
/// signed JWT then goes through the JWT-bearer grant at the token URI. No key file anywhere; the target's client
/// ID must be authorised for the scopes in the Workspace Admin console, else [`SourceError::DelegationDenied`].
///
/// The caller (the source credential) needs `roles/iam.serviceAccountTokenCreator` on the target (on each
/// delegate in a chain). The source's access token (scope `cloud-platform`) is reused until a minute before it
/// expires, and dropped when IAM answers 401.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idgate_client::SourceError> {
/// use idgate_client::{IdTokenSource, Impersonated, MetadataServer};
///
/// // The attached service account mints tokens as deployer@.
/// let source = Impersonated::new(MetadataServer::new(), "deployer@my-project.iam.gserviceaccount.com");
/// let token = source.id_token("https://my-service-abc123-uc.a.run.app").await?;
///
/// // Or from `gcloud auth application-default login --impersonate-service-account=...`:
/// let source = Impersonated::from_file("/home/me/.config/gcloud/application_default_credentials.json")?;
///
/// // Access tokens as deployer@, through a delegate chain; and as a Workspace user, with no key file.
/// use idgate_client::{AccessTokenSource, Scopes};
/// let chain = Impersonated::new(MetadataServer::new(), "deployer@my-project.iam.gserviceaccount.com")
///     .delegates(["hop@my-project.iam.gserviceaccount.com"]);
/// let access = chain.access_token(&Scopes::cloud_platform()).await?;
/// let admin = Impersonated::new(MetadataServer::new(), "dwd@my-project.iam.gserviceaccount.com")
///     .subject("admin@example.com");
/// let scopes = Scopes::new(["https://www.googleapis.com/auth/admin.directory.user.readonly"]).unwrap();
/// let as_admin = admin.access_token(&scopes).await?;
/// # let _ = (token, source, access, as_admin);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Impersonated {
    target: String,
    delegates: Vec<String>,
    include_email: bool,
    subject: Option<String>,
    lifetime: Duration,
    quota_project: Option<String>,
    token_uri: Url,
    /// The IAM Credentials client: the source credential, the API root, HTTP options, clock and cached caller token.
    iam: IamClient,
}

impl fmt::Debug for Impersonated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Impersonated")
            .field("target", &self.target)
            .field("delegates", &self.delegates)
            .field("include_email", &self.include_email)
            .field("subject", &self.subject)
            .field("iam_credentials", &self.iam.root.as_str())
            .field("source", &self.iam.source)
            .finish_non_exhaustive()
    }
}

impl Impersonated {
    /// Impersonates `target` (a service-account email or unique ID), authorised by `source`'s access tokens.
    /// `includeEmail` is true (the token carries `email` and `email_verified`); no delegates.
    pub fn new(source: impl AccessTokenSource + 'static, target: impl Into<String>) -> Self {
        Self::with_source(Arc::new(source), &target.into())
    }

    fn with_source(source: Arc<dyn AccessTokenSource>, target: &str) -> Self {
        Self {
            target: target.trim().to_owned(),
            delegates: Vec::new(),
            include_email: true,
            subject: None,
            lifetime: DEFAULT_LIFETIME,
            quota_project: None,
            token_uri: Endpoints::default().token,
            iam: IamClient::new(source),
        }
    }

    /// Reads an `impersonated_service_account` file (what
    /// `gcloud auth application-default login --impersonate-service-account=SA` writes). The target is the last
    /// path segment of `service_account_impersonation_url` before `:`; `source_credentials` must be of type
    /// `service_account` or `authorized_user`.
    ///
    /// # Errors
    ///
    /// [`SourceError::KeyFile`] for an unreadable or malformed file, [`SourceError::UnsupportedCredentials`] for
    /// other source credential types (e.g. `external_account`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        Self::from_credentials(&Credentials::from_file(path.as_ref())?)
    }

    /// Parses an `impersonated_service_account` JSON object.
    ///
    /// # Errors
    ///
    /// As [`Impersonated::from_file`], without the I/O.
    pub fn from_json(json: &[u8]) -> Result<Self, SourceError> {
        Self::from_credentials(&Credentials::parse(json, KeyOrigin::Json)?)
    }

    pub(crate) fn from_credentials(c: &Credentials) -> Result<Self, SourceError> {
        c.expect_kind("impersonated_service_account")?;
        let url = c.string("service_account_impersonation_url")?;
        let target = target_from_url(url).ok_or_else(|| {
            c.invalid(
                "service_account_impersonation_url",
                "it does not end in serviceAccounts/EMAIL:method",
            )
        })?;
        let delegates = c.string_array("delegates")?;
        let inner_origin = KeyOrigin::SourceCredentials(Box::new(c.origin.clone()));
        let inner = c
            .get("source_credentials")
            .ok_or_else(|| KeyFileError::MissingField {
                origin: c.origin.clone(),
                field: "source_credentials",
            })?;
        let inner = Credentials::from_value(inner, inner_origin.clone())?;
        let source: Arc<dyn AccessTokenSource> = match inner.kind().as_deref() {
            Some("service_account") => Arc::new(ServiceAccountKey::from_credentials(&inner)?),
            Some("authorized_user") => Arc::new(AuthorizedUser::from_credentials(&inner)?),
            Some(other) => {
                return Err(SourceError::UnsupportedCredentials {
                    credential_type: other.to_owned(),
                    origin: Some(inner_origin),
                });
            }
            None => {
                return Err(KeyFileError::WrongType {
                    origin: inner_origin,
                    found: None,
                    expected: "service_account or authorized_user",
                }
                .into());
            }
        };
        let mut imp = Self::with_source(source, &target).delegates(delegates);
        imp.quota_project = c.optional_string("quota_project_id").map(str::to_owned);
        Ok(imp)
    }

    /// The service accounts in the delegation chain, in order (emails, unique IDs, or
    /// `projects/-/serviceAccounts/...` names).
    #[must_use]
    pub fn delegates<I, D>(mut self, delegates: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: AsRef<str>,
    {
        self.delegates = delegates
            .into_iter()
            .map(|d| {
                let d = d.as_ref().trim();
                if d.starts_with("projects/") {
                    d.to_owned()
                } else {
                    format!("projects/-/serviceAccounts/{d}")
                }
            })
            .collect();
        self
    }

    /// Whether the token carries `email` and `email_verified` (default true, as Go and Node; most receivers
    /// authorise on the email).
    #[must_use]
    pub fn include_email(mut self, include: bool) -> Self {
        self.include_email = include;
        self
    }

    /// Acts for the Google Workspace user `email` (**keyless domain-wide delegation**): access tokens come from
    /// `signJwt` + the JWT-bearer grant with `sub` = `email`. ID tokens are unaffected.
    #[must_use]
    pub fn subject(mut self, email: impl Into<String>) -> Self {
        self.subject = Some(email.into().trim().to_owned());
        self
    }

    /// How long `generateAccessToken` tokens live (default and usual maximum 1 h; up to 12 h where the
    /// organisation allows). Whole seconds, at least one.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Duration::from_secs(lifetime.as_secs().max(1));
        self
    }

    /// The IAM Credentials API root and the token endpoint from `endpoints` (the emulator:
    /// `Endpoints::under(&emulator.base_url())`).
    #[must_use]
    pub fn endpoints(mut self, endpoints: &Endpoints) -> Self {
        self.iam.root = endpoints.iam_credentials.clone();
        self.token_uri = endpoints.token.clone();
        self
    }

    /// The HTTP client, timeout and retries (default: a shared client that honours proxy settings, 10 s,
    /// 3 attempts).
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.iam.set_http(options);
        self
    }

    /// The clock deciding when the source's access token must be renewed (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.iam.clock = clock;
        self
    }

    /// The impersonated service account.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The delegate chain, as sent (`projects/-/serviceAccounts/...`).
    pub fn delegates_ref(&self) -> &[String] {
        &self.delegates
    }

    /// The `quota_project_id` of the file this was read from, if any.
    pub fn quota_project_id(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }

    #[cfg(test)]
    fn generate_url(&self) -> Result<Url, SourceError> {
        self.method_url("generateIdToken")
    }

    /// `{iam}v1/projects/-/serviceAccounts/{target}:{method}`.
    #[cfg(test)]
    fn method_url(&self, method: &str) -> Result<Url, SourceError> {
        self.iam.method_url(&self.target, method)
    }

    /// `POST` `body` to the target's IAM `method`, authorised by the source's access token; the 2xx body.
    async fn call(&self, method: &str, body: &serde_json::Value) -> Result<Vec<u8>, SourceError> {
        Ok(self
            .iam
            .call(&self.target, method, body, SourceError::is_transient)
            .await?)
    }

    /// The IAM client (source credential, endpoint, HTTP options, cached caller token), for a
    /// [`Signer`](crate::Signer) acting as the same target.
    pub(crate) fn iam_client(&self) -> &IamClient {
        &self.iam
    }

    async fn mint(&self, audience: &str) -> Result<IdToken, SourceError> {
        check_audience(audience)?;
        let body = serde_json::json!({
            "audience": audience,
            "delegates": self.delegates,
            "includeEmail": self.include_email,
        });
        let body = self.call("generateIdToken", &body).await?;
        let raw = crate::transport::json_field(Endpoint::IamCredentials, &body, "token")?;
        crate::transport::id_token(Endpoint::IamCredentials, raw)
    }

    /// The body of `generateAccessToken`.
    fn generate_access_token_body(&self, scopes: &Scopes) -> serde_json::Value {
        serde_json::json!({
            "delegates": self.delegates,
            "scope": scopes.to_vec(),
            "lifetime": format!("{}s", self.lifetime.as_secs()),
        })
    }

    /// The body of `signJwt` for a delegated grant: the claims as a JSON string.
    fn sign_jwt_body(
        &self,
        scopes: &Scopes,
        subject: &str,
    ) -> Result<serde_json::Value, SourceError> {
        let mut claims = GrantClaims::new(&self.target, &self.token_uri, &*self.iam.clock);
        claims.scope = Some(scopes.as_claim());
        claims.sub = Some(subject);
        let payload = serde_json::to_string(&claims).map_err(|_| SourceError::Assertion {
            reason: "the claims cannot be serialised".into(),
        })?;
        Ok(serde_json::json!({ "delegates": self.delegates, "payload": payload }))
    }

    async fn mint_access_token(&self, scopes: &Scopes) -> Result<AccessToken, SourceError> {
        let Some(subject) = super::checked_subject(self.subject.as_deref())? else {
            let body = self
                .call(
                    "generateAccessToken",
                    &self.generate_access_token_body(scopes),
                )
                .await?;
            let ep = Endpoint::IamCredentials;
            let raw = crate::transport::json_field(ep, &body, "accessToken")?;
            let expire_time = crate::transport::json_field(ep, &body, "expireTime")?;
            let expires_at = crate::transport::rfc3339(ep, "expireTime", &expire_time)?;
            let now = self.iam.clock.now();
            if expires_at <= now {
                return Err(SourceError::Expired { expires_at, now });
            }
            return Ok(AccessToken::new(raw, expires_at.duration_since(now).ok())
                .with_expiry(expires_at)
                .with_scopes(scopes.clone()));
        };
        // Keyless domain-wide delegation: IAM signs the assertion as the target, the token endpoint grants it.
        let body = self
            .call("signJwt", &self.sign_jwt_body(scopes, subject)?)
            .await?;
        let signed = crate::transport::json_field(Endpoint::IamCredentials, &body, "signedJwt")?;
        let body = jwt_bearer_grant(&self.iam.http, &self.token_uri, &signed)
            .await
            .map_err(|e| delegation_denied(e, &self.target, None, scopes, subject))?;
        crate::transport::access_token(Endpoint::OAuthToken, &body, Some(scopes))
    }
}

/// `.../serviceAccounts/EMAIL:generateAccessToken` → `EMAIL` (Go: `filepath.Base`, then split on `:`).
fn target_from_url(url: &str) -> Option<String> {
    let last = url.trim().trim_end_matches('/').rsplit('/').next()?;
    let (target, _method) = last.split_once(':')?;
    let target = target.trim();
    (!target.is_empty()).then(|| target.to_owned())
}

impl IdTokenSource for Impersonated {
    fn source_name(&self) -> &'static str {
        "impersonated"
    }

    fn id_token<'a>(&'a self, audience: &'a str) -> BoxFuture<'a, Result<IdToken, SourceError>> {
        Box::pin(self.mint(audience))
    }
}

impl AccessTokenSource for Impersonated {
    fn source_name(&self) -> &'static str {
        "impersonated"
    }

    fn access_token<'a>(
        &'a self,
        scopes: &'a Scopes,
    ) -> BoxFuture<'a, Result<AccessToken, SourceError>> {
        Box::pin(self.mint_access_token(scopes))
    }

    fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_extraction() {
        assert_eq!(
            target_from_url(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
            )
            .as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        assert_eq!(
            target_from_url("https://x/v1/projects/-/serviceAccounts/"),
            None
        );
        assert_eq!(
            target_from_url("https://x/v1/projects/-/serviceAccounts/sa"),
            None
        );
    }

    #[test]
    fn generate_url_and_delegates() {
        let source = AuthorizedUser::from_json(
            br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        )
        .unwrap();
        let imp = Impersonated::new(source, "t@p.iam.gserviceaccount.com")
            .endpoints(&Endpoints::under(
                &"http://127.0.0.1:9/base".parse().unwrap(),
            ))
            .delegates([
                "a@p.iam.gserviceaccount.com",
                "projects/-/serviceAccounts/b@p.iam.gserviceaccount.com",
            ]);
        assert_eq!(
            imp.generate_url().unwrap().as_str(),
            "http://127.0.0.1:9/base/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateIdToken"
        );
        assert_eq!(
            imp.delegates,
            vec![
                "projects/-/serviceAccounts/a@p.iam.gserviceaccount.com".to_owned(),
                "projects/-/serviceAccounts/b@p.iam.gserviceaccount.com".to_owned()
            ]
        );
        let debug = format!("{imp:?}");
        assert!(
            !debug.contains("\"s\"") && !debug.contains("\"r\""),
            "{debug}"
        );
    }

    #[test]
    fn access_token_request_bodies() {
        use idgate_core::clock::ManualClock;
        let source = AuthorizedUser::from_json(
            br#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        )
        .unwrap();
        let imp = Impersonated::new(source, "t@p.iam.gserviceaccount.com")
            .endpoints(&Endpoints::under(&"http://127.0.0.1:9/".parse().unwrap()))
            .delegates(["a@p.iam.gserviceaccount.com"])
            .clock(Arc::new(ManualClock::at_unix(1_700_000_000)));
        let scopes = Scopes::new(["s2", "s1"]).unwrap();
        assert_eq!(
            imp.generate_access_token_body(&scopes),
            serde_json::json!({
                "delegates": ["projects/-/serviceAccounts/a@p.iam.gserviceaccount.com"],
                "scope": ["s1", "s2"],
                "lifetime": "3600s",
            })
        );
        assert_eq!(
            imp.clone()
                .lifetime(Duration::from_millis(10))
                .generate_access_token_body(&scopes)["lifetime"],
            "1s"
        );
        assert!(
            imp.method_url("signJwt")
                .unwrap()
                .as_str()
                .ends_with("/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:signJwt")
        );
        let body = imp.sign_jwt_body(&scopes, "user@example.com").unwrap();
        assert_eq!(
            body["delegates"],
            serde_json::json!(["projects/-/serviceAccounts/a@p.iam.gserviceaccount.com"])
        );
        let claims: serde_json::Value =
            serde_json::from_str(body["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "t@p.iam.gserviceaccount.com",
                "sub": "user@example.com",
                "scope": "s1 s2",
                "aud": "http://127.0.0.1:9/token",
                "iat": 1_700_000_000 - 10,
                "exp": 1_700_000_000 - 10 + 3600,
            })
        );
    }

    #[test]
    fn file_with_unsupported_source() {
        let json = br#"{"type":"impersonated_service_account",
            "service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials":{"type":"external_account"}}"#;
        let err = Impersonated::from_json(json).unwrap_err();
        assert!(err.is_unsupported_credentials(), "{err}");
        let json = br#"{"type":"impersonated_service_account",
            "service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken",
            "delegates":["d@p.iam.gserviceaccount.com"],
            "source_credentials":{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}}"#;
        let imp = Impersonated::from_json(json).unwrap();
        assert_eq!(imp.target(), "t@p.iam.gserviceaccount.com");
        assert_eq!(
            imp.delegates,
            vec!["projects/-/serviceAccounts/d@p.iam.gserviceaccount.com".to_owned()]
        );
    }
}
