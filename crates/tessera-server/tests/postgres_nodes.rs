//! Several `tessera serve` nodes over one PostgreSQL database: the real
//! binary, twice, on the PostgreSQL on 127.0.0.1:5432 (database `test`),
//! each test in a schema of its own (dropped afterwards). Proves over HTTP
//! that a session lives in the database rather than in a node, that
//! rotation is one compare-and-swap whichever node it reaches, that the
//! rate limit is one limit for all nodes, and that every node counts the
//! same sessions. The failure test stops and starts a PostgreSQL server of
//! its own (`tessera-test-support`).

mod process;

use std::sync::Arc;
use std::time::Duration;

use process::node::{Node, field, id, wait_ready};
use reqwest::StatusCode;
use tessera_test_support::PostgresServer;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of one test's own; dropped with its tables when it drops.
struct Schema(String);

impl Schema {
    fn new() -> Self {
        Self(format!("tessera_test_{}", uuid::Uuid::new_v4().simple()))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-c",
            ])
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn pg_node(url: &str, schema: &Schema, extra: &[(&str, &str)]) -> Node {
    let mut env = vec![
        ("TESSERA_STORE", url),
        ("TESSERA_POSTGRES_SCHEMA", schema.0.as_str()),
    ];
    env.extend_from_slice(extra);
    Node::start(&env)
}

fn two_nodes(extra: &[(&str, &str)]) -> (Schema, Node, Node) {
    let schema = Schema::new();
    let a = pg_node(POSTGRES, &schema, extra);
    let b = pg_node(POSTGRES, &schema, extra);
    (schema, a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_from_one_node_is_validated_refreshed_and_ended_on_the_other() {
    let (_schema, a, b) = two_nodes(&[]);
    wait_ready(&a, StatusCode::OK).await;
    wait_ready(&b, StatusCode::OK).await;
    assert!(
        a.logs()
            .contains("postgres://127.0.0.1:5432/test (schema tessera_test_"),
        "the start-up line names the store: {}",
        a.logs()
    );
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;
    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (access, refresh) = (
        field(&created, "access_token"),
        field(&created, "refresh_token"),
    );
    assert_eq!(b.validate(&access).await, StatusCode::OK);
    let (status, rotated) = b.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (access2, refresh2) = (
        field(&rotated, "access_token"),
        field(&rotated, "refresh_token"),
    );
    assert_eq!(a.validate(&access2).await, StatusCode::OK);
    assert_eq!(b.log_out(&access2).await, StatusCode::NO_CONTENT);
    assert_eq!(a.validate(&access2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.refresh(&refresh2).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_refreshes_split_across_both_nodes_yield_one_successor() {
    let (_schema, a, b) = two_nodes(&[
        ("TESSERA_REFRESH_REUSE_GRACE_SECS", "0"),
        ("TESSERA_REFRESH_LIMIT_PER_MINUTE", "0"),
    ]);
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;
    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let refresh = field(&created, "refresh_token");

    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = refresh.clone();
        tasks.spawn(async move { node.refresh(&token).await });
    }
    let answers = tasks.join_all().await;
    let mut successors: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| field(b, "refresh_token"))
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED,
            "unexpected {status}: {body}"
        );
    }
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "{answers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_create_limit_holds_across_both_nodes_together() {
    let (_schema, a, b) = two_nodes(&[("TESSERA_CREATE_LIMIT_PER_MINUTE", "3")]);
    let (user, other, org) = (id(), id(), id());
    a.add_member(&org, &user).await;
    b.add_member(&org, &other).await;
    for node in [&a, &b, &a] {
        let (status, _, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for node in [&b, &a] {
        let (status, _, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["type"], "RATE_LIMITED");
    }
    assert_eq!(b.create(&other, &org).await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_nodes_report_the_same_active_sessions() {
    let (_schema, a, b) = two_nodes(&[]);
    let org = id();
    let mut access = Vec::new();
    for i in 0..3 {
        let user = id();
        let node = if i % 2 == 0 { &a } else { &b };
        node.add_member(&org, &user).await;
        let (status, _, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        access.push(field(&body, "access_token"));
    }
    assert_eq!(a.active_sessions().await, 3);
    assert_eq!(b.active_sessions().await, 3);
    assert_eq!(b.log_out(&access[0]).await, StatusCode::NO_CONTENT);
    assert_eq!(a.active_sessions().await, 2);
    assert_eq!(b.active_sessions().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_postgres_stopped_nodes_answer_503_and_recover_by_themselves() {
    let mut pg = PostgresServer::start();
    let url = pg.url();
    let schema = Schema::new();
    let (a, b) = (pg_node(&url, &schema, &[]), pg_node(&url, &schema, &[]));
    wait_ready(&a, StatusCode::OK).await;
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;
    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let access = field(&created, "access_token");

    pg.stop();
    for node in [&a, &b] {
        wait_ready(node, StatusCode::SERVICE_UNAVAILABLE).await;
        let started = std::time::Instant::now();
        let (status, body) = node.get("/v1/sessions/current", Some(&access)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["type"], "DATABASE_ERROR");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a request while PostgreSQL is down fails in bounded time"
        );
    }

    pg.restart();
    for node in [&a, &b] {
        wait_ready(node, StatusCode::OK).await;
        assert_eq!(node.validate(&access).await, StatusCode::OK, "nothing lost");
    }
    let (status, _, body) = b.create(&user, &org).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the membership survived: {body}"
    );
}
