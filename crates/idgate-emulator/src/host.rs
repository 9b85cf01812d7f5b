//! The Host rule: the emulator and its IAP proxy answer only requests addressed to them by a loopback name.
//!
//! Both mint credentials for whoever asks. Binding to loopback keeps other machines out, but not a web page
//! the developer opens: with DNS rebinding, `evil.example` first resolves to the attacker's server (which
//! serves a script) and then to `127.0.0.1`, so the browser sends the script's requests to the emulator and,
//! the origin being the same, lets the script read the minted tokens. What the browser cannot change is the
//! authority it sends: `Host: evil.example[:port]` (or `:authority` in HTTP/2). So a request is answered
//! only when every authority it carries names the emulator:
//!
//! - `localhost` (any case), an IPv4 loopback literal (`127.0.0.0/8`: an address literal involves no DNS,
//!   so it cannot be rebound, and every such address reaches only this machine), or `[::1]`; any port;
//! - the literal of the address the emulator is bound to (so its own URLs work when it is bound elsewhere);
//! - the names and addresses given to [`crate::EmulatorBuilder::allow_host`].
//!
//! Everything else is refused with `403 Forbidden` and a short plain-text body before any handler runs, so
//! nothing is minted and no hit is counted: another name, a name that merely starts or ends like a loopback
//! one (`127.0.0.1.evil.example`, `localhost.evil.example`), userinfo (`a@127.0.0.1`), an empty, missing
//! or repeated `Host`, or a request target whose authority (`GET http://evil.example/ HTTP/1.1`) is not
//! allowed. 403 rather than `421 Misdirected Request`: the request did reach the server it was meant for
//! and is refused by policy, and 421 invites clients to retry it on another connection.
//! [`crate::EmulatorBuilder::allow_any_host`] turns the rule off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::EmulatorError;

/// The body of a refusal. It does not echo the Host back: the Host is the requester's to choose.
pub(crate) const REFUSAL_BODY: &str = "idgate emulator: this request's Host is not allowed. \
     Only loopback hosts (localhost, 127.0.0.1, [::1]) are answered by default, against DNS rebinding; \
     allow another name with `idgate emulator --allow-host NAME` or `EmulatorBuilder::allow_host`.\n";

/// Which authorities a listener answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowedHosts {
    /// Every authority is allowed ([`crate::EmulatorBuilder::allow_any_host`]).
    any: bool,
    /// Extra host names, lowercase.
    names: Vec<String>,
    /// Extra address literals (the bound address, allowed addresses).
    ips: Vec<IpAddr>,
}

/// Why a request was refused (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Host` header and no authority in the request target.
    Missing,
    /// More than one `Host` header.
    Repeated,
    /// A `Host` (or request-target authority) that does not parse, is empty, or carries userinfo.
    Malformed,
    /// A well-formed authority naming a host that is not allowed.
    NotAllowed,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "no Host",
            Self::Repeated => "more than one Host header",
            Self::Malformed => "malformed Host",
            Self::NotAllowed => "Host not allowed",
        }
    }
}

impl AllowedHosts {
    /// Loopback names, plus the literal of `bound` and every entry of `extra` (host names or address
    /// literals, without a port; IPv6 with or without brackets); or everything when `any`.
    pub(crate) fn new(bound: IpAddr, extra: &[String], any: bool) -> Result<Self, EmulatorError> {
        let mut hosts = Self {
            any,
            names: Vec::new(),
            ips: vec![bound],
        };
        for entry in extra {
            let trimmed = entry.trim();
            let unbracketed = trimmed
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(trimmed);
            if let Ok(ip) = unbracketed.parse::<IpAddr>() {
                hosts.ips.push(ip);
            } else if is_host_name(trimmed) {
                hosts.names.push(trimmed.to_ascii_lowercase());
            } else {
                return Err(EmulatorError::AllowedHost(entry.clone()));
            }
        }
        Ok(hosts)
    }

