//! The SQLite store against the store contract, unchanged: every case of
//! `tessera-conformance`, each on a database file of its own that the
//! teardown deletes.

use std::path::PathBuf;

use tessera::SessionId;
use tessera_sqlite::SqliteStore;

fn fresh_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tessera-sqlite-conformance-{}.db",
        SessionId::random()
    ))
}

fn remove_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

tessera_conformance::store_tests!(
    SqliteStore::open(fresh_path()).expect("open a new database file"),
    teardown = |store| async move { remove_files(store.path()) }
);
