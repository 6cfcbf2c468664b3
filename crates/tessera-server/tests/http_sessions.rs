//! The session endpoints, in-process: create, validate, refresh, logout and
//! permission checks, each with its success and failure answers.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ORG, Options, TestApp, USER, random_id, token};
use serde_json::json;

#[tokio::test]
async fn create_returns_a_token_pair_and_the_user() {
    let app = TestApp::new().await;
    let a = app.login().await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let b = &a.body;
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 86_400);
    assert_eq!(b["refresh_expires_in"], 604_800);
    assert_eq!(b["user"]["id"], USER);
    assert_eq!(b["user"]["org_id"], ORG);
    assert_eq!(b["user"]["role"], "member");
    assert_eq!(b["user"]["permissions"], json!(["read:*", "write:*"]));
    assert_eq!(
        b["access_token"].as_str().expect("jwt").split('.').count(),
        3
    );
    assert!(
        b["refresh_token"]
            .as_str()
            .expect("refresh")
            .starts_with("tsr1_")
    );
    let sid = b["session_id"].as_str().expect("id");
    assert_eq!(sid, sid.to_lowercase());
    assert_eq!(sid.len(), 36);
}

#[tokio::test]
async fn create_for_a_non_member_is_an_authentication_error() {
    let app = TestApp::new().await;
    let a = app.create(USER, ORG).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "AUTHENTICATION_ERROR");
    assert!(a.header("www-authenticate").is_none());
}

#[tokio::test]
async fn create_validates_every_field() {
    let app = TestApp::new().await;
    app.set_member(ORG, USER, "member").await;
    for body in [
        json!({"user_id": "not-a-uuid", "org_id": ORG}),
        json!({"user_id": USER, "org_id": "{0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11}"}),
        json!({"user_id": USER, "org_id": ORG, "device_id": "has space"}),
        json!({"user_id": USER, "org_id": ORG, "ip_address": "localhost"}),
        json!({"user_id": USER, "org_id": ORG, "user_agent": "a\r\nb"}),
        json!({"user_id": USER}),
    ] {
        let a = app
            .call(Method::POST, "/v1/sessions", Some(body.clone()))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
    }
    assert_eq!(app.active_sessions().await, 0, "nothing was created");
}

#[tokio::test]
async fn validate_returns_the_session_with_rfc3339_times() {
    let app = TestApp::new().await;
    let created = app
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"user_id": USER, "org_id": ORG})),
        )
        .await;
    assert_eq!(created.status, StatusCode::UNAUTHORIZED);
    app.set_member(ORG, USER, "admin").await;
    let created = app
        .call(
            Method::POST,
            "/v1/sessions",
            Some(json!({
                "user_id": USER, "org_id": ORG, "device_id": "laptop-1",
                "ip_address": "203.0.113.7", "user_agent": "curl/8"
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let a = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&created, "access_token"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let b = &a.body;
    assert_eq!(b["session_id"], created.body["session_id"]);
    assert_eq!(b["user"]["role"], "admin");
    assert_eq!(b["device_id"], "laptop-1");
    assert_eq!(b["ip_address"], "203.0.113.7");
    assert_eq!(b["user_agent"], "curl/8");
    assert_eq!(b["created_at"], "2027-01-15T08:00:00Z");
    assert_eq!(b["last_activity"], "2027-01-15T08:00:00Z");
    assert_eq!(b["expires_at"], "2027-01-22T08:00:00Z");
}

#[tokio::test]
async fn a_bad_bearer_token_is_a_token_error_with_a_challenge() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let good = token(&created, "access_token");
    let mut forged = good.clone();
    forged.pop();
    forged.push(if good.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        "not-a-jwt",
        forged.as_str(),
        token(&created, "refresh_token").as_str(),
    ] {
        let a = app
            .with_bearer(Method::GET, "/v1/sessions/current", bad)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
        assert_eq!(a.error_type(), "TOKEN_ERROR");
        assert_eq!(
            a.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(!a.text.contains(bad), "the message echoes the token");
    }
}

#[tokio::test]
async fn a_missing_or_non_bearer_authorization_is_a_token_error() {
    let app = TestApp::new().await;
    let a = app.call(Method::GET, "/v1/sessions/current", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "TOKEN_ERROR");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let req = app
        .request(Method::GET, "/v1/sessions/current")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "TOKEN_ERROR");
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn an_authorization_header_over_8_kib_is_refused_unparsed() {
    let app = TestApp::new().await;
    let huge = format!("Bearer {}", "a".repeat(8 * 1024));
    let req = app
        .request(Method::GET, "/v1/sessions/current")
        .header(header::AUTHORIZATION, huge)
        .body(Body::empty())
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "TOKEN_ERROR");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("8 KiB")
    );
}

#[tokio::test]
async fn an_expired_access_token_is_a_token_error() {
    let app = TestApp::new().await;
    let created = app.login().await;
    app.clock.advance(86_400 + 31);
    let a = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&created, "access_token"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "TOKEN_ERROR");
}

