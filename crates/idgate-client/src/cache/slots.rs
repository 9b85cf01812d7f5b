//! The cache's map from key (an audience, a scope set) to its [`Slot`]: read on every attach without a lock or a
//! shared write, copied when a key is first seen.
//!
//! A client calls a handful of audiences (scope sets) and adds one rarely, each time with a mint, which takes a
//! network round trip: so the map is a snapshot behind an [`ArcSwap`], replaced whole when a key is added. The warm
//! path (every request an adapter sends) is one `ArcSwap` load and one hash lookup. moka, which this replaced,
//! recorded every read in a shared buffer and ran its housekeeping inline: on the wire, with the client's caches
//! cold between two requests, that lookup cost about 0.8 µs of the ~2.3 µs `IdTokenMiddleware` added
//! (`benches/`, 2026-12-03).
//!
//! Bounded like moka was: at most `capacity` keys, and a key unused for [`IDLE`] is let go. Both are enforced when a
//! key is added (the only time the map grows); there is no background task.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::slot::Slot;

/// A key nobody asked for in this long holds only an expired token; it is dropped when the next key is added.
pub(super) const IDLE: Duration = Duration::from_secs(2 * 3600);

pub(super) struct Slots<K, T> {
    map: ArcSwap<HashMap<K, Arc<Slot<T>>>>,
    /// Held while a key is added (and by `clear`), so that two keys added at once do not drop one another. Readers
    /// never take it.
    adding: Mutex<()>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, T> Slots<K, T> {
    /// An empty map holding at most `capacity` keys (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            capacity: capacity.max(1),
        }
    }

    /// `f` on the key's slot, if it has one: the warm path, which neither locks nor clones the slot's `Arc`.
    pub(super) fn with<Q, R>(&self, key: &Q, f: impl FnOnce(&Slot<T>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.load().get(key).map(|slot| f(slot))
    }

    /// The key's slot, if it has one.
    pub(super) fn get<Q>(&self, key: &Q) -> Option<Arc<Slot<T>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.load().get(key).cloned()
    }

    /// The key's slot, added empty when it has none (`owned` makes the key to store), its use recorded at `now`.
    /// Adding first drops the keys idle for [`IDLE`] at `now`, then, while the map is full, the least recently used.
    pub(super) fn get_or_add<Q>(
        &self,
        key: &Q,
        owned: impl FnOnce(&Q) -> K,
        now: SystemTime,
    ) -> Arc<Slot<T>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(slot) = self.get(key) {
            // Touched now, so that a key idle until this call is not dropped by another key's insert before the
            // caller's mint touches it.
            slot.touch(now);
            return slot;
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(slot) = current.get(key) {
            slot.touch(now);
            return Arc::clone(slot);
        }
        // A slot somebody holds (a mint in flight, a caller about to use it) is kept while another can go: dropping
        // it would orphan that mint and make the next caller mint again. Held means more than the map's own
        // reference; an older snapshot still read by another thread also counts, which only delays an eviction.
        let held = |slot: &Arc<Slot<T>>| Arc::strong_count(slot) > 1;
        let mut map: HashMap<K, Arc<Slot<T>>> = current
            .iter()
            .filter(|(_, slot)| held(slot) || !slot.idle_for(IDLE, now))
            .map(|(key, slot)| (key.clone(), Arc::clone(slot)))
            .collect();
        while map.len() >= self.capacity {
            // The least recently used of the slots nobody holds, else of all. Every slot here is referenced by
            // `current` and by the new map: a third reference is a holder.
            let oldest = |only_free: bool| {
                map.iter()
                    .filter(|(_, slot)| !only_free || Arc::strong_count(slot) <= 2)
                    .min_by_key(|(_, slot)| slot.last_used())
                    .map(|(key, _)| key.clone())
            };
            let Some(oldest) = oldest(true).or_else(|| oldest(false)) else {
                break;
            };
            map.remove::<K>(&oldest);
        }
        let slot = Arc::new(Slot::default());
        slot.touch(now);
        map.insert(owned(key), Arc::clone(&slot));
        self.map.store(Arc::new(map));
        slot
    }

    /// Forgets every key. A caller holding a slot keeps it until it is done; the next lookup starts afresh.
    pub(super) fn clear(&self) {
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        self.map.store(Arc::new(HashMap::new()));
    }

    /// How many keys are held.
    pub(super) fn len(&self) -> usize {
        self.map.load().len()
    }
}
