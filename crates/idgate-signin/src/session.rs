//! Sessions: what a signed-in session keeps (server-side only), the store as a trait object, and [`SignInLayer`],
//! which reads the session on every request and says who is signed in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use idgate_core::Caller;
use idgate_core::identity::SessionUser;
use idgate_core::policy::DenyReason;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_cookies::CookieManager;
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Expiry, Id, Record};
use tower_sessions::session_store;
use tower_sessions::{Session, SessionManager, SessionManagerLayer, SessionStore};

use crate::extract::SignedInUser;
use crate::flow::unix_secs;
use crate::local_copy::Forgotten;
use crate::metrics::StoreOp;
use crate::signin::Shared;

/// How long a process answers a session from its own copy of the session's user instead of reading the store: a
/// logout, or the end of a session, made in **another process** sharing the store takes effect here within this
/// bound. (In the process where it happens, the crate's own logout route and sign-in drop the copy at once. A
/// handler that ends a session itself, with `Session::flush` or by removing its keys, is not seen for up to this
/// bound: send the browser through the logout route instead.)
pub const RECENT_USER_TTL: Duration = Duration::from_secs(5);
/// How many sessions' users a process keeps that way at most.
pub(crate) const RECENT_USER_CAPACITY: u64 = 100_000;
/// How long this process remembers that it forgot a session (logout, sign-in): longer than any store read that began
/// before the forgetting may take to finish, so such a read cannot put the ended session's user back.
pub(crate) const FORGOTTEN_TTL: Duration = Duration::from_secs(600);

/// The session key of the signed-in user ([`StoredUser`]).
pub(crate) const USER_KEY: &str = "idgate.signin.user";
/// The session key of the user's Google tokens (see `tokens::TokenRecord`: sealed with the token encryption key, or
/// without one the token logout revokes); apart so that the hot path never reads it.
pub(crate) const TOKEN_KEY: &str = "idgate.signin.token";

/// Any `tower-sessions` store behind one type, so that [`SignIn`](crate::SignIn) is not generic over it and another
/// store (Redis, a database) plugs in through [`SignInBuilder::store`](crate::SignInBuilder::store) without
/// changing a signature.
#[derive(Clone)]
pub struct AnySessionStore(
    Arc<dyn SessionStore>,
    Arc<crate::metrics::StoreMetrics>,
    Option<Forgotten>,
);

impl AnySessionStore {
    /// Wraps `store` (and, with the `metrics` feature, times its operations).
    pub fn new(store: impl SessionStore) -> Self {
        Self(
            Arc::new(store),
            Arc::new(crate::metrics::StoreMetrics::new()),
            None,
        )
    }

    /// Deletes again, after a save, a session this process has ended (see [`AnySessionStore::save`]).
    pub(crate) fn refusing_forgotten(mut self, forgotten: Forgotten) -> Self {
        self.2 = Some(forgotten);
        self
    }
}

impl fmt::Debug for AnySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait::async_trait]
impl SessionStore for AnySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.1.time(StoreOp::Create, self.0.create(record)).await
    }
    /// Saves `record`; then, if this process has ended the session meanwhile (a logout, a sign-in, "sign out
    /// everywhere"), deletes it again. A store that saves by overwriting (tower-sessions' `MemoryStore`, most
    /// database stores; idgate's own stores save only a session that still exists) would otherwise let a request
    /// that was in flight during a logout write the session back when the session layer saves it at the end. The
    /// mark is set before the session is deleted, so a save that lands after the deletion sees it here.
    ///
    /// The check runs whatever the save returned: a save that failed may still have landed (a timeout).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let saved = self.1.time(StoreOp::Save, self.0.save(record)).await;
        if let Some(forgotten) = &self.2
            && forgotten.contains(&record.id)
        {
            tracing::debug!(target: "idgate::signin", "a save of an ended session deleted again");
            self.1
                .time(StoreOp::Delete, self.0.delete(&record.id))
                .await?;
        }
        saved
    }
    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        self.1.time(StoreOp::Load, self.0.load(session_id)).await
    }
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.1
            .time(StoreOp::Delete, self.0.delete(session_id))
            .await
    }
}

