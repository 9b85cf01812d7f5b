//! What the sign-in benches share: signing in once through the app (no network but the emulator's consent), so
//! the measured requests carry a real session cookie.

use axum::Router;
use axum::body::Body;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Request, StatusCode};
use idgate_emulator::Emulator;
use tower::ServiceExt as _;
use url::Url;

/// Signs alice@example.com in through `app` (login → the emulator's consent → callback, by tower `oneshot`) and
/// returns the session cookie (`name=value`) named `cookie_name`, checked to answer 200 on each of `check_paths`.
pub(crate) async fn sign_in_once(
    app: &Router,
    emulator: &Emulator,
    cookie_name: &str,
    check_paths: &[&str],
) -> String {
    let call = |uri: &str, cookie: Option<&str>| {
        let mut req = Request::get(uri);
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).expect("request"))
    };
    let login = call("/auth/login", None).await.expect("login");
    let attempt = first_cookie(&login);
    let authorization: Url = login.headers()[LOCATION]
        .to_str()
        .expect("location")
        .parse()
        .expect("authorization URL");
    let back = emulator
        .consent(&authorization, "alice@example.com")
        .expect("consent");
    let path = &back.as_str()[back.origin().ascii_serialization().len()..];
    let callback = call(path, Some(&attempt)).await.expect("callback");
    assert_eq!(callback.status(), StatusCode::FOUND);
    let session = callback
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(cookie_name))
        .expect("a session cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    for path in check_paths {
        let response = call(path, Some(&session)).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK, "signed in");
    }
    session
}

/// The first `Set-Cookie`'s `name=value`.
pub(crate) fn first_cookie(response: &http::Response<Body>) -> String {
    response.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned()
}
