//! A per-thread cache of the last few tokens each thread verified, in front of the shared memo.
//!
//! A service sees few callers, and each presents the same token for up to an hour, so most requests on a thread
//! carry a token that thread has just seen. Comparing the token's bytes with a handful of recent ones costs tens of
//! nanoseconds; the shared memo costs a SHA-256 of the whole token (about 1 KiB) and a concurrent map lookup, several
//! times more. Entries are matched on the exact bytes (no digest, so nothing can collide) and on the verifier that
//! accepted them (so one verifier's tokens never answer for another's), and the caller still re-checks `exp`.
//!
//! Measured (`benches`' in-process layer probe, the same token on every request): the identity layer adds 593 ns to
//! a request; without the token cache 1,140 ns, without the caller cache 839 ns. Where every request carries a different token (a
//! pool of 1,024 tokens round robin) the token cache misses and its bookkeeping costs about 6 % of a memo hit
//! (1.49 vs 1.59 M verifications/s on one thread); real callers reuse one token for up to an hour, so it stays.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::{Caller, IdentityError};

/// Tokens remembered per thread. Small on purpose: this is a cache of "the token I just saw", not a second memo.
const SLOTS: usize = 4;

struct Entry {
    verifier: u64,
    token: Box<str>,
    claims: Arc<dyn Any + Send + Sync>,
}

struct Recent {
    slots: [Option<Entry>; SLOTS],
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = const { RefCell::new(Recent { slots: [const { None }; SLOTS], next: 0 }) };
}

/// A process-unique identity for a verifier's engine.
pub(crate) fn next_verifier_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The claims `verifier` accepted for exactly `token`, if this thread verified it recently.
pub(crate) fn get<C: Send + Sync + 'static>(verifier: u64, token: &str) -> Option<Arc<C>> {
    RECENT.with(|recent| {
        let recent = recent.borrow();
        let entry = recent
            .slots
            .iter()
            .flatten()
            .find(|e| e.verifier == verifier && *e.token == *token)?;
        entry.claims.clone().downcast::<C>().ok()
    })
}

/// Remembers that `verifier` accepted `token`, replacing this thread's oldest entry.
pub(crate) fn put<C: Send + Sync + 'static>(verifier: u64, token: &str, claims: Arc<C>) {
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let slot = recent.next;
        recent.next = (slot + 1) % SLOTS;
        recent.slots[slot] = Some(Entry {
            verifier,
            token: token.into(),
            claims,
        });
    });
}

/// Digests remembered per thread (see [`get_by_digest`]): enough for a thousand distinct callers' tokens in flight
/// at once, about 64 bytes each (160 KiB per thread when full). When full, the map starts over: its entries are
/// copies of the shared memo's, so forgetting them costs one shared lookup each, never a verification.
const DIGEST_SLOTS: usize = 2048;

/// A SHA-256 digest is already uniformly distributed: its first eight bytes, mixed with the verifier's ID, are the
/// hash. (Only digests of tokens that passed verification are ever inserted, so no client chooses them.)
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

type DigestMap = std::collections::HashMap<
    (u64, [u8; 32]),
    Arc<dyn Any + Send + Sync>,
    std::hash::BuildHasherDefault<DigestHasher>,
>;

thread_local! {
    static DIGESTS: RefCell<DigestMap> = RefCell::new(DigestMap::default());
}

/// The claims `verifier` accepted for the token whose SHA-256 is `digest`, if this thread has met them (verified
/// them, or found them in the shared memo).
///
/// Why a per-thread copy of the shared memo: a lookup in the shared concurrent map records the access in buffers
/// every thread writes to (moka's read log, for its eviction policy), so on a many-core machine each thread's hits
/// slow every other thread's. This map is touched by its own thread only. The caller re-checks `exp` and the key on
/// every hit, as for the shared memo.
pub(crate) fn get_by_digest<C: Send + Sync + 'static>(
    verifier: u64,
    digest: &[u8; 32],
) -> Option<Arc<C>> {
    DIGESTS.with(|digests| {
        let digests = digests.borrow();
        let claims = digests.get(&(verifier, *digest))?;
        claims.clone().downcast::<C>().ok()
    })
}

/// Remembers, on this thread, that `verifier` accepted the token whose SHA-256 is `digest`.
pub(crate) fn put_by_digest<C: Send + Sync + 'static>(
    verifier: u64,
    digest: [u8; 32],
    claims: Arc<C>,
) {
    DIGESTS.with(|digests| {
        let mut digests = digests.borrow_mut();
        if digests.len() >= DIGEST_SLOTS && !digests.contains_key(&(verifier, digest)) {
            digests.clear();
        }
        digests.insert((verifier, digest), claims);
    });
}

