//! [`PostgresStore`]: the [`SessionStore`] contract over PostgreSQL. The
//! tables, statements and migrations are in `schema.rs`; what each call
//! sends is listed in the crate docs.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tessera::StoreError;
use tessera::ids::SessionId;
use tessera::store::{
    CasOutcome, IndexKey, MembershipPage, Page, RestoreOutcome, SessionCounts, SessionStore,
    StoredSession, key_cursor, parse_key_cursor, runs_of_distinct,
};
use tokio::sync::OnceCell;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::batch::Reads;
use crate::config::{PostgresOptions, check_schema, parse_url};
use crate::limit::PostgresRateLimiter;
use crate::schema::{LATEST, Sql, migrate};

/// Reader tasks that coalesce concurrent `get`s (see `batch.rs`): each
/// holds at most one pooled connection at a time.
const READERS: usize = 4;

/// The least time a migration is given, however short the statement
/// timeout: at start a node may wait for another node's migration.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than the statement timeout a write waits for its
/// answer. Each write carries a deadline, the statement timeout after the
/// call began, that PostgreSQL checks on its own clock (`clock_timestamp()`)
/// before it writes; this margin covers the answer of a write made just in
/// time on its way back, and clock skew between the hosts up to about as
/// much, so a write reported as failed is one the database did not make.
pub const WRITE_MARGIN: Duration = Duration::from_millis(300);

pub(crate) fn pool_error(e: PoolError) -> StoreError {
    StoreError::with_source("could not get a PostgreSQL connection", e)
}

fn query_error(e: tokio_postgres::Error) -> StoreError {
    StoreError::with_source("a PostgreSQL statement failed", e)
}

fn too_late() -> StoreError {
    StoreError::new("PostgreSQL reached the write after its deadline; nothing was written")
}

/// Reads a statement's "was it in time" column.
fn in_time(row: &Row, i: usize) -> Result<bool, StoreError> {
    row.try_get(i).map_err(|_| malformed())
}

/// A removal's answer, `count, in time`: whether it removed anything, or
/// that it came too late to.
fn removed(row: &Row) -> Result<bool, StoreError> {
    let n: i64 = row.try_get(0).map_err(|_| malformed())?;
    if n == 0 && !in_time(row, 1)? {
        return Err(too_late());
    }
    Ok(n > 0)
}

pub(crate) fn malformed() -> StoreError {
    StoreError::new("PostgreSQL returned data the store did not write")
}

/// Seconds, versions and microseconds as PostgreSQL `bigint`: values past
/// `i64::MAX` (centuries away) are clamped.
pub(crate) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unbig(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| malformed())
}

fn key16(row: &Row, i: usize) -> Result<IndexKey, StoreError> {
    let raw: &[u8] = row.try_get(i).map_err(|_| malformed())?;
    raw.try_into().map_err(|_| malformed())
}

/// A row of `id, user_key, org_key, expires_at, version, sealed`.
pub(crate) fn session(row: &Row) -> Result<StoredSession, StoreError> {
    let id: uuid::Uuid = row.try_get(0).map_err(|_| malformed())?;
    Ok(StoredSession {
        id: SessionId::from_uuid(id),
        user_key: key16(row, 1)?,
        org_key: key16(row, 2)?,
        expires_at: unbig(row.try_get(3).map_err(|_| malformed())?)?,
        version: unbig(row.try_get(4).map_err(|_| malformed())?)?,
        sealed: row.try_get(5).map_err(|_| malformed())?,
    })
}

pub(crate) struct Inner {
    pool: Pool,
    /// Concurrent `get`s, coalesced into one query (see `batch.rs`).
    reads: Reads,
    sql: Sql,
    schema: Option<String>,
    statement_timeout: Duration,
    ssl_mode: &'static str,
    /// Set once the schema is at [`LATEST`]; until then every call tries
    /// the migration first (a lazy store whose database was down).
    migrated: OnceCell<()>,
}