    /// Whether `host` (the host part of an authority: `name`, `1.2.3.4` or `[v6]`) is allowed.
    fn allows(&self, host: &str) -> bool {
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Some(ip) = ip_literal(host) {
            return ip.is_loopback() || self.ips.contains(&ip);
        }
        self.names.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// Whether one authority (a `Host` value or a request target's authority) is allowed.
    fn check_authority(&self, authority: &[u8]) -> Result<(), Refusal> {
        let authority = std::str::from_utf8(authority).map_err(|_| Refusal::Malformed)?;
        if self.allows(host_of(authority)?) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed)
        }
    }

    /// Checks every authority `request` carries: the request target's (HTTP/2 `:authority`, or an HTTP/1.1
    /// absolute-form target) and the `Host` header, of which there must be exactly one when the target has
    /// no authority, and at most one otherwise.
    pub(crate) fn check<B>(&self, request: &http::Request<B>) -> Result<(), Refusal> {
        if self.any {
            return Ok(());
        }
        let mut host_headers = request.headers().get_all(header::HOST).iter();
        let host = host_headers.next();
        if host_headers.next().is_some() {
            return Err(Refusal::Repeated);
        }
        let target = request.uri().authority();
        if host.is_none() && target.is_none() {
            return Err(Refusal::Missing);
        }
        if let Some(target) = target {
            self.check_authority(target.as_str().as_bytes())?;
        }
        if let Some(host) = host {
            self.check_authority(host.as_bytes())?;
        }
        Ok(())
    }
}

