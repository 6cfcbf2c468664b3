//! The storage contract, and the in-memory store that is the default.
//!
//! A [`SessionStore`] keeps opaque, sealed session records. It never sees a
//! token, a user id or an org id in clear: records are sealed by the manager
//! before they arrive, and the indexes it maintains are keyed hashes
//! ([`IndexKey`]). What a store does see is the session id (an identifier, not
//! a credential), each record's expiry time and a version number.
//!
//! Every implementation must pass the suite in the `tessera-conformance`
//! crate, which turns each "must" below into a test.

mod memory;

use std::fmt;

use async_trait::async_trait;

pub use self::memory::{Capacity, MemoryStore};
use crate::error::StoreError;
use crate::ids::SessionId;

/// A keyed hash (HMAC-SHA256, truncated to 128 bits) of a user id, an org id
/// or a membership, under a key derived from `SESSION_ENCRYPTION_KEY`. Stores
/// group by it without learning the value behind it.
pub type IndexKey = [u8; 16];

/// One session as a store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The session id: the primary key.
    pub id: SessionId,
    /// Keyed hash of the user id, for the per-user index.
    pub user_key: IndexKey,
    /// Keyed hash of the org id, for filters and per-org counts.
    pub org_key: IndexKey,
    /// Unix seconds after which the session no longer exists.
    pub expires_at: u64,
    /// Incremented by the store on every successful write; starts at 1.
    pub version: u64,
    /// The sealed record (see [`crate::seal`]).
    pub sealed: Vec<u8>,
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .field("version", &self.version)
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// The outcome of [`SessionStore::compare_and_swap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The write happened; the record now has this version.
    Swapped {
        /// The new version.
        version: u64,
    },
    /// The record exists but its version was not the expected one; nothing
    /// was written.
    Conflict,
    /// There is no live record with that id; nothing was written.
    Missing,
}

/// A page of [`SessionStore::list`].
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The sessions of this page.
    pub sessions: Vec<StoredSession>,
    /// Where the next page starts, or `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The outcome of [`SessionStore::restore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The session was written with the version it came with: there was no
    /// live session with its id, or the one there had a lower version.
    Written,
    /// A live session with that id and the same or a higher version was
    /// there; nothing was written.
    Kept,
    /// The session had expired by `now`; nothing was written.
    Expired,
}

/// A page of [`SessionStore::list_memberships`].
#[derive(Clone, Default)]
pub struct MembershipPage {
    /// Sealed memberships under their keys.
    pub memberships: Vec<(IndexKey, Vec<u8>)>,
    /// Where the next page starts, or `None` on the last page.
    pub next_cursor: Option<String>,
}

impl fmt::Debug for MembershipPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipPage")
            .field("memberships", &self.memberships.len())
            .field("next_cursor", &self.next_cursor)
            .finish()
    }
}

/// A cursor naming a key (an [`IndexKey`] or a session id's 16 bytes): 32
/// lowercase hex digits. Stores that page by key use it, so their cursors
/// look alike and parse alike.
pub fn key_cursor(key: &IndexKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a [`key_cursor`]; anything else is an error (the store did not
/// issue it).
pub fn parse_key_cursor(cursor: &str) -> Result<IndexKey, StoreError> {
    let bad = || StoreError::invalid_input("the cursor is not valid");
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let raw = cursor.as_bytes();
    if raw.len() != 32 {
        return Err(bad());
    }
    let mut key = [0u8; 16];
    for (out, pair) in key.iter_mut().zip(raw.chunks_exact(2)) {
        *out = (digit(pair[0]).ok_or_else(bad)? << 4) | digit(pair[1]).ok_or_else(bad)?;
    }
    Ok(key)
}

/// Splits a batch into runs in which no key (a session id, a membership
/// key) appears twice, keeping the order. A store that writes a run in one
/// statement (where one row cannot be written twice), or all of a run at
/// once, restores the runs one after another, which gives the outcomes of
/// restoring the items one by one.
pub fn runs_of_distinct<T, K: std::hash::Hash + Eq>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
) -> Vec<Vec<T>> {
    let mut runs: Vec<Vec<T>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        let repeated = !seen.insert(key(&item));
        match runs.last_mut() {
            Some(run) if !repeated => run.push(item),
            _ => {
                seen.clear();
                seen.insert(key(&item));
                runs.push(vec![item]);
            }
        }
    }
    runs
}

