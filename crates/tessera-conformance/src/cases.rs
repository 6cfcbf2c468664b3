//! One function per promise of the [`SessionStore`] contract.
//!
//! Each takes a fresh, empty store and panics with a message naming the
//! broken promise. They are ordinary async functions, so a store crate can
//! also call one directly while debugging.
//!
//! Times: `now` is the wall clock, [`LIVE`] and [`SHORT`] are offsets for
//! expiries and [`LATER`] is the offset of a `now` after the short ones have
//! expired. See the crate docs for why they are anchored to the wall clock.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use tessera::SessionStore;
use tessera::ids::SessionId;
use tessera::store::{CasOutcome, IndexKey, RestoreOutcome, StoredSession};
use tokio::sync::Barrier;

use crate::{opaque_record, random_bytes, random_key, session, wall_clock_now};

/// Expiry offset of a session that stays live for the whole case.
pub const LIVE: u64 = 24 * 3600;
/// Expiry offset of a session that a case lets expire by moving `now` to
/// [`LATER`]. Long enough that a server-side TTL does not drop the record
/// while the case runs.
pub const SHORT: u64 = 600;
/// Offset of a `now` at which [`SHORT`] sessions have expired and [`LIVE`]
/// ones have not.
pub const LATER: u64 = 1200;

type Store = Arc<dyn SessionStore>;

async fn insert(store: &Store, s: &StoredSession, now: u64) {
    let inserted = store
        .insert(s.clone(), now)
        .await
        .expect("insert must not fail on a healthy store");
    assert!(inserted, "insert of a new id must return true");
}

async fn ids_of_user(store: &Store, user: &IndexKey, now: u64) -> BTreeSet<SessionId> {
    store
        .user_sessions(user, now)
        .await
        .expect("user_sessions")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// Every page of a listing, following cursors until the last page. Panics if
/// the listing does not end.
async fn list_all(
    store: &Store,
    org: Option<&IndexKey>,
    limit: usize,
    now: u64,
) -> Vec<StoredSession> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = store
            .list(org, cursor.as_deref(), limit, now)
            .await
            .expect("list with a cursor the store returned must not fail");
        assert!(
            page.sessions.len() <= limit,
            "a page must hold at most `limit` sessions"
        );
        out.extend(page.sessions);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("list never returned a last page");
}

fn assert_same(got: &StoredSession, want: &StoredSession, version: u64) {
    assert_eq!(got.id, want.id, "id");
    assert_eq!(
        got.user_key, want.user_key,
        "user_key must be returned unchanged"
    );
    assert_eq!(
        got.org_key, want.org_key,
        "org_key must be returned unchanged"
    );
    assert_eq!(
        got.expires_at, want.expires_at,
        "expires_at must be returned unchanged"
    );
    assert_eq!(
        got.sealed, want.sealed,
        "sealed bytes must be returned unchanged"
    );
    assert_eq!(got.version, version, "version");
}

fn ids(sessions: &[StoredSession]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id).collect()
}

/// Insert stores the session at version 1 whatever version it was given, and
/// get returns every field byte for byte, including records of every length
/// and byte value.
pub async fn insert_then_get_returns_the_record_unchanged_at_version_one(store: Store) {
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let mut records = vec![
        (0..=255u8).collect::<Vec<u8>>(),
        vec![0u8; 1],
        random_bytes(4096),
    ];
    records.extend((0..5).map(|_| opaque_record()));
    for sealed in records {
        let mut s = session(user, org, now + LIVE);
        s.sealed = sealed;
        insert(&store, &s, now).await;
        let got = store
            .get(&s.id, now)
            .await
            .expect("get")
            .expect("a session just inserted must be found");
        assert_same(&got, &s, 1);
    }
}

/// Insert with the id of a live session returns false and leaves the
/// existing session, its record and its indexes as they were.
pub async fn insert_with_a_live_id_returns_false_and_changes_nothing(store: Store) {
    let now = wall_clock_now();
    let first = session(random_key(), random_key(), now + LIVE);
    insert(&store, &first, now).await;

    let mut second = session(random_key(), random_key(), now + LIVE + 100);
    second.id = first.id;
    let inserted = store.insert(second.clone(), now).await.expect("insert");
    assert!(!inserted, "insert over a live id must return false");

    let got = store
        .get(&first.id, now)
        .await
        .expect("get")
        .expect("still there");
    assert_same(&got, &first, 1);
    assert_eq!(
        ids_of_user(&store, &first.user_key, now).await,
        BTreeSet::from([first.id])
    );
    assert!(
        ids_of_user(&store, &second.user_key, now).await.is_empty(),
        "a refused insert must not index the session under the other user"
    );
    let counts = store.count(now).await.expect("count");
    assert_eq!(counts.total, 1, "a refused insert must not be counted");
    assert_eq!(counts.by_org, vec![(first.org_key, 1)]);
    let listed = list_all(&store, None, 10, now).await;
    assert_eq!(ids(&listed), vec![first.id]);
    assert!(
        list_all(&store, Some(&second.org_key), 10, now)
            .await
            .is_empty(),
        "a refused insert must not be listed under the other org"
    );
}

/// An id whose session has expired (but may not be purged yet) is free: a
/// new insert with it succeeds and replaces the old session everywhere.
pub async fn insert_over_an_expired_id_replaces_it(store: Store) {
    let now = wall_clock_now();
    let old = session(random_key(), random_key(), now + SHORT);
    insert(&store, &old, now).await;

    let later = now + LATER;
    let mut new = session(random_key(), random_key(), now + LIVE);
    new.id = old.id;
    let inserted = store.insert(new.clone(), later).await.expect("insert");
    assert!(inserted, "insert over an expired id must succeed");

    let got = store
        .get(&new.id, later)
        .await
        .expect("get")
        .expect("the new session");
    assert_same(&got, &new, 1);
    assert!(ids_of_user(&store, &old.user_key, later).await.is_empty());
    assert_eq!(
        ids_of_user(&store, &new.user_key, later).await,
        BTreeSet::from([new.id])
    );
    let counts = store.count(later).await.expect("count");
    assert_eq!(counts.total, 1);
    assert_eq!(counts.by_org, vec![(new.org_key, 1)]);
    assert_eq!(ids(&list_all(&store, None, 10, later).await), vec![new.id]);
}