impl Inner {
    pub(crate) fn sql(&self) -> &Sql {
        &self.sql
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                let bound = self.statement_timeout.max(MIGRATION_TIMEOUT);
                tokio::time::timeout(
                    bound,
                    migrate(&self.pool, &self.sql, self.schema.as_deref(), bound),
                )
                .await
                .map_err(|_| StoreError::new("the PostgreSQL schema migration timed out"))?
            })
            .await
            .map(|_| ())
    }

    /// Runs one store call, after the migration if it has not run yet,
    /// bounded by the statement timeout (waiting for a connection and
    /// opening one included).
    pub(crate) async fn call<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.ready().await?;
        tokio::time::timeout(self.statement_timeout, f)
            .await
            .map_err(|_| {
                StoreError::new("PostgreSQL did not answer within the statement timeout")
            })?
    }

    /// Runs one write, like [`call`](Self::call), handing `f` its deadline
    /// (Unix seconds, for [`crate::schema`]'s `in_time`): the statement
    /// timeout from now. It waits [`WRITE_MARGIN`] past the deadline for
    /// the answer, so it never reports as failed a write the database may
    /// still make.
    async fn write<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(f64) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.ready().await?;
        let deadline = (SystemTime::now() + self.statement_timeout)
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        tokio::time::timeout(self.statement_timeout + WRITE_MARGIN, f(deadline))
            .await
            .map_err(|_| {
                StoreError::new("PostgreSQL did not answer within the statement timeout")
            })?
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `sql` (prepared once per connection) and returns its rows.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(query_error)?;
        client.query(&statement, params).await.map_err(query_error)
    }

    /// Like [`query`](Self::query), for statements that return no rows:
    /// how many rows they changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(query_error)?;
        client
            .execute(&statement, params)
            .await
            .map_err(query_error)
    }

    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        self.query(sql, params)
            .await?
            .into_iter()
            .next()
            .ok_or_else(malformed)
    }
}

