//! The two-step header clean-up (see the [crate docs](crate)): hop-by-hop headers and every spelling of an identity,
//! credential or forwarding header before the layers; unverified credentials after them.

use http::Request;
use http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};

use idgate_serve::headers::remove_where;
use idgate_server::CredentialHeader;

use crate::forwarding::FORWARDED_HEADER_PREFIX;
use crate::{CALLER_HEADER_PREFIX, IdgateCookies};

/// `X-Appengine-Inbound-Appid`: the legacy App Identity header.
static X_APPENGINE_INBOUND_APPID: HeaderName = HeaderName::from_static("x-appengine-inbound-appid");

/// `X-Goog-Iap-Jwt-Assertion`: IAP's signed assertion.
static X_GOOG_IAP_JWT_ASSERTION: HeaderName = HeaderName::from_static("x-goog-iap-jwt-assertion");

/// `Proxy`, which CGI turns into `HTTP_PROXY`, an outbound proxy setting ("httpoxy").
const PROXY_HEADER: &str = "proxy";

/// The prefix of every `Proxy-*` header.
const PROXY_HEADER_PREFIX: &str = "proxy-";

/// The first step of the clean-up (see the [crate docs](crate)): what no layer may see and no upstream may get.
pub(crate) fn clean_before_layers<B>(mut request: Request<B>) -> Request<B> {
    let headers = request.headers_mut();
    idgate_serve::headers::remove_hop_by_hop(headers);
    // `strip_hop_by_hop`'s `Proxy` headers and `strip_spoofable` in one pass.
    remove_where(headers, |name| is_proxy_header(name) || is_spoofable(name));
    request
}

/// Hop-by-hop headers ([`idgate_serve::headers::remove_hop_by_hop`]: RFC 9110 §7.6.1 and every header `Connection`
/// names). Every `Proxy-*` header (credentials and settings meant for this hop) and `Proxy` itself (which CGI turns
/// into `HTTP_PROXY`, an outbound proxy setting: "httpoxy") go too.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    idgate_serve::headers::remove_hop_by_hop(headers);
    remove_where(headers, is_proxy_header);
}

/// `Proxy` or any `Proxy-*` header.
fn is_proxy_header(name: &str) -> bool {
    name == PROXY_HEADER || name.starts_with(PROXY_HEADER_PREFIX)
}

/// IAP's unsigned identity headers (`X-Goog-Authenticated-User-Email` / `-Id`): forgeable by anyone who reaches the
/// service without passing through IAP, so a client's copies never reach the upstream.
const IAP_PLAIN_HEADER_PREFIX: &str = "x-goog-authenticated-user-";

/// App Engine's platform headers (`X-Appengine-Cron`, `-QueueName`, `-User-Email`, `-User-Is-Admin`,
/// `-Inbound-Appid`, ...): legacy apps admit cron and task handlers and administrators by them, and only App
/// Engine's front end (which strips client copies) makes them true.
const APP_ENGINE_HEADER_PREFIX: &str = "x-appengine-";

/// Names (already lower case, as `http` stores them) whose meaning an upstream could confuse with identity, by prefix.
const PROTECTED_PREFIXES: [&str; 4] = [
    CALLER_HEADER_PREFIX,
    IAP_PLAIN_HEADER_PREFIX,
    APP_ENGINE_HEADER_PREFIX,
    FORWARDED_HEADER_PREFIX,
];

/// ... and exactly: credentials, and the forwarding headers the proxy sets itself.
const PROTECTED_NAMES: [&str; 5] = [
    "authorization",
    "x-serverless-authorization",
    "x-goog-iap-jwt-assertion",
    "x-real-ip",
    "forwarded",
];

/// Whether `name` (lower case) is another spelling of a protected name: the same letters and digits, with any other
/// byte standing where the protected name has `-`. CGI, WSGI and PHP read `_` as `-`; lighttpd's CGI/FastCGI/SCGI
/// mapping reads every byte that is not a letter or digit as `_`, so `X.Idgate.Caller.Email` and
/// `X+Idgate+Caller+Email` reach the application as `HTTP_X_IDGATE_CALLER_EMAIL` too.
pub(crate) fn folds_to_protected(name: &str) -> bool {
    let folds_to = |target: &str, prefix: bool| {
        let n = name.len();
        let t = target.len();
        (if prefix { n >= t } else { n == t })
            && name
                .bytes()
                .zip(target.bytes())
                .all(|(a, b)| a == b || (b == b'-' && !a.is_ascii_alphanumeric()))
    };
    PROTECTED_PREFIXES.iter().any(|p| folds_to(p, true))
        || PROTECTED_NAMES.iter().any(|p| folds_to(p, false))
}

/// Whether `name` (lower case) is spelt with a byte other than a letter, a digit or `-`.
fn is_respelled(name: &str) -> bool {
    name.bytes()
        .any(|b| !b.is_ascii_alphanumeric() && b != b'-')
}

