//! The login, callback and logout routes.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use idgate_core::identity::SessionUser;
use idgate_core::{Caller, Decision};
use tower_cookies::{Cookie, Cookies};
use tower_sessions::Session;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::error::SignInError;
use crate::flow::{
    ATTEMPT_TTL, GOOGLE_ISSUER, LoginOptions, binding_cookie_name, check_flow_claims,
    profile_claims, sanitize_error_code, sha256, unix_secs,
};
use crate::pages;
use crate::return_to::sanitize_return_to;
use crate::session::{StoredUser, USER_KEY, expiry_at};
use crate::signin::{MAX_ATTEMPTS_PER_BROWSER, Shared};

pub(crate) fn router<S: Clone + Send + Sync + 'static>(shared: &Arc<Shared>) -> Router<S> {
    let (login, callback, logout) = (shared.clone(), shared.clone(), shared.clone());
    // Each route runs in its own span (see the crate docs' Tracing section): never a code, state or cookie in it.
    Router::new()
        .route(
            &shared.login_path,
            get(move |req: Request| {
                let span = tracing::info_span!(target: SPAN_TARGET, "idgate.signin.login", idgate.outcome = Empty, idgate.reason = Empty, otel.status_code = Empty);
                async move { login_route(&login, req.into_parts().0).await }.instrument(span)
            }),
        )
        .route(
            shared.redirect_url.path(),
            get(move |req: Request| {
                let span = tracing::info_span!(target: SPAN_TARGET, "idgate.signin.callback", idgate.outcome = Empty, idgate.reason = Empty, otel.status_code = Empty);
                async move { callback_route(&callback, req.into_parts().0).await }.instrument(span)
            }),
        )
        .route(
            &shared.logout_path,
            post(move |req: Request| {
                let span = tracing::info_span!(target: SPAN_TARGET, "idgate.signin.logout", idgate.outcome = Empty, idgate.reason = Empty, otel.status_code = Empty);
                async move { logout_route(&logout, req.into_parts().0).await }.instrument(span)
            }),
        )
}

/// The tracing target of the sign-in routes' spans.
pub(crate) const SPAN_TARGET: &str = "idgate::signin";

/// Records a route's success on its span (the current one).
fn record_ok() {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("idgate.outcome", "ok");
    }
}

/// Records a route's failure on its span: `reject` for a 4xx, `error` (and `otel.status_code = ERROR`) for a 5xx,
/// with the error's stable reason.
fn record_failure(error: &SignInError) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let server_error = error.status().is_server_error();
    span.record(
        "idgate.outcome",
        if server_error { "error" } else { "reject" },
    );
    span.record("idgate.reason", error.reason());
    if server_error {
        span.record("otel.status_code", "ERROR");
    }
}

/// A query string's parameters; a name given twice is ambiguous and counts as absent-and-wrong.
struct Params<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Params<'a> {
    fn parse(query: Option<&'a str>) -> Self {
        Self(url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).collect())
    }

    /// `Ok(None)` when absent, `Err(())` when given more than once.
    fn single(&self, name: &str) -> Result<Option<&str>, ()> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v)),
            (Some(_), Some(_)) => Err(()),
        }
    }
}

fn attempt_cookie(
    shared: &Shared,
    name: String,
    value: String,
    max_age: time::Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .secure(shared.secure)
        .same_site(tower_cookies::cookie::SameSite::Lax)
        .path("/")
        .max_age(max_age)
        .build()
}

