//! Fills an embedded store with real sessions for the backup benchmark
//! (`scripts/backup-bench.sh`): `fill DATA_DIR COUNT`, keys from
//! `JWT_SECRET` and `SESSION_ENCRYPTION_KEY`. Sessions belong to 1,000
//! members of one org, are sealed as the service seals them, and are
//! written through the store as the service writes them.

use std::sync::Arc;
use std::time::Instant;

use tessera::{KeyRing, NewSession, OrgId, RoleName, SessionManager, UserId};
use tessera_sqlite::{DataDir, SqliteOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: fill DATA_DIR COUNT")?;
    let count: usize = args.next().ok_or("usage: fill DATA_DIR COUNT")?.parse()?;
    let store = DataDir::lock(&dir)?.open_store(SqliteOptions::default())?;
    let manager = SessionManager::builder()
        .keys(KeyRing::from_env()?)
        .store(Arc::new(store))
        .build()?;
    let org = OrgId::from_uuid(uuid::Uuid::from_u128(
        0x0b7e_2a43_5f55_4b4e_9a3c_2f1f_0d2c_9e11,
    ));
    let users: Vec<UserId> = (0..1000u128)
        .map(|i| {
            UserId::from_uuid(uuid::Uuid::from_u128(
                0x6f96_19ff_0000_4000_8000_0000_0000_0000 | i,
            ))
        })
        .collect();
    let member = RoleName::parse("member")?;
    for u in &users {
        manager.set_membership(u, &org, &member).await?;
    }
    let started = Instant::now();
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (manager, users) = (manager.clone(), users.clone());
        tasks.spawn(async move {
            let mut i = w;
            while i < count {
                let new = NewSession::new(users[i % users.len()], org);
                manager.create_session(new).await?;
                i += workers;
            }
            Ok::<_, tessera::SessionError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {dir} with {count} sessions in {secs:.1} s ({:.0} per second)",
        count as f64 / secs
    );
    Ok(())
}