#[tokio::test]
async fn refresh_returns_a_new_pair_and_retires_the_old_one() {
    let app = TestApp::with(Options {
        reuse_grace: std::time::Duration::ZERO,
        ..Options::default()
    })
    .await;
    let created = app.login().await;
    let first = token(&created, "refresh_token");
    app.clock.advance(5);
    let a = app.refresh(&first).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.body["session_id"], created.body["session_id"]);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["user"]["id"], USER);
    let second = token(&a, "refresh_token");
    assert_ne!(first, second);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&a, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK);

    // The retired token again: reuse, the session is revoked.
    let reused = app.refresh(&first).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reused.error_type(), "TOKEN_ERROR");
    assert!(reused.header("www-authenticate").is_none());
    let after = app.refresh(&second).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "session revoked");
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&a, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    assert!(
        app.metrics()
            .await
            .contains("tessera_refresh_reuse_detected_total 1")
    );
}

#[tokio::test]
async fn within_the_grace_window_the_previous_token_gets_the_same_pair() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let first = token(&created, "refresh_token");
    let a = app.refresh(&first).await;
    let b = app.refresh(&first).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    assert_eq!(a.body["refresh_token"], b.body["refresh_token"]);
}

#[tokio::test]
async fn malformed_unknown_and_expired_refresh_tokens_are_token_errors() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let good = token(&created, "refresh_token");
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in [
        "",
        "tsr1_short",
        tampered.as_str(),
        "x".repeat(5000).as_str(),
    ] {
        let a = app.refresh(bad).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
        assert_eq!(a.error_type(), "TOKEN_ERROR");
    }
    app.clock.advance(604_800 + 1);
    let a = app.refresh(&good).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error_type(), "TOKEN_ERROR");
}

#[tokio::test]
async fn logout_ends_the_session_for_both_tokens() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let access = token(&created, "access_token");
    let a = app
        .with_bearer(Method::DELETE, "/v1/sessions/current", &access)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert!(a.text.is_empty());
    let v = app
        .with_bearer(Method::GET, "/v1/sessions/current", &access)
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    let r = app.refresh(&token(&created, "refresh_token")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let again = app
        .with_bearer(Method::DELETE, "/v1/sessions/current", &access)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.error_type(), "TOKEN_ERROR");
}

#[tokio::test]
async fn permission_checks_answer_from_the_current_role() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let access = token(&created, "access_token");
    let check = |p: &'static str| {
        let app = &app;
        let access = access.clone();
        async move {
            app.with_bearer(
                Method::GET,
                &format!("/v1/sessions/current/permissions/{p}"),
                &access,
            )
            .await
        }
    };
    let a = check("write:users").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"permission": "write:users", "allowed": true})
    );
    let a = check("delete:users").await;
    assert_eq!(a.body["allowed"], false);
    // A promotion applies to the live session at once.
    app.set_member(ORG, USER, "admin").await;
    assert_eq!(check("delete:users").await.body["allowed"], true);
    let a = check("READ:users").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.error_type(), "VALIDATION_ERROR");
    let a = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current/permissions/read:users",
            "bad",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn sessions_of_different_users_are_independent() {
    let app = TestApp::new().await;
    let other = random_id();
    app.set_member(ORG, USER, "member").await;
    app.set_member(ORG, &other, "viewer").await;
    let a = app.create(USER, ORG).await;
    let b = app.create(&other, ORG).await;
    let req = Request::builder()
        .method(Method::DELETE)
        .uri("/v1/sessions/current")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token(&a, "access_token")),
        )
        .body(Body::empty())
        .expect("request");
    assert_eq!(app.send(req).await.status, StatusCode::NO_CONTENT);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&b, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.body["user"]["role"], "viewer");
}

#[tokio::test]
async fn no_response_with_session_data_may_be_cached() {
    let app = TestApp::new().await;
    let a = app.login().await;
    let access = token(&a, "access_token");
    let answers = [
        app.with_bearer(Method::GET, "/v1/sessions/current", &access)
            .await,
        app.call(Method::GET, &format!("/v1/users/{USER}/sessions"), None)
            .await,
        app.call(Method::GET, "/v1/sessions", None).await,
        app.call(Method::GET, "/v1/stats", None).await,
        app.call(Method::GET, "/v1/sessions?nope=1", None).await,
    ];
    for a in answers {
        assert_eq!(a.header("cache-control"), Some("no-store"), "{}", a.text);
    }
    let jwks = app.call(Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
}
