//! The shared rate limiter: GCRA in one statement, deciding exactly like
//! the core's in-process limiter, holding one limit across two nodes (two
//! stores, two pools) on one schema, and keeping its table bounded.

mod support;

use std::sync::Arc;

use tessera::SessionStore;
use tessera::limit::{MemoryRateLimiter, RateLimiter};
use tessera_postgres::PostgresStore;

const T0: u64 = 1_800_000_000_000;

fn key() -> Vec<u8> {
    tessera::SessionId::random().as_bytes().to_vec()
}

async fn allowed(limiter: &impl RateLimiter, key: &[u8], limit: u32, now_ms: u64) -> bool {
    limiter
        .check(key, limit, now_ms)
        .await
        .expect("check")
        .allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_the_limit_is_allowed_then_one_per_interval() {
    let store = support::store().await;
    let limiter = store.rate_limiter();
    let k = key();
    for i in 0..10 {
        assert!(allowed(&limiter, &k, 10, T0).await, "request {i}");
    }
    let refused = limiter.check(&k, 10, T0).await.expect("check");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_secs, 6);
    assert!(!allowed(&limiter, &k, 10, T0 + 5_999).await);
    assert!(allowed(&limiter, &k, 10, T0 + 6_000).await);
    assert!(!allowed(&limiter, &k, 10, T0 + 6_000).await);
    support::drop_schema(store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_not_counted_and_zero_means_no_limit() {
    let store = support::store().await;
    let limiter = store.rate_limiter();
    let (a, b) = (key(), key());
    assert!(allowed(&limiter, &a, 1, T0).await);
    for _ in 0..20 {
        assert!(!allowed(&limiter, &a, 1, T0 + 1_000).await);
    }
    assert!(allowed(&limiter, &a, 1, T0 + 60_000).await);
    assert!(allowed(&limiter, &b, 1, T0).await, "keys are independent");
    for _ in 0..20 {
        assert!(allowed(&limiter, &a, 0, T0).await);
    }
    support::drop_schema(store.schema()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_match_the_in_process_limiter_step_for_step() {
    let store = support::store().await;
    let postgres = store.rate_limiter();
    let memory = MemoryRateLimiter::default();
    let k = key();
    let mut now = T0;
    // A deterministic, irregular arrival pattern: bursts and pauses.
    for i in 0u64..200 {
        now += (i * 7919) % 2_500;
        for limit in [3, 60] {
            let mut scoped = k.clone();
            scoped.push(limit as u8);
            let want = memory.check(&scoped, limit, now).await.expect("memory");
            let got = postgres.check(&scoped, limit, now).await.expect("postgres");
            assert_eq!(got, want, "request {i} at limit {limit}");
        }
    }
    support::drop_schema(store.schema()).await;
}

/// Two nodes (two stores with their own pools, one schema) hammer one key
/// at once: together they get exactly the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_limit_holds_across_two_nodes() {
    let a = support::store().await;
    let schema = a.schema().expect("schema").to_owned();
    let b = PostgresStore::connect(&support::url().await, support::options(&schema))
        .await
        .expect("second node");
    let limiters: [Arc<dyn RateLimiter>; 2] =
        [Arc::new(a.rate_limiter()), Arc::new(b.rate_limiter())];
    let k = Arc::new(key());
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (limiter, k) = (limiters[i % 2].clone(), k.clone());
            tokio::spawn(async move { limiter.check(&k, 25, T0).await.expect("check").allowed })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        if t.await.expect("task") {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 25,
        "exactly the limit, across both nodes together"
    );
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_limiter_state_is_purged_with_expired_sessions() {
    let store = support::store().await;
    let schema = store.schema().expect("schema").to_owned();
    let limiter = store.rate_limiter();
    let now_s = tessera_conformance::wall_clock_now();
    let now_ms = now_s * 1000;
    // 60 a minute: each key's state lapses one second after its request.
    let (lapsing, live) = (key(), key());
    assert!(allowed(&limiter, &lapsing, 60, now_ms - 5_000).await);
    assert!(allowed(&limiter, &live, 1, now_ms).await);
    let rows = || async {
        let client = support::raw(&support::url().await).await;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM \"{schema}\".tessera_rate_limits"),
                &[],
            )
            .await
            .expect("count");
        row.get::<_, i64>(0)
    };
    assert_eq!(rows().await, 2);
    store.purge_expired(now_s, 100).await.expect("purge");
    assert_eq!(rows().await, 1, "only the lapsed key's state is gone");
    assert!(
        !allowed(&limiter, &live, 1, now_ms + 1_000).await,
        "a live key keeps its state"
    );
    support::drop_schema(Some(&schema)).await;
}
