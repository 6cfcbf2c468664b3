//! Store operations per second on PostgreSQL, with the memory store
//! measured in the same run as the ceiling: `get` (what validation reads),
//! `insert` (session creation) and `compare_and_swap` (rotation).
//!
//! Run with `cargo bench -p tessera-postgres --bench postgres_store`.
//! PostgreSQL is `TESSERA_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); the tables go in a fresh
//! schema, dropped at the end.
//!
//! Each operation is measured two ways: one call at a time (latency bound:
//! the figure is 1 / time) and [`CONCURRENCY`] calls in flight at once over
//! the pool (the throughput one process gets, in elements per second).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use futures_util::future::join_all;
use tessera::store::{CasOutcome, StoredSession};
use tessera::{MemoryStore, SessionId, SessionStore};
use tessera_conformance::{random_bytes, random_key, wall_clock_now};
use tessera_postgres::{PostgresOptions, PostgresStore};
use tokio::runtime::Runtime;

/// Calls in flight at once in the concurrent measurements.
const CONCURRENCY: usize = 32;
/// Sessions a get bench cycles over.
const POOL: usize = 1_000;
/// A sealed record of about a real one's size.
const RECORD_LEN: usize = 400;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn url() -> String {
    std::env::var("TESSERA_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn session(now: u64) -> StoredSession {
    StoredSession {
        id: SessionId::random(),
        user_key: random_key(),
        org_key: random_key(),
        expires_at: now + 7200,
        version: 1,
        sealed: random_bytes(RECORD_LEN),
    }
}

/// A session to rotate and the version it is at.
struct Chain {
    id: SessionId,
    version: AtomicU64,
}

async fn chain(store: &dyn SessionStore, now: u64) -> Chain {
    let s = session(now);
    assert!(store.insert(s.clone(), now).await.expect("insert"));
    Chain {
        id: s.id,
        version: AtomicU64::new(1),
    }
}

async fn rotate(store: &dyn SessionStore, chain: &Chain, now: u64) {
    let expected = chain.version.load(Ordering::Relaxed);
    match store
        .compare_and_swap(
            &chain.id,
            expected,
            random_bytes(RECORD_LEN),
            now + 7200,
            now,
        )
        .await
        .expect("swap")
    {
        CasOutcome::Swapped { version } => chain.version.store(version, Ordering::Relaxed),
        other => panic!("a lone rotation must win: {other:?}"),
    }
}

fn bench_store(c: &mut Criterion) {
    let rt = runtime();
    let schema = format!(
        "tessera_bench_{}",
        &SessionId::random().as_uuid().simple().to_string()[..12]
    );
    let postgres = rt
        .block_on(PostgresStore::connect(
            &url(),
            PostgresOptions {
                schema: Some(schema.clone()),
                ..PostgresOptions::default()
            },
        ))
        .expect("the benchmark needs PostgreSQL (TESSERA_BENCH_POSTGRES_URL)");
    let stores: Vec<(&str, Arc<dyn SessionStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("postgres", Arc::new(postgres.clone())),
    ];
    let now = wall_clock_now();

    let mut group = c.benchmark_group("get");
    for (name, store) in &stores {
        let ids: Vec<SessionId> = rt.block_on(async {
            let mut ids = Vec::with_capacity(POOL);
            for _ in 0..POOL {
                let s = session(now);
                store.insert(s.clone(), now).await.expect("insert");
                ids.push(s.id);
            }
            ids
        });
        let mut i = 0usize;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", name), |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % POOL;
                let id = ids[i];
                async move { black_box(store.get(&id, now).await.expect("get")) }
            })
        });
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", name), |b| {
            b.to_async(&rt).iter(|| {
                join_all((0..CONCURRENCY).map(|k| {
                    let id = ids[k * 7 % POOL];
                    async move { store.get(&id, now).await.expect("get") }
                }))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("insert");
    for (name, store) in &stores {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", name), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(store.insert(session(now), now).await.expect("insert"))
            })
        });
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", name), |b| {
            b.to_async(&rt).iter(|| {
                join_all(
                    (0..CONCURRENCY)
                        .map(|_| async { store.insert(session(now), now).await.expect("insert") }),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("compare_and_swap");
    for (name, store) in &stores {
        let one = rt.block_on(chain(store.as_ref(), now));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", name), |b| {
            b.to_async(&rt)
                .iter(|| async { rotate(store.as_ref(), &one, now).await })
        });
        let chains: Vec<Chain> = rt.block_on(async {
            let mut chains = Vec::with_capacity(CONCURRENCY);
            for _ in 0..CONCURRENCY {
                chains.push(chain(store.as_ref(), now).await);
            }
            chains
        });
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(BenchmarkId::new("concurrent", name), |b| {
            b.to_async(&rt).iter(|| {
                join_all(
                    chains
                        .iter()
                        .map(|chain| async move { rotate(store.as_ref(), chain, now).await }),
                )
            })
        });
    }
    group.finish();

    drop_schema(&rt, &schema);
}

/// Drops the benchmark's schema with a plain connection.
fn drop_schema(rt: &Runtime, schema: &str) {
    rt.block_on(async {
        let Ok((client, conn)) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await
        else {
            eprintln!("could not connect to drop schema {schema}");
            return;
        };
        tokio::spawn(conn);
        if let Err(e) = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
        {
            eprintln!("could not drop schema {schema}: {e}");
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = bench_store
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