/// Of many concurrent inserts of one id, exactly one succeeds, and the stored
/// record is the winner's.
pub async fn concurrent_inserts_of_one_id_admit_exactly_one(store: Store) {
    const N: usize = 16;
    let now = wall_clock_now();
    let id = SessionId::random();
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let mut s = session(random_key(), random_key(), now + LIVE);
            s.id = id;
            tokio::spawn(async move {
                barrier.wait().await;
                let won = store.insert(s.clone(), now).await.expect("insert");
                (won, s)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (won, s) = t.await.expect("task");
        if won {
            winners.push(s);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent insert of an id must win"
    );
    let got = store.get(&id, now).await.expect("get").expect("the winner");
    assert_same(&got, &winners[0], 1);
    assert_eq!(store.count(now).await.expect("count").total, 1);
}

/// A session whose `expires_at` is at or before `now` is not returned by
/// get, user_sessions or list, and is not counted, before any purge.
pub async fn expired_sessions_are_never_returned_listed_or_counted_before_purge(store: Store) {
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let short = session(user, org, now + SHORT);
    let live = session(user, org, now + LIVE);
    insert(&store, &short, now).await;
    insert(&store, &live, now).await;

    // The instant of expiry counts as expired.
    for at in [now + SHORT, now + LATER] {
        assert!(
            store.get(&short.id, at).await.expect("get").is_none(),
            "get must not return a session at or after its expires_at"
        );
        assert!(store.get(&live.id, at).await.expect("get").is_some());
        assert_eq!(
            ids_of_user(&store, &user, at).await,
            BTreeSet::from([live.id])
        );
        assert_eq!(ids(&list_all(&store, None, 10, at).await), vec![live.id]);
        assert_eq!(
            ids(&list_all(&store, Some(&org), 10, at).await),
            vec![live.id]
        );
        let counts = store.count(at).await.expect("count");
        assert_eq!(counts.total, 1, "count must not include expired sessions");
        assert_eq!(counts.by_org, vec![(org, 1)]);
    }
    // One second earlier it was still live.
    assert!(
        store
            .get(&short.id, now + SHORT - 1)
            .await
            .expect("get")
            .is_some()
    );
}

/// Reads of unknown ids return nothing, removals report nothing removed, a
/// swap reports `Missing`, and none of them is an error.
pub async fn missing_ids_are_not_errors(store: Store) {
    let now = wall_clock_now();
    let id = SessionId::random();
    let key = random_key();
    assert!(store.get(&id, now).await.expect("get").is_none());
    assert_eq!(
        store
            .compare_and_swap(&id, 1, opaque_record(), now + LIVE, now)
            .await
            .expect("compare_and_swap"),
        CasOutcome::Missing
    );
    assert!(!store.remove(&id).await.expect("remove"));
    assert!(
        store
            .user_sessions(&key, now)
            .await
            .expect("user_sessions")
            .is_empty()
    );
    assert_eq!(
        store
            .remove_user_sessions(&key, now)
            .await
            .expect("remove_user_sessions"),
        0
    );
    let page = store.list(None, None, 10, now).await.expect("list");
    assert!(page.sessions.is_empty() && page.next_cursor.is_none());
    let page = store.list(Some(&key), None, 10, now).await.expect("list");
    assert!(page.sessions.is_empty() && page.next_cursor.is_none());
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org.len()), (0, 0));
    assert_eq!(
        store.purge_expired(now, 100).await.expect("purge_expired"),
        0
    );
    assert!(
        store
            .get_membership(&key)
            .await
            .expect("get_membership")
            .is_none()
    );
    assert!(
        !store
            .remove_membership(&key)
            .await
            .expect("remove_membership")
    );
    // A swap cannot resurrect a missing session.
    assert!(store.get(&id, now).await.expect("get").is_none());
}

/// A swap writes only when the stored version is the expected one, and each
/// success bumps the version by one.
pub async fn compare_and_swap_succeeds_only_on_the_expected_version(store: Store) {
    let now = wall_clock_now();
    let s = session(random_key(), random_key(), now + LIVE);
    insert(&store, &s, now).await;

    for wrong in [0, 2, 7, u64::MAX] {
        let out = store
            .compare_and_swap(&s.id, wrong, opaque_record(), now + LIVE, now)
            .await
            .expect("compare_and_swap");
        assert_eq!(
            out,
            CasOutcome::Conflict,
            "a swap from version {wrong} must conflict"
        );
    }
    let got = store.get(&s.id, now).await.expect("get").expect("session");
    assert_same(&got, &s, 1);

    let mut want = s.clone();
    for version in 1..=3 {
        want.sealed = opaque_record();
        let out = store
            .compare_and_swap(&s.id, version, want.sealed.clone(), want.expires_at, now)
            .await
            .expect("compare_and_swap");
        assert_eq!(
            out,
            CasOutcome::Swapped {
                version: version + 1
            }
        );
        let got = store.get(&s.id, now).await.expect("get").expect("session");
        assert_same(&got, &want, version + 1);
    }
    let stale = store
        .compare_and_swap(&s.id, 1, opaque_record(), now + LIVE, now)
        .await
        .expect("compare_and_swap");
    assert_eq!(
        stale,
        CasOutcome::Conflict,
        "a swap from an old version must conflict"
    );
    let got = store.get(&s.id, now).await.expect("get").expect("session");
    assert_same(&got, &want, 4);
}

