//! [`RedisRateLimiter`]: the core [`RateLimiter`] contract with its state in
//! Redis, so a limit holds across every node sharing that Redis.
//!
//! One GCRA step per check, in a Lua script: read the key's theoretical
//! arrival time, decide, and store the new one, atomically, so concurrent
//! checks from several nodes cannot both take the last slot. The key expires
//! when its arrival time passes (a lapsed key and a missing one decide the
//! same), which bounds Redis memory by the keys active in the last minute.

use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use redis::Script;
use tessera::StoreError;
use tessera::limit::{Decision, RateLimiter};

use crate::conn::Conn;
use crate::layout::Layout;
use crate::store::{malformed, request_error};

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/gcra.lua")));

/// A rate limiter shared by every node using the same Redis. Made by
/// [`RedisStore::rate_limiter`](crate::RedisStore::rate_limiter).
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: Conn,
    layout: Arc<Layout>,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    pub(crate) fn new(conn: Conn, layout: Arc<Layout>) -> Self {
        Self { conn, layout }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        key: &[u8],
        limit_per_minute: u32,
        now_ms: u64,
    ) -> Result<Decision, StoreError> {
        if limit_per_minute == 0 {
            return Ok(Decision::ALLOW);
        }
        let (allowed, wait): (i64, i64) = GCRA
            .key(self.layout.rate_limit(key))
            .arg(limit_per_minute)
            .arg(now_ms.saturating_mul(1000))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(request_error)?;
        match allowed {
            1 => Ok(Decision::ALLOW),
            0 => Ok(Decision::deny(
                u64::try_from(wait).map_err(|_| malformed())?,
            )),
            _ => Err(malformed()),
        }
    }
}
