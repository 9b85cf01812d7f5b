//! The process's copy of sessions' users (see `session::RecentUser`), in two tiers: a shared bounded cache with a
//! time to live, and in front of it each thread's last few answers.
//!
//! Why the front: a signed-in request is answered from this copy, and a lookup in the shared cache (moka) costs
//! about 150 ns even uncontended (it records every read for its eviction policy, in buffers all threads write),
//! close to a tenth of what a signed-in request adds. The front is a comparison of session IDs in a thread-local
//! array.
//!
//! Why it is never staler than the shared cache: every write to the shared cache (a store read inserting a
//! session's user, a logout or sign-in dropping one) bumps a generation counter first read by every lookup, and a
//! front entry is used only while the generation it was taken at is still current, and only within the time to
//! live of the read it copies. So a front entry is exactly what the shared cache would have answered, unless the
//! shared cache had since dropped it for room, which is about memory, not freshness. Writes are rare (one per
//! session per time to live, plus logouts): between them, the lookups of all threads share one read-only line.

use std::any::Any;
use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tower_sessions::session::Id;

/// Entries per thread: a thread serves a few users at a time; this is "the session I just answered", not a second
/// cache.
const FRONT_SLOTS: usize = 4;

/// A value and when it was read from the store (the time to live runs from then, in every tier).
pub(crate) struct Stamped<V> {
    read_at: Instant,
    value: V,
}

impl<V> Deref for Stamped<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.value
    }
}

/// See the module docs.
pub(crate) struct LocalCopy<V> {
    shared: moka::sync::Cache<Id, Arc<Stamped<V>>>,
    ttl: Duration,
    /// This copy's identity in the per-thread fronts (several sign-ins may share a process).
    owner: u64,
    /// Bumped after every write to `shared`; a front entry taken at an older generation is not used.
    generation: AtomicU64,
}

struct FrontEntry {
    owner: u64,
    id: Id,
    generation: u64,
    value: Arc<dyn Any + Send + Sync>,
}

struct Front {
    slots: [Option<FrontEntry>; FRONT_SLOTS],
    next: usize,
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front { slots: [const { None }; FRONT_SLOTS], next: 0 })
    };
}