/// A swap that moves `expires_at` moves it for every method: the session
/// lives, is listed, counted and found by user past its old expiry, and
/// purge leaves it alone; a swap that shortens it ends it sooner.
pub async fn compare_and_swap_moves_the_expiry_in_every_index(store: Store) {
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let s = session(user, org, now + SHORT);
    insert(&store, &s, now).await;
    let out = store
        .compare_and_swap(&s.id, 1, s.sealed.clone(), now + LIVE, now)
        .await
        .expect("compare_and_swap");
    assert_eq!(out, CasOutcome::Swapped { version: 2 });

    let later = now + LATER;
    let got = store
        .get(&s.id, later)
        .await
        .expect("get")
        .expect("extended session");
    assert_eq!(got.expires_at, now + LIVE);
    assert_eq!(
        ids_of_user(&store, &user, later).await,
        BTreeSet::from([s.id])
    );
    assert_eq!(
        ids(&list_all(&store, Some(&org), 10, later).await),
        vec![s.id]
    );
    assert_eq!(store.count(later).await.expect("count").total, 1);
    assert_eq!(
        store
            .purge_expired(later, 100)
            .await
            .expect("purge_expired"),
        0,
        "purge must not remove a session whose expiry a swap extended"
    );
    assert!(store.get(&s.id, later).await.expect("get").is_some());

    // Shorten it again: now it is gone at `later`.
    let out = store
        .compare_and_swap(&s.id, 2, s.sealed.clone(), now + SHORT, now)
        .await
        .expect("compare_and_swap");
    assert_eq!(out, CasOutcome::Swapped { version: 3 });
    assert!(store.get(&s.id, later).await.expect("get").is_none());
    assert!(ids_of_user(&store, &user, later).await.is_empty());
    assert!(list_all(&store, None, 10, later).await.is_empty());
    assert_eq!(store.count(later).await.expect("count").total, 0);
    assert_eq!(
        store
            .purge_expired(later, 100)
            .await
            .expect("purge_expired"),
        1
    );
    assert!(
        store.get(&s.id, now).await.expect("get").is_none(),
        "purged means gone"
    );
}

/// A swap of a session that has expired, by `now`, reports `Missing` and
/// writes nothing.
pub async fn compare_and_swap_on_an_expired_session_is_missing(store: Store) {
    let now = wall_clock_now();
    let s = session(random_key(), random_key(), now + SHORT);
    insert(&store, &s, now).await;
    let out = store
        .compare_and_swap(&s.id, 1, opaque_record(), now + LIVE, now + LATER)
        .await
        .expect("compare_and_swap");
    assert_eq!(
        out,
        CasOutcome::Missing,
        "a swap must not revive an expired session"
    );
    assert!(store.get(&s.id, now + LATER).await.expect("get").is_none());
    let got = store
        .get(&s.id, now)
        .await
        .expect("get")
        .expect("unchanged");
    assert_same(&got, &s, 1);
}

/// Of N truly concurrent swaps from the same version (tasks on a
/// multi-threaded runtime, released together), exactly one wins and the
/// stored record is the winner's.
pub async fn concurrent_swaps_from_one_version_have_exactly_one_winner(store: Store) {
    const N: usize = 32;
    let now = wall_clock_now();
    let s = session(random_key(), random_key(), now + LIVE);
    insert(&store, &s, now).await;
    for round in 1..=3u64 {
        let barrier = Arc::new(Barrier::new(N));
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (store, barrier, id) = (store.clone(), barrier.clone(), s.id);
                let sealed = opaque_record();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let out = store
                        .compare_and_swap(&id, round, sealed.clone(), now + LIVE + round, now)
                        .await
                        .expect("compare_and_swap");
                    (out, sealed)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                (CasOutcome::Swapped { version }, sealed) => {
                    assert_eq!(version, round + 1);
                    winners.push(sealed);
                }
                (CasOutcome::Conflict, _) => {}
                (CasOutcome::Missing, _) => panic!("a live session must not be Missing"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one of {N} concurrent swaps must win"
        );
        let got = store.get(&s.id, now).await.expect("get").expect("session");
        assert_eq!(got.version, round + 1);
        assert_eq!(
            got.sealed, winners[0],
            "the stored record must be the winner's"
        );
        assert_eq!(got.expires_at, now + LIVE + round);
    }
}

/// After remove, the session is found through no method, and a second
/// remove reports nothing removed. Other sessions are untouched.
pub async fn remove_drops_the_session_from_every_index(store: Store) {
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let gone = session(user, org, now + LIVE);
    let kept = session(user, org, now + LIVE);
    insert(&store, &gone, now).await;
    insert(&store, &kept, now).await;

    assert!(
        store.remove(&gone.id).await.expect("remove"),
        "removing a live session returns true"
    );
    assert!(store.get(&gone.id, now).await.expect("get").is_none());
    assert_eq!(
        ids_of_user(&store, &user, now).await,
        BTreeSet::from([kept.id])
    );
    assert_eq!(ids(&list_all(&store, None, 10, now).await), vec![kept.id]);
    assert_eq!(
        ids(&list_all(&store, Some(&org), 10, now).await),
        vec![kept.id]
    );
    let counts = store.count(now).await.expect("count");
    assert_eq!(counts.total, 1);
    assert_eq!(counts.by_org, vec![(org, 1)]);
    assert_eq!(
        store
            .compare_and_swap(&gone.id, 1, opaque_record(), now + LIVE, now)
            .await
            .expect("compare_and_swap"),
        CasOutcome::Missing
    );
    assert!(
        !store.remove(&gone.id).await.expect("remove"),
        "a second remove returns false"
    );
    assert_eq!(
        store.purge_expired(now + LIVE, 100).await.expect("purge"),
        1,
        "only the kept one"
    );
}

