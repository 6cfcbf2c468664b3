//! Memberships: which role a user has in an org. Sessions take their role
//! from here; changing a role applies to live sessions at once, and removing
//! a membership revokes the user's sessions in that org.

use super::respond::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tessera::{OrgId, RoleName, UserId};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::wire::{MembershipView, SetMembershipRequest};
use crate::state::AppState;

fn ids(org_id: &str, user_id: &str) -> Result<(OrgId, UserId), ApiError> {
    Ok((OrgId::parse(org_id)?, UserId::parse(user_id)?))
}

/// Sets a user's role in an org.
#[utoipa::path(
    put, path = "/v1/orgs/{org_id}/members/{user_id}", tag = "members",
    params(("org_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    request_body = SetMembershipRequest,
    responses(
        (status = 200, description = "The membership", body = MembershipView),
        (status = 400, description = "VALIDATION_ERROR, including a role the policy does not define", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn set(
    State(s): State<AppState>,
    ApiPath((org_id, user_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<SetMembershipRequest>,
) -> Result<Json<MembershipView>, ApiError> {
    let (org, user) = ids(&org_id, &user_id)?;
    let role = RoleName::parse(&req.role)?;
    s.inner.manager.set_membership(&user, &org, &role).await?;
    Ok(Json(MembershipView {
        org_id: org,
        user_id: user,
        role,
    }))
}

/// A user's role in an org.
#[utoipa::path(
    get, path = "/v1/orgs/{org_id}/members/{user_id}", tag = "members",
    params(("org_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The membership", body = MembershipView),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: the user is not a member", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn get(
    State(s): State<AppState>,
    ApiPath((org_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<MembershipView>, ApiError> {
    let (org, user) = ids(&org_id, &user_id)?;
    let role = s
        .inner
        .manager
        .membership(&user, &org)
        .await?
        .ok_or_else(|| ApiError::not_found("the user is not a member of this organization"))?;
    Ok(Json(MembershipView {
        org_id: org,
        user_id: user,
        role,
    }))
}

/// Removes a user from an org and revokes their sessions in it.
#[utoipa::path(
    delete, path = "/v1/orgs/{org_id}/members/{user_id}", tag = "members",
    params(("org_id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "Not a member (any more); their sessions in the org are revoked"),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTHENTICATION_ERROR", body = ErrorBody),
        (status = 503, description = "DATABASE_ERROR", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn remove(
    State(s): State<AppState>,
    ApiPath((org_id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (org, user) = ids(&org_id, &user_id)?;
    s.inner.manager.remove_membership(&user, &org).await?;
    Ok(StatusCode::NO_CONTENT)
}
