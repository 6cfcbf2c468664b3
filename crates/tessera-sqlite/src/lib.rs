//! The embedded, durable [`SessionStore`]: one SQLite database file.
//!
//! `tessera serve` keeps its sessions and memberships here unless told
//! otherwise, so a restart, a deploy or a crash logs nobody out. SQLite was
//! chosen over a home-made log because it is crash-safe by design, has an
//! online backup API, and every operator already has tools to inspect it
//! (`sqlite3 sessions.db .schema`).
//!
//! # What the file holds
//!
//! Exactly what the Redis store holds: session ids, keyed hashes of user and
//! org ids, versions, expiries and sealed (AES-256-GCM) records, and sealed
//! memberships under keyed hashes. Never a user id, org id, IP address, user
//! agent, role or token in clear.
//!
//! # Durability
//!
//! The database runs in WAL mode. Every write is its own transaction and is
//! committed before the method returns, so a write the service acknowledged
//! survives `kill -9` of the process. [`Synchronous::Normal`] (the default)
//! does not fsync on every commit: a power loss or an OS crash can lose the
//! last commits since the WAL was last synced (at a checkpoint), but never
//! corrupts the file. [`Synchronous::Full`] fsyncs the WAL at every commit
//! and loses nothing acknowledged, at the cost of one fsync per write.
//!
//! A write that returns an error did not commit and is not retried behind
//! its caller, so it never takes effect later (the store contract's "no
//! late writes"); there is no network between the caller and the file, so
//! the store needs no deadline and its write window is zero. A caller that
//! drops the call's future before the answer does not stop the write: it
//! commits with its group, or fails with it.
//!
//! # Concurrency
//!
//! One writer thread owns the writer connection and commits in groups:
//! it takes the oldest waiting write and every other one already queued
//! (up to [`MAX_GROUP`]), runs each in a savepoint of one transaction (a
//! write that fails rolls back alone), commits once, and only then answers
//! each caller. A commit is the expensive part of a write; under load one
//! commit serves many writes, and a write that finds the writer idle is
//! committed at once (nothing waits for company). SQLite serializes writes
//! anyway. Point reads (`get`, the validation path,
//! and `get_membership`) run on the calling task over a small pool of read
//! connections: in WAL mode readers never wait for the writer, and a read of
//! a cached page takes microseconds, less than a hop to another thread.
//! Reads that scan (listings, counts) go to the blocking pool. Another
//! process may open the same file at the same time (`tessera backup` and
//! `tessera restore` do, while the service runs); SQLite's file locks keep
//! them consistent, and a busy writer is waited for up to
//! [`SqliteOptions::busy_timeout`].
//!
//! # The data directory
//!
//! A service opens its store through [`DataDir`]: a directory (created
//! private to its owner) holding the database file and a lock file. The
//! lock is held as long as the store lives, so a second service on the
//! same directory is refused at start instead of sharing the file by
//! accident; tools such as `tessera backup` open the file with
//! [`SqliteStore::open`] and take no lock.
//!
//! # Schema
//!
//! `PRAGMA user_version` holds the schema version. Opening a file made by a
//! newer Tessera fails with a clear error instead of guessing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tessera::StoreError;
use tessera::ids::SessionId;
use tessera::store::{
    CasOutcome, IndexKey, MembershipPage, Page, RestoreOutcome, SessionCounts, SessionStore,
    StoredSession, key_cursor, parse_key_cursor,
};

/// The schema version this build writes and understands.
const SCHEMA_VERSION: i64 = 1;

/// Everything the store needs, created on a new file. The `org_counts`
/// table is kept exact by triggers (rows stored per org, live or not), so
/// counting is proportional to the expired backlog, not to the table.
const SCHEMA: &str = "
CREATE TABLE sessions (
    id BLOB PRIMARY KEY NOT NULL,
    user_key BLOB NOT NULL,
    org_key BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    sealed BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_key);
