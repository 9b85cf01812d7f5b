//! The one origin parser: `scheme://host[:port]` of an absolute http(s) URL, as the WHATWG URL standard serializes
//! it (lower-case scheme and host, IDNA and IP addresses normalized, the scheme's default port dropped).
//!
//! Every caller goes through [`of_url`]: the client deriving an audience from a request URL or URI, the
//! configuration and the verifier builder reading a configured origin, and the verifier reading a token's `aud`.

use url::Url;

use super::Audience;

/// Why no origin could be taken from a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// A relative reference, or no URL at all.
    #[error("not an absolute URL")]
    NotAbsolute,
    /// A scheme other than `http` or `https`.
    #[error("not an http(s) URL")]
    NotHttp,
    /// No host, or an empty one.
    #[error("the URL has no host")]
    NoHost,
    /// Not a valid URL (an invalid host, port or percent-encoding).
    #[error("not a valid URL")]
    Invalid,
    /// `user:password@` in a configured origin: no honest audience carries credentials.
    #[error("the URL carries user info")]
    UserInfo,
}

/// The origin of a parsed URL; user info is not part of an origin and is dropped.
pub(super) fn of_url(url: &Url) -> Result<Audience, OriginError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OriginError::NotHttp);
    }
    if let Some(origin) = serialized_origin(url) {
        return Ok(Audience::new(origin));
    }
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Ok(Audience::new(origin.ascii_serialization())),
        // http(s) URLs always have a host; kept so a change in `url` cannot make an opaque origin an audience.
        url::Origin::Opaque(_) => Err(OriginError::NoHost),
    }
}

/// The origin of an http(s) URL without user info, as a slice of the URL's own serialization: `url` keeps its host
/// serialized exactly as the origin's (lower case, IDNA to ASCII, IPv6 in brackets, IPv4 normalized) and omits the
/// scheme's default port, as `Origin::ascii_serialization` does, so everything before the path is the origin. The
/// reqwest adapter derives an audience on every request: this is one allocation where `url.origin()` and its
/// serialization made four (a proptest compares the two on arbitrary URLs).
fn serialized_origin(url: &Url) -> Option<&str> {
    (url.username().is_empty() && url.password().is_none() && url.host().is_some())
        .then(|| &url[..url::Position::BeforePath])
}

/// The origin of an [`http::Uri`]: its scheme and authority read by the same parser as a URL, so the tower and
/// reqwest adapters derive the same audience for the same target.
pub(super) fn of_uri(uri: &http::Uri) -> Result<Audience, OriginError> {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(OriginError::NotAbsolute);
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(OriginError::NotHttp);
    }
    if authority.host().is_empty() {
        return Err(OriginError::NoHost);
    }
    if already_canonical(scheme, authority.as_str()) {
        // What a URL parse would give back unchanged; the adapters derive an audience on every request, and this
        // skips the parse and three allocations (`benches/attach.rs`: "audience from the URI").
        return Ok(Audience::new(format!("{scheme}://{}", authority.as_str())));
    }
    of_url(&parse(&format!("{scheme}://{}/", authority.as_str()))?)
}

/// Whether `scheme://authority` is already its own origin as the URL standard serializes it: a lower-case `http` or
/// `https`; a host of lower-case ASCII DNS labels (letters, digits, hyphens; none empty, none punycode `xn--`) whose
/// last label starts with a letter, so that no IPv4 reading (`127.1`, `0x7f.1`) or IDNA mapping applies; and no
/// port, or a port without leading zeros that is not the scheme's default. Anything else takes the full parse.
fn already_canonical(scheme: &str, authority: &str) -> bool {
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return false,
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let labels_ok = host.split('.').all(|label| {
        label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.is_empty()
            && !label.starts_with("xn--")
    });
    let last_is_a_name = host
        .rsplit('.')
        .next()
        .and_then(|label| label.bytes().next())
        .is_some_and(|b| b.is_ascii_lowercase());
    let port_ok = match port {
        None => true,
        Some(port) => {
            !port.starts_with('0')
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != default_port)
        }
    };
    labels_ok && last_is_a_name && port_ok
}

/// The origin a configured audience names: an absolute http(s) URL without user info.
pub(super) fn of_audience(audience: &str) -> Result<Audience, OriginError> {
    without_user_info(&parse(audience)?)
}

/// The origin of a token's `aud` when `aud` is already canonical: an absolute http(s) URL without user info that is
/// byte for byte its own serialization. `None` for anything a parser had to normalize (see
/// [`AudienceMatch::Origin`](crate::verify::AudienceMatch::Origin)).
pub(crate) fn canonical_origin_of(aud: &str) -> Option<Audience> {
    let url = Url::parse(aud).ok()?;
    if url.as_str() != aud {
        return None;
    }
    without_user_info(&url).ok()
}

fn without_user_info(url: &Url) -> Result<Audience, OriginError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OriginError::UserInfo);
    }
    of_url(url)
}

fn parse(s: &str) -> Result<Url, OriginError> {
    Url::parse(s).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => OriginError::NotAbsolute,
        url::ParseError::EmptyHost => OriginError::NoHost,
        _ => OriginError::Invalid,
    })
}