impl<V: Send + Sync + 'static> LocalCopy<V> {
    /// At most `capacity` values, each used for at most `ttl` after it was read.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);
        Self {
            shared: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            ttl,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    /// The value held for `id`, read from the store less than the time to live ago.
    pub(crate) fn get(&self, id: &Id) -> Option<Arc<Stamped<V>>> {
        // Read before the shared cache is, so that a write racing this lookup leaves the front entry it makes stale.
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(hit) = self.front_get(id, generation)
            && hit.read_at.elapsed() < self.ttl
        {
            return Some(hit);
        }
        let found = self.shared.get(id)?;
        self.front_put(*id, generation, found.clone());
        Some(found)
    }

    /// Holds `value`, just read from the store, for `id`.
    pub(crate) fn insert(&self, id: Id, value: V) {
        self.shared.insert(
            id,
            Arc::new(Stamped {
                read_at: Instant::now(),
                value,
            }),
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops the value held for `id`, in every tier of every thread.
    pub(crate) fn invalidate(&self, id: &Id) {
        self.shared.invalidate(id);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn front_get(&self, id: &Id, generation: u64) -> Option<Arc<Stamped<V>>> {
        FRONT.with(|front| {
            let front = front.borrow();
            let entry = front
                .slots
                .iter()
                .flatten()
                .find(|e| e.owner == self.owner && e.id == *id && e.generation == generation)?;
            entry.value.clone().downcast::<Stamped<V>>().ok()
        })
    }

    fn front_put(&self, id: Id, generation: u64, value: Arc<Stamped<V>>) {
        // The entry replaced is dropped after the borrow ends: dropping a value runs its destructors, and none of
        // them may find this thread's front borrowed.
        let _replaced = FRONT.with(|front| {
            let mut front = front.borrow_mut();
            let entry = FrontEntry {
                owner: self.owner,
                id,
                generation,
                value,
            };
            // The same session again (a newer copy): its place, else the oldest.
            let place = front
                .slots
                .iter()
                .position(|e| {
                    e.as_ref()
                        .is_some_and(|e| e.owner == self.owner && e.id == id)
                })
                .unwrap_or(front.next);
            if place == front.next {
                front.next = (place + 1) % FRONT_SLOTS;
            }
            front.slots[place].replace(entry)
        });
    }

    /// Whether this thread's front holds an entry for `id` (tests).
    #[cfg(test)]
    fn in_front(&self, id: &Id) -> bool {
        FRONT.with(|front| {
            front
                .borrow()
                .slots
                .iter()
                .flatten()
                .any(|e| e.owner == self.owner && e.id == *id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i128) -> Id {
        Id(n)
    }

    #[test]
    fn a_value_is_answered_by_the_front_only_while_nothing_was_written() {
        let copy = LocalCopy::<String>::new(100, Duration::from_secs(60));
        assert!(copy.get(&id(1)).is_none());
        copy.insert(id(1), "alice".to_owned());
        assert_eq!(
            copy.get(&id(1)).as_deref().map(|s| s.as_str()),
            Some("alice")
        );
        assert!(copy.in_front(&id(1)));
        // Answered again (from the front).
        assert_eq!(
            copy.get(&id(1)).as_deref().map(|s| s.as_str()),
            Some("alice")
        );

        // A newer read of the same session replaces what every front answers.
        copy.insert(id(1), "alice, renamed".to_owned());
        assert_eq!(
            copy.get(&id(1)).as_deref().map(|s| s.as_str()),
            Some("alice, renamed")
        );
        // Dropped (a logout): gone from the front too, at once.
        copy.invalidate(&id(1));
        assert!(copy.get(&id(1)).is_none());
    }

    #[test]
    fn another_thread_sees_a_drop_at_once() {
        let copy = Arc::new(LocalCopy::<String>::new(100, Duration::from_secs(60)));
        copy.insert(id(7), "bob".to_owned());
        let reader = |copy: Arc<LocalCopy<String>>| {
            std::thread::spawn(move || copy.get(&id(7)).map(|s| s.value.clone()))
        };
        // The main thread's front holds it too.
        assert!(copy.get(&id(7)).is_some());
        assert!(copy.in_front(&id(7)));
        assert_eq!(reader(copy.clone()).join().unwrap().as_deref(), Some("bob"));
        copy.invalidate(&id(7));
        assert_eq!(reader(copy.clone()).join().unwrap(), None);
        assert!(
            copy.get(&id(7)).is_none(),
            "this thread's front entry is stale"
        );
    }

    #[test]
    fn the_front_keeps_the_time_to_live_of_the_read() {
        let copy = LocalCopy::<String>::new(100, Duration::from_millis(50));
        copy.insert(id(3), "carol".to_owned());
        assert!(copy.get(&id(3)).is_some());
        assert!(copy.in_front(&id(3)));
        std::thread::sleep(Duration::from_millis(80));
        assert!(copy.get(&id(3)).is_none());
    }

    #[test]
    fn copies_and_sessions_are_kept_apart() {
        let (one, two) = (
            LocalCopy::<String>::new(100, Duration::from_secs(60)),
            LocalCopy::<String>::new(100, Duration::from_secs(60)),
        );
        one.insert(id(1), "one's".to_owned());
        // `two` written once too, so both are at the same generation: only the owner tells `one`'s front entry
        // from one of `two`'s.
        two.insert(id(2), "two's".to_owned());
        assert!(one.get(&id(1)).is_some());
        assert!(two.get(&id(1)).is_none(), "another sign-in's copy");
        assert!(one.get(&id(2)).is_none(), "another session");
        // More sessions than the front has places: each still answered (from the shared tier when not in front).
        for n in 10..20 {
            one.insert(id(n), format!("user {n}"));
        }
        for n in 10..20 {
            assert_eq!(
                one.get(&id(n)).map(|s| s.value.clone()),
                Some(format!("user {n}"))
            );
        }
    }
}