CREATE INDEX sessions_by_org ON sessions (org_key, id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE TABLE org_counts (
    org_key BLOB PRIMARY KEY NOT NULL,
    n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER sessions_counted AFTER INSERT ON sessions BEGIN
    INSERT INTO org_counts (org_key, n) VALUES (new.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER sessions_uncounted AFTER DELETE ON sessions BEGIN
    UPDATE org_counts SET n = n - 1 WHERE org_key = old.org_key;
    DELETE FROM org_counts WHERE org_key = old.org_key AND n <= 0;
END;
CREATE TRIGGER sessions_recounted AFTER UPDATE OF org_key ON sessions
    WHEN old.org_key IS NOT new.org_key BEGIN
    UPDATE org_counts SET n = n - 1 WHERE org_key = old.org_key;
    DELETE FROM org_counts WHERE org_key = old.org_key AND n <= 0;
    INSERT INTO org_counts (org_key, n) VALUES (new.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET n = n + 1;
END;
CREATE TABLE memberships (
    key BLOB PRIMARY KEY NOT NULL,
    sealed BLOB NOT NULL
) WITHOUT ROWID;
";

/// When a commit reaches the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: commits survive a crash of the process; a power
    /// loss can lose the last ones (never corrupts). The default.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced before it is
    /// acknowledged; survives a power loss.
    Full,
}

/// How a [`SqliteStore`] opens its file.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// When commits reach the disk. Default [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// Read connections for point reads. Default 4.
    pub readers: usize,
    /// How long a statement waits for another connection's lock (another
    /// process writing the same file) before failing. Default 5 s.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::with_source("the SQLite store failed", e)
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::with_source("a SQLite store task did not finish", e)
}

fn bad_cursor() -> StoreError {
    StoreError::invalid_input("the cursor is not valid")
}

/// Converts a time or version for SQLite's signed 64-bit integers. Values
/// past `i64::MAX` are clamped: no expiry or version gets near it.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn key16(bytes: Vec<u8>) -> Result<IndexKey, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::new("the SQLite store holds a malformed key"))
}

fn row_session(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawSession> {
    Ok(RawSession {
        id: row.get(0)?,
        user_key: row.get(1)?,
        org_key: row.get(2)?,
        expires_at: row.get(3)?,
        version: row.get(4)?,
        sealed: row.get(5)?,
    })
}

/// A row as SQLite returns it, checked into a [`StoredSession`] after.
struct RawSession {
    id: Vec<u8>,
    user_key: Vec<u8>,
    org_key: Vec<u8>,
    expires_at: i64,
    version: i64,
    sealed: Vec<u8>,
}

impl RawSession {
    fn check(self) -> Result<StoredSession, StoreError> {
        let id: [u8; 16] = key16(self.id)?;
        Ok(StoredSession {
            id: SessionId::from_uuid(uuid::Uuid::from_bytes(id)),
            user_key: key16(self.user_key)?,
            org_key: key16(self.org_key)?,
            expires_at: u64::try_from(self.expires_at).unwrap_or(0),
            version: u64::try_from(self.version).unwrap_or(0),
            sealed: self.sealed,
        })
    }
}

const SELECT: &str = "SELECT id, user_key, org_key, expires_at, version, sealed FROM sessions";

/// The most writes one commit carries.
pub const MAX_GROUP: usize = 256;

/// Answers a write's caller once its group's commit is known: `Ok` if it
/// committed, or why it did not.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One write: run in a savepoint of the group's transaction, or, given
/// none (the transaction could not begin), failed at once.
type Job = Box<dyn for<'a, 'b> FnOnce(Option<&'a mut rusqlite::Transaction<'b>>) -> Reply + Send>;

/// The writer thread's end of the queue.
struct Writer {
    queue: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    /// Closes the queue and waits for the thread to finish what it holds
    /// and close the connection (which checkpoints the log).
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn writer_thread(mut conn: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => {
                let shown = format!("the SQLite store could not begin a write: {e}");
                for job in group {
                    job(None)(Err(shown.clone()));
                }
                continue;
            }
        };
        let replies: Vec<Reply> = group.into_iter().map(|job| job(Some(&mut tx))).collect();
        let committed = tx
            .commit()
            .map_err(|e| format!("the SQLite store could not commit: {e}"));
        for reply in replies {
            reply(committed.clone());
        }
    }
}

struct Inner {
    path: PathBuf,
    /// Declared before the lock, so the connection closes before the lock
    /// is let go.
    writer: Writer,
    /// The data directory's lock, held while any handle lives.
    _lock: Option<std::fs::File>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Sessions and memberships in one SQLite file. A cheap `Clone` handle.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    let sync = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA trusted_schema = OFF;"
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Creates the schema on a new file, or checks the version of an existing
/// one.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_error)?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA).map_err(sql_error)?;
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(sql_error)?;
        }
        SCHEMA_VERSION => {}
        v if v > SCHEMA_VERSION => {
            return Err(StoreError::new(format!(
                "the database file has schema version {v}, newer than this Tessera knows \
                 ({SCHEMA_VERSION}); upgrade Tessera"
            )));
        }
        v => {
            return Err(StoreError::new(format!(
                "the database file has an unknown schema version {v}"
            )));
        }
    }
    tx.commit().map_err(sql_error)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with the
    /// default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database file at `path`. The file is
    /// created readable by its owner only. Fails if the file is not a
    /// SQLite database, or is one made by a newer Tessera.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::open_locked(path.as_ref().to_path_buf(), options, None)
    }

    fn open_locked(
        path: PathBuf,
        options: SqliteOptions,
        lock: Option<std::fs::File>,
    ) -> Result<Self, StoreError> {
        create_private(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = Connection::open_with_flags(&path, flags).map_err(sql_error)?;
        writer
            .busy_timeout(options.busy_timeout)
            .map_err(sql_error)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                "the SQLite database could not be switched to WAL mode",
            ));
        }
        configure(&writer, &options).map_err(sql_error)?;
        migrate(&mut writer)?;
        let readers = (0..options.readers.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn, &options)?;
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: {
                    let (queue, jobs) = std::sync::mpsc::channel();
                    let thread = std::thread::Builder::new()
                        .name("tessera-sqlite-writer".to_owned())
                        .spawn(move || writer_thread(writer, jobs))
                        .map_err(|e| {
                            StoreError::with_source("could not start the SQLite writer", e)
                        })?;
                    Writer {
                        queue: Some(queue),
                        thread: Some(thread),
                    }
                },
                _lock: lock,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a read connection on the calling thread: for point reads
    /// that take microseconds. A free connection is taken if there is one.
    fn read_here<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let readers = &self.inner.readers;
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..readers.len() {
            if let Some(conn) = readers[(start + i) % readers.len()].try_lock() {
                return f(&conn);
            }
        }
        f(&readers[start % readers.len()].lock())
    }

    /// Runs `f` on a read connection in the blocking pool: for reads that
    /// scan.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_here(f))
            .await
            .map_err(join_error)?
    }

    /// Runs `f` as one write of the writer's next group (see the module
    /// docs): in a savepoint, rolled back alone if it fails, and answered
    /// only once the group has committed.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |tx: Option<&mut rusqlite::Transaction<'_>>| {
            let outcome = tx.map(|tx| match tx.savepoint() {
                Ok(mut sp) => {
                    let out = f(&sp);
                    if out.is_err() {
                        let _ = sp.rollback();
                    }
                    out.and_then(|v| sp.commit().map(|()| v).map_err(sql_error))
                }
                Err(e) => Err(sql_error(e)),
            });
            Box::new(move |committed: Result<(), String>| {
                let result = match (outcome, committed) {
                    (Some(Err(e)), _) => Err(e),
                    (Some(Ok(v)), Ok(())) => Ok(v),
                    (_, Err(why)) => Err(StoreError::new(why)),
                    (None, Ok(())) => Err(StoreError::new("the SQLite write did not run")),
                };
                let _ = answer.send(result);
            })
        });
        self.inner
            .writer
            .queue
            .as_ref()
            .ok_or_else(|| StoreError::new("the SQLite writer has stopped"))?
            .send(job)
            .map_err(|_| StoreError::new("the SQLite writer has stopped"))?;
        answered
            .await
            .map_err(|_| StoreError::new("the SQLite writer stopped before answering"))?
    }
}

