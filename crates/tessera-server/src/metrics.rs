//! Prometheus metrics of the service.
//!
//! Every series is created up front and each request touches handles it
//! already holds (an index into a table, no label hashing, no registry
//! lookup), so recording costs a few atomic operations on the hot path.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tessera_http_requests_total` | counter | `operation`, `outcome` (`ok` or an error type) |
//! | `tessera_http_request_duration_seconds` | histogram | `operation` |
//! | `tessera_rate_limited_total` | counter | `operation` |
//! | `tessera_sessions_created_total` | counter | |
//! | `tessera_sessions_refreshed_total` | counter | |
//! | `tessera_sessions_ended_total` | counter | `reason` |
//! | `tessera_refresh_reuse_detected_total` | counter | |
//! | `tessera_active_sessions` | gauge | (read from the store at scrape time) |
//! | `tessera_store_up` | gauge | 1 if the store answered the last scrape's ping |
//! | `tessera_http_connections_open` | gauge | |
//! | `tessera_http_connections_closed_total` | counter | `reason`: `idle`, `header_timeout`, `shed` (to make room at the cap) |
//! | `tessera_http_connections_refused_total` | counter | (at the cap with every connection busy) |
//! | `tessera_http_accept_errors_total` | counter | |

use std::fmt;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tessera::{EndReason, EventSink, SessionEvent};

use crate::http::operation::Operation;

/// The outcome label values: `ok`, then the error types of the wire.
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "VALIDATION_ERROR",
    "AUTHENTICATION_ERROR",
    "AUTHORIZATION_ERROR",
    "TOKEN_ERROR",
    "NOT_FOUND",
    "RATE_LIMITED",
    "DATABASE_ERROR",
    "ENCRYPTION_ERROR",
    "SYSTEM_ERROR",
];

const END_REASONS: [&str; 6] = [
    "logout",
    "revoked",
    "user_logout",
    "membership_removed",
    "refresh_reuse",
    "other",
];

/// Latency buckets in seconds: 100 µs to about 1.6 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 15)
}

type Labels2 = [(&'static str, &'static str); 2];
type Labels1 = [(&'static str, &'static str); 1];

struct EndpointMetrics {
    latency: Histogram,
    outcomes: [Counter; OUTCOMES.len()],
}

/// The metrics registry and the handles requests record into.
pub struct Metrics {
    registry: Registry,
    endpoints: Vec<EndpointMetrics>,
    rate_limited: Vec<Counter>,
    created: Counter,
    refreshed: Counter,
    ended: [Counter; END_REASONS.len()],
    reuse: Counter,
    active_sessions: Gauge,
    store_up: Gauge,
    connections: Arc<ConnectionMetrics>,
}

/// Why the service closed a connection itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing in flight for the idle timeout.
    Idle,
    /// A request's headers (or the TLS handshake) did not arrive in time.
    HeaderTimeout,
    /// Closed to make room for a new connection at the cap.
    Shed,
}

impl CloseReason {
    const ALL: [CloseReason; 3] = [Self::Idle, Self::HeaderTimeout, Self::Shed];

    fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::HeaderTimeout => "header_timeout",
            Self::Shed => "shed",
        }
    }
}

/// The connection series, recorded by the accept loop.
#[derive(Debug)]
pub struct ConnectionMetrics {
    open: Gauge,
    closed: [Counter; CloseReason::ALL.len()],
    refused: Counter,
    accept_errors: Counter,
}

