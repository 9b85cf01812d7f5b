//! Admission by the credential a request presents: [`ByCredentialLayer`], the `[admission] mode = "by_credential"`
//! of [`Layers`](crate::Layers).
//!
//! Stacked, [`RequireIdentityLayer`] and [`RequireIapLayer`] admit only a request that passes both. Some services
//! take several kinds of caller on the same routes instead: users through Identity-Aware Proxy, other services with
//! Google-signed ID tokens, people signed in with a session (idgate-signin's gate, plugged in with
//! [`ByCredentialLayer::no_credential`]). This layer sends each request to **one** gate, chosen by the credential it
//! presents, and that gate alone judges it with its own allowlist:
//!
//! 1. an IAP assertion (`x-goog-iap-jwt-assertion`), when the IAP gate is configured → [`RequireIapLayer`];
//! 2. else a bearer token: an `Authorization` or `X-Serverless-Authorization` header (whatever its value), or the
//!    trusted legacy `X-Appengine-Inbound-Appid` (non-empty), when the ID-token gate is configured →
//!    [`RequireIdentityLayer`];
//! 3. else (no credential): on a path exempt in the ID-token or the IAP gate, that gate (which lets it through);
//!    else the [`no_credential`](ByCredentialLayer::no_credential) gate when there is one (a sign-in gate: the
//!    session cookie, or `302` to login / `401`), else the first configured of the two (which answers `401`).
//!
//! **A credential that is presented and fails is a refusal, never a fall-through to another credential**: a bad
//! token next to a valid session cookie is a `401`, so a stolen cookie cannot rescue a forged token nor the other
//! way round, and each allowlist is only ever asked about the credential it was written for. The assertion comes
//! first because IAP adds it to every request it lets through and a client cannot remove it: behind IAP, a header
//! the client chose never steers a request away from IAP's judgement. Tokens come before the session cookie because a
//! browser attaches cookies by itself (to cross-site requests too) while a token is presented on purpose: a request
//! carrying one is a program's call and is judged as one.
//!
//! Which gate admitted a request shows in its extensions: [`CredentialHeader`](crate::CredentialHeader) for the
//! ID-token gate, [`IapUser`](idgate_core::identity::IapUser) for IAP, whatever the `no_credential` gate puts there
//! (idgate-signin: its `SignedInUser`); the [`Caller`](idgate_core::identity::Caller) is there in every case.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::body::Body;
//! use http::{Request, Response, StatusCode};
//! use idgate_core::{identity::Caller, policy::Allowlist};
//! use idgate_core::verify::{IapVerifier, OidcVerifier};
//! use idgate_emulator::{Emulator, TokenSpec};
//! use idgate_server::{ByCredentialLayer, RequireIapLayer, RequireIdentityLayer};
//! use tower::{ServiceBuilder, ServiceExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let google = Emulator::start().await?;
//! let oidc = OidcVerifier::builder().audience("https://jobs.example.com").keys_url(google.oidc_jwks_url()).build()?;
//! let jobs = Allowlist::builder().service_account("runner@billing-prod.iam.gserviceaccount.com").build()?;
//! let iap_audience = google.iap_audience_app_engine();
//! let iap = IapVerifier::builder().audience(iap_audience.clone()).keys_url(google.iap_jwks_url()).build()?;
//! let people = Allowlist::builder().user_email("alice@example.com").build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(ByCredentialLayer::new(
//!         Some(RequireIdentityLayer::new(oidc).allowlist(jobs)),
//!         Some(RequireIapLayer::new(iap).allowlist(people)),
//!     ))
//!     .service_fn(|request: Request<Body>| async move {
//!         let caller = request.extensions().get::<Caller>().map(ToString::to_string);
//!         Ok::<_, Infallible>(Response::new(Body::from(caller.unwrap_or_default())))
//!     });
//!
//! // The service account, by its ID token alone.
//! let token = google.mint(&TokenSpec::service_account("runner@billing-prod.iam.gserviceaccount.com")
//!     .audience("https://jobs.example.com"));
//! let request = Request::get("/").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! // Alice, by her IAP assertion alone.
//! let assertion = google.mint(&TokenSpec::iap_user("alice@example.com").audience(iap_audience.clone()));
//! let request = Request::get("/").header("x-goog-iap-jwt-assertion", &assertion).body(Body::empty())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! // A token that fails is refused (401): never tried as anything else.
//! let request = Request::get("/").header("authorization", "Bearer not-a-token").body(Body::empty())?;
//! assert_eq!(service.oneshot(request).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```

use std::fmt;
use std::task::{Context, Poll, ready};

use futures_util::future::{Either, Ready};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response, StatusCode};
use tower_layer::{Identity, Layer};
use tower_service::Service;

use crate::credential::{
    X_APPENGINE_INBOUND_APPID, X_GOOG_IAP_JWT_ASSERTION, X_SERVERLESS_AUTHORIZATION,
};
use crate::future::ResponseFuture;
use crate::{RequireIap, RequireIapLayer, RequireIdentity, RequireIdentityLayer};

/// Sends each request to the one gate its credential names; see the [module docs](self).
///
/// `N` is the gate for requests that present no credential ([`no_credential`](Self::no_credential)); without
/// one, such a request goes to the first configured of the ID-token and IAP gates.
#[derive(Clone)]
pub struct ByCredentialLayer<N = Identity> {
    identity: Option<RequireIdentityLayer>,
    iap: Option<RequireIapLayer>,
    no_credential: Option<N>,
}

impl<N> fmt::Debug for ByCredentialLayer<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByCredentialLayer")
            .field("identity", &self.identity)
            .field("iap", &self.iap)
            .field("no_credential", &self.no_credential.is_some())
            .finish()
    }
}

