//! A per-thread cache of the last few tokens each thread verified, in front of the shared memo.
//!
//! A service sees few callers, and each presents the same token for up to an hour, so most requests on a thread
//! carry a token that thread has just seen. Comparing the token's bytes with a handful of recent ones costs tens of
//! nanoseconds; the shared memo costs a keyed hash of the whole token (about 1 KiB, see `memo_key`) and a concurrent
//! map lookup, several times more. Entries are matched on the exact bytes (no hash, so nothing can collide) and on
//! the verifier that accepted them (so one verifier's tokens never answer for another's), and the caller still
//! re-checks `exp`.
//!
//! Measured (`benches`' in-process layer probe, the same token on every request): the identity layer adds 593 ns to a
//! request; without the token cache 1,140 ns, without the caller cache 839 ns. Where every request carries a different
//! token (a pool of 1,024 tokens round robin) the token cache misses and its bookkeeping costs about 6 % of a memo hit
//! (1.49 vs 1.59 M verifications/s on one thread); real callers reuse one token for up to an hour, so it stays.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::memo_key::MemoKey;
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

/// Memo keys remembered per thread (see [`get_by_key`]): enough for a thousand distinct callers' tokens in flight
/// at once, about 64 bytes each (160 KiB per thread when full). When full, the map starts over: its entries are
/// copies of the shared memo's, so forgetting them costs one shared lookup each, never a verification.
const KEY_SLOTS: usize = 2048;

/// Hashed with std's `RandomState` (SipHash under a random key of the map's own), not with the memo key's bytes as
/// they are: every token presented is looked up here, and a memo key is linear in the token's bytes for a given
/// POLYVAL key (`memo_key`), so a bucket index taken from it would let the probe's timing tell an attacker linear
/// functions of memo keys. SipHash is a pseudorandom function of its input: its buckets say nothing about the key
/// hashed.
type KeyMap = std::collections::HashMap<(u64, MemoKey), Arc<dyn Any + Send + Sync>>;

thread_local! {
    static BY_KEY: RefCell<KeyMap> = RefCell::new(KeyMap::default());
}

/// The claims `verifier` accepted for the token whose memo key is `key`, if this thread has met them (verified
/// them, or found them in the shared memo).
///
/// Why a per-thread copy of the shared memo: a lookup in the shared concurrent map records the access in buffers
/// every thread writes to (moka's read log, for its eviction policy), so on a many-core machine each thread's hits
/// slow every other thread's. This map is touched by its own thread only. The caller re-checks `exp` and the key on
/// every hit, as for the shared memo.
pub(crate) fn get_by_key<C: Send + Sync + 'static>(verifier: u64, key: &MemoKey) -> Option<Arc<C>> {
    BY_KEY.with(|keys| {
        let keys = keys.borrow();
        let claims = keys.get(&(verifier, *key))?;
        claims.clone().downcast::<C>().ok()
    })
}

/// Remembers, on this thread, that `verifier` accepted the token whose memo key is `key`.
pub(crate) fn put_by_key<C: Send + Sync + 'static>(verifier: u64, key: MemoKey, claims: Arc<C>) {
    BY_KEY.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= KEY_SLOTS && !keys.contains_key(&(verifier, key)) {
            keys.clear();
        }
        keys.insert((verifier, key), claims);
    });
}

/// Forgets, on this thread, the token whose memo key is `key` (it expired, or its signing key was withdrawn).
pub(crate) fn forget_key(verifier: u64, key: &MemoKey) {
    BY_KEY.with(|keys| {
        keys.borrow_mut().remove(&(verifier, *key));
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
    fn memo_keys_are_per_verifier_per_thread_typed_and_bounded() {
        let (a, b) = (next_verifier_id(), next_verifier_id());
        let d = [7u8; 16];
        put_by_key(a, d, Arc::new(1u32));
        assert_eq!(get_by_key::<u32>(a, &d).as_deref(), Some(&1));
        assert!(
            get_by_key::<u32>(b, &d).is_none(),
            "another verifier's token"
        );
        assert!(get_by_key::<u64>(a, &d).is_none(), "another claims type");
        assert!(get_by_key::<u32>(a, &[8u8; 16]).is_none());
        std::thread::spawn(move || assert!(get_by_key::<u32>(a, &d).is_none(), "per thread"))
            .join()
            .unwrap();
        forget_key(a, &d);
        assert!(get_by_key::<u32>(a, &d).is_none(), "forgotten");
        // Bounded: past KEY_SLOTS the map starts over, and never holds more.
        for i in 0..=KEY_SLOTS {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            put_by_key(b, key, Arc::new(0u32));
            BY_KEY.with(|keys| assert!(keys.borrow().len() <= KEY_SLOTS));
        }
        BY_KEY.with(|keys| assert_eq!(keys.borrow().len(), 1));
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
