//! Membership listing and restore beyond the conformance cases: a listing
//! on a cluster reaches every master, a cursor works on another connection,
//! and the restore operations cost one round trip.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::Mode;
use tessera::SessionStore;
use tessera::store::{IndexKey, RestoreOutcome, StoredSession};

fn random_key() -> IndexKey {
    *uuid::Uuid::new_v4().as_bytes()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

async fn put_memberships(
    store: &tessera_redis::RedisStore,
    n: usize,
) -> BTreeMap<IndexKey, Vec<u8>> {
    let mut want = BTreeMap::new();
    for i in 0..n {
        let (k, v) = (random_key(), format!("sealed-{i}").into_bytes());
        store.put_membership(&k, v.clone()).await.expect("put");
        want.insert(k, v);
    }
    want
}

/// Lists everything with pages of `limit`, each page from a new store (a
/// new connection) given only the cursor string; returns what was listed
/// and how many pages it took.
async fn list_all_across_connections(
    mode: Mode,
    prefix: &str,
    limit: usize,
) -> (BTreeMap<IndexKey, Vec<u8>>, usize) {
    let mut got = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10_000, "the listing must end");
        let store = tessera_redis::RedisStore::connect(&mode.url(), prefix)
            .await
            .expect("connect");
        let before = store.round_trips();
        let page = store
            .list_memberships(cursor.as_deref(), limit)
            .await
            .expect("list_memberships");
        let trips = store.round_trips() - before;
        // At most 16 SCAN, one MGET and (cluster) two CLUSTER SLOTS.
        assert!(trips <= 19, "a page took {trips} round trips");
        assert!(page.memberships.len() <= limit);
        got.extend(page.memberships);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    (got, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_listing_visits_every_master_and_resumes_on_a_new_connection() {
    let store = support::store(Mode::Cluster).await;
    let prefix = store.prefix().to_owned();
    let want = put_memberships(&store, 150).await;
    // The memberships really are spread over every master.
    let per_server: BTreeSet<String> = support::keys(Mode::Cluster, &prefix)
        .into_iter()
        .map(|(server, _)| server)
        .collect();
    assert_eq!(per_server.len(), 3, "memberships on every master");

    for limit in [7, 64, 150] {
        let (got, pages) = list_all_across_connections(Mode::Cluster, &prefix, limit).await;
        assert_eq!(got, want, "page size {limit}");
        assert!(pages >= 150usize.div_ceil(limit), "page size {limit}");
    }
    support::delete_keys(Mode::Cluster, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_listing_resumes_on_a_new_connection() {
    let store = support::store(Mode::Standalone).await;
    let prefix = store.prefix().to_owned();
    let want = put_memberships(&store, 60).await;
    for limit in [1, 9] {
        let (got, _) = list_all_across_connections(Mode::Standalone, &prefix, limit).await;
        assert_eq!(got, want, "page size {limit}");
    }
    support::delete_keys(Mode::Standalone, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_sees_only_its_own_prefix() {
    let store = support::store(Mode::Standalone).await;
    let prefix = store.prefix().to_owned();
    // A deployment whose prefix extends this one's with "m:" names its
    // memberships `<prefix>m:m:<hex>`, and its session keys start with
    // `<prefix>m:` too: none of them is ours.
    let nested =
        tessera_redis::RedisStore::connect(&Mode::Standalone.url(), &format!("{prefix}m:"))
            .await
            .expect("connect");
    put_memberships(&nested, 5).await;
    let ours = put_memberships(&store, 3).await;
    let (got, _) = list_all_across_connections(Mode::Standalone, &prefix, 100).await;
    assert_eq!(got, ours);
    support::delete_keys(Mode::Standalone, &prefix);
}

async fn restores_cost_one_round_trip(mode: Mode) {
    let store = support::store(mode).await;
    let prefix = store.prefix().to_owned();
    let now = now();
    let session = StoredSession {
        id: tessera::SessionId::random(),
        user_key: random_key(),
        org_key: random_key(),
        expires_at: now + 600,
        version: 5,
        sealed: b"sealed".to_vec(),
    };
    // Warm: the first script call may load the script.
    store.restore(session.clone(), now).await.expect("restore");
    store
        .restore_membership(&random_key(), b"m".to_vec())
        .await
        .expect("restore_membership");
    let before = store.round_trips();
    assert_eq!(
        store.restore(session, now).await.expect("restore"),
        RestoreOutcome::Kept
    );
    assert!(
        store
            .restore_membership(&random_key(), b"m".to_vec())
            .await
            .expect("restore_membership")
    );
    assert_eq!(store.round_trips() - before, 2);
    support::delete_keys(mode, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_and_restore_membership_are_one_round_trip_each() {
    restores_cost_one_round_trip(Mode::Standalone).await;
    restores_cost_one_round_trip(Mode::Cluster).await;
}
