//! [`MemorySessionStore`]: the default session store: in this process, bounded, expiring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

/// The default bound on the sessions a [`MemorySessionStore`] holds.
pub const DEFAULT_MEMORY_SESSIONS: u64 = 100_000;

/// Sessions in this process: the default store of [`SignIn`](crate::SignIn).
///
/// Unlike `tower-sessions`' `MemoryStore`, it **forgets a session when it expires** (the memory of ended sessions
/// comes back), holds **at most a bounded number** of sessions (default [`DEFAULT_MEMORY_SESSIONS`]; past it the
/// least used are dropped, and their users sign in again), and **never brings back a deleted session**: a save
/// only updates a session that still exists, atomically, so a request still in flight when its session was logged
/// out cannot write it back.
///
/// One process only: replicas need [`RedisStore`](crate::RedisStore) (feature `redis`).
///
/// ```
/// use idgate_signin::{MemorySessionStore, SessionStore};
/// use tower_sessions::session::{Id, Record};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = MemorySessionStore::new(1_000);
/// let mut record = Record {
///     id: Id::default(),
///     data: Default::default(),
///     expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
/// };
/// store.create(&mut record).await.unwrap();
/// store.delete(&record.id).await.unwrap();
/// store.save(&record).await.unwrap(); // a late save of a deleted session ...
/// assert!(store.load(&record.id).await.unwrap().is_none()); // ... does not bring it back
/// # }
/// ```
#[derive(Clone)]
pub struct MemorySessionStore {
    sessions: moka::sync::Cache<Id, Arc<Record>>,
}

impl std::fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_SESSIONS)
    }
}

/// Each session leaves the cache at its own expiry.
struct UntilExpiry;

fn time_left(record: &Record) -> Duration {
    let left = record.expiry_date - OffsetDateTime::now_utc();
    Duration::try_from(left).unwrap_or(Duration::ZERO)
}

impl moka::Expiry<Id, Arc<Record>> for UntilExpiry {
    fn expire_after_create(&self, _: &Id, record: &Arc<Record>, _: Instant) -> Option<Duration> {
        Some(time_left(record))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        record: &Arc<Record>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(time_left(record))
    }
}

impl MemorySessionStore {
    /// A store holding at most `capacity` sessions.
    pub fn new(capacity: u64) -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .max_capacity(capacity.max(1))
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// The number of sessions held (approximate: expired ones leave in the background).
    pub fn len(&self) -> u64 {
        self.sessions.run_pending_tasks();
        self.sessions.entry_count()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(record: &Record) -> bool {
    record.expiry_date > OffsetDateTime::now_utc()
}

#[async_trait::async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if !live(record) {
            return Ok(());
        }
        // 128 random bits: a collision never happens, but if it did the other session must not be overwritten.
        loop {
            let entry = self
                .sessions
                .entry(record.id)
                .or_insert_with(|| Arc::new(record.clone()));
            if entry.is_fresh() {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if !live(record) {
            self.sessions.invalidate(&record.id);
            return Ok(());
        }
        let update = Arc::new(record.clone());
        // Only a session that still exists is saved, in one step: a delete cannot slip between a check and a write.
        self.sessions
            .entry(record.id)
            .and_compute_with(|existing| match existing {
                Some(_) => Op::Put(update),
                None => Op::Nop,
            });
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self
            .sessions
            .get(session_id)
            .filter(|r| live(r))
            .map(|r| (*r).clone()))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.sessions.invalidate(session_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lifetime: time::Duration) -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + lifetime,
        }
    }

    #[tokio::test]
    async fn sessions_are_created_saved_loaded_and_deleted() {
        let store = MemorySessionStore::new(10);
        let mut r = record(time::Duration::hours(1));
        store.create(&mut r).await.unwrap();
        let mut changed = r.clone();
        changed.data.insert("k".into(), "v".into());
        store.save(&changed).await.unwrap();
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data["k"], "v");
        store.delete(&r.id).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_none());
        store.save(&changed).await.unwrap();
        assert!(
            store.load(&r.id).await.unwrap().is_none(),
            "no resurrection"
        );
    }

    #[tokio::test]
    async fn a_colliding_id_gets_another() {
        let store = MemorySessionStore::new(10);
        let mut a = record(time::Duration::hours(1));
        store.create(&mut a).await.unwrap();
        let mut b = record(time::Duration::hours(1));
        b.id = a.id;
        store.create(&mut b).await.unwrap();
        assert_ne!(a.id, b.id);
        assert!(store.load(&a.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn expired_sessions_are_not_kept_and_the_count_is_bounded() {
        let store = MemorySessionStore::new(50);
        let mut gone = record(time::Duration::milliseconds(50));
        store.create(&mut gone).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.load(&gone.id).await.unwrap().is_none());
        for _ in 0..500 {
            store
                .create(&mut record(time::Duration::hours(1)))
                .await
                .unwrap();
        }
        assert!(store.len() <= 50, "{}", store.len());
        let mut past = record(time::Duration::hours(-1));
        store.create(&mut past).await.unwrap();
        assert!(store.load(&past.id).await.unwrap().is_none());
    }
}
