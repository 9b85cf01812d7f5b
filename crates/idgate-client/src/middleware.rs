//! [`IdTokenMiddleware`]: attaches ID tokens to requests sent through reqwest-middleware 0.5.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::attach::{AttachConfig, attach_setters};
use crate::audience::Audience;
use crate::error::AttachError;
use crate::source::IdTokenSource;

/// A reqwest-middleware [`Middleware`] that attaches `Authorization: Bearer <ID token>` (or
/// `X-Serverless-Authorization`) to every request.
///
/// The audience of a request is, in order: an [`Audience`] in the request's extensions
/// (`.with_extension(Audience::new(..))`), a per-host override ([`audience_for_host`](Self::audience_for_host)),
/// the fixed audience ([`audience`](Self::audience)), else the request URL's origin (`scheme://host[:port]`, what
/// Cloud Run expects by default).
///
/// A request that already carries the header is sent as is, without minting, unless
/// [`overwrite_existing`](Self::overwrite_existing) is set. A source failure fails the request with
/// `reqwest_middleware::Error::Middleware` holding an [`AttachError`] (downcast it to inspect).
///
/// Give it a [`CachedSource`](crate::CachedSource) (`source.cached()`): an uncached source mints a token for every
/// request.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_client::{Audience, IdTokenMiddleware, IdTokenSourceExt, MetadataServer, TokenHeader};
///
/// let middleware = IdTokenMiddleware::new(MetadataServer::new().cached())
///     .audience_for_host("api.example.com", "https://api.example.com/custom-audience")
///     .header(TokenHeader::XServerlessAuthorization);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
///
/// // Audience = https://jobs-abc123-uc.a.run.app (the origin).
/// client.get("https://jobs-abc123-uc.a.run.app/run").send().await?;
/// // Audience chosen for this request only.
/// client.get("https://fn.example.com/x").with_extension(Audience::new("https://fn.example.com/x")).send().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct IdTokenMiddleware<S> {
    source: S,
    config: AttachConfig,
}

impl<S> IdTokenMiddleware<S> {
    /// Attaches tokens from `source`, with the audience derived from each request's origin.
    pub fn new(source: S) -> Self {
        Self::from_config(source, AttachConfig::default())
    }

    /// Attaches tokens from `source` as `config` says.
    pub fn from_config(source: S, config: AttachConfig) -> Self {
        Self { source, config }
    }

    attach_setters!();

    /// The token source.
    pub fn source(&self) -> &S {
        &self.source
    }
}

impl<S: IdTokenSource + 'static> IdTokenMiddleware<S> {
    async fn attach(&self, req: &mut Request, extensions: &Extensions) -> Result<(), AttachError> {
        let Some(name) = self.config.header_for(req.headers()) else {
            return Ok(());
        };
        let audience = self
            .config
            .policy()
            .resolve_url(extensions.get::<Audience>(), req.url())?;
        let token = match self.source.peek(audience.as_str()) {
            Some(token) => token,
            None => self
                .source
                .id_token(audience.as_str())
                .await
                .map_err(|error| AttachError::Source {
                    audience: audience.clone(),
                    error,
                })?,
        };
        req.headers_mut().insert(name, token.bearer_header());
        Ok(())
    }
}

#[async_trait::async_trait]
impl<S: IdTokenSource + 'static> Middleware for IdTokenMiddleware<S> {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if let Err(error) = self.attach(&mut req, extensions).await {
            tracing::debug!(
                target: "idgate::client",
                host = req.url().host_str(),
                error = %idgate_core::ErrorChain(&error),
                "no ID token attached"
            );
            return Err(reqwest_middleware::Error::middleware(error));
        }
        next.run(req, extensions).await
    }
}
