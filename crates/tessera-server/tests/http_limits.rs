//! What one credential can make the service hold: creations limited in all,
//! not only per user; a memory store that refuses to grow past its cap; and
//! exactly one API key per request.

mod common;
mod process;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{API_KEY, TestApp, random_id};
use process::node::{Node, id};
use serde_json::json;
use tessera_server::Limits;

#[tokio::test]
async fn creations_spread_over_many_users_meet_the_limit_in_all() {
    let app = TestApp::with(common::Options {
        limits: Limits {
            create_per_minute: 100,
            create_total_per_minute: 5,
            ..Limits::default()
        },
        ..Default::default()
    })
    .await;
    let org = random_id();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let user = random_id();
        assert_eq!(
            app.set_member(&org, &user, "member").await.status,
            StatusCode::OK
        );
        let a = app.create(&user, &org).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.error_type(), "RATE_LIMITED");
            assert!(a.header("retry-after").is_some(), "{:?}", a.headers);
        }
        statuses.push(a.status);
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 5, "{statuses:?}");
    assert_eq!(
        app.active_sessions().await,
        5,
        "a refused create stores nothing"
    );
}

#[tokio::test]
async fn two_api_key_headers_are_refused_even_when_both_are_right() {
    let app = TestApp::with(common::Options {
        api_key: true,
        ..Default::default()
    })
    .await;
    let (org, user) = (random_id(), random_id());
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/orgs/{org}/members/{user}"))
        .header("x-api-key", API_KEY)
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(Body::from(json!({"role": "member"}).to_string()))
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    assert_eq!(a.error_type(), "AUTHENTICATION_ERROR");
    assert!(!a.text.contains(API_KEY));
    let get = app
        .call(Method::GET, &format!("/v1/orgs/{org}/members/{user}"), None)
        .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND, "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_store_at_its_cap_refuses_new_sessions_with_503_and_serves_the_rest() {
    let node = Node::start(&[("TESSERA_STORE", "memory"), ("TESSERA_MAX_SESSIONS", "3")]);
    let org = id();
    let mut held = Vec::new();
    for _ in 0..3 {
        let user = id();
        node.add_member(&org, &user).await;
        let (status, _, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        held.push(body["access_token"].as_str().expect("token").to_owned());
    }
    let user = id();
    node.add_member(&org, &user).await;
    let (status, _, body) = node.create(&user, &org).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "DATABASE_ERROR");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("full")),
        "{body}"
    );
    for token in &held {
        assert_eq!(node.validate(token).await, StatusCode::OK);
    }
    assert_eq!(node.active_sessions().await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_rejected_requests_is_logged_sparsely_and_counted_exactly() {
    const FLOOD: usize = 300;
    let node = Node::start(&[("TESSERA_STORE", "memory"), ("RUST_LOG", "info")]);
    let started = std::time::Instant::now();
    for _ in 0..FLOOD {
        assert_eq!(node.validate("not-a-token").await, StatusCode::UNAUTHORIZED);
    }
    let seconds = started.elapsed().as_secs() + 1;
    // A request in a later second reports what the earlier ones skipped.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(node.validate("not-a-token").await, StatusCode::UNAUTHORIZED);
    let logs = node.server.logs_with("rejected requests not logged");
    let logged = logs.lines().filter(|l| l.contains("status=401")).count();
    assert!(logged >= 20, "the first {logged} of a second are logged");
    assert!(
        logged as u64 <= 20 * (seconds + 1) + 1,
        "{logged} lines for {FLOOD} rejected requests in {seconds} s"
    );
    assert!(logs.contains("rejected requests not logged"), "{logs}");
    let (_, _, _) = node
        .send(node.http.get(format!("{}/healthz", node.url)))
        .await;
    let metrics = node
        .http
        .get(format!("{}/metrics", node.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let counted: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("tessera_http_requests_total{")
                && l.contains("validate_session")
                && l.contains("TOKEN_ERROR")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("the validate TOKEN_ERROR series");
    assert_eq!(counted as usize, FLOOD + 1, "the metrics count every one");
}
