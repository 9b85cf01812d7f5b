//! Audiences, and how the adapters choose one for a request.

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
use std::collections::HashMap;
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
use std::sync::Arc;

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
use idgate_core::audience::OriginError;

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
use crate::error::AttachError;
use crate::error::SourceError;

/// The audience (`aud`) an ID token is minted for: usually the receiving service's URL
/// (`https://my-service-abc123-uc.a.run.app`) or a Cloud Run custom audience. The same type the verifiers of
/// idgate-core accept ([`idgate_core::Audience`]).
///
/// It is also the **per-request override** for both adapters: put an `Audience` in the request's extensions
/// (reqwest-middleware: `.with_extension(Audience::new(..))`; tower: `request.extensions_mut().insert(..)`) and the
/// token is minted for it instead of the configured or derived audience. Every source refuses an audience that
/// breaks [`Audience::check`] before it asks for a token.
///
/// ```
/// use idgate_client::Audience;
///
/// let aud = Audience::new("https://api.example.com");
/// assert_eq!(aud.as_str(), "https://api.example.com");
/// let uri: http::Uri = "https://API.example.com:443/v1".parse().unwrap();
/// assert_eq!(Audience::origin_of_uri(&uri).unwrap(), aud);
/// ```
pub use idgate_core::Audience;

/// Checks an audience before any request: the core's rules (non-empty, of a sane size, no control characters).
/// Used by every source.
pub(crate) fn check_audience(audience: &str) -> Result<(), SourceError> {
    Audience::from(audience)
        .check()
        .map_err(|e| SourceError::InvalidAudience { reason: e.reason() })
}

/// Why no audience could be derived from a request URL, in the words [`AttachError::NoAudience`] has always used.
#[cfg(feature = "reqwest-middleware")]
fn no_audience_for_url(error: OriginError) -> AttachError {
    AttachError::NoAudience {
        reason: match error {
            OriginError::NotHttp => "the URL is not http(s)",
            _ => "the URL has no host",
        },
    }
}

/// Why no audience could be derived from a request URI, in the words [`AttachError::NoAudience`] has always used.
#[cfg(feature = "tower")]
fn no_audience_for_uri(error: OriginError) -> AttachError {
    AttachError::NoAudience {
        reason: match error {
            OriginError::NotAbsolute => "the URI is not absolute",
            OriginError::NotHttp => "the URI is not http(s)",
            _ => "the URI has no host",
        },
    }
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
        Audience::origin_of(url).map_err(no_audience_for_url)
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
        Audience::origin_of_uri(uri).map_err(no_audience_for_uri)
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

    /// The core's origin errors reach users as the `NoAudience` reasons the adapters have always given.
    #[test]
    #[cfg(all(feature = "reqwest-middleware", feature = "tower"))]
    fn no_audience_reasons() {
        let p = AudiencePolicy::default();
        let uri = |s: &str| {
            p.resolve_uri(None, &s.parse().unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(uri("/path").contains("the URI is not absolute"));
        assert!(uri("ftp://example.com/").contains("the URI is not http(s)"));
        let url = |s: &str| {
            p.resolve_url(None, &s.parse().unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(url("data:text/plain,hi").contains("the URL is not http(s)"));
    }

    #[test]
    fn audience_checks() {
        assert!(check_audience("").is_err());
        assert!(check_audience("  ").is_err());
        assert!(check_audience("a\nb").is_err());
        assert!(check_audience("https://x").is_ok());
        assert!(matches!(
            check_audience(&"x".repeat(2049)),
            Err(SourceError::InvalidAudience {
                reason: "the audience is longer than 2048 bytes"
            })
        ));
    }
}
