//! What replicas must share beyond the sessions themselves: the sign-in attempts (a login may start on one replica
//! and its callback land on another) and, per user, the sessions that "sign out everywhere" ends.
//!
//! Kept in this process by default ([`InProcess`]); in Redis with [`RedisStore`](crate::RedisStore).

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tower_sessions::session::Id;
use tower_sessions::session_store;

use crate::flow::{ATTEMPT_TTL, Attempt};

/// The most sessions one user may have at once (in this process, or in Redis for all replicas); a sign-in past that
/// ends the oldest. (Forgetting it instead would let it escape "sign out everywhere": someone holding the account
/// could sign in once, keep that session, and push it out of the index by signing in again and again.)
pub(crate) const MAX_SESSIONS_PER_USER: usize = 256;
/// How many users' session lists this process keeps at most.
const MAX_USERS: u64 = 1_000_000;

/// Where attempts and the per-user session index live.
#[async_trait::async_trait]
pub(crate) trait SharedState: Send + Sync + 'static {
    /// Keeps `attempt` under `key` (the SHA-256 of its `state`) for [`ATTEMPT_TTL`], and at most `max_pending`
    /// attempts in all (across every browser, and every replica sharing the state): past that the oldest go, so a
    /// script calling the login route in a loop cannot grow the store without bound.
    async fn put_attempt(
        &self,
        key: &[u8; 32],
        attempt: &Attempt,
        max_pending: u64,
    ) -> session_store::Result<()>;
    /// Removes and returns the attempt under `key`, at most once across every replica.
    async fn take_attempt(&self, key: &[u8; 32]) -> session_store::Result<Option<Attempt>>;
    /// Records that `user` (a hash of their `sub`) has the session `id`, for at most `ttl`, and returns the sessions
    /// this pushed out of the user's index (past [`MAX_SESSIONS_PER_USER`], the oldest): the caller ends them.
    async fn add_session(
        &self,
        user: &[u8; 32],
        id: Id,
        ttl: Duration,
    ) -> session_store::Result<Vec<Id>>;
    /// Removes and returns every session recorded for `user`.
    async fn take_sessions(&self, user: &[u8; 32]) -> session_store::Result<Vec<Id>>;
    /// The attempts kept in this process (zero when they live elsewhere).
    fn local_attempts(&self) -> u64;
}

/// Attempts and the session index in this process: right for one instance, or replicas that share a store of their
/// own but send each browser back to the same instance.
pub(crate) struct InProcess {
    attempts: moka::sync::Cache<[u8; 32], Arc<Attempt>>,
    users: moka::sync::Cache<[u8; 32], Arc<Mutex<Vec<Id>>>>,
}

impl InProcess {
    pub(crate) fn new(max_attempts: u64, session_lifetime: Duration) -> Self {
        Self {
            attempts: moka::sync::Cache::builder()
                .max_capacity(max_attempts)
                .time_to_live(ATTEMPT_TTL)
                .build(),
            users: moka::sync::Cache::builder()
                .max_capacity(MAX_USERS)
                .time_to_live(session_lifetime)
                .build(),
        }
    }
}

#[async_trait::async_trait]
impl SharedState for InProcess {
    /// `max_pending` is the capacity this was made with (the same number: [`SignInBuilder::max_pending_attempts`]).
    ///
    /// [`SignInBuilder::max_pending_attempts`]: crate::SignInBuilder::max_pending_attempts
    async fn put_attempt(
        &self,
        key: &[u8; 32],
        attempt: &Attempt,
        _max_pending: u64,
    ) -> session_store::Result<()> {
        self.attempts.insert(*key, Arc::new(attempt.clone()));
        Ok(())
    }

    async fn take_attempt(&self, key: &[u8; 32]) -> session_store::Result<Option<Attempt>> {
        Ok(self.attempts.remove(key).map(|a| (*a).clone()))
    }