/// user_sessions returns the live sessions of exactly that user.
pub async fn user_sessions_returns_only_live_sessions_of_that_user(store: Store) {
    let now = wall_clock_now();
    let (alice, bob, org) = (random_key(), random_key(), random_key());
    let mut alices = BTreeSet::new();
    for i in 0..5u64 {
        let s = session(
            alice,
            if i % 2 == 0 { org } else { random_key() },
            now + LIVE + i,
        );
        insert(&store, &s, now).await;
        alices.insert(s.id);
    }
    let expiring = session(alice, org, now + SHORT);
    insert(&store, &expiring, now).await;
    insert(&store, &session(bob, org, now + LIVE), now).await;

    let got = store
        .user_sessions(&alice, now + LATER)
        .await
        .expect("user_sessions");
    assert!(got.iter().all(|s| s.user_key == alice));
    assert_eq!(got.iter().map(|s| s.id).collect::<BTreeSet<_>>(), alices);
    assert_eq!(got.len(), alices.len(), "each session appears once");
    let mut with_expiring = alices.clone();
    with_expiring.insert(expiring.id);
    assert_eq!(ids_of_user(&store, &alice, now).await, with_expiring);
}

/// remove_user_sessions removes every session of the user, counts the live
/// ones, and leaves other users' sessions alone.
pub async fn remove_user_sessions_counts_live_ones_and_spares_other_users(store: Store) {
    let now = wall_clock_now();
    let (alice, bob, org) = (random_key(), random_key(), random_key());
    let mut alices = Vec::new();
    for _ in 0..4 {
        let s = session(alice, org, now + LIVE);
        insert(&store, &s, now).await;
        alices.push(s.id);
    }
    let expired = session(alice, org, now + SHORT);
    insert(&store, &expired, now).await;
    let mut bobs = BTreeSet::new();
    for _ in 0..3 {
        let s = session(bob, org, now + LIVE);
        insert(&store, &s, now).await;
        bobs.insert(s.id);
    }

    let later = now + LATER;
    let removed = store
        .remove_user_sessions(&alice, later)
        .await
        .expect("remove_user_sessions");
    assert_eq!(removed, 4, "only live sessions are counted");
    for id in alices.iter().chain([&expired.id]) {
        assert!(
            store.get(id, now).await.expect("get").is_none(),
            "every session of the user is gone"
        );
    }
    assert!(ids_of_user(&store, &alice, now).await.is_empty());
    assert_eq!(
        ids_of_user(&store, &bob, later).await,
        bobs,
        "other users are untouched"
    );
    let counts = store.count(later).await.expect("count");
    assert_eq!(counts.total, 3);
    assert_eq!(counts.by_org, vec![(org, 3)]);
    let listed: BTreeSet<_> = ids(&list_all(&store, None, 2, later).await)
        .into_iter()
        .collect();
    assert_eq!(listed, bobs);
    assert_eq!(
        store
            .remove_user_sessions(&alice, later)
            .await
            .expect("again"),
        0
    );
}

/// With inserts for a user racing log-out-everywhere calls, no session
/// escapes the user index: once the inserts are done, one more
/// remove_user_sessions leaves nothing of that user, and a session whose
/// insert finished before a call started is always removed by that call.
pub async fn remove_user_sessions_leaves_no_session_behind_under_concurrent_inserts(store: Store) {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 25;
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());

    let before: Vec<_> = (0..10).map(|_| session(user, org, now + LIVE)).collect();
    for s in &before {
        insert(&store, s, now).await;
    }
    assert_eq!(
        store
            .remove_user_sessions(&user, now)
            .await
            .expect("remove_user_sessions"),
        10
    );
    for s in &before {
        assert!(store.get(&s.id, now).await.expect("get").is_none());
    }

    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut ids = Vec::new();
                for _ in 0..PER_WRITER {
                    let s = session(user, org, now + LIVE);
                    insert(&store, &s, now).await;
                    ids.push(s.id);
                }
                ids
            })
        })
        .collect();
    let remover = {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let mut removed = 0;
            for _ in 0..20 {
                removed += store
                    .remove_user_sessions(&user, now)
                    .await
                    .expect("remove_user_sessions");
                tokio::task::yield_now().await;
            }
            removed
        })
    };
    let mut inserted = Vec::new();
    for w in writers {
        inserted.extend(w.await.expect("writer"));
    }
    let removed_during = remover.await.expect("remover");
    let removed_after = store
        .remove_user_sessions(&user, now)
        .await
        .expect("remove_user_sessions");
    assert_eq!(
        removed_during + removed_after,
        (WRITERS * PER_WRITER) as u64,
        "every inserted session is removed exactly once"
    );
    for id in &inserted {
        assert!(
            store.get(id, now).await.expect("get").is_none(),
            "a session escaped log-out-everywhere"
        );
    }
    assert_eq!(store.count(now).await.expect("count").total, 0);
    assert!(list_all(&store, None, 50, now).await.is_empty());
}

fn assert_exactly_once(listed: &[StoredSession], want: &BTreeSet<SessionId>) {
    let mut seen = HashSet::new();
    for s in listed {
        assert!(seen.insert(s.id), "list returned a session twice");
    }
    let seen: BTreeSet<_> = seen.into_iter().collect();
    assert_eq!(&seen, want, "list must return every live session");
}

