//! The process's copy of sessions' users (see `session::RecentUser`), in two tiers: a shared bounded cache, and in
//! front of it each thread's last few answers; and the sessions this process ended, so that no copy of one comes
//! back.
//!
//! Why the front: a signed-in request is answered from this copy, and a lookup in the shared cache (moka) costs
//! about 150 ns even uncontended (it records every read for its eviction policy, in buffers all threads write),
//! close to a tenth of what a signed-in request adds. The front is a comparison of session IDs in a thread-local
//! array.
//!
//! Why it is never staler than the shared cache: every write to the shared cache (a store read inserting a
//! session's user, a logout or sign-in dropping one) bumps a generation counter after it, and a lookup reads the
//! counter before it reads anything else; a front entry is used only while the generation it was taken at is still
//! current, and only within the time to live of the store read it copies. So a front entry is exactly what the
//! shared cache would have answered, unless the shared cache had since dropped it for room, which is about memory,
//! not freshness. The counters are sharded by session ID, each on its own cache line: a write makes stale only the
//! front entries of its shard, and between writes the lookups of all threads share read-only lines.
//!
//! Why an ended session cannot come back: [`LocalCopy::forget`] marks the session forgotten and then drops it, and
//! [`LocalCopy::insert`] checks the mark and inserts as one step under the shard's lock (the same lock the drop
//! takes). A store read that began before a logout and finishes after it therefore either inserts before the drop
//! (and is dropped) or sees the mark (and inserts nothing). Only writes take the lock; lookups never do.
//!
//! Ages are measured on the monotonic clock (`Instant`), not on the sign-in's injectable clock: the time to live
//! bounds how stale an answer really is. A front entry that can no longer be used (its session forgotten, its copy
//! dropped) still holds its value until the thread puts another answer in its place; it is never answered again.

use std::any::Any;
use std::cell::RefCell;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tower_sessions::session::Id;

/// Entries per thread: a thread serves a few users at a time; this is "the session I just answered", not a second
/// cache.
const FRONT_SLOTS: usize = 4;
/// Generation counters (and write locks) per copy: a write makes stale only the front entries of its shard's
/// sessions, a 64th of them.
const SHARDS: usize = 64;

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

/// A shard's generation and write lock, alone on a cache line (128 bytes: two 64-byte lines, which adjacent-line
/// prefetchers fetch together) so that a write to one shard does not evict another's counter from readers' caches.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    /// Bumped after every write to the shared cache for a session of this shard.
    generation: AtomicU64,
    /// Held across "check the forgotten mark, insert" and "drop" for a session of this shard.
    write: Mutex<()>,
}

/// See the module docs.
pub(crate) struct LocalCopy<V> {
    shared: moka::sync::Cache<Id, Arc<Stamped<V>>>,
    ttl: Duration,
    /// Sessions this process ended or replaced (shared with the session store's wrapper, see [`Forgotten`]).
    forgotten: Forgotten,
    /// This copy's identity in the per-thread fronts (several sign-ins may share a process).
    owner: u64,
    shards: Box<[Shard; SHARDS]>,
}

/// The sessions this process ended or replaced (logout, sign-in, an ended session), remembered for longer than a
/// store read or write can take, so that one in flight cannot bring a session back: the copy refuses to hold it,
/// and the session store's wrapper (`AnySessionStore`) deletes it again after a save. A handle: clones share the
/// marks.
#[derive(Clone)]
pub(crate) struct Forgotten(moka::sync::Cache<Id, ()>);

impl Forgotten {
    /// At most `capacity` marks, each kept for `forgotten_for`.
    pub(crate) fn new(capacity: u64, forgotten_for: Duration) -> Self {
        // Least recently used out first: the newest marks are the ones a read or write in flight may still meet.
        // (moka's default policy admits a new entry into a full cache only if it is asked for more often than the
        // one it would replace, and `contains_key` counts nothing: past `capacity` marks, every new mark would be
        // refused.)
        Self(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(forgotten_for)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
        )
    }

    /// Whether `id` was marked (and the mark is not yet past its time).
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.0.contains_key(id)
    }

    fn mark(&self, id: Id) {
        self.0.insert(id, ());
    }
}

struct FrontEntry {
    owner: u64,
    id: Id,
    generation: u64,
    value: Arc<dyn Any + Send + Sync>,
}

