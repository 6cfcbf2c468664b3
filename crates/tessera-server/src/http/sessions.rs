//! The session endpoints an application calls on behalf of its users:
//! create, validate, refresh, log out and permission checks.

use super::respond::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tessera::ids::parse_ip;
use tessera::{DeviceId, NewSession, OrgId, UserAgent, UserId};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, Bearer};
use super::operation::Operation;
use super::wire::{CreateSessionRequest, PermissionView, RefreshRequest, SessionView, TokenPair};
use crate::state::AppState;

fn limit_key(prefix: &[u8; 8], id: &[u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(prefix);
    key[8..].copy_from_slice(id);
    key
}

/// Creates a session for a member of an org.
#[utoipa::path(
    post, path = "/v1/sessions", tag = "sessions",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "The session and its token pair", body = TokenPair),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR: a bad API key, or the user is not a member of the org", body = ErrorBody),
        (status = 408, description = "VALIDATION_ERROR: the body did not arrive within the read timeout", body = ErrorBody),
        (status = 413, description = "VALIDATION_ERROR: the body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED (per user); see Retry-After", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn create(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CreateSessionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let user = UserId::parse(&req.user_id)?;
    let mut new = NewSession::new(user, OrgId::parse(&req.org_id)?);
    if let Some(d) = &req.device_id {
        new = new.device_id(DeviceId::parse(d)?);
    }
    if let Some(ip) = &req.ip_address {
        new = new.ip_address(parse_ip(ip)?);
    }
    if let Some(ua) = &req.user_agent {
        new = new.user_agent(UserAgent::parse(ua)?);
    }
    let limits = s.inner.limits;
    s.check_limit(
        Operation::CreateSession,
        &limit_key(b"create\0\0", user.as_bytes()),
        limits.create_per_minute,
    )
    .await?;
    // Not per user: one credential spreading creations over many users.
    s.check_limit(
        Operation::CreateSession,
        &limit_key(b"creates\0", &[0; 16]),
        limits.create_total_per_minute,
    )
    .await?;
    let issued = s.inner.manager.create_session(new).await?;
    Ok((StatusCode::CREATED, Json(TokenPair::from(issued))))
}

/// The session of the bearer access token.
#[utoipa::path(
    get, path = "/v1/sessions/current", tag = "sessions",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "TOKEN_ERROR: the access token is missing, malformed, expired or revoked (with WWW-Authenticate); or AUTHENTICATION_ERROR for a bad API key", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = [], "bearer" = []))
)]
pub(crate) async fn current(
    State(s): State<AppState>,
    bearer: Bearer,
) -> Result<Json<SessionView>, ApiError> {
    let info = s
        .inner
        .manager
        .validate_session(bearer.token())
        .await
        .map_err(|e| ApiError::from(e).bearer())?;
    Ok(Json(info.into()))
}

/// Rotates a refresh token: a new pair, and the presented token stops
/// working. Presenting a rotated-out token again revokes the session (except
/// the immediately previous one within the grace window, which gets the same
/// new pair).
#[utoipa::path(
    post, path = "/v1/sessions/refresh", tag = "sessions",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "TOKEN_ERROR: unknown, expired, rotated-out or malformed refresh token", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED (per session); see Retry-After", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn refresh(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<impl IntoResponse, ApiError> {
    // The MAC is checked first, so only a token Tessera issued can spend a
    // session's refresh budget.
    let session =
        tessera::token::refresh::session_id_of(s.inner.manager.keys(), &req.refresh_token)?;
    let limit = s.inner.limits.refresh_per_minute;
    s.check_limit(
        Operation::RefreshSession,
        &limit_key(b"refresh\0", session.as_bytes()),
        limit,
    )
    .await?;
    let issued = s.inner.manager.refresh_session(&req.refresh_token).await?;
    Ok(Json(TokenPair::from(issued)))
}

/// Logs out: ends the session of the bearer access token. Its access and
/// refresh tokens fail from then on.
#[utoipa::path(
    delete, path = "/v1/sessions/current", tag = "sessions",
    responses(
        (status = 204, description = "The session has ended"),
        (status = 401, description = "TOKEN_ERROR (with WWW-Authenticate) or AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = [], "bearer" = []))
)]
pub(crate) async fn destroy(
    State(s): State<AppState>,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    s.inner
        .manager
        .destroy_session(bearer.token())
        .await
        .map_err(|e| ApiError::from(e).bearer())?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the session's current role grants a permission.
#[utoipa::path(
    get, path = "/v1/sessions/current/permissions/{permission}", tag = "sessions",
    params(("permission" = String, Path, description = "action:resource, for example read:users")),
    responses(
        (status = 200, description = "The answer", body = PermissionView),
        (status = 400, description = "VALIDATION_ERROR: a malformed permission", body = ErrorBody),
        (status = 401, description = "TOKEN_ERROR (with WWW-Authenticate) or AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = [], "bearer" = []))
)]
pub(crate) async fn permission(
    State(s): State<AppState>,
    ApiPath(permission): ApiPath<String>,
    bearer: Bearer,
) -> Result<Json<PermissionView>, ApiError> {
    let allowed = s
        .inner
        .manager
        .has_permission(bearer.token(), &permission)
        .await
        .map_err(|e| ApiError::from(e).bearer())?;
    Ok(Json(PermissionView {
        permission,
        allowed,
    }))
}
