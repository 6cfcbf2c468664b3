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

use super::{CasOutcome, IndexKey, Page, SessionCounts, SessionStore, StoredSession};
use crate::error::StoreError;
use crate::ids::SessionId;

struct Entry {
    user_key: IndexKey,
    org_key: IndexKey,
    expires_at: u64,
    version: u64,
    sealed: Box<[u8]>,
}

impl Entry {
    fn to_stored(&self, id: SessionId) -> StoredSession {
        StoredSession {
            id,
            user_key: self.user_key,
            org_key: self.org_key,
            expires_at: self.expires_at,
            version: self.version,
            sealed: self.sealed.to_vec(),
        }
    }

    fn live(&self, now: u64) -> bool {
        self.expires_at > now
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Entry>,
    by_user: HashMap<IndexKey, Vec<SessionId>>,
    org_counts: HashMap<IndexKey, u64>,
    expiry: BTreeMap<u64, Vec<SessionId>>,
    memberships: HashMap<IndexKey, Vec<u8>>,
}

impl State {
    fn add(&mut self, id: SessionId, entry: Entry) {
        self.by_user.entry(entry.user_key).or_default().push(id);
        *self.org_counts.entry(entry.org_key).or_default() += 1;
        self.expiry.entry(entry.expires_at).or_default().push(id);
        self.sessions.insert(id, entry);
    }

    /// Removes a session and its user and org index entries. Its expiry
    /// bucket entry goes stale and is dropped at purge time.
    fn take(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.sessions.remove(id)?;
        if let Some(ids) = self.by_user.get_mut(&entry.user_key) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.by_user.remove(&entry.user_key);
            }
        }
        if let Some(n) = self.org_counts.get_mut(&entry.org_key) {
            *n -= 1;
            if *n == 0 {
                self.org_counts.remove(&entry.org_key);
            }
        }
        Some(entry)
    }

    fn live(&self, id: &SessionId, now: u64) -> Option<&Entry> {
        self.sessions.get(id).filter(|e| e.live(now))
    }
}

/// Sessions and memberships in this process's memory. Cheap to share behind
/// an `Arc`; lost when the process exits unless [exported](Self::export).
#[derive(Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
                    org_key: e.org_key,
                    expires_at: e.expires_at,
                    version: e.version,
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
                Entry {
                    user_key: s.user_key,
                    org_key: s.org_key,
                    expires_at: s.expires_at,
                    version: s.version,
                    sealed: s.sealed.into_boxed_slice(),
                },
            );
        }
        state.memberships = snapshot.memberships.into_iter().collect();
        Ok(Self {
            state: RwLock::new(state),
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
        state.take(&s.id);
        state.add(
            s.id,
            Entry {
                user_key: s.user_key,
                org_key: s.org_key,
                expires_at: s.expires_at,
                version: 1,
                sealed: s.sealed.into_boxed_slice(),
            },
        );
        Ok(true)
    }

    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.state.read().live(id, now).map(|e| e.to_stored(*id)))
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
        if entry.version != expected_version {
            return Ok(CasOutcome::Conflict);
        }
        entry.version += 1;
        entry.sealed = sealed.into_boxed_slice();
        let version = entry.version;
        if entry.expires_at != expires_at {
            entry.expires_at = expires_at;
            state.expiry.entry(expires_at).or_default().push(*id);
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
            .into_iter()
            .flatten()
            .filter_map(|id| state.live(id, now).map(|e| e.to_stored(*id)))
            .collect())
    }

    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        let mut state = self.state.write();
        let ids = state.by_user.get(user_key).cloned().unwrap_or_default();
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
            Some(c) => {
                Some(SessionId::parse(c).map_err(|_| StoreError::new("the cursor is not valid"))?)
            }
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
                || org_key.is_some_and(|k| *k != e.org_key)
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
            .filter_map(|id| state.sessions.get(&id).map(|e| e.to_stored(id)))
            .collect();
        Ok(Page {
            sessions,
            next_cursor,
        })
    }

    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        let mut state = self.state.write();
        let mut removed = 0u64;
        while (removed as usize) < limit {
            let Some(mut bucket) = state.expiry.first_entry() else {
                break;
            };
            if *bucket.key() > now {
                break;
            }
            let Some(id) = bucket.get_mut().pop() else {
                bucket.remove();
                continue;
            };
            // Skip stale bucket entries: the session was removed, or a
            // refresh moved its expiry to a later bucket.
            if state.sessions.get(&id).is_some_and(|e| !e.live(now)) {
                state.take(&id);
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        let state = self.state.read();
        let mut by_org = state.org_counts.clone();
        let mut total = state.sessions.len() as u64;
        // Subtract what has expired but is not purged yet: proportional to
        // that backlog, which cleanup keeps small.
        for (at, ids) in state.expiry.range(..=now) {
            for id in ids {
                // Only the bucket an entry currently expires in counts: the
                // others are stale entries left by refreshes.
                if let Some(e) = state.sessions.get(id).filter(|e| e.expires_at == *at) {
                    total = total.saturating_sub(1);
                    if let Some(n) = by_org.get_mut(&e.org_key) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        Ok(SessionCounts {
            total,
            by_org: by_org.into_iter().filter(|(_, n)| *n > 0).collect(),
        })
    }

    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.state.write().memberships.insert(*key, sealed);
        Ok(())
    }

    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.read().memberships.get(key).cloned())
    }

    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        Ok(self.state.write().memberships.remove(key).is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
