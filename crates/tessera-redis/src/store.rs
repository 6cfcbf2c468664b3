//! [`RedisStore`]: the [`SessionStore`] contract over Redis or a Redis
//! Cluster. The key layout and the reasons for it are in the crate docs.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt, stream};
use redis::{RedisError, Script, Value};
use tessera::StoreError;
use tessera::ids::SessionId;
use tessera::store::{
    CasOutcome, IndexKey, MembershipPage, Page, RestoreOutcome, SessionCounts, SessionStore,
    StoredSession, runs_of_distinct,
};

use crate::conn::{Conn, Timeouts, WRITE_MARGIN};
use crate::layout::{Cursor, Layout, MAX_PENDING, MembershipCursor, SHARDS, lex_bounds, shard_of};
use crate::limit::RedisRateLimiter;

macro_rules! shard_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/lib.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static INSERT: LazyLock<Script> = shard_script!("insert.lua");
static CAS: LazyLock<Script> = shard_script!("cas.lua");
static REMOVE: LazyLock<Script> = shard_script!("remove.lua");
static USER_SESSIONS: LazyLock<Script> = shard_script!("user_sessions.lua");
static REMOVE_USER: LazyLock<Script> = shard_script!("remove_user.lua");
static PURGE: LazyLock<Script> = shard_script!("purge.lua");
static COUNT: LazyLock<Script> = shard_script!("count.lua");
static LIST: LazyLock<Script> = shard_script!("list.lua");
static RESTORE: LazyLock<Script> = shard_script!("restore.lua");
static PUT_MEMBERSHIP: LazyLock<Script> = shard_script!("put_membership.lua");
static REMOVE_MEMBERSHIP: LazyLock<Script> = shard_script!("remove_membership.lua");
static RESTORE_MEMBERSHIP: LazyLock<Script> = shard_script!("restore_membership.lua");

/// Requests a batch restore keeps in flight: enough to fill the pipe to
/// Redis, few enough that a batch does not crowd out the service's own
/// requests on a shared connection.
const IN_FLIGHT: usize = 64;

/// The most index entries one `list` script call scans, so a page over a
/// shard full of expired entries cannot hold the server for long.
const LIST_SCAN_BUDGET: usize = 1024;

/// The `COUNT` of a membership `SCAN`: the page size, within these bounds.
/// At least 100 so a page does not crawl through a keyspace of mostly
/// session keys ten buckets at a time; at most 512 so what one `SCAN`
/// returns beyond the page fits a cursor ([`MAX_PENDING`]).
const MEMBERSHIP_SCAN_COUNT: (usize, usize) = (100, 512);

/// The most `SCAN` calls one `list_memberships` page makes. Over a large
/// keyspace with few memberships a page may come back short (even empty)
/// with a cursor, rather than hold the caller for a whole pass.
const MEMBERSHIP_SCANS_PER_PAGE: usize = 16;

/// How a [`RedisStore`] connects and names its keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// Prepended to every key, so several deployments (or tests) can share
    /// one Redis. Must not contain `{` or `}` (they would change the hash
    /// slot) and is at most 64 bytes. Default `tessera:`.
    pub prefix: String,
    /// Connection and response timeouts.
    pub timeouts: Timeouts,
    /// Connect on the first request instead of at once, so a service can
    /// start (and report itself not ready) while Redis is down. Default
    /// `false`: connecting fails if Redis does not answer.
    pub lazy: bool,
    /// For `rediss://` URLs: a PEM root certificate to trust *instead of*
    /// the system's roots, for a Redis whose certificate a private CA
    /// issued. Default `None`: the system's roots.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("prefix", &self.prefix)
            .field("timeouts", &self.timeouts)
            .field("lazy", &self.lazy)
            .field(
                "tls_root_cert",
                &self
                    .tls_root_cert
                    .as_ref()
                    .map(|c| format!("{} bytes of PEM", c.len())),
            )
            .finish()
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "tessera:".to_owned(),
            timeouts: Timeouts::default(),
            lazy: false,
            tls_root_cert: None,
        }
    }
}

