//! Unit tests of the header clean-up and the upstream URL checks.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use idgate_server::{CredentialHeader, Layers};

use crate::clean::{
    clean_before_layers, folds_to_protected, strip_hop_by_hop, strip_unverified_credentials,
};
use crate::router;

/// The first step of the clean-up, on `headers` alone.
fn clean_before_layers_on(headers: &mut HeaderMap) {
    let mut request = http::Request::new(());
    *request.headers_mut() = std::mem::take(headers);
    *headers = clean_before_layers(request).into_parts().0.headers;
}

#[test]
fn strips_hop_by_hop_and_connection_named_headers() {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, x-secret-hop"),
    );
    h.insert("x-secret-hop", HeaderValue::from_static("1"));
    h.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-kept"));
}

#[test]
fn underscore_twins_of_protected_names_fold_and_others_do_not() {
    for twin in [
        "x.idgate.caller.email",
        "x+goog+authenticated+user+email",
        "x~appengine~inbound~appid",
        "x.serverless.authorization",
        "x_appengine_cron",
        "x.appengine.user.is.admin",
        "x_forwarded_port",
        "x_real_ip",
        "x_idgate_caller_email",
        "x-idgate_caller-kind",
        "x_goog_authenticated_user_email",
        "x_goog_authenticated_user_anything",
        "x_appengine_inbound_appid",
        "x_serverless_authorization",
        "x_goog_iap_jwt_assertion",
        "x_forwarded_host",
        "x_forwarded_proto",
        "x_forwarded_for",
    ] {
        assert!(folds_to_protected(twin), "{twin}");
    }
    for other in [
        "x_request_id",
        "x.request.id",
        "xappengine-cron",
        "x-idgatecaller-email",
        "x_serverless_authorizatio",
        "authorization_x",
        "x_goog_authenticated_use",
    ] {
        assert!(!folds_to_protected(other), "{other}");
    }
    let mut h = HeaderMap::new();
    h.insert("x_idgate_caller_email", HeaderValue::from_static("a@b.c"));
    h.insert("x_request_id", HeaderValue::from_static("1"));
    h.insert("x-appengine-inbound-appid", HeaderValue::from_static("app"));
    clean_before_layers_on(&mut h);
    assert_eq!(h.len(), 2);
    assert!(h.contains_key("x_request_id"));
    assert!(
        h.contains_key("x-appengine-inbound-appid"),
        "the layer decides on the real name"
    );
}

#[test]
fn only_the_verified_credential_stays() {
    let all = || {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer a"));
        h.insert(
            "x-serverless-authorization",
            HeaderValue::from_static("Bearer s"),
        );
        h.insert("x-appengine-inbound-appid", HeaderValue::from_static("app"));
        h.insert(
            "x-goog-authenticated-user-email",
            HeaderValue::from_static("accounts.google.com:x@y.z"),
        );
        h.insert(
            "x-goog-iap-jwt-assertion",
            HeaderValue::from_static("a.b.c"),
        );
        h
    };
    let kept = |admitted_by| {
        let mut h = all();
        let behind_app_engine = admitted_by == Some(CredentialHeader::AppEngineInboundAppid);
        strip_unverified_credentials(&mut h, admitted_by, false, behind_app_engine);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        kept(Some(CredentialHeader::ServerlessAuthorization)),
        ["x-serverless-authorization"]
    );
    assert_eq!(
        kept(Some(CredentialHeader::Authorization)),
        ["authorization"]
    );
    assert_eq!(
        kept(Some(CredentialHeader::AppEngineInboundAppid)),
        ["x-appengine-inbound-appid"]
    );
    assert_eq!(
        kept(None),
        ["authorization", "x-serverless-authorization"],
        "exempt paths and IAP-only: bearer headers are not idgate's"
    );
    // Admitted by the IAP gate: its assertion is the credential idgate verified, and the only one forwarded.
    let mut h = all();
    strip_unverified_credentials(&mut h, None, true, false);
    let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "authorization",
            "x-goog-iap-jwt-assertion",
            "x-serverless-authorization"
        ]
    );
    // App Engine's platform headers: only behind its front end, which strips client copies.
    for (behind_app_engine, kept) in [(false, 0), (true, 2)] {
        let mut h = HeaderMap::new();
        h.insert("x-appengine-cron", HeaderValue::from_static("true"));
        h.insert("x-appengine-user-is-admin", HeaderValue::from_static("1"));
        strip_unverified_credentials(&mut h, None, false, behind_app_engine);
        assert_eq!(h.len(), kept, "behind App Engine: {behind_app_engine}");
    }
}

