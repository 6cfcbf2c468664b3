//! The layer every request passes through: request id, error bodies,
//! metrics and the one log line per request. It also catches a panic in a
//! handler, which becomes a `500 SYSTEM_ERROR` like any other failure
//! instead of a connection closed without an answer (a panic while the
//! response is being finished here, or inside a response body, is not
//! caught), and gives a request that has a body its read deadline
//! ([`super::deadline`]).
//!
//! It is one hand-written tower service rather than a stack of generic
//! middleware because it runs on the validate hot path: it allocates only
//! the request id (and nothing when the caller sent a usable one), boxes no
//! future and makes no span. It never logs a header or a raw path, since
//! either may carry a token; routes are logged as their templates.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::deadline::DeadlineBody;
use super::error;
use super::operation::Operation;
use crate::metrics::Metrics;

/// The request id header, read from the caller and set on every response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-sent request id that is echoed; longer ones are
/// replaced by a generated id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a caller's request id is echoed: short, and only characters that
/// are safe in logs and headers.
fn usable(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_REQUEST_ID_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// Generates request ids: a random per-process prefix and a counter. Ids
/// need to be unique, not secret, so there is no random draw per request.
struct IdGenerator {
    prefix: u64,
    next: AtomicU64,
}

impl IdGenerator {
    fn new() -> Self {
        // RandomState is seeded from the OS once per process; its hash of
        // nothing is a random 64-bit value, with no extra dependency.
        use std::hash::BuildHasher;
        let prefix = std::collections::hash_map::RandomState::new().hash_one(0u8);
        Self {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    fn generate(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 33];
        for (i, byte) in self.prefix.to_be_bytes().iter().enumerate() {
            buf[2 * i] = HEX[usize::from(byte >> 4)];
            buf[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        buf[16] = b'-';
        for (i, byte) in n.to_be_bytes().iter().enumerate() {
            buf[17 + 2 * i] = HEX[usize::from(byte >> 4)];
            buf[17 + 2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        // Hex digits and a hyphen are always a valid header value.
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

/// Adds [`Observe`] to every route.
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Arc<Metrics>,
    ids: IdGenerator,
    body_read_timeout: Duration,
    rejected_logs: LogBudget,
}

/// How many rejected requests (a 4xx answer) are logged a second at most.
/// A flood of rejected requests (bad tokens, rate-limited clients) would
/// otherwise write a line each, megabytes a second; the metrics still count
/// every one, and a line says how many were not logged.
pub(crate) const REJECTED_LOGS_PER_SECOND: u32 = 20;

/// A per-second budget of log lines.
struct LogBudget {
    epoch: Instant,
    second: AtomicU64,
    used: AtomicU32,
    skipped: AtomicU64,
}

impl LogBudget {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            second: AtomicU64::new(0),
            used: AtomicU32::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether one more line may be written now. When a new second begins,
    /// the number skipped in the last one is logged first.
    fn admit(&self) -> bool {
        let now = self.epoch.elapsed().as_secs();
        let second = self.second.load(Ordering::Relaxed);
        if second != now
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
            let skipped = self.skipped.swap(0, Ordering::Relaxed);
            if skipped > 0 {
                tracing::info!(
                    target: "tessera::http",
                    skipped,
                    "rejected requests not logged (over {REJECTED_LOGS_PER_SECOND} a second; \
                     tessera_http_requests_total counts them all)"
                );
            }
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < REJECTED_LOGS_PER_SECOND {
            true
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl ObserveLayer {
    pub(crate) fn new(metrics: Arc<Metrics>, body_read_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                ids: IdGenerator::new(),
                body_read_timeout,
                rejected_logs: LogBudget::new(),
            }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = match req.headers().get(&REQUEST_ID) {
            Some(id) if usable(id) => id.clone(),
            _ => self.shared.ids.generate(),
        };
        let op = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(Operation::Unmatched, |p| {
                Operation::find(req.method(), p.as_str())
            });
        let method = req.method().clone();
        // Only a request with a body gets a timer: validate has none.
        let req = if req.body().is_end_stream() {
            req
        } else {
            let timeout = self.shared.body_read_timeout;
            req.map(|body| Body::new(DeadlineBody::new(body, timeout)))
        };
        ObserveFuture {
            inner: self.inner.call(req),
            state: Some(Pending {
                start,
                request_id,
                op,
                method,
                shared: self.shared.clone(),
            }),
        }
    }
}

struct Pending {
    start: Instant,
    request_id: HeaderValue,
    op: Operation,
    method: Method,
    shared: Arc<Shared>,
}

pin_project_lite::pin_project! {
    /// The future of [`Observe`].
    pub(crate) struct ObserveFuture<F> {
        #[pin]
        inner: F,
        state: Option<Pending>,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // A handler that panics is not polled again: its future is dropped
        // with this one. The panic's message may hold request data, so it is
        // not logged; the default hook has already printed it to stderr.
        let mut inner = this.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)));
        let mut res = match polled {
            Ok(poll) => {
                let Ok(res) = ready!(poll);
                res
            }
            Err(_) => {
                tracing::error!(target: "tessera::http", "a request handler panicked");
                error::ApiError::system("the request failed").into_response()
            }
        };
        let Some(p) = this.state.take() else {
            return Poll::Ready(Ok(res));
        };
        let request_id = p.request_id.to_str().unwrap_or("unknown");
        let outcome = error::pending(&res).map_or(0, |e| error::outcome_index(e.kind));
        let outcome = if outcome == 0 && res.status().is_client_error() {
            error::outcome_index("VALIDATION_ERROR")
        } else {
            outcome
        };
        error::render(&mut res, request_id);
        let elapsed = p.start.elapsed();
        p.shared
            .metrics
            .record_request(p.op, outcome, elapsed.as_secs_f64());
        let logged = !res.status().is_client_error() || p.shared.rejected_logs.admit();
        if logged {
            tracing::info!(
            target: "tessera::http",
            method = %p.method,
            route = p.op.route(),
            status = res.status().as_u16(),
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            request_id,
            "request"
            );
        }
        res.headers_mut().insert(REQUEST_ID.clone(), p.request_id);
        // Tokens and session data must not sit in a cache (RFC 6749 5.1): no
        // response is cacheable unless its handler says so (the JWK Set).
        res.headers_mut()
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_system_error_and_is_counted() {
        use axum::Router;
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        async fn boom() -> &'static str {
            panic!("a bug in a handler")
        }
        let metrics = Arc::new(Metrics::new());
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(ObserveLayer::new(metrics.clone(), Duration::from_secs(15)));
        let req = |path: &str| {
            Request::builder()
                .uri(path)
                .header(&REQUEST_ID, "req-1")
                .body(Body::empty())
                .expect("request")
        };
        let res = app.clone().oneshot(req("/boom")).await.expect("infallible");
        assert_eq!(res.status(), 500);
        assert_eq!(res.headers()[&REQUEST_ID], "req-1");
        let body = axum::body::to_bytes(res.into_body(), 4096)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"]["type"], "SYSTEM_ERROR");
        assert_eq!(json["error"]["request_id"], "req-1");
        assert!(
            metrics.render().contains(r#"outcome="SYSTEM_ERROR"} 1"#),
            "the panic is counted as a SYSTEM_ERROR"
        );
        // The service keeps serving.
        let res = app.oneshot(req("/fine")).await.expect("infallible");
        assert_eq!(res.status(), 200);
    }

    #[test]
    fn generated_ids_are_unique_and_echoable() {
        let g = IdGenerator::new();
        let a = g.generate();
        let b = g.generate();
        assert_ne!(a, b);
        assert!(usable(&a) && usable(&b));
        assert_eq!(a.len(), 33);
    }

    #[test]
    fn only_short_plain_ids_are_echoed() {
        assert!(usable(&HeaderValue::from_static("req-42_a.b:c")));
        assert!(!usable(&HeaderValue::from_static("")));
        assert!(!usable(&HeaderValue::from_static("has space")));
        assert!(!usable(&HeaderValue::from_static("quote\"d")));
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        assert!(!usable(&HeaderValue::from_str(&long).expect("ascii")));
    }
}
