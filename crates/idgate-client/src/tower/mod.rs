//! [`AddIdTokenLayer`]: attaches ID tokens to requests sent through any tower client (a hyper-util client, a tonic
//! channel), following tower-http's layer / service / future split. [`AddAccessTokenLayer`] does the same with
//! OAuth 2.0 access tokens, for Google APIs (see its documentation).
//!
//! The audience of a request is, in order: an [`Audience`](crate::Audience) in the request's extensions, a
//! per-host override, the layer's fixed audience, else the request URI's origin when it is absolute
//! (`scheme://host[:port]`; hyper-util clients send absolute URIs). A request that already has the header is sent as
//! is unless [`AddIdTokenLayer::overwrite_existing`] is set.
//!
//! On the warm path (a fresh token in a [`CachedSource`](crate::CachedSource)) the layer attaches the token and
//! calls the inner service directly: no allocation, no extra poll. Otherwise it mints first, holding the inner
//! service it polled ready, as tower-http's `AsyncRequireAuthorization` does.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use idgate_client::{AddIdTokenLayer, Audience, IdTokenSourceExt, StaticToken, TokenHeader};
//! use idgate_core::token::IdToken;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln").unwrap();
//! let layer = AddIdTokenLayer::new(StaticToken::new(token).cached())
//!     .header(TokenHeader::XServerlessAuthorization);
//! let svc = ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(req.headers().get("x-serverless-authorization").cloned())
//! });
//!
//! // The audience is the URI's origin here: https://api.example.com
//! let req = http::Request::get("https://api.example.com/v1/jobs").body(()).unwrap();
//! let header = svc.clone().oneshot(req).await.unwrap().unwrap();
//! assert!(header.is_sensitive());
//!
//! // A relative URI with no configured audience cannot get a token.
//! let err = svc.oneshot(http::Request::get("/v1").body(()).unwrap()).await.unwrap_err();
//! assert!(err.attach_error().unwrap().is_no_audience());
//! # }
//! ```

mod access;
mod error;
mod future;
mod layer;
mod service;

pub use access::{
    AddAccessToken, AddAccessTokenError, AddAccessTokenLayer, CloneBody, NoReplay, ReplayRequest,
};
pub use error::AddIdTokenError;
pub use future::ResponseFuture;
pub use layer::AddIdTokenLayer;
pub use service::AddIdToken;
