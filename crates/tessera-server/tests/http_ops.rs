//! Health, readiness, metrics and the OpenAPI document, in-process.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, token};
use serde_json::Value;
use tessera_server::http::operation::ROUTES;

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let app = TestApp::new().await;
    let h = app.call(Method::GET, "/healthz", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "ok");
    let r = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ready");
}

#[tokio::test]
async fn metrics_count_requests_by_operation_and_outcome() {
    let app = TestApp::new().await;
    let created = app.login().await;
    let access = token(&created, "access_token");
    app.with_bearer(Method::GET, "/v1/sessions/current", &access)
        .await;
    app.with_bearer(Method::GET, "/v1/sessions/current", "bad")
        .await;
    let m = app.call(Method::GET, "/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.header("content-type")
            .expect("type")
            .starts_with("text/plain")
    );
    let text = m.text;
    for line in [
        "tessera_http_requests_total{operation=\"validate_session\",outcome=\"ok\"} 1",
        "tessera_http_requests_total{operation=\"validate_session\",outcome=\"TOKEN_ERROR\"} 1",
        "tessera_http_requests_total{operation=\"create_session\",outcome=\"ok\"} 1",
        "tessera_http_requests_total{operation=\"set_membership\",outcome=\"ok\"} 1",
        "tessera_http_request_duration_seconds_count{operation=\"validate_session\"} 2",
        "tessera_sessions_created_total 1",
        "tessera_active_sessions 1",
        "tessera_store_up 1",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(!text.contains(&access), "metrics never carry a token");
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let app = TestApp::new().await;
    let a = app.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc: &Value = &a.body;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    for (method, path, op) in ROUTES {
        let entry = &doc["paths"][*path][method.as_str().to_lowercase()];
        assert!(
            entry.is_object(),
            "{method} {path} ({op:?}) is not documented"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert!(schemes["api_key"].is_object());
    assert!(schemes["bearer"].is_object());
    let create = &doc["paths"]["/v1/sessions"]["post"]["responses"];
    for status in ["201", "400", "401", "413", "429", "503"] {
        assert!(create[status].is_object(), "create lacks {status}");
    }
    assert!(doc["components"]["schemas"]["TokenPair"].is_object());
}
