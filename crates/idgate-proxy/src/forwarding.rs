//! The forwarding headers the upstream gets: `Host`, `X-Forwarded-*`, `Forwarded`, `X-Real-IP` (see the
//! [crate docs](crate#forwarding-headers)).

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::clean::remove_where;

/// The prefix of `X-Forwarded-Host`, `-Proto`, `-For`, `-Port`, `-Prefix`, ...
pub(crate) const FORWARDED_HEADER_PREFIX: &str = "x-forwarded-";

/// `X-Forwarded-Host`, `-Proto`, `-For` and `Forwarded`, the same way for HTTP/1.1 and HTTP/2.
pub(crate) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    authority: Option<HeaderValue>,
    peer: Option<SocketAddr>,
    trust_client: bool,
) {
    let forwarded_host = HeaderName::from_static("x-forwarded-host");
    let forwarded_proto = HeaderName::from_static("x-forwarded-proto");
    headers.remove(header::HOST);
    if !trust_client {
        // Proxy-fix middleware builds URLs from any of these (`-Port`, `-Prefix`, `X-Real-IP`): none is the client's
        // to set. `X-Forwarded-For` is a chain the peer is appended to.
        remove_where(headers, |name| {
            (name.starts_with(FORWARDED_HEADER_PREFIX) && name != "x-forwarded-for")
                || name == "x-real-ip"
                || name == "forwarded"
        });
    }
    if let Some(authority) = authority
        && !headers.contains_key(&forwarded_host)
    {
        headers.insert(forwarded_host, authority);
    }
    if !headers.contains_key(&forwarded_proto) {
        headers.insert(forwarded_proto, HeaderValue::from_static("http"));
    }
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}