/// Live session counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// All live sessions.
    pub total: u64,
    /// Live sessions per org key, in no particular order, zeros omitted.
    pub by_org: Vec<(IndexKey, u64)>,
}

/// Where sessions and memberships live.
///
/// The contract, which `tessera-conformance` checks:
///
/// - **Expiry.** A session whose `expires_at` is at or before `now` must not be
///   returned, listed or counted by any method, whether or not
///   [`purge_expired`](Self::purge_expired) has removed it yet. Stores may
///   also drop it by themselves (a Redis TTL), so the `now` a store is given
///   must be close to wall-clock time; the manager passes its clock's time.
/// - **Missing ids** are not errors: reads return `None` or an empty list,
///   removals return `false` or `0`, and a swap returns
///   [`CasOutcome::Missing`].
/// - **Errors.** `Err` means the store failed ([`StoreErrorKind::Failed`]),
///   except that a cursor the store did not issue must be refused with
///   [`StoreErrorKind::InvalidInput`], and a store at a configured capacity
///   refuses new records with [`StoreErrorKind::Full`]; neither changes
///   anything.
///
/// [`StoreErrorKind::Failed`]: crate::StoreErrorKind::Failed
/// [`StoreErrorKind::InvalidInput`]: crate::StoreErrorKind::InvalidInput
/// [`StoreErrorKind::Full`]: crate::StoreErrorKind::Full
/// - **Atomicity.** Each method is atomic: a concurrent reader sees a record
///   and its indexes either wholly before or wholly after a write.
///   [`compare_and_swap`](Self::compare_and_swap) writes only if the stored
///   version equals the expected one, so of several concurrent swaps from the
///   same version exactly one succeeds. Refresh-token rotation is built on it.
/// - **Indexes.** After [`insert`](Self::insert), the session is found through
///   its user key until it is removed or expires; after a removal it is found
///   through no index.
/// - **No rollback.** [`restore`](Self::restore) never replaces a live
///   session with an older version of itself, so a backup can never bring
///   back a refresh token that has since been rotated out, and restoring the
///   same backup twice changes nothing the second time.
///   [`restore_batch`](Self::restore_batch) keeps the same promise for every
///   session of a batch.
/// - **No late writes.** A write that returns `Err` must not take effect
///   after it returned: it took effect before (and only its answer was
///   lost) or it never will. Every write, whatever it returns, must take
///   effect within [`write_window`](Self::write_window) of the call, or
///   never. Without this, a refresh that failed with `DATABASE_ERROR` could
///   rotate the token later, behind the client's back, and the client's
///   retry with the token it still holds would revoke the session as theft.
///   The writes are `insert`, `compare_and_swap`, `remove`,
///   `remove_user_sessions`, `purge_expired`, `restore`, `restore_batch` and
///   the membership writes. A store over a network meets it with a deadline
///   carried into the write and checked against the server's own clock (see
///   the Redis and PostgreSQL stores); the conformance suite cannot make a
///   network fail, so each such store proves it with its own fault tests.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new session with version 1. Must return `Ok(false)` and
    /// change nothing if a live session with that id exists.
    async fn insert(&self, session: StoredSession, now: u64) -> Result<bool, StoreError>;

    /// The live session with this id.
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError>;

    /// Replaces the sealed record and expiry of a live session if its version
    /// is still `expected_version`; the version then goes up by one. Must be
    /// atomic: a compare-and-swap.
    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError>;

    /// Removes a session and its index entries. `Ok(true)` if a live session
    /// was removed.
    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// The live sessions of a user key, in no particular order.
    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError>;

    /// Removes every session of a user key; returns how many live ones were
    /// removed. Atomic: a session inserted for that user before the call
    /// returns is either removed or was inserted after the removal.
    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError>;

    /// A page of live sessions, optionally only those of one org key.
    /// `cursor` is a value a previous page returned as `next_cursor`. Every
    /// session that lives through the whole listing appears exactly once.
    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError>;

    /// Removes up to `limit` sessions that expired at or before `now`, and
    /// returns how many it removed. Its cost must be proportional to the
    /// number removed, not to the number stored.
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError>;

    /// How many live sessions there are, in all and per org key.
    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError>;

    /// Stores (or replaces) a sealed membership under its key.
    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError>;

    /// The sealed membership under `key`.
    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a membership; `Ok(true)` if there was one.
    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError>;

    /// Writes a session copied from a backup or from another store, keeping
    /// its `version` (unlike [`insert`](Self::insert)). Must be atomic and
    /// must never roll a session back:
    ///
    /// - `expires_at` at or before `now`: nothing is written
    ///   ([`RestoreOutcome::Expired`]);
    /// - no live session with that id, or one with a lower version: the
    ///   session is stored as given, in every index, replacing the older one
    ///   ([`RestoreOutcome::Written`]);
    /// - a live session with the same or a higher version: nothing is
    ///   written ([`RestoreOutcome::Kept`]).
    async fn restore(&self, session: StoredSession, now: u64)
    -> Result<RestoreOutcome, StoreError>;

    /// Restores many sessions at once, as if each were given to
    /// [`restore`](Self::restore) in order: must return one outcome per
    /// session, in the order given, each the one that sequence of calls
    /// would have returned (an id named twice is restored twice, so the
    /// higher version stays). Each session's write must be atomic and must
    /// never roll a session back; the batch as a whole need not be atomic:
    /// on `Err` some of it may have been written, and restoring it again is
    /// harmless.
    ///
    /// Restoring a backup uses it. The default calls `restore` once per
    /// session; stores override it to write a batch in one transaction or
    /// one round trip.
    async fn restore_batch(
        &self,
        sessions: Vec<StoredSession>,
        now: u64,
    ) -> Result<Vec<RestoreOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(sessions.len());
        for s in sessions {
            outcomes.push(self.restore(s, now).await?);
        }
        Ok(outcomes)
    }

    /// A page of at most `limit` memberships. `cursor` is a value a previous
    /// page returned as `next_cursor`. Every membership that exists through
    /// the whole listing must appear at least once (a store may repeat one:
    /// writing a membership again is harmless); the listing must end.
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError>;

    /// Stores a sealed membership under `key` only if there is none;
    /// `Ok(true)` if it was written. Atomic: a membership put concurrently
    /// is never overwritten. Restoring a backup uses it, so an old backup
    /// never undoes a role change made since.
    async fn restore_membership(&self, key: &IndexKey, sealed: Vec<u8>)
    -> Result<bool, StoreError>;

    /// Restores many memberships at once, as if each were given to
    /// [`restore_membership`](Self::restore_membership) in order: must
    /// return one `bool` per membership, in the order given (a key named
    /// twice is written at most once, the first time), and must never
    /// overwrite a membership that is there. As with
    /// [`restore_batch`](Self::restore_batch), the batch as a whole need
    /// not be atomic. The default calls `restore_membership` once per
    /// membership.
    async fn restore_memberships(
        &self,
        memberships: Vec<(IndexKey, Vec<u8>)>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut written = Vec::with_capacity(memberships.len());
        for (key, sealed) in memberships {
            written.push(self.restore_membership(&key, sealed).await?);
        }
        Ok(written)
    }

    /// Whether the store answers. Used by readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How long after a write call begins the write may still take effect
    /// (the **No late writes** rule). The manager measures the refresh
    /// grace window from the latest moment a rotation can have been
    /// applied, so a rotation whose answer was lost still gets its full
    /// window. Default zero: a store whose writes are done when the call
    /// returns (in memory, an embedded file) has nothing to add.
    fn write_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: SessionId, version: u64) -> StoredSession {
        StoredSession {
            id,
            user_key: [1; 16],
            org_key: [2; 16],
            expires_at: 10,
            version,
            sealed: Vec::new(),
        }
    }

    #[test]
    fn runs_of_distinct_split_before_a_repeated_key_and_keep_the_order() {
        let (a, b, c) = (
            SessionId::random(),
            SessionId::random(),
            SessionId::random(),
        );
        let batch = vec![
            session(a, 1),
            session(b, 1),
            session(a, 2),
            session(c, 1),
            session(a, 3),
        ];
        let runs: Vec<Vec<(SessionId, u64)>> = runs_of_distinct(batch, |s| s.id)
            .into_iter()
            .map(|run| run.into_iter().map(|s| (s.id, s.version)).collect())
            .collect();
        assert_eq!(
            runs,
            vec![vec![(a, 1), (b, 1)], vec![(a, 2), (c, 1)], vec![(a, 3)]]
        );
        assert!(runs_of_distinct(Vec::<StoredSession>::new(), |s| s.id).is_empty());
    }
}
