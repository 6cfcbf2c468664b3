//! Library operations per second on the SQLite store, with the memory store
//! measured in the same run as the ceiling.
//!
//! Run with `cargo bench -p tessera-sqlite --bench sqlite_store`. The
//! database file is made in the system's temporary directory and deleted at
//! the end. Each operation is measured one call at a time and with
//! [`CONCURRENCY`] calls in flight, which is how a service drives the store.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use tessera::{
    KeyRing, Lifetimes, MemoryStore, NewSession, OrgId, RoleName, SessionManager, SessionStore,
    UserId,
};
use tessera_sqlite::SqliteStore;
use tokio::runtime::Runtime;

/// Calls in flight at once in the concurrent measurements.
const CONCURRENCY: usize = 64;
/// Sessions a validate bench cycles over.
const POOL: usize = 1_000;

struct Backend {
    name: &'static str,
    manager: SessionManager,
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

fn backends(rt: &Runtime, path: &PathBuf) -> Vec<Backend> {
    let keys = KeyRing::new(
        &KeyRing::generate_secret().expect("secret"),
        &KeyRing::generate_secret().expect("secret"),
    )
    .expect("keys");
    let stores: Vec<(&'static str, Arc<dyn SessionStore>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "sqlite",
            Arc::new(SqliteStore::open(path).expect("a database file")),
        ),
    ];
    stores
        .into_iter()
        .map(|(name, store)| {
            let manager = SessionManager::builder()
                .keys(keys.clone())
                .store(store)
                .lifetimes(Lifetimes {
                    cleanup_interval: Duration::ZERO,
                    ..Lifetimes::default()
                })
                .build()
                .expect("a manager");
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
    let path = std::env::temp_dir().join(format!(
        "tessera-sqlite-bench-{}.db",
        tessera::SessionId::random()
    ));
    let backends = backends(&rt, &path);

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
                futures_join((0..CONCURRENCY).map(|k| {
                    let token = b.access[k * 7 % POOL].clone();
                    let m = b.manager.clone();
                    async move { m.validate_session(&token).await.map(|_| ()).expect("valid") }
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
                futures_join((0..CONCURRENCY).map(|_| {
                    let (m, new) = (b.manager.clone(), new.clone());
                    async move { m.create_session(new).await.map(|_| ()).expect("create") }
                }))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("refresh");
    for b in &backends {
        let current = std::sync::Mutex::new(rt.block_on(fresh_refresh_token(b)));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("sequential", b.name), |bench| {
            bench.to_async(&rt).iter(|| async {
                let token = current.lock().expect("lock").clone();
                let next = b.manager.refresh_session(&token).await.expect("refresh");
                *current.lock().expect("lock") = next.refresh_token.expose().to_owned();
            })
        });
    }
    group.finish();

    drop(backends);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Runs the futures concurrently on the runtime and waits for all.
async fn futures_join<F>(futures: impl Iterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    for h in handles {
        h.await.expect("task");
    }
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