/// Following cursors from the first page visits every live session exactly
/// once, whatever the page size, and skips expired ones; records come back
/// whole.
pub async fn list_visits_every_live_session_exactly_once(store: Store) {
    let now = wall_clock_now();
    let orgs = [random_key(), random_key(), random_key()];
    let mut live = BTreeMap::new();
    for i in 0..40usize {
        let s = session(random_key(), orgs[i % 3], now + LIVE + i as u64);
        insert(&store, &s, now).await;
        live.insert(s.id, s);
    }
    for i in 0..7usize {
        insert(
            &store,
            &session(random_key(), orgs[i % 3], now + SHORT),
            now,
        )
        .await;
    }
    let want: BTreeSet<_> = live.keys().copied().collect();
    let later = now + LATER;
    for limit in [1, 3, 7, 40, 41, 1000] {
        let listed = list_all(&store, None, limit, later).await;
        assert_exactly_once(&listed, &want);
        for s in &listed {
            assert_same(s, &live[&s.id], 1);
        }
    }
}

/// With an org filter, the listing visits exactly that org's live sessions,
/// each once.
pub async fn list_with_an_org_filter_visits_exactly_that_orgs_sessions(store: Store) {
    let now = wall_clock_now();
    let orgs = [random_key(), random_key(), random_key()];
    let mut by_org: BTreeMap<IndexKey, BTreeSet<SessionId>> = BTreeMap::new();
    for i in 0..36usize {
        let org = orgs[i % 3];
        let s = session(random_key(), org, now + LIVE);
        insert(&store, &s, now).await;
        by_org.entry(org).or_default().insert(s.id);
    }
    insert(&store, &session(random_key(), orgs[0], now + SHORT), now).await;
    let later = now + LATER;
    for org in &orgs {
        for limit in [1, 5, 12, 13, 100] {
            let listed = list_all(&store, Some(org), limit, later).await;
            assert!(
                listed.iter().all(|s| s.org_key == *org),
                "the filter must hold"
            );
            assert_exactly_once(&listed, &by_org[org]);
        }
    }
    assert!(
        list_all(&store, Some(&random_key()), 10, later)
            .await
            .is_empty()
    );
}

/// Sessions inserted and removed between pages do not disturb the others:
/// every session that lives through the whole listing appears exactly once.
pub async fn list_visits_sessions_that_live_through_the_listing_exactly_once(store: Store) {
    let now = wall_clock_now();
    let org = random_key();
    let mut stable = BTreeSet::new();
    let mut doomed = Vec::new();
    for i in 0..30 {
        let s = session(random_key(), org, now + LIVE);
        insert(&store, &s, now).await;
        if i % 3 == 0 {
            doomed.push(s.id);
        } else {
            stable.insert(s.id);
        }
    }
    for filter in [None, Some(org)] {
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .list(filter.as_ref(), cursor.as_deref(), 4, now)
                .await
                .expect("list");
            listed.extend(page.sessions);
            pages += 1;
            assert!(pages < 1000, "list never returned a last page");
            // Churn between pages: one removal and one new session.
            if let Some(id) = doomed.pop() {
                assert!(store.remove(&id).await.expect("remove"));
            }
            insert(&store, &session(random_key(), org, now + LIVE), now).await;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut seen = HashSet::new();
        for s in &listed {
            assert!(seen.insert(s.id), "list returned a session twice");
        }
        for id in &stable {
            assert!(
                seen.contains(id),
                "a session that lived through the listing was skipped"
            );
        }
    }
}

/// A cursor the store did not issue is an invalid-input error (not a store
/// failure, which the service answers with 503, and not an empty page).
pub async fn list_with_a_bad_cursor_is_an_error(store: Store) {
    let now = wall_clock_now();
    insert(
        &store,
        &session(random_key(), random_key(), now + LIVE),
        now,
    )
    .await;
    for bad in ["", "not a cursor", "%%%%", "\u{0}\u{1}", &"A".repeat(300)] {
        let err = store
            .list(None, Some(bad), 10, now)
            .await
            .expect_err("a made-up cursor must be an error");
        assert_eq!(
            err.kind(),
            tessera::StoreErrorKind::InvalidInput,
            "a made-up cursor {bad:?} must be an invalid-input error"
        );
    }
}

/// purge_expired removes the expired sessions (and only them), at most
/// `limit` per call, and returns how many it removed.
pub async fn purge_expired_removes_only_expired_sessions_within_the_limit(store: Store) {
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let mut expired = Vec::new();
    for _ in 0..7 {
        let s = session(user, org, now + SHORT);
        insert(&store, &s, now).await;
        expired.push(s.id);
    }
    let mut live = BTreeSet::new();
    for _ in 0..3 {
        let s = session(user, org, now + LIVE);
        insert(&store, &s, now).await;
        live.insert(s.id);
    }
    assert_eq!(
        store.purge_expired(now, 100).await.expect("purge"),
        0,
        "nothing expired yet"
    );

    let later = now + LATER;
    assert_eq!(
        store.purge_expired(later, 3).await.expect("purge"),
        3,
        "the limit holds"
    );
    assert_eq!(store.purge_expired(later, 3).await.expect("purge"), 3);
    assert_eq!(
        store.purge_expired(later, 3).await.expect("purge"),
        1,
        "the rest"
    );
    assert_eq!(store.purge_expired(later, 3).await.expect("purge"), 0);
    assert_eq!(store.purge_expired(later, 0).await.expect("purge"), 0);
    for id in &expired {
        assert!(
            store.get(id, now).await.expect("get").is_none(),
            "purged sessions are gone"
        );
    }
    for id in &live {
        assert!(
            store.get(id, later).await.expect("get").is_some(),
            "live sessions stay"
        );
    }
    assert_eq!(ids_of_user(&store, &user, now).await, live);
    let counts = store.count(now).await.expect("count");
    assert_eq!(
        counts.total, 3,
        "purged sessions are no longer counted, even at an earlier now"
    );
    assert_eq!(counts.by_org, vec![(org, 3)]);
}