impl FrontEntry {
    /// Whether this entry is the copy `owner` holds of session `id` (of any generation).
    fn holds(&self, owner: u64, id: &Id) -> bool {
        self.owner == owner && self.id == *id
    }
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
    /// At most `capacity` values, each used for at most `ttl` after its store read began; sessions are marked
    /// forgotten in `forgotten`.
    pub(crate) fn new(capacity: u64, ttl: Duration, forgotten: Forgotten) -> Self {
        static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);
        Self {
            // Its own time to live only frees memory: `get` judges freshness by `read_at`, which is never later
            // than the insertion moka counts from.
            shared: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            ttl,
            forgotten,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            shards: Box::new(std::array::from_fn(|_| Shard::default())),
        }
    }

    /// The value held for `id`, if its store read began less than the time to live ago.
    pub(crate) fn get(&self, id: &Id) -> Option<Arc<Stamped<V>>> {
        // Read before anything else, so that a write racing this lookup leaves the front entry it makes stale.
        let generation = self.shard(id).generation.load(Ordering::SeqCst);
        if let Some(hit) = self.front_get(id, generation) {
            // Still current, so the shared cache holds this very value (or dropped it for room): its age is final.
            return self.fresh(hit);
        }
        let found = self.fresh(self.shared.get(id)?)?;
        self.front_put(*id, generation, found.clone());
        Some(found)
    }

    /// Holds `value` for `id`, from a store read that began at `read_at`, unless `id` was forgotten (then `false`,
    /// and nothing is held) or a read that began later is already held (that one is kept).
    pub(crate) fn insert(&self, id: Id, read_at: Instant, value: V) -> bool {
        let shard = self.shard(&id);
        let _write = shard.write.lock().unwrap_or_else(PoisonError::into_inner);
        if self.forgotten.contains(&id) {
            return false;
        }
        // Two requests read the same session at once, and the later read (say, one that pushed the idle deadline
        // back) was held first: the earlier one would only cost a store read more.
        if self
            .shared
            .get(&id)
            .is_some_and(|held| held.read_at > read_at)
        {
            return true;
        }
        self.shared.insert(id, Arc::new(Stamped { read_at, value }));
        shard.generation.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Drops the value held for `id`, in every tier of every thread, and refuses it from any store read still in
    /// flight (see the module docs).
    pub(crate) fn forget(&self, id: Id) {
        let shard = self.shard(&id);
        let _write = shard.write.lock().unwrap_or_else(PoisonError::into_inner);
        self.forgotten.mark(id);
        self.shared.invalidate(&id);
        shard.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether this process ended or replaced the session `id` lately.
    pub(crate) fn was_forgotten(&self, id: &Id) -> bool {
        self.forgotten.contains(id)
    }

    fn shard(&self, id: &Id) -> &Shard {
        // Session IDs are random 128-bit numbers the store made (a cookie naming any other finds nothing to copy).
        let bits = id.0 as u128;
        let folded = (bits ^ (bits >> 64)) as u64;
        &self.shards[(folded % SHARDS as u64) as usize]
    }

    fn fresh(&self, value: Arc<Stamped<V>>) -> Option<Arc<Stamped<V>>> {
        (value.read_at.elapsed() < self.ttl).then_some(value)
    }

    fn front_get(&self, id: &Id, generation: u64) -> Option<Arc<Stamped<V>>> {
        // `try_with`: during this thread's teardown the front is gone, and the shared cache answers alone.
        FRONT
            .try_with(|front| {
                let front = front.borrow();
                let entry = front
                    .slots
                    .iter()
                    .flatten()
                    .find(|e| e.holds(self.owner, id) && e.generation == generation)?;
                entry.value.clone().downcast::<Stamped<V>>().ok()
            })
            .ok()
            .flatten()
    }

    fn front_put(&self, id: Id, generation: u64, value: Arc<Stamped<V>>) {
        // The entry replaced is dropped after the borrow ends: dropping a value runs its destructors, and none of
        // them may find this thread's front borrowed.
        let _replaced = FRONT.try_with(|front| {
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
                .position(|e| e.as_ref().is_some_and(|e| e.holds(self.owner, &id)))
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
                .any(|e| e.holds(self.owner, id))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::AtomicBool;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const FORGOTTEN_FOR: Duration = Duration::from_secs(600);

    fn id(n: i128) -> Id {
        Id(n)
    }

    fn copy(ttl: Duration) -> LocalCopy<String> {
        LocalCopy::new(100, ttl, Forgotten::new(100, FORGOTTEN_FOR))
    }

    fn read(copy: &LocalCopy<String>, n: i128) -> Option<String> {
        copy.get(&id(n)).map(|s| s.value.clone())
    }

    #[test]
    fn a_value_is_answered_by_the_front_only_while_nothing_was_written() {
        let copy = copy(MINUTE);
        assert!(copy.get(&id(1)).is_none());
        assert!(copy.insert(id(1), Instant::now(), "alice".to_owned()));
        assert_eq!(read(&copy, 1).as_deref(), Some("alice"));
        assert!(copy.in_front(&id(1)));
        // Answered again (from the front).
        assert_eq!(read(&copy, 1).as_deref(), Some("alice"));

        // A newer read of the same session replaces what every front answers.
        assert!(copy.insert(id(1), Instant::now(), "alice, renamed".to_owned()));
        assert_eq!(read(&copy, 1).as_deref(), Some("alice, renamed"));
        // Forgotten (a logout): gone from the front too, at once.
        copy.forget(id(1));
        assert!(copy.get(&id(1)).is_none());
    }

    #[test]
    fn another_thread_sees_a_drop_at_once() {
        let copy = Arc::new(copy(MINUTE));
        copy.insert(id(7), Instant::now(), "bob".to_owned());
        let reader = |copy: Arc<LocalCopy<String>>| std::thread::spawn(move || read(&copy, 7));
        // The main thread's front holds it too.
        assert!(copy.get(&id(7)).is_some());
        assert!(copy.in_front(&id(7)));
        assert_eq!(reader(copy.clone()).join().unwrap().as_deref(), Some("bob"));
        copy.forget(id(7));
        assert_eq!(reader(copy.clone()).join().unwrap(), None);
        assert!(
            copy.get(&id(7)).is_none(),
            "this thread's front entry is stale"
        );
    }

    #[test]
    fn the_front_keeps_the_time_to_live_of_the_read() {
        let copy = copy(Duration::from_secs(2));
        copy.insert(id(3), Instant::now(), "carol".to_owned());
        assert!(copy.get(&id(3)).is_some());
        assert!(copy.in_front(&id(3)));
        std::thread::sleep(Duration::from_millis(2_100));
        assert!(copy.get(&id(3)).is_none());
    }

    #[test]
    fn an_earlier_read_does_not_replace_a_later_one() {
        let copy = copy(MINUTE);
        let earlier = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .expect("the clock runs past a second");
        assert!(copy.insert(id(6), Instant::now(), "refreshed".to_owned()));
        assert!(copy.insert(id(6), earlier, "before the refresh".to_owned()));
        assert_eq!(read(&copy, 6).as_deref(), Some("refreshed"));
    }

    /// The forgotten marks are bounded; past the bound the oldest go, never the newest (which a read in flight may
    /// still meet).
    #[test]
    fn the_newest_forgotten_marks_are_kept_when_there_are_too_many() {
        let copy = LocalCopy::<String>::new(2, MINUTE, Forgotten::new(2, FORGOTTEN_FOR));
        for n in 1..=10 {
            copy.forget(id(n));
            copy.forgotten.0.run_pending_tasks();
        }
        assert!(copy.was_forgotten(&id(10)));
        assert!(!copy.insert(id(10), Instant::now(), "logged out".to_owned()));
        assert!(copy.get(&id(10)).is_none());
        assert!(copy.forgotten.0.entry_count() <= 2);
    }

    #[test]
    fn the_time_to_live_runs_from_when_the_store_read_began() {
        // A read that took most of the time to live leaves a copy good for the rest of it only, in both tiers.
        let copy = copy(Duration::from_millis(300));
        let began = Instant::now()
            .checked_sub(Duration::from_millis(250))
            .expect("the clock runs past 250 ms");
        copy.insert(id(4), began, "dave".to_owned());
        std::thread::sleep(Duration::from_millis(60));
        assert!(copy.get(&id(4)).is_none(), "answered past its time to live");

        // A read that outlasted the time to live leaves nothing to answer, not even once.
        let too_old = Instant::now()
            .checked_sub(Duration::from_millis(400))
            .expect("the clock runs past 400 ms");
        copy.insert(id(5), too_old, "erin".to_owned());
        assert!(copy.get(&id(5)).is_none());
        assert!(!copy.in_front(&id(5)));
    }

    #[test]
    fn a_forgotten_session_is_not_copied_again() {
        let copy = copy(MINUTE);
        copy.forget(id(9));
        assert!(copy.was_forgotten(&id(9)));
        // A store read that began before the logout and finished after it.
        assert!(!copy.insert(id(9), Instant::now(), "mallory".to_owned()));
        assert!(copy.get(&id(9)).is_none());
        assert!(!copy.was_forgotten(&id(10)));
    }

    #[test]
    fn copies_and_sessions_are_kept_apart() {
        let (one, two) = (copy(MINUTE), copy(MINUTE));
        one.insert(id(1), Instant::now(), "one's".to_owned());
        // The same session ID written in `two` too, so the shard and generation are the same: only the owner tells
        // `one`'s front entry from `two`'s.
        two.insert(id(1), Instant::now(), "two's".to_owned());
        assert_eq!(read(&one, 1).as_deref(), Some("one's"));
        assert_eq!(read(&two, 1).as_deref(), Some("two's"));
        assert_eq!(read(&one, 1).as_deref(), Some("one's"));
        assert!(one.get(&id(2)).is_none(), "another session");
        two.forget(id(1));
        assert_eq!(
            read(&one, 1).as_deref(),
            Some("one's"),
            "forgotten in `two` only"
        );
        // More sessions than the front has places: each still answered (from the shared tier when not in front).
        for n in 10..20 {
            one.insert(id(n), Instant::now(), format!("user {n}"));
        }
        for n in 10..20 {
            assert_eq!(read(&one, n), Some(format!("user {n}")));
        }
    }

    #[test]
    fn a_write_to_one_shard_leaves_the_fronts_of_others_current() {
        let copy = copy(MINUTE);
        let other = (2..1_000)
            .map(id)
            .find(|other| !std::ptr::eq(copy.shard(other), copy.shard(&id(1))))
            .expect("another shard");
        copy.insert(id(1), Instant::now(), "frank".to_owned());
        let generation = copy.shard(&id(1)).generation.load(Ordering::SeqCst);
        assert!(copy.get(&id(1)).is_some());
        copy.insert(other, Instant::now(), "grace".to_owned());
        copy.forget(other);
        assert_eq!(
            copy.shard(&id(1)).generation.load(Ordering::SeqCst),
            generation
        );
        assert!(copy.front_get(&id(1), generation).is_some());
    }

    /// A writer and readers race; a lookup must never answer older than a write that finished before it began
    /// (which a generation bumped before the shared cache is written would allow: a reader copies the old value
    /// into its front at the new generation).
    #[test]
    fn no_lookup_is_older_than_a_finished_write() {
        const WRITES: i64 = 30_000;
        // Per session `k`: step `3k` inserts it, step `3k + 1` inserts it again (a newer read), step `3k + 2`
        // forgets it (a forgotten session stays forgotten, so each round has its own). `started` is the step under
        // way, `finished` the last one done; a value is the step that inserted it.
        let (started, finished) = (
            Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            Arc::new(std::sync::atomic::AtomicI64::new(-1)),
        );
        let done = Arc::new(AtomicBool::new(false));
        let copy = Arc::new(copy(MINUTE));
        let session = |step: i64| id(i128::from(step / 3) * 1_000_003);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (started, finished, done, copy) = (
                    started.clone(),
                    finished.clone(),
                    done.clone(),
                    copy.clone(),
                );
                std::thread::spawn(move || {
                    let mut checked = 0u64;
                    while !done.load(Ordering::SeqCst) {
                        let before = finished.load(Ordering::SeqCst);
                        if before < 0 {
                            continue;
                        }
                        let got = read(&copy, session(before).0);
                        let forget_step = before - before % 3 + 2;
                        let forgetting = started.load(Ordering::SeqCst) >= forget_step;
                        match got {
                            Some(value) => {
                                let value: i64 = value.parse().expect("a step");
                                assert!(
                                    before != forget_step && value >= before,
                                    "step {before}: the value of step {value} answered"
                                );
                            }
                            None => assert!(
                                before == forget_step || forgetting,
                                "step {before}: nothing answered after an insert finished"
                            ),
                        }
                        checked += 1;
                    }
                    checked
                })
            })
            .collect();
        // Each read began after the last one: a later insert is never skipped as older.
        for step in 0..WRITES {
            started.store(step, Ordering::SeqCst);
            if step % 3 == 2 {
                copy.forget(session(step));
            } else {
                assert!(copy.insert(session(step), Instant::now(), step.to_string()));
            }
            finished.store(step, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
        for reader in readers {
            assert!(reader.join().expect("reader") > 0);
        }
    }

    /// A store read finishing while the session is forgotten: once `forget` returns, no lookup answers it, ever.
    #[test]
    fn a_read_racing_a_logout_never_outlives_it() {
        let copy = Arc::new(copy(MINUTE));
        for n in 0..2_000 {
            let start = Arc::new(Barrier::new(2));
            let reader = {
                let (copy, start) = (copy.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    copy.insert(id(n), Instant::now(), "ended".to_owned())
                })
            };
            start.wait();
            copy.forget(id(n));
            assert!(
                copy.get(&id(n)).is_none(),
                "session {n} answered after its logout"
            );
            reader.join().expect("reader");
            assert!(copy.get(&id(n)).is_none(), "session {n} copied back");
        }
    }
}
