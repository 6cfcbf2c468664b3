//! Expiry by real Redis TTLs: a session whose record Redis dropped by itself
//! is gone from every view, is not counted, and leaves index entries that
//! purge removes and counts, so per-org counters stay right. This waits
//! for a real TTL (about a second); the conformance suite covers expiry by
//! `now` without waiting.

mod support;

use std::time::Duration;

use support::Mode;
use tessera::SessionStore;
use tessera::ids::SessionId;
use tessera::store::StoredSession;
use tessera_conformance::{random_key, session, wall_clock_now};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_exists(mode: Mode, prefix: &str, id: &SessionId) -> bool {
    let suffix = format!(":r:{}", hex(id.as_bytes()));
    support::keys(mode, prefix)
        .iter()
        .any(|(_, k)| k.ends_with(suffix.as_bytes()))
}

async fn ttl_expired_sessions_vanish_and_purge_clears_their_index(mode: Mode) {
    let store = support::store(mode).await;
    let prefix = store.prefix().to_owned();
    let (user, org) = (random_key(), random_key());
    let now = wall_clock_now();
    let short: StoredSession = session(user, org, now + 1);
    let long = session(user, org, now + 3600);
    assert!(store.insert(short.clone(), now).await.expect("insert"));
    assert!(store.insert(long.clone(), now).await.expect("insert"));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while record_exists(mode, &prefix, &short.id) {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never expired the record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = wall_clock_now().max(short.expires_at);

    assert!(store.get(&short.id, now).await.expect("get").is_none());
    let mine: Vec<_> = store
        .user_sessions(&user, now)
        .await
        .expect("user_sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(mine, vec![long.id]);
    let page = store.list(Some(&org), None, 10, now).await.expect("list");
    assert_eq!(
        page.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![long.id]
    );
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org.clone()), (1, vec![(org, 1)]));

    assert_eq!(
        store.purge_expired(now, 100).await.expect("purge"),
        1,
        "the TTL-expired one"
    );
    assert_eq!(store.purge_expired(now, 100).await.expect("purge"), 0);
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org), (1, vec![(org, 1)]));
    assert!(store.remove(&long.id).await.expect("remove"));
    let counts = store.count(now).await.expect("count");
    assert_eq!((counts.total, counts.by_org.len()), (0, 0));

    // Nothing of either session is left behind but empty structures Redis
    // deletes by itself (an empty sorted set or hash is no key at all).
    let left = support::keys(mode, &prefix);
    assert!(
        left.is_empty(),
        "keys left: {:?}",
        left.iter()
            .map(|(_, k)| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expired_by_redis_ttl_vanish_and_purge_clears_their_index() {
    ttl_expired_sessions_vanish_and_purge_clears_their_index(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expired_by_redis_ttl_vanish_and_purge_clears_their_index_on_a_cluster() {
    ttl_expired_sessions_vanish_and_purge_clears_their_index(Mode::Cluster).await;
}