impl ByCredentialLayer {
    /// Chooses between the ID-token gate and the IAP gate (either may be absent) by the credential each request
    /// presents. A request that presents neither goes to the first configured one, unless
    /// [`no_credential`](Self::no_credential) names another gate.
    pub fn new(identity: Option<RequireIdentityLayer>, iap: Option<RequireIapLayer>) -> Self {
        Self {
            identity,
            iap,
            no_credential: None,
        }
    }
}

impl<N> ByCredentialLayer<N> {
    /// The gate for requests that present neither an IAP assertion nor a bearer token (and are not on a path the
    /// other gates exempt): idgate-signin's `RequireSignInLayer`, whose credential is the session cookie, or any
    /// layer that answers for itself. It must refuse what it does not admit: whatever it lets through reaches the
    /// inner service.
    #[must_use]
    pub fn no_credential<M>(self, gate: M) -> ByCredentialLayer<M> {
        ByCredentialLayer {
            identity: self.identity,
            iap: self.iap,
            no_credential: Some(gate),
        }
    }
}

impl<S, N> Layer<S> for ByCredentialLayer<N>
where
    S: Clone,
    N: Layer<S>,
{
    type Service = ByCredential<S, N::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        ByCredential {
            identity: self.identity.as_ref().map(|l| l.layer(inner.clone())),
            iap: self.iap.as_ref().map(|l| l.layer(inner.clone())),
            trust_legacy: self
                .identity
                .as_ref()
                .is_some_and(RequireIdentityLayer::trusts_legacy_header),
            no_credential: self.no_credential.as_ref().map(|l| l.layer(inner)),
        }
    }
}

/// The service [`ByCredentialLayer`] makes: each gate wraps its own clone of the inner service. Readiness is that of
/// every gate (as `tower::steer` does), so the one a request is sent to is always ready.
#[derive(Clone, Debug)]
pub struct ByCredential<S, N> {
    identity: Option<RequireIdentity<S>>,
    iap: Option<RequireIap<S>>,
    no_credential: Option<N>,
    trust_legacy: bool,
}

/// The gate a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branch {
    Identity,
    Iap,
    NoCredential,
    /// Nothing configured at all: refuse.
    Nothing,
}

/// Whether `headers` present a bearer credential for the ID-token gate: `Authorization` or
/// `X-Serverless-Authorization` with any value (the gate judges it; a blank or foreign one is a `401`, never a
/// reason to look at another credential), or the trusted legacy header when non-empty (as the gate reads it).
fn presents_bearer(headers: &HeaderMap, trust_legacy: bool) -> bool {
    headers.contains_key(AUTHORIZATION)
        || headers.contains_key(&X_SERVERLESS_AUTHORIZATION)
        || (trust_legacy
            && headers
                .get_all(&X_APPENGINE_INBOUND_APPID)
                .iter()
                .any(|v| !v.as_bytes().trim_ascii().is_empty()))
}

impl<S, N> ByCredential<S, N> {
    fn branch<B>(&self, request: &Request<B>) -> Branch {
        let headers = request.headers();
        if self.iap.is_some() && headers.contains_key(&X_GOOG_IAP_JWT_ASSERTION) {
            return Branch::Iap;
        }
        if self.identity.is_some() && presents_bearer(headers, self.trust_legacy) {
            return Branch::Identity;
        }
        let path = request.uri().path();
        if self
            .identity
            .as_ref()
            .is_some_and(|g| g.config.exempt.contains(path))
        {
            return Branch::Identity;
        }
        if self
            .iap
            .as_ref()
            .is_some_and(|g| g.config.exempt.contains(path))
        {
            return Branch::Iap;
        }
        if self.no_credential.is_some() {
            Branch::NoCredential
        } else if self.identity.is_some() {
            Branch::Identity
        } else if self.iap.is_some() {
            Branch::Iap
        } else {
            Branch::Nothing
        }
    }
}

/// The response future of [`ByCredential`].
pub type ByCredentialFuture<S, N, ReqBody, ResBody, E> = Either<
    ResponseFuture<S, ReqBody>,
    Either<<N as Service<Request<ReqBody>>>::Future, Ready<Result<Response<ResBody>, E>>>,
>;

impl<S, N, ReqBody, ResBody> Service<Request<ReqBody>> for ByCredential<S, N>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    N: Service<Request<ReqBody>, Response = Response<ResBody>, Error = S::Error>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ByCredentialFuture<S, N, ReqBody, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(gate) = &mut self.identity {
            ready!(gate.poll_ready(cx))?;
        }
        if let Some(gate) = &mut self.iap {
            ready!(gate.poll_ready(cx))?;
        }
        if let Some(gate) = &mut self.no_credential {
            ready!(gate.poll_ready(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let branch = self.branch(&request);
        match (
            branch,
            &mut self.identity,
            &mut self.iap,
            &mut self.no_credential,
        ) {
            (Branch::Identity, Some(gate), _, _) => Either::Left(gate.call(request)),
            (Branch::Iap, _, Some(gate), _) => Either::Left(gate.call(request)),
            (Branch::NoCredential, _, _, Some(gate)) => {
                Either::Right(Either::Left(gate.call(request)))
            }
            _ => {
                tracing::warn!(target: "idgate::decision", "no gate configured; refusing (500)");
                let mut response = Response::new(ResBody::from(
                    "idgate: ByCredentialLayer has no gate configured".to_owned(),
                ));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Either::Right(Either::Right(futures_util::future::ready(Ok(response))))
            }
        }
    }
}