#[test]
fn strips_every_spoofed_caller_header() {
    let mut h = HeaderMap::new();
    h.append(
        "x-idgate-caller-email",
        HeaderValue::from_static("admin@evil.example"),
    );
    h.append(
        "x-idgate-caller-email",
        HeaderValue::from_static("root@evil.example"),
    );
    h.insert("X-Idgate-Caller-Kind", HeaderValue::from_static("user"));
    h.insert("x-idgate-caller-anything", HeaderValue::from_static("x"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    clean_before_layers_on(&mut h);
    assert_eq!(h.len(), 1);
}

#[test]
fn rejects_unusable_upstreams() {
    let layers = Layers::new(None, None);
    for bad in [
        "https://example.com",
        "http://user:pw@127.0.0.1:1",
        "http://127.0.0.1:1/?q=1",
    ] {
        assert!(router(&bad.parse().unwrap(), &layers).is_err(), "{bad}");
    }
    assert!(router(&"http://127.0.0.1:1/base/".parse().unwrap(), &layers).is_ok());
}

#[test]
fn idgate_cookies_are_removed_and_the_rest_kept_byte_for_byte() {
    use crate::IdgateCookies;
    use crate::clean::{forward_cookies, strip_idgate_set_cookies};

    let cookies = IdgateCookies {
        session: "__Host-idgate_session",
        attempt_prefix: "__Host-idgate_signin_",
    };
    let mut h = HeaderMap::new();
    h.append(
        header::COOKIE,
        HeaderValue::from_bytes(
            b"a=\xff; __Host-idgate_session=1;__host-IDGATE_signin_x=2; %5F%5FHost-idgate_session=3; b=%zz; c",
        )
        .unwrap(),
    );
    h.append(
        header::COOKIE,
        HeaderValue::from_static(" __Host-idgate_session=4 ; "),
    );
    forward_cookies(&mut h, Some(cookies));
    let left: Vec<&[u8]> = h
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    assert_eq!(left, [&b"a=\xff; b=%zz; c"[..]]);

    // Without sign-in: one field passes untouched; several (HTTP/2 sends a field per cookie) become one header.
    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("a=1;b=2 ;; c"));
    forward_cookies(&mut h, None);
    assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
    assert_eq!(h[header::COOKIE], "a=1;b=2 ;; c");
    let mut h = HeaderMap::new();
    for cookie in ["a=1", "idgate_session=x", " b=2; c=3 "] {
        h.append(header::COOKIE, HeaderValue::from_static(cookie));
    }
    forward_cookies(&mut h, None);
    assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
    assert_eq!(h[header::COOKIE], "a=1; idgate_session=x; b=2; c=3");

    let mut h = HeaderMap::new();
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("__Host-idgate_session=x; Secure"),
    );
    h.append(header::SET_COOKIE, HeaderValue::from_static("=; Path=/"));
    h.append(header::SET_COOKIE, HeaderValue::from_static("theme=dark"));
    strip_idgate_set_cookies(&mut h, cookies);
    let left: Vec<&str> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(left, ["=; Path=/", "theme=dark"]);
}

/// Every request builds the forwarding future and moves it (into axum's box, among others): its size is memory
/// copied per request. Dialling and resending, rare, are boxed so that they do not make it several KiB (it was
/// 5.7 KiB with them inline, 2.2 KiB without, on Rust 1.95); the bound catches a cold path inlined again.
#[test]
fn the_forwarding_future_stays_small() {
    use std::sync::Arc;
    let authority: http::uri::Authority = "127.0.0.1:1".parse().unwrap();
    let pools = crate::pool::Pools::new("127.0.0.1".into(), 1, &authority, 4);
    let upstream = Arc::new(crate::upstream::Upstream {
        pool: pools.pool(),
        authority,
        base_path: String::new(),
        budget: Arc::new(tokio::sync::Semaphore::new(4)),
        options: crate::ProxyOptions::default(),
        behind_app_engine: false,
        inbound: true,
        idgate_cookies: None,
    });
    let request = http::Request::new(axum::body::Body::empty());
    let forwarding = crate::upstream::forward(axum::extract::State(upstream), request);
    let size = size_of_val(&forwarding);
    assert!(size <= 3 * 1024, "the forwarding future is {size} bytes");
}