/// count reports every live session in total and per org, omitting orgs
/// with none, and follows inserts and removals.
pub async fn count_reports_live_sessions_in_all_and_per_org(store: Store) {
    let now = wall_clock_now();
    let (a, b, c) = (random_key(), random_key(), random_key());
    let mut b_ids = Vec::new();
    for _ in 0..5 {
        insert(&store, &session(random_key(), a, now + LIVE), now).await;
    }
    for _ in 0..2 {
        let s = session(random_key(), b, now + LIVE);
        insert(&store, &s, now).await;
        b_ids.push(s.id);
    }
    insert(&store, &session(random_key(), c, now + SHORT), now).await;

    let sorted = |mut v: Vec<(IndexKey, u64)>| {
        v.sort();
        v
    };
    let counts = store.count(now).await.expect("count");
    assert_eq!(counts.total, 8);
    assert_eq!(sorted(counts.by_org), sorted(vec![(a, 5), (b, 2), (c, 1)]));

    let counts = store.count(now + LATER).await.expect("count");
    assert_eq!(counts.total, 7);
    assert_eq!(
        sorted(counts.by_org),
        sorted(vec![(a, 5), (b, 2)]),
        "an org whose sessions all expired is omitted"
    );

    for id in &b_ids {
        assert!(store.remove(id).await.expect("remove"));
    }
    let counts = store.count(now).await.expect("count");
    assert_eq!(counts.total, 6);
    assert_eq!(sorted(counts.by_org), sorted(vec![(a, 5), (c, 1)]));
}

/// Memberships are stored under their key, replaced by a second put, and
/// removed; their bytes come back unchanged.
pub async fn memberships_are_stored_replaced_and_removed(store: Store) {
    let (k1, k2) = (random_key(), random_key());
    let (m1, m2, m3) = (
        opaque_record(),
        (0..=255u8).collect::<Vec<_>>(),
        opaque_record(),
    );
    store.put_membership(&k1, m1.clone()).await.expect("put");
    store.put_membership(&k2, m2.clone()).await.expect("put");
    assert_eq!(store.get_membership(&k1).await.expect("get"), Some(m1));
    assert_eq!(
        store.get_membership(&k2).await.expect("get"),
        Some(m2.clone())
    );

    store
        .put_membership(&k1, m3.clone())
        .await
        .expect("replace");
    assert_eq!(store.get_membership(&k1).await.expect("get"), Some(m3));

    assert!(store.remove_membership(&k1).await.expect("remove"));
    assert!(store.get_membership(&k1).await.expect("get").is_none());
    assert!(!store.remove_membership(&k1).await.expect("remove again"));
    assert_eq!(
        store.get_membership(&k2).await.expect("get"),
        Some(m2),
        "others are kept"
    );
    assert_eq!(
        store.count(wall_clock_now()).await.expect("count").total,
        0,
        "not sessions"
    );
}

async fn restore(store: &Store, s: &StoredSession, now: u64) -> RestoreOutcome {
    store
        .restore(s.clone(), now)
        .await
        .expect("restore must not fail on a healthy store")
}

/// Restore writes a session that is not there with the version it carries
/// (insert would reset it to 1), in every index; restoring it again is a
/// no-op.
pub async fn restore_writes_a_missing_session_with_its_version(store: Store) {
    let now = wall_clock_now();
    let mut s = session(random_key(), random_key(), now + LIVE);
    s.version = 42;
    assert_eq!(restore(&store, &s, now).await, RestoreOutcome::Written);
    let got = store.get(&s.id, now).await.expect("get").expect("restored");
    assert_same(&got, &s, 42);
    assert_eq!(
        ids_of_user(&store, &s.user_key, now).await,
        BTreeSet::from([s.id])
    );
    assert_eq!(
        ids(&list_all(&store, Some(&s.org_key), 10, now).await),
        vec![s.id]
    );
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org), (1, vec![(s.org_key, 1)]));

    assert_eq!(
        restore(&store, &s, now).await,
        RestoreOutcome::Kept,
        "restoring the same version again must change nothing"
    );
    assert_eq!(store.count(now).await.expect("count").total, 1);

    // The restored version is the one compare-and-swap expects next.
    assert_eq!(
        store
            .compare_and_swap(&s.id, 42, opaque_record(), now + LIVE, now)
            .await
            .expect("cas"),
        CasOutcome::Swapped { version: 43 }
    );
}

/// Restore never replaces a live session with an older or equal version of
/// itself (an old backup must not bring back a rotated-out refresh token);
/// a higher version replaces it in every index, expiry included.
pub async fn restore_never_rolls_a_session_back(store: Store) {
    let now = wall_clock_now();
    let current = session(random_key(), random_key(), now + LIVE);
    insert(&store, &current, now).await;
    for _ in 0..2 {
        let out = store
            .compare_and_swap(
                &current.id,
                store
                    .get(&current.id, now)
                    .await
                    .expect("get")
                    .expect("live")
                    .version,
                current.sealed.clone(),
                now + LIVE,
                now,
            )
            .await
            .expect("cas");
        assert!(matches!(out, CasOutcome::Swapped { .. }));
    }
    // Now at version 3.
    for version in [1, 2, 3] {
        let mut old = session(random_key(), random_key(), now + LIVE + 50);
        old.id = current.id;
        old.version = version;
        assert_eq!(
            restore(&store, &old, now).await,
            RestoreOutcome::Kept,
            "version {version} must not replace version 3"
        );
    }
    let got = store
        .get(&current.id, now)
        .await
        .expect("get")
        .expect("live");
    assert_eq!(got.version, 3);
    assert_eq!(got.sealed, current.sealed, "the record must be untouched");
    assert_eq!(got.expires_at, now + LIVE);

    let mut newer = session(random_key(), random_key(), now + SHORT);
    newer.id = current.id;
    newer.version = 9;
    assert_eq!(restore(&store, &newer, now).await, RestoreOutcome::Written);
    let got = store
        .get(&current.id, now)
        .await
        .expect("get")
        .expect("live");
    assert_same(&got, &newer, 9);
    assert!(
        ids_of_user(&store, &current.user_key, now).await.is_empty(),
        "the replaced session must leave its old user's index"
    );
    assert_eq!(
        ids_of_user(&store, &newer.user_key, now).await,
        BTreeSet::from([newer.id])
    );
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org), (1, vec![(newer.org_key, 1)]));
    // The restored expiry is the one that counts.
    assert!(
        store
            .get(&current.id, now + LATER)
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store.purge_expired(now + LATER, 10).await.expect("purge"),
        1
    );
}

