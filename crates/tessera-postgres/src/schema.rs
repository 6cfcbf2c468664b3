//! The tables, every statement the store sends, and the migrations that
//! create the tables.
//!
//! Statements are built once per store, with the schema (a checked plain
//! identifier) written into the table names, and prepared once per pooled
//! connection (`prepare_cached`), so a call sends only Bind and Execute.
//!
//! Migrations are numbered. A store applies the ones the database lacks at
//! start, all in one transaction that first takes a transaction-scoped
//! advisory lock, so several nodes starting at once apply each migration
//! exactly once and none sees a half-made schema. A database whose version
//! is newer than this code knows is refused rather than written to.

use deadpool_postgres::Pool;
use tessera::StoreError;

/// One schema change, applied in order; never edited once released (add a
/// new one instead).
struct Migration {
    version: i32,
    description: &'static str,
    /// SQL with `{s}` where the schema prefix (`"name".` or nothing) goes.
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "sessions, memberships and rate limits",
    sql: r#"
CREATE TABLE {s}tessera_sessions (
    id uuid PRIMARY KEY,
    user_key bytea NOT NULL CHECK (octet_length(user_key) = 16),
    org_key bytea NOT NULL CHECK (octet_length(org_key) = 16),
    expires_at bigint NOT NULL,
    version bigint NOT NULL,
    sealed bytea NOT NULL
);
-- Sealed records are ciphertext: compressing them only costs time.
ALTER TABLE {s}tessera_sessions ALTER COLUMN sealed SET STORAGE EXTERNAL;
CREATE INDEX tessera_sessions_expires_at ON {s}tessera_sessions (expires_at);
CREATE INDEX tessera_sessions_user_key ON {s}tessera_sessions (user_key);
CREATE INDEX tessera_sessions_org_key_id ON {s}tessera_sessions (org_key, id);
CREATE TABLE {s}tessera_memberships (
    key bytea PRIMARY KEY CHECK (octet_length(key) = 16),
    sealed bytea NOT NULL
);
ALTER TABLE {s}tessera_memberships ALTER COLUMN sealed SET STORAGE EXTERNAL;
CREATE TABLE {s}tessera_rate_limits (
    key bytea PRIMARY KEY,
    tat_us bigint NOT NULL
);
CREATE INDEX tessera_rate_limits_tat_us ON {s}tessera_rate_limits (tat_us);
"#,
}];

/// The schema version this code writes and reads.
pub(crate) const LATEST: i32 = 1;

/// Every statement, with the table names qualified.
pub(crate) struct Sql {
    pub(crate) insert: String,
    /// `get` for many ids at once: `$1 uuid[]`, `$2` the oldest `now`.
    pub(crate) get_many: String,
    pub(crate) cas: String,
    pub(crate) remove: String,
    pub(crate) user_sessions: String,
    pub(crate) remove_user: String,
    pub(crate) list_first: String,
    pub(crate) list_after: String,
    pub(crate) list_org_first: String,
    pub(crate) list_org_after: String,
    pub(crate) purge: String,
    pub(crate) count: String,
    pub(crate) put_membership: String,
    pub(crate) get_membership: String,
    pub(crate) remove_membership: String,
    pub(crate) restore: String,
    /// `restore` for a batch of distinct ids, as arrays (`$1 uuid[]` to
    /// `$6 bytea[]` in column order, `$7` now, `$8` the deadline); returns
    /// the ids written (or null) and whether it was in time.
    pub(crate) restore_many: String,
    pub(crate) list_memberships_first: String,
    pub(crate) list_memberships_after: String,
    pub(crate) restore_membership: String,
    /// `restore_membership` for a batch (`$1` keys, `$2` records, as
    /// arrays, `$3` the deadline); returns the keys written (or null) and
    /// whether it was in time.
    pub(crate) restore_memberships: String,
    pub(crate) rate_limit: String,
    migrations_table: String,
    prefix: String,
    lock_key: i64,
}

const COLUMNS: &str = "id, user_key, org_key, expires_at, version, sealed";

/// Whether the write's deadline (`$n`, Unix seconds as `float8`) has not
/// passed by the server's clock. Every write statement carries it in the
/// condition that decides what it writes, and returns it too, so a write
/// that reached the database too late (queued behind a stopped server, a
/// lock, a full pool) writes nothing and says so, rather than taking
/// effect after its caller gave up (the store contract's "no late
/// writes"). `clock_timestamp()` is the time now, not at the start of the
/// statement.
fn in_time(n: u8) -> String {
    format!("clock_timestamp() <= to_timestamp(${n}::float8)")
}

