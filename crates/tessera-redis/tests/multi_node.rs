//! Several Tessera nodes over one Redis: each node is a `SessionManager`
//! with its own connections, sharing the keys and the prefix. A session
//! made on one node is validated, refreshed and ended on another;
//! revocation is seen by the other node at its very next call; concurrent
//! refreshes from both nodes produce one successor; statistics agree.

mod support;

use std::collections::HashSet;

use support::Mode;
use tessera::{ErrorKind, NewSession, SessionManager};
use tessera_redis::RedisStore;

async fn two_nodes(mode: Mode) -> (SessionManager, SessionManager, String) {
    let a = support::store(mode).await;
    let prefix = a.prefix().to_owned();
    let b = RedisStore::connect(&mode.url(), &prefix)
        .await
        .expect("node b");
    (support::manager(a), support::manager(b), prefix)
}

async fn sessions_move_between_nodes(mode: Mode) {
    let (a, b, prefix) = two_nodes(mode).await;
    let (user, org) = (support::random_user(), support::random_org());
    a.set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");

    let issued = a
        .create_session(NewSession::new(user, org))
        .await
        .expect("create on a");
    let seen = b
        .validate_session(issued.access_token.expose())
        .await
        .expect("validate on b");
    assert_eq!(seen.session_id, issued.session_id);
    let rotated = b
        .refresh_session(issued.refresh_token.expose())
        .await
        .expect("refresh on b");
    a.validate_session(rotated.access_token.expose())
        .await
        .expect("successor on a");

    a.destroy_session(rotated.access_token.expose())
        .await
        .expect("destroy on a");
    let err = b
        .validate_session(rotated.access_token.expose())
        .await
        .expect_err("revoked on a, rejected on b at once");
    assert_eq!(err.kind(), ErrorKind::Token);
    let err = b
        .refresh_session(rotated.refresh_token.expose())
        .await
        .expect_err("refresh too");
    assert_eq!(err.kind(), ErrorKind::Token);

    // Log out everywhere on b ends sessions made on a.
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(
            a.create_session(NewSession::new(user, org))
                .await
                .expect("create"),
        );
    }
    assert_eq!(
        b.destroy_user_sessions(&user)
            .await
            .expect("log out everywhere"),
        5
    );
    for t in &tokens {
        assert!(a.validate_session(t.access_token.expose()).await.is_err());
    }

    // Both nodes report the same live count.
    for _ in 0..3 {
        a.create_session(NewSession::new(user, org))
            .await
            .expect("create");
    }
    b.create_session(NewSession::new(user, org))
        .await
        .expect("create");
    let (sa, sb) = (
        a.session_stats().await.expect("stats"),
        b.session_stats().await.expect("stats"),
    );
    assert_eq!(sa.active_sessions, 4);
    assert_eq!(sa.active_sessions, sb.active_sessions);
    assert_eq!(sa.active_by_org, sb.active_by_org);
    support::delete_keys(mode, &prefix);
}

async fn concurrent_refreshes_from_both_nodes_yield_one_successor(mode: Mode) {
    let (a, b, prefix) = two_nodes(mode).await;
    let (user, org) = (support::random_user(), support::random_org());
    a.set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");
    for round in 0..3 {
        let issued = a
            .create_session(NewSession::new(user, org))
            .await
            .expect("create");
        let token = issued.refresh_token.expose().to_owned();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let node = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (token, barrier) = (token.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    node.refresh_session(&token)
                        .await
                        .map(|t| t.refresh_token.expose().to_owned())
                })
            })
            .collect();
        let mut successors = HashSet::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(next) => {
                    successors.insert(next);
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::Token, "round {round}: {e}"),
            }
        }
        assert_eq!(
            successors.len(),
            1,
            "round {round}: one successor, whichever node won"
        );
        let next = successors.into_iter().next().expect("one");
        b.refresh_session(&next)
            .await
            .expect("the one successor works");
    }
    support::delete_keys(mode, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_created_on_one_node_are_validated_refreshed_and_ended_on_another() {
    sessions_move_between_nodes(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_move_between_nodes_on_a_cluster() {
    sessions_move_between_nodes(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_split_across_two_nodes_yield_one_successor() {
    concurrent_refreshes_from_both_nodes_yield_one_successor(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_split_across_two_nodes_yield_one_successor_on_a_cluster() {
    concurrent_refreshes_from_both_nodes_yield_one_successor(Mode::Cluster).await;
}
