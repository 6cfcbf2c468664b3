//! What the file keeps and what it refuses: sessions written through one
//! store are there when the file is opened again; a file from a newer
//! Tessera, or not a database at all, is refused with a clear error; the
//! file is private to its owner.

use std::path::{Path, PathBuf};

use tessera::SessionId;
use tessera::store::{SessionStore, StoredSession};
use tessera_conformance::{opaque_record, random_key, session, wall_clock_now};
use tessera_sqlite::SqliteStore;

fn fresh_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tessera-sqlite-{what}-{}.db", SessionId::random()))
}

fn remove_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_memberships_outlive_the_store_that_wrote_them() {
    let path = fresh_path("reopen");
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let written: Vec<StoredSession> = (0..20).map(|_| session(user, org, now + 3600)).collect();
    let (mkey, membership) = (random_key(), opaque_record());
    {
        let store = SqliteStore::open(&path).expect("open");
        for s in &written {
            assert!(store.insert(s.clone(), now).await.expect("insert"));
        }
        let swapped = store
            .compare_and_swap(&written[0].id, 1, vec![9; 40], now + 7200, now)
            .await
            .expect("cas");
        assert_eq!(swapped, tessera::store::CasOutcome::Swapped { version: 2 });
        assert!(store.remove(&written[1].id).await.expect("remove"));
        store
            .put_membership(&mkey, membership.clone())
            .await
            .expect("membership");
    }
    let store = SqliteStore::open(&path).expect("open again");
    let got = store
        .get(&written[0].id, now)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        (got.version, got.expires_at, got.sealed),
        (2, now + 7200, vec![9; 40])
    );
    assert!(
        store.get(&written[1].id, now).await.expect("get").is_none(),
        "a removal is kept too"
    );
    for s in &written[2..] {
        let got = store.get(&s.id, now).await.expect("get").expect("kept");
        assert_eq!(got.sealed, s.sealed);
    }
    assert_eq!(
        store.user_sessions(&user, now).await.expect("user").len(),
        19
    );
    assert_eq!(store.count(now).await.expect("count").total, 19);
    assert_eq!(
        store.get_membership(&mkey).await.expect("get"),
        Some(membership)
    );
    drop(store);
    remove_files(&path);
}

#[test]
fn a_file_from_a_newer_tessera_is_refused_by_name() {
    let path = fresh_path("newer");
    drop(SqliteStore::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("set version");
    drop(conn);
    let err = SqliteStore::open(&path).expect_err("newer schema");
    let shown = err.to_string();
    assert!(shown.contains("schema version 99"), "{shown}");
    assert!(shown.contains("upgrade Tessera"), "{shown}");
    remove_files(&path);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let path = fresh_path("garbage");
    let garbage = b"this is not a SQLite database, it is someone's notes\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write");
    assert!(SqliteStore::open(&path).is_err());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        garbage,
        "the file is untouched"
    );
    remove_files(&path);
}

#[cfg(unix)]
#[test]
fn the_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let path = fresh_path("mode");
    let store = SqliteStore::open(&path).expect("open");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    drop(store);
    remove_files(&path);
}

#[test]
fn a_locked_data_directory_is_refused_until_its_store_is_gone() {
    let dir = std::env::temp_dir().join(format!("tessera-sqlite-dir-{}", SessionId::random()));
    let store = tessera_sqlite::DataDir::lock(&dir)
        .and_then(|d| d.open_store(tessera_sqlite::SqliteOptions::default()))
        .expect("the first store");
    let err = tessera_sqlite::DataDir::lock(&dir).expect_err("a second lock");
    let shown = err.to_string();
    assert!(shown.contains(&dir.display().to_string()), "{shown}");
    assert!(shown.contains("in use by another tessera serve"), "{shown}");
    // A tool may still open the file beside the running store.
    let beside = SqliteStore::open(tessera_sqlite::DataDir::database_in(&dir)).expect("shared");
    drop(beside);
    drop(store);
    tessera_sqlite::DataDir::lock(&dir).expect("free once the store is gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_directory_that_cannot_be_made_is_refused_by_path() {
    // A path under a regular file cannot be a directory, even for root.
    let file = fresh_path("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let dir = file.join("data");
    let err = tessera_sqlite::DataDir::lock(&dir).expect_err("not creatable");
    let shown = err.to_string();
    assert!(shown.contains(&dir.display().to_string()), "{shown}");
    assert!(shown.contains("cannot be created"), "{shown}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_committed_in_groups_are_all_answered_and_kept() {
    let path = fresh_path("groups");
    let now = wall_clock_now();
    let (user, org) = (random_key(), random_key());
    let sessions: Vec<StoredSession> = (0..400).map(|_| session(user, org, now + 3600)).collect();
    {
        let store = std::sync::Arc::new(SqliteStore::open(&path).expect("open"));
        let mut tasks = tokio::task::JoinSet::new();
        for s in sessions.clone() {
            let store = store.clone();
            tasks.spawn(async move {
                // A duplicate insert in the same burst must not disturb
                // the group it lands in.
                let first = store.insert(s.clone(), now).await.expect("insert");
                let again = store.insert(s.clone(), now).await.expect("insert again");
                let swapped = store
                    .compare_and_swap(&s.id, 1, vec![1; 32], now + 7200, now)
                    .await
                    .expect("cas");
                (first, again, swapped)
            });
        }
        for (first, again, swapped) in tasks.join_all().await {
            assert!(first && !again);
            assert_eq!(swapped, tessera::store::CasOutcome::Swapped { version: 2 });
        }
    }
    let store = SqliteStore::open(&path).expect("open again");
    assert_eq!(store.count(now).await.expect("count").total, 400);
    for s in &sessions {
        let got = store.get(&s.id, now).await.expect("get").expect("kept");
        assert_eq!((got.version, got.expires_at), (2, now + 7200));
    }
    drop(store);
    remove_files(&path);
}
