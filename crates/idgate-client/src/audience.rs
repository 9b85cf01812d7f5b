//! Audiences, and how the adapters choose one for a request.

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{AttachError, SourceError};

/// The audience (`aud`) an ID token is minted for: usually the receiving service's URL
/// (`https://my-service-abc123-uc.a.run.app`) or a Cloud Run custom audience.
///
/// Cheap to clone. An audience is not a secret, so it has an ordinary `Debug` and `Display`.
///
/// It is also the **per-request override** for both adapters: put an `Audience` in the request's extensions
/// (reqwest-middleware: `.with_extension(Audience::new(..))`; tower: `request.extensions_mut().insert(..)`) and the
/// token is minted for it instead of the configured or derived audience.
///
/// ```
/// use idgate_client::Audience;
///
/// let aud = Audience::new("https://api.example.com");
/// assert_eq!(aud.as_str(), "https://api.example.com");
/// assert_eq!(Audience::from("x"), Audience::new("x"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience(Arc<str>);

impl Audience {
    /// An audience. Empty audiences are refused by every source when a token is asked for.
    pub fn new(audience: impl Into<Arc<str>>) -> Self {
        Self(audience.into())
    }

    /// The audience as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin (`scheme://host[:port]`, default ports omitted, lower-case host, no user info, no path) of an
    /// absolute http(s) URL: the audience Cloud Run expects by default for that service.
    ///
    /// ```
    /// use idgate_client::Audience;
    ///
    /// let url = "https://User:pw@API.example.com:443/v1/jobs?x=1".parse().unwrap();
    /// assert_eq!(Audience::origin_of(&url).unwrap().as_str(), "https://api.example.com");
    /// let url = "http://127.0.0.1:8080/".parse().unwrap();
    /// assert_eq!(Audience::origin_of(&url).unwrap().as_str(), "http://127.0.0.1:8080");
    /// ```
    ///
    /// # Errors
    ///
    /// [`AttachError::NoAudience`] for URLs that are not http(s) or have no host.
    pub fn origin_of(url: &url::Url) -> Result<Self, AttachError> {
        match url.scheme() {
            "http" | "https" => {}
            _ => {
                return Err(AttachError::NoAudience {
                    reason: "the URL is not http(s)",
                });
            }
        }
        match url.origin() {
            url::Origin::Tuple(..) => Ok(Self::new(url.origin().ascii_serialization())),
            url::Origin::Opaque(_) => Err(AttachError::NoAudience {
                reason: "the URL has no host",
            }),
        }
    }

