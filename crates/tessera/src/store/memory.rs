//! The in-memory store: the embedded default.
//!
//! One `parking_lot::RwLock` guards the maps. Validations only read, so they
//! share the lock; writes hold it for a few map operations. Cleanup removes
//! at most `limit` sessions per lock acquisition, so it never stalls
//! validations for long however much has expired.
//!
//! Lookups by id are O(1) in a `HashMap`. The per-user index maps a user key
//! to its session ids. The expiry index buckets session ids by the second
//! they expire; a bucket entry whose session has since moved (a refresh
//! pushed its expiry out) is stale and skipped at purge time, which keeps
//! refresh from searching buckets and keeps purge proportional to what
//! expired.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;

use async_trait::async_trait;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::{
    CasOutcome, IndexKey, MembershipPage, Page, RestoreOutcome, SessionCounts, SessionStore,
    StoredSession, key_cursor, parse_key_cursor,
};
use crate::error::StoreError;
use crate::ids::SessionId;

/// Width of an expiry bucket, in seconds. Coarse buckets keep the index to
/// a few large vectors instead of one small vector per second.
const GRANULE: u64 = 64;

/// How many expired sessions a full store purges before it refuses an insert.
const PURGE_WHEN_FULL: usize = 1024;

struct Entry {
    sealed: Box<[u8]>,
    user_key: IndexKey,
    /// Unix seconds; u32 lasts until 2106.
    expires_at: u32,
    /// Wraps after 2^32 writes to one session, which its 30-day absolute
    /// lifetime rules out.
    version: u32,
    /// Index of the org key in `State::orgs`: orgs are few, sessions many.
    org: u32,
    /// Position of the id in its expiry bucket, for O(1) removal.
    slot: u32,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        u64::from(self.expires_at) > now
    }
}

