//! What the manager takes and returns.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::error::Result;
use crate::ids::{DeviceId, OrgId, SessionId, UserAgent, UserId, parse_ip};
use crate::policy::RoleName;
use crate::token::Token;

/// A request to create a session: the specification's
/// `createSession(userId, orgId, deviceId?, ipAddress?)`, plus a user agent
/// and custom attributes, all sealed into the session record.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub(crate) user_id: UserId,
    pub(crate) org_id: OrgId,
    pub(crate) device_id: Option<DeviceId>,
    pub(crate) ip_address: Option<IpAddr>,
    pub(crate) user_agent: Option<UserAgent>,
    pub(crate) attributes: BTreeMap<String, String>,
}

impl NewSession {
    /// A session for `user_id` in `org_id`.
    pub fn new(user_id: UserId, org_id: OrgId) -> Self {
        Self {
            user_id,
            org_id,
            device_id: None,
            ip_address: None,
            user_agent: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Parses every field from strings, as they arrive from a client.
    pub fn parse(
        user_id: &str,
        org_id: &str,
        device_id: Option<&str>,
        ip_address: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            user_id: UserId::parse(user_id)?,
            org_id: OrgId::parse(org_id)?,
            device_id: device_id.map(DeviceId::parse).transpose()?,
            ip_address: ip_address.map(parse_ip).transpose()?,
            user_agent: user_agent.map(UserAgent::parse).transpose()?,
            attributes: BTreeMap::new(),
        })
    }

    /// The client's device id.
    pub fn device_id(mut self, device_id: DeviceId) -> Self {
        self.device_id = Some(device_id);
        self
    }

    /// The client's IP address.
    pub fn ip_address(mut self, ip: IpAddr) -> Self {
        self.ip_address = Some(ip);
        self
    }

    /// The client's user agent.
    pub fn user_agent(mut self, user_agent: UserAgent) -> Self {
        self.user_agent = Some(user_agent);
        self
    }

    /// A custom attribute, sealed with the session.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// Who a session belongs to, and what they may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionUser {
    /// The user id.
    pub id: UserId,
    /// The org the session is in.
    pub org_id: OrgId,
    /// The user's current role in that org.
    pub role: RoleName,
    /// The role's grants.
    pub permissions: Vec<String>,
}

/// A fresh token pair: what `create_session` and `refresh_session` return.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    /// The session.
    pub session_id: SessionId,
    /// The JWT access token.
    pub access_token: Token,
    /// The opaque refresh token.
    pub refresh_token: Token,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session's user.
    pub user: SessionUser,
}

/// A live session, as shown to its owner or an operator. No tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session.
    pub session_id: SessionId,
    /// Its user.
    pub user: SessionUser,
    /// The client's device id, if given.
    pub device_id: Option<DeviceId>,
    /// The client's IP address, if given.
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, if given.
    pub user_agent: Option<UserAgent>,
    /// When it was created (Unix seconds).
    pub created_at: u64,
    /// When it was last used (Unix seconds), to the activity interval.
    pub last_activity: u64,
    /// When it expires unless refreshed (Unix seconds).
    pub expires_at: u64,
    /// Custom attributes given at creation.
    pub attributes: BTreeMap<String, String>,
}

/// Which sessions [`SessionManager::active_sessions`](crate::SessionManager::active_sessions) lists.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    /// Only sessions in this org.
    pub org_id: Option<OrgId>,
}

/// A page request: at most `limit` sessions after `cursor`.
#[derive(Clone, Debug)]
pub struct PageRequest {
    /// How many sessions at most (capped at 1000).
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 100,
            cursor: None,
        }
    }
}

/// A page of sessions.
#[derive(Clone, Debug, Default)]
pub struct SessionPage {
    /// The sessions.
    pub sessions: Vec<SessionInfo>,
    /// The cursor of the next page, or `None` on the last.
    pub next_cursor: Option<String>,
}

/// Session statistics: the specification's `getSessionStats()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    /// Live sessions in the store.
    pub active_sessions: u64,
    /// Live sessions per org.
    pub active_by_org: BTreeMap<OrgId, u64>,
    /// Sessions created by this manager.
    pub sessions_created: u64,
    /// Refresh-token rotations by this manager.
    pub sessions_refreshed: u64,
    /// Sessions ended by this manager (logout, revocation, reuse).
    pub sessions_destroyed: u64,
    /// Expired sessions removed by this manager's cleanups.
    pub sessions_expired: u64,
    /// Rotated-out refresh tokens presented again.
    pub refresh_reuse_detected: u64,
    /// When cleanup last ran (Unix seconds), if it has.
    pub last_cleanup: Option<u64>,
    /// How many sessions the last cleanup removed.
    pub last_cleanup_removed: u64,
}