/// Sessions and memberships in PostgreSQL. Cheap to clone; clones share
/// the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .field("sslmode", &self.inner.ssl_mode)
            .field("pool_size", &status.max_size)
            .field("connections", &status.size)
            .field("migrated", &self.inner.migrated.initialized())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// with `?sslmode=` `disable`, `prefer` (the default), `require` or
    /// `verify-full`; see the crate docs) and brings the schema up to date.
    /// Unless [`PostgresOptions::lazy`], fails if PostgreSQL does not answer
    /// or the migration fails, including when the database's schema is newer
    /// than this code. Errors never quote the URL.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if let Some(schema) = &options.schema {
            check_schema(schema)?;
        }
        if options.pool_size == 0 {
            return Err(StoreError::new(
                "the PostgreSQL pool size must be at least 1",
            ));
        }
        let mut target = parse_url(url)?;
        target.apply(&options);
        let tls = target.tls(options.tls_root_cert.as_deref())?;
        let ssl_mode = target.ssl_mode();
        let manager = Manager::from_config(
            target.config,
            tls,
            ManagerConfig {
                // A closed connection is dropped when returned; a query on
                // one that died unnoticed fails once, and the pool replaces
                // it. Checking with a query on every checkout would add a
                // round trip to every call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.statement_timeout))
            .create_timeout(Some(options.statement_timeout))
            .recycle_timeout(Some(options.statement_timeout))
            .build()
            .map_err(|e| StoreError::with_source("could not set up the PostgreSQL pool", e))?;
        let sql = Sql::new(options.schema.as_deref());
        let store = Self {
            inner: Arc::new(Inner {
                reads: Reads::start(pool.clone(), sql.get_many.clone(), READERS),
                sql,
                pool,
                schema: options.schema,
                statement_timeout: options.statement_timeout,
                ssl_mode,
                migrated: OnceCell::new(),
            }),
        };
        if !options.lazy {
            store.inner.ready().await?;
        }
        Ok(store)
    }

    /// The schema the tables are in, if one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// The schema version this code creates and reads (the highest
    /// migration it knows).
    pub fn schema_version() -> i32 {
        LATEST
    }

    /// A rate limiter sharing this store's pool and schema, so limits hold
    /// across every node that uses the same database.
    pub fn rate_limiter(&self) -> PostgresRateLimiter {
        PostgresRateLimiter::new(self.inner.clone())
    }

    fn page_after(rows: Vec<Row>, limit: usize) -> Result<Page, StoreError> {
        let sessions = rows.iter().map(session).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if sessions.len() == limit {
            sessions.last().map(|s| key_cursor(s.id.as_bytes()))
        } else {
            None
        };
        Ok(Page {
            sessions,
            next_cursor,
        })
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    /// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`.
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(
                    &i.sql.insert,
                    &[
                        s.id.as_uuid(),
                        &s.user_key.as_slice(),
                        &s.org_key.as_slice(),
                        &big(s.expires_at),
                        &s.sealed,
                        &big(now),
                        &deadline,
                    ],
                )
                .await?;
            let inserted: bool = row.try_get(0).map_err(|_| malformed())?;
            if !inserted && !in_time(&row, 1)? {
                return Err(too_late());
            }
            Ok(inserted)
        })
        .await
    }

    /// One `SELECT` by primary key: one round trip.
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        let i = &self.inner;
        i.call(i.reads.get(*id, now)).await
    }

    /// One statement: the conditional `UPDATE ... RETURNING version`, and
    /// whether the row was live, to tell Conflict from Missing.
    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(
                    &i.sql.cas,
                    &[
                        id.as_uuid(),
                        &big(expected_version),
                        &sealed,
                        &big(expires_at),
                        &big(now),
                        &deadline,
                    ],
                )
                .await?;
            let swapped: Option<i64> = row.try_get(0).map_err(|_| malformed())?;
            let live: bool = row.try_get(1).map_err(|_| malformed())?;
            Ok(match swapped {
                Some(v) => CasOutcome::Swapped { version: unbig(v)? },
                None if !in_time(&row, 2)? => return Err(too_late()),
                None if live => CasOutcome::Conflict,
                None => CasOutcome::Missing,
            })
        })
        .await
    }

    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(&i.sql.remove, &[id.as_uuid(), &deadline])
                .await?;
            removed(&row)
        })
        .await
    }

    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let i = &self.inner;
        i.call(async {
            let rows = i
                .query(&i.sql.user_sessions, &[&user_key.as_slice(), &big(now)])
                .await?;
            rows.iter().map(session).collect()
        })
        .await
    }

    /// One `DELETE` through the user-key index: every row of the user
    /// committed when it starts is removed; a session committed after that
    /// was inserted after the removal.
    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(
                    &i.sql.remove_user,
                    &[&user_key.as_slice(), &big(now), &deadline],
                )
                .await?;
            let removed: i64 = row.try_get(1).map_err(|_| malformed())?;
            if removed == 0 && !in_time(&row, 2)? {
                return Err(too_late());
            }
            unbig(row.try_get(0).map_err(|_| malformed())?)
        })
        .await
    }

    /// Pages by id (through the primary key), or by `(org_key, id)` with an
    /// org filter; the cursor is the page's last id.
    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        let after = cursor
            .map(parse_key_cursor)
            .transpose()?
            .map(uuid::Uuid::from_bytes);
        if limit == 0 {
            return Ok(Page::default());
        }
        let i = &self.inner;
        let (now, n) = (big(now), i64::try_from(limit).unwrap_or(i64::MAX));
        let org = org_key.map(|k| k.as_slice());
        i.call(async {
            let rows = match (&org, &after) {
                (None, None) => i.query(&i.sql.list_first, &[&now, &n]).await?,
                (None, Some(a)) => i.query(&i.sql.list_after, &[&now, &n, a]).await?,
                (Some(o), None) => i.query(&i.sql.list_org_first, &[&now, &n, o]).await?,
                (Some(o), Some(a)) => i.query(&i.sql.list_org_after, &[&now, &n, o, a]).await?,
            };
            Self::page_after(rows, limit)
        })
        .await
    }

    /// One statement: the oldest `limit` expired sessions through the
    /// expiry index, and as many lapsed rate-limit rows.
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let i = &self.inner;
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        let now_us = big(now.saturating_mul(1_000_000));
        i.write(|deadline| async move {
            let row = i
                .query_one(&i.sql.purge, &[&big(now), &n, &now_us, &deadline])
                .await?;
            if !in_time(&row, 2)? {
                return Err(too_late());
            }
            unbig(row.try_get(0).map_err(|_| malformed())?)
        })
        .await
    }

    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        let i = &self.inner;
        i.call(async {
            let rows = i.query(&i.sql.count, &[&big(now)]).await?;
            let mut counts = SessionCounts::default();
            for row in &rows {
                let n = unbig(row.try_get(1).map_err(|_| malformed())?)?;
                counts.total += n;
                counts.by_org.push((key16(row, 0)?, n));
            }
            Ok(counts)
        })
        .await
    }

    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let written = i
                .execute(
                    &i.sql.put_membership,
                    &[&key.as_slice(), &sealed, &deadline],
                )
                .await?;
            if written == 0 {
                return Err(too_late());
            }
            Ok(())
        })
        .await
    }

    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        let i = &self.inner;
        i.call(async {
            let rows = i.query(&i.sql.get_membership, &[&key.as_slice()]).await?;
            rows.first()
                .map(|r| r.try_get(0).map_err(|_| malformed()))
                .transpose()
        })
        .await
    }

    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(&i.sql.remove_membership, &[&key.as_slice(), &deadline])
                .await?;
            removed(&row)
        })
        .await
    }

    /// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE older or expired`;
    /// an already expired session costs no round trip.
    async fn restore(&self, s: StoredSession, now: u64) -> Result<RestoreOutcome, StoreError> {
        if s.expires_at <= now {
            return Ok(RestoreOutcome::Expired);
        }
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(
                    &i.sql.restore,
                    &[
                        s.id.as_uuid(),
                        &s.user_key.as_slice(),
                        &s.org_key.as_slice(),
                        &big(s.expires_at),
                        &big(s.version),
                        &s.sealed,
                        &big(now),
                        &deadline,
                    ],
                )
                .await?;
            let written: bool = row.try_get(0).map_err(|_| malformed())?;
            if written {
                Ok(RestoreOutcome::Written)
            } else if in_time(&row, 1)? {
                Ok(RestoreOutcome::Kept)
            } else {
                Err(too_late())
            }
        })
        .await
    }

    /// One `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE ...
    /// WHERE older or expired` per run of distinct ids (a whole backup
    /// batch, unless it names an id twice); expired sessions are never
    /// sent.
    async fn restore_batch(
        &self,
        sessions: Vec<StoredSession>,
        now: u64,
    ) -> Result<Vec<RestoreOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(sessions.len());
        for run in runs_of_distinct(sessions, |s| s.id) {
            let live: Vec<&StoredSession> = run.iter().filter(|s| s.expires_at > now).collect();
            let written: HashSet<uuid::Uuid> = if live.is_empty() {
                HashSet::new()
            } else {
                let ids: Vec<uuid::Uuid> = live.iter().map(|s| *s.id.as_uuid()).collect();
                let users: Vec<&[u8]> = live.iter().map(|s| s.user_key.as_slice()).collect();
                let orgs: Vec<&[u8]> = live.iter().map(|s| s.org_key.as_slice()).collect();
                let expiries: Vec<i64> = live.iter().map(|s| big(s.expires_at)).collect();
                let versions: Vec<i64> = live.iter().map(|s| big(s.version)).collect();
                let sealed: Vec<&[u8]> = live.iter().map(|s| s.sealed.as_slice()).collect();
                let i = &self.inner;
                i.write(|deadline| async move {
                    let row = i
                        .query_one(
                            &i.sql.restore_many,
                            &[
                                &ids,
                                &users,
                                &orgs,
                                &expiries,
                                &versions,
                                &sealed,
                                &big(now),
                                &deadline,
                            ],
                        )
                        .await?;
                    // Late: some rows may have been written before the
                    // deadline, none after; the batch reports the failure.
                    if !in_time(&row, 1)? {
                        return Err(too_late());
                    }
                    let written: Option<Vec<uuid::Uuid>> =
                        row.try_get(0).map_err(|_| malformed())?;
                    Ok(written.unwrap_or_default().into_iter().collect())
                })
                .await?
            };
            outcomes.extend(run.iter().map(|s| {
                if s.expires_at <= now {
                    RestoreOutcome::Expired
                } else if written.contains(s.id.as_uuid()) {
                    RestoreOutcome::Written
                } else {
                    RestoreOutcome::Kept
                }
            }));
        }
        Ok(outcomes)
    }

    /// Pages by key through the primary key; the cursor is the page's last
    /// key.
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError> {
        let after = cursor.map(parse_key_cursor).transpose()?;
        if limit == 0 {
            return Ok(MembershipPage::default());
        }
        let i = &self.inner;
        let n = i64::try_from(limit).unwrap_or(i64::MAX);
        i.call(async {
            let rows = match &after {
                None => i.query(&i.sql.list_memberships_first, &[&n]).await?,
                Some(a) => {
                    i.query(&i.sql.list_memberships_after, &[&n, &a.as_slice()])
                        .await?
                }
            };
            let memberships = rows
                .iter()
                .map(|r| Ok((key16(r, 0)?, r.try_get(1).map_err(|_| malformed())?)))
                .collect::<Result<Vec<(IndexKey, Vec<u8>)>, StoreError>>()?;
            let next_cursor = if memberships.len() == limit {
                memberships.last().map(|(k, _)| key_cursor(k))
            } else {
                None
            };
            Ok(MembershipPage {
                memberships,
                next_cursor,
            })
        })
        .await
    }

    /// One `INSERT ... ON CONFLICT DO NOTHING`.
    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let i = &self.inner;
        i.write(|deadline| async move {
            let row = i
                .query_one(
                    &i.sql.restore_membership,
                    &[&key.as_slice(), &sealed, &deadline],
                )
                .await?;
            let written: bool = row.try_get(0).map_err(|_| malformed())?;
            if !written && !in_time(&row, 1)? {
                return Err(too_late());
            }
            Ok(written)
        })
        .await
    }

    /// One `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` for
    /// the whole batch.
    async fn restore_memberships(
        &self,
        memberships: Vec<(IndexKey, Vec<u8>)>,
    ) -> Result<Vec<bool>, StoreError> {
        if memberships.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = memberships.iter().map(|(k, _)| k.as_slice()).collect();
        let sealed: Vec<&[u8]> = memberships.iter().map(|(_, v)| v.as_slice()).collect();
        let i = &self.inner;
        let written: Option<Vec<Vec<u8>>> = i
            .write(|deadline| async move {
                let row = i
                    .query_one(&i.sql.restore_memberships, &[&keys, &sealed, &deadline])
                    .await?;
                if !in_time(&row, 1)? {
                    return Err(too_late());
                }
                row.try_get(0).map_err(|_| malformed())
            })
            .await?;
        let mut written = written
            .unwrap_or_default()
            .into_iter()
            .map(|k| IndexKey::try_from(k.as_slice()).map_err(|_| malformed()))
            .collect::<Result<HashSet<IndexKey>, _>>()?;
        // The first of a repeated key is the one written.
        Ok(memberships.iter().map(|(k, _)| written.remove(k)).collect())
    }

    /// `SELECT 1` on a pooled connection, after the migration: ready means
    /// the schema is in place too.
    async fn ping(&self) -> Result<(), StoreError> {
        let i = &self.inner;
        i.call(async {
            let client = i.client().await?;
            client.simple_query("SELECT 1").await.map_err(query_error)?;
            Ok(())
        })
        .await
    }

    /// The statement timeout plus the margin a write waits beyond it.
    fn write_window(&self) -> Duration {
        self.inner.statement_timeout + WRITE_MARGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_made_up_ones_are_refused() {
        let key = [0xab; 16];
        assert_eq!(parse_key_cursor(&key_cursor(&key)).ok(), Some(key));
        for bad in [
            "",
            "not a cursor",
            "%%%%",
            &"A".repeat(32),
            &"0".repeat(31),
            &"g".repeat(32),
        ] {
            assert!(parse_key_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn big_values_clamp_instead_of_wrapping() {
        assert_eq!(big(u64::MAX), i64::MAX);
        assert_eq!(big(7), 7);
        assert!(unbig(-1).is_err());
    }
}
