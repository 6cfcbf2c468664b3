//! Every error mapping of the contract, in-process: the JSON error shape,
//! request ids, malformed bodies, size limits, the API key, rate limits and
//! a store outage.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use common::{API_KEY, ORG, Options, TestApp, USER, random_id, token};
use serde_json::json;
use tessera_server::Limits;

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_a_usable_one() {
    let app = TestApp::new().await;
    let a = app.call(Method::GET, "/healthz", None).await;
    let generated = a.header("x-request-id").expect("generated id").to_owned();
    assert!(!generated.is_empty());
    let b = app.call(Method::GET, "/healthz", None).await;
    assert_ne!(b.header("x-request-id"), Some(generated.as_str()));

    let req = app
        .request(Method::GET, "/v1/sessions/current")
        .header("x-request-id", "trace-abc_123")
        .body(Body::empty())
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.header("x-request-id"), Some("trace-abc_123"));
    assert_eq!(a.body["error"]["request_id"], "trace-abc_123");

    for unusable in ["has space", &"x".repeat(65), "quote\"d"] {
        let req = app
            .request(Method::GET, "/healthz")
            .header("x-request-id", unusable)
            .body(Body::empty())
            .expect("request");
        let a = app.send(req).await;
        let id = a.header("x-request-id").expect("an id");
        assert_ne!(id, unusable, "an unusable id is replaced");
    }
}

#[tokio::test]
async fn malformed_json_unknown_fields_and_wrong_types_are_validation_errors() {
    let app = TestApp::new().await;
    app.set_member(ORG, USER, "member").await;
    let secret_looking = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA";
    for body in [
        "{".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        json!({"user_id": USER, "org_id": ORG, "admin": true}).to_string(),
        json!({"user_id": 42, "org_id": ORG}).to_string(),
        json!({"user_id": USER, "org_id": ORG, "device_id": ["a"]}).to_string(),
        format!(r#"{{"user_id": "{USER}", "org_id": "{ORG}", "{secret_looking}": 1}}"#),
    ] {
        let req = app
            .request(Method::POST, "/v1/sessions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .expect("request");
        let a = app.send(req).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
        assert!(!a.text.contains(secret_looking), "echoed: {}", a.text);
    }
    let a = app
        .refresh_raw(json!({"refresh_token": 7}).to_string())
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let req = app
        .request(Method::POST, "/v1/sessions")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            json!({"user_id": USER, "org_id": ORG}).to_string(),
        ))
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.error_type(), "VALIDATION_ERROR");
    assert_eq!(app.active_sessions().await, 0);
}

trait RawRefresh {
    async fn refresh_raw(&self, body: String) -> common::Answer;
}

