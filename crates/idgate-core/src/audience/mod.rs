//! What a token is for: [`Audience`], and the one origin parser every crate uses.
//!
//! An audience is the `aud` a Google ID token or an IAP assertion is minted for: a service URL
//! (`https://my-service-abc123-uc.a.run.app`), a Cloud Run custom audience, or an IAP audience
//! (`/projects/123456789/apps/my-project`). The same type names it on both sides: the verifier builders take the
//! audiences they accept, the configuration holds them, and idgate-client mints tokens for them.
//!
//! The origin of a URL (`scheme://host[:port]`, default ports dropped, host lower-cased) is the audience Cloud Run
//! expects by default; [`Audience::origin_of`] derives it, and origin matching in the verifier
//! ([`AudienceMatch::Origin`](crate::verify::AudienceMatch::Origin)) compares with it.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

mod origin;
#[cfg(test)]
mod tests;

pub use origin::OriginError;
pub(crate) use origin::canonical_origin_of;

/// The longest audience accepted, in bytes: far beyond any service URL, short enough that an audience cannot be
/// used to make idgate or Google carry megabytes.
pub const MAX_AUDIENCE_LEN: usize = 2048;

/// The audience (`aud`) a token is minted for, or accepted with: usually the receiving service's URL, a Cloud Run
/// custom audience, or an IAP audience.
///
/// Cheap to clone (an `Arc<str>` inside). An audience is not a secret, so it has an ordinary `Debug` and
/// `Display`.
///
/// Making one never fails, so call sites stay one-liners (`.audience("https://api.example.com")`); the rules an
/// audience must keep (not blank, at most [`MAX_AUDIENCE_LEN`] bytes, no control characters, see
/// [`Audience::check`]) are checked where it is used: by the verifier builders' `build()`, by the configuration
/// loader, and by every idgate-client source before it asks for a token. [`Audience::parse`] checks at once.
///
/// ```
/// use idgate_core::Audience;
///
/// let aud = Audience::new("https://api.example.com");
/// assert_eq!(aud.as_str(), "https://api.example.com");
/// assert_eq!(Audience::from("x"), Audience::new("x"));
/// assert_eq!(aud, "https://api.example.com");
/// assert!(Audience::new("").check().is_err());
/// assert!(Audience::parse("https://api.example.com").is_ok());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience(Arc<str>);

impl Audience {
    /// An audience, unchecked: see [`Audience::check`] for the rules every user of it applies.
    pub fn new(audience: impl Into<Arc<str>>) -> Self {
        Self(audience.into())
    }

    /// An audience that keeps the rules of [`Audience::check`].
    ///
    /// ```
    /// use idgate_core::Audience;
    ///
    /// assert_eq!(Audience::parse("my-custom-audience").unwrap().as_str(), "my-custom-audience");
    /// assert!(Audience::parse("  ").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// An [`AudienceError`] naming the rule `audience` breaks.
    pub fn parse(audience: impl Into<Arc<str>>) -> Result<Self, AudienceError> {
        let audience = Self::new(audience);
        audience.check()?;
        Ok(audience)
    }

    /// The audience as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the rules every audience keeps: not empty or blank, at most [`MAX_AUDIENCE_LEN`] bytes, no control
    /// characters. Nothing else: whether an audience is a URL, or an IAP shape, is for whoever compares it.
    ///
    /// # Errors
    ///
    /// An [`AudienceError`] naming the first rule broken.
    pub fn check(&self) -> Result<(), AudienceError> {
        if self.0.trim().is_empty() {
            return Err(AudienceError::Empty);
        }
        if self.0.len() > MAX_AUDIENCE_LEN {
            return Err(AudienceError::TooLong);
        }
        if self.0.chars().any(char::is_control) {
            return Err(AudienceError::ControlCharacter);
        }
        Ok(())
    }

