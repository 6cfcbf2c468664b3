//! The JSON shapes of the API, as they are on the wire and in the OpenAPI
//! document. Times are RFC 3339 UTC strings; ids are lowercase hyphenated
//! UUIDs. Request bodies refuse unknown fields.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize, Serializer};
use tessera::{
    DeviceId, IssuedTokens, OrgId, RoleName, SessionId, SessionInfo, SessionStats, SessionUser,
    UserAgent, UserId,
};
use utoipa::ToSchema;

/// A time as RFC 3339 UTC (`2027-01-15T08:00:00Z`), formatted into a stack
/// buffer: it is on the validate hot path three times per response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

/// The latest time written; later ones (never produced by real lifetimes)
/// are clamped to it so the year keeps four digits.
const MAX_RFC3339: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z

impl Rfc3339 {
    /// The formatted bytes.
    pub fn to_bytes(self) -> [u8; 20] {
        let secs = self.0.min(MAX_RFC3339);
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Howard Hinnant's days-to-civil algorithm, in unsigned arithmetic
        // (times before 1970 cannot occur here).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let mut out = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, rem / 3600);
        put(14, 2, rem % 3600 / 60);
        put(17, 2, rem % 60);
        out
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes();
        // Digits and separators only: always UTF-8.
        s.serialize_str(std::str::from_utf8(&bytes).unwrap_or("1970-01-01T00:00:00Z"))
    }
}

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// The user (UUID).
    #[schema(format = Uuid)]
    pub user_id: String,
    /// The org the session is in (UUID); the user must be a member.
    #[schema(format = Uuid)]
    pub org_id: String,
    /// The client's device id: 1 to 128 printable ASCII characters.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The client's IP address (v4 or v6).
    #[serde(default)]
    pub ip_address: Option<String>,
    /// The client's user agent: up to 512 bytes, no control characters.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// `POST /v1/sessions/refresh`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token of the session.
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { refresh_token: [redacted] }")
    }
}

/// `PUT /v1/orgs/{org_id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMembershipRequest {
    /// A role the policy defines.
    pub role: String,
}

/// Who a session belongs to and what they may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The user id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// The org of the session.
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    /// The user's role in the org.
    #[schema(value_type = String)]
    pub role: RoleName,
    /// The role's grants, such as `read:*`.
    pub permissions: Vec<String>,
}

impl From<SessionUser> for UserView {
    fn from(u: SessionUser) -> Self {
        Self {
            id: u.id,
            org_id: u.org_id,
            role: u.role,
            permissions: u.permissions,
        }
    }
}

/// A new token pair: the answer of create and refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    /// The access token (a JWT); send it as `Authorization: Bearer`.
    pub access_token: String,
    /// The refresh token; single use, rotated by `/v1/sessions/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session's user.
    pub user: UserView,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl From<IssuedTokens> for TokenPair {
    fn from(t: IssuedTokens) -> Self {
        Self {
            session_id: t.session_id,
            access_token: t.access_token.expose().to_owned(),
            refresh_token: t.refresh_token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_expires_in: t.refresh_expires_in,
            user: t.user.into(),
        }
    }
}

/// The session of an access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    /// Its user.
    pub user: UserView,
    /// The client's device id, if given at creation.
    #[schema(value_type = Option<String>)]
    pub device_id: Option<DeviceId>,
    /// The client's IP address, if given at creation.
    #[schema(value_type = Option<String>)]
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, if given at creation.
    #[schema(value_type = Option<String>)]
    pub user_agent: Option<UserAgent>,
    /// When the session was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// When it was last used (updated at most once a minute).
    #[schema(value_type = String, format = DateTime)]
    pub last_activity: Rfc3339,
    /// When it expires unless refreshed.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
}

impl From<SessionInfo> for SessionView {
    fn from(s: SessionInfo) -> Self {
        Self {
            session_id: s.session_id,
            user: s.user.into(),
            device_id: s.device_id,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            created_at: Rfc3339(s.created_at),
            last_activity: Rfc3339(s.last_activity),
            expires_at: Rfc3339(s.expires_at),
        }
    }
}

/// One of a user's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSessionView {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    /// The org it is in.
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    /// The client's device id, if given.
    #[schema(value_type = Option<String>)]
    pub device_id: Option<DeviceId>,
    /// The client's IP address, if given.
    #[schema(value_type = Option<String>)]
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, if given.
    #[schema(value_type = Option<String>)]
    pub user_agent: Option<UserAgent>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// When it was last used.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity: Rfc3339,
    /// When it expires unless refreshed.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
}

impl From<SessionInfo> for UserSessionView {
    fn from(s: SessionInfo) -> Self {
        Self {
            session_id: s.session_id,
            org_id: s.user.org_id,
            device_id: s.device_id,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            created_at: Rfc3339(s.created_at),
            last_activity: Rfc3339(s.last_activity),
            expires_at: Rfc3339(s.expires_at),
        }
    }
}