/// What a signed-in session keeps about its user (server-side; the cookie holds only the session ID).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredUser {
    pub(crate) user: SessionUser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) picture: Option<String>,
    /// When the user signed in (Unix seconds).
    pub(crate) signed_in_at: i64,
    /// The absolute end of the session (Unix seconds), however active.
    pub(crate) expires_at: i64,
    /// When the idle deadline was last pushed back (Unix seconds).
    pub(crate) seen_at: i64,
}

/// What [`SignInLayer`] found, for [`RequireSignInLayer`](crate::RequireSignInLayer) (private: handlers read
/// [`SignedInUser`] and [`Caller`]).
#[derive(Clone, Debug)]
pub(crate) enum SignInState {
    SignedOut,
    SignedIn,
    NotAllowed(DenyReason),
    /// The store failed: nobody can be said to be signed in or out.
    Unavailable,
}

/// How often the idle deadline is pushed back: at most once a minute (or a tenth of the idle timeout), so an
/// active user costs a store write per minute, not per request.
fn refresh_interval(idle: Duration) -> i64 {
    i64::try_from((idle / 10).min(Duration::from_secs(60)).as_secs()).unwrap_or(60)
}

pub(crate) fn expiry_at(unix: i64) -> Expiry {
    Expiry::AtDateTime(
        OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    )
}

/// A session's user as this process last read it from the store, already judged: what a signed-in request needs,
/// without a store round trip, a record clone and a JSON decode on every request. Kept at most
/// [`RECENT_USER_TTL`], and used only while the session needs no sliding-expiry write.
pub(crate) struct RecentUser {
    stored: StoredUser,
    verdict: Result<(SignedInUser, Caller), DenyReason>,
}

type Loaded = (SignInState, Option<(SignedInUser, Caller)>);

impl Shared {
    /// The answer for `session` from this process's copy, if it holds one still good to use at `now`.
    fn recent(&self, session: &Session, now: i64) -> Option<Loaded> {
        if self.local_cache.is_zero() {
            return None;
        }
        let recent = self.recent.get(&session.id()?)?;
        let idle = i64::try_from(self.idle.as_secs()).unwrap_or(i64::MAX);
        let stored = &recent.stored;
        // Ended, or due for its sliding-expiry write: the store has to be read (and written).
        if now >= stored.expires_at
            || now >= stored.seen_at.saturating_add(idle)
            || now - stored.seen_at >= refresh_interval(self.idle)
        {
            return None;
        }
        Some(match &recent.verdict {
            Ok((user, caller)) => (SignInState::SignedIn, Some((user.clone(), caller.clone()))),
            Err(reason) => (SignInState::NotAllowed(*reason), None),
        })
    }

    /// Drops this process's copy of `session`'s user (at logout, at sign-in, when a session ends).
    pub(crate) fn forget(&self, session: &Session) {
        if let Some(id) = session.id() {
            self.forget_id(id);
        }
    }

    /// [`forget`](Self::forget) for a session that holds a user (or may: a store error counts as holding one).
    /// Ending a session nobody was signed in to (a visitor's cart, then a logout) marks nothing: the marks are
    /// bounded, and anonymous requests must not be able to push out the marks that keep signed-in sessions ended.
    pub(crate) async fn forget_if_signed_in(&self, session: &Session) {
        if !matches!(session.get_value(USER_KEY).await, Ok(None)) {
            self.forget(session);
        }
    }

    /// Whether this process ended or replaced `session` lately ([`forget`](Self::forget)).
    fn was_forgotten(&self, session: &Session) -> bool {
        session
            .id()
            .is_some_and(|id| self.recent.was_forgotten(&id))
    }