    /// The origin (`scheme://host[:port]`, default ports omitted, lower-case host, no user info, no path) of an
    /// absolute http(s) URL: the audience Cloud Run expects by default for that service. User info in `url` is
    /// dropped (it is never part of an origin).
    ///
    /// ```
    /// use idgate_core::Audience;
    ///
    /// let url = "https://User:pw@API.example.com:443/v1/jobs?x=1".parse().unwrap();
    /// assert_eq!(Audience::origin_of(&url).unwrap().as_str(), "https://api.example.com");
    /// let url = "http://127.0.0.1:8080/".parse().unwrap();
    /// assert_eq!(Audience::origin_of(&url).unwrap().as_str(), "http://127.0.0.1:8080");
    /// ```
    ///
    /// # Errors
    ///
    /// [`OriginError`] for URLs that are not http(s) or have no host.
    pub fn origin_of(url: &url::Url) -> Result<Self, OriginError> {
        origin::of_url(url)
    }

    /// The origin of an absolute http(s) [`http::Uri`], as [`Audience::origin_of`] gives it for the same URL.
    ///
    /// ```
    /// use idgate_core::Audience;
    ///
    /// let uri: http::Uri = "HTTPS://API.example.com:443/v1".parse().unwrap();
    /// assert_eq!(Audience::origin_of_uri(&uri).unwrap().as_str(), "https://api.example.com");
    /// let relative: http::Uri = "/v1".parse().unwrap();
    /// assert!(Audience::origin_of_uri(&relative).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`OriginError`] for relative URIs, schemes other than http(s), and URIs without a host.
    pub fn origin_of_uri(uri: &http::Uri) -> Result<Self, OriginError> {
        origin::of_uri(uri)
    }

    /// The origin this audience names, when it is an absolute http(s) URL without user info: what
    /// [`AudienceMatch::Origin`](crate::verify::AudienceMatch::Origin) compares a token's `aud` with.
    ///
    /// ```
    /// use idgate_core::Audience;
    ///
    /// let aud = Audience::new("https://svc.example.com/jobs");
    /// assert_eq!(aud.origin().unwrap(), "https://svc.example.com");
    /// assert!(Audience::new("my-custom-audience").origin().is_err());
    /// assert!(Audience::new("https://user@svc.example.com/").origin().is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`OriginError`] when the audience is not such a URL.
    pub fn origin(&self) -> Result<Self, OriginError> {
        origin::of_audience(&self.0)
    }

    /// The shared string, for stores that hand it on without copying.
    pub(crate) fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

/// Why an [`Audience`] breaks the rules of [`Audience::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// Empty, or nothing but whitespace.
    #[error("the audience is empty")]
    Empty,
    /// Longer than [`MAX_AUDIENCE_LEN`] bytes.
    #[error("the audience is longer than 2048 bytes")]
    TooLong,
    /// Contains a control character.
    #[error("the audience contains control characters")]
    ControlCharacter,
}

impl AudienceError {
    /// What is wrong, as a static string (the `Display` text), for errors that carry a `&'static str` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "the audience is empty",
            Self::TooLong => "the audience is longer than 2048 bytes",
            Self::ControlCharacter => "the audience contains control characters",
        }
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

impl From<&String> for Audience {
    fn from(s: &String) -> Self {
        Self::new(s.as_str())
    }
}

impl From<String> for Audience {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<Box<str>> for Audience {
    fn from(s: Box<str>) -> Self {
        Self::new(s)
    }
}

impl From<Arc<str>> for Audience {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl From<&Self> for Audience {
    fn from(a: &Self) -> Self {
        a.clone()
    }
}

impl From<Audience> for String {
    fn from(a: Audience) -> Self {
        a.0.as_ref().to_owned()
    }
}

impl AsRef<str> for Audience {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets a `HashSet<Audience>` be searched with a `&str` (the hash and order are those of the string).
impl Borrow<str> for Audience {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Audience {
    type Err = AudienceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialEq<str> for Audience {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Audience {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Audience {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Audience> for str {
    fn eq(&self, other: &Audience) -> bool {
        *self == *other.0
    }
}

impl PartialEq<Audience> for &str {
    fn eq(&self, other: &Audience) -> bool {
        **self == *other.0
    }
}
