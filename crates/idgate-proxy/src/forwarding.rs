//! The forwarding headers the upstream gets: `Host`, `X-Forwarded-*`, `Forwarded`, `X-Real-IP` (see the
//! [crate docs](crate#forwarding-headers)).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use idgate_serve::headers::remove_where;

/// The prefix of `X-Forwarded-Host`, `-Proto`, `-For`, `-Port`, `-Prefix`, ...
pub(crate) const FORWARDED_HEADER_PREFIX: &str = "x-forwarded-";

/// `X-Forwarded-Host`, `-Proto`, `-For` and `Forwarded`, the same way for HTTP/1.1 and HTTP/2. The client's `Host`
/// goes too: the pool sets the upstream's.
pub(crate) fn set_forwarding_headers(
    headers: &mut HeaderMap,
    authority: Option<HeaderValue>,
    peer: Option<SocketAddr>,
    trust_client: bool,
) {
    let forwarded_host = HeaderName::from_static("x-forwarded-host");
    let forwarded_proto = HeaderName::from_static("x-forwarded-proto");
    // Proxy-fix middleware builds URLs from any of these (`-Port`, `-Prefix`, `X-Real-IP`): none is the client's to
    // set, unless a trusted front end set them. `X-Forwarded-For` is a chain the peer is appended to.
    remove_where(headers, |name| {
        name == header::HOST.as_str()
            || (!trust_client
                && ((name.starts_with(FORWARDED_HEADER_PREFIX) && name != "x-forwarded-for")
                    || name == "x-real-ip"
                    || name == "forwarded"))
    });
    // Untrusted, they are gone by now: no need to look.
    if let Some(authority) = authority
        && (!trust_client || !headers.contains_key(&forwarded_host))
    {
        headers.insert(forwarded_host, authority);
    }
    if !trust_client || !headers.contains_key(&forwarded_proto) {
        headers.insert(forwarded_proto, HeaderValue::from_static("http"));
    }
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer.ip());
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let mut value = String::with_capacity(64);
    if let Some(existing) = headers.get(&name).and_then(|v| v.to_str().ok()) {
        value.push_str(existing);
        value.push_str(", ");
    }
    push_ip(&mut value, peer);
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// Appends `ip` as `Display` writes it. An IPv4 address (the usual peer) is written digit by digit: through the
/// formatting machinery it cost about 1,300 instructions, more than the rest of this module per request.
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(ip) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn ip_addresses_are_written_as_display_writes_them() {
        let samples = [0_u8, 1, 9, 10, 42, 99, 100, 101, 199, 200, 255];
        for a in samples {
            for b in samples {
                let ip = IpAddr::V4(Ipv4Addr::new(a, b, 255 - a, 100 - b.min(100)));
                let mut written = String::new();
                push_ip(&mut written, ip);
                assert_eq!(written, ip.to_string());
            }
        }
        for ip in [
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            "2001:db8::8a2e:370:7334".parse().unwrap(),
        ] {
            let mut written = String::from("x, ");
            push_ip(&mut written, ip);
            assert_eq!(written, format!("x, {ip}"));
        }
    }

    #[test]
    fn the_peer_is_appended_to_the_chain() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        append_forwarded_for(&mut headers, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, IpAddr::V4(Ipv4Addr::new(192, 168, 10, 200)));
        assert_eq!(headers["x-forwarded-for"], "192.168.10.200");
    }
}
