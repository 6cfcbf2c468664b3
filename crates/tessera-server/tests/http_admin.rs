//! Operator endpoints, in-process: listing and revoking sessions, the paged
//! listing, statistics and cleanup.

mod common;

use axum::http::{Method, StatusCode};
use common::{ORG, TestApp, USER, random_id, token};

#[tokio::test]
async fn a_users_sessions_come_a_page_at_a_time_each_once_oldest_first() {
    let app = TestApp::with(common::Options {
        limits: tessera_server::Limits {
            create_per_minute: 0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    app.set_member(ORG, USER, "member").await;
    // Several within one second: the order must still be stable.
    let mut created = Vec::new();
    for i in 0..7 {
        if i % 3 == 0 {
            app.clock.advance(1);
        }
        let a = app.create(USER, ORG).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        created.push(a.body["session_id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &cursor {
            None => format!("/v1/users/{USER}/sessions?limit=3"),
            Some(c) => format!("/v1/users/{USER}/sessions?limit=3&cursor={c}"),
        };
        let page = app.call(Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let sessions = page.body["sessions"].as_array().expect("array");
        assert!(sessions.len() <= 3 && !sessions.is_empty(), "{}", page.text);
        pages += 1;
        seen.extend(sessions.iter().map(|s| {
            (
                s["created_at"].as_str().expect("at").to_owned(),
                s["session_id"].as_str().expect("id").to_owned(),
            )
        }));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 sessions in pages of 3; no empty last page");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first, ties by id");
    let mut ids: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    ids.sort();
    created.sort();
    assert_eq!(ids, created, "every session exactly once");
    for bad in [
        "nope",
        "1-zz",
        "12345678901234567890123-00000000000000000000000000000000",
    ] {
        let a = app
            .call(
                Method::GET,
                &format!("/v1/users/{USER}/sessions?cursor={bad}"),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
    }
    let a = app
        .call(
            Method::GET,
            &format!("/v1/users/{USER}/sessions?limit=1001"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_users_sessions_are_listed_with_the_documented_fields() {
    let app = TestApp::new().await;
    app.set_member(ORG, USER, "member").await;
    let a = app.create(USER, ORG).await;
    app.clock.advance(10);
    let b = app.create(USER, ORG).await;
    let list = app
        .call(Method::GET, &format!("/v1/users/{USER}/sessions"), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let sessions = list.body["sessions"].as_array().expect("array");
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions[0]["session_id"], a.body["session_id"],
        "oldest first"
    );
    assert_eq!(sessions[1]["session_id"], b.body["session_id"]);
    let mut keys: Vec<&str> = sessions[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "device_id",
            "expires_at",
            "ip_address",
            "last_activity",
            "org_id",
            "session_id",
            "user_agent"
        ]
    );
    assert_eq!(sessions[1]["created_at"], "2027-01-15T08:00:10Z");
    let none = app
        .call(
            Method::GET,
            &format!("/v1/users/{}/sessions", random_id()),
            None,
        )
        .await;
    assert_eq!(none.body["sessions"].as_array().map(Vec::len), Some(0));
    let bad = app.call(Method::GET, "/v1/users/nope/sessions", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_type(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn revoking_a_user_ends_all_their_sessions_and_counts_them() {
    let app = TestApp::new().await;
    app.set_member(ORG, USER, "member").await;
    let a = app.create(USER, ORG).await;
    app.create(USER, ORG).await;
    let r = app
        .call(Method::DELETE, &format!("/v1/users/{USER}/sessions"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, serde_json::json!({"revoked": 2}));
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&a, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    let again = app
        .call(Method::DELETE, &format!("/v1/users/{USER}/sessions"), None)
        .await;
    assert_eq!(again.body["revoked"], 0);
}

#[tokio::test]
async fn revoking_one_session_is_204_then_404() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let id = created.body["session_id"].as_str().expect("id").to_owned();
    let r = app
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&created, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_type(), "NOT_FOUND");
    let r = app
        .call(Method::DELETE, "/v1/sessions/not-a-uuid", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn active_sessions_are_paged_and_filtered_by_org() {
    let app = TestApp::new().await;
    let other_org = random_id();
    app.set_member(ORG, USER, "member").await;
    app.set_member(&other_org, USER, "viewer").await;
    for _ in 0..5 {
        app.create(USER, ORG).await;
    }
    app.create(USER, &other_org).await;

    let mut seen = Vec::new();
    let mut uri = "/v1/sessions?limit=2".to_owned();
    loop {
        let page = app.call(Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let sessions = page.body["sessions"].as_array().expect("array");
        assert!(sessions.len() <= 2);
        for s in sessions {
            assert_eq!(s["user_id"], USER);
            seen.push(s["session_id"].as_str().expect("id").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/sessions?limit=2&cursor={c}"),
            None => {
                assert!(page.body["next_cursor"].is_null());
                break;
            }
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "every session exactly once");

    let filtered = app
        .call(
            Method::GET,
            &format!("/v1/sessions?org_id={other_org}"),
            None,
        )
        .await;
    let sessions = filtered.body["sessions"].as_array().expect("array");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["org_id"], other_org.as_str());
    assert_eq!(sessions[0]["role"], "viewer");

    for bad in [
        "/v1/sessions?limit=0",
        "/v1/sessions?limit=1001",
        "/v1/sessions?limit=ten",
        "/v1/sessions?org_id=x",
        "/v1/sessions?unknown=1",
        "/v1/sessions?cursor=%00garbage",
    ] {
        let a = app.call(Method::GET, bad, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.text);
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn stats_count_lifecycle_events_and_cleanup_time() {
    let app = TestApp::new().await;
    let s = app.call(Method::GET, "/v1/stats", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.body["last_cleanup"].is_null());
    let created = app.login().await;
    app.refresh(&token(&created, "refresh_token")).await;
    let s = app.call(Method::GET, "/v1/stats", None).await;
    let b = &s.body;
    assert_eq!(b["active_sessions"], 1);
    assert_eq!(b["sessions_created"], 1);
    assert_eq!(b["sessions_refreshed"], 1);
    assert_eq!(b["sessions_destroyed"], 0);
    assert_eq!(b["sessions_expired"], 0);
    assert_eq!(b["refresh_reuse_detected"], 0);
    assert_eq!(b["active_by_org"][ORG], 1);

    app.clock.advance(8 * 86_400);
    let c = app.call(Method::POST, "/v1/cleanup", None).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.body, serde_json::json!({"removed": 1}));
    let s = app.call(Method::GET, "/v1/stats", None).await;
    assert_eq!(s.body["active_sessions"], 0);
    assert_eq!(s.body["sessions_expired"], 1);
    assert_eq!(s.body["last_cleanup"], "2027-01-23T08:00:00Z");
    assert_eq!(s.body["last_cleanup_removed"], 1);
}
