//! Rate limiting: the [`RateLimiter`] contract and a bounded in-process
//! implementation.
//!
//! The service limits session creation per user and refresh per session. The
//! limiter sits behind a trait, like the session store, so a deployment with
//! several nodes can share one (the Redis store brings its own); the default
//! [`MemoryRateLimiter`] counts per process.
//!
//! Both use GCRA (the generic cell rate algorithm): one timestamp per key,
//! the "theoretical arrival time" of the next request. A limit of `N` per
//! minute admits a burst of `N` and then one request every `60 / N` seconds,
//! which is what "N per minute" means to a caller without the boundary
//! effects of fixed windows.
//!
//! A limiter never sees why it is asked: callers pass opaque byte keys. When
//! the backend is shared (and so readable by whoever can read it), callers
//! should pass keyed hashes rather than raw user ids.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::error::{ErrorKind, SessionError, StoreError};

/// The answer of a [`RateLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead. A request that is allowed has been
    /// counted; one that is refused has not.
    pub allowed: bool,
    /// When refused: whole seconds until a retry can succeed, at least 1.
    /// Zero when allowed.
    pub retry_after_secs: u64,
}

impl Decision {
    /// An allowed request.
    pub const ALLOW: Decision = Decision {
        allowed: true,
        retry_after_secs: 0,
    };

    /// A refusal that may be retried after `retry_after_secs` (at least 1).
    pub fn deny(retry_after_secs: u64) -> Self {
        Self {
            allowed: false,
            retry_after_secs: retry_after_secs.max(1),
        }
    }

    /// `Ok(())` when allowed, otherwise a `RATE_LIMITED` error that says
    /// when to retry.
    pub fn into_result(self) -> Result<(), SessionError> {
        if self.allowed {
            Ok(())
        } else {
            Err(SessionError::new(
                ErrorKind::RateLimited {
                    retry_after_secs: self.retry_after_secs,
                },
                "too many requests; retry later",
            ))
        }
    }
}

/// Decides whether one more request under a key fits a per-minute limit.
///
/// Implementations must:
/// - count a request only when they allow it, so a refused request changes
///   nothing and a client that waits `retry_after_secs` gets through;
/// - admit a burst of `limit_per_minute` and then one request every
///   `60 / limit_per_minute` seconds (GCRA), per key;
/// - treat a `limit_per_minute` of zero as "no limit": always allow;
/// - bound their memory however many distinct keys arrive.
#[async_trait]
pub trait RateLimiter: Send + Sync + fmt::Debug + 'static {
    /// Checks and, if allowed, counts one request under `key` at `now_ms`
    /// (Unix milliseconds).
    async fn check(
        &self,
        key: &[u8],
        limit_per_minute: u32,
        now_ms: u64,
    ) -> Result<Decision, StoreError>;
}

/// How many keys a [`MemoryRateLimiter`] tracks by default.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

const MINUTE_US: u64 = 60_000_000;

/// The GCRA step shared by implementations: given the stored theoretical
/// arrival time (microseconds, `None` for a new key), returns the decision
/// and the value to store when allowed.
pub fn gcra(tat_us: Option<u64>, limit_per_minute: u32, now_us: u64) -> (Decision, Option<u64>) {
    if limit_per_minute == 0 {
        return (Decision::ALLOW, None);
    }
    // At least a microsecond: past 60,000,000 a minute the interval would
    // round to zero, and with it the tolerance, so that two requests in
    // the same millisecond, checked out of order, would refuse each other.
    let interval = (MINUTE_US / u64::from(limit_per_minute)).max(1);
    let tolerance = interval.saturating_mul(u64::from(limit_per_minute) - 1);
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let earliest = tat.saturating_sub(tolerance);
    if earliest > now_us {
        let wait_us = earliest - now_us;
        return (Decision::deny(wait_us.div_ceil(1_000_000)), None);
    }
    (Decision::ALLOW, Some(tat.saturating_add(interval)))
}

