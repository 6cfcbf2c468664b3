//! The background cleanup task.
//!
//! It holds only a `Weak` reference to the manager, so it never keeps the
//! manager alive, and it watches a channel whose sender lives in the manager:
//! when the last handle drops, the sender drops, `changed()` returns an error
//! and the task ends at once instead of at its next tick.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::{Inner, SessionManager};

pub(super) async fn run(inner: Weak<Inner>, every: Duration, mut stop: watch::Receiver<()>) {
    let mut ticker = tokio::time::interval(every);
    // The first tick fires at once; skip it so cleanup starts one interval in.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let manager = SessionManager { inner };
        if let Err(e) = manager.cleanup_expired_sessions().await {
            tracing::error!(error.kind = %e.kind(), error = %e, "scheduled cleanup failed");
        }
    }
}
