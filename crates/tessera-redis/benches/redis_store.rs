//! Library operations per second over Redis, with the memory store measured
//! in the same run as the ceiling, and Redis round trips per operation.
//!
//! Run with `cargo bench -p tessera-redis --bench redis_store`. Redis is
//! `TESSERA_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`); set
//! `TESSERA_BENCH_CLUSTER_URL` (`redis+cluster://...`) to add a cluster.
//! Keys go under a fresh prefix and are deleted at the end.
//!
//! Each operation is measured two ways: one call at a time (latency bound:
//! the figure is 1 / time) and [`CONCURRENCY`] calls in flight at once (the
//! throughput one process gets, in elements per second), which is how a
//! service drives the store. Time is the system clock, because Redis expires
//! records on wall-clock time.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use futures_util::future::join_all;
use tessera::{
    KeyRing, Lifetimes, MemoryStore, NewSession, OrgId, RoleName, SessionManager, SessionStore,
    UserId,
};
use tessera_redis::RedisStore;
use tokio::runtime::Runtime;

/// Calls in flight at once in the concurrent measurements.
const CONCURRENCY: usize = 64;
/// Sessions a validate bench cycles over.
const POOL: usize = 1_000;

struct Backend {
    name: &'static str,
    manager: SessionManager,
    redis: Option<RedisStore>,
    member: (UserId, OrgId),
    access: Vec<String>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn prefix() -> String {
    format!(
        "tessera-bench:{}:",
        &tessera::SessionId::random().to_string()[..8]
    )
}

fn manager(store: Arc<dyn SessionStore>, keys: &KeyRing) -> SessionManager {
    SessionManager::builder()
        .keys(keys.clone())
        .store(store)
        .lifetimes(Lifetimes {
            cleanup_interval: Duration::ZERO,
            refresh: Duration::from_secs(3600),
            absolute: Duration::from_secs(7200),
            ..Lifetimes::default()
        })
        .build()
        .expect("a manager")
}

fn backends(rt: &Runtime) -> Vec<Backend> {
    let keys = KeyRing::new(
        &KeyRing::generate_secret().expect("secret"),
        &KeyRing::generate_secret().expect("secret"),
    )
    .expect("keys");
    let mut stores: Vec<(&'static str, Arc<dyn SessionStore>, Option<RedisStore>)> =
        vec![("memory", Arc::new(MemoryStore::new()), None)];
    let url = std::env::var("TESSERA_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = rt
        .block_on(RedisStore::connect(&url, &prefix()))
        .expect("the benchmark needs Redis (TESSERA_BENCH_REDIS_URL)");
    stores.push(("redis", Arc::new(redis.clone()), Some(redis)));
    if let Ok(url) = std::env::var("TESSERA_BENCH_CLUSTER_URL") {
        let cluster = rt
            .block_on(RedisStore::connect(&url, &prefix()))
            .expect("TESSERA_BENCH_CLUSTER_URL must reach a cluster");
        stores.push(("redis-cluster", Arc::new(cluster.clone()), Some(cluster)));
    }
    stores
        .into_iter()
        .map(|(name, store, redis)| {
            let manager = manager(store, &keys);
            let member = (
                UserId::from_uuid(uuid::Uuid::new_v4()),
                OrgId::from_uuid(uuid::Uuid::new_v4()),
            );
            let access = rt.block_on(async {
                manager
                    .set_membership(
                        &member.0,
                        &member.1,
                        &RoleName::parse("member").expect("role"),
                    )
                    .await
                    .expect("membership");
                let mut access = Vec::with_capacity(POOL);
                for _ in 0..POOL {
                    let issued = manager
                        .create_session(NewSession::new(member.0, member.1))
                        .await
                        .expect("create");
                    access.push(issued.access_token.expose().to_owned());
                }
                access
            });
            Backend {
                name,
                manager,
                redis,
                member,
                access,
            }
        })
        .collect()
}

async fn fresh_refresh_token(b: &Backend) -> String {
    b.manager
        .create_session(NewSession::new(b.member.0, b.member.1))
        .await
        .expect("create")
        .refresh_token
        .expose()
        .to_owned()
}

fn bench_store(c: &mut Criterion) {
    let rt = runtime();
    let backends = backends(&rt);

    let mut group = c.benchmark_group("validate");
    for b in &backends {
        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", b.name), |bench| {
            bench.to_async(&rt).iter(|| {
                i = (i + 1) % POOL;
                let token = &b.access[i];
                async move { black_box(b.manager.validate_session(token).await.expect("valid")) }
            })
        });
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", b.name), |bench| {
            bench.to_async(&rt).iter(|| {
                join_all((0..CONCURRENCY).map(|k| {
                    let token = &b.access[k * 7 % POOL];
                    async move { b.manager.validate_session(token).await.expect("valid") }
                }))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("create");
    for b in &backends {
        let new = NewSession::new(b.member.0, b.member.1);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", b.name), |bench| {
            bench.to_async(&rt).iter(|| async {
                black_box(b.manager.create_session(new.clone()).await.expect("create"))
            })
        });
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", b.name), |bench| {
            bench.to_async(&rt).iter(|| {
                join_all((0..CONCURRENCY).map(|_| async {
                    b.manager.create_session(new.clone()).await.expect("create")
                }))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("refresh");
    for b in &backends {
        // Each iteration rotates the token the previous one returned.
        let current = std::sync::Mutex::new(rt.block_on(fresh_refresh_token(b)));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", b.name), |bench| {
            bench.to_async(&rt).iter(|| async {
                let token = current.lock().expect("lock").clone();
                let next = b.manager.refresh_session(&token).await.expect("refresh");
                *current.lock().expect("lock") = next.refresh_token.expose().to_owned();
            })
        });
        let chains: Vec<std::sync::Mutex<String>> = (0..CONCURRENCY)
            .map(|_| std::sync::Mutex::new(rt.block_on(fresh_refresh_token(b))))
            .collect();
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", b.name), |bench| {
            bench.to_async(&rt).iter(|| {
                join_all(chains.iter().map(|chain| async move {
                    let token = chain.lock().expect("lock").clone();
                    let next = b.manager.refresh_session(&token).await.expect("refresh");
                    *chain.lock().expect("lock") = next.refresh_token.expose().to_owned();
                }))
            })
        });
    }
    group.finish();

    report_round_trips(&rt, &backends);
    for b in &backends {
        if let Some(store) = &b.redis {
            delete_prefix(&rt, store);
        }
    }
}

/// Round trips per operation, from each store's request counter.
fn report_round_trips(rt: &Runtime, backends: &[Backend]) {
    const N: u64 = 200;
    for b in backends {
        let Some(store) = &b.redis else { continue };
        rt.block_on(async {
            // The first validation of a session in each activity interval
            // (60 s) also writes last_activity; count the steady state after
            // that write, and the write's cost separately.
            let before = store.round_trips();
            for i in 0..N as usize {
                b.manager.validate_session(&b.access[i % POOL]).await.expect("valid");
            }
            let first = store.round_trips() - before;
            let before = store.round_trips();
            for i in 0..N as usize {
                b.manager.validate_session(&b.access[i % POOL]).await.expect("valid");
            }
            let validate = store.round_trips() - before;

            let before = store.round_trips();
            for _ in 0..N {
                b.manager
                    .create_session(NewSession::new(b.member.0, b.member.1))
                    .await
                    .expect("create");
            }
            let create = store.round_trips() - before;

            let mut token = fresh_refresh_token(b).await;
            let before = store.round_trips();
            for _ in 0..N {
                token = b
                    .manager
                    .refresh_session(&token)
                    .await
                    .expect("refresh")
                    .refresh_token
                    .expose()
                    .to_owned();
            }
            let refresh = store.round_trips() - before;
            println!(
                "round trips per operation on {}: validate {:.2} (with a due activity write {:.2}), create {:.2}, refresh {:.2}",
                b.name,
                validate as f64 / N as f64,
                first as f64 / N as f64,
                create as f64 / N as f64,
                refresh as f64 / N as f64
            );
        });
    }
}

/// Deletes the benchmark's keys: the Redis store has no "delete all", so
/// scan the prefix on every server the store's URL names.
fn delete_prefix(rt: &Runtime, store: &RedisStore) {
    let prefix = store.prefix().to_owned();
    // On a cluster, scan every node the URL names (name all masters in it).
    let urls: Vec<String> = if store.is_cluster() {
        std::env::var("TESSERA_BENCH_CLUSTER_URL")
            .unwrap_or_default()
            .trim_start_matches("redis+cluster://")
            .split(',')
            .map(|h| format!("redis://{h}"))
            .collect()
    } else {
        vec![
            std::env::var("TESSERA_BENCH_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
        ]
    };
    rt.block_on(async {
        for url in urls {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                continue;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .expect("SCAN");
                // One key per command: a cluster node refuses multi-key
                // commands across slots.
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("UNLINK").arg(key).ignore();
                }
                if !keys.is_empty() {
                    let _: () = pipe.query_async(&mut conn).await.expect("UNLINK");
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = bench_store
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
