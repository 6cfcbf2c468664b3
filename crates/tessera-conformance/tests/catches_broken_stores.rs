//! The suite must fail stores that break the contract: each test wraps the
//! memory store with one deliberate bug and checks that the case guarding
//! that promise panics.

use std::sync::Arc;

use async_trait::async_trait;
use tessera::ids::SessionId;
use tessera::store::{
    CasOutcome, IndexKey, MembershipPage, Page, RestoreOutcome, SessionCounts, StoredSession,
};
use tessera::{MemoryStore, SessionStore, StoreError};
use tessera_conformance::cases;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    GetIgnoresExpiry,
    SwapIgnoresVersion,
    RemoveKeepsUserIndex,
    PurgeIgnoresLimit,
    RestoreIgnoresVersion,
    RestoreMembershipOverwrites,
    RestoreBatchIgnoresVersion,
    RestoreMembershipsOverwrite,
}

#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    bug: Bug,
    removed: parking_lot::Mutex<Vec<StoredSession>>,
}

#[async_trait]
impl SessionStore for Broken {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        self.inner.insert(s, now).await
    }
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        let now = if self.bug == Bug::GetIgnoresExpiry {
            0
        } else {
            now
        };
        self.inner.get(id, now).await
    }
    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let expected = match (self.bug, self.inner.get(id, now).await?) {
            (Bug::SwapIgnoresVersion, Some(s)) => s.version,
            _ => expected,
        };
        self.inner
            .compare_and_swap(id, expected, sealed, expires_at, now)
            .await
    }
    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        if self.bug == Bug::RemoveKeepsUserIndex
            && let Some(s) = self.inner.get(id, 0).await?
        {
            self.removed.lock().push(s);
        }
        self.inner.remove(id).await
    }
    async fn user_sessions(
        &self,
        user: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let mut out = self.inner.user_sessions(user, now).await?;
        out.extend(
            self.removed
                .lock()
                .iter()
                .filter(|s| s.user_key == *user)
                .cloned(),
        );
        Ok(out)
    }
    async fn remove_user_sessions(&self, user: &IndexKey, now: u64) -> Result<u64, StoreError> {
        self.inner.remove_user_sessions(user, now).await
    }
    async fn list(
        &self,
        org: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        self.inner.list(org, cursor, limit, now).await
    }
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        let limit = if self.bug == Bug::PurgeIgnoresLimit {
            usize::MAX
        } else {
            limit
        };
        self.inner.purge_expired(now, limit).await
    }
    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        self.inner.count(now).await
    }
    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put_membership(key, sealed).await
    }
    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_membership(key).await
    }
    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        self.inner.remove_membership(key).await
    }
    async fn restore(&self, s: StoredSession, now: u64) -> Result<RestoreOutcome, StoreError> {
        if self.bug == Bug::RestoreIgnoresVersion && s.expires_at > now {
            self.inner.remove(&s.id).await?;
        }
        self.inner.restore(s, now).await
    }
    async fn restore_batch(
        &self,
        sessions: Vec<StoredSession>,
        now: u64,
    ) -> Result<Vec<RestoreOutcome>, StoreError> {
        if self.bug != Bug::RestoreBatchIgnoresVersion {
            return self.inner.restore_batch(sessions, now).await;
        }
        let mut outcomes = Vec::new();
        for s in sessions {
            if s.expires_at > now {
                self.inner.remove(&s.id).await?;
            }
            outcomes.push(self.inner.restore(s, now).await?);
        }
        Ok(outcomes)
    }
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError> {
        self.inner.list_memberships(cursor, limit).await
    }
    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        if self.bug == Bug::RestoreMembershipOverwrites {
            self.inner.put_membership(key, sealed).await?;
            return Ok(true);
        }
        self.inner.restore_membership(key, sealed).await
    }
    async fn restore_memberships(
        &self,
        memberships: Vec<(IndexKey, Vec<u8>)>,
    ) -> Result<Vec<bool>, StoreError> {
        if self.bug != Bug::RestoreMembershipsOverwrite {
            return self.inner.restore_memberships(memberships).await;
        }
        for (key, sealed) in &memberships {
            self.inner.put_membership(key, sealed.clone()).await?;
        }
        Ok(vec![true; memberships.len()])
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn broken(bug: Bug) -> Arc<dyn SessionStore> {
    Arc::new(Broken {
        inner: MemoryStore::new(),
        bug,
        removed: parking_lot::Mutex::new(Vec::new()),
    })
}

async fn fails<F: std::future::Future<Output = ()> + Send + 'static>(case: F) -> bool {
    tokio::spawn(case).await.is_err_and(|e| e.is_panic())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_returning_expired_sessions_fails_the_expiry_case() {
    let store = broken(Bug::GetIgnoresExpiry);
    assert!(
        fails(cases::expired_sessions_are_never_returned_listed_or_counted_before_purge(store))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_that_ignores_the_version_fails_the_swap_cases() {
    assert!(
        fails(
            cases::compare_and_swap_succeeds_only_on_the_expected_version(broken(
                Bug::SwapIgnoresVersion
            ))
        )
        .await
    );
    assert!(
        fails(
            cases::concurrent_swaps_from_one_version_have_exactly_one_winner(broken(
                Bug::SwapIgnoresVersion
            ))
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_that_keeps_the_user_index_fails_the_remove_case() {
    assert!(
        fails(cases::remove_drops_the_session_from_every_index(broken(
            Bug::RemoveKeepsUserIndex
        )))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_ignores_its_limit_fails_the_purge_case() {
    assert!(
        fails(
            cases::purge_expired_removes_only_expired_sessions_within_the_limit(broken(
                Bug::PurgeIgnoresLimit
            ))
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_rolls_sessions_back_fails_the_restore_case() {
    assert!(
        fails(cases::restore_never_rolls_a_session_back(broken(
            Bug::RestoreIgnoresVersion
        )))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_restore_that_overwrites_fails_its_case() {
    assert!(
        fails(cases::restore_membership_never_overwrites(broken(
            Bug::RestoreMembershipOverwrites
        )))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_restore_that_rolls_sessions_back_fails_the_batch_case() {
    assert!(
        fails(
            cases::restore_batch_gives_each_session_the_outcome_of_restoring_it_alone(broken(
                Bug::RestoreBatchIgnoresVersion
            ))
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_membership_restore_that_overwrites_fails_its_case() {
    assert!(
        fails(
            cases::restore_memberships_never_overwrite_and_answer_in_order(broken(
                Bug::RestoreMembershipsOverwrite
            ))
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unbroken_memory_store_passes_the_same_cases() {
    let ok = || -> Arc<dyn SessionStore> { Arc::new(MemoryStore::new()) };
    assert!(
        !fails(cases::expired_sessions_are_never_returned_listed_or_counted_before_purge(ok()))
            .await
    );
    assert!(!fails(cases::remove_drops_the_session_from_every_index(ok())).await);
    assert!(!fails(cases::restore_never_rolls_a_session_back(ok())).await);
    assert!(!fails(cases::restore_membership_never_overwrites(ok())).await);
    assert!(
        !fails(cases::restore_batch_gives_each_session_the_outcome_of_restoring_it_alone(ok()))
            .await
    );
    assert!(!fails(cases::restore_memberships_never_overwrite_and_answer_in_order(ok())).await);
}