impl Sql {
    pub(crate) fn new(schema: Option<&str>) -> Self {
        let prefix = schema.map(|s| format!("\"{s}\".")).unwrap_or_default();
        let sessions = format!("{prefix}tessera_sessions");
        let memberships = format!("{prefix}tessera_memberships");
        let limits = format!("{prefix}tessera_rate_limits");
        let list = |filter: &str| {
            format!(
                "SELECT {COLUMNS} FROM {sessions} WHERE {filter} expires_at > $1 ORDER BY id LIMIT $2"
            )
        };
        Self {
            // A live id is kept; an expired one is replaced, at version 1.
            // Then whether it was written, and whether it was in time.
            insert: format!(
                "WITH w AS (INSERT INTO {sessions} AS s ({COLUMNS}) \
                 SELECT $1::uuid, $2::bytea, $3::bytea, $4::bigint, 1, $5::bytea WHERE {t7} \
                 ON CONFLICT (id) DO UPDATE SET user_key = EXCLUDED.user_key, \
                 org_key = EXCLUDED.org_key, expires_at = EXCLUDED.expires_at, version = 1, \
                 sealed = EXCLUDED.sealed WHERE s.expires_at <= $6 AND {t7} RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM w), {t7}",
                t7 = in_time(7)
            ),
            get_many: format!(
                "SELECT {COLUMNS} FROM {sessions} WHERE id = ANY($1) AND expires_at > $2"
            ),
            // One round trip: the update, and the row as the statement's
            // snapshot saw it, which tells Conflict from Missing when the
            // update matched nothing.
            cas: format!(
                "WITH swapped AS (UPDATE {sessions} SET sealed = $3, expires_at = $4, \
                 version = version + 1 WHERE id = $1 AND version = $2 AND expires_at > $5 \
                 AND {t6} RETURNING version) \
                 SELECT (SELECT version FROM swapped), \
                 EXISTS (SELECT 1 FROM {sessions} WHERE id = $1 AND expires_at > $5), {t6}",
                t6 = in_time(6)
            ),
            remove: format!(
                "WITH d AS (DELETE FROM {sessions} WHERE id = $1 AND {t2} RETURNING 1) \
                 SELECT (SELECT count(*) FROM d), {t2}",
                t2 = in_time(2)
            ),
            user_sessions: format!(
                "SELECT {COLUMNS} FROM {sessions} WHERE user_key = $1 AND expires_at > $2"
            ),
            remove_user: format!(
                "WITH removed AS (DELETE FROM {sessions} WHERE user_key = $1 AND {t3} \
                 RETURNING expires_at) \
                 SELECT (SELECT count(*) FILTER (WHERE expires_at > $2) FROM removed), \
                 (SELECT count(*) FROM removed), {t3}",
                t3 = in_time(3)
            ),
            list_first: list(""),
            list_after: list("id > $3 AND"),
            list_org_first: list("org_key = $3 AND"),
            list_org_after: list("org_key = $3 AND id > $4 AND"),
            // Through the expiry index, oldest first, so the cost follows
            // what expired; SKIP LOCKED lets purges on several nodes share
            // the work instead of queueing. Lapsed rate-limit state (a
            // lapsed key decides like a missing one) goes in the same trip.
            purge: format!(
                "WITH expired AS (DELETE FROM {sessions} WHERE expires_at <= $1 AND {t4} \
                 AND id IN (SELECT id FROM {sessions} WHERE expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1), \
                 lapsed AS (DELETE FROM {limits} WHERE tat_us <= $3 AND {t4} AND key IN \
                 (SELECT key FROM {limits} WHERE tat_us <= $3 ORDER BY tat_us \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) \
                 SELECT (SELECT count(*) FROM expired), (SELECT count(*) FROM lapsed), {t4}",
                t4 = in_time(4)
            ),
            count: format!(
                "SELECT org_key, count(*) FROM {sessions} WHERE expires_at > $1 GROUP BY org_key"
            ),
            // Writes unless it is too late: nothing written means late.
            put_membership: format!(
                "INSERT INTO {memberships} (key, sealed) SELECT $1::bytea, $2::bytea \
                 WHERE {t3} ON CONFLICT (key) DO UPDATE SET sealed = EXCLUDED.sealed",
                t3 = in_time(3)
            ),
            get_membership: format!("SELECT sealed FROM {memberships} WHERE key = $1"),
            remove_membership: format!(
                "WITH d AS (DELETE FROM {memberships} WHERE key = $1 AND {t2} RETURNING 1) \
                 SELECT (SELECT count(*) FROM d), {t2}",
                t2 = in_time(2)
            ),
            // Written over a missing, expired or older session; a live one
            // of the same or a higher version is kept. One statement, so
            // concurrent restores serialize on the row.
            restore: format!(
                "WITH w AS (INSERT INTO {sessions} AS s ({COLUMNS}) \
                 SELECT $1::uuid, $2::bytea, $3::bytea, $4::bigint, $5::bigint, $6::bytea \
                 WHERE {t8} \
                 ON CONFLICT (id) DO UPDATE SET user_key = EXCLUDED.user_key, \
                 org_key = EXCLUDED.org_key, expires_at = EXCLUDED.expires_at, \
                 version = EXCLUDED.version, sealed = EXCLUDED.sealed \
                 WHERE (s.version < EXCLUDED.version OR s.expires_at <= $7) AND {t8} \
                 RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM w), {t8}",
                t8 = in_time(8)
            ),
            // The same for many sessions in one statement, answering the
            // ids written and whether the statement ended in time. A row
            // can be affected once per statement, so the ids must be
            // distinct.
            restore_many: format!(
                "WITH w AS (INSERT INTO {sessions} AS s ({COLUMNS}) \
                 SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bigint[], \
                 $5::bigint[], $6::bytea[]) WHERE {t8} \
                 ON CONFLICT (id) DO UPDATE SET user_key = EXCLUDED.user_key, \
                 org_key = EXCLUDED.org_key, expires_at = EXCLUDED.expires_at, \
                 version = EXCLUDED.version, sealed = EXCLUDED.sealed \
                 WHERE (s.version < EXCLUDED.version OR s.expires_at <= $7) AND {t8} \
                 RETURNING id) \
                 SELECT (SELECT array_agg(id) FROM w), {t8}",
                t8 = in_time(8)
            ),
            list_memberships_first: format!(
                "SELECT key, sealed FROM {memberships} ORDER BY key LIMIT $1"
            ),
            list_memberships_after: format!(
                "SELECT key, sealed FROM {memberships} WHERE key > $2 ORDER BY key LIMIT $1"
            ),
            restore_membership: format!(
                "WITH w AS (INSERT INTO {memberships} (key, sealed) \
                 SELECT $1::bytea, $2::bytea WHERE {t3} \
                 ON CONFLICT (key) DO NOTHING RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM w), {t3}",
                t3 = in_time(3)
            ),
            // A key named twice in the batch is written the first time and
            // conflicts with itself the second.
            restore_memberships: format!(
                "WITH w AS (INSERT INTO {memberships} (key, sealed) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[]) WHERE {t3} \
                 ON CONFLICT (key) DO NOTHING RETURNING key) \
                 SELECT (SELECT array_agg(key) FROM w), {t3}",
                t3 = in_time(3)
            ),
            // GCRA in one statement ($2 now, $3 interval, $4 tolerance, all
            // in microseconds). A new key is always allowed; a known one is
            // moved on only when allowed (the row is locked either way, so
            // concurrent checks of one key serialize). When nothing was
            // written the request was refused, and the arrival time as the
            // statement's snapshot saw it gives the wait.
            rate_limit: format!(
                "WITH decided AS (INSERT INTO {limits} AS l (key, tat_us) \
                 VALUES ($1, $2::bigint + $3::bigint) \
                 ON CONFLICT (key) DO UPDATE SET tat_us = GREATEST(l.tat_us, $2) + $3 \
                 WHERE GREATEST(l.tat_us, $2) - $4::bigint <= $2 RETURNING tat_us) \
                 SELECT EXISTS (SELECT 1 FROM decided), \
                 (SELECT tat_us FROM {limits} WHERE key = $1)"
            ),
            migrations_table: format!("{prefix}tessera_migrations"),
            lock_key: lock_key(schema.unwrap_or("")),
            prefix,
        }
    }
}

