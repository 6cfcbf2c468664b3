//! The shared rate limiter: GCRA in one Lua script, deciding exactly like
//! the core's in-process limiter, and holding one limit across several
//! nodes (separate connections) at once, on one server and on a cluster.

mod support;

use std::sync::Arc;

use support::Mode;
use tessera::limit::{MemoryRateLimiter, RateLimiter};

const T0: u64 = 1_800_000_000_000;

fn key() -> Vec<u8> {
    tessera::SessionId::random().as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_the_limit_is_allowed_then_one_per_interval() {
    let store = support::store(Mode::Standalone).await;
    let limiter = store.rate_limiter();
    let k = key();
    for i in 0..10 {
        assert!(
            limiter.check(&k, 10, T0).await.expect("check").allowed,
            "request {i}"
        );
    }
    let refused = limiter.check(&k, 10, T0).await.expect("check");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_secs, 6);
    assert!(
        !limiter
            .check(&k, 10, T0 + 5_999)
            .await
            .expect("check")
            .allowed
    );
    assert!(
        limiter
            .check(&k, 10, T0 + 6_000)
            .await
            .expect("check")
            .allowed
    );
    assert!(
        !limiter
            .check(&k, 10, T0 + 6_000)
            .await
            .expect("check")
            .allowed
    );
    support::delete_keys(Mode::Standalone, store.prefix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_not_counted_and_zero_means_no_limit() {
    let store = support::store(Mode::Standalone).await;
    let limiter = store.rate_limiter();
    let (a, b) = (key(), key());
    assert!(limiter.check(&a, 1, T0).await.expect("check").allowed);
    for _ in 0..20 {
        assert!(
            !limiter
                .check(&a, 1, T0 + 1_000)
                .await
                .expect("check")
                .allowed
        );
    }
    assert!(
        limiter
            .check(&a, 1, T0 + 60_000)
            .await
            .expect("check")
            .allowed
    );
    assert!(
        limiter.check(&b, 1, T0).await.expect("check").allowed,
        "keys are independent"
    );
    for _ in 0..20 {
        assert!(limiter.check(&a, 0, T0).await.expect("check").allowed);
    }
    support::delete_keys(Mode::Standalone, store.prefix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_match_the_in_process_limiter_step_for_step() {
    let store = support::store(Mode::Standalone).await;
    let redis = store.rate_limiter();
    let memory = MemoryRateLimiter::default();
    let k = key();
    let mut now = T0;
    // A deterministic, irregular arrival pattern: bursts and pauses.
    for i in 0u64..300 {
        now += (i * 7919) % 2_500;
        for limit in [3, 60] {
            let mut scoped = k.clone();
            scoped.push(limit as u8);
            let want = memory.check(&scoped, limit, now).await.expect("memory");
            let got = redis.check(&scoped, limit, now).await.expect("redis");
            assert_eq!(got, want, "request {i} at limit {limit}");
        }
    }
    support::delete_keys(Mode::Standalone, store.prefix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limiter_state_expires_once_it_no_longer_matters() {
    let store = support::store(Mode::Standalone).await;
    let limiter = store.rate_limiter();
    let k = key();
    assert!(limiter.check(&k, 30, T0).await.expect("check").allowed);
    let keys = support::keys(Mode::Standalone, store.prefix());
    assert_eq!(keys.len(), 1, "one key per limited caller");
    let mut c = redis::Client::open(support::standalone_url().as_str())
        .and_then(|c| c.get_connection())
        .expect("connect");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0].1)
        .query(&mut c)
        .expect("PTTL");
    assert!(
        (1..=2_000).contains(&ttl_ms),
        "a 30/min key lapses after its 2 s interval: {ttl_ms}"
    );
    support::delete_keys(Mode::Standalone, store.prefix());
}

/// Two nodes (two connections to the same Redis) hammer one key at once:
/// together they get exactly the limit.
async fn limit_holds_across_nodes(mode: Mode) {
    let a = support::store(mode).await;
    let b = tessera_redis::RedisStore::connect(&mode.url(), a.prefix())
        .await
        .expect("second node");
    let limiters: [Arc<dyn RateLimiter>; 2] =
        [Arc::new(a.rate_limiter()), Arc::new(b.rate_limiter())];
    let k = Arc::new(key());
    let now = T0;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (limiter, k) = (limiters[i % 2].clone(), k.clone());
            tokio::spawn(async move { limiter.check(&k, 25, now).await.expect("check").allowed })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.expect("task") {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 25, "exactly the limit, across both nodes together");
    support::delete_keys(mode, a.prefix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_limit_holds_across_two_nodes() {
    limit_holds_across_nodes(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_limit_holds_across_two_nodes_on_a_cluster() {
    limit_holds_across_nodes(Mode::Cluster).await;
}
