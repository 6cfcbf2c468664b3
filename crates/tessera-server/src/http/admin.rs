//! Operator endpoints: list and revoke sessions, statistics, cleanup.

use super::respond::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tessera::{OrgId, PageRequest, SessionFilter, SessionId, UserId};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::wire::{
    ListQuery, PageQuery, RemovedView, RevokedView, SessionPageView, StatsView, UserSessionList,
};
use crate::state::AppState;

/// The largest page of `GET /v1/sessions`.
pub(crate) const MAX_PAGE: usize = 1000;

/// The live sessions of a user, a page at a time.
#[utoipa::path(
    get, path = "/v1/users/{user_id}/sessions", tag = "admin",
    params(
        ("user_id" = String, Path, format = Uuid),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the user's live sessions, oldest first", body = UserSessionList),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn user_sessions(
    State(s): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<UserSessionList>, ApiError> {
    let user = UserId::parse(&user_id)?;
    let page = PageRequest {
        limit: page_limit(q.limit.as_deref())?,
        cursor: q.cursor,
    };
    let page = s.inner.manager.user_sessions_page(&user, &page).await?;
    Ok(Json(UserSessionList {
        sessions: page.sessions.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The `limit` of a listing: 1 to [`MAX_PAGE`], 100 when absent.
fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(PageRequest::default().limit),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::validation("limit must be a whole number from 1 to 1000")),
    }
}

/// Ends every session of a user ("log out everywhere").
#[utoipa::path(
    delete, path = "/v1/users/{user_id}/sessions", tag = "admin",
    params(("user_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "How many sessions were revoked", body = RevokedView),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_user_sessions(
    State(s): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<RevokedView>, ApiError> {
    let user = UserId::parse(&user_id)?;
    let revoked = s.inner.manager.destroy_user_sessions(&user).await?;
    Ok(Json(RevokedView { revoked }))
}

/// Ends one session by id.
#[utoipa::path(
    delete, path = "/v1/sessions/{session_id}", tag = "admin",
    params(("session_id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "The session has ended"),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such live session", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn revoke_session(
    State(s): State<AppState>,
    ApiPath(session_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&session_id)?;
    s.inner.manager.destroy_session_by_id(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of live sessions, optionally of one org.
#[utoipa::path(
    get, path = "/v1/sessions", tag = "admin",
    params(
        ("org_id" = Option<String>, Query, format = Uuid, description = "Only sessions in this org"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPageView),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn list_sessions(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SessionPageView>, ApiError> {
    let filter = SessionFilter {
        org_id: q.org_id.as_deref().map(OrgId::parse).transpose()?,
    };
    let limit = page_limit(q.limit.as_deref())?;
    let page = s
        .inner
        .manager
        .active_sessions(
            &filter,
            &PageRequest {
                limit,
                cursor: q.cursor,
            },
        )
        .await?;
    Ok(Json(SessionPageView {
        sessions: page.sessions.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Session statistics.
#[utoipa::path(
    get, path = "/v1/stats", tag = "admin",
    responses(
        (status = 200, description = "Statistics", body = StatsView),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn stats(State(s): State<AppState>) -> Result<Json<StatsView>, ApiError> {
    Ok(Json(s.inner.manager.session_stats().await?.into()))
}

/// Removes expired sessions now (it also runs hourly in the background).
#[utoipa::path(
    post, path = "/v1/cleanup", tag = "admin",
    responses(
        (status = 200, description = "How many expired sessions were removed", body = RemovedView),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn cleanup(State(s): State<AppState>) -> Result<Json<RemovedView>, ApiError> {
    let removed = s.inner.manager.cleanup_expired_sessions().await?;
    Ok(Json(RemovedView { removed }))
}