/// The advisory lock of a schema's migrations: FNV-1a of a Tessera tag and
/// the schema name, so migrations of different schemas do not wait for
/// each other and nothing else is likely to use the same number.
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "tessera-postgres migrations:".bytes().chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn migration_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::with_source("the PostgreSQL schema migration failed", e)
}

/// Brings the schema to [`LATEST`], or refuses a newer one. One transaction
/// under the schema's advisory lock: either every missing migration is
/// applied and recorded, or none is.
pub(crate) async fn migrate(
    pool: &Pool,
    sql: &Sql,
    schema: Option<&str>,
    timeout: std::time::Duration,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(crate::store::pool_error)?;
    let tx = client.transaction().await.map_err(migration_error)?;
    // Connections carry the store's statement timeout; a migration may wait
    // for another node's migration longer than that.
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis()
    ))
    .await
    .map_err(migration_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&sql.lock_key])
        .await
        .map_err(migration_error)?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(migration_error)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, description text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())",
        sql.migrations_table
    ))
    .await
    .map_err(migration_error)?;
    let current: i32 = tx
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {}",
                sql.migrations_table
            ),
            &[],
        )
        .await
        .map_err(migration_error)?
        .try_get(0)
        .map_err(migration_error)?;
    if current > LATEST {
        return Err(StoreError::new(format!(
            "the database schema is version {current}, newer than this Tessera knows ({LATEST}); \
             upgrade Tessera"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(&m.sql.replace("{s}", &sql.prefix))
            .await
            .map_err(migration_error)?;
        tx.execute(
            &format!(
                "INSERT INTO {} (version, description) VALUES ($1, $2)",
                sql.migrations_table
            ),
            &[&m.version, &m.description],
        )
        .await
        .map_err(migration_error)?;
    }
    tx.commit().await.map_err(migration_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    }

    #[test]
    fn each_schema_has_its_own_lock_and_qualified_tables() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("a"), lock_key("a"));
        let sql = Sql::new(Some("t1"));
        assert!(sql.get_many.contains("\"t1\".tessera_sessions"));
        assert!(Sql::new(None).get_many.contains(" tessera_sessions "));
    }
}