/// `GET /auth/login?return_to=/path[&login_hint=email]`: starts an attempt and sends the browser to Google.
async fn login_route(shared: &Shared, req: Parts) -> Response {
    let Some(cookies) = req.extensions.get::<Cookies>() else {
        return pages::missing_layer("the login route");
    };
    let params = Params::parse(req.uri.query());
    let return_to = params
        .single("return_to")
        .ok()
        .flatten()
        .map_or(Cow::Borrowed("/"), sanitize_return_to)
        .into_owned();
    // A hint is only a convenience: a malformed one is dropped, not refused.
    let login_hint = params
        .single("login_hint")
        .ok()
        .flatten()
        .filter(|h| h.len() <= 320 && h.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    // One browser keeps a few attempts at once (one per tab); past that the older ones are dropped, so neither
    // its cookies nor this server's memory grow with a script that calls login in a loop.
    let mine: Vec<Cookie<'static>> = cookies
        .list()
        .into_iter()
        .filter(|c| c.name().starts_with(shared.attempt_cookie_prefix))
        .map(Cookie::into_owned)
        .collect();
    if mine.len() >= MAX_ATTEMPTS_PER_BROWSER {
        for old in mine {
            cookies.remove(attempt_cookie(
                shared,
                old.name().to_owned(),
                String::new(),
                time::Duration::ZERO,
            ));
        }
    }
    let started = match shared
        .start(LoginOptions {
            return_to,
            login_hint,
        })
        .await
    {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(target: "idgate::signin", reason = error.reason(), error = %idgate_core::ErrorChain(&error), "sign-in could not start");
            record_failure(&error);
            return pages::failed(&error, &shared.login_path);
        }
    };
    let ttl = time::Duration::seconds(i64::try_from(ATTEMPT_TTL.as_secs()).unwrap_or(600));
    cookies.add(attempt_cookie(
        shared,
        started.cookie_name,
        started.binding,
        ttl,
    ));
    record_ok();
    pages::redirect(StatusCode::FOUND, started.authorization_url.as_str())
}

/// `GET /auth/callback?code=…&state=…[&iss=…]` (or `?error=access_denied&state=…`).
async fn callback_route(shared: &Shared, req: Parts) -> Response {
    let (Some(cookies), Some(session)) = (
        req.extensions.get::<Cookies>(),
        req.extensions.get::<Session>(),
    ) else {
        return pages::missing_layer("the callback route");
    };
    match complete(shared, &req, cookies, session).await {
        Ok(return_to) => {
            tracing::info!(target: "idgate::signin", "signed in");
            record_ok();
            crate::metrics::signed_in();
            pages::redirect(StatusCode::FOUND, &return_to)
        }
        Err(error) => {
            let chain = idgate_core::ErrorChain(&error);
            crate::metrics::callback_failed(error.reason());
            record_failure(&error);
            if error.status().is_server_error() {
                tracing::warn!(target: "idgate::signin", reason = error.reason(), error = %chain, "sign-in failed");
            } else {
                tracing::info!(target: "idgate::signin", reason = error.reason(), error = %chain, "sign-in refused");
            }
            pages::failed(&error, &shared.login_path)
        }
    }
}