/// An in-process GCRA limiter with a bounded number of keys.
///
/// Keys are hashed with a per-process random SipHash key, so the map holds
/// 16 bytes per key and no caller data, and nobody outside can aim keys at
/// one bucket. When the map is full, keys whose state has lapsed are dropped
/// first (forgetting them changes no decision); if it is still full, an
/// arbitrary sixteenth of the keys is dropped, which can only let those keys
/// through sooner. That trade keeps memory bounded under a flood of distinct
/// keys without refusing everyone.
pub struct MemoryRateLimiter {
    hasher: RandomState,
    max_keys: usize,
    state: Mutex<HashMap<u64, u64>>,
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("max_keys", &self.max_keys)
            .field("keys", &self.state.lock().len())
            .finish()
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl MemoryRateLimiter {
    /// A limiter that tracks at most `max_keys` keys (at least 16).
    pub fn new(max_keys: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            max_keys: max_keys.max(16),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.state.lock().len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous check behind [`RateLimiter::check`].
    pub fn check_now(&self, key: &[u8], limit_per_minute: u32, now_ms: u64) -> Decision {
        if limit_per_minute == 0 {
            return Decision::ALLOW;
        }
        let now_us = now_ms.saturating_mul(1000);
        let h = self.hasher.hash_one(key);
        let mut map = self.state.lock();
        let (decision, next) = gcra(map.get(&h).copied(), limit_per_minute, now_us);
        if let Some(next) = next {
            if !map.contains_key(&h) && map.len() >= self.max_keys {
                make_room(&mut map, self.max_keys, now_us);
            }
            map.insert(h, next);
        }
        decision
    }
}

fn make_room(map: &mut HashMap<u64, u64>, max_keys: usize, now_us: u64) {
    // A key whose arrival time has passed is in the same state as a new key.
    map.retain(|_, tat| *tat > now_us);
    if map.len() >= max_keys {
        let drop: Vec<u64> = map.keys().take((max_keys / 16).max(1)).copied().collect();
        for k in &drop {
            map.remove(k);
        }
        tracing::warn!(
            dropped = drop.len(),
            max_keys,
            "rate limiter full of live keys; dropped some (they may retry sooner)"
        );
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(
        &self,
        key: &[u8],
        limit_per_minute: u32,
        now_ms: u64,
    ) -> Result<Decision, StoreError> {
        Ok(self.check_now(key, limit_per_minute, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn a_burst_of_the_limit_is_allowed_then_one_per_interval() {
        let l = MemoryRateLimiter::default();
        for i in 0..10 {
            assert!(l.check_now(b"k", 10, T0).allowed, "request {i}");
        }
        let refused = l.check_now(b"k", 10, T0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 6);
        assert!(!l.check_now(b"k", 10, T0 + 5_999).allowed);
        assert!(l.check_now(b"k", 10, T0 + 6_000).allowed);
        assert!(!l.check_now(b"k", 10, T0 + 6_000).allowed);
    }

    #[test]
    fn a_huge_limit_never_refuses_requests_checked_out_of_order() {
        let l = MemoryRateLimiter::default();
        for i in 0..1000 {
            // Clocks read in one order, checks run in another.
            let now = T0 + if i % 2 == 0 { 1 } else { 0 };
            assert!(l.check_now(b"k", u32::MAX, now).allowed, "request {i}");
        }
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let l = MemoryRateLimiter::default();
        assert!(l.check_now(b"k", 1, T0).allowed);
        for _ in 0..100 {
            assert!(!l.check_now(b"k", 1, T0 + 1_000).allowed);
        }
        assert!(l.check_now(b"k", 1, T0 + 60_000).allowed);
    }

    #[test]
    fn keys_are_independent_and_zero_disables() {
        let l = MemoryRateLimiter::default();
        assert!(l.check_now(b"a", 1, T0).allowed);
        assert!(!l.check_now(b"a", 1, T0).allowed);
        assert!(l.check_now(b"b", 1, T0).allowed);
        for _ in 0..1000 {
            assert!(l.check_now(b"a", 0, T0).allowed);
        }
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let l = MemoryRateLimiter::new(64);
        for i in 0u32..10_000 {
            l.check_now(&i.to_be_bytes(), 5, T0);
        }
        assert!(l.len() <= 64, "{} keys", l.len());
    }

    #[test]
    fn lapsed_keys_are_dropped_before_live_ones() {
        let l = MemoryRateLimiter::new(16);
        assert!(l.check_now(b"live", 1, T0 + 30_000).allowed);
        for i in 0u32..15 {
            l.check_now(&i.to_be_bytes(), 60, T0);
        }
        // All fifteen have lapsed a second later; making room keeps "live".
        l.check_now(b"new", 60, T0 + 30_000);
        assert!(!l.check_now(b"live", 1, T0 + 30_000).allowed);
    }

    #[test]
    fn a_refusal_converts_to_a_rate_limited_error() {
        let err = Decision::deny(7).into_result().expect_err("denied");
        assert_eq!(
            err.kind(),
            ErrorKind::RateLimited {
                retry_after_secs: 7
            }
        );
        assert!(Decision::ALLOW.into_result().is_ok());
    }
}
