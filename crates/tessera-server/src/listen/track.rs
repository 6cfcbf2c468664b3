//! What each open connection is doing, and the sweeper that closes the ones
//! that overstay.
//!
//! The hot path pays a few relaxed atomic operations: a read marks its
//! connection, a request raises and lowers its in-flight count, and the end
//! of a request reads a coarse clock the sweeper keeps. No request arms a
//! timer of its own (one per request cost 17% of validate throughput). One
//! sweeper task looks at every connection a few times a second and decides,
//! from those marks, which ones are idle too long, which are too slow with
//! their headers, and which is the oldest idle one when the cap is reached.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::metrics::{CloseReason, ConnectionMetrics};

/// How often the sweeper looks at the connections: the resolution of every
/// connection timer.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// What a connection has been asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Close {
    /// Keep serving.
    No = 0,
    /// Finish what is in flight, then close (HTTP/2 sends GOAWAY).
    Graceful = 1,
    /// Close now.
    Abort = 2,
}

/// One open connection's marks.
#[derive(Debug)]
pub(super) struct Conn {
    id: u64,
    /// Requests whose response has not been produced yet.
    in_flight: AtomicU32,
    /// Set by every read, cleared when the last in-flight request ends: a
    /// read while nothing is in flight is the start of a request's headers
    /// (or, on HTTP/2, a control frame).
    read_since_idle: AtomicBool,
    /// Clock reading (ms) when the connection last became idle.
    idle_since: AtomicU64,
    /// Clock reading (ms) from which the headers of the next request are
    /// awaited; 0 when none is awaited. Starts at the accept.
    pending_since: AtomicU64,
    /// Whether it speaks HTTP/2 (its idle timer ignores control frames).
    h2: AtomicBool,
    close: AtomicU8,
    wake: Notify,
    /// The tracker's coarse clock, read when a request ends.
    clock: Arc<AtomicU64>,
}

impl Conn {
    /// Asks the connection's task to close; a stronger request replaces a
    /// weaker one.
    pub(super) fn request_close(&self, how: Close) {
        let previous = self.close.fetch_max(how as u8, Ordering::AcqRel);
        if previous < how as u8 {
            self.wake.notify_one();
        }
    }

    /// What the connection has been asked to do.
    pub(super) fn close_requested(&self) -> Close {
        match self.close.load(Ordering::Acquire) {
            0 => Close::No,
            1 => Close::Graceful,
            _ => Close::Abort,
        }
    }

    /// Resolves when a close is requested (or a stronger one after it).
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(super) fn mark_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
    }

    /// A request of this connection has started (its headers are in).
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.pending_since.store(0, Ordering::Relaxed);
        InFlight { conn: self.clone() }
    }
}

/// Every open connection, the coarse clock and the limits.
#[derive(Debug)]
pub(super) struct Tracker {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    emptied: Notify,
    next_id: AtomicU64,
    /// Milliseconds since `start`, advanced by the sweeper.
    clock: Arc<AtomicU64>,
    start: Instant,
    idle_timeout_ms: u64,
    header_timeout_ms: u64,
    max_connections: usize,
    metrics: Arc<ConnectionMetrics>,
}

