//! [`RequireSignInLayer`]: the gate on protected routes.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::{Either, Ready, ready};
use http::{Method, Request, Response, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::pages;
use crate::return_to::sanitize_return_to;
use crate::session::SignInState;
use crate::signin::Shared;

/// Admits only signed-in, allowed users; the rest never reach the inner service.
///
/// | request | answer |
/// |---|---|
/// | signed in, allowed | passes, with [`SignedInUser`](crate::SignedInUser) and [`Caller`](idgate_core::Caller) in the extensions |
/// | signed out, a page navigation (`GET`/`HEAD` with `Sec-Fetch-Mode: navigate`, or without that header an `Accept` that names `text/html`) | `302` to the login route with `?return_to=` this path |
/// | signed out, anything else (`fetch`/XHR, `Accept: application/json`, `POST`, ...) | `401`, never a redirect (a script cannot follow one to Google); `{"error":"sign_in_required"}` when `Accept` names JSON |
/// | signed in, not on the allowlist | `403` page |
/// | the session store failed | `503` |
/// | no [`SignIn::layer`](crate::SignIn::layer) outside | `500` naming it (fail closed) |
/// | an [exempt path](Self::exempt_path) | passes, signed in or not (the user in the extensions when signed in and allowed) |
///
/// Made by [`SignIn::require`](crate::SignIn::require).
#[derive(Clone, Debug)]
pub struct RequireSignInLayer {
    shared: Arc<Shared>,
    exempt: Arc<HashSet<String>>,
}

impl RequireSignInLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            exempt: Arc::default(),
        }
    }

    /// Lets requests for exactly `path` (a health check, a public page) through without a signed-in user, as
    /// `[signin] exempt_paths` asks. Matched against the request path exactly, without the query.
    #[must_use]
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.exempt).insert(path.into());
        self
    }

    /// Whether `path` is exactly one of the [exempt paths](Self::exempt_path).
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt.contains(path)
    }
}

impl<S> Layer<S> for RequireSignInLayer {
    type Service = RequireSignIn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireSignIn {
            inner,
            shared: self.shared.clone(),
            exempt: self.exempt.clone(),
        }
    }
}

/// The service [`RequireSignInLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequireSignIn<S> {
    inner: S,
    shared: Arc<Shared>,
    exempt: Arc<HashSet<String>>,
}

impl<S> RequireSignIn<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether `req` is a browser loading a page (which can follow a redirect to Google), not a script.
pub(crate) fn is_page_navigation<B>(req: &Request<B>) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return false;
    }
    let headers = req.headers();
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes() == b"navigate",
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().starts_with("text/html"))),
    }
}

/// Whether `req`'s `Accept` names JSON (`application/json` or a `+json` type).
pub(crate) fn accepts_json<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case("application/json") || t.ends_with("+json")
        })
}

impl<S, ReqBody> Service<Request<ReqBody>> for RequireSignIn<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if self.exempt.contains(req.uri().path()) {
            return Either::Right(self.inner.call(req));
        }
        let refusal = match req.extensions().get::<SignInState>() {
            Some(SignInState::SignedIn) => return Either::Right(self.inner.call(req)),
            Some(SignInState::SignedOut) if is_page_navigation(&req) => {
                let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
                pages::to_login(&self.shared.login_path, &sanitize_return_to(here))
            }
            Some(SignInState::SignedOut) => pages::not_signed_in(accepts_json(&req)),
            Some(SignInState::NotAllowed(reason)) => {
                tracing::info!(target: "idgate::decision", reason = reason.as_str(), "signed-in user not allowed");
                pages::not_allowed(&self.shared.logout_path)
            }
            Some(SignInState::Unavailable) => pages::unavailable(),
            None => pages::missing_layer("RequireSignInLayer"),
        };
        Either::Left(ready(Ok(refusal)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri("/books");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn json_is_told_from_the_rest() {
        for accept in [
            "application/json",
            "text/plain, Application/JSON;q=0.5",
            "application/problem+json",
        ] {
            assert!(
                accepts_json(&req(Method::GET, &[("accept", accept)])),
                "{accept}"
            );
        }
        for accept in ["text/html", "*/*", "application/jsonp", "text/json-ish"] {
            assert!(
                !accepts_json(&req(Method::GET, &[("accept", accept)])),
                "{accept}"
            );
        }
        assert!(!accepts_json(&req(Method::GET, &[])));
    }

    #[test]
    fn navigation_is_told_from_scripts() {
        assert!(is_page_navigation(&req(
            Method::GET,
            &[("sec-fetch-mode", "navigate")]
        )));
        assert!(is_page_navigation(&req(
            Method::HEAD,
            &[("accept", "text/html,application/xhtml+xml")]
        )));
        assert!(is_page_navigation(&req(
            Method::GET,
            &[("accept", "application/json, text/html;q=0.1")]
        )));
        assert!(!is_page_navigation(&req(
            Method::GET,
            &[("sec-fetch-mode", "cors"), ("accept", "text/html")]
        )));
        assert!(!is_page_navigation(&req(
            Method::GET,
            &[("accept", "application/json")]
        )));
        assert!(!is_page_navigation(&req(Method::GET, &[])));
        assert!(!is_page_navigation(&req(
            Method::POST,
            &[("sec-fetch-mode", "navigate")]
        )));
    }
}
