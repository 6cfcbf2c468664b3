//! Membership endpoints, in-process.

mod common;

use axum::http::{Method, StatusCode};
use common::{ORG, TestApp, USER, random_id, token};
use serde_json::json;

#[tokio::test]
async fn a_membership_can_be_set_read_and_removed() {
    let app = TestApp::new().await;
    let path = format!("/v1/orgs/{ORG}/members/{USER}");
    let get = app.call(Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(get.error_type(), "NOT_FOUND");

    let put = app.set_member(ORG, USER, "viewer").await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(
        put.body,
        json!({"org_id": ORG, "user_id": USER, "role": "viewer"})
    );
    let get = app.call(Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body["role"], "viewer");

    let del = app.call(Method::DELETE, &path, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
    let get = app.call(Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_role_the_policy_does_not_define_is_a_validation_error() {
    let app = TestApp::new().await;
    for role in ["superuser", "Admin", ""] {
        let a = app.set_member(ORG, USER, role).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{role}: {}", a.text);
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
    }
    let a = app
        .call(
            Method::PUT,
            &format!("/v1/orgs/{ORG}/members/{USER}"),
            Some(json!({"role": "member", "extra": true})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app.set_member("not-an-org", USER, "member").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app
        .call(Method::GET, &format!("/v1/orgs/{ORG}/members/nope"), None)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn removing_a_member_revokes_their_sessions_in_that_org_only() {
    let app = TestApp::new().await;
    let other_org = random_id();
    app.set_member(ORG, USER, "member").await;
    app.set_member(&other_org, USER, "member").await;
    let here = app.create(USER, ORG).await;
    let there = app.create(USER, &other_org).await;
    let del = app
        .call(
            Method::DELETE,
            &format!("/v1/orgs/{ORG}/members/{USER}"),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&here, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&there, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK);
    let again = app.create(USER, ORG).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_role_change_applies_to_live_sessions() {
    let app = TestApp::new().await;
    let created = app.login().await;
    app.set_member(ORG, USER, "viewer").await;
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&created, "access_token"),
        )
        .await;
    assert_eq!(v.body["user"]["role"], "viewer");
    assert_eq!(v.body["user"]["permissions"], json!(["read:*"]));
}
