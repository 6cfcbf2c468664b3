//! The endpoints of the service, as one table.
//!
//! Metrics, request logs and the OpenAPI check all name an endpoint by its
//! [`Operation`], so the set of label values is fixed and small whatever
//! paths clients send.

use axum::http::Method;

/// One endpoint of the API, or a request that matched none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /v1/sessions`
    CreateSession,
    /// `GET /v1/sessions/current`
    ValidateSession,
    /// `POST /v1/sessions/refresh`
    RefreshSession,
    /// `DELETE /v1/sessions/current`
    DestroySession,
    /// `GET /v1/sessions/current/permissions/{permission}`
    CheckPermission,
    /// `GET /v1/users/{user_id}/sessions`
    ListUserSessions,
    /// `DELETE /v1/users/{user_id}/sessions`
    RevokeUserSessions,
    /// `DELETE /v1/sessions/{session_id}`
    RevokeSession,
    /// `GET /v1/sessions`
    ListSessions,
    /// `GET /v1/stats`
    Stats,
    /// `POST /v1/cleanup`
    Cleanup,
    /// `PUT /v1/orgs/{org_id}/members/{user_id}`
    SetMembership,
    /// `GET /v1/orgs/{org_id}/members/{user_id}`
    GetMembership,
    /// `DELETE /v1/orgs/{org_id}/members/{user_id}`
    RemoveMembership,
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `GET /openapi.json`
    OpenApi,
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// No route matched, or the method is not allowed on the path.
    Unmatched,
}

/// Every routed endpoint: method, path template (as in the router and the
/// OpenAPI document) and operation.
pub const ROUTES: &[(Method, &str, Operation)] = &[
    (Method::POST, "/v1/sessions", Operation::CreateSession),
    (Method::GET, "/v1/sessions", Operation::ListSessions),
    (
        Method::GET,
        "/v1/sessions/current",
        Operation::ValidateSession,
    ),
    (
        Method::DELETE,
        "/v1/sessions/current",
        Operation::DestroySession,
    ),
    (
        Method::POST,
        "/v1/sessions/refresh",
        Operation::RefreshSession,
    ),
    (
        Method::GET,
        "/v1/sessions/current/permissions/{permission}",
        Operation::CheckPermission,
    ),
    (
        Method::DELETE,
        "/v1/sessions/{session_id}",
        Operation::RevokeSession,
    ),
    (
        Method::GET,
        "/v1/users/{user_id}/sessions",
        Operation::ListUserSessions,
    ),
    (
        Method::DELETE,
        "/v1/users/{user_id}/sessions",
        Operation::RevokeUserSessions,
    ),
    (Method::GET, "/v1/stats", Operation::Stats),
    (Method::POST, "/v1/cleanup", Operation::Cleanup),
    (
        Method::PUT,
        "/v1/orgs/{org_id}/members/{user_id}",
        Operation::SetMembership,
    ),
    (
        Method::GET,
        "/v1/orgs/{org_id}/members/{user_id}",
        Operation::GetMembership,
    ),
    (
        Method::DELETE,
        "/v1/orgs/{org_id}/members/{user_id}",
        Operation::RemoveMembership,
    ),
    (Method::GET, "/healthz", Operation::Healthz),
    (Method::GET, "/readyz", Operation::Readyz),
    (Method::GET, "/metrics", Operation::Metrics),
    (Method::GET, "/openapi.json", Operation::OpenApi),
    (Method::GET, "/.well-known/jwks.json", Operation::Jwks),
];

impl Operation {
    /// All operations, in a fixed order (the index of each is its
    /// [`index`](Self::index)).
    pub const ALL: [Operation; 20] = [
        Operation::CreateSession,
        Operation::ValidateSession,
        Operation::RefreshSession,
        Operation::DestroySession,
        Operation::CheckPermission,
        Operation::ListUserSessions,
        Operation::RevokeUserSessions,
        Operation::RevokeSession,
        Operation::ListSessions,
        Operation::Stats,
        Operation::Cleanup,
        Operation::SetMembership,
        Operation::GetMembership,
        Operation::RemoveMembership,
        Operation::Healthz,
        Operation::Readyz,
        Operation::Metrics,
        Operation::OpenApi,
        Operation::Jwks,
        Operation::Unmatched,
    ];

    /// The operation's position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label value used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateSession => "create_session",
            Operation::ValidateSession => "validate_session",
            Operation::RefreshSession => "refresh_session",
            Operation::DestroySession => "destroy_session",
            Operation::CheckPermission => "check_permission",
            Operation::ListUserSessions => "list_user_sessions",
            Operation::RevokeUserSessions => "revoke_user_sessions",
            Operation::RevokeSession => "revoke_session",
            Operation::ListSessions => "list_sessions",
            Operation::Stats => "stats",
            Operation::Cleanup => "cleanup",
            Operation::SetMembership => "set_membership",
            Operation::GetMembership => "get_membership",
            Operation::RemoveMembership => "remove_membership",
            Operation::Healthz => "healthz",
            Operation::Readyz => "readyz",
            Operation::Metrics => "metrics",
            Operation::OpenApi => "openapi",
            Operation::Jwks => "jwks",
            Operation::Unmatched => "unmatched",
        }
    }

    /// The operation routed at `method` and the path template `route`.
    pub fn find(method: &Method, route: &str) -> Operation {
        ROUTES
            .iter()
            .find(|(m, r, _)| r.len() == route.len() && m == method && *r == route)
            .map_or(Operation::Unmatched, |(_, _, op)| *op)
    }

    /// The path template of the operation, or `"-"` for unmatched requests
    /// (whose raw path is never logged: it may carry anything).
    pub fn route(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(_, _, op)| *op == self)
            .map_or("-", |(_, r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_at_its_index_and_routed_once() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
            let routed = ROUTES.iter().filter(|(_, _, o)| o == op).count();
            let expected = usize::from(*op != Operation::Unmatched);
            assert_eq!(routed, expected, "{op:?}");
        }
        for (m, r, op) in ROUTES {
            assert_eq!(Operation::find(m, r), *op);
        }
        assert_eq!(
            Operation::find(&Method::PATCH, "/v1/sessions"),
            Operation::Unmatched
        );
    }
}
