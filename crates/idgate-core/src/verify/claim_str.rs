//! Compact storage for claim strings, because the memo keeps the claims of up to `memo_capacity` tokens.
//!
//! Measured (`benches`' memory rows, 100,000 tokens memoized): sharing the issuer and audience took a memo entry
//! from 761 bytes to 672; making this type two words instead of three (16 bytes less per claims struct, which moved
//! `Arc<OidcClaims>` and `Arc<IapClaims>` from glibc's 192-byte chunk to its 176-byte one) took it to 656 (RS256 ID
//! tokens) and 657 (IAP assertions). Neither costs time on the memo-hit path, which never touches these strings.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::Deserialize;

/// A claim's string as the memo stores it. Values every token of a verifier shares (its issuer, its configured
/// audience) point at one copy instead of being allocated again for each of the memo's entries; the rest are
/// reference-counted copies of what the token said. 16 bytes (a `String` is 24): two of these are in every memo
/// entry, and 16 bytes less per claims struct moved it down an allocator size class (see the module docs).
#[derive(Clone)]
pub(crate) enum ClaimStr {
    /// One of [`KNOWN`] (the issuers): a thin pointer into it, so the enum needs no tag of its own.
    Known(&'static &'static str),
    /// Anything else: as parsed, or the verifier's own copy of an equal value (an audience), shared.
    Str(Arc<str>),
}

impl ClaimStr {
    /// Whether the value is one of `accepted` (the issuers a verifier takes).
    pub(crate) fn is_one_of(&self, accepted: &[&str]) -> bool {
        accepted.contains(&&**self)
    }

    /// The stored form of a claim's value: one of [`KNOWN`] without a copy, anything else copied once.
    pub(crate) fn new(value: &str) -> Self {
        match KNOWN.iter().find(|k| **k == value) {
            Some(k) => Self::Known(k),
            None => Self::Str(value.into()),
        }
    }

    /// Points at `shared`, which the caller has found equal to this value.
    pub(crate) fn share(&mut self, shared: &Arc<str>) {
        debug_assert_eq!(&**shared, &**self);
        *self = Self::Str(shared.clone());
    }
}

impl Deref for ClaimStr {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Known(s) => s,
            Self::Str(s) => s,
        }
    }
}

impl fmt::Debug for ClaimStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Values read as [`ClaimStr::Known`] without an allocation: every issuer idgate accepts. Being read as one says
/// nothing about acceptance; each verifier still compares with its own issuers.
static KNOWN: [&str; 3] = [
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
                Ok(ClaimStr::new(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// A claim's string as parsed, before the claims are checked: borrowed from the decoded payload when JSON did not
/// escape it (it never does in Google's tokens), a copy only when it did. Checking the claims on these and copying
/// only what the verified claims keep took the allocations of a first-seen ID token from four to two.
///
/// (`#[serde(borrow)]` on an `Option<Cow<str>>` would always copy: serde borrows only a bare `Cow` field.)
pub(crate) struct WireStr<'a>(Cow<'a, str>);

impl Deref for WireStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = WireStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_keeps_the_value_and_saves_the_copy() {
        let iss: ClaimStr = serde_json::from_str(r#""https://accounts.google.com""#).unwrap();
        assert!(iss.is_one_of(&["accounts.google.com", "https://accounts.google.com"]));
        assert!(matches!(
            iss,
            ClaimStr::Known(&"https://accounts.google.com")
        ));
        let other: ClaimStr = serde_json::from_str(r#""https://evil""#).unwrap();
        assert!(!other.is_one_of(&["https://accounts.google.com"]));
        assert_eq!(&*other, "https://evil");

        let configured: Arc<str> = Arc::from("https://svc.example");
        let mut aud: ClaimStr = serde_json::from_str(r#""https://svc.example""#).unwrap();
        aud.share(&configured);
        assert_eq!(&*aud, "https://svc.example");
        assert_eq!(Arc::strong_count(&configured), 2);
        assert!(matches!(&aud, ClaimStr::Str(s) if Arc::ptr_eq(s, &configured)));
        // Two words, no tag: today's rustc puts the known variant in the `Arc`'s null-pointer niche (a layout the
        // language does not promise; if it changes, only memory grows, and this says so).
        assert_eq!(size_of::<ClaimStr>(), size_of::<&str>());
    }

    #[test]
    fn known_values_are_read_without_a_copy_and_still_compared() {
        let iss: ClaimStr = serde_json::from_str(r#""https://cloud.google.com/iap""#).unwrap();
        assert!(matches!(
            iss,
            ClaimStr::Known(&"https://cloud.google.com/iap")
        ));
        // Escaped, the same value is still recognised (serde hands the unescaped string to the visitor).
        let escaped: ClaimStr = serde_json::from_str(r#""https:\/\/accounts.google.com""#).unwrap();
        assert!(matches!(
            escaped,
            ClaimStr::Known(&"https://accounts.google.com")
        ));
        // Read as known is not accepted: an OIDC verifier refuses the IAP issuer.
        assert!(!iss.is_one_of(&["accounts.google.com", "https://accounts.google.com"]));
        assert!(escaped.is_one_of(&["https://accounts.google.com"]));
        // A near miss stays a copy of exactly what the token said, and is refused.
        let near: ClaimStr = serde_json::from_str(r#""https://accounts.google.com/""#).unwrap();
        assert!(matches!(&near, ClaimStr::Str(s) if &**s == "https://accounts.google.com/"));
        assert!(!near.is_one_of(&["https://accounts.google.com"]));
        // Not a string: refused as before.
        assert!(serde_json::from_str::<ClaimStr>("42").is_err());
        assert!(serde_json::from_str::<ClaimStr>(r#"["https://accounts.google.com"]"#).is_err());
        assert!(serde_json::from_str::<ClaimStr>("null").is_err());
    }

    #[test]
    fn wire_strings_borrow_unless_json_escaped_them() {
        let plain: WireStr<'_> = serde_json::from_str(r#""caller@example.com""#).unwrap();
        assert!(matches!(plain.0, Cow::Borrowed("caller@example.com")));
        let escaped: WireStr<'_> = serde_json::from_str(r#""https:\/\/x\u0041""#).unwrap();
        assert!(matches!(&escaped.0, Cow::Owned(s) if s == "https://xA"));
        // Inside an `Option`, as the claims hold them, they still borrow.
        let some: Option<WireStr<'_>> = serde_json::from_str(r#""a""#).unwrap();
        assert!(matches!(some.map(|s| s.0), Some(Cow::Borrowed("a"))));
        assert!(
            serde_json::from_str::<Option<WireStr<'_>>>("null")
                .unwrap()
                .is_none()
        );
        for not_a_string in ["42", "true", "[]", "{}"] {
            assert!(
                serde_json::from_str::<WireStr<'_>>(not_a_string).is_err(),
                "{not_a_string}"
            );
        }
    }
}