/// Sessions and memberships in Redis or a Redis Cluster. Cheap to clone;
/// clones share connections.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    layout: Arc<Layout>,
    /// How long after a write call begins Redis may still apply it: the
    /// response timeout. The client waits [`WRITE_MARGIN`] longer for the
    /// answer (see [`Timeouts`]).
    write_budget: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("conn", &self.conn)
            .field("layout", &self.layout)
            .finish()
    }
}

pub(crate) fn request_error(e: RedisError) -> StoreError {
    if e.code() == Some("LATE") {
        return StoreError::with_source(
            "Redis reached the write after its deadline; nothing was written",
            e,
        );
    }
    StoreError::with_source("a Redis request failed", e)
}

pub(crate) fn malformed() -> StoreError {
    StoreError::new("Redis returned data the store did not write")
}

fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.len() > 64 {
        return Err(StoreError::new(
            "the Redis key prefix must be at most 64 bytes",
        ));
    }
    if prefix
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(StoreError::new(
            "the Redis key prefix must not contain braces, spaces or control characters",
        ));
    }
    Ok(())
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

fn key16(v: &Value) -> Option<IndexKey> {
    bytes(v)?.try_into().ok()
}

fn session_id(v: &Value) -> Option<SessionId> {
    let raw: [u8; 16] = bytes(v)?.try_into().ok()?;
    Some(SessionId::from_uuid(uuid::Uuid::from_bytes(raw)))
}

/// A record from its fields `v e u o d`, or `None` if it is absent.
fn record(id: SessionId, f: &[Value]) -> Result<Option<StoredSession>, StoreError> {
    let [v, e, u, o, d] = f else {
        return Err(malformed());
    };
    if matches!(v, Value::Nil) {
        return Ok(None);
    }
    let parsed = (|| {
        Some(StoredSession {
            id,
            version: u64::try_from(int(v)?).ok()?,
            expires_at: u64::try_from(int(e)?).ok()?,
            user_key: key16(u)?,
            org_key: key16(o)?,
            sealed: bytes(d)?.to_vec(),
        })
    })();
    parsed.map(Some).ok_or_else(malformed)
}

/// Sessions returned by a script as flattened groups of
/// `id v e u o d`.
fn records(flat: &[Value]) -> Result<Vec<StoredSession>, StoreError> {
    if !flat.len().is_multiple_of(6) {
        return Err(malformed());
    }
    flat.chunks_exact(6)
        .map(|g| {
            let id = session_id(&g[0]).ok_or_else(malformed)?;
            record(id, &g[1..])?.ok_or_else(malformed)
        })
        .collect()
}

