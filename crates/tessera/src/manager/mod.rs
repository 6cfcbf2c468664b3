//! The session manager: the specification's `SessionManager`, as a cheap
//! `Clone` handle over shared state.
//!
//! Every method validates its input first, so bad input fails with
//! `VALIDATION_ERROR` and changes nothing. Validation is stateful: a token is
//! only as good as the session record behind it, read from the store on every
//! call, so revocation takes effect at the very next request.

mod builder;
mod cleanup;
mod types;
mod unacked;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub use self::builder::{
    DEFAULT_VALIDATION_CACHE, Lifetimes, MAX_LEEWAY, MAX_REUSE_GRACE, MAX_VALIDATION_CACHE,
    SessionManagerBuilder,
};
pub use self::types::{
    IssuedTokens, NewSession, PageRequest, SessionFilter, SessionInfo, SessionPage, SessionStats,
    SessionUser,
};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::{ErrorKind, Result, SessionError};
use crate::events::{EndReason, EventSink, SessionEvent};
use crate::ids::{OrgId, SessionId, UserId};
use crate::keys::KeyRing;
use crate::memo::Memo;
use crate::policy::{Permission, Policy, RoleName};
use crate::record::{RefreshState, SessionRecord};
use crate::store::{CasOutcome, IndexKey, SessionStore, StoredSession};
use crate::token::Token;
use crate::token::access::{AccessClaims, AccessTokens, VerifiedTokens};
use crate::token::refresh::ParsedRefresh;

/// A session record as opened from its sealed bytes, remembered by the
/// validate path.
struct Opened {
    id: SessionId,
    sealed: Box<[u8]>,
    /// Shared, so a hit clones a pointer under the slot's lock and the
    /// record itself outside it.
    record: Arc<SessionRecord>,
}

/// How many sessions one cleanup batch removes while holding store locks.
const CLEANUP_BATCH: usize = 1000;
/// How often a compare-and-swap is retried after losing a race.
const CAS_ATTEMPTS: usize = 16;

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    refreshed: AtomicU64,
    destroyed: AtomicU64,
    expired: AtomicU64,
    reuse_detected: AtomicU64,
    last_cleanup: AtomicU64,
    last_cleanup_removed: AtomicU64,
}

struct Inner {
    keys: KeyRing,
    store: Arc<dyn SessionStore>,
    /// The store's [`SessionStore::write_window`] in whole seconds, rounded
    /// up.
    write_window_secs: u64,
    /// Rotations attempted here whose answer was lost (see `unacked.rs`).
    unacked: unacked::Unacked,
    policy: Policy,
    directory: Arc<dyn Directory>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    lifetimes: Lifetimes,
    tokens: AccessTokens,
    /// Recently verified access tokens (see [`crate::memo`]).
    verified: VerifiedTokens,
    /// Recently opened session records, with the sealed bytes they came
    /// from.
    opened: Memo<Opened>,
    counters: Counters,
    /// Org ids seen by this process, by org key, so statistics can name orgs
    /// the store only knows as keyed hashes.
    org_names: RwLock<HashMap<IndexKey, OrgId>>,
    /// Dropped with the last handle, which stops the cleanup task.
    _stop_cleanup: tokio::sync::watch::Sender<()>,
}

/// Creates, validates, refreshes and ends sessions. Clone it freely: clones
/// share one state.
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.inner.store)
            .field("issuer", &self.inner.tokens.issuer())
            .finish_non_exhaustive()
    }
}

/// Adds the operation to an error's context and logs it, once, at a level
/// that matches who is at fault: client errors are routine (and attack
/// traffic would flood an error log), store and crypto failures are not.
fn log_error(op: &'static str, e: SessionError) -> SessionError {
    match e.kind() {
        ErrorKind::Database | ErrorKind::Encryption | ErrorKind::System => {
            tracing::error!(op, error.kind = %e.kind(), error = %e, "session operation failed")
        }
        _ => tracing::debug!(op, error.kind = %e.kind(), error = %e, "session operation refused"),
    }
    e.with_context("operation", op)
}

fn not_a_member() -> SessionError {
    SessionError::new(
        ErrorKind::Authentication,
        "the user is not a member of this organization",
    )
}