fn secs(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// The sessions of one user: most users have one, which needs no heap.
enum UserSessions {
    One(SessionId),
    Many(Vec<SessionId>),
}

impl UserSessions {
    fn push(&mut self, id: SessionId) {
        match self {
            UserSessions::One(first) => *self = UserSessions::Many(vec![*first, id]),
            UserSessions::Many(v) => v.push(id),
        }
    }

    fn as_slice(&self) -> &[SessionId] {
        match self {
            UserSessions::One(id) => std::slice::from_ref(id),
            UserSessions::Many(v) => v,
        }
    }

    /// Removes `id`; returns whether none is left.
    fn remove(&mut self, id: &SessionId) -> bool {
        match self {
            UserSessions::One(x) => x == id,
            UserSessions::Many(v) => {
                v.retain(|x| x != id);
                v.is_empty()
            }
        }
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Entry>,
    by_user: HashMap<IndexKey, UserSessions>,
    /// Interned org keys and how many stored sessions each has.
    orgs: Vec<(IndexKey, u64)>,
    org_index: HashMap<IndexKey, u32>,
    /// Session ids by `expires_at / GRANULE`. Exact: every stored session is
    /// in the bucket of its current expiry, once.
    expiry: BTreeMap<u64, Vec<SessionId>>,
    /// Ordered, so a membership listing can resume after a key.
    memberships: BTreeMap<IndexKey, Vec<u8>>,
}

impl State {
    /// Removes up to `limit` expired sessions, oldest expiry first;
    /// proportional to what it removes.
    fn purge(&mut self, now: u64, limit: usize) -> u64 {
        let mut removed = 0u64;
        while (removed as usize) < limit {
            let Some((&key, last)) = self
                .expiry
                .first_key_value()
                .map(|(k, ids)| (k, ids.last().copied()))
            else {
                break;
            };
            if key * GRANULE > now {
                break;
            }
            if key * GRANULE + GRANULE - 1 <= now {
                // The whole bucket has expired: take from its end, O(1) each.
                let Some(id) = last else {
                    self.expiry.remove(&key);
                    continue;
                };
                if self.take(&id).is_none() {
                    // Not reachable while the index is exact; never loop on it.
                    if let Some(ids) = self.expiry.get_mut(&key) {
                        ids.pop();
                    }
                    continue;
                }
                removed += 1;
                continue;
            }
            // The bucket `now` falls in: only some of it has expired.
            let due: Vec<SessionId> = self.expiry[&key]
                .iter()
                .filter(|id| self.sessions.get(id).is_some_and(|e| !e.live(now)))
                .take(limit - removed as usize)
                .copied()
                .collect();
            for id in &due {
                self.take(id);
            }
            removed += due.len() as u64;
            break;
        }
        removed
    }

    fn to_stored(&self, id: SessionId, e: &Entry) -> StoredSession {
        StoredSession {
            id,
            user_key: e.user_key,
            org_key: self.orgs[e.org as usize].0,
            expires_at: u64::from(e.expires_at),
            version: u64::from(e.version),
            sealed: e.sealed.to_vec(),
        }
    }

    fn intern_org(&mut self, key: IndexKey) -> u32 {
        if let Some(i) = self.org_index.get(&key) {
            return *i;
        }
        let i = self.orgs.len() as u32;
        self.orgs.push((key, 0));
        self.org_index.insert(key, i);
        i
    }

    /// Puts `id` in the bucket of `expires_at`; returns its slot.
    fn link_expiry(&mut self, id: SessionId, expires_at: u64) -> u32 {
        let bucket = self.expiry.entry(expires_at / GRANULE).or_default();
        bucket.push(id);
        (bucket.len() - 1) as u32
    }

    /// Takes `id` out of the bucket of `expires_at`, moving the bucket's last
    /// id into its slot.
    fn unlink_expiry(&mut self, expires_at: u64, slot: u32) {
        let key = expires_at / GRANULE;
        let Some(bucket) = self.expiry.get_mut(&key) else {
            return;
        };
        let slot = slot as usize;
        if slot >= bucket.len() {
            return;
        }
        bucket.swap_remove(slot);
        if let Some(moved) = bucket.get(slot).copied() {
            if let Some(e) = self.sessions.get_mut(&moved) {
                e.slot = slot as u32;
            }
        } else if bucket.is_empty() {
            self.expiry.remove(&key);
        }
    }

    fn add(
        &mut self,
        id: SessionId,
        user_key: IndexKey,
        org_key: IndexKey,
        expires_at: u64,
        version: u64,
        sealed: Box<[u8]>,
    ) {
        // Clamped once, so the bucket and the entry agree.
        let expires_at = u64::from(secs(expires_at));
        self.by_user
            .entry(user_key)
            .and_modify(|s| s.push(id))
            .or_insert(UserSessions::One(id));
        let org = self.intern_org(org_key);
        self.orgs[org as usize].1 += 1;
        let slot = self.link_expiry(id, expires_at);
        self.sessions.insert(
            id,
            Entry {
                sealed,
                user_key,
                expires_at: secs(expires_at),
                version: version as u32,
                org,
                slot,
            },
        );
    }

    /// Removes a session and its index entries.
    fn take(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.sessions.remove(id)?;
        self.unlink_expiry(u64::from(entry.expires_at), entry.slot);
        if let Some(ids) = self.by_user.get_mut(&entry.user_key)
            && ids.remove(id)
        {
            self.by_user.remove(&entry.user_key);
        }
        if let Some(o) = self.orgs.get_mut(entry.org as usize) {
            o.1 = o.1.saturating_sub(1);
        }
        Some(entry)
    }

    fn live(&self, id: &SessionId, now: u64) -> Option<&Entry> {
        self.sessions.get(id).filter(|e| e.live(now))
    }
}

/// Sessions and memberships in this process's memory. Cheap to share behind
/// an `Arc`; lost when the process exits unless [exported](Self::export).
/// Each write happens under a lock within the call: it has taken effect when
/// the call returns, or (refused at capacity) never, so "no late writes"
/// holds and the write window is zero.
pub struct MemoryStore {
    state: RwLock<State>,
    capacity: Capacity,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// How much a [`MemoryStore`] may hold. A store at its capacity refuses new
/// sessions and memberships with a [`StoreErrorKind::Full`] error (sessions
/// that have expired are purged first), so that no client can make the
/// process run out of memory; what is already stored keeps working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// At most this many sessions, live or expired but not yet purged.
    pub sessions: usize,
    /// At most this many memberships.
    pub memberships: usize,
}

impl Capacity {
    /// No bound but the machine's memory.
    pub const UNBOUNDED: Capacity = Capacity {
        sessions: usize::MAX,
        memberships: usize::MAX,
    };
}

impl MemoryStore {
    /// An empty store with no capacity bound.
    pub fn new() -> Self {
        Self::with_capacity(Capacity::UNBOUNDED)
    }

    /// An empty store that holds at most `capacity`.
    pub fn with_capacity(capacity: Capacity) -> Self {
        Self {
            state: RwLock::new(State::default()),
            capacity,
        }
    }

    /// Makes room for one more session in `state`: purges what has expired
    /// when at capacity, and refuses when it is still full.
    fn room_for_session(&self, state: &mut State, now: u64) -> Result<(), StoreError> {
        if state.sessions.len() < self.capacity.sessions {
            return Ok(());
        }
        state.purge(now, PURGE_WHEN_FULL);
        if state.sessions.len() < self.capacity.sessions {
            return Ok(());
        }
        Err(StoreError::full(
            "the in-memory store holds its maximum of sessions",
        ))
    }

    /// Everything the store holds, as bytes: a backup. It contains what the
    /// store holds and nothing more (session ids, keyed hashes, expiry times
    /// and sealed records), so it is as safe to keep as the store itself; it
    /// is useless without `SESSION_ENCRYPTION_KEY`.
    pub fn export(&self) -> Vec<u8> {
        let state = self.state.read();
        let snapshot = Snapshot {
            version: 1,
            sessions: state
                .sessions
                .iter()
                .map(|(id, e)| SnapshotSession {
                    id: *id.as_bytes(),
                    user_key: e.user_key,
                    org_key: state.orgs[e.org as usize].0,
                    expires_at: u64::from(e.expires_at),
                    version: u64::from(e.version),
                    sealed: e.sealed.to_vec(),
                })
                .collect(),
            memberships: state
                .memberships
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        };
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_stdvec(&snapshot).unwrap_or_default()
    }

    /// A store restored from a backup made by [`export`](Self::export).
    pub fn import(bytes: &[u8]) -> Result<Self, StoreError> {
        let snapshot: Snapshot = postcard::from_bytes(bytes)
            .map_err(|e| StoreError::with_source("the backup is not a Tessera snapshot", e))?;
        if snapshot.version != 1 {
            return Err(StoreError::new("the backup has an unknown format version"));
        }
        let mut state = State::default();
        for s in snapshot.sessions {
            state.add(
                SessionId::from_uuid(uuid::Uuid::from_bytes(s.id)),
                s.user_key,
                s.org_key,
                s.expires_at,
                s.version,
                s.sealed.into_boxed_slice(),
            );
        }
        state.memberships = snapshot.memberships.into_iter().collect();
        Ok(Self {
            state: RwLock::new(state),
            capacity: Capacity::UNBOUNDED,
        })
    }

    /// How many sessions are held, live or expired but not yet purged.
    pub fn len(&self) -> usize {
        self.state.read().sessions.len()
    }

    /// Whether the store holds no session at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u8,
    sessions: Vec<SnapshotSession>,
    memberships: Vec<(IndexKey, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotSession {
    id: [u8; 16],
    user_key: IndexKey,
    org_key: IndexKey,
    expires_at: u64,
    version: u64,
    sealed: Vec<u8>,
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        let mut state = self.state.write();
        if state.live(&s.id, now).is_some() {
            return Ok(false);
        }
        if !state.sessions.contains_key(&s.id) {
            self.room_for_session(&mut state, now)?;
        }
        state.take(&s.id);
        state.add(
            s.id,
            s.user_key,
            s.org_key,
            s.expires_at,
            1,
            s.sealed.into_boxed_slice(),
        );
        Ok(true)
    }

    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        let state = self.state.read();
        Ok(state.live(id, now).map(|e| state.to_stored(*id, e)))
    }

    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let mut state = self.state.write();
        let Some(entry) = state.sessions.get_mut(id).filter(|e| e.live(now)) else {
            return Ok(CasOutcome::Missing);
        };
        if u64::from(entry.version) != expected_version {
            return Ok(CasOutcome::Conflict);
        }
        entry.version = entry.version.wrapping_add(1);
        entry.sealed = sealed.into_boxed_slice();
        let version = u64::from(entry.version);
        let (old, slot) = (u64::from(entry.expires_at), entry.slot);
        let expires_at = u64::from(secs(expires_at));
        if old / GRANULE != expires_at / GRANULE {
            state.unlink_expiry(old, slot);
            let slot = state.link_expiry(*id, expires_at);
            if let Some(e) = state.sessions.get_mut(id) {
                e.slot = slot;
            }
        }
        if let Some(e) = state.sessions.get_mut(id) {
            e.expires_at = secs(expires_at);
        }
        Ok(CasOutcome::Swapped { version })
    }

    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.state.write().take(id).is_some())
    }

    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let state = self.state.read();
        Ok(state
            .by_user
            .get(user_key)
            .map(UserSessions::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|id| state.live(id, now).map(|e| state.to_stored(*id, e)))
            .collect())
    }

    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        let mut state = self.state.write();
        let ids = state
            .by_user
            .get(user_key)
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default();
        let mut removed = 0;
        for id in ids {
            if state.take(&id).is_some_and(|e| e.live(now)) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        let after = match cursor {
            Some(c) => Some(
                SessionId::parse(c)
                    .map_err(|_| StoreError::invalid_input("the cursor is not valid"))?,
            ),
            None => None,
        };
        if limit == 0 {
            return Ok(Page::default());
        }
        let state = self.state.read();
        // The `limit` smallest ids after the cursor, by a bounded max-heap:
        // O(n log limit) over the map, no copy of the whole key set.
        let mut heap = BinaryHeap::with_capacity(limit + 1);
        for (id, e) in &state.sessions {
            if after.is_some_and(|a| *id <= a)
                || !e.live(now)
                || org_key.is_some_and(|k| *k != state.orgs[e.org as usize].0)
            {
                continue;
            }
            heap.push(*id);
            if heap.len() > limit {
                heap.pop();
            }
        }
        let full = heap.len() == limit;
        let ids = heap.into_sorted_vec();
        let next_cursor = if full {
            ids.last().map(ToString::to_string)
        } else {
            None
        };
        let sessions = ids
            .into_iter()
            .filter_map(|id| state.sessions.get(&id).map(|e| state.to_stored(id, e)))
            .collect();
        Ok(Page {
            sessions,
            next_cursor,
        })
    }

    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        Ok(self.state.write().purge(now, limit))
    }

    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        let state = self.state.read();
        let mut by_org: Vec<u64> = state.orgs.iter().map(|(_, n)| *n).collect();
        let mut total = state.sessions.len() as u64;
        // Subtract what has expired but is not purged yet: proportional to
        // that backlog, which cleanup keeps small.
        for ids in state.expiry.range(..=now / GRANULE).map(|(_, ids)| ids) {
            for id in ids {
                if let Some(e) = state.sessions.get(id).filter(|e| !e.live(now)) {
                    total = total.saturating_sub(1);
                    if let Some(n) = by_org.get_mut(e.org as usize) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        Ok(SessionCounts {
            total,
            by_org: state
                .orgs
                .iter()
                .zip(by_org)
                .filter(|(_, n)| *n > 0)
                .map(|((k, _), n)| (*k, n))
                .collect(),
        })
    }

    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        let mut state = self.state.write();
        if state.memberships.len() >= self.capacity.memberships
            && !state.memberships.contains_key(key)
        {
            return Err(StoreError::full(
                "the in-memory store holds its maximum of memberships",
            ));
        }
        state.memberships.insert(*key, sealed);
        Ok(())
    }

    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.read().memberships.get(key).cloned())
    }

    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        Ok(self.state.write().memberships.remove(key).is_some())
    }

    async fn restore(&self, s: StoredSession, now: u64) -> Result<RestoreOutcome, StoreError> {
        if s.expires_at <= now {
            return Ok(RestoreOutcome::Expired);
        }
        let mut state = self.state.write();
        if state
            .live(&s.id, now)
            .is_some_and(|e| u64::from(e.version) >= s.version)
        {
            return Ok(RestoreOutcome::Kept);
        }
        if !state.sessions.contains_key(&s.id) {
            self.room_for_session(&mut state, now)?;
        }
        state.take(&s.id);
        state.add(
            s.id,
            s.user_key,
            s.org_key,
            s.expires_at,
            s.version,
            s.sealed.into_boxed_slice(),
        );
        Ok(RestoreOutcome::Written)
    }

    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError> {
        let after = match cursor {
            Some(c) => Some(parse_key_cursor(c)?),
            None => None,
        };
        if limit == 0 {
            return Ok(MembershipPage::default());
        }
        let state = self.state.read();
        let range = match after {
            Some(k) => state
                .memberships
                .range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => state.memberships.range::<IndexKey, _>(..),
        };
        let memberships: Vec<(IndexKey, Vec<u8>)> =
            range.take(limit).map(|(k, v)| (*k, v.clone())).collect();
        let next_cursor = if memberships.len() == limit {
            memberships.last().map(|(k, _)| key_cursor(k))
        } else {
            None
        };
        Ok(MembershipPage {
            memberships,
            next_cursor,
        })
    }

    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.write();
        if state.memberships.contains_key(key) {
            return Ok(false);
        }
        if state.memberships.len() >= self.capacity.memberships {
            return Err(StoreError::full(
                "the in-memory store holds its maximum of memberships",
            ));
        }
        state.memberships.insert(*key, sealed);
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