impl RedisStore {
    /// Connects to `url` (see the crate docs for the forms) with keys under
    /// `prefix` and default timeouts. Fails if Redis does not answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(
            url,
            RedisOptions {
                prefix: prefix.to_owned(),
                ..RedisOptions::default()
            },
        )
        .await
    }

    /// Connects to `url` with the given options.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        check_prefix(&options.prefix)?;
        let target = crate::url::parse(url)?;
        let conn = Conn::open(
            target,
            &options.timeouts,
            options.lazy,
            options.tls_root_cert.as_deref(),
        )
        .await?;
        let store = Self {
            conn,
            layout: Arc::new(Layout::new(&options.prefix)),
            write_budget: options.timeouts.response,
        };
        if !options.lazy {
            store.ping().await?;
        }
        Ok(store)
    }

    /// Requests sent to Redis by this store and its clones so far; each is
    /// one round trip. For metrics and benchmarks.
    pub fn round_trips(&self) -> u64 {
        self.conn.requests()
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        self.layout.prefix()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// A rate limiter sharing this store's connections and prefix, so limits
    /// hold across every node that uses the same Redis.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.conn.clone(), self.layout.clone())
    }

    /// The deadline of a write starting now, in Unix milliseconds, for the
    /// script to check against the server's clock (see `lua/lib.lua`).
    fn deadline(&self) -> u64 {
        let at = SystemTime::now() + self.write_budget;
        at.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Runs `f` for every shard at once and collects the results in shard
    /// order. Requests to one server are pipelined on its connection.
    async fn each_shard<T, F, Fut>(&self, f: F) -> Result<Vec<T>, StoreError>
    where
        F: Fn(usize, Conn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        try_join_all((0..SHARDS).map(|s| f(s, self.conn.clone()))).await
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        let shard = shard_of(&s.id);
        let inserted: i64 = INSERT
            .key(self.layout.record(&s.id))
            .arg(self.layout.base(shard))
            .arg(s.id.as_bytes())
            .arg(&s.user_key)
            .arg(&s.org_key)
            .arg(s.expires_at)
            .arg(s.sealed)
            .arg(now)
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(inserted == 1)
    }

    /// One `HMGET`: one round trip, no script.
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        let fields: Vec<Value> = redis::cmd("HMGET")
            .arg(self.layout.record(id))
            .arg(&["v", "e", "u", "o", "d"])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(record(*id, &fields)?.filter(|s| s.expires_at > now))
    }

    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let out: i64 = CAS
            .key(self.layout.record(id))
            .arg(self.layout.base(shard_of(id)))
            .arg(id.as_bytes())
            .arg(expected_version)
            .arg(sealed)
            .arg(expires_at)
            .arg(now)
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(match out {
            -1 => CasOutcome::Missing,
            0 => CasOutcome::Conflict,
            v => CasOutcome::Swapped {
                version: u64::try_from(v).map_err(|_| malformed())?,
            },
        })
    }

    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        let removed: i64 = REMOVE
            .key(self.layout.record(id))
            .arg(self.layout.base(shard_of(id)))
            .arg(id.as_bytes())
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(removed == 1)
    }

    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let per_shard = self
            .each_shard(|shard, mut conn| async move {
                let flat: Vec<Value> = USER_SESSIONS
                    .key(self.layout.user(shard, user_key))
                    .arg(self.layout.base(shard))
                    .arg(user_key)
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(request_error)?;
                records(&flat)
            })
            .await?;
        Ok(per_shard.into_iter().flatten().collect())
    }

    /// Atomic per shard: a session is in one shard, so each is removed by
    /// that shard's script or inserted after it ran.
    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        let deadline = self.deadline();
        let per_shard = self
            .each_shard(|shard, mut conn| async move {
                let n: u64 = REMOVE_USER
                    .key(self.layout.user(shard, user_key))
                    .arg(self.layout.base(shard))
                    .arg(user_key)
                    .arg(now)
                    .arg(deadline)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(request_error)?;
                Ok(n)
            })
            .await?;
        Ok(per_shard.into_iter().sum())
    }

    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        let mut at = match cursor {
            Some(c) => Cursor::decode(c)
                .ok_or_else(|| StoreError::invalid_input("the cursor is not valid"))?,
            None => Cursor {
                shard: 0,
                after: None,
            },
        };
        let mut sessions = Vec::new();
        if limit == 0 {
            return Ok(Page::default());
        }
        while at.shard < SHARDS {
            let Some((min, max)) = lex_bounds(org_key, at.after.as_ref()) else {
                at = Cursor {
                    shard: at.shard + 1,
                    after: None,
                };
                continue;
            };
            let out: Vec<Value> = LIST
                .key(self.layout.listing(at.shard))
                .arg(self.layout.base(at.shard))
                .arg(now)
                .arg(limit - sessions.len())
                .arg(min)
                .arg(max)
                .arg(LIST_SCAN_BUDGET)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(request_error)?;
            let (head, items) = out.split_at_checked(2).ok_or_else(malformed)?;
            sessions.extend(records(items)?);
            let exhausted = int(&head[0]).ok_or_else(malformed)? == 1;
            if exhausted {
                at = Cursor {
                    shard: at.shard + 1,
                    after: None,
                };
                if sessions.len() == limit {
                    break;
                }
            } else {
                let last = bytes(&head[1]).and_then(|b| b.try_into().ok());
                at.after = Some(last.ok_or_else(malformed)?);
                // Full page, or the scan budget ran out: resume from here.
                break;
            }
        }
        let next_cursor = (at.shard < SHARDS).then(|| at.encode());
        Ok(Page {
            sessions,
            next_cursor,
        })
    }

    /// Shard by shard until `limit` are removed: each call costs a lookup
    /// per shard plus the sessions it removes.
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        let deadline = self.deadline();
        let mut removed = 0u64;
        for shard in 0..SHARDS {
            let left = limit.saturating_sub(usize::try_from(removed).unwrap_or(usize::MAX));
            if left == 0 {
                break;
            }
            let n: u64 = PURGE
                .key(self.layout.expiry(shard))
                .arg(self.layout.base(shard))
                .arg(now)
                .arg(left)
                .arg(deadline)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(request_error)?;
            removed += n;
        }
        Ok(removed)
    }

    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        let per_shard = self
            .each_shard(|shard, mut conn| async move {
                let out: Vec<Value> = COUNT
                    .key(self.layout.expiry(shard))
                    .arg(self.layout.base(shard))
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(request_error)?;
                Ok(out)
            })
            .await?;
        let mut total = 0u64;
        let mut by_org = std::collections::HashMap::<IndexKey, u64>::new();
        for out in per_shard {
            let (head, pairs) = out.split_first().ok_or_else(malformed)?;
            total += u64::try_from(int(head).ok_or_else(malformed)?).map_err(|_| malformed())?;
            if !pairs.len().is_multiple_of(2) {
                return Err(malformed());
            }
            for pair in pairs.chunks_exact(2) {
                let org = key16(&pair[0]).ok_or_else(malformed)?;
                let n = int(&pair[1]).and_then(|n| u64::try_from(n).ok());
                *by_org.entry(org).or_default() += n.ok_or_else(malformed)?;
            }
        }
        Ok(SessionCounts {
            total,
            by_org: by_org.into_iter().collect(),
        })
    }

    /// A script rather than `SET`, for the deadline.
    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        let _: i64 = PUT_MEMBERSHIP
            .key(self.layout.membership(key))
            .arg(sealed)
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(())
    }

    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        redis::cmd("GET")
            .arg(self.layout.membership(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(request_error)
    }

    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        let n: u64 = REMOVE_MEMBERSHIP
            .key(self.layout.membership(key))
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(n == 1)
    }

    /// One script in the session's shard, like insert. `expires_at` is
    /// checked against `now` here first, and the script checks it again on
    /// the server's clock so that no record is written with a TTL already
    /// past.
    async fn restore(&self, s: StoredSession, now: u64) -> Result<RestoreOutcome, StoreError> {
        if s.expires_at <= now {
            return Ok(RestoreOutcome::Expired);
        }
        // HINCRBY, which compare-and-swap uses, works on signed 64 bits.
        if s.version == 0 || i64::try_from(s.version).is_err() {
            return Err(StoreError::new(
                "a restored session's version must be between 1 and 2^63 - 1",
            ));
        }
        let shard = shard_of(&s.id);
        let out: i64 = RESTORE
            .key(self.layout.record(&s.id))
            .arg(self.layout.base(shard))
            .arg(s.id.as_bytes())
            .arg(&s.user_key)
            .arg(&s.org_key)
            .arg(s.expires_at)
            .arg(s.sealed)
            .arg(now)
            .arg(s.version)
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        match out {
            1 => Ok(RestoreOutcome::Written),
            0 => Ok(RestoreOutcome::Kept),
            -1 => Ok(RestoreOutcome::Expired),
            _ => Err(malformed()),
        }
    }

    /// The restore script for every session at once, [`IN_FLIGHT`] at a
    /// time: the requests are pipelined on the connection to each server
    /// (each script touches one session's shard, so this works unchanged on
    /// a cluster). An id named twice waits for the run before it.
    async fn restore_batch(
        &self,
        sessions: Vec<StoredSession>,
        now: u64,
    ) -> Result<Vec<RestoreOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(sessions.len());
        for run in runs_of_distinct(sessions, |s| s.id) {
            let done: Vec<RestoreOutcome> = stream::iter(run)
                .map(|s| self.restore(s, now))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            outcomes.extend(done);
        }
        Ok(outcomes)
    }

    /// `SCAN` server by server (on a cluster, master by master, in the order
    /// of their lowest slots), then one `MGET` of the page's keys, which the
    /// cluster client splits by slot. A key deleted between the two is left
    /// out. `SCAN` returns every key that exists through the whole scan,
    /// perhaps more than once, which is the contract's at-least-once.
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<MembershipPage, StoreError> {
        let resumed = cursor
            .map(|c| {
                MembershipCursor::decode(c)
                    .ok_or_else(|| StoreError::invalid_input("the membership cursor is not valid"))
            })
            .transpose()?;
        if limit == 0 {
            return Ok(MembershipPage::default());
        }
        let mut conn = self.conn.clone();
        // The masters, asked for at most once a page, when a page starts or
        // moves to the next master.
        let mut masters: Option<Vec<u16>> = None;
        let mut at = match resumed {
            Some(c) => c,
            None => {
                let all = conn.masters().await?;
                let first = all.first().copied();
                masters = Some(all);
                MembershipCursor::start(first)
            }
        };
        let pattern = self.layout.membership_pattern();
        let count = limit.clamp(MEMBERSHIP_SCAN_COUNT.0, MEMBERSHIP_SCAN_COUNT.1);
        let mut pending = std::collections::VecDeque::from(std::mem::take(&mut at.pending));
        let mut keys = Vec::new();
        let mut scans = 0;
        loop {
            let room = limit - keys.len();
            keys.extend(pending.drain(..room.min(pending.len())));
            if keys.len() == limit || scans == MEMBERSHIP_SCANS_PER_PAGE {
                break;
            }
            let Some(node) = at.node else { break };
            let mut scan = redis::cmd("SCAN");
            scan.arg(at.scan)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(count);
            let answer = conn.query_node(&scan, node).await.map_err(request_error)?;
            scans += 1;
            let (next, names): (u64, Vec<Vec<u8>>) =
                redis::from_redis_value(answer).map_err(|_| malformed())?;
            pending.extend(names.iter().filter_map(|n| self.layout.membership_key(n)));
            at.scan = next;
            if next == 0 {
                if masters.is_none() {
                    masters = Some(conn.masters().await?);
                }
                let later = masters.iter().flatten().find(|&&m| m > node);
                at.node = later.copied();
            }
        }
        if pending.len() > MAX_PENDING {
            // SCAN returns about COUNT keys, far fewer than this.
            return Err(StoreError::new(
                "Redis SCAN returned more keys than a membership cursor can carry",
            ));
        }
        at.pending = pending.into();
        let next_cursor = (at.node.is_some() || !at.pending.is_empty()).then(|| at.encode());
        if keys.is_empty() {
            return Ok(MembershipPage {
                memberships: Vec::new(),
                next_cursor,
            });
        }
        let names: Vec<String> = keys.iter().map(|k| self.layout.membership(k)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut conn)
            .await
            .map_err(request_error)?;
        if values.len() != keys.len() {
            return Err(malformed());
        }
        let memberships = keys
            .into_iter()
            .zip(values)
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        Ok(MembershipPage {
            memberships,
            next_cursor,
        })
    }

    /// `SET NX` in a script (for the deadline): one step, so a concurrent
    /// `put_membership` either came first (and stays) or overwrites this
    /// one.
    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let set: i64 = RESTORE_MEMBERSHIP
            .key(self.layout.membership(key))
            .arg(sealed)
            .arg(self.deadline())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        Ok(set == 1)
    }

    /// `SET NX` for every membership at once, pipelined as
    /// [`restore_batch`](SessionStore::restore_batch) is.
    async fn restore_memberships(
        &self,
        memberships: Vec<(IndexKey, Vec<u8>)>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut written = Vec::with_capacity(memberships.len());
        for run in runs_of_distinct(memberships, |(k, _)| *k) {
            let done: Vec<bool> = stream::iter(run)
                .map(|(k, sealed)| async move { self.restore_membership(&k, sealed).await })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            written.extend(done);
        }
        Ok(written)
    }

    /// `PING`; on a cluster, every master must answer.
    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .exec_async(&mut self.conn.clone())
            .await
            .map_err(request_error)
    }

    /// The response timeout plus the margin the client waits beyond it.
    fn write_window(&self) -> Duration {
        self.write_budget + WRITE_MARGIN
    }
}
