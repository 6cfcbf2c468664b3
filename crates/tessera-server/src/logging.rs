//! Logs: text or JSON lines on standard error, filtered by `RUST_LOG`
//! (default `info`). Request lines come from the `tessera::http` target,
//! lifecycle events from `tessera::audit`.
//!
//! At tens of thousands of requests per second, a `write` system call per
//! request line costs more than the request. So lines are appended to a
//! shared buffer that is written out when it passes 64 KiB, or by a
//! background thread every 100 ms; warnings, errors and audit events are
//! written at once, with everything before them. No thread is woken per
//! line, and nothing is dropped: [`LogGuard`] flushes the rest when the
//! process ends.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

const FLUSH_AT: usize = 64 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A buffer in front of a writer. Cloning shares it.
struct Batched<W> {
    inner: Arc<Mutex<Buffer<W>>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Buffer<W> {
    pending: Vec<u8>,
    out: W,
}

impl<W: Write> Buffer<W> {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // A log that cannot be written has nowhere to report to.
            let _ = self.out.write_all(&self.pending);
            let _ = self.out.flush();
            self.pending.clear();
        }
    }
}

impl<W: Write + Send + 'static> Batched<W> {
    fn new(out: W) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Buffer {
                pending: Vec::with_capacity(FLUSH_AT + 4096),
                out,
            })),
        }
    }

    fn flush(&self) {
        self.inner.lock().flush();
    }

    /// Flushes every [`FLUSH_EVERY`] until the buffer is dropped.
    fn spawn_flusher(&self) {
        let weak: Weak<Mutex<Buffer<W>>> = Arc::downgrade(&self.inner);
        let _ = std::thread::Builder::new()
            .name("tessera-log".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    match weak.upgrade() {
                        Some(inner) => inner.lock().flush(),
                        None => return,
                    }
                }
            });
    }
}

/// Writes one event into the buffer; `urgent` events flush it.
struct EventWriter<'a, W: Write> {
    batched: &'a Batched<W>,
    urgent: bool,
}

impl<W: Write> Write for EventWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut b = self.batched.inner.lock();
        b.pending.extend_from_slice(buf);
        if b.pending.len() >= FLUSH_AT {
            b.flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for EventWriter<'_, W> {
    fn drop(&mut self) {
        if self.urgent {
            self.batched.inner.lock().flush();
        }
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for Batched<W> {
    type Writer = EventWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            batched: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            batched: self,
            urgent: *meta.level() <= Level::WARN || meta.target().starts_with("tessera::audit"),
        }
    }
}

/// Flushes the log buffer when dropped. Hold it until the process ends.
pub struct LogGuard {
    batched: Option<Batched<io::Stderr>>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogGuard")
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(b) = &self.batched {
            b.flush();
        }
    }
}

/// Installs the global subscriber. A second call installs nothing.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::stderr().is_terminal();
    let batched = Batched::new(io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(batched.clone())
        // Colours only for a person at a terminal, never in collected logs.
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() {
        batched.spawn_flusher();
    }
    LogGuard {
        batched: installed.is_ok().then_some(batched),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn event(b: &Batched<Sink>, urgent: bool, line: &str) {
        let mut w = EventWriter { batched: b, urgent };
        w.write_all(line.as_bytes()).expect("write");
    }

    #[test]
    fn routine_lines_are_batched_and_urgent_ones_flush_everything() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        event(&b, false, "one\n");
        event(&b, false, "two\n");
        assert!(sink.0.lock().is_empty(), "routine lines wait");
        event(&b, true, "warn\n");
        assert_eq!(
            sink.0.lock().concat(),
            b"one\ntwo\nwarn\n",
            "in order, at once"
        );
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting() {
        let sink = Sink::default();
        let b = Batched::new(sink.clone());
        let line = format!("{}\n", "x".repeat(1023));
        for _ in 0..(FLUSH_AT / 1024) {
            event(&b, false, &line);
        }
        assert_eq!(sink.0.lock().concat().len(), FLUSH_AT);
        b.flush();
    }
}