/// What no client may send in any spelling: our caller headers, and every other spelling of an identity, credential
/// or forwarding header (see the [crate docs](crate)). The canonical spellings are for the layers to read and for the
/// second step of the clean-up to judge.
fn is_spoofable(name: &str) -> bool {
    name.starts_with(CALLER_HEADER_PREFIX) || (is_respelled(name) && folds_to_protected(name))
}

/// After the layers: IAP's plain headers always go (they are set again from a verified assertion); IAP's signed
/// assertion stays only when idgate's IAP gate verified it and admitted the request (`iap_admitted`): only IAP
/// sends it, so a copy nobody checked is never the application's own credential, and an upstream that trusts it as
/// IAP's word (or is half-way through moving its checks to idgate) must not get one. The legacy header and the
/// bearer headers stay only when they are the credential idgate verified. App Engine's other platform headers stay
/// only behind App Engine's front end (`behind_app_engine`: the legacy header is trusted), which strips client
/// copies.
pub(crate) fn strip_unverified_credentials(
    headers: &mut HeaderMap,
    admitted_by: Option<CredentialHeader>,
    iap_admitted: bool,
    behind_app_engine: bool,
) {
    let app_id = X_APPENGINE_INBOUND_APPID.as_str();
    remove_where(headers, |name| {
        name.starts_with(IAP_PLAIN_HEADER_PREFIX)
            || (name == X_GOOG_IAP_JWT_ASSERTION.as_str() && !iap_admitted)
            || (name == app_id && admitted_by != Some(CredentialHeader::AppEngineInboundAppid))
            || (name != app_id && name.starts_with(APP_ENGINE_HEADER_PREFIX) && !behind_app_engine)
            || admitted_by
                .is_some_and(|verified| bearer(name).is_some_and(|bearer| bearer != verified))
    });
}

/// The bearer header `name` is, if it is one.
fn bearer(name: &str) -> Option<CredentialHeader> {
    [
        CredentialHeader::ServerlessAuthorization,
        CredentialHeader::Authorization,
    ]
    .into_iter()
    .find(|bearer| bearer.header_name().as_str() == name)
}

/// Makes the one `Cookie` header the upstream gets: every `Cookie` field the client sent joined with `"; "`, without
/// idgate's own cookies (the session cookie, every sign-in attempt cookie) when sign-in is on (`idgate`); other
/// cookies pass unchanged, in order.
///
/// Joined because HTTP/2 clients send each cookie as a field of its own (RFC 9113 §8.2.3), and an HTTP/1.1 upstream
/// must get them as one header ("MUST be concatenated ... using the two-octet delimiter of 0x3b, 0x20"); RFC 6265
/// §5.4 has HTTP/1.1 user agents send one `Cookie` header anyway. A single field is passed on untouched when sign-in
/// is off.
///
/// Names are compared as the session layer reads them (`tower-cookies` splits on `;`, trims, percent-decodes the
/// name: `idgate%5Fsession` *is* `idgate_session` to it), and ignoring case on top: removing a look-alike costs the
/// upstream nothing, forwarding a replayable session would not.
pub(crate) fn forward_cookies(headers: &mut HeaderMap, idgate: Option<IdgateCookies>) {
    let mut fields = headers.get_all(COOKIE).iter();
    match (fields.next(), fields.next()) {
        (None, _) => return,
        (Some(_), None) if idgate.is_none() => return,
        _ => {}
    }
    let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    let kept: Vec<&[u8]> = values
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|pair| {
            !pair.is_empty() && idgate.is_none_or(|idgate| !is_idgate_cookie(pair, idgate))
        })
        .collect();
    if kept.is_empty() {
        return;
    }
    // Pieces of valid header values joined by "; " make a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// Removes the upstream's `Set-Cookie` headers that would set one of idgate's own cookies: an upstream (or whoever
/// controls part of its output) must not plant a session ID in the browser (session fixation, login CSRF). Compared
/// like [`forward_cookies`]: the browser sends the name back as set, and the session layer percent-decodes it.
pub(crate) fn strip_idgate_set_cookies(headers: &mut HeaderMap, cookies: IdgateCookies) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for value in values {
        let pair = value
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        if is_idgate_cookie(pair.trim_ascii(), cookies) {
            tracing::warn!(target: "idgate::proxy", "the upstream tried to set an idgate cookie; removed");
        } else {
            headers.append(SET_COOKIE, value);
        }
    }
}

fn is_idgate_cookie(pair: &[u8], cookies: IdgateCookies) -> bool {
    let raw_name = pair
        .split(|b| *b == b'=')
        .next()
        .unwrap_or(pair)
        .trim_ascii();
    let name: Vec<u8> = percent_encoding::percent_decode(raw_name).collect();
    let name = name.trim_ascii();
    let session = cookies.session.as_bytes();
    let prefix = cookies.attempt_prefix.as_bytes();
    name.eq_ignore_ascii_case(session)
        || (name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix))
}

/// When `[inbound]` is configured, the bearer headers are idgate's: if another credential (an IAP assertion, a
/// session) admitted the request, no bearer was verified, and none reaches the upstream next to the caller headers.
pub(crate) fn strip_unverified_bearers(headers: &mut HeaderMap) {
    remove_where(headers, |name| bearer(name).is_some());
}