fn inactive() -> SessionError {
    SessionError::token("the session is not active")
}

impl SessionManager {
    /// A builder; only the keys are required.
    pub fn builder() -> SessionManagerBuilder {
        SessionManagerBuilder::default()
    }

    fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    fn emit(&self, event: SessionEvent) {
        self.inner.events.record(&event);
    }

    fn user_key(&self, key: &crate::keys::SealingKey, user: &UserId) -> IndexKey {
        key.index_key("user", &[user.as_bytes()])
    }

    fn org_key(&self, key: &crate::keys::SealingKey, org: &OrgId) -> IndexKey {
        key.index_key("org", &[org.as_bytes()])
    }

    fn session_user(&self, record: &SessionRecord) -> SessionUser {
        SessionUser {
            id: record.user_id,
            org_id: record.org_id,
            role: record.role.clone(),
            permissions: self.inner.policy.grants(&record.role),
        }
    }

    fn info(&self, id: SessionId, record: SessionRecord) -> SessionInfo {
        SessionInfo {
            session_id: id,
            user: self.session_user(&record),
            device_id: record.device_id,
            ip_address: record.ip_address,
            user_agent: record.user_agent,
            created_at: record.created_at,
            last_activity: record.last_activity,
            expires_at: record.expires_at,
            attributes: record.attributes,
        }
    }