    /// The origin of an absolute http(s) [`http::Uri`], as [`Audience::origin_of`] does for a URL.
    ///
    /// ```
    /// use idgate_client::Audience;
    ///
    /// let uri: http::Uri = "https://api.example.com/v1".parse().unwrap();
    /// assert_eq!(Audience::origin_of_uri(&uri).unwrap().as_str(), "https://api.example.com");
    /// let relative: http::Uri = "/v1".parse().unwrap();
    /// assert!(Audience::origin_of_uri(&relative).unwrap_err().is_no_audience());
    /// ```
    ///
    /// # Errors
    ///
    /// [`AttachError::NoAudience`] for relative URIs and schemes other than http(s).
    pub fn origin_of_uri(uri: &http::Uri) -> Result<Self, AttachError> {
        let scheme = uri.scheme_str().ok_or(AttachError::NoAudience {
            reason: "the URI is not absolute",
        })?;
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else if scheme.eq_ignore_ascii_case("http") {
            80
        } else {
            return Err(AttachError::NoAudience {
                reason: "the URI is not http(s)",
            });
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or(AttachError::NoAudience {
                reason: "the URI has no host",
            })?;
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        Ok(Self::new(match uri.port_u16() {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        }))
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Audience").field(&&*self.0).finish()
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Audience {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl AsRef<str> for Audience {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks an audience before any request: non-empty and of a sane size. Used by every source.
pub(crate) fn check_audience(audience: &str) -> Result<(), SourceError> {
    if audience.trim().is_empty() {
        return Err(SourceError::InvalidAudience {
            reason: "the audience is empty",
        });
    }
    if audience.len() > 2048 {
        return Err(SourceError::InvalidAudience {
            reason: "the audience is longer than 2048 bytes",
        });
    }
    if audience.chars().any(char::is_control) {
        return Err(SourceError::InvalidAudience {
            reason: "the audience contains control characters",
        });
    }
    Ok(())
}

/// How an adapter picks the audience of a request, shared by the reqwest and tower adapters.
///
/// Precedence: an [`Audience`] in the request's extensions, then a per-host override, then the fixed audience, then
/// the request URL's origin.
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct AudiencePolicy {
    fixed: Option<Audience>,
    hosts: Arc<HashMap<String, Audience>>,
}

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
impl AudiencePolicy {
    pub(crate) fn set_fixed(&mut self, audience: Audience) {
        self.fixed = Some(audience);
    }

    pub(crate) fn set_host(&mut self, host: &str, audience: Audience) {
        Arc::make_mut(&mut self.hosts).insert(normalize_host(host), audience);
    }

    fn for_host(&self, host: Option<&str>) -> Option<&Audience> {
        if self.hosts.is_empty() {
            return None;
        }
        let host = host?;
        // Hosts are stored lower-case; avoid allocating when the request's host already is.
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.hosts.get(&host.to_ascii_lowercase())
        } else {
            self.hosts.get(host)
        }
    }

    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn resolve_url(
        &self,
        extension: Option<&Audience>,
        url: &url::Url,
    ) -> Result<Audience, AttachError> {
        if let Some(aud) = extension {
            return Ok(aud.clone());
        }
        if let Some(aud) = self.for_host(url.host_str()) {
            return Ok(aud.clone());
        }
        if let Some(aud) = &self.fixed {
            return Ok(aud.clone());
        }
        Audience::origin_of(url)
    }

    #[cfg(feature = "tower")]
    pub(crate) fn resolve_uri(
        &self,
        extension: Option<&Audience>,
        uri: &http::Uri,
    ) -> Result<Audience, AttachError> {
        if let Some(aud) = extension {
            return Ok(aud.clone());
        }
        if let Some(aud) = self.for_host(uri.host()) {
            return Ok(aud.clone());
        }
        if let Some(aud) = &self.fixed {
            return Ok(aud.clone());
        }
        Audience::origin_of_uri(uri)
    }
}

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = |s: &str| Audience::origin_of(&s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(o("https://a.run.app/x/y?z").unwrap(), "https://a.run.app");
        assert_eq!(o("http://localhost:80/").unwrap(), "http://localhost");
        assert_eq!(o("https://[::1]:8443/").unwrap(), "https://[::1]:8443");
        assert!(o("data:text/plain,hi").is_err());
        assert!(o("ftp://example.com/").is_err());
        let u = |s: &str| Audience::origin_of_uri(&s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(u("HTTPS://A.Run.App:443/x").unwrap(), "https://a.run.app");
        assert_eq!(u("http://[::1]:8080/").unwrap(), "http://[::1]:8080");
        assert_eq!(u("https://u:p@h.example/").unwrap(), "https://h.example");
        assert!(u("/path").is_err());
    }

    #[test]
    #[cfg(all(feature = "reqwest-middleware", feature = "tower"))]
    fn precedence() {
        let mut p = AudiencePolicy::default();
        let uri: http::Uri = "https://api.example.com/x".parse().unwrap();
        assert_eq!(
            p.resolve_uri(None, &uri).unwrap().as_str(),
            "https://api.example.com"
        );
        p.set_fixed(Audience::new("fixed"));
        assert_eq!(p.resolve_uri(None, &uri).unwrap().as_str(), "fixed");
        p.set_host("API.example.com", Audience::new("host"));
        assert_eq!(p.resolve_uri(None, &uri).unwrap().as_str(), "host");
        let other: http::Uri = "https://other.example.com/x".parse().unwrap();
        assert_eq!(p.resolve_uri(None, &other).unwrap().as_str(), "fixed");
        let ext = Audience::new("ext");
        assert_eq!(p.resolve_uri(Some(&ext), &uri).unwrap().as_str(), "ext");
        let url: url::Url = "https://API.EXAMPLE.com/x".parse().unwrap();
        assert_eq!(p.resolve_url(None, &url).unwrap().as_str(), "host");
    }

    #[test]
    fn audience_checks() {
        assert!(check_audience("").is_err());
        assert!(check_audience("  ").is_err());
        assert!(check_audience("a\nb").is_err());
        assert!(check_audience("https://x").is_ok());
    }
}
