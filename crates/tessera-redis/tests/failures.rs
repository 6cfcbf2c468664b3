//! Failure behaviour on a real redis-server that each test starts on its own
//! port and stops and starts again: errors while Redis is down are quick
//! `DATABASE_ERROR`s, nothing panics, the store recovers by itself, and a
//! restart with persistence loses no session. Credentials never leak into
//! errors or Debug output.

mod support;

use std::error::Error;
use std::time::Duration;

use tessera::{ErrorKind, NewSession, SessionStore};
use tessera_redis::{RedisOptions, RedisStore};
use tessera_test_support::RedisServer;

/// Generous bound for "fails fast": the store's response timeout is 2 s.
const FAST: Duration = Duration::from_secs(6);

fn full_text(e: &dyn Error) -> String {
    let mut text = format!("{e} {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    text
}

/// Retries `f` until it succeeds, for up to 15 s: the time a reconnect to a
/// server that just came back takes.
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
async fn with_redis_down_calls_fail_fast_as_database_errors_and_recover_with_no_session_lost() {
    let mut node = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = RedisStore::connect(&node.url(), "failover:")
        .await
        .expect("connect");
    let manager = support::manager(store.clone());
    let (user, org) = (support::random_user(), support::random_org());
    manager
        .set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");
    let before = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("create");
    manager
        .validate_session(before.access_token.expose())
        .await
        .expect("validate");

    node.stop();

    let down = tokio::time::timeout(FAST, manager.validate_session(before.access_token.expose()))
        .await
        .expect("validation must fail fast, not hang")
        .expect_err("validation cannot succeed with Redis down");
    assert_eq!(down.kind(), ErrorKind::Database);
    assert_eq!(down.kind().as_str(), "DATABASE_ERROR");
    let create = tokio::time::timeout(FAST, manager.create_session(NewSession::new(user, org)))
        .await
        .expect("create must fail fast")
        .expect_err("create cannot succeed with Redis down");
    assert_eq!(create.kind(), ErrorKind::Database);
    let refresh =
        tokio::time::timeout(FAST, manager.refresh_session(before.refresh_token.expose()))
            .await
            .expect("refresh must fail fast")
            .expect_err("refresh cannot succeed with Redis down");
    assert_eq!(refresh.kind(), ErrorKind::Database);
    let ping = tokio::time::timeout(FAST, manager.ping())
        .await
        .expect("readiness must fail fast");
    assert_eq!(ping.expect_err("not ready").kind(), ErrorKind::Database);
    // Repeated failures stay fast (no growing back-off stalls callers).
    for _ in 0..3 {
        let r = tokio::time::timeout(FAST, store.get(&before.session_id, 0)).await;
        assert!(r.expect("fast").is_err());
    }

    node.restart();

    // The session written before the restart survived it (append-only file),
    // and the first call after Redis returns reconnects by itself.
    let session = eventually("validation", || {
        manager.validate_session(before.access_token.expose())
    })
    .await;
    assert_eq!(session.session_id, before.session_id);
    // The restarted server has no scripts cached: EVALSHA reloads them.
    let rotated = manager
        .refresh_session(before.refresh_token.expose())
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_is_down_fails_fast_without_echoing_the_password() {
    let port = tessera_test_support::free_port();
    let url = format!("redis://:pw-canary-7731@127.0.0.1:{port}/0");
    let err = tokio::time::timeout(FAST, RedisStore::connect(&url, "x:"))
        .await
        .expect("connect must fail fast")
        .expect_err("nothing listens there");
    let text = full_text(&err);
    assert!(!text.contains("pw-canary-7731"), "{text}");
    let session_error: tessera::SessionError = err.into();
    assert_eq!(session_error.kind(), ErrorKind::Database);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_starts_while_redis_is_down_and_works_once_it_is_up() {
    let port = tessera_test_support::free_port();
    let options = RedisOptions {
        prefix: support::unique_prefix(),
        lazy: true,
        ..RedisOptions::default()
    };
    let store = RedisStore::connect_with(&format!("redis://127.0.0.1:{port}"), options)
        .await
        .expect("a lazy store connects on first use");
    let err = tokio::time::timeout(FAST, store.ping())
        .await
        .expect("fails fast");
    assert!(err.is_err(), "not ready while Redis is down");

    let _node = RedisServer::start_on(port, &[]);
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
        .expect("create once Redis is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_work_and_never_appear_in_errors_or_debug_output() {
    let node = RedisServer::start(&["--requirepass", "requirepass-canary-5521"]);
    let good = format!("redis://:requirepass-canary-5521@127.0.0.1:{}", node.port());
    let store = RedisStore::connect(&good, "auth:")
        .await
        .expect("right password");
    store.ping().await.expect("ping");
    let manager = support::manager(store.clone());
    for text in [
        format!("{store:?}"),
        format!("{manager:?}"),
        format!("{:?}", store.rate_limiter()),
    ] {
        assert!(!text.contains("requirepass-canary-5521"), "{text}");
    }

    let bad = format!("redis://:wrong-canary-8812@127.0.0.1:{}", node.port());
    let err = RedisStore::connect(&bad, "auth:")
        .await
        .expect_err("wrong password");
    let text = full_text(&err);
    assert!(!text.contains("wrong-canary-8812"), "{text}");
    assert!(!text.contains("requirepass-canary-5521"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prefixes_and_urls_are_refused_before_connecting() {
    for prefix in ["a{b", "x}", "has space", &"p".repeat(65)] {
        let options = RedisOptions {
            prefix: prefix.to_owned(),
            lazy: true,
            ..RedisOptions::default()
        };
        assert!(
            RedisStore::connect_with("redis://127.0.0.1:1", options)
                .await
                .is_err(),
            "{prefix:?}"
        );
    }
    for url in [
        "http://127.0.0.1:6379",
        "redis+cluster://",
        "redis+cluster://h:1/2",
        "nonsense",
    ] {
        assert!(RedisStore::connect(url, "p:").await.is_err(), "{url}");
    }
}
