//! [`AccessTokenMiddleware`]: attaches OAuth 2.0 access tokens to requests to Google APIs sent through
//! reqwest-middleware 0.5.

use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::attach::{AccessConfig, access_setters};
use crate::error::AttachError;
use crate::scopes::Scopes;
use crate::source::{AccessToken, AccessTokenSource};

/// A reqwest-middleware [`Middleware`] that attaches `Authorization: Bearer <access token>` (marked sensitive) to
/// every request, for calling Google APIs (Cloud Storage, Pub/Sub, the Admin SDK, ...).
///
/// - **Hosts**: only Google's APIs (`https` to `googleapis.com` and its subdomains) get the token, plus hosts named
///   with [`allow_host`](Self::allow_host) (the emulator's `127.0.0.1`, a private endpoint); any other request
///   passes through untouched, with no token and no mint. An access token opens every API the account may
///   call, so a client that also calls other URLs must not hand them one ([`allow_any_host`](Self::allow_any_host)
///   turns the check off).
/// - **Scopes**: a [`Scopes`] in the request's extensions (`.with_extension(scopes)`), else the configured ones
///   ([`scopes`](Self::scopes), default `cloud-platform`).
/// - **Quota project**: `x-goog-user-project` is added when one is configured
///   ([`quota_project`](Self::quota_project), else the source's, e.g. ADC's `GOOGLE_CLOUD_QUOTA_PROJECT`) and
///   the request has none.
/// - **401**: the API refused the token (revoked, expired early): it is dropped from the cache
///   ([`AccessTokenSource::invalidate_access_token`]) and the request is sent once more with a fresh token, when
///   its body can be replayed (not a stream). Never more than once.
///
/// A request that already carries `Authorization` is sent as is unless
/// [`overwrite_existing`](Self::overwrite_existing) is set. A source failure fails the request with
/// `reqwest_middleware::Error::Middleware` holding an [`AttachError`].
///
/// Give it a [`CachedSource`](crate::CachedSource): an uncached source mints a token for every request.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_client::{AccessTokenMiddleware, Adc, CachedSource, Scopes};
///
/// let source = CachedSource::new(Adc::new()?);
/// let storage = Scopes::new(["https://www.googleapis.com/auth/devstorage.read_only"])?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AccessTokenMiddleware::new(source).scopes(storage))
///     .build();
/// let buckets = client
///     .get("https://storage.googleapis.com/storage/v1/b?project=my-project")
///     .send()
///     .await?;
/// // Other scopes for one request.
/// let admin = Scopes::new(["https://www.googleapis.com/auth/admin.directory.user.readonly"])?;
/// client.get("https://admin.googleapis.com/admin/directory/v1/users?customer=my_customer")
///     .with_extension(admin)
///     .send()
///     .await?;
/// # let _ = buckets;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AccessTokenMiddleware<S> {
    source: S,
    config: AccessConfig,
}

impl<S> AccessTokenMiddleware<S> {
    /// Attaches `cloud-platform` tokens from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            config: AccessConfig::default(),
        }
    }

    access_setters!();

    /// The token source.
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S: AccessTokenSource + 'static> AccessTokenMiddleware<S> {
    async fn token(&self, scopes: &Scopes) -> Result<AccessToken, AttachError> {
        match self.source.peek_access_token(scopes) {
            Some(token) => Ok(token),
            None => {
                self.source
                    .access_token(scopes)
                    .await
                    .map_err(|error| AttachError::AccessToken {
                        scopes: scopes.clone(),
                        error,
                    })
            }
        }
    }

    async fn attach(&self, req: &mut Request, scopes: &Scopes) -> Result<AccessToken, AttachError> {
        let token = self.token(scopes).await?;
        self.config
            .apply(req.headers_mut(), &token, self.source.quota_project())?;
        Ok(token)
    }
}

fn failed(req: &Request, error: AttachError) -> reqwest_middleware::Error {
    tracing::debug!(
        target: "idgate::client",
        host = req.url().host_str(),
        error = %idgate_core::ErrorChain(&error),
        "no access token attached"
    );
    reqwest_middleware::Error::middleware(error)
}