impl ConnectionMetrics {
    /// Sets the number of open connections.
    pub fn set_open(&self, open: usize) {
        self.open.set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts a connection the service closed, by why.
    pub fn closed(&self, reason: CloseReason) {
        self.closed[reason as usize].inc();
    }

    /// Counts a connection refused at the cap.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// Counts a failed `accept`.
    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every series created.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<Labels2, Counter>::default();
        let latency = Family::<Labels1, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        let limited = Family::<Labels1, Counter>::default();
        let ended = Family::<Labels1, Counter>::default();
        let endpoints = Operation::ALL
            .iter()
            .map(|op| EndpointMetrics {
                latency: latency.get_or_create(&[("operation", op.name())]).clone(),
                outcomes: OUTCOMES.map(|o| {
                    requests
                        .get_or_create(&[("operation", op.name()), ("outcome", o)])
                        .clone()
                }),
            })
            .collect();
        let rate_limited = Operation::ALL
            .iter()
            .map(|op| limited.get_or_create(&[("operation", op.name())]).clone())
            .collect();
        let ended_handles = END_REASONS.map(|r| ended.get_or_create(&[("reason", r)]).clone());
        let created = Counter::default();
        let refreshed = Counter::default();
        let reuse = Counter::default();
        let active_sessions = Gauge::default();
        let store_up = Gauge::default();
        let closed = Family::<Labels1, Counter>::default();
        let connections = Arc::new(ConnectionMetrics {
            open: Gauge::default(),
            closed: CloseReason::ALL
                .map(|r| closed.get_or_create(&[("reason", r.label())]).clone()),
            refused: Counter::default(),
            accept_errors: Counter::default(),
        });
        registry.register(
            "http_connections_open",
            "Open HTTP connections",
            connections.open.clone(),
        );
        registry.register(
            "http_connections_closed",
            "Connections the service closed, by reason (idle, header_timeout, shed at the cap)",
            closed,
        );
        registry.register(
            "http_connections_refused",
            "Connections refused at the cap because every open one was busy",
            connections.refused.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts (descriptor exhaustion)",
            connections.accept_errors.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by operation and outcome (ok or the error type)",
            requests,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by operation",
            latency,
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by operation",
            limited,
        );
        registry.register("sessions_created", "Sessions created", created.clone());
        registry.register(
            "sessions_refreshed",
            "Refresh-token rotations",
            refreshed.clone(),
        );
        registry.register("sessions_ended", "Sessions ended, by reason", ended);
        registry.register(
            "refresh_reuse_detected",
            "Rotated-out refresh tokens presented again (the session is revoked)",
            reuse.clone(),
        );
        registry.register(
            "active_sessions",
            "Live sessions in the store, read at scrape time",
            active_sessions.clone(),
        );
        registry.register(
            "store_up",
            "1 if the session store answered at scrape time, else 0",
            store_up.clone(),
        );
        Self {
            registry,
            endpoints,
            rate_limited,
            created,
            refreshed,
            ended: ended_handles,
            reuse,
            active_sessions,
            store_up,
            connections,
        }
    }

    /// The connection series, for the accept loop.
    pub fn connections(&self) -> &Arc<ConnectionMetrics> {
        &self.connections
    }

    /// Records one finished request. `outcome` indexes [`OUTCOMES`].
    pub fn record_request(&self, op: Operation, outcome: usize, seconds: f64) {
        if let Some(e) = self.endpoints.get(op.index()) {
            e.latency.observe(seconds);
            if let Some(c) = e.outcomes.get(outcome) {
                c.inc();
            }
        }
    }

    /// Records a request refused by a rate limit.
    pub fn record_rate_limited(&self, op: Operation) {
        if let Some(c) = self.rate_limited.get(op.index()) {
            c.inc();
        }
    }

    /// Sets the gauges read from the store at scrape time.
    pub fn set_store_state(&self, up: bool, active_sessions: Option<u64>) {
        self.store_up.set(i64::from(up));
        if let Some(n) = active_sessions {
            self.active_sessions
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// An event sink that counts lifecycle events here and passes each on
    /// to `inner` (for example [`tessera::TracingEvents`] for the audit log).
    pub fn event_sink(self: &Arc<Self>, inner: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
        Arc::new(CountingEvents {
            metrics: self.clone(),
            inner,
        })
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug)]
struct CountingEvents {
    metrics: Arc<Metrics>,
    inner: Arc<dyn EventSink>,
}

impl EventSink for CountingEvents {
    fn record(&self, event: &SessionEvent) {
        let m = &self.metrics;
        match event {
            SessionEvent::Created { .. } => {
                m.created.inc();
            }
            SessionEvent::Refreshed { .. } => {
                m.refreshed.inc();
            }
            SessionEvent::Destroyed { reason, .. } => {
                m.ended[end_reason(*reason)].inc();
            }
            SessionEvent::UserSessionsDestroyed { count, .. } => {
                m.ended[end_reason(EndReason::UserLogout)].inc_by(*count);
            }
            SessionEvent::RefreshReuseDetected { .. } => {
                m.reuse.inc();
            }
            _ => {}
        }
        self.inner.record(event);
    }
}

fn end_reason(r: EndReason) -> usize {
    match r {
        EndReason::Logout => 0,
        EndReason::Revoked => 1,
        EndReason::UserLogout => 2,
        EndReason::MembershipRemoved => 3,
        EndReason::RefreshReuse => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_before_any_traffic() {
        let m = Metrics::new();
        let text = m.render();
        assert!(text.contains(
            "tessera_http_requests_total{operation=\"validate_session\",outcome=\"TOKEN_ERROR\"} 0"
        ));
        assert!(text.contains("tessera_refresh_reuse_detected_total 0"));
        assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
        assert!(text.contains("tessera_rate_limited_total{operation=\"create_session\"} 0"));
    }

    #[test]
    fn recorded_requests_show_up_by_operation_and_outcome() {
        let m = Metrics::new();
        m.record_request(Operation::CreateSession, 6, 0.002);
        m.record_rate_limited(Operation::CreateSession);
        let text = m.render();
        assert!(text.contains(
            "tessera_http_requests_total{operation=\"create_session\",outcome=\"RATE_LIMITED\"} 1"
        ));
        assert!(text.contains("tessera_rate_limited_total{operation=\"create_session\"} 1"));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_count{operation=\"create_session\"} 1"
        ));
    }
}