    /// Opens a stored record. A record that fails to open is logged as an
    /// `ENCRYPTION_ERROR` and treated as absent.
    fn open(&self, stored: &StoredSession) -> Option<SessionRecord> {
        match SessionRecord::open(&self.inner.keys, &stored.id, &stored.sealed) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(
                    session_id = %stored.id,
                    error.kind = %e.kind(),
                    "a sealed session record failed to open; treated as absent"
                );
                None
            }
        }
    }

    /// [`Self::open`], remembering the result: the same sealed bytes of the
    /// same session open to the same record, so a hit skips the decryption.
    fn open_remembered(&self, stored: &StoredSession) -> Option<SessionRecord> {
        let id = stored.id.as_bytes();
        let hit = self.inner.opened.get(id, |o| {
            // The sealed bytes are ciphertext: comparing them in variable
            // time reveals nothing secret. The id matters as much as the
            // bytes: a record copied under another session id must fail to
            // open there, not be served from this entry.
            (o.id == stored.id && *o.sealed == *stored.sealed).then(|| o.record.clone())
        });
        if let Some(record) = hit {
            return Some(SessionRecord::clone(&record));
        }
        let record = self.open(stored)?;
        self.inner.opened.put(
            id,
            Opened {
                id: stored.id,
                sealed: stored.sealed.as_slice().into(),
                record: Arc::new(record.clone()),
            },
        );
        Some(record)
    }

    fn sign_access(
        &self,
        id: SessionId,
        record: &SessionRecord,
        refresh: &ParsedRefresh,
        issued_at: u64,
    ) -> Result<(Token, u64)> {
        let exp = issued_at
            .saturating_add(self.inner.lifetimes.access.as_secs())
            .min(record.absolute_expires_at);
        let claims = AccessClaims {
            sub: record.user_id,
            org: record.org_id,
            sid: id,
            role: record.role.to_string(),
            permissions: self.inner.policy.grants(&record.role),
            iat: issued_at,
            exp,
            iss: self.inner.tokens.issuer().to_owned(),
            jti: refresh.jti(&self.inner.keys),
        };
        let token = self.inner.tokens.sign(&self.inner.keys, &claims)?;
        Ok((Token::new(token), exp))
    }

    fn issued(
        &self,
        id: SessionId,
        record: &SessionRecord,
        refresh: &ParsedRefresh,
        issued_at: u64,
    ) -> Result<IssuedTokens> {
        let now = self.now();
        let (access_token, access_exp) = self.sign_access(id, record, refresh, issued_at)?;
        Ok(IssuedTokens {
            session_id: id,
            access_token,
            refresh_token: Token::new(refresh.encode(&self.inner.keys)),
            expires_in: access_exp.saturating_sub(now),
            refresh_expires_in: record.expires_at.saturating_sub(now),
            user: self.session_user(record),
        })
    }

    /// Creates a session: `createSession(userId, orgId, deviceId?, ipAddress?)`.
    ///
    /// The user must be a member of the org (`AUTHENTICATION_ERROR`
    /// otherwise); the session takes the membership's role.
    #[tracing::instrument(level = "debug", name = "create_session", skip_all)]
    pub async fn create_session(&self, new: NewSession) -> Result<IssuedTokens> {
        self.create_inner(new)
            .await
            .map_err(|e| log_error("create_session", e))
    }

    async fn create_inner(&self, new: NewSession) -> Result<IssuedTokens> {
        let mut role = self
            .inner
            .directory
            .role(&new.user_id, &new.org_id)
            .await?
            .ok_or_else(not_a_member)?;
        let now = self.now();
        let l = &self.inner.lifetimes;
        let absolute_expires_at = now.saturating_add(l.absolute.as_secs());
        let expires_at = now
            .saturating_add(l.refresh.as_secs())
            .min(absolute_expires_at);
        let key = self.inner.keys.sealing_key();
        let user_key = self.user_key(key, &new.user_id);
        let org_key = self.org_key(key, &new.org_id);
        // Retried when the store says the id is taken (a random 122-bit id
        // colliding is not a real event, but a live session must never be
        // overwritten) or when the membership changed during the creation.
        for _ in 0..3 {
            let refresh = ParsedRefresh::generate_with_id()?;
            let id = refresh.session_id;
            let record = SessionRecord {
                user_id: new.user_id,
                org_id: new.org_id,
                role: role.clone(),
                device_id: new.device_id.clone(),
                ip_address: new.ip_address,
                user_agent: new.user_agent.clone(),
                created_at: now,
                last_activity: now,
                expires_at,
                absolute_expires_at,
                refresh: RefreshState {
                    generation: refresh.generation,
                    secret_hash: refresh.secret_hash(),
                    issued_at: now,
                },
                attributes: new.attributes.clone(),
            };
            let stored = StoredSession {
                id,
                user_key,
                org_key,
                expires_at,
                version: 1,
                sealed: record.seal(&self.inner.keys, &id)?,
            };
            if !self.inner.store.insert(stored, now).await? {
                continue;
            }
            // A membership change that ran between the role lookup above and
            // the insert could not see this session; look again so it cannot
            // slip past a demotion or a removal.
            let role_now = self.inner.directory.role(&new.user_id, &new.org_id).await?;
            if role_now.as_ref() != Some(&role) {
                self.inner.store.remove(&id).await?;
                role = role_now.ok_or_else(not_a_member)?;
                continue;
            }
            self.inner.org_names.write().insert(org_key, new.org_id);
            self.inner.counters.created.fetch_add(1, Ordering::Relaxed);
            self.emit(SessionEvent::Created {
                session_id: id,
                user_id: new.user_id,
                org_id: new.org_id,
            });
            return self.issued(id, &record, &refresh, now);
        }
        Err(SessionError::system(
            "the session could not be created; try again",
        ))
    }

    /// Validates an access token against its session: `validateSession(token)`.
    ///
    /// Fails with `TOKEN_ERROR` for a malformed, forged or expired token, and
    /// for a token whose session was destroyed, revoked or has expired.
    #[tracing::instrument(level = "debug", name = "validate_session", skip_all)]
    pub async fn validate_session(&self, token: &str) -> Result<SessionInfo> {
        self.validate_inner(token)
            .await
            .map(|(id, record)| self.info(id, record))
            .map_err(|e| log_error("validate_session", e))
    }

    async fn validate_inner(&self, token: &str) -> Result<(SessionId, SessionRecord)> {
        let now = self.now();
        let claims =
            self.inner
                .verified
                .verify(&self.inner.tokens, &self.inner.keys, token, now)?;
        let stored = self
            .inner
            .store
            .get(&claims.sid, now)
            .await?
            .ok_or_else(inactive)?;
        let mut record = self.open_remembered(&stored).ok_or_else(inactive)?;
        if record.user_id != claims.sub || record.org_id != claims.org {
            return Err(SessionError::token(
                "the access token does not match its session",
            ));
        }
        if now.saturating_sub(record.last_activity)
            >= self.inner.lifetimes.activity_interval.as_secs()
        {
            record.last_activity = now;
            self.touch(&stored, &record, now).await;
        }
        Ok((claims.sid, record))
    }

    /// Writes a new `last_activity`. Losing a race to another write is fine:
    /// the other writer's record is at least as fresh for this purpose.
    async fn touch(&self, stored: &StoredSession, record: &SessionRecord, now: u64) {
        let sealed = match record.seal(&self.inner.keys, &stored.id) {
            Ok(s) => s,
            Err(e) => {
                log_error("touch", e);
                return;
            }
        };
        if let Err(e) = self
            .inner
            .store
            .compare_and_swap(&stored.id, stored.version, sealed, stored.expires_at, now)
            .await
        {
            log_error("touch", e.into());
        }
    }

    /// The user behind a valid access token: `getUserFromToken(token)`.
    #[tracing::instrument(level = "debug", name = "get_user_from_token", skip_all)]
    pub async fn get_user_from_token(&self, token: &str) -> Result<SessionUser> {
        Ok(self.validate_session(token).await?.user)
    }

    /// Whether the session's *current* role grants `permission`:
    /// `hasPermission(token, permission)`. A malformed permission is a
    /// `VALIDATION_ERROR`; an invalid token a `TOKEN_ERROR`.
    #[tracing::instrument(level = "debug", name = "has_permission", skip_all)]
    pub async fn has_permission(&self, token: &str, permission: &str) -> Result<bool> {
        let result = async {
            let permission = Permission::parse(permission)?;
            let (_, record) = self.validate_inner(token).await?;
            Ok(self.inner.policy.allows(&record.role, &permission))
        }
        .await;
        result.map_err(|e| log_error("has_permission", e))
    }

    /// Rotates a refresh token: `refreshSession(refreshToken)`.
    ///
    /// Returns a new access token and a new refresh token and invalidates the
    /// presented one, atomically. Presenting a rotated-out token again is
    /// treated as theft: it fails with `TOKEN_ERROR` and revokes the session.
    /// The one exception is the immediately previous token within the grace
    /// window, which gets the same successor pair back. The window is
    /// measured from the latest moment the store can have applied the
    /// rotation ([`SessionStore::write_window`] after it was issued).
    ///
    /// A refresh that fails with `DATABASE_ERROR` did not rotate the token
    /// and will not later (the store contract's **No late writes**), so the
    /// client retries with the token it holds. If the rotation was applied
    /// and only its answer was lost, the first retry of that token through
    /// this process gets the successor back, however late it comes (within
    /// ten minutes); through another node, only within the grace window.
    #[tracing::instrument(level = "debug", name = "refresh_session", skip_all)]
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<IssuedTokens> {
        self.refresh_inner(refresh_token)
            .await
            .map_err(|e| log_error("refresh_session", e))
    }

    async fn refresh_inner(&self, refresh_token: &str) -> Result<IssuedTokens> {
        let presented = ParsedRefresh::parse(refresh_token, &self.inner.keys)?;
        let id = presented.session_id;
        let invalid = || SessionError::token("the refresh token is not valid");
        for _ in 0..CAS_ATTEMPTS {
            let now = self.now();
            let stored = self.inner.store.get(&id, now).await?.ok_or_else(invalid)?;
            let mut record = self.open(&stored).ok_or_else(invalid)?;
            if now >= record.absolute_expires_at {
                return Err(SessionError::token(
                    "the session has reached its maximum lifetime",
                ));
            }
            let current = record.refresh.generation;
            if presented.generation == current {
                if !presented.matches(&record.refresh.secret_hash) {
                    return Err(invalid());
                }
                let next = presented.successor(&self.inner.keys);
                record.refresh = RefreshState {
                    generation: next.generation,
                    secret_hash: next.secret_hash(),
                    issued_at: now,
                };
                record.expires_at = now
                    .saturating_add(self.inner.lifetimes.refresh.as_secs())
                    .min(record.absolute_expires_at);
                record.last_activity = now;
                let sealed = record.seal(&self.inner.keys, &id)?;
                let swapped = self
                    .inner
                    .store
                    .compare_and_swap(&id, stored.version, sealed, record.expires_at, now)
                    .await;
                let swapped = match swapped {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // The store promises the rotation will not happen
                        // later, but it may have happened already with its
                        // answer lost: remember what it wrote, so the
                        // client's retry with this token is not taken for
                        // a replay.
                        self.inner.unacked.remember(id, next.generation, now, now);
                        return Err(e.into());
                    }
                };
                match swapped {
                    CasOutcome::Swapped { .. } => {
                        self.inner.unacked.forget(&id);
                        self.inner
                            .counters
                            .refreshed
                            .fetch_add(1, Ordering::Relaxed);
                        self.emit(SessionEvent::Refreshed { session_id: id });
                        return self.issued(id, &record, &next, now);
                    }
                    // Another writer got there first; read again. If it was a
                    // concurrent refresh of this same token, the next round
                    // takes the grace path and returns its successor.
                    CasOutcome::Conflict => continue,
                    CasOutcome::Missing => return Err(invalid()),
                }
            }
            if presented.generation.wrapping_add(1) == current
                && let Some(next) =
                    presented.successor_matching(&self.inner.keys, &record.refresh.secret_hash)
            {
                // The grace window runs from when the store applied the
                // rotation, which is at most its write window after the
                // rotation was issued: a rotation delayed in the store (or
                // whose answer was lost at the last moment) still gets the
                // whole window.
                let issued_at = record.refresh.issued_at;
                let grace = self.inner.lifetimes.reuse_grace.as_secs();
                let window = grace.saturating_add(self.inner.write_window_secs);
                let within = grace > 0 && now.saturating_sub(issued_at) <= window;
                if within || self.inner.unacked.take(&id, current, issued_at, now) {
                    return self.issued(id, &record, &next, issued_at);
                }
            }
            if presented.generation < current {
                return Err(self.reuse_detected(id, &record).await);
            }
            return Err(invalid());
        }
        Err(SessionError::system(
            "the session changed too often to refresh; try again",
        ))
    }

    async fn reuse_detected(&self, id: SessionId, record: &SessionRecord) -> SessionError {
        self.inner
            .counters
            .reuse_detected
            .fetch_add(1, Ordering::Relaxed);
        self.emit(SessionEvent::RefreshReuseDetected {
            session_id: id,
            user_id: record.user_id,
        });
        match self.inner.store.remove(&id).await {
            Ok(true) => {
                self.inner
                    .counters
                    .destroyed
                    .fetch_add(1, Ordering::Relaxed);
                self.emit(SessionEvent::Destroyed {
                    session_id: id,
                    reason: EndReason::RefreshReuse,
                });
            }
            Ok(false) => {}
            Err(e) => return e.into(),
        }
        SessionError::token("the refresh token was already used; the session has been revoked")
    }

    /// Ends the session of a valid access token: `destroySession(token)`.
    /// Its access and refresh tokens fail from the next call on.
    #[tracing::instrument(level = "debug", name = "destroy_session", skip_all)]
    pub async fn destroy_session(&self, token: &str) -> Result<()> {
        let result = async {
            let now = self.now();
            let claims = self.inner.tokens.verify(&self.inner.keys, token, now)?;
            self.end(claims.sid, EndReason::Logout)
                .await?
                .then_some(())
                .ok_or_else(inactive)
        }
        .await;
        result.map_err(|e| log_error("destroy_session", e))
    }

    async fn end(&self, id: SessionId, reason: EndReason) -> Result<bool> {
        let removed = self.inner.store.remove(&id).await?;
        if removed {
            self.inner
                .counters
                .destroyed
                .fetch_add(1, Ordering::Relaxed);
            self.emit(SessionEvent::Destroyed {
                session_id: id,
                reason,
            });
        }
        Ok(removed)
    }

    /// Ends a session by id (an operator's revocation). `NOT_FOUND` if there
    /// is no such live session.
    #[tracing::instrument(level = "debug", name = "destroy_session_by_id", skip_all)]
    pub async fn destroy_session_by_id(&self, session_id: &SessionId) -> Result<()> {
        let result = self
            .end(*session_id, EndReason::Revoked)
            .await
            .and_then(|removed| {
                removed
                    .then_some(())
                    .ok_or_else(|| SessionError::not_found("no such session"))
            });
        result.map_err(|e| log_error("destroy_session_by_id", e))
    }

    /// The live sessions of a user, with device, IP, creation and last
    /// activity.
    #[tracing::instrument(level = "debug", name = "user_sessions", skip_all)]
    pub async fn user_sessions(&self, user_id: &UserId) -> Result<Vec<SessionInfo>> {
        let result = async {
            let now = self.now();
            let mut out = Vec::new();
            // Previous keys find sessions indexed before a key rotation.
            for key in self.inner.keys.sealing_keys() {
                let user_key = self.user_key(key, user_id);
                for stored in self.inner.store.user_sessions(&user_key, now).await? {
                    if let Some(record) = self.open(&stored)
                        && record.user_id == *user_id
                    {
                        out.push(self.info(stored.id, record));
                    }
                }
            }
            out.sort_by_key(|s| (s.created_at, s.session_id));
            Ok(out)
        }
        .await;
        result.map_err(|e| log_error("user_sessions", e))
    }

    /// A page of a user's live sessions, oldest first (ties in creation
    /// time, which has a resolution of a second, go by session id). The
    /// cursor is the `next_cursor` of the previous page; `next_cursor` is
    /// `None` when no session follows this page. A malformed cursor is a
    /// `VALIDATION_ERROR`.
    #[tracing::instrument(level = "debug", name = "user_sessions_page", skip_all)]
    pub async fn user_sessions_page(
        &self,
        user_id: &UserId,
        page: &PageRequest,
    ) -> Result<SessionPage> {
        let after = page.cursor.as_deref().map(parse_user_cursor).transpose()?;
        let limit = page.limit.clamp(1, MAX_PAGE_LIMIT);
        let all = self.user_sessions(user_id).await?;
        let mut rest = all
            .into_iter()
            .filter(|s| after.is_none_or(|a| (s.created_at, s.session_id) > a));
        let sessions: Vec<SessionInfo> = rest.by_ref().take(limit).collect();
        let next_cursor = match (rest.next(), sessions.last()) {
            (Some(_), Some(last)) => Some(user_cursor(last)),
            _ => None,
        };
        Ok(SessionPage {
            sessions,
            next_cursor,
        })
    }

    /// Ends every session of a user ("log out everywhere"); returns how many.
    #[tracing::instrument(level = "debug", name = "destroy_user_sessions", skip_all)]
    pub async fn destroy_user_sessions(&self, user_id: &UserId) -> Result<u64> {
        let result = async {
            let now = self.now();
            let mut count = 0;
            for key in self.inner.keys.sealing_keys() {
                let user_key = self.user_key(key, user_id);
                count += self
                    .inner
                    .store
                    .remove_user_sessions(&user_key, now)
                    .await?;
            }
            self.inner
                .counters
                .destroyed
                .fetch_add(count, Ordering::Relaxed);
            self.emit(SessionEvent::UserSessionsDestroyed {
                user_id: *user_id,
                count,
            });
            Ok(count)
        }
        .await;
        result.map_err(|e| log_error("destroy_user_sessions", e))
    }

    /// A page of live sessions: `getActiveSessions()`, paginated and
    /// optionally filtered by org.
    #[tracing::instrument(level = "debug", name = "active_sessions", skip_all)]
    pub async fn active_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<SessionPage> {
        let result = async {
            if page.cursor.as_ref().is_some_and(|c| c.len() > 256) {
                return Err(SessionError::validation("the cursor is not valid"));
            }
            let now = self.now();
            let limit = page.limit.clamp(1, 1000);
            let org_key = filter
                .org_id
                .map(|o| self.org_key(self.inner.keys.sealing_key(), &o));
            let listed = self
                .inner
                .store
                .list(org_key.as_ref(), page.cursor.as_deref(), limit, now)
                .await?;
            let sessions = listed
                .sessions
                .iter()
                .filter_map(|s| self.open(s).map(|r| self.info(s.id, r)))
                .collect();
            Ok(SessionPage {
                sessions,
                next_cursor: listed.next_cursor,
            })
        }
        .await;
        result.map_err(|e| log_error("active_sessions", e))
    }

    /// Removes expired sessions now: `cleanupExpiredSessions()`. Also runs
    /// in the background every cleanup interval. Returns how many it removed.
    #[tracing::instrument(level = "debug", name = "cleanup_expired_sessions", skip_all)]
    pub async fn cleanup_expired_sessions(&self) -> Result<u64> {
        let result = async {
            let now = self.now();
            let mut removed = 0;
            loop {
                let n = self.inner.store.purge_expired(now, CLEANUP_BATCH).await?;
                removed += n;
                if (n as usize) < CLEANUP_BATCH {
                    break;
                }
                // Let validations waiting on the store lock run between batches.
                tokio::task::yield_now().await;
            }
            let c = &self.inner.counters;
            c.expired.fetch_add(removed, Ordering::Relaxed);
            c.last_cleanup.store(now, Ordering::Relaxed);
            c.last_cleanup_removed.store(removed, Ordering::Relaxed);
            if removed > 0 {
                self.emit(SessionEvent::Expired { count: removed });
            }
            tracing::info!(removed, "expired sessions cleaned up");
            Ok(removed)
        }
        .await;
        result.map_err(|e| log_error("cleanup_expired_sessions", e))
    }

    /// Statistics: `getSessionStats()`.
    #[tracing::instrument(level = "debug", name = "session_stats", skip_all)]
    pub async fn session_stats(&self) -> Result<SessionStats> {
        let result = async {
            let now = self.now();
            let counts = self.inner.store.count(now).await?;
            let mut active_by_org = BTreeMap::new();
            for (org_key, n) in counts.by_org {
                if let Some(org) = self.org_name(&org_key, now).await? {
                    active_by_org.insert(org, n);
                }
            }
            let c = &self.inner.counters;
            let last = c.last_cleanup.load(Ordering::Relaxed);
            Ok(SessionStats {
                active_sessions: counts.total,
                active_by_org,
                sessions_created: c.created.load(Ordering::Relaxed),
                sessions_refreshed: c.refreshed.load(Ordering::Relaxed),
                sessions_destroyed: c.destroyed.load(Ordering::Relaxed),
                sessions_expired: c.expired.load(Ordering::Relaxed),
                refresh_reuse_detected: c.reuse_detected.load(Ordering::Relaxed),
                last_cleanup: (last > 0).then_some(last),
                last_cleanup_removed: c.last_cleanup_removed.load(Ordering::Relaxed),
            })
        }
        .await;
        result.map_err(|e| log_error("session_stats", e))
    }

    /// The org id behind an org key: known to this process, or read from one
    /// of the org's sessions (created by another node).
    async fn org_name(&self, org_key: &IndexKey, now: u64) -> Result<Option<OrgId>> {
        if let Some(org) = self.inner.org_names.read().get(org_key) {
            return Ok(Some(*org));
        }
        let page = self.inner.store.list(Some(org_key), None, 1, now).await?;
        let org = page
            .sessions
            .first()
            .and_then(|s| self.open(s))
            .map(|r| r.org_id);
        if let Some(org) = org {
            self.inner.org_names.write().insert(*org_key, org);
        }
        Ok(org)
    }

    /// Sets a user's role in an org, in the directory, and applies it to the
    /// user's live sessions in that org. The role must exist in the policy.
    #[tracing::instrument(level = "debug", name = "set_membership", skip_all)]
    pub async fn set_membership(&self, user: &UserId, org: &OrgId, role: &RoleName) -> Result<()> {
        let result = async {
            if !self.inner.policy.has_role(role) {
                return Err(SessionError::validation(
                    "the role is not defined by the policy",
                ));
            }
            self.inner.directory.set_role(user, org, role).await?;
            self.apply_role(user, org, Some(role)).await?;
            self.emit(SessionEvent::MembershipChanged {
                user_id: *user,
                org_id: *org,
                role: Some(role.clone()),
            });
            Ok(())
        }
        .await;
        result.map_err(|e| log_error("set_membership", e))
    }

    /// The user's role in an org, or `None` if not a member.
    #[tracing::instrument(level = "debug", name = "membership", skip_all)]
    pub async fn membership(&self, user: &UserId, org: &OrgId) -> Result<Option<RoleName>> {
        self.inner
            .directory
            .role(user, org)
            .await
            .map_err(|e| log_error("membership", e))
    }

    /// Removes a user from an org and revokes their sessions in it. Returns
    /// whether they were a member.
    #[tracing::instrument(level = "debug", name = "remove_membership", skip_all)]
    pub async fn remove_membership(&self, user: &UserId, org: &OrgId) -> Result<bool> {
        let result = async {
            let was = self.inner.directory.remove(user, org).await?;
            self.apply_role(user, org, None).await?;
            self.emit(SessionEvent::MembershipChanged {
                user_id: *user,
                org_id: *org,
                role: None,
            });
            Ok(was)
        }
        .await;
        result.map_err(|e| log_error("remove_membership", e))
    }

    /// Re-reads a membership from the directory and applies it to the user's
    /// live sessions in that org. For directories kept outside Tessera: call
    /// it after changing a membership there.
    #[tracing::instrument(level = "debug", name = "apply_membership", skip_all)]
    pub async fn apply_membership(&self, user: &UserId, org: &OrgId) -> Result<()> {
        let result = async {
            let role = self.inner.directory.role(user, org).await?;
            self.apply_role(user, org, role.as_ref()).await
        }
        .await;
        result.map_err(|e| log_error("apply_membership", e))
    }

    /// Brings the user's sessions in `org` in line with `role`: re-sealed
    /// with the new role, or revoked when `role` is `None`.
    async fn apply_role(&self, user: &UserId, org: &OrgId, role: Option<&RoleName>) -> Result<()> {
        for key in self.inner.keys.sealing_keys() {
            let user_key = self.user_key(key, user);
            let org_key = self.org_key(key, org);
            let sessions = self
                .inner
                .store
                .user_sessions(&user_key, self.now())
                .await?;
            for stored in sessions.into_iter().filter(|s| s.org_key == org_key) {
                match role {
                    None => {
                        self.end(stored.id, EndReason::MembershipRemoved).await?;
                    }
                    Some(role) => self.set_session_role(stored, role).await?,
                }
            }
        }
        Ok(())
    }

    async fn set_session_role(&self, mut stored: StoredSession, role: &RoleName) -> Result<()> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(mut record) = self.open(&stored) else {
                return Ok(());
            };
            if record.role == *role {
                return Ok(());
            }
            record.role = role.clone();
            let now = self.now();
            let sealed = record.seal(&self.inner.keys, &stored.id)?;
            match self
                .inner
                .store
                .compare_and_swap(&stored.id, stored.version, sealed, stored.expires_at, now)
                .await?
            {
                CasOutcome::Swapped { .. } | CasOutcome::Missing => return Ok(()),
                CasOutcome::Conflict => match self.inner.store.get(&stored.id, now).await? {
                    Some(fresh) => stored = fresh,
                    None => return Ok(()),
                },
            }
        }
        Err(SessionError::system(
            "a session changed too often to apply a membership change",
        ))
    }

    /// Whether the store answers: for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.inner.store.ping().await?)
    }

    /// The role policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The keys.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }
}

/// The largest page of a listing.
const MAX_PAGE_LIMIT: usize = 1000;

/// The cursor after `last` in a user's sessions: its creation time and id.
fn user_cursor(last: &SessionInfo) -> String {
    format!("{}-{}", last.created_at, last.session_id.as_uuid().simple())
}

fn parse_user_cursor(cursor: &str) -> Result<(u64, SessionId)> {
    let bad = || SessionError::validation("the cursor is not valid");
    let (at, id) = cursor.split_once('-').ok_or_else(bad)?;
    if at.is_empty() || at.len() > 20 || !at.bytes().all(|b| b.is_ascii_digit()) || id.len() != 32 {
        return Err(bad());
    }
    let at: u64 = at.parse().map_err(|_| bad())?;
    let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
    Ok((at, SessionId::from_uuid(id)))
}