/// The host of `host[:port]`, where the port, if any, is all digits, and the host is non-empty and, when it
/// starts with `[`, ends at the matching `]`.
///
/// Hand-written rather than `http::uri::Authority::host`: that accepts userinfo (`a@127.0.0.1` has host
/// `127.0.0.1`) and stops an IPv6 host at its `]` whatever follows (`[::1].evil` has host `[::1]`), which
/// is exactly what this check must not be fooled by.
fn host_of(authority: &str) -> Result<&str, Refusal> {
    if authority.contains('@') {
        return Err(Refusal::Malformed);
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(Refusal::Malformed)?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or(Refusal::Malformed)?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host.is_empty() || !port_ok {
        return Err(Refusal::Malformed);
    }
    Ok(host)
}

/// An address literal as it appears in an authority's host: dotted IPv4 or bracketed IPv6.
fn ip_literal(host: &str) -> Option<IpAddr> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A DNS-style host name: letters, digits, `-`, `_` and `.`, not empty. No port, userinfo or path.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The middleware every emulator listener runs first.
pub(crate) async fn guard(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match hosts.check(&request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // Debug formatting escapes whatever the requester put in the Host.
            tracing::warn!(
                reason = refusal.as_str(),
                host = ?request.headers().get(header::HOST),
                authority = ?request.uri().authority(),
                path = request.uri().path(),
                "idgate emulator refused a request not addressed to an allowed host (see --allow-host)"
            );
            refused()
        }
    }
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        REFUSAL_BODY,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_only() -> AllowedHosts {
        AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), &[], false).expect("valid")
    }

    fn with_host(host: &[u8]) -> http::Request<()> {
        let mut r = http::Request::new(());
        r.headers_mut()
            .insert(header::HOST, HeaderValue::from_bytes(host).expect("value"));
        r
    }

    #[test]
    fn loopback_names_with_or_without_a_port() {
        let hosts = loopback_only();
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8085",
            "127.1.2.3:1",
            "localhost",
            "LocalHost:8085",
            "[::1]",
            "[::1]:8085",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert_eq!(hosts.check(&with_host(ok.as_bytes())), Ok(()), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let hosts = loopback_only();
        for (bad, why) in [
            ("evil.example", Refusal::NotAllowed),
            ("evil.example:8085", Refusal::NotAllowed),
            ("127.0.0.1.evil.example", Refusal::NotAllowed),
            ("localhost.evil.example", Refusal::NotAllowed),
            ("localhost.", Refusal::NotAllowed),
            ("sub.localhost", Refusal::NotAllowed),
            ("127.1", Refusal::NotAllowed),
            ("0x7f.0.0.1", Refusal::NotAllowed),
            ("10.0.0.1", Refusal::NotAllowed),
            ("[::2]", Refusal::NotAllowed),
            ("[::ffff:127.0.0.1]", Refusal::NotAllowed),
            ("[::1].evil", Refusal::Malformed),
            ("", Refusal::Malformed),
            ("a@127.0.0.1", Refusal::Malformed),
            ("127.0.0.1:80@evil.example", Refusal::Malformed),
            ("[::1]:80:80", Refusal::Malformed),
            ("[::1", Refusal::Malformed),
            ("127.0.0.1:", Refusal::Malformed),
            ("127.0.0.1:80:80", Refusal::Malformed),
            ("127.0.0.1:8o", Refusal::Malformed),
            (":8085", Refusal::Malformed),
            ("127.0.0.1/x", Refusal::NotAllowed),
            ("127.0.0.1 evil", Refusal::NotAllowed),
        ] {
            assert_eq!(hosts.check(&with_host(bad.as_bytes())), Err(why), "{bad:?}");
        }
        assert_eq!(
            hosts.check(&http::Request::new(())),
            Err(Refusal::Missing),
            "no Host at all"
        );
        let mut two = with_host(b"127.0.0.1");
        two.headers_mut()
            .append(header::HOST, HeaderValue::from_static("127.0.0.1"));
        assert_eq!(hosts.check(&two), Err(Refusal::Repeated));
    }

    #[test]
    fn the_request_target_authority_counts_too() {
        let hosts = loopback_only();
        // HTTP/2: the authority is in the URI, and there is usually no Host header.
        let h2 = |uri: &str| {
            http::Request::builder()
                .version(http::Version::HTTP_2)
                .uri(uri)
                .body(())
                .expect("request")
        };
        assert_eq!(hosts.check(&h2("http://127.0.0.1:8085/token")), Ok(()));
        assert_eq!(hosts.check(&h2("http://localhost/token")), Ok(()));
        assert_eq!(
            hosts.check(&h2("http://evil.example:8085/token")),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            hosts.check(&h2("http://a@127.0.0.1/token")),
            Err(Refusal::Malformed)
        );
        // Absolute-form HTTP/1.1 target with a loopback Host: the target's authority is refused.
        let mut absolute = with_host(b"127.0.0.1");
        *absolute.uri_mut() = "http://evil.example/".parse().expect("uri");
        assert_eq!(hosts.check(&absolute), Err(Refusal::NotAllowed));
        // Both allowed but different: still fine (both name this machine).
        let mut both = with_host(b"localhost:1");
        *both.uri_mut() = "http://127.0.0.1:1/".parse().expect("uri");
        assert_eq!(hosts.check(&both), Ok(()));
    }

    #[test]
    fn allowed_names_and_addresses() {
        let extra = [
            "Emulator.Internal".to_owned(),
            "10.0.0.7".to_owned(),
            "[fd00::7]".to_owned(),
            "fd00::8".to_owned(),
        ];
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)), &extra, false)
            .expect("ok");
        for ok in [
            "emulator.internal",
            "EMULATOR.INTERNAL:8085",
            "10.0.0.7:1",
            "[fd00::7]",
            "[fd00::8]:9",
            "192.168.1.5:8085",
            "127.0.0.1",
        ] {
            assert_eq!(hosts.check(&with_host(ok.as_bytes())), Ok(()), "{ok}");
        }
        for bad in [
            "emulator.internal.evil",
            "internal",
            "10.0.0.8",
            "192.168.1.6",
        ] {
            assert_eq!(
                hosts.check(&with_host(bad.as_bytes())),
                Err(Refusal::NotAllowed),
                "{bad}"
            );
        }
        for invalid in ["", "name:8085", "a@b", "http://x", "a b", "[::1"] {
            assert!(
                matches!(
                    AllowedHosts::new(
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        &[invalid.to_owned()],
                        false
                    ),
                    Err(EmulatorError::AllowedHost(_))
                ),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn any_host_allows_everything() {
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), &[], true).expect("ok");
        assert_eq!(hosts.check(&with_host(b"evil.example")), Ok(()));
        assert_eq!(hosts.check(&http::Request::new(())), Ok(()));
    }
}