impl Tracker {
    pub(super) fn new(
        idle_timeout: Duration,
        header_timeout: Duration,
        max_connections: usize,
        metrics: Arc<ConnectionMetrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            conns: Mutex::new(HashMap::new()),
            emptied: Notify::new(),
            next_id: AtomicU64::new(0),
            // Starts at 1 so that 0 can mean "not set".
            clock: Arc::new(AtomicU64::new(1)),
            start: Instant::now(),
            idle_timeout_ms: millis(idle_timeout),
            header_timeout_ms: millis(header_timeout),
            max_connections,
            metrics,
        })
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    pub(super) fn open(&self) -> usize {
        self.conns.lock().len()
    }

    /// Makes room for one more connection: at the cap, the oldest idle
    /// connection is closed. `false` if every connection is busy.
    pub(super) fn make_room(&self) -> bool {
        let conns = self.conns.lock();
        if conns.len() < self.max_connections {
            return true;
        }
        let busy = |c: &Conn| {
            c.in_flight.load(Ordering::Relaxed) > 0 || c.close_requested() == Close::Abort
        };
        let oldest = conns
            .values()
            .filter(|c| !busy(c))
            .min_by_key(|c| (idle_age_key(c), c.id));
        match oldest {
            Some(c) => {
                c.request_close(Close::Abort);
                self.metrics.closed(CloseReason::Shed);
                true
            }
            None => false,
        }
    }

    /// Registers a new connection, awaiting its first request's headers.
    pub(super) fn register(&self) -> Arc<Conn> {
        let now = self.now();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            read_since_idle: AtomicBool::new(false),
            idle_since: AtomicU64::new(now),
            pending_since: AtomicU64::new(now),
            h2: AtomicBool::new(false),
            close: AtomicU8::new(Close::No as u8),
            wake: Notify::new(),
            clock: self.clock.clone(),
        });
        self.conns.lock().insert(conn.id, conn.clone());
        self.metrics.set_open(self.open());
        conn
    }

    pub(super) fn unregister(&self, conn: &Conn) {
        let mut conns = self.conns.lock();
        conns.remove(&conn.id);
        let open = conns.len();
        drop(conns);
        self.metrics.set_open(open);
        if open == 0 {
            self.emptied.notify_waiters();
        }
    }

    /// Asks every connection to close the same way.
    pub(super) fn close_all(&self, how: Close) -> usize {
        let conns = self.conns.lock();
        for c in conns.values() {
            c.request_close(how);
        }
        conns.len()
    }

    /// Resolves when no connection is open.
    pub(super) async fn until_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.open() == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Closes what overstays, for as long as the tracker lives.
    pub(super) async fn sweep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = u64::try_from(self.start.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            self.clock.store(now, Ordering::Relaxed);
            let conns = self.conns.lock();
            for c in conns.values() {
                if let Some(reason) = self.overstays(c, now) {
                    let how = match reason {
                        CloseReason::HeaderTimeout => Close::Abort,
                        _ => Close::Graceful,
                    };
                    if c.close_requested() < how {
                        self.metrics.closed(reason);
                        c.request_close(how);
                    }
                }
            }
        }
    }

    fn overstays(&self, c: &Conn, now: u64) -> Option<CloseReason> {
        if c.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let mut pending = c.pending_since.load(Ordering::Relaxed);
        // On HTTP/1.1 a read while nothing is in flight is the start of a
        // request's headers. On HTTP/2 it may be a ping or a settings frame,
        // so only a new connection's first request is awaited that way.
        if pending == 0
            && !c.h2.load(Ordering::Relaxed)
            && c.read_since_idle.load(Ordering::Relaxed)
        {
            pending = now;
            c.pending_since.store(now, Ordering::Relaxed);
        }
        if pending != 0 {
            return (now.saturating_sub(pending) >= self.header_timeout_ms)
                .then_some(CloseReason::HeaderTimeout);
        }
        let idle = c.idle_since.load(Ordering::Relaxed);
        (now.saturating_sub(idle) >= self.idle_timeout_ms).then_some(CloseReason::Idle)
    }
}

/// Oldest first: awaiting headers or idle, by when that began (the clock is
/// coarse, so ties go to the older connection, the smaller id).
fn idle_age_key(c: &Conn) -> u64 {
    let pending = c.pending_since.load(Ordering::Relaxed);
    if pending != 0 {
        pending
    } else {
        c.idle_since.load(Ordering::Relaxed)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight; dropping it (the response is produced, or the
/// request is abandoned) lowers the count.
pub(super) struct InFlight {
    conn: Arc<Conn>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.conn.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.conn
                .idle_since
                .store(self.conn.clock.load(Ordering::Relaxed), Ordering::Relaxed);
            self.conn.read_since_idle.store(false, Ordering::Relaxed);
            self.conn.pending_since.store(0, Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's socket, marking its connection on every read.
    pub(super) struct Marked<I> {
        #[pin]
        inner: I,
        conn: Arc<Conn>,
    }
}

impl<I> Marked<I> {
    pub(super) fn new(inner: I, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

impl<I: AsyncRead> AsyncRead for Marked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let poll = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before && !this.conn.read_since_idle.load(Ordering::Relaxed) {
            this.conn.read_since_idle.store(true, Ordering::Relaxed);
        }
        poll
    }
}

impl<I: AsyncWrite> AsyncWrite for Marked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