    async fn add_session(
        &self,
        user: &[u8; 32],
        id: Id,
        _ttl: Duration,
    ) -> session_store::Result<Vec<Id>> {
        let list = self.users.get_with(*user, Arc::default);
        let mut list = list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let over = (list.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        let pushed_out = list.drain(..over).collect();
        list.push(id);
        Ok(pushed_out)
    }

    async fn take_sessions(&self, user: &[u8; 32]) -> session_store::Result<Vec<Id>> {
        Ok(self.users.remove(user).map_or_else(Vec::new, |list| {
            std::mem::take(
                &mut *list
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        }))
    }

    fn local_attempts(&self) -> u64 {
        self.attempts.run_pending_tasks();
        self.attempts.entry_count()
    }
}

/// An [`Attempt`] as a shared store keeps it (JSON).
#[derive(Serialize, Deserialize)]
pub(crate) struct AttemptRecord {
    nonce: String,
    verifier: String,
    return_to: String,
    /// Unix milliseconds.
    created: u64,
    /// base64url of the binding cookie's SHA-256.
    binding: String,
}

impl From<&Attempt> for AttemptRecord {
    fn from(a: &Attempt) -> Self {
        Self {
            nonce: a.nonce.clone(),
            verifier: a.verifier.clone(),
            return_to: a.return_to.clone(),
            created: a
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            binding: URL_SAFE_NO_PAD.encode(a.binding),
        }
    }
}

impl TryFrom<AttemptRecord> for Attempt {
    type Error = session_store::Error;

    fn try_from(r: AttemptRecord) -> Result<Self, Self::Error> {
        let binding: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&r.binding)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| session_store::Error::Decode("malformed attempt binding".into()))?;
        Ok(Self {
            nonce: r.nonce,
            verifier: r.verifier,
            return_to: r.return_to,
            created: UNIX_EPOCH + Duration::from_millis(r.created),
            binding,
        })
    }
}

/// The key of a user in the session index: the SHA-256 of the OAuth client and the user's `sub` (no email or `sub`
/// in a store key).
pub(crate) fn user_key(client_id: &str, sub: &str) -> [u8; 32] {
    crate::flow::sha256(format!("{client_id}\n{sub}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        Attempt {
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/books?x=1".into(),
            created: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            binding: [7; 32],
        }
    }

    #[test]
    fn attempts_survive_their_record_form() {
        let back = Attempt::try_from(AttemptRecord::from(&attempt())).unwrap();
        assert_eq!(back.return_to, "/books?x=1");
        assert_eq!(back.binding, [7; 32]);
        assert_eq!(back.created, attempt().created);
        let mut broken = AttemptRecord::from(&attempt());
        broken.binding = "short".into();
        assert!(Attempt::try_from(broken).is_err());
    }

    #[tokio::test]
    async fn in_process_attempts_are_taken_once_and_sessions_listed_per_user() {
        let state = InProcess::new(10, Duration::from_secs(3600));
        state.put_attempt(&[1; 32], &attempt(), 10).await.unwrap();
        assert_eq!(state.local_attempts(), 1);
        assert!(state.take_attempt(&[1; 32]).await.unwrap().is_some());
        assert!(state.take_attempt(&[1; 32]).await.unwrap().is_none());
        let (a, b) = (Id::default(), Id::default());
        let alice = user_key("c", "alice");
        state
            .add_session(&alice, a, Duration::from_secs(60))
            .await
            .unwrap();
        state
            .add_session(&alice, b, Duration::from_secs(60))
            .await
            .unwrap();
        state
            .add_session(
                &user_key("c", "bob"),
                Id::default(),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(state.take_sessions(&alice).await.unwrap(), vec![a, b]);
        assert!(state.take_sessions(&alice).await.unwrap().is_empty());
        assert_ne!(user_key("c", "alice"), user_key("d", "alice"));
    }

    #[test]
    fn a_users_list_is_bounded() {
        let state = InProcess::new(10, Duration::from_secs(3600));
        let alice = user_key("c", "alice");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut pushed_out = Vec::new();
            for _ in 0..MAX_SESSIONS_PER_USER + 10 {
                pushed_out.extend(
                    state
                        .add_session(&alice, Id::default(), Duration::from_secs(60))
                        .await
                        .unwrap(),
                );
            }
            assert_eq!(
                pushed_out.len(),
                10,
                "the oldest are handed back to be ended"
            );
            assert_eq!(
                state.take_sessions(&alice).await.unwrap().len(),
                MAX_SESSIONS_PER_USER
            );
        });
    }
}