    pub(crate) fn forget_id(&self, id: Id) {
        // Also refuses the copy of a store read still in flight (see `load`): no copy of the ended session outlives
        // the logout or sign-in.
        self.recent.forget(id);
    }

    /// Records the session `id` in the index of the user `index` and ends the sessions that pushed out of it (past
    /// the most a user may have): a session "sign out everywhere" cannot find must not exist.
    pub(crate) async fn index_session(
        &self,
        index: &[u8; 32],
        id: Id,
    ) -> session_store::Result<()> {
        let pushed_out = self.state.add_session(index, id, self.lifetime).await?;
        for old in pushed_out {
            self.forget_id(old);
            self.store.delete(&old).await?;
        }
        Ok(())
    }

    /// Ends every session recorded for the user `subject`: see [`SignIn::sign_out_everywhere`](crate::SignIn::sign_out_everywhere).
    pub(crate) async fn sign_out_everywhere(
        &self,
        subject: &str,
    ) -> Result<usize, crate::SignInError> {
        let store_error = |e| crate::SignInError::Session(tower_sessions::session::Error::Store(e));
        let index = crate::shared_state::user_key(&self.client_id, subject);
        let ids = self
            .state
            .take_sessions(&index)
            .await
            .map_err(store_error)?;
        let mut ended = 0;
        let mut failed = None;
        for id in &ids {
            self.forget_id(*id);
            match self.store.delete(id).await {
                Ok(()) => ended += 1,
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None => Ok(ended),
            Some(e) => {
                // Put the index back so that calling again finishes the job.
                for id in &ids {
                    let _ = self.index_session(&index, *id).await;
                }
                Err(store_error(e))
            }
        }
    }

    /// Reads the session and decides: signed in (and allowed), not allowed, signed out, or unknown. A session read
    /// within the last [`RECENT_USER_TTL`] is answered from this process's copy.
    pub(crate) async fn load(&self, session: &Session) -> Loaded {
        if let Some(answer) = self.recent(session, unix_secs(self.clock.now())) {
            return answer;
        }
        // The copy's time to live runs from before the read, so that a slow read cannot stretch it.
        let read_at = std::time::Instant::now();
        let mut stored = match session.get::<StoredUser>(USER_KEY).await {
            // Ended in this process but read anyway (a write in flight brought it back, until it is deleted again):
            // ended.
            Ok(Some(_)) if self.was_forgotten(session) => return (SignInState::SignedOut, None),
            Ok(Some(stored)) => stored,
            Ok(None) => return (SignInState::SignedOut, None),
            Err(e) => {
                tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "session store failed");
                return (SignInState::Unavailable, None);
            }
        };
        let now = unix_secs(self.clock.now());
        let idle = i64::try_from(self.idle.as_secs()).unwrap_or(i64::MAX);
        if now >= stored.expires_at || now >= stored.seen_at.saturating_add(idle) {
            tracing::debug!(target: "idgate::signin", "session ended (lifetime or idle timeout)");
            self.forget(session);
            if let Err(e) = session.flush().await {
                tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not delete an ended session");
            }
            return (SignInState::SignedOut, None);
        }
        if now - stored.seen_at >= refresh_interval(self.idle) {
            let mut refreshed = stored.clone();
            refreshed.seen_at = now;
            session.set_expiry(Some(expiry_at(
                refreshed.expires_at.min(now.saturating_add(idle)),
            )));
            // Saved now rather than by the session layer after the response: a store that fails here answers
            // 503, as a failed read does, instead of the session layer's bare 500.
            let saved = match session.insert(USER_KEY, &refreshed).await {
                Ok(()) => session.save().await,
                Err(e) => Err(e),
            };
            if let Err(e) = saved {
                tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not extend a session");
                return (SignInState::Unavailable, None);
            }
            // Logged out (or replaced by a sign-in) in this process while this request read and saved it: the save
            // wrote the ended session back over its deletion. Delete it again; nobody is signed in.
            if self.was_forgotten(session) {
                tracing::debug!(target: "idgate::signin", "session ended while its idle deadline was pushed back");
                if let Err(e) = session.flush().await {
                    tracing::warn!(target: "idgate::signin", error = &e as &dyn std::error::Error, "could not delete an ended session");
                    return (SignInState::Unavailable, None);
                }
                return (SignInState::SignedOut, None);
            }
            // What the store now holds: the copy is not due for this write again.
            stored = refreshed;
        }
        let caller = Caller::from_session(&stored.user);
        let verdict = match self.allowlist.decide(&caller) {
            idgate_core::Decision::Allow { .. } => {
                Ok((SignedInUser::from_stored(stored.clone()), caller))
            }
            idgate_core::Decision::Deny { reason } => Err(reason),
        };
        let answer = match &verdict {
            Ok((user, caller)) => (SignInState::SignedIn, Some((user.clone(), caller.clone()))),
            Err(reason) => (SignInState::NotAllowed(*reason), None),
        };
        if let Some(id) = session.id()
            && !self.local_cache.is_zero()
        {
            // Refused when a logout (or sign-in) of this session ran while the store was being read.
            self.recent
                .insert(id, read_at, RecentUser { stored, verdict });
        }
        answer
    }
}

