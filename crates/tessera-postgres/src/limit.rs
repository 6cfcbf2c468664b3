//! [`PostgresRateLimiter`]: the core [`RateLimiter`] contract with its
//! state in PostgreSQL, so a limit holds across every node sharing the
//! database.
//!
//! One GCRA step per check, in one statement: an
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE allowed` that locks the
//! key's row, decides from its theoretical arrival time and moves that time
//! on only when it allows, so concurrent checks from several nodes cannot
//! both take the last slot. A row whose arrival time has passed decides like
//! a missing one, so [`purge_expired`](tessera::SessionStore::purge_expired)
//! deletes lapsed rows along with expired sessions, which bounds the table
//! by the keys active in the last minute or so.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tessera::StoreError;
use tessera::limit::{Decision, RateLimiter};

use crate::store::{Inner, big, malformed};

const MINUTE_US: u64 = 60_000_000;

/// A rate limiter shared by every node using the same database and schema.
/// Made by [`PostgresStore::rate_limiter`](crate::PostgresStore::rate_limiter);
/// cheap to clone.
#[derive(Clone)]
pub struct PostgresRateLimiter {
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRateLimiter")
            .finish_non_exhaustive()
    }
}

impl PostgresRateLimiter {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl RateLimiter for PostgresRateLimiter {
    async fn check(
        &self,
        key: &[u8],
        limit_per_minute: u32,
        now_ms: u64,
    ) -> Result<Decision, StoreError> {
        if limit_per_minute == 0 {
            return Ok(Decision::ALLOW);
        }
        // The same arithmetic as `tessera::limit::gcra`, in microseconds.
        let interval = (MINUTE_US / u64::from(limit_per_minute)).max(1);
        let tolerance = interval.saturating_mul(u64::from(limit_per_minute) - 1);
        let now_us = now_ms.saturating_mul(1000);
        let i = &self.inner;
        i.call(async {
            let row = i
                .query_one(
                    &i.sql().rate_limit,
                    &[&key, &big(now_us), &big(interval), &big(tolerance)],
                )
                .await?;
            let allowed: bool = row.try_get(0).map_err(|_| malformed())?;
            if allowed {
                return Ok(Decision::ALLOW);
            }
            // The arrival time as this statement's snapshot saw it; a check
            // that committed since can only have moved it later, so the
            // wait is at worst too short, never a refusal for too long.
            let tat: Option<i64> = row.try_get(1).map_err(|_| malformed())?;
            let earliest = tat
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(now_us)
                .saturating_sub(tolerance);
            Ok(Decision::deny(
                earliest.saturating_sub(now_us).div_ceil(1_000_000),
            ))
        })
        .await
    }
}