async fn complete(
    shared: &Shared,
    req: &Parts,
    cookies: &Cookies,
    session: &Session,
) -> Result<String, SignInError> {
    let params = Params::parse(req.uri.query());
    let state = params
        .single("state")
        .ok()
        .flatten()
        .ok_or(SignInError::MissingState)?;
    // The binding cookie goes whatever happens next: the attempt is spent.
    let cookie_name = binding_cookie_name(shared.attempt_cookie_prefix, &sha256(state.as_bytes()));
    let attempt = shared
        .redeem(state, |name| {
            cookies.get(name).map(|c| c.value().to_owned())
        })
        .await;
    // ... unless the store could not be asked: then nothing was spent, and the same callback may be tried again.
    if !matches!(attempt, Err(SignInError::Session(_))) && cookies.get(&cookie_name).is_some() {
        cookies.remove(attempt_cookie(
            shared,
            cookie_name,
            String::new(),
            time::Duration::ZERO,
        ));
    }
    let attempt = attempt?;
    match params.single("iss") {
        Ok(None) => {}
        Ok(Some(iss)) if iss == GOOGLE_ISSUER => {}
        _ => return Err(SignInError::WrongIssuerParameter),
    }
    match params.single("error") {
        Ok(None) => {}
        Ok(Some("access_denied")) => return Err(SignInError::AccessDenied),
        Ok(Some(other)) => return Err(SignInError::AuthorizationError(sanitize_error_code(other))),
        Err(()) => return Err(SignInError::AuthorizationError("unknown".to_owned())),
    }
    let code = params
        .single("code")
        .ok()
        .flatten()
        .filter(|c| !c.is_empty())
        .ok_or(SignInError::MissingCode)?;

    let tokens = shared.exchange(code, &attempt.verifier).await?;
    let id_token = tokens
        .id_token
        .as_deref()
        .ok_or(SignInError::MissingIdToken)?;
    let verified = shared
        .verifier
        .verify(id_token)
        .await
        .map_err(SignInError::IdToken)?;
    let claims = profile_claims(id_token)?;
    check_flow_claims(&claims, &shared.client_id, &attempt.nonce)?;
    if let Some(required) = &shared.hosted_domain {
        let hd = verified.hosted_domain().map(str::to_ascii_lowercase);
        if hd.as_deref() != Some(required.as_str()) {
            return Err(SignInError::WrongHostedDomain);
        }
    }
    let user = SessionUser::from_id_token(&verified).map_err(SignInError::Identity)?;
    if let Decision::Deny { reason } = shared.allowlist.decide(&Caller::from_session(&user)) {
        return Err(SignInError::NotAllowed(reason));
    }

    let mut profile = claims;
    if shared.fetch_userinfo
        && let Some(access_token) = tokens.access_token.as_deref()
    {
        match shared.userinfo(access_token).await {
            Some(info) if info.sub == user.subject() => {
                profile.name = info.name.or(profile.name);
                profile.given_name = info.given_name.or(profile.given_name);
                profile.family_name = info.family_name.or(profile.family_name);
                profile.picture = info.picture.or(profile.picture);
            }
            Some(_) => {
                tracing::warn!(target: "idgate::signin", "userinfo names another subject; ignored");
            }
            None => {}
        }
    }

    let now = unix_secs(shared.clock.now());
    let lifetime = i64::try_from(shared.lifetime.as_secs()).unwrap_or(i64::MAX);
    let idle = i64::try_from(shared.idle.as_secs()).unwrap_or(i64::MAX);
    let stored = StoredUser {
        user,
        name: profile.name,
        given_name: profile.given_name,
        family_name: profile.family_name,
        picture: profile.picture,
        signed_in_at: now,
        expires_at: now.saturating_add(lifetime),
        seen_at: now,
    };
    // Session fixation: whatever session this browser had (and whatever it held), the signed-in one is new.
    shared.forget_if_signed_in(session).await;
    session.clear().await;
    session.cycle_id().await.map_err(SignInError::Session)?;
    session
        .insert(USER_KEY, &stored)
        .await
        .map_err(SignInError::Session)?;
    crate::tokens::keep_at_sign_in(shared, session, stored.user.subject(), tokens).await?;
    session.set_expiry(Some(expiry_at(
        stored.expires_at.min(now.saturating_add(idle)),
    )));
    // Written here, not only by the session layer after the response: a store that fails now gets the user a
    // "try again" page (503, which the session layer does not save), not a redirect into a session that does not
    // exist. The record is one write: it exists whole or not at all.
    session.save().await.map_err(SignInError::Session)?;
    let id = session
        .id()
        .ok_or(SignInError::Session(tower_sessions::session::Error::Store(
            tower_sessions::session_store::Error::Backend("the saved session has no ID".into()),
        )))?;
    let index = crate::shared_state::user_key(&shared.client_id, stored.user.subject());
    if let Err(e) = shared.index_session(&index, id).await {
        // A session "sign out everywhere" could not find must not exist: undo it.
        shared.forget(session);
        if let Err(e) = session.flush().await {
            tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not undo a session left out of the index");
        }
        return Err(SignInError::Session(tower_sessions::session::Error::Store(
            e,
        )));
    }
    Ok(sanitize_return_to(&attempt.return_to).into_owned())
}

/// Whether a logout request comes from this site: `Origin` equal to the app's origin, or, without `Origin`,
/// `Sec-Fetch-Site: same-origin`. Browsers send one or the other on every POST; a request with neither is refused.
pub(crate) fn is_same_origin(req: &Parts, origin: &str) -> bool {
    let headers = &req.headers;
    match headers.get(header::ORIGIN) {
        Some(got) => got.as_bytes() == origin.as_bytes(),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"same-origin"),
    }
}