/// The session layer of a [`SignIn`](crate::SignIn) ([`SignIn::layer`](crate::SignIn::layer)): `tower-sessions`
/// with idgate's cookie rules, then a step that reads who is signed in.
///
/// The session cookie: `__Host-idgate_session` (`Secure`, `Path=/`, no `Domain`) or, on plain-http loopback,
/// `idgate_session`; `HttpOnly`; `SameSite=Lax`; it holds only the session ID (22 characters), never the profile
/// or a token. Sessions end after the idle timeout (sliding) or the absolute lifetime, whichever comes first.
///
/// For each request it inserts, when a signed-in user is allowed by the allowlist, the
/// [`SignedInUser`] and the [`Caller`] (so `idgate_server::extract::VerifiedCaller` works) into the request
/// extensions; a signed-out or refused user gets neither.
#[derive(Clone, Debug)]
pub struct SignInLayer {
    shared: Arc<Shared>,
    sessions: SessionManagerLayer<AnySessionStore>,
}

impl SignInLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let sessions = SessionManagerLayer::new(shared.store.clone())
            .with_name(shared.session_cookie)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(shared.secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
                i64::try_from(shared.idle.as_secs()).unwrap_or(i64::MAX),
            )));
        Self { shared, sessions }
    }
}

impl<S> Layer<S> for SignInLayer {
    type Service = SignInService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignInService {
            inner: self.sessions.layer(LoadUser {
                inner,
                shared: self.shared.clone(),
            }),
        }
    }
}

/// The service [`SignInLayer`] makes.
#[derive(Clone, Debug)]
pub struct SignInService<S> {
    inner: CookieManager<SessionManager<LoadUser<S>, AnySessionStore>>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SignInService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = <CookieManager<SessionManager<LoadUser<S>, AnySessionStore>> as Service<
        Request<ReqBody>,
    >>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        self.inner.call(req)
    }
}

/// The inner step of [`SignInService`]: reads who is signed in, after `tower-sessions` put the [`Session`] in the
/// extensions. Public only because it appears in [`SignInService`]'s future type.
#[derive(Clone)]
pub struct LoadUser<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for LoadUser<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadUser")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LoadUser<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // See tower's "be careful when cloning inner services": call the one that was made ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (state, user) = match req.extensions().get::<Session>().cloned() {
                Some(session) => shared.load(&session).await,
                None => (SignInState::Unavailable, None),
            };
            let extensions = req.extensions_mut();
            if shared.tokens.is_some() {
                extensions.insert(crate::tokens::TokenAccess(shared.clone()));
            }
            extensions.insert(state);
            if let Some((user, caller)) = user {
                extensions.insert(user);
                extensions.insert(caller);
            }
            inner.call(req).await
        })
    }
}
