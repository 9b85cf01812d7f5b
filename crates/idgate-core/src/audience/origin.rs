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
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Ok(Audience::new(origin.ascii_serialization())),
        // http(s) URLs always have a host; kept so a change in `url` cannot make an opaque origin an audience.
        url::Origin::Opaque(_) => Err(OriginError::NoHost),
    }
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
    of_url(&parse(&format!("{scheme}://{}/", authority.as_str()))?)
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
