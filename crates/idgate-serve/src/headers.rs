//! Hop-by-hop headers: what a proxy removes from a message before forwarding it, shared by idgate's two proxies
//! (`idgate-proxy` and the emulator's IAP proxy).

use http::header::{self, HeaderMap, HeaderName};

/// Whether [`remove_hop_by_hop`] removes `name` whatever `Connection` says: `Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` (RFC 9110 §7.6.1), and `Proxy-Authenticate` and
/// `Proxy-Authorization`. The last two are not in §7.6.1's list, but scoped to one hop all the same (§11.7.1, §11.7.2;
/// RFC 2616 listed them): neither proxy asks for proxy authentication, so a client's `Proxy-Authorization` is a
/// credential for some other proxy that the application has no business seeing, and an upstream's
/// `Proxy-Authenticate` would ask the client for credentials for a proxy that is not there.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authorization"
    )
}

/// Removes the hop-by-hop headers from `headers`, as a proxy must before forwarding a request or a response
/// (RFC 9110 §7.6.1):
///
/// - every header named in `Connection` (each comma-separated option that is a valid header name; options that are
///   not, such as a value with non-ASCII bytes, are skipped), read before `Connection` itself goes, so
///   `Connection: close, X-Secret` removes `X-Secret` too;
/// - `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`;
/// - `Proxy-Authenticate` and `Proxy-Authorization`: challenges and credentials between a client and the proxy it
///   talks to, never meant for the application behind it (neither of idgate's proxies asks for them).
///
/// Every value of a repeated header goes. Names are compared as `http` stores them (lower case). Other `Proxy-*`
/// headers, and `Proxy` (which CGI turns into the `HTTP_PROXY` setting), are not hop-by-hop and stay: a caller
/// that must keep them from its upstream removes them itself (`idgate-proxy` does).
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::CONNECTION, HeaderValue::from_static("close, X-Hop"));
/// headers.insert("x-hop", HeaderValue::from_static("1"));
/// headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
/// headers.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic dTpw"));
/// headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
///
/// idgate_serve::headers::remove_hop_by_hop(&mut headers);
/// assert_eq!(headers.len(), 1);
/// assert!(headers.contains_key(header::CONTENT_TYPE));
/// ```
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too: read them before `Connection` goes, and removed by name
    // (usually none or one: `keep-alive`, `close`), so a hostile list of many costs one removal each.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|option| HeaderName::from_bytes(option.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    remove_where(headers, is_hop_by_hop);
}

/// Removes every header whose name (lower case, as `http` stores it) satisfies `doomed`, with all its values.
///
/// One pass over the names the message has (usually about ten), then a removal only for those that go: where most of
/// the names a clean-up cares about are absent from most messages, this is cheaper than removing each by name, which
/// hashes the name and looks it up. Nothing is allocated when nothing goes.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-debug-a", HeaderValue::from_static("1"));
/// headers.append("x-debug-b", HeaderValue::from_static("2"));
/// headers.append("x-debug-b", HeaderValue::from_static("3"));
/// headers.insert("x-kept", HeaderValue::from_static("4"));
///
/// idgate_serve::headers::remove_where(&mut headers, |name| name.starts_with("x-debug-"));
/// assert_eq!(headers.len(), 1);
/// assert!(headers.contains_key("x-kept"));
/// ```
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn removes_every_listed_hop_by_hop_header_and_keeps_the_rest() {
        let mut h = HeaderMap::new();
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authenticate",
            "proxy-authorization",
            "content-type",
            "authorization",
            "proxy",
            "proxy-other",
        ] {
            h.insert(name, HeaderValue::from_static("x"));
        }
        remove_hop_by_hop(&mut h);
        assert_eq!(
            names(&h),
            ["authorization", "content-type", "proxy", "proxy-other"]
        );
    }

    #[test]
    fn removes_every_header_connection_names_in_every_connection_value() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive,X-One , x-two"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("x-three"));
        for name in ["x-one", "x-two", "x-three", "x-kept"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        // Every value of a named header goes.
        h.append("x-one", HeaderValue::from_static("2"));
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn connection_options_that_are_not_header_names_are_skipped() {
        let mut h = HeaderMap::new();
        let odd = HeaderValue::from_bytes(b"x-named, \xff\xfe, , bad name, x\"q")
            .expect("obs-text is a value");
        h.insert(header::CONNECTION, odd);
        h.insert("x-named", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn an_empty_map_stays_empty() {
        let mut h = HeaderMap::new();
        remove_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }
}
