//! Fills an embedded store with real sessions for the backup benchmark
//! (`scripts/backup-bench.sh`): `fill DATA_DIR COUNT`, keys from
//! `JWT_SECRET` and `SESSION_ENCRYPTION_KEY`. Sessions belong to 1,000
//! members of one org and are made by the session manager, sealed as the
//! service seals them. They are made in a memory store a chunk at a time,
//! and each chunk is backed up to a buffer and restored into the file, as
//! `tessera restore` writes a backup (a batch per commit): creating each
//! through the file would cost a commit per session.

use std::sync::Arc;
use std::time::Instant;

use tessera::{KeyRing, MemoryStore, NewSession, OrgId, RoleName, SessionManager, UserId, backup};
use tessera_sqlite::{DataDir, SqliteOptions};

/// Sessions made in memory before each copy into the file.
const CHUNK: usize = 20_000;
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: fill DATA_DIR COUNT")?;
    let count: usize = args.next().ok_or("usage: fill DATA_DIR COUNT")?.parse()?;
    let file = DataDir::lock(&dir)?.open_store(SqliteOptions::default())?;
    let keys = KeyRing::from_env()?;
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
    let started = Instant::now();
    let mut made = 0;
    while made < count {
        let memory = Arc::new(MemoryStore::new());
        let manager = SessionManager::builder()
            .keys(keys.clone())
            .store(memory.clone())
            .build()?;
        // Each chunk's store needs the memberships; copying them again is
        // harmless (a restore never overwrites one).
        for u in &users {
            manager.set_membership(u, &org, &member).await?;
        }
        let n = CHUNK.min(count - made);
        for i in made..made + n {
            manager
                .create_session(NewSession::new(users[i % users.len()], org))
                .await?;
        }
        let now = tessera_now();
        let mut chunk = Vec::new();
        backup::write(memory.as_ref(), &keys, now, &mut chunk, |_| {}).await?;
        backup::restore(&file, &keys, now, chunk.as_slice(), |_| {}).await?;
        made += n;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "filled {dir} with {count} sessions in {secs:.1} s ({:.0} per second)",
        count as f64 / secs
    );
    Ok(())
}

fn tessera_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