impl RawRefresh for TestApp {
    async fn refresh_raw(&self, body: String) -> common::Answer {
        let req = self
            .request(Method::POST, "/v1/sessions/refresh")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let app = TestApp::new().await;
    let padding = "a".repeat(64 * 1024);
    let body = json!({"user_id": USER, "org_id": ORG, "user_agent": padding}).to_string();
    let req = app
        .request(Method::POST, "/v1/sessions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.error_type(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let app = TestApp::new().await;
    let a = app.call(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error_type(), "NOT_FOUND");
    let a = app.call(Method::PATCH, "/v1/sessions", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.error_type(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn with_an_api_key_every_v1_request_needs_it() {
    let app = TestApp::with(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    assert_eq!(app.login().await.status, StatusCode::CREATED);
    for (key, what) in [(None, "missing"), (Some("wrong-key"), "wrong")] {
        for (method, uri) in [
            (Method::GET, "/v1/stats"),
            (Method::POST, "/v1/sessions"),
            (Method::GET, "/v1/sessions/current"),
        ] {
            let mut b = axum::http::Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(k) = key {
                b = b.header("x-api-key", k);
            }
            let req = b
                .body(Body::from(
                    json!({"user_id": USER, "org_id": ORG}).to_string(),
                ))
                .expect("request");
            let a = app.send(req).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what} key on {uri}");
            assert_eq!(a.error_type(), "AUTHENTICATION_ERROR");
            assert!(!a.text.contains(API_KEY));
        }
    }
    assert_eq!(
        app.active_sessions().await,
        1,
        "refused requests created nothing"
    );
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let req = axum::http::Request::builder()
            .uri(open)
            .body(Body::empty())
            .expect("request");
        assert_eq!(app.send(req).await.status, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn create_is_rate_limited_per_user_and_a_refusal_changes_nothing() {
    let app = TestApp::with(Options {
        limits: Limits {
            create_per_minute: 3,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let other = random_id();
    app.set_member(ORG, USER, "member").await;
    app.set_member(ORG, &other, "member").await;
    for _ in 0..3 {
        assert_eq!(app.create(USER, ORG).await.status, StatusCode::CREATED);
    }
    let a = app.create(USER, ORG).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_eq!(a.error_type(), "RATE_LIMITED");
    assert_eq!(a.header("retry-after"), Some("20"));
    assert_eq!(
        app.active_sessions().await,
        3,
        "the refused create made nothing"
    );
    assert_eq!(
        app.create(&other, ORG).await.status,
        StatusCode::CREATED,
        "another user has their own budget"
    );
    app.clock.advance(20);
    assert_eq!(app.create(USER, ORG).await.status, StatusCode::CREATED);
    assert!(
        app.metrics()
            .await
            .contains("tessera_rate_limited_total{operation=\"create_session\"} 1")
    );
}

#[tokio::test]
async fn refresh_is_rate_limited_per_session_and_the_token_survives_a_refusal() {
    let app = TestApp::with(Options {
        limits: Limits {
            refresh_per_minute: 2,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let created = app.login().await;
    let mut current = token(&created, "refresh_token");
    for _ in 0..2 {
        let a = app.refresh(&current).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        current = token(&a, "refresh_token");
    }
    let limited = app.refresh(&current).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.error_type(), "RATE_LIMITED");
    assert_eq!(limited.header("retry-after"), Some("30"));
    // Another session is not affected.
    let other = app.create(USER, ORG).await;
    assert_eq!(
        app.refresh(&token(&other, "refresh_token")).await.status,
        StatusCode::OK
    );
    // A forged token never spends the session's budget: it fails first.
    assert_eq!(
        app.refresh("tsr1_forged").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(30);
    let a = app.refresh(&current).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the refused token still works: {}",
        a.text
    );
}

#[tokio::test]
async fn a_store_outage_is_503_database_error_and_not_ready() {
    let app = TestApp::new().await;
    let created = app.login().await;
    app.store.set_down(true);
    let v = app
        .with_bearer(
            Method::GET,
            "/v1/sessions/current",
            &token(&created, "access_token"),
        )
        .await;
    assert_eq!(v.status, StatusCode::SERVICE_UNAVAILABLE, "{}", v.text);
    assert_eq!(v.error_type(), "DATABASE_ERROR");
    assert!(v.header("www-authenticate").is_none());
    let r = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_type(), "DATABASE_ERROR");
    let c = app.create(USER, ORG).await;
    assert_eq!(c.status, StatusCode::SERVICE_UNAVAILABLE);
    // A listing during an outage is the store's failure, not a bad cursor.
    for uri in [
        "/v1/sessions",
        "/v1/sessions?cursor=00000000000000000000000000000000",
    ] {
        let l = app.call(Method::GET, uri, None).await;
        assert_eq!(
            l.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{uri}: {}",
            l.text
        );
        assert_eq!(l.error_type(), "DATABASE_ERROR");
    }
    let m = app.metrics().await;
    assert!(m.contains("tessera_store_up 0"), "{m}");
    assert!(m.contains(
        "tessera_http_requests_total{operation=\"validate_session\",outcome=\"DATABASE_ERROR\"} 1"
    ));
    app.store.set_down(false);
    assert_eq!(
        app.call(Method::GET, "/readyz", None).await.status,
        StatusCode::OK
    );
    assert!(app.metrics().await.contains("tessera_store_up 1"));
}

#[tokio::test]
async fn no_error_message_echoes_the_input() {
    let app = TestApp::new().await;
    let long = "k".repeat(3000);
    let cases = [
        (
            "/v1/sessions?%3Cscript%3Ealert(1)%3C/script%3E=1".to_owned(),
            "script",
        ),
        (format!("/v1/sessions?{long}=1"), "kkkkkkkk"),
        ("/v1/sessions?limit=%3Cb%3Ebold".to_owned(), "bold"),
        ("/v1/sessions?zzunknownparam=1".to_owned(), "zzunknownparam"),
        (
            format!("/v1/users/{USER}/sessions?cursor=%3Cimg%20src=x%3E"),
            "img",
        ),
    ];
    for (uri, needle) in cases {
        let a = app.call(Method::GET, &uri, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}: {}", a.text);
        assert_eq!(a.error_type(), "VALIDATION_ERROR");
        assert!(!a.text.contains(needle), "{uri} echoed: {}", a.text);
    }
    let a = app
        .call(
            Method::PUT,
            &format!("/v1/orgs/{ORG}/members/{USER}"),
            Some(json!({"role": "superuserzz"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert!(
        !a.text.contains("superuserzz"),
        "the role was echoed: {}",
        a.text
    );
}