/// A session that expired since the backup is skipped, and an expired one in
/// the store does not block a restore over its id.
pub async fn restore_skips_expired_sessions_and_replaces_expired_ones(store: Store) {
    let now = wall_clock_now();
    let gone = session(random_key(), random_key(), now + SHORT);
    assert_eq!(
        restore(&store, &gone, now + LATER).await,
        RestoreOutcome::Expired
    );
    assert!(store.get(&gone.id, now).await.expect("get").is_none());
    assert_eq!(store.count(now).await.expect("count").total, 0);

    let mut old = session(random_key(), random_key(), now + SHORT);
    old.version = 50;
    assert_eq!(restore(&store, &old, now).await, RestoreOutcome::Written);
    let mut back = session(random_key(), random_key(), now + LIVE);
    back.id = old.id;
    back.version = 2;
    assert_eq!(
        restore(&store, &back, now + LATER).await,
        RestoreOutcome::Written,
        "an expired session must not count as a newer version"
    );
    let got = store
        .get(&old.id, now + LATER)
        .await
        .expect("get")
        .expect("live");
    assert_same(&got, &back, 2);
    assert!(
        ids_of_user(&store, &old.user_key, now + LATER)
            .await
            .is_empty()
    );
}

/// Of concurrent restores of one id at different versions, the highest
/// version is what stays.
pub async fn concurrent_restores_keep_the_highest_version(store: Store) {
    let now = wall_clock_now();
    let base = session(random_key(), random_key(), now + LIVE);
    let barrier = Arc::new(Barrier::new(16));
    let tasks: Vec<_> = (1..=16u64)
        .map(|version| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let mut s = base.clone();
            s.version = version;
            s.sealed = random_bytes(usize::try_from(version).unwrap_or(1) * 7);
            tokio::spawn(async move {
                barrier.wait().await;
                store.restore(s, now).await.expect("restore")
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let got = store.get(&base.id, now).await.expect("get").expect("live");
    assert_eq!(got.version, 16, "the highest version must win");
    assert_eq!(got.sealed.len(), 16 * 7, "with its own record");
    assert_eq!(store.count(now).await.expect("count").total, 1);
}

/// A session like `s` under the same id, at `version`, with a record and
/// user key of its own.
fn version_of(s: &StoredSession, version: u64, expires_at: u64) -> StoredSession {
    let mut v = session(random_key(), s.org_key, expires_at);
    v.id = s.id;
    v.version = version;
    v
}

/// A batch restore gives each session the outcome restoring it alone, in
/// order, would give: missing ones are written with their version, a live
/// one of the same or a higher version is kept, expired ones are skipped,
/// an expired one in the store is replaced, and an id named twice ends at
/// the higher version. Every index follows, and a large batch is written
/// whole.
pub async fn restore_batch_gives_each_session_the_outcome_of_restoring_it_alone(store: Store) {
    let now = wall_clock_now();
    let later = now + LATER;
    let org = random_key();
    let kept = session(random_key(), org, now + LIVE);
    let older = session(random_key(), org, now + LIVE);
    let stale = session(random_key(), org, now + SHORT);
    for (s, version) in [(&kept, 3), (&older, 5), (&stale, 50)] {
        let mut s = s.clone();
        s.version = version;
        assert_eq!(restore(&store, &s, now).await, RestoreOutcome::Written);
    }
    let (twice_up, twice_down) = (
        session(random_key(), org, now + LIVE),
        session(random_key(), org, now + LIVE),
    );
    let mut missing = session(random_key(), org, now + LIVE);
    missing.version = 4;
    let batch = vec![
        missing.clone(),
        version_of(&kept, 2, now + LIVE + 50),
        session(random_key(), org, now + SHORT),
        version_of(&older, 6, now + LIVE + 60),
        version_of(&twice_down, 5, now + LIVE),
        version_of(&twice_down, 3, now + LIVE),
        version_of(&twice_up, 2, now + LIVE),
        version_of(&twice_up, 8, now + LIVE + 70),
        version_of(&stale, 2, now + LIVE),
        version_of(&kept, 3, now + LIVE + 80),
    ];
    use RestoreOutcome::{Expired, Kept, Written};
    let outcomes = store
        .restore_batch(batch.clone(), later)
        .await
        .expect("restore_batch must not fail on a healthy store");
    assert_eq!(
        outcomes,
        vec![
            Written, Kept, Expired, Written, Written, Kept, Written, Written, Written, Kept
        ],
        "one outcome per session, in order, as restoring each alone would give"
    );
    let get = |id: SessionId| {
        let store = store.clone();
        async move {
            store
                .get(&id, later)
                .await
                .expect("get")
                .expect("a live session")
        }
    };
    assert_same(&get(missing.id).await, &missing, 4);
    let got = get(kept.id).await;
    assert_eq!(
        (got.version, &got.sealed, got.expires_at),
        (3, &kept.sealed, now + LIVE),
        "a live session of the same or a higher version must be untouched"
    );
    assert_same(&get(older.id).await, &batch[3], 6);
    assert_same(&get(twice_down.id).await, &batch[4], 5);
    assert_same(&get(twice_up.id).await, &batch[7], 8);
    assert_same(&get(stale.id).await, &batch[8], 2);
    assert!(
        store.get(&batch[2].id, now).await.expect("get").is_none(),
        "an expired session must not be written"
    );
    assert!(
        ids_of_user(&store, &older.user_key, later).await.is_empty(),
        "a replaced session must leave its old user's index"
    );
    assert_eq!(
        ids_of_user(&store, &batch[3].user_key, later).await,
        BTreeSet::from([older.id])
    );
    let counts = store.count(later).await.expect("count");
    assert_eq!((counts.total, counts.by_org), (6, vec![(org, 6)]));

    assert!(
        store
            .restore_batch(Vec::new(), later)
            .await
            .expect("an empty batch")
            .is_empty()
    );
    let many: Vec<StoredSession> = (0..1500)
        .map(|i| {
            let mut s = session(random_key(), org, now + LIVE);
            s.version = 1 + i % 7;
            s.sealed = random_bytes(1 + (i as usize % 300));
            s
        })
        .collect();
    let outcomes = store
        .restore_batch(many.clone(), now)
        .await
        .expect("restore_batch of 1,500 sessions");
    assert_eq!(outcomes, vec![Written; many.len()]);
    assert_eq!(
        store.count(now).await.expect("count").total,
        6 + many.len() as u64
    );
    for s in many.iter().step_by(97) {
        let got = store.get(&s.id, now).await.expect("get").expect("written");
        assert_same(&got, s, s.version);
    }
    assert_eq!(
        store
            .restore_batch(many.clone(), now)
            .await
            .expect("restore_batch again"),
        vec![Kept; many.len()],
        "restoring the same batch twice must change nothing the second time"
    );
}

/// A batch of memberships is restored as each alone would be: written where
/// there is none, an existing one kept, a key named twice written once (the
/// first time); one answer per membership, in order.
pub async fn restore_memberships_never_overwrite_and_answer_in_order(store: Store) {
    let (k1, k2, k3) = (random_key(), random_key(), random_key());
    let current = opaque_record();
    store
        .put_membership(&k1, current.clone())
        .await
        .expect("put");
    let (a, b, c) = (random_bytes(3), random_bytes(5), opaque_record());
    let written = store
        .restore_memberships(vec![
            (k1, random_bytes(2)),
            (k2, a.clone()),
            (k2, b),
            (k3, c.clone()),
        ])
        .await
        .expect("restore_memberships must not fail on a healthy store");
    assert_eq!(written, vec![false, true, false, true]);
    assert_eq!(store.get_membership(&k1).await.expect("get"), Some(current));
    assert_eq!(store.get_membership(&k2).await.expect("get"), Some(a));
    assert_eq!(store.get_membership(&k3).await.expect("get"), Some(c));

    let many: Vec<(IndexKey, Vec<u8>)> =
        (0..1200).map(|_| (random_key(), opaque_record())).collect();
    let written = store
        .restore_memberships(many.clone())
        .await
        .expect("restore_memberships of 1,200");
    assert_eq!(written, vec![true; many.len()]);
    for (k, v) in many.iter().step_by(101) {
        assert_eq!(
            store.get_membership(k).await.expect("get").as_ref(),
            Some(v)
        );
    }
    assert!(
        store
            .restore_memberships(Vec::new())
            .await
            .expect("an empty batch")
            .is_empty()
    );
}

/// A membership listing visits every membership (at least once) across
/// pages of any size, and ends; a made-up cursor is an error.
pub async fn list_memberships_visits_every_membership(store: Store) {
    let mut want = BTreeMap::new();
    for _ in 0..23 {
        let (k, v) = (random_key(), opaque_record());
        store.put_membership(&k, v.clone()).await.expect("put");
        want.insert(k, v);
    }
    for limit in [1, 5, 23, 1000] {
        let mut got = BTreeMap::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 10_000, "the membership listing must end");
            let page = store
                .list_memberships(cursor.as_deref(), limit)
                .await
                .expect("list_memberships with a cursor the store returned");
            assert!(page.memberships.len() <= limit, "at most `limit` a page");
            got.extend(page.memberships);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, want, "every membership, unchanged (page size {limit})");
    }
    for bad in ["not a cursor", "%%%%", &"A".repeat(300)] {
        let err = store
            .list_memberships(Some(bad), 10)
            .await
            .expect_err("a made-up cursor must be an error");
        assert_eq!(
            err.kind(),
            tessera::StoreErrorKind::InvalidInput,
            "a made-up cursor {bad:?} must be an invalid-input error"
        );
    }
}

/// restore_membership writes only where there is no membership, so an old
/// backup never undoes a role change made since.
pub async fn restore_membership_never_overwrites(store: Store) {
    let (k1, k2) = (random_key(), random_key());
    let (current, old) = (opaque_record(), random_bytes(3));
    store
        .put_membership(&k1, current.clone())
        .await
        .expect("put");
    assert!(
        !store
            .restore_membership(&k1, old.clone())
            .await
            .expect("restore"),
        "an existing membership must be kept"
    );
    assert_eq!(store.get_membership(&k1).await.expect("get"), Some(current));
    assert!(
        store
            .restore_membership(&k2, old.clone())
            .await
            .expect("restore")
    );
    assert_eq!(store.get_membership(&k2).await.expect("get"), Some(old));
}

/// A healthy store answers ping.
pub async fn ping_answers(store: Store) {
    store.ping().await.expect("ping on a healthy store");
}