/// `GET /v1/users/{user_id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSessionList {
    /// A page of the user's live sessions, oldest first.
    pub sessions: Vec<UserSessionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/users/{user_id}/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A live session in an operator's listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveSessionView {
    /// The session.
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    /// Its user.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// The org it is in.
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    /// The user's role in that org.
    #[schema(value_type = String)]
    pub role: RoleName,
    /// The client's device id, if given.
    #[schema(value_type = Option<String>)]
    pub device_id: Option<DeviceId>,
    /// The client's IP address, if given.
    #[schema(value_type = Option<String>)]
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, if given.
    #[schema(value_type = Option<String>)]
    pub user_agent: Option<UserAgent>,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// When it was last used.
    #[schema(value_type = String, format = DateTime)]
    pub last_activity: Rfc3339,
    /// When it expires unless refreshed.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
}

impl From<SessionInfo> for ActiveSessionView {
    fn from(s: SessionInfo) -> Self {
        Self {
            session_id: s.session_id,
            user_id: s.user.id,
            org_id: s.user.org_id,
            role: s.user.role,
            device_id: s.device_id,
            ip_address: s.ip_address,
            user_agent: s.user_agent,
            created_at: Rfc3339(s.created_at),
            last_activity: Rfc3339(s.last_activity),
            expires_at: Rfc3339(s.expires_at),
        }
    }
}

/// `GET /v1/sessions`: one page.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPageView {
    /// The sessions of this page.
    pub sessions: Vec<ActiveSessionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The query of `GET /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only sessions in this org.
    pub org_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/sessions/current/permissions/{permission}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    /// The permission checked.
    pub permission: String,
    /// Whether the session's current role grants it.
    pub allowed: bool,
}

/// A membership.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    /// The org.
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    /// The user.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    /// The user's role in the org.
    #[schema(value_type = String)]
    pub role: RoleName,
}

/// `DELETE /v1/users/{user_id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedView {
    /// How many sessions were revoked.
    pub revoked: u64,
}

/// `POST /v1/cleanup`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedView {
    /// How many expired sessions were removed.
    pub removed: u64,
}

/// `GET /v1/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    /// Live sessions in the store.
    pub active_sessions: u64,
    /// Live sessions per org id.
    pub active_by_org: BTreeMap<String, u64>,
    /// Sessions created by this process.
    pub sessions_created: u64,
    /// Refresh-token rotations by this process.
    pub sessions_refreshed: u64,
    /// Sessions ended by this process (logout, revocation, reuse).
    pub sessions_destroyed: u64,
    /// Expired sessions removed by this process's cleanups.
    pub sessions_expired: u64,
    /// Rotated-out refresh tokens presented again.
    pub refresh_reuse_detected: u64,
    /// When cleanup last ran; `null` before the first.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_cleanup: Option<Rfc3339>,
    /// How many sessions the last cleanup removed.
    pub last_cleanup_removed: u64,
}

impl From<SessionStats> for StatsView {
    fn from(s: SessionStats) -> Self {
        Self {
            active_sessions: s.active_sessions,
            active_by_org: s
                .active_by_org
                .into_iter()
                .map(|(org, n)| (org.to_string(), n))
                .collect(),
            sessions_created: s.sessions_created,
            sessions_refreshed: s.sessions_refreshed,
            sessions_destroyed: s.sessions_destroyed,
            sessions_expired: s.sessions_expired,
            refresh_reuse_detected: s.refresh_reuse_detected,
            last_cleanup: s.last_cleanup.map(Rfc3339),
            last_cleanup_removed: s.last_cleanup_removed,
        }
    }
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// `ok` or `ready`.
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_match_a_reference_formatter() {
        use std::time::{Duration, UNIX_EPOCH};
        let mut t: u64 = 0;
        // Every day boundary and leap rule over four centuries, plus odd
        // seconds in between.
        while t < 13_000_000_000 {
            let ours = Rfc3339(t).to_bytes();
            let reference =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
            assert_eq!(std::str::from_utf8(&ours).expect("ascii"), reference, "{t}");
            t += 86_399 * 7 + 13;
        }
        assert_eq!(&Rfc3339(u64::MAX).to_bytes(), b"9999-12-31T23:59:59Z");
        assert_eq!(&Rfc3339(951_782_400).to_bytes(), b"2000-02-29T00:00:00Z");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let s = serde_json::to_string(&Rfc3339(1_800_000_000)).expect("serializes");
        assert_eq!(s, "\"2027-01-15T08:00:00Z\"");
        let s = serde_json::to_string(&Rfc3339(0)).expect("serializes");
        assert_eq!(s, "\"1970-01-01T00:00:00Z\"");
    }
}
