//! A PostgreSQL store for Tessera, with versioned migrations and a shared
//! rate limiter.
//!
//! [`PostgresStore`] implements the [`SessionStore`](tessera::SessionStore)
//! contract and passes the `tessera-conformance` suite unchanged. Several
//! `tessera serve` nodes over one database see the same sessions, counts and
//! rate limits ([`PostgresStore::rate_limiter`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera::SessionError> {
//! use std::sync::Arc;
//! use tessera::{KeyRing, SessionManager};
//! use tessera_postgres::{PostgresOptions, PostgresStore};
//!
//! let options = PostgresOptions {
//!     schema: Some("tessera".to_owned()),
//!     ..PostgresOptions::default()
//! };
//! let store = PostgresStore::connect(
//!     "postgres://tessera:password@db.internal:5432/app?sslmode=verify-full",
//!     options,
//! )
//! .await?;
//! let limiter = store.rate_limiter();
//! let manager = SessionManager::builder()
//!     .keys(KeyRing::from_env()?)
//!     .store(Arc::new(store))
//!     .build()?;
//! # let _ = (manager, limiter); Ok(()) }
//! ```
//!
//! # What the database holds
//!
//! Only what the store contract hands a store, as the Redis store does:
//! session ids, keyed hashes of user and org ids, expiry times, versions,
//! sealed (AES-256-GCM) records, sealed memberships under keyed hashes, and
//! rate-limit arrival times under the opaque keys callers pass. No user id,
//! org id, device id, IP address, user agent, role or token, in any column;
//! `tests/no_plaintext.rs` scans every table to prove it.
//!
//! | table | columns | indexes |
//! |---|---|---|
//! | `tessera_sessions` | `id uuid`, `user_key bytea`, `org_key bytea`, `expires_at bigint` (Unix s), `version bigint`, `sealed bytea` | primary key `id`; `expires_at` (purge, counts); `user_key` (a user's sessions); `(org_key, id)` (listing one org) |
//! | `tessera_memberships` | `key bytea`, `sealed bytea` | primary key `key` (get, paged listing) |
//! | `tessera_rate_limits` | `key bytea`, `tat_us bigint` (GCRA arrival time, Unix µs) | primary key `key`; `tat_us` (purge of lapsed rows) |
//! | `tessera_migrations` | `version integer`, `description text`, `applied_at timestamptz` | primary key `version` |
//!
//! With [`PostgresOptions::schema`] the tables live in that schema, created
//! if missing, so deployments and tests can share a database.
//!
//! # Migrations
//!
//! The schema is versioned. At start (or, with [`PostgresOptions::lazy`],
//! at the first call) a store opens one transaction, takes
//! `pg_advisory_xact_lock` on a number derived from the schema name, creates
//! the schema and `tessera_migrations` if missing, and applies every
//! migration newer than the recorded version, recording each. Several nodes
//! starting at once therefore queue on the lock and the first one does the
//! work; the lock goes with the transaction, so a node that dies mid-way
//! leaves nothing half done. A database whose version is newer than this
//! code knows is refused with "the database schema is version N, newer than
//! this Tessera knows (M); upgrade Tessera", and nothing is written.
//!
//! # One statement per operation
//!
//! Every call is one statement on a pooled connection, prepared once per
//! connection (`prepare_cached`), so it is one round trip, and atomic by
//! itself; no call needs an explicit transaction:
//!
//! | call | statement |
//! |---|---|
//! | `get` (validation) | one `SELECT … WHERE id = ANY($1)` shared by the validations waiting at that moment |
//! | `insert` | `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE` the stored one has expired |
//! | `compare_and_swap` (rotation) | `WITH swapped AS (UPDATE ... SET version = version + 1 WHERE id AND version AND expires_at > now RETURNING version)`, plus whether the row was live, which tells `Conflict` from `Missing` in the same trip |
//! | `remove`, `remove_membership` | `DELETE` by primary key |
//! | `user_sessions` | `SELECT` through the `user_key` index |
//! | `remove_user_sessions` | one `DELETE` by `user_key`, counting the live rows it removed |
//! | `list` | keyset page `WHERE [org_key = $o AND] id > $cursor ORDER BY id LIMIT n`; the cursor is the last id |
//! | `purge_expired` | `DELETE ... WHERE id IN (SELECT ... WHERE expires_at <= now ORDER BY expires_at LIMIT n FOR UPDATE SKIP LOCKED)`, and the same for lapsed rate-limit rows |
//! | `count` | `SELECT org_key, count(*) ... WHERE expires_at > now GROUP BY org_key` |
//! | `put_membership` | `INSERT ... ON CONFLICT (key) DO UPDATE` |
//! | `restore` | `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE stored version < restored version OR stored one expired` (no rollback) |
//! | `restore_batch` | the same as `restore`, for the whole batch in one statement over `unnest` of arrays (one statement per run of distinct ids) |
//! | `list_memberships` | keyset page by key; the cursor is the last key |
//! | `restore_membership` | `INSERT ... ON CONFLICT (key) DO NOTHING` |
//! | `restore_memberships` | the same for the whole batch, over `unnest` of arrays |
//! | rate limiter `check` | `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE allowed` (GCRA) |
//! | `ping` | `SELECT 1` |
//!
//! Cursors are 32 hex digits; a cursor this store did not make is an error.
//!
//! # Connecting
//!
//! URLs are `postgres://` or `postgresql://`
//! `USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMS]`, with the driver's
//! parameters (`connect_timeout`, `application_name`, `options`, ...) and
//! `sslmode`:
//!
//! | `sslmode` | meaning |
//! |---|---|
//! | `disable` | no TLS |
//! | `prefer` (the default) | TLS if the server offers it, plain otherwise; the certificate is **not** verified (unless a root is given), as in libpq |
//! | `require`, `verify-full` | TLS or no connection, with the server's certificate and host name verified |
//!
//! TLS is rustls with the aws-lc-rs provider. `require` and `verify-full`
//! verify against the system's root certificates, or against the one root
//! given by [`PostgresOptions::tls_root_cert`] or `sslrootcert=PATH` in the
//! URL. That makes `require` stricter than libpq's (which encrypts without
//! verifying): asking for TLS here always means authenticated TLS.
//! `prefer` cannot protect against an active attacker, who can strip TLS
//! from it, so verifying there would only turn a default server's
//! self-signed certificate into an outage; it encrypts against passive
//! listening and nothing more, so use `verify-full` across any network you
//! do not control. `verify-ca` (chain without host name) and `allow` are
//! refused rather than treated as something else.
//!
//! Errors and `Debug` output never show the URL (it may hold a password).
//!
//! # Failures
//!
//! A call fails with a [`StoreError`](tessera::StoreError) (which the
//! manager reports as `DATABASE_ERROR`) within
//! [`PostgresOptions::statement_timeout`] when PostgreSQL is down or does
//! not answer; connections that broke are replaced by the pool at the next
//! call, so the store recovers by itself when the database returns.
//!
//! A write reported as failed never takes effect later: every write
//! statement carries a deadline (the call's start plus the statement
//! timeout) checked against `clock_timestamp()` in the same statement that
//! writes, and the client waits [`WRITE_MARGIN`] past it for the answer.
//! The connections also carry the statement timeout server-side. Both hosts'
//! clocks must be NTP-synchronized (see the README for what skew does).

mod batch;
mod config;
mod danger;
mod limit;
mod schema;
mod store;

pub use crate::config::PostgresOptions;
pub use crate::limit::PostgresRateLimiter;
pub use crate::store::{PostgresStore, WRITE_MARGIN};
