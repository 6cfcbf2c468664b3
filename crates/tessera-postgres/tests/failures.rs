//! Failure behaviour on a real, private PostgreSQL server that each test
//! makes (`initdb`) and stops and starts again: with the server down, calls
//! fail within the statement timeout as `DATABASE_ERROR`s and nothing hangs
//! or panics; when it is back the same store recovers by itself and nothing
//! written before the stop is lost. Passwords never leak into errors or
//! Debug output.

mod support;

use std::error::Error;
use std::time::Duration;

use tessera::limit::RateLimiter;
use tessera::{ErrorKind, NewSession, SessionStore};
use tessera_postgres::{PostgresOptions, PostgresStore};
use tessera_test_support::PostgresServer;

/// Generous bound for "fails fast": the stores here have a 2 s statement
/// timeout and a 1 s connect timeout.
const FAST: Duration = Duration::from_secs(5);

fn options() -> PostgresOptions {
    PostgresOptions {
        schema: Some(support::unique_schema()),
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(2),
        ..PostgresOptions::default()
    }
}

fn full_text(e: &dyn Error) -> String {
    let mut text = format!("{e} {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    text
}

/// Retries `f` until it succeeds, for up to 15 s.
async fn eventually<T, E: std::fmt::Debug, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("{what} never recovered: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_calls_fail_fast_as_database_errors_and_recover_with_nothing_lost() {
    let mut server = PostgresServer::start();
    let store = PostgresStore::connect(&server.url(), options())
        .await
        .expect("connect");
    let limiter = store.rate_limiter();
    let manager = support::manager(store.clone());
    let (user, org) = (support::random_user(), support::random_org());
    manager
        .set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");
    let mut before = Vec::new();
    for _ in 0..5 {
        let issued = manager
            .create_session(NewSession::new(user, org))
            .await
            .expect("create");
        manager
            .validate_session(issued.access_token.expose())
            .await
            .expect("validate");
        before.push(issued);
    }
    let rotated_before = manager
        .refresh_session(before[0].refresh_token.expose())
        .await
        .expect("refresh before the stop");

    let now = tessera_conformance::wall_clock_now();
    let mut records = Vec::new();
    for issued in &before {
        records.push(
            store
                .get(&issued.session_id, now)
                .await
                .expect("get")
                .expect("stored"),
        );
    }

    server.stop();

    let token = rotated_before.access_token.expose();
    let down = tokio::time::timeout(FAST, manager.validate_session(token))
        .await
        .expect("validation must fail fast, not hang")
        .expect_err("validation cannot succeed with PostgreSQL down");
    assert_eq!(down.kind(), ErrorKind::Database);
    assert_eq!(down.kind().as_str(), "DATABASE_ERROR");
    let create = tokio::time::timeout(FAST, manager.create_session(NewSession::new(user, org)))
        .await
        .expect("create must fail fast")
        .expect_err("create cannot succeed with PostgreSQL down");
    assert_eq!(create.kind(), ErrorKind::Database);
    let refresh = tokio::time::timeout(
        FAST,
        manager.refresh_session(before[1].refresh_token.expose()),
    )
    .await
    .expect("refresh must fail fast")
    .expect_err("refresh cannot succeed with PostgreSQL down");
    assert_eq!(refresh.kind(), ErrorKind::Database);
    let ping = tokio::time::timeout(FAST, manager.ping())
        .await
        .expect("readiness must fail fast");
    assert_eq!(ping.expect_err("not ready").kind(), ErrorKind::Database);
    let limited = tokio::time::timeout(FAST, limiter.check(b"k", 10, 1_800_000_000_000))
        .await
        .expect("the limiter must fail fast");
    assert!(limited.is_err(), "no decision without the database");
    // Repeated failures stay fast, and many at once do not queue up.
    let started = tokio::time::Instant::now();
    let many: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let id = before[2].session_id;
            tokio::spawn(async move { store.get(&id, 0).await })
        })
        .collect();
    for task in many {
        assert!(task.await.expect("task").is_err());
    }
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());

    server.restart();

    // The same store reconnects by itself, and every record written before
    // the stop (a rotation included) is there as it was. Compared before
    // any validation, which may record activity.
    eventually("ping", || store.ping()).await;
    for record in &records {
        let now_record = store.get(&record.id, now).await.expect("get");
        assert_eq!(
            now_record.as_ref(),
            Some(record),
            "the record is as it was before the stop"
        );
    }
    let session = manager
        .validate_session(token)
        .await
        .expect("the rotated session validates");
    assert_eq!(session.session_id, before[0].session_id);
    for issued in &before[1..] {
        manager
            .validate_session(issued.access_token.expose())
            .await
            .expect("a session from before the stop");
    }
    let rotated = manager
        .refresh_session(before[1].refresh_token.expose())
        .await
        .expect("refresh after recovery");
    manager
        .validate_session(rotated.access_token.expose())
        .await
        .expect("the successor validates");
    let after = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("create after recovery");
    manager
        .destroy_session(after.access_token.expose())
        .await
        .expect("destroy after recovery");
    manager.ping().await.expect("ready again");
    assert!(
        limiter
            .check(b"k", 10, 1_800_000_000_000)
            .await
            .expect("the limiter is back")
            .allowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_starts_while_postgres_is_down_and_migrates_once_it_is_up() {
    let mut server = PostgresServer::start();
    server.stop();
    let store = PostgresStore::connect(
        &server.url(),
        PostgresOptions {
            lazy: true,
            ..options()
        },
    )
    .await
    .expect("a lazy store starts without the database");
    let err = tokio::time::timeout(FAST, store.ping())
        .await
        .expect("fails fast");
    assert!(err.is_err(), "not ready while PostgreSQL is down");

    server.restart();
    eventually("ping", || store.ping()).await;
    let manager = support::manager(store);
    let (user, org) = (support::random_user(), support::random_org());
    manager
        .set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");
    manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("create once PostgreSQL is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_is_down_fails_fast_without_echoing_the_password() {
    let port = tessera_test_support::free_port();
    let url = format!("postgres://postgres:pw-canary-7731@127.0.0.1:{port}/test");
    let err = tokio::time::timeout(FAST, PostgresStore::connect(&url, options()))
        .await
        .expect("connect must fail fast")
        .expect_err("nothing listens there");
    let text = full_text(&err);
    assert!(!text.contains("pw-canary-7731"), "{text}");
    let session_error: tessera::SessionError = err.into();
    assert_eq!(session_error.kind(), ErrorKind::Database);

    for bad in [
        format!("postgres://postgres:pw-canary-7731@127.0.0.1:{port}/test?sslmode=nope"),
        format!("postgres://postgres:pw-canary-7731@127.0.0.1:{port}/test?bogus=1"),
        format!("postgresql://postgres:pw-canary-7731@[::1:{port}/test"),
    ] {
        let err = PostgresStore::connect(&bad, options())
            .await
            .expect_err("a bad URL");
        let text = full_text(&err);
        assert!(!text.contains("pw-canary-7731"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_never_appears_in_debug_output() {
    let url = support::url().await;
    let with_password = url.replacen("postgres@", "postgres:pw-canary-5521@", 1);
    let store = PostgresStore::connect(&with_password, options())
        .await
        .expect("trust authentication ignores the password");
    store.ping().await.expect("ping");
    let manager = support::manager(store.clone());
    for text in [
        format!("{store:?}"),
        format!("{manager:?}"),
        format!("{:?}", store.rate_limiter()),
        format!("{:?}", options()),
    ] {
        assert!(!text.contains("pw-canary-5521"), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
    }
    support::drop_schema(store.schema()).await;
}