/// `POST /auth/logout[?everywhere=1]`: revoke at Google (best effort), delete the session (with `everywhere`, every
/// session of the user), clear the site's cookies, go home. When the store fails the session may live on, so the
/// answer is a "try again" page (503), not a pretended logout.
async fn logout_route(shared: &Shared, req: Parts) -> Response {
    if !is_same_origin(&req, &shared.origin) {
        tracing::info!(target: "idgate::signin", reason = "cross_site_logout", "logout refused");
        record_failure(&SignInError::CrossSiteLogout);
        return pages::failed(&SignInError::CrossSiteLogout, &shared.login_path);
    }
    let Some(session) = req.extensions.get::<Session>() else {
        return pages::missing_layer("the logout route");
    };
    let everywhere = matches!(
        Params::parse(req.uri.query()).single("everywhere"),
        Ok(Some("1" | "true"))
    );
    let unavailable = |e: tower_sessions::session::Error| {
        tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "session store failed at logout");
        let error = SignInError::Session(e);
        record_failure(&error);
        pages::failed(&error, &shared.login_path)
    };
    let user = match session.get::<StoredUser>(USER_KEY).await {
        Ok(user) => user,
        Err(e) => return unavailable(e),
    };
    let token = crate::tokens::revocable(shared, session).await;
    // Every other session first, this one last: if the store fails half-way, this browser is still signed in and
    // can ask again (ended first, a retry would find nobody to sign out, and the other sessions would live on).
    if everywhere && let Some(user) = &user {
        match shared.sign_out_everywhere(user.user.subject()).await {
            Ok(ended) => {
                tracing::info!(target: "idgate::signin", ended, "signed out everywhere");
            }
            Err(SignInError::Session(e)) => return unavailable(e),
            Err(_) => {}
        }
    }
    shared.forget_if_signed_in(session).await;
    if let Err(e) = session.flush().await {
        return unavailable(e);
    }
    if let Some(token) = token {
        shared.revoke(&token).await;
    }
    tracing::info!(target: "idgate::signin", "signed out");
    record_ok();
    crate::metrics::signed_out(everywhere);
    let mut response = pages::redirect(StatusCode::SEE_OTHER, "/");
    response
        .headers_mut()
        .insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    response
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use axum::body::Body;
    use tower::ServiceExt as _;
    use tower_sessions::session::Id;

    use super::*;
    use crate::{ClientSecret, SignIn};

    /// A visitor's session (a cart) logged out leaves no forgotten mark: the marks are bounded, and anonymous
    /// requests must not push out the ones that keep signed-in sessions ended. (That a signed-in session's logout is
    /// marked, the flow tests' logouts during a held save show: they fail without the mark.)
    #[tokio::test]
    async fn ending_a_session_nobody_signed_in_to_marks_nothing() {
        let signin = SignIn::builder(
            "123-abc.apps.googleusercontent.com",
            ClientSecret::new("GOCSPX-test-secret"),
            "http://127.0.0.1:8080/auth/callback".parse().unwrap(),
        )
        .allowlist(
            idgate_core::Allowlist::builder()
                .user_domain("example.com")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
        let app = Router::new()
            .route(
                "/cart",
                get(|session: Session| async move {
                    session.insert("cart", ["a book"]).await.unwrap();
                    "cart"
                }),
            )
            .merge(signin.router())
            .layer(signin.layer());

        let cart = app
            .clone()
            .oneshot(Request::get("/cart").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let set_cookie = cart.headers()[header::SET_COOKIE].to_str().unwrap();
        let value = set_cookie
            .strip_prefix("idgate_session=")
            .and_then(|rest| rest.split(';').next())
            .expect("the session cookie");
        let id = Id::from_str(value).unwrap();

        let logout = app
            .oneshot(
                Request::post("/auth/logout")
                    .header(header::COOKIE, format!("idgate_session={value}"))
                    .header(header::ORIGIN, "http://127.0.0.1:8080")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::SEE_OTHER);
        assert!(!signin.shared.recent.was_forgotten(&id));
    }
}
