//! What every request handler shares: the session manager, the rate
//! limiter and its limits, the API key and the metrics.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera::limit::{MemoryRateLimiter, RateLimiter};
use tessera::{Clock, SessionError, SessionManager};

use crate::http::auth::ApiKey;
use crate::http::deadline::BODY_READ_TIMEOUT;
use crate::http::error::ApiError;
use crate::http::operation::Operation;
use crate::metrics::Metrics;

/// Per-minute rate limits. Zero disables a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Session creations per user per minute. Default 20.
    pub create_per_minute: u32,
    /// Session creations per minute in all, whoever they are for: what one
    /// API-key holder can create when it spreads creations over many users.
    /// Shared by the nodes of a shared store. Default 60,000 (1,000 a
    /// second).
    pub create_total_per_minute: u32,
    /// Refreshes per session per minute. Default 10.
    pub refresh_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            create_per_minute: 20,
            create_total_per_minute: 60_000,
            refresh_per_minute: 10,
        }
    }
}

/// The state of the service; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) manager: SessionManager,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) limits: Limits,
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) body_read_timeout: Duration,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("manager", &self.inner.manager)
            .field("limiter", &self.inner.limiter)
            .field("limits", &self.inner.limits)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A builder around a session manager.
    ///
    /// To have session lifecycle events counted in the metrics, build the
    /// manager with [`Metrics::event_sink`] of the same [`Metrics`] passed
    /// to [`AppStateBuilder::metrics`].
    pub fn builder(manager: SessionManager) -> AppStateBuilder {
        AppStateBuilder {
            manager,
            limiter: None,
            limits: Limits::default(),
            api_key: None,
            metrics: None,
            body_read_timeout: BODY_READ_TIMEOUT,
            clock: None,
        }
    }

    /// The session manager.
    pub fn manager(&self) -> &SessionManager {
        &self.inner.manager
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn now_ms(&self) -> u64 {
        match &self.inner.clock {
            Some(c) => c.now().saturating_mul(1000),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Checks a rate limit before any work is done: a refused request
    /// changes nothing.
    pub(crate) async fn check_limit(
        &self,
        op: Operation,
        key: &[u8],
        limit_per_minute: u32,
    ) -> Result<(), ApiError> {
        if limit_per_minute == 0 {
            return Ok(());
        }
        let decision = self
            .inner
            .limiter
            .check(key, limit_per_minute, self.now_ms())
            .await
            .map_err(SessionError::from)?;
        if !decision.allowed {
            self.inner.metrics.record_rate_limited(op);
        }
        Ok(decision.into_result()?)
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    manager: SessionManager,
    limiter: Option<Arc<dyn RateLimiter>>,
    limits: Limits,
    api_key: Option<ApiKey>,
    metrics: Option<Arc<Metrics>>,
    body_read_timeout: Duration,
    clock: Option<Arc<dyn Clock>>,
}

impl fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppStateBuilder").finish_non_exhaustive()
    }
}

impl AppStateBuilder {
    /// The rate limiter. Default: a [`MemoryRateLimiter`].
    pub fn limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The limits. Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Requires this key in `x-api-key` on every `/v1` request.
    pub fn api_key(mut self, key: Option<ApiKey>) -> Self {
        self.api_key = key;
        self
    }

    /// The metrics. Default: a fresh [`Metrics`].
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long a request body gets to arrive, from the end of its headers.
    /// Default: [`BODY_READ_TIMEOUT`].
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The clock the rate limiter reads (whole seconds). Default: the system
    /// clock at millisecond resolution. Tests pass a
    /// [`ManualClock`](tessera::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                manager: self.manager,
                limiter: self
                    .limiter
                    .unwrap_or_else(|| Arc::new(MemoryRateLimiter::default())),
                limits: self.limits,
                api_key: self.api_key,
                metrics: self.metrics.unwrap_or_default(),
                body_read_timeout: self.body_read_timeout,
                clock: self.clock,
            }),
        }
    }
}