/// A service's data directory: the database file [`DataDir::DATABASE`] and
/// the lock file [`DataDir::LOCK`], locked for as long as the store opened
/// from it lives.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    lock: std::fs::File,
}

impl DataDir {
    /// The database file's name in the directory.
    pub const DATABASE: &'static str = "sessions.db";
    /// The lock file's name in the directory.
    pub const LOCK: &'static str = "tessera.lock";

    /// Creates the directory if needed (readable by its owner only), checks
    /// that it can be written, and takes its lock. Every error names the
    /// path; a directory another process has locked is refused.
    pub fn lock(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&path).map_err(|e| {
            StoreError::with_source(format!("the data directory {shown} cannot be created"), e)
        })?;
        let lock_path = path.join(Self::LOCK);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options.open(&lock_path).map_err(|e| {
            StoreError::with_source(format!("the data directory {shown} cannot be written"), e)
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::new(format!(
                    "the data directory {shown} is in use by another tessera serve (it holds \
                     {}); stop that one or give this one another TESSERA_DATA_DIR",
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::with_source(
                    format!("the data directory {shown} cannot be locked"),
                    e,
                ));
            }
        }
        // The directory may hold a database from before; a probe write
        // tells a read-only directory apart before SQLite fails obscurely.
        let probe = path.join(".tessera-write-probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                StoreError::with_source(format!("the data directory {shown} cannot be written"), e)
            })?;
        Ok(Self { path, lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file in the directory at `dir`.
    pub fn database_in(dir: &Path) -> PathBuf {
        dir.join(Self::DATABASE)
    }

    /// Opens the directory's database; the store keeps the lock.
    pub fn open_store(self, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_locked(Self::database_in(&self.path), options, Some(self.lock))
    }
}

/// Creates `path` empty and readable by its owner only if it does not exist
/// (SQLite then creates its `-wal` and `-shm` files with the same mode).
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::with_source(
            "the SQLite database file cannot be created",
            e,
        )),
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        self.write(move |tx| {
            // Replaces an expired row with the same id; a live one wins.
            let n = tx
                .prepare_cached(
                    "INSERT INTO sessions (id, user_key, org_key, expires_at, version, sealed)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key,
                        org_key = excluded.org_key, expires_at = excluded.expires_at,
                        version = 1, sealed = excluded.sealed
                     WHERE sessions.expires_at <= ?6",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        s.id.as_bytes(),
                        s.user_key,
                        s.org_key,
                        int(s.expires_at),
                        s.sealed,
                        int(now)
                    ])
                })
                .map_err(sql_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        let found = self.read_here(|conn| {
            conn.prepare_cached(
                "SELECT id, user_key, org_key, expires_at, version, sealed FROM sessions
                 WHERE id = ?1 AND expires_at > ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![id.as_bytes(), int(now)], row_session)
                    .optional()
            })
            .map_err(sql_error)
        })?;
        found.map(RawSession::check).transpose()
    }

    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let id = *id;
        self.write(move |tx| {
            let swapped: Option<i64> = tx
                .prepare_cached(
                    "UPDATE sessions SET sealed = ?1, expires_at = ?2, version = version + 1
                     WHERE id = ?3 AND version = ?4 AND expires_at > ?5
                     RETURNING version",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![
                            sealed,
                            int(expires_at),
                            id.as_bytes(),
                            int(expected_version),
                            int(now)
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(sql_error)?;
            if let Some(v) = swapped {
                return Ok(CasOutcome::Swapped {
                    version: u64::try_from(v).unwrap_or(0),
                });
            }
            let live = tx
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1 AND expires_at > ?2")
                .and_then(|mut st| st.exists(params![id.as_bytes(), int(now)]))
                .map_err(sql_error)?;
            Ok(if live {
                CasOutcome::Conflict
            } else {
                CasOutcome::Missing
            })
        })
        .await
    }

    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        let now = tessera_now();
        self.write(move |tx| {
            let expires: Option<i64> = tx
                .prepare_cached("DELETE FROM sessions WHERE id = ?1 RETURNING expires_at")
                .and_then(|mut st| st.query_row([id.as_bytes()], |r| r.get(0)).optional())
                .map_err(sql_error)?;
            Ok(expires.is_some_and(|e| e > int(now)))
        })
        .await
    }

    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let user_key = *user_key;
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!("{SELECT} WHERE user_key = ?1 AND expires_at > ?2"))
                .and_then(|mut st| {
                    st.query_map(params![user_key, int(now)], row_session)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(sql_error)?;
            rows.into_iter().map(RawSession::check).collect()
        })
        .await
    }

    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        let user_key = *user_key;
        self.write(move |tx| {
            let expiries = tx
                .prepare_cached("DELETE FROM sessions WHERE user_key = ?1 RETURNING expires_at")
                .and_then(|mut st| {
                    st.query_map([user_key], |r| r.get::<_, i64>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(sql_error)?;
            Ok(expiries.into_iter().filter(|e| *e > int(now)).count() as u64)
        })
        .await
    }

    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        let after = match cursor {
            Some(c) => Some(
                SessionId::parse(c)
                    .map_err(|_| bad_cursor())?
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        if limit == 0 {
            return Ok(Page::default());
        }
        let org = org_key.copied();
        // One more than asked: a full last page then has no cursor.
        let take = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let after = after.unwrap_or_default();
        let rows = self
            .read(move |conn| {
                let mut rows = match org {
                    Some(org) => conn
                        .prepare_cached(&format!(
                            "{SELECT} WHERE org_key = ?1 AND id > ?2 AND expires_at > ?3
                             ORDER BY id LIMIT ?4"
                        ))
                        .and_then(|mut st| {
                            st.query_map(params![org, after, int(now), take], row_session)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                    None => conn
                        .prepare_cached(&format!(
                            "{SELECT} WHERE id > ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3"
                        ))
                        .and_then(|mut st| {
                            st.query_map(params![after, int(now), take], row_session)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                }
                .map_err(sql_error)?;
                let more = rows.len() > limit;
                rows.truncate(limit);
                Ok((rows, more))
            })
            .await?;
        let (rows, more) = rows;
        let sessions = rows
            .into_iter()
            .map(RawSession::check)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if more {
            sessions.last().map(|s| s.id.to_string())
        } else {
            None
        };
        Ok(Page {
            sessions,
            next_cursor,
        })
    }

    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |tx| {
            // The expiry index makes this proportional to what it removes.
            let n = tx
                .prepare_cached(
                    "DELETE FROM sessions WHERE id IN (
                        SELECT id FROM sessions WHERE expires_at <= ?1
                        ORDER BY expires_at LIMIT ?2)",
                )
                .and_then(|mut st| st.execute(params![int(now), limit]))
                .map_err(sql_error)?;
            Ok(n as u64)
        })
        .await
    }

    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        self.read(move |conn| {
            // Stored rows per org (kept by triggers), less the expired rows
            // not purged yet: proportional to that backlog.
            let stored = conn
                .prepare_cached("SELECT org_key, n FROM org_counts")
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(sql_error)?;
            let expired = conn
                .prepare_cached(
                    "SELECT org_key, COUNT(*) FROM sessions WHERE expires_at <= ?1
                     GROUP BY org_key",
                )
                .and_then(|mut st| {
                    st.query_map([int(now)], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                    })?
                    .collect::<rusqlite::Result<std::collections::HashMap<_, _>>>()
                })
                .map_err(sql_error)?;
            let mut total = 0u64;
            let mut by_org = Vec::with_capacity(stored.len());
            for (org, n) in stored {
                let live = n - expired.get(&org).copied().unwrap_or(0);
                if live > 0 {
                    let live = live as u64;
                    total += live;
                    by_org.push((key16(org)?, live));
                }
            }
            Ok(SessionCounts { total, by_org })
        })
        .await
    }

    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        let key = *key;
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO memberships (key, sealed) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET sealed = excluded.sealed",
            )
            .and_then(|mut st| st.execute(params![key, sealed]))
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_here(|conn| {
            conn.prepare_cached("SELECT sealed FROM memberships WHERE key = ?1")
                .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
                .map_err(sql_error)
        })
    }

    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        let key = *key;
        self.write(move |tx| {
            let n = tx
                .prepare_cached("DELETE FROM memberships WHERE key = ?1")
                .and_then(|mut st| st.execute([key]))
                .map_err(sql_error)?;
            Ok(n == 1)
        })
        .await
    }

    async fn restore(&self, s: StoredSession, now: u64) -> Result<RestoreOutcome, StoreError> {
        let mut outcomes = self.restore_batch(vec![s], now).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::new("the SQLite restore did not answer"))
    }

    /// One write of the writer's group: every session of the batch in one
    /// savepoint, so a batch costs one commit, not one per session.
    async fn restore_batch(
        &self,
        sessions: Vec<StoredSession>,
        now: u64,
    ) -> Result<Vec<RestoreOutcome>, StoreError> {
        if sessions.iter().all(|s| s.expires_at <= now) {
            return Ok(vec![RestoreOutcome::Expired; sessions.len()]);
        }
        self.write(move |tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO sessions (id, user_key, org_key, expires_at, version, sealed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key,
                        org_key = excluded.org_key, expires_at = excluded.expires_at,
                        version = excluded.version, sealed = excluded.sealed
                     WHERE sessions.version < excluded.version OR sessions.expires_at <= ?7",
                )
                .map_err(sql_error)?;
            sessions
                .into_iter()
                .map(|s| {
                    if s.expires_at <= now {
                        return Ok(RestoreOutcome::Expired);
                    }
                    let n = st
                        .execute(params![
                            s.id.as_bytes(),
                            s.user_key,
                            s.org_key,
                            int(s.expires_at),
                            int(s.version),
                            s.sealed,
                            int(now)
                        ])
                        .map_err(sql_error)?;
                    Ok(if n == 1 {
                        RestoreOutcome::Written
                    } else {
                        RestoreOutcome::Kept
                    })
                })
                .collect()
        })
        .await
    }

    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError> {
        let after = match cursor {
            Some(c) => parse_key_cursor(c)?.to_vec(),
            None => Vec::new(),
        };
        if limit == 0 {
            return Ok(MembershipPage::default());
        }
        let take = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let (rows, more) = self
            .read(move |conn| {
                let mut rows = conn
                    .prepare_cached(
                        "SELECT key, sealed FROM memberships WHERE key > ?1 ORDER BY key LIMIT ?2",
                    )
                    .and_then(|mut st| {
                        st.query_map(params![after, take], |r| {
                            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(sql_error)?;
                let more = rows.len() > limit;
                rows.truncate(limit);
                Ok((rows, more))
            })
            .await?;
        let memberships = rows
            .into_iter()
            .map(|(k, v)| Ok((key16(k)?, v)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next_cursor = if more {
            memberships.last().map(|(k, _)| key_cursor(k))
        } else {
            None
        };
        Ok(MembershipPage {
            memberships,
            next_cursor,
        })
    }

    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let mut written = self.restore_memberships(vec![(*key, sealed)]).await?;
        written
            .pop()
            .ok_or_else(|| StoreError::new("the SQLite restore did not answer"))
    }

    /// One write of the writer's group for the whole batch, as
    /// [`restore_batch`](SessionStore::restore_batch).
    async fn restore_memberships(
        &self,
        memberships: Vec<(IndexKey, Vec<u8>)>,
    ) -> Result<Vec<bool>, StoreError> {
        if memberships.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO memberships (key, sealed) VALUES (?1, ?2)")
                .map_err(sql_error)?;
            memberships
                .into_iter()
                .map(|(key, sealed)| {
                    st.execute(params![key, sealed])
                        .map(|n| n == 1)
                        .map_err(sql_error)
                })
                .collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read_here(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(sql_error)
        })
    }
}

/// `remove` has no `now` in the contract; "live" is judged by the wall
/// clock, as the other stores' TTLs do.
fn tessera_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
