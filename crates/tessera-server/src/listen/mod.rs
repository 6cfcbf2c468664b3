//! Accepting connections and bounding what clients can hold.
//!
//! The service runs its own accept loop over hyper so that every connection,
//! HTTP/1.1 or HTTP/2, plain or TLS, is bounded the same way:
//!
//! - **Headers in time.** A new connection gets the header timeout
//!   (`TESSERA_READ_TIMEOUT_SECS`) for its TLS handshake and first request's
//!   headers; on HTTP/1.1 every later request gets it too, from its first
//!   byte. Past it the connection is dropped.
//! - **Idle connections close.** A connection with nothing in flight for the
//!   idle timeout (`TESSERA_IDLE_TIMEOUT_SECS`) is closed gracefully
//!   (HTTP/2 gets a GOAWAY); HTTP/2 pings and other control frames do not
//!   keep it open.
//! - **A cap.** At most `TESSERA_MAX_CONNECTIONS` are open. At the cap a new
//!   connection is still served: the oldest idle (or header-awaiting)
//!   connection is shed to make room. Only when every connection has a
//!   request in flight is the new one refused.
//! - **HTTP/2 limits.** Concurrent streams, pending resets, header list
//!   size, and keep-alive pings that close a dead peer's connection.
//! - **Accept errors** (descriptor exhaustion) are counted, logged at most
//!   once per ten seconds, and slow the loop down instead of spinning.
//!
//! Connections are tracked by [`track`]; the hot path pays a few atomic
//! operations and no timer per request.

mod track;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::metrics::ConnectionMetrics;
use track::{Close, Conn, Marked, Tracker};

/// How many requests one HTTP/2 connection may have in flight at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 64;
/// How often an HTTP/2 connection with requests in flight is pinged, and
/// how long the peer gets to answer before the connection is closed.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams a client may open and reset before they are accepted (the
/// "rapid reset" attack), and resets our side may send for its errors.
const H2_MAX_PENDING_RESETS: usize = 20;
const H2_MAX_ERROR_RESETS: usize = 256;
/// The largest request header block, HTTP/1.1 buffer and HTTP/2 list alike.
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Accept errors are logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A connection with nothing in flight closes after this long.
    pub idle_timeout: Duration,
    /// A request's headers (and a new connection's TLS handshake) must
    /// arrive within this long.
    pub header_timeout: Duration,
    /// At most this many connections are open.
    pub max_connections: usize,
    /// After shutdown begins, in-flight requests get this long.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes
/// gracefully: the listener closes, idle connections close, in-flight
/// requests get the grace period, and what remains is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<ConnectionMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    let tracker = Tracker::new(
        limits.idle_timeout,
        limits.header_timeout,
        limits.max_connections,
        metrics.clone(),
    );
    let sweeper = tokio::spawn(tracker.clone().sweep());
    let http = Arc::new(builder());
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    metrics.accept_failed();
                    accept_errors.log(&e, tracker.open());
                    // Out of descriptors: accepting again at once would spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !tracker.make_room() {
            metrics.refused();
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = tracker.register();
        let tracker = tracker.clone();
        let http = http.clone();
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_connection(stream, tls, &conn, &http, router).await;
            tracker.unregister(&conn);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tracker.close_all(Close::Graceful);
    if tokio::time::timeout(limits.shutdown_grace, tracker.until_empty())
        .await
        .is_err()
    {
        let open = tracker.close_all(Close::Abort);
        if open > 0 {
            tracing::warn!(
                grace_secs = limits.shutdown_grace.as_secs(),
                connections = open,
                "grace period over; dropped the connections still open"
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.until_empty()).await;
    }
    sweeper.abort();
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Header deadlines are the tracker's: one timer per request cost
        // throughput.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    b
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    conn: &Arc<Conn>,
    http: &auto::Builder<TokioExecutor>,
    router: Router,
) {
    let stream = Marked::new(stream, conn.clone());
    match tls {
        None => drive(stream, conn, http, router).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                done = acceptor.accept(stream) => done,
                () = conn.woken() => return,
            };
            // A failed handshake is the client's problem: nothing to log.
            let Ok(stream) = handshake else { return };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                conn.mark_h2();
            }
            drive(stream, conn, http, router).await;
        }
    }
}

async fn drive<I>(io: I, conn: &Arc<Conn>, http: &auto::Builder<TokioExecutor>, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = conn.begin();
            if request.version() == hyper::Version::HTTP_2 {
                conn.mark_h2();
            }
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(in_flight);
                response
            }
        })
    };
    let served = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(served);
    loop {
        tokio::select! {
            _ = served.as_mut() => return,
            () = conn.woken() => match conn.close_requested() {
                Close::Abort => return,
                Close::Graceful => served.as_mut().graceful_shutdown(),
                Close::No => {}
            },
        }
    }
}

/// Logs accept errors at a bounded rate, with how many were not logged.
#[derive(Default)]
struct AcceptErrors {
    last: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn log(&mut self, e: &std::io::Error, open: usize) {
        if self
            .last
            .is_some_and(|at| at.elapsed() < ACCEPT_ERROR_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::error!(
            error = %e,
            open_connections = open,
            not_logged_since_last = self.unlogged,
            "cannot accept a connection (out of file descriptors? see TESSERA_MAX_CONNECTIONS)"
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// The default connection cap: what the descriptor limit leaves after a
/// reserve for the store's connections, the data files and the logs.
pub fn default_max_connections(descriptor_limit: u64) -> usize {
    let reserve = (descriptor_limit / 10).max(64);
    usize::try_from(descriptor_limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Raises the soft limit on open descriptors to the hard limit and returns
/// the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if let Some(hard) = limit.maximum
        && hard > soft
    {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    soft
}

/// The local address of a listener bound for [`serve`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}
