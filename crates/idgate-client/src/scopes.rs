//! [`Scopes`]: the normalised set of OAuth 2.0 scopes an access token is asked for.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The scope that covers every Google Cloud API (IAM then decides what the principal may do).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A normalised, non-empty set of OAuth 2.0 scopes: sorted and deduplicated, so the order in which scopes are
/// given never makes a different value (and never a second cache entry).
///
/// Each scope is a non-empty string of visible ASCII without spaces or commas. Cheap to clone.
///
/// - [`Display`](fmt::Display) and [`as_query`](Self::as_query) join them with `,` (the metadata server's
///   `?scopes=a,b`);
/// - [`as_claim`](Self::as_claim) joins them with a space (the JWT `scope` claim and the OAuth `scope` parameter).
///
/// ```
/// use idgate_client::Scopes;
///
/// let a = Scopes::new(["https://www.googleapis.com/auth/devstorage.read_only", "openid", "openid"]).unwrap();
/// let b = Scopes::new(["openid", "https://www.googleapis.com/auth/devstorage.read_only"]).unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.len(), 2);
/// assert_eq!(a.as_claim(), "https://www.googleapis.com/auth/devstorage.read_only openid");
/// assert_eq!(a.to_string(), "https://www.googleapis.com/auth/devstorage.read_only,openid");
///
/// assert!(Scopes::new(["has space"]).unwrap_err().is_invalid());
/// assert!(Scopes::new(Vec::<String>::new()).unwrap_err().is_empty());
/// // Parsing accepts commas and whitespace, as a command line would.
/// assert_eq!("openid, https://www.googleapis.com/auth/devstorage.read_only".parse::<Scopes>().unwrap(), a);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scopes {
    /// The sorted, deduplicated scopes joined by one space: the canonical form, cheap to hash and compare.
    claim: Arc<str>,
}

/// Why a list of scopes was refused by [`Scopes::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopesError {
    /// No scope at all.
    #[error("no OAuth scope given; at least one is needed")]
    Empty,
    /// A scope is empty, or has a character outside visible ASCII, a space or a comma.
    #[error("the OAuth scope at position {index} ({scope:?}) {reason}")]
    Invalid {
        /// Its 0-based position in the list given.
        index: usize,
        /// The scope, bounded in length.
        scope: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ScopesError {
    /// True when no scope was given.
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// True when a scope is malformed.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

impl Scopes {
    /// Normalises `scopes` (sorted, deduplicated).
    ///
    /// # Errors
    ///
    /// [`ScopesError::Empty`] for an empty list, [`ScopesError::Invalid`] for a scope that is empty or contains
    /// anything but visible ASCII (no space, no comma).
    pub fn new<I, S>(scopes: I) -> Result<Self, ScopesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for (index, scope) in scopes.into_iter().enumerate() {
            let scope = scope.as_ref();
            if let Some(reason) = problem(scope) {
                return Err(ScopesError::Invalid {
                    index,
                    scope: crate::error::bounded(scope, 100),
                    reason,
                });
            }
            list.push(scope.to_owned());
        }
        if list.is_empty() {
            return Err(ScopesError::Empty);
        }
        list.sort_unstable();
        list.dedup();
        Ok(Self {
            claim: list.join(" ").into(),
        })
    }

    /// `https://www.googleapis.com/auth/cloud-platform` alone: every Google Cloud API, with IAM deciding.
    pub fn cloud_platform() -> Self {
        Self {
            claim: Arc::from(CLOUD_PLATFORM_SCOPE),
        }
    }

    /// The scopes, in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.claim.split(' ')
    }

    /// How many scopes there are (at least one).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Always false: a `Scopes` holds at least one scope. (Here for clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True when `scope` is one of them.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.iter().all(|s| other.contains(s))
    }

    /// Joined by `,`: the metadata server's `?scopes=` value.
    pub fn as_query(&self) -> String {
        self.claim.replace(' ', ",")
    }

    /// Joined by a space: the JWT `scope` claim and the OAuth 2.0 `scope` parameter.
    pub fn as_claim(&self) -> &str {
        &self.claim
    }

    /// The scopes as a list, for JSON bodies (`generateAccessToken`'s `scope`).
    pub fn to_vec(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

fn problem(scope: &str) -> Option<&'static str> {
    if scope.is_empty() {
        Some("is empty")
    } else if scope.contains([' ', ',']) {
        Some("contains a space or a comma")
    } else if !scope.bytes().all(|b| b.is_ascii_graphic()) {
        Some("contains a character that is not visible ASCII")
    } else {
        None
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Parses scopes separated by commas and/or whitespace (`"a,b"`, `"a b"`, `"a, b"`).
impl FromStr for Scopes {
    type Err = ScopesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(
            s.split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|s| !s.is_empty()),
        )
    }
}

impl TryFrom<&str> for Scopes {
    type Error = ScopesError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalised() {
        let s = Scopes::new(["b", "a", "b"]).unwrap();
        assert_eq!(s.as_claim(), "a b");
        assert_eq!(s.as_query(), "a,b");
        assert_eq!(s.to_string(), "a,b");
        assert_eq!(format!("{s:?}"), r#"["a", "b"]"#);
        assert_eq!(s.to_vec(), vec!["a", "b"]);
        assert!(s.contains("a") && !s.contains("c"));
        assert!(Scopes::new(["a"]).unwrap().is_subset(&s));
        assert_eq!(Scopes::cloud_platform().as_claim(), CLOUD_PLATFORM_SCOPE);
        assert_eq!(
            Scopes::cloud_platform(),
            Scopes::new([CLOUD_PLATFORM_SCOPE]).unwrap()
        );
    }

    #[test]
    fn refused() {
        assert!(Scopes::new([""]).unwrap_err().is_invalid());
        assert!(Scopes::new(["a,b"]).unwrap_err().is_invalid());
        assert!(Scopes::new(["a\tb"]).unwrap_err().is_invalid());
        assert!(Scopes::new(["é"]).unwrap_err().is_invalid());
        assert!("".parse::<Scopes>().unwrap_err().is_empty());
        assert!(" , ".parse::<Scopes>().unwrap_err().is_empty());
        let err = Scopes::new(["ok", "bad one"]).unwrap_err();
        assert!(err.to_string().contains("position 1"), "{err}");
    }

    proptest! {
        #[test]
        fn order_and_repetition_never_change_the_value(
            scopes in proptest::collection::vec("[!-+\\--~]{1,12}", 1..8),
            seed in any::<u64>(),
        ) {
            let a = Scopes::new(&scopes).unwrap();
            let mut shuffled = scopes.clone();
            // A deterministic shuffle plus duplicates.
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(i as u64 + 1) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            shuffled.push(scopes[(seed % n as u64) as usize].clone());
            let b = Scopes::new(&shuffled).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.as_claim(), b.as_claim());
            prop_assert_eq!(a.to_string(), b.to_string());
            let parsed: Scopes = a.to_string().parse().unwrap();
            prop_assert_eq!(parsed, a);
        }
    }
}