#[async_trait::async_trait]
impl<S: AccessTokenSource + 'static> Middleware for AccessTokenMiddleware<S> {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.config.wants_token(
            Some(req.url().scheme()),
            req.url().host_str(),
            req.headers(),
        ) {
            return next.run(req, extensions).await;
        }
        let scopes = self.config.scopes_for(extensions.get::<Scopes>()).clone();
        let token = match self.attach(&mut req, &scopes).await {
            Ok(token) => token,
            Err(error) => return Err(failed(&req, error)),
        };
        // A copy to replay after a 401, when the body allows it (`None` for streams).
        let replay = req.try_clone();
        let response = next.clone().run(req, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.source.invalidate_access_token(&scopes, &token);
        let Some(mut again) = replay else {
            return Ok(response);
        };
        tracing::debug!(
            target: "idgate::client",
            host = again.url().host_str(),
            "the API refused the access token (401); retrying once with a fresh one"
        );
        if let Err(error) = self.attach(&mut again, &scopes).await {
            return Err(failed(&again, error));
        }
        next.run(again, extensions).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::CachedSource;
    use crate::attach::test_source::Counting;

    /// Stands in for the network: records what it was sent, answers 401 to the tokens in `refuse`.
    #[derive(Default)]
    struct Api {
        seen: Mutex<Vec<(Option<String>, Option<String>)>>,
        refuse: Vec<&'static str>,
    }

    #[async_trait::async_trait]
    impl Middleware for Api {
        async fn handle(
            &self,
            req: Request,
            _: &mut Extensions,
            _: Next<'_>,
        ) -> reqwest_middleware::Result<Response> {
            let get = |name: &str| {
                req.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let auth = get("authorization");
            self.seen
                .lock()
                .unwrap()
                .push((auth.clone(), get("x-goog-user-project")));
            let refused = auth
                .as_deref()
                .is_some_and(|a| self.refuse.iter().any(|r| a.ends_with(r)));
            let status = if refused { 401 } else { 200 };
            Ok(Response::from(
                http::Response::builder()
                    .status(status)
                    .body(Vec::<u8>::new())
                    .unwrap(),
            ))
        }
    }

    fn client(
        mw: AccessTokenMiddleware<CachedSource<Arc<Counting>>>,
        api: Arc<Api>,
    ) -> reqwest_middleware::ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(mw)
            .with_arc(api)
            .build()
    }

    /// An access token is good for every Google API: it goes to Google's APIs over https and to hosts allowed by
    /// name, never to another host a client happens to call, which also gets no fresh token when it answers 401.
    #[tokio::test]
    async fn only_googles_apis_and_allowed_hosts_get_the_token() {
        let source = Arc::new(Counting::default());
        let api = Arc::new(Api {
            refuse: vec!["ya29.0"],
            ..Api::default()
        });
        let c = client(
            AccessTokenMiddleware::new(CachedSource::new(Arc::clone(&source)))
                .allow_host("127.0.0.1"),
            Arc::clone(&api),
        );
        for url in [
            "https://attacker.example/hook",
            "http://storage.googleapis.com/storage/v1/b",
            "https://googleapis.com.attacker.example/",
            "https://storage.googleapis.com.attacker.example/",
            "https://notgoogleapis.com/",
            "http://127.0.0.2:8080/",
        ] {
            let status = c.get(url).send().await.unwrap().status();
            assert_eq!(status, 200, "{url}");
        }
        assert_eq!(
            source.mints.load(Ordering::SeqCst),
            0,
            "nothing minted for other hosts"
        );
        assert!(
            api.seen
                .lock()
                .unwrap()
                .iter()
                .all(|(auth, _)| auth.is_none())
        );

        for url in [
            "https://storage.googleapis.com/storage/v1/b",
            "https://STORAGE.googleapis.com./x",
            "https://googleapis.com/",
            "http://127.0.0.1:8085/storage/v1/b",
        ] {
            api.seen.lock().unwrap().clear();
            c.get(url).send().await.unwrap();
            let seen = api.seen.lock().unwrap();
            assert!(
                seen.last()
                    .unwrap()
                    .0
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer ya29.")),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn attaches_caches_and_adds_the_quota_project() {
        let source = Arc::new(Counting {
            quota_project: Some("from-source".into()),
            ..Counting::default()
        });
        let api = Arc::new(Api::default());
        let c = client(
            AccessTokenMiddleware::new(CachedSource::new(Arc::clone(&source))),
            Arc::clone(&api),
        );
        c.get("https://storage.googleapis.com/a")
            .send()
            .await
            .unwrap();
        c.get("https://storage.googleapis.com/b")
            .send()
            .await
            .unwrap();
        // Per-request scopes: another entry, another token.
        c.get("https://storage.googleapis.com/c")
            .with_extension(Scopes::new(["x"]).unwrap())
            .send()
            .await
            .unwrap();
        // An existing Authorization is left alone.
        c.get("https://storage.googleapis.com/d")
            .header("authorization", "Bearer mine")
            .send()
            .await
            .unwrap();
        let seen = api.seen.lock().unwrap().clone();
        let auth: Vec<_> = seen.iter().map(|s| s.0.as_deref().unwrap()).collect();
        assert_eq!(
            auth,
            [
                "Bearer ya29.0",
                "Bearer ya29.0",
                "Bearer ya29.1",
                "Bearer mine"
            ]
        );
        assert_eq!(seen[0].1.as_deref(), Some("from-source"));
        assert_eq!(seen[3].1, None);

        // The adapter's quota project wins over the source's.
        let api = Arc::new(Api::default());
        let c = client(
            AccessTokenMiddleware::new(CachedSource::new(source)).quota_project("configured"),
            Arc::clone(&api),
        );
        c.get("https://storage.googleapis.com/")
            .send()
            .await
            .unwrap();
        assert_eq!(api.seen.lock().unwrap()[0].1.as_deref(), Some("configured"));
    }

    #[tokio::test]
    async fn a_401_drops_the_token_and_retries_once() {
        let source = Arc::new(Counting::default());
        let api = Arc::new(Api {
            refuse: vec!["ya29.0"],
            ..Api::default()
        });
        let c = client(
            AccessTokenMiddleware::new(CachedSource::new(Arc::clone(&source))),
            Arc::clone(&api),
        );
        let response = c
            .get("https://storage.googleapis.com/")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let auth: Vec<_> = api
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone().unwrap())
            .collect();
        assert_eq!(auth, ["Bearer ya29.0", "Bearer ya29.1"]);

        // Refused again and again: one retry, then the 401 is the answer (no loop).
        let api = Arc::new(Api {
            refuse: vec!["ya29.2", "ya29.3"],
            ..Api::default()
        });
        let c = client(
            AccessTokenMiddleware::new(CachedSource::new(Arc::new(Counting {
                mints: 2.into(),
                ..Counting::default()
            }))),
            Arc::clone(&api),
        );
        let response = c
            .get("https://storage.googleapis.com/")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(api.seen.lock().unwrap().len(), 2);
    }

    /// Hands out a token a header cannot carry (a line break: header injection if written raw).
    #[derive(Debug)]
    struct Broken;

    impl AccessTokenSource for Broken {
        fn access_token<'a>(
            &'a self,
            _: &'a Scopes,
        ) -> crate::BoxFuture<'a, Result<AccessToken, crate::SourceError>> {
            let token = AccessToken::new(
                "ya29.a\r\nx-injected: 1",
                Some(std::time::Duration::from_secs(3600)),
            );
            Box::pin(std::future::ready(Ok(token)))
        }
    }

    /// A source's token that cannot be a header value fails the request with `InvalidHeaderValue`; nothing is sent,
    /// and neither the error nor its `Debug` echoes the token.
    #[tokio::test]
    async fn a_token_a_header_cannot_carry_fails_the_request_and_sends_nothing() {
        let api = Arc::new(Api::default());
        let c = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(AccessTokenMiddleware::new(CachedSource::new(Broken)))
            .with_arc(Arc::clone(&api) as Arc<dyn Middleware>)
            .build();
        let error = c
            .get("https://storage.googleapis.com/a")
            .send()
            .await
            .unwrap_err();
        let reqwest_middleware::Error::Middleware(error) = error else {
            panic!("a middleware error, got {error:?}");
        };
        let attach = error.downcast_ref::<AttachError>().expect("an AttachError");
        assert!(
            matches!(attach, AttachError::InvalidHeaderValue),
            "{attach:?}"
        );
        for text in [format!("{error:#}"), format!("{error:?}")] {
            assert!(
                !text.contains("ya29") && !text.contains("injected"),
                "{text}"
            );
        }
        assert!(
            api.seen.lock().unwrap().is_empty(),
            "nothing reached the API"
        );
    }
}
