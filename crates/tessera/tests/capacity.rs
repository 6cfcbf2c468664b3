//! A memory store with a capacity: a flood of creations or memberships is
//! refused with a clear error once the store is full, what it holds keeps
//! working, and expired sessions make room.

mod common;

use std::sync::Arc;

use common::{START, keys, lifetimes, random_org, random_user, role};
use tessera::store::Capacity;
use tessera::{ErrorKind, ManualClock, MemoryStore, NewSession, SessionManager};

fn bounded(sessions: usize, memberships: usize) -> (SessionManager, ManualClock) {
    let clock = ManualClock::new(START);
    let store = MemoryStore::with_capacity(Capacity {
        sessions,
        memberships,
    });
    let manager = SessionManager::builder()
        .keys(keys())
        .store(Arc::new(store))
        .clock(Arc::new(clock.clone()))
        .lifetimes(lifetimes())
        .build()
        .expect("manager builds");
    (manager, clock)
}

#[tokio::test]
async fn a_full_store_refuses_new_sessions_and_keeps_serving_the_ones_it_holds() {
    let (manager, _clock) = bounded(3, 100);
    let (user, org) = (random_user(), random_org());
    manager
        .set_membership(&user, &org, &role("member"))
        .await
        .expect("member");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            manager
                .create_session(NewSession::new(user, org))
                .await
                .expect("room"),
        );
    }
    let refused = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect_err("full");
    assert_eq!(refused.kind(), ErrorKind::Database);
    assert!(refused.message().contains("full"), "{}", refused.message());
    for issued in &held {
        manager
            .validate_session(issued.access_token.expose())
            .await
            .expect("still served");
    }
    // A rotation replaces a session; it needs no room.
    manager
        .refresh_session(held[0].refresh_token.expose())
        .await
        .expect("refresh at capacity");
    // Ending one makes room for one.
    manager
        .destroy_session(held[1].access_token.expose())
        .await
        .expect("logout");
    manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("room again");
}

#[tokio::test]
async fn expired_sessions_are_purged_to_make_room() {
    let (manager, clock) = bounded(2, 100);
    let (user, org) = (random_user(), random_org());
    manager
        .set_membership(&user, &org, &role("member"))
        .await
        .expect("member");
    for _ in 0..2 {
        manager
            .create_session(NewSession::new(user, org))
            .await
            .expect("room");
    }
    assert!(
        manager
            .create_session(NewSession::new(user, org))
            .await
            .is_err()
    );
    clock.advance(lifetimes().refresh.as_secs() + 120);
    manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("the expired ones made room");
}

#[tokio::test]
async fn memberships_are_bounded_the_same_way() {
    let (manager, _clock) = bounded(100, 2);
    let org = random_org();
    let (a, b) = (random_user(), random_user());
    manager
        .set_membership(&a, &org, &role("member"))
        .await
        .expect("first");
    manager
        .set_membership(&b, &org, &role("member"))
        .await
        .expect("second");
    let refused = manager
        .set_membership(&random_user(), &org, &role("member"))
        .await
        .expect_err("full");
    assert_eq!(refused.kind(), ErrorKind::Database);
    // Changing a membership it holds needs no room.
    manager
        .set_membership(&a, &org, &role("admin"))
        .await
        .expect("a change in place");
    assert!(manager.remove_membership(&b, &org).await.expect("removed"));
    manager
        .set_membership(&random_user(), &org, &role("member"))
        .await
        .expect("room again");
}
