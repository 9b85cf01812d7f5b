//! The header segments of tokens a verifier accepted, so that the next token with the same header skips decoding
//! and parsing it.
//!
//! Google signs with two or three keys at a time, and every token signed with one key carries the same header,
//! byte for byte (`{"alg":"RS256","kid":"…","typ":"JWT"}`, base64url-encoded). Decoding that segment and parsing it
//! as JSON cost about 150 ns of idgate's own work on each token seen for the first time, next to a 15 µs RSA check.
//!
//! Sound because the lookup is by the segment's exact text: equal bytes decode and parse to the same header, so the
//! rules [`Engine::checked_header`](super::engine) applied when the segment was first seen (no `jwk`/`jku`/`x5u`/
//! `x5c`/`crit`, exactly the verifier's algorithm) hold for every later token that carries it. Only the `kid` is
//! remembered; the key is looked up in the key set on every token as before, so a withdrawn key stops working at
//! once. A segment is remembered only after a token carrying it passed every check, signature included, so only
//! headers Google signed can take a place: an attacker's headers never displace them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;

/// How many headers are remembered: Google publishes two or three keys at a time.
const PLACES: usize = 4;

/// A header segment that verified, and the `kid` it names.
struct KnownHeader {
    segment: Box<str>,
    kid: Arc<str>,
}

/// Up to [`PLACES`] header segments; the oldest place is reused when a new one is remembered.
pub(crate) struct KnownHeaders {
    places: [ArcSwapOption<KnownHeader>; PLACES],
    next: AtomicUsize,
    /// Lookups answered (tests: that the verifiers do take this path).
    #[cfg(test)]
    hits: AtomicUsize,
}

impl KnownHeaders {
    pub(crate) fn new() -> Self {
        Self {
            places: std::array::from_fn(|_| ArcSwapOption::empty()),
            next: AtomicUsize::new(0),
            #[cfg(test)]
            hits: AtomicUsize::new(0),
        }
    }

    /// The `kid` of `segment` when a token with exactly this header segment was accepted before, handed to `then`
    /// (borrowed, no copy); `None` when the segment is not known, and `then` is not called.
    pub(crate) fn with_kid<R>(&self, segment: &str, then: impl FnOnce(&str) -> R) -> Option<R> {
        for place in &self.places {
            let known = place.load();
            if let Some(known) = known.as_deref()
                && *known.segment == *segment
            {
                #[cfg(test)]
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Some(then(&known.kid));
            }
        }
        None
    }

    /// Remembers `segment` as the header of an accepted token signed by the key `kid`, unless it is already known.
    /// A write happens when a header not yet known passes: about once per key Google rotates in. (Two threads may
    /// remember the same new header at once and take two places; with more than four headers in circulation the
    /// places churn. Either costs speed, never correctness: a header not found is decoded and checked.)
    pub(crate) fn remember(&self, segment: &str, kid: &Arc<str>) {
        if self.with_kid(segment, |_| ()).is_some() {
            return;
        }
        let place = self.next.fetch_add(1, Ordering::Relaxed) % PLACES;
        self.places[place].store(Some(Arc::new(KnownHeader {
            segment: segment.into(),
            kid: kid.clone(),
        })));
    }

    /// How many places hold a header (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.places.iter().filter(|p| p.load().is_some()).count()
    }

    /// How many lookups found their header (tests).
    #[cfg(test)]
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_known_by_its_exact_text_only() {
        let headers = KnownHeaders::new();
        let kid: Arc<str> = Arc::from("k1");
        assert_eq!(
            headers.with_kid("eyJhbGciOiJSUzI1NiJ9", str::to_owned),
            None
        );
        headers.remember("eyJhbGciOiJSUzI1NiJ9", &kid);
        assert_eq!(
            headers.with_kid("eyJhbGciOiJSUzI1NiJ9", str::to_owned),
            Some("k1".to_owned())
        );
        // A prefix, an extension or one changed character is another header.
        for other in [
            "eyJhbGciOiJSUzI1NiJ",
            "eyJhbGciOiJSUzI1NiJ9A",
            "eyJhbGciOiJSUzI1NiJ8",
        ] {
            assert_eq!(headers.with_kid(other, str::to_owned), None, "{other}");
        }
    }

    #[test]
    fn remembering_is_bounded_and_does_not_repeat() {
        let headers = KnownHeaders::new();
        let kid: Arc<str> = Arc::from("k");
        headers.remember("h0", &kid);
        headers.remember("h0", &kid);
        assert_eq!(headers.len(), 1);
        for i in 1..10 {
            headers.remember(&format!("h{i}"), &kid);
        }
        assert_eq!(headers.len(), PLACES);
        // The newest are kept, the oldest places reused.
        assert!(headers.with_kid("h9", |_| ()).is_some());
        assert!(headers.with_kid("h0", |_| ()).is_none());
    }
}
