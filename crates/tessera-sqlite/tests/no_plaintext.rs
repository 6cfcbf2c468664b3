//! The database file holds only ciphertext, keyed hashes, ids, versions and
//! expiries: the shared probe (`tessera_test_support::plaintext`) makes
//! sessions through a real `SessionManager`, then the raw bytes of the file
//! and of its write-ahead log are scanned for every identifier, address and
//! token the probe used, in every encoding they could leak in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera::{KeyRing, SessionId, SessionManager};
use tessera_sqlite::SqliteStore;
use tessera_test_support::plaintext::Probe;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Scans the file and its log; returns how many bytes were read and
/// whether a session id (which the store may hold) was seen.
fn scan(path: &Path, probe: &Probe) -> (usize, bool) {
    let (mut scanned, mut saw_id) = (0, false);
    for suffix in ["", "-wal"] {
        let file = with_suffix(path, suffix);
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        scanned += bytes.len();
        probe.assert_absent(&file.display().to_string(), &bytes);
        saw_id |= probe
            .session_ids
            .iter()
            .any(|id| memchr::memmem::find(&bytes, id.as_bytes()).is_some());
    }
    (scanned, saw_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_and_its_log_hold_no_plaintext() {
    let path =
        std::env::temp_dir().join(format!("tessera-sqlite-plain-{}.db", SessionId::random()));
    let store = SqliteStore::open(&path).expect("open");
    let keys = KeyRing::new(
        &KeyRing::generate_secret().expect("secret"),
        &KeyRing::generate_secret().expect("secret"),
    )
    .expect("keys");
    let manager = SessionManager::builder()
        .keys(keys)
        .store(Arc::new(store.clone()))
        .build()
        .expect("manager");
    let probe = Probe::seed(&manager, 48).await;
    // The probe itself catches a planted value.
    let planted = format!("row: {}", probe.user);
    assert!(
        std::panic::catch_unwind(|| probe.assert_absent("planted", planted.as_bytes())).is_err(),
        "the probe must find a user id in clear"
    );

    // With the write-ahead log still holding the recent writes...
    let (scanned, saw_id) = scan(&path, &probe);
    assert!(
        scanned > 48 * 100,
        "the scan read the records ({scanned} bytes)"
    );
    assert!(
        saw_id,
        "the scan reached the rows (it sees the session ids)"
    );
    // ...and after the last connection closes and checkpoints it.
    drop(manager);
    drop(store);
    let (scanned, saw_id) = scan(&path, &probe);
    assert!(
        scanned > 48 * 100,
        "the scan read the file ({scanned} bytes)"
    );
    assert!(saw_id);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&path, suffix));
    }
}
