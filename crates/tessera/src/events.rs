//! Lifecycle events, for audit trails.
//!
//! The manager reports every lifecycle change to an [`EventSink`]. The
//! default, [`TracingEvents`], writes them as `tracing` events with the target
//! `tessera::audit`; an application can plug in its own sink to ship them to
//! an audit store. Events carry ids, never tokens.

use std::fmt;

use crate::ids::{OrgId, SessionId, UserId};
use crate::policy::RoleName;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The holder of its access token logged out.
    Logout,
    /// An operator or the application revoked it by id.
    Revoked,
    /// The user logged out everywhere.
    UserLogout,
    /// The user's membership in its org was removed.
    MembershipRemoved,
    /// A rotated-out refresh token was presented again.
    RefreshReuse,
}

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A session was created.
    Created {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// Its org.
        org_id: OrgId,
    },
    /// A refresh token was rotated.
    Refreshed {
        /// The session.
        session_id: SessionId,
    },
    /// A session was ended.
    Destroyed {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: EndReason,
    },
    /// All sessions of a user were ended.
    UserSessionsDestroyed {
        /// The user.
        user_id: UserId,
        /// How many sessions ended.
        count: u64,
    },
    /// Cleanup removed expired sessions.
    Expired {
        /// How many.
        count: u64,
    },
    /// A rotated-out refresh token was presented: likely theft. The session
    /// has been revoked.
    RefreshReuseDetected {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
    },
    /// A membership was set (`role: Some`) or removed (`role: None`).
    MembershipChanged {
        /// The user.
        user_id: UserId,
        /// The org.
        org_id: OrgId,
        /// The new role, or `None` if removed.
        role: Option<RoleName>,
    },
}

/// Receives lifecycle events. Must not block: it is called on request paths.
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// Records one event.
    fn record(&self, event: &SessionEvent);
}

/// Writes events as `tracing` events with target `tessera::audit`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn record(&self, event: &SessionEvent) {
        match event {
            SessionEvent::RefreshReuseDetected {
                session_id,
                user_id,
            } => tracing::warn!(
                target: "tessera::audit",
                event = "refresh_reuse_detected",
                %session_id,
                %user_id,
                "a rotated-out refresh token was presented again; session revoked"
            ),
            other => tracing::info!(target: "tessera::audit", event = ?other, "session event"),
        }
    }
}
