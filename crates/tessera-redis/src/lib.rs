//! A Redis and Redis Cluster store for Tessera.
//!
//! [`RedisStore`] implements the [`SessionStore`](tessera::SessionStore)
//! contract and passes the `tessera-conformance` suite unchanged, on one
//! server and on a cluster. Several `tessera serve` nodes over one Redis see
//! the same sessions, counts and rate limits
//! ([`RedisStore::rate_limiter`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera::SessionError> {
//! use std::sync::Arc;
//! use tessera::{KeyRing, SessionManager};
//! use tessera_redis::RedisStore;
//!
//! // Or "redis+cluster://10.0.0.1:7000,10.0.0.2:7000", "rediss://:password@host:6380/2".
//! let store = RedisStore::connect("redis://127.0.0.1:6379", "tessera:").await?;
//! let manager = SessionManager::builder()
//!     .keys(KeyRing::from_env()?)
//!     .store(Arc::new(store))
//!     .build()?;
//! # let _ = manager; Ok(()) }
//! ```
//!
//! # What Redis holds
//!
//! Only what the store contract hands a store: session ids, keyed hashes of
//! user and org ids, expiry times, versions and sealed (AES-256-GCM)
//! records. No user id, org id, device id, IP address or token, in a key or
//! a value; a test scans every key and value to prove it.
//!
//! # Key layout, and why
//!
//! Sessions are spread by id over 16 shards. Every key of a shard carries
//! the shard's hash tag, so in a cluster the shard is one slot, and every
//! operation on a session runs as one Lua script inside that slot:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P{T}:r:<id>` | hash | version, expires_at, user key, org key, sealed record; expires with the session (`EXPIREAT`) |
//! | `P{T}:exp` | sorted set | every session of the shard by `expires_at`: live counts, purge |
//! | `P{T}:ids` | sorted set | every session at score 0, member `org key ‖ id`: ordered listing, org filter |
//! | `P{T}:orgs` | hash | sessions per org key in the shard |
//! | `P{T}:u:<user key>` | sorted set | one user's sessions in the shard by `expires_at`; expires with its last session |
//! | `Pm:<key>` | string | a sealed membership (no tag: spread over the cluster) |
//! | `Prl:<key>` | string | a rate limiter's state (GCRA), expiring when it lapses |
//!
//! `P` is the prefix, `T` the shard's tag. Validation reads one record with
//! one `HMGET` (one round trip, any node count). The per-user index is kept
//! per shard rather than in one place per user because `get(id)` knows only
//! the id: the record's slot must follow from the id. Splitting a user's
//! index across the shards of their sessions keeps every write (insert,
//! swap, remove) a single atomic script with its index entries, instead of a
//! record in one slot and an index entry in another that a crash between
//! two steps could leave disagreeing. The price is that reads and removals
//! by user (`user_sessions`, log-out-everywhere) send one script per shard,
//! concurrently; each is atomic for its shard, and a session lives in one
//! shard, so every session is either removed or inserted after its shard
//! was cleared: none escapes. Counts and listings likewise visit 16 shards.
//!
//! Each script names in `KEYS` the key that selects its slot and reaches
//! the shard's other keys (index entries it finds while it runs) through the
//! same hash tag, which Redis Cluster permits because they are in the same
//! slot. Redis 7.0 or later is required (the scripts use `EXPIREAT` with
//! `NX` and `GT`).
//!
//! Memberships have no tag and no index: `list_memberships` (for backups)
//! walks them with `SCAN MATCH` on every server, master by master on a
//! cluster, and fetches each page with one `MGET` (split by slot on a
//! cluster). `SCAN` returns every key that exists throughout, perhaps twice,
//! which is the contract's at-least-once; the keys one `SCAN` returns beyond
//! a page travel in the cursor, so none is lost between pages.
//! `restore_membership` is `SET NX`. `restore` is one shard script, like
//! `insert`, that keeps the version it is given and writes only over a
//! missing, expired or older record.
//!
//! The shard tags were chosen to land in 16 evenly spaced slots, so a
//! cluster with evenly split slot ranges spreads the shards evenly; with
//! more than 16 masters some masters hold no sessions (memberships and rate
//! limits still spread over all of them).
//!
//! # Expiry
//!
//! Records expire by Redis TTL at `expires_at`, and every read also checks
//! `expires_at` against the caller's `now`, so a record past its time is
//! never returned even if the TTL has not fired. Index entries of records a
//! TTL dropped are removed by `purge_expired`, whose cost is proportional to
//! what it removes, and per-user entries are pruned by score whenever the
//! user's sessions are read (no keyspace notifications needed; many managed
//! services disable them). TTLs run on the Redis server's clock, so the
//! `now` the manager passes must be close to wall-clock time (a
//! [`ManualClock`](tessera::ManualClock) far from it would see Redis drop or
//! keep records at other times than it expects).
//!
//! # Failures
//!
//! Connections reconnect by themselves. With Redis unreachable a request
//! fails within about the response timeout ([`Timeouts`]) with a
//! [`StoreError`](tessera::StoreError), which the manager reports as
//! `DATABASE_ERROR`; the next request after Redis returns succeeds
//! ([`RedisOptions::lazy`] also lets a service start while Redis is down).
//! For `rediss://` to a server with a private CA, pass the CA in
//! [`RedisOptions::tls_root_cert`]. Scripts
//! are sent by SHA (`EVALSHA`) and loaded again automatically when a
//! restarted server has forgotten them.
//!
//! A write reported as failed never takes effect later: every write script
//! carries a deadline (the call's start plus the response timeout) and
//! refuses, writing nothing, once the server's `TIME` is past it; the client
//! waits [`WRITE_MARGIN`] longer for the answer. The deadline is set on this
//! host's clock and read on the server's, so both must be NTP-synchronized
//! (see the README for what skew does).

mod conn;
mod layout;
mod limit;
mod store;
mod url;

pub use crate::conn::{Timeouts, WRITE_MARGIN};
pub use crate::limit::RedisRateLimiter;
pub use crate::store::{RedisOptions, RedisStore};
