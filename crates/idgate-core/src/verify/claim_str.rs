//! Compact storage for claim strings, because the memo keeps the claims of up to `memo_capacity` tokens.
//!
//! Measured (`benches`' memory child, 30,000 RS256 tokens memoized): 672 bytes per memo entry with sharing, 761
//! without, so sharing saves 12 % of the memo's memory; it neither costs nor saves time on the memo-hit path (the
//! in-process layer probe: 593 vs 590 ns per request, within noise).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::Deserialize;

/// A claim's string as the memo stores it. Values every token of a verifier shares (its issuer, its configured
/// audience) point at one copy instead of being allocated again for each of the memo's entries; the rest are
/// exact-size boxes. Same size as a `String`, and reads as a `&str`.
#[derive(Clone)]
pub(crate) enum ClaimStr {
    /// One of a fixed set of known values (the issuers).
    Static(&'static str),
    /// A value the verifier's configuration holds (an audience).
    Shared(Arc<str>),
    /// Anything else, as parsed.
    Owned(Box<str>),
}

impl ClaimStr {
    /// Points at the `known` value equal to this one, if any; returns whether it found one.
    pub(crate) fn share_static(&mut self, known: &[&'static str]) -> bool {
        match known.iter().find(|k| **k == &**self) {
            Some(k) => {
                *self = Self::Static(k);
                true
            }
            None => false,
        }
    }

    /// Points at `shared`, which the caller has found equal to this value.
    pub(crate) fn share(&mut self, shared: &Arc<str>) {
        debug_assert_eq!(&**shared, &**self);
        *self = Self::Shared(shared.clone());
    }
}

impl Deref for ClaimStr {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Shared(s) => s,
            Self::Owned(s) => s,
        }
    }
}

impl fmt::Debug for ClaimStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Values read as [`ClaimStr::Static`] without an allocation: every issuer idgate accepts. Being read as one says
/// nothing about acceptance; each verifier still compares with its own issuers.
const KNOWN: [&str; 3] = [
    super::oidc::GOOGLE_ISSUERS[0],
    super::oidc::GOOGLE_ISSUERS[1],
    super::iap::IAP_ISSUER,
];

impl<'de> Deserialize<'de> for ClaimStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ClaimStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClaimStr, E> {
                Ok(match KNOWN.iter().find(|k| **k == v) {
                    Some(k) => ClaimStr::Static(k),
                    None => ClaimStr::Owned(v.into()),
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_keeps_the_value_and_saves_the_copy() {
        let mut iss: ClaimStr = serde_json::from_str(r#""https://accounts.google.com""#).unwrap();
        assert!(iss.share_static(&["accounts.google.com", "https://accounts.google.com"]));
        assert!(matches!(
            iss,
            ClaimStr::Static("https://accounts.google.com")
        ));
        let mut other: ClaimStr = serde_json::from_str(r#""https://evil""#).unwrap();
        assert!(!other.share_static(&["https://accounts.google.com"]));
        assert_eq!(&*other, "https://evil");

        let configured: Arc<str> = Arc::from("https://svc.example");
        let mut aud: ClaimStr = serde_json::from_str(r#""https://svc.example""#).unwrap();
        aud.share(&configured);
        assert_eq!(&*aud, "https://svc.example");
        assert_eq!(Arc::strong_count(&configured), 2);
        assert_eq!(size_of::<ClaimStr>(), size_of::<String>());
    }

    #[test]
    fn known_values_are_read_without_a_copy_and_still_compared() {
        let iss: ClaimStr = serde_json::from_str(r#""https://cloud.google.com/iap""#).unwrap();
        assert!(matches!(
            iss,
            ClaimStr::Static("https://cloud.google.com/iap")
        ));
        // Escaped, the same value is still recognised (serde hands the unescaped string to the visitor).
        let mut escaped: ClaimStr =
            serde_json::from_str(r#""https:\/\/accounts.google.com""#).unwrap();
        assert!(matches!(
            escaped,
            ClaimStr::Static("https://accounts.google.com")
        ));
        // Read as static is not accepted: an OIDC verifier refuses the IAP issuer.
        let mut iap = iss;
        assert!(!iap.share_static(&["accounts.google.com", "https://accounts.google.com"]));
        assert!(escaped.share_static(&["https://accounts.google.com"]));
        // A near miss stays an owned copy of exactly what the token said.
        let near: ClaimStr = serde_json::from_str(r#""https://accounts.google.com/""#).unwrap();
        assert!(matches!(&near, ClaimStr::Owned(s) if &**s == "https://accounts.google.com/"));
        // Not a string: refused as before.
        assert!(serde_json::from_str::<ClaimStr>("42").is_err());
        assert!(serde_json::from_str::<ClaimStr>(r#"["https://accounts.google.com"]"#).is_err());
        assert!(serde_json::from_str::<ClaimStr>("null").is_err());
    }
}
