//! Calling IAM Credentials (`{root}v1/projects/-/serviceAccounts/{ACCOUNT}:{method}`) authorised by another
//! credential's access tokens: what [`Impersonated`](crate::Impersonated) and [`Signer`](crate::Signer) share.
//!
//! The caller's access token (scope `cloud-platform`) is reused until a minute before it expires. When IAM answers
//! 401 to a reused token, the token is dropped (here and in the caller's source, so a
//! [`CachedSource`](crate::CachedSource) does not hand it back) and the call is made once more with a fresh one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idgate_core::clock::{Clock, SystemClock};
use idgate_core::google::{Endpoints, HttpOptions};
use url::Url;

use crate::Scopes;
use crate::error::{Endpoint, SourceError};
use crate::source::{AccessToken, AccessTokenSource};
use crate::transport::Http;

/// A caller access token is reused until this long before it expires.
const ACCESS_TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Why an IAM call failed: the caller's own credential, or IAM.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The access token that authorises the call could not be obtained.
    Credential(SourceError),
    /// The URL could not be built, or IAM answered with an error, could not be reached, or (after the call)
    /// answered something unusable.
    Iam(SourceError),
}

impl From<CallError> for SourceError {
    /// As [`Impersonated`](crate::Impersonated) reports it: either way a [`SourceError`].
    fn from(error: CallError) -> Self {
        match error {
            CallError::Credential(e) | CallError::Iam(e) => e,
        }
    }
}

/// IAM Credentials, called as the caller whose access tokens `source` mints. Cheap to clone; clones share the
/// cached access token.
#[derive(Clone)]
pub(crate) struct IamClient {
    pub(crate) source: Arc<dyn AccessTokenSource>,
    /// The API root (`https://iamcredentials.googleapis.com/`).
    pub(crate) root: Url,
    pub(crate) http: Http,
    pub(crate) clock: Arc<dyn Clock>,
    access: Arc<tokio::sync::Mutex<Option<(AccessToken, SystemTime)>>>,
}

impl fmt::Debug for IamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamClient")
            .field("iam_credentials", &self.root.as_str())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IamClient {
    /// Google's IAM Credentials, the default HTTP options and the system clock.
    pub(crate) fn new(source: Arc<dyn AccessTokenSource>) -> Self {
        Self {
            source,
            root: Endpoints::default().iam_credentials,
            http: Http::default(),
            clock: Arc::new(SystemClock),
            access: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The same client with `options`' HTTP client, timeout and retries.
    pub(crate) fn set_http(&mut self, options: HttpOptions) {
        self.http = Http::new(options);
    }

    /// `{root}v1/projects/-/serviceAccounts/{account}:{method}`, refusing an account that would change the path.
    pub(crate) fn method_url(&self, account: &str, method: &str) -> Result<Url, SourceError> {
        if account.is_empty() || account.contains(['/', '?', '#', ' ']) {
            return Err(SourceError::Config {
                reason: "the impersonation target is not a service-account email".into(),
            });
        }
        let mut url = self.root.clone();
        url.path_segments_mut()
            .map_err(|()| SourceError::Config {
                reason: "the IAM Credentials URL cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend([
                "v1",
                "projects",
                "-",
                "serviceAccounts",
                &format!("{account}:{method}"),
            ]);
        Ok(url)
    }

    /// The caller's access token, reused while it has more than [`ACCESS_TOKEN_MARGIN`] left. The flag says whether
    /// it was just minted.
    async fn bearer(&self) -> Result<(AccessToken, bool), SourceError> {
        let mut cached = self.access.lock().await;
        let now = self.clock.now();
        if let Some((token, expires_at)) = &*cached
            && now + ACCESS_TOKEN_MARGIN < *expires_at
        {
            return Ok((token.clone(), false));
        }
        let token = self.source.access_token(&Scopes::cloud_platform()).await?;
        // Without an expiry, the token is used once and not kept.
        *cached = token
            .expiry_from(now)
            .map(|expires_at| (token.clone(), expires_at));
        Ok((token, true))
    }

    /// `POST` `body` to `account`'s IAM `method`, authorised by the caller's access token; the 2xx body. Failures
    /// for which `retry_if` is true are retried with the HTTP options' [`RetryPolicy`](crate::RetryPolicy).
    pub(crate) async fn call(
        &self,
        account: &str,
        method: &str,
        body: &serde_json::Value,
        retry_if: fn(&SourceError) -> bool,
    ) -> Result<Vec<u8>, CallError> {
        let url = self.method_url(account, method).map_err(CallError::Iam)?;
        let send = |bearer: AccessToken| {
            let url = url.clone();
            async move {
                self.http
                    .send_if(
                        Endpoint::IamCredentials,
                        |client| {
                            client
                                .post(url.clone())
                                .bearer_auth(bearer.as_str())
                                .json(body)
                        },
                        retry_if,
                    )
                    .await
                    .map_err(CallError::Iam)
            }
        };
        let (bearer, fresh) = self.bearer().await.map_err(CallError::Credential)?;
        match send(bearer.clone()).await {
            Err(CallError::Iam(e))
                if e.status() == Some(http::StatusCode::UNAUTHORIZED) && !fresh =>
            {
                // The cached access token was revoked or expired early: forget it, here and in the source
                // credential (a `CachedSource` would hand the same one back), and try once more.
                *self.access.lock().await = None;
                self.source
                    .invalidate_access_token(&Scopes::cloud_platform(), &bearer);
                let (bearer, _) = self.bearer().await.map_err(CallError::Credential)?;
                send(bearer).await
            }
            other => other,
        }
    }
}