/// Forgets, on this thread, the token whose SHA-256 is `digest` (it expired, or its key was withdrawn).
pub(crate) fn forget_digest(verifier: u64, digest: &[u8; 32]) {
    DIGESTS.with(|digests| {
        digests.borrow_mut().remove(&(verifier, *digest));
    });
}

/// The callers derived from the last few verified claims each thread saw, keyed by the claims' identity (a memoized
/// token comes back as the same `Arc`). Each slot holds a strong reference, so an address cannot be reused by other
/// claims while it is cached.
struct RecentCallers {
    slots: [Option<(Arc<dyn Any + Send + Sync>, Result<Caller, IdentityError>)>; SLOTS],
    next: usize,
}

thread_local! {
    static RECENT_CALLERS: RefCell<RecentCallers> =
        const { RefCell::new(RecentCallers { slots: [const { None }; SLOTS], next: 0 }) };
}

/// The caller `claims` name: from this thread's cache when the same claims were seen recently, else `derive()`d
/// and cached. [`Caller`]s are cheap to clone, so a repeat caller costs a pointer comparison.
pub(crate) fn caller<C: Send + Sync + 'static>(
    claims: &Arc<C>,
    derive: impl FnOnce() -> Result<Caller, IdentityError>,
) -> Result<Caller, IdentityError> {
    let key = Arc::as_ptr(claims).cast::<()>();
    let cached = RECENT_CALLERS.with(|recent| {
        let recent = recent.borrow();
        recent
            .slots
            .iter()
            .flatten()
            .find(|(held, _)| Arc::as_ptr(held).cast::<()>() == key)
            .map(|(_, caller)| caller.clone())
    });
    if let Some(caller) = cached {
        return caller;
    }
    let caller = derive();
    RECENT_CALLERS.with(|recent| {
        let mut recent = recent.borrow_mut();
        let slot = recent.next;
        recent.next = (slot + 1) % SLOTS;
        let held: Arc<dyn Any + Send + Sync> = claims.clone();
        recent.slots[slot] = Some((held, caller.clone()));
    });
    caller
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_per_verifier_per_thread_typed_and_bounded() {
        let (a, b) = (next_verifier_id(), next_verifier_id());
        let d = [7u8; 32];
        put_by_digest(a, d, Arc::new(1u32));
        assert_eq!(get_by_digest::<u32>(a, &d).as_deref(), Some(&1));
        assert!(
            get_by_digest::<u32>(b, &d).is_none(),
            "another verifier's token"
        );
        assert!(get_by_digest::<u64>(a, &d).is_none(), "another claims type");
        assert!(get_by_digest::<u32>(a, &[8u8; 32]).is_none());
        std::thread::spawn(move || assert!(get_by_digest::<u32>(a, &d).is_none(), "per thread"))
            .join()
            .unwrap();
        forget_digest(a, &d);
        assert!(get_by_digest::<u32>(a, &d).is_none(), "forgotten");
        // Bounded: past DIGEST_SLOTS the map starts over, and never holds more.
        for i in 0..=DIGEST_SLOTS {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_le_bytes());
            put_by_digest(b, digest, Arc::new(0u32));
            DIGESTS.with(|digests| assert!(digests.borrow().len() <= DIGEST_SLOTS));
        }
        DIGESTS.with(|digests| assert_eq!(digests.borrow().len(), 1));
    }

    #[test]
    fn exact_token_and_verifier_only_and_bounded() {
        let (a, b) = (next_verifier_id(), next_verifier_id());
        put(a, "tok.en.1", Arc::new(1u32));
        assert_eq!(get::<u32>(a, "tok.en.1").as_deref(), Some(&1));
        assert!(
            get::<u32>(b, "tok.en.1").is_none(),
            "another verifier's token"
        );
        assert!(get::<u32>(a, "tok.en.2").is_none());
        assert!(
            get::<u32>(a, "tok.en.").is_none(),
            "a prefix is not the token"
        );
        assert!(get::<u64>(a, "tok.en.1").is_none(), "another claims type");
        for i in 0..SLOTS {
            put(a, &format!("other.{i}.x"), Arc::new(0u32));
        }
        assert!(
            get::<u32>(a, "tok.en.1").is_none(),
            "the oldest entry was replaced"
        );
        std::thread::spawn(move || assert!(get::<u32>(a, "other.0.x").is_none(), "per thread"))
            .join()
            .unwrap();
    }
}
