//! The validation cache remembers verified tokens and opened records. These
//! tests warm it first, then change what it remembered, and check that
//! validation still answers from the truth: the clock, the store and the
//! exact bytes presented.

mod common;

use std::sync::Arc;

use common::{Harness, START, keys, lifetimes, replace_sealed, role};
use tessera::SessionStore;
use tessera::{ErrorKind, MAX_VALIDATION_CACHE, ManualClock, MemoryStore, SessionManager};

#[tokio::test]
async fn a_tampered_record_fails_even_after_its_session_was_validated() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    h.manager.validate_session(token).await.expect("warm");
    let original = h
        .store
        .get(&issued.session_id, START)
        .await
        .expect("get")
        .expect("present")
        .sealed;
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    replace_sealed(&h.store, &issued.session_id, tampered).await;
    let err = h
        .manager
        .validate_session(token)
        .await
        .expect_err("the remembered record must not stand in for tampered bytes");
    assert_eq!(err.kind(), ErrorKind::Token);
    // The same bytes as before open (and are remembered) again.
    replace_sealed(&h.store, &issued.session_id, original).await;
    h.manager.validate_session(token).await.expect("restored");
}

#[tokio::test]
async fn a_revoked_session_fails_at_once_after_being_validated() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    for _ in 0..3 {
        h.manager.validate_session(token).await.expect("valid");
    }
    h.manager
        .destroy_session_by_id(&issued.session_id)
        .await
        .expect("revoked");
    let err = h
        .manager
        .validate_session(token)
        .await
        .expect_err("revoked");
    assert_eq!(err.kind(), ErrorKind::Token);
}

#[tokio::test]
async fn a_remembered_token_still_expires() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    h.manager.validate_session(token).await.expect("warm");
    // Past the access lifetime and the leeway; the session itself (7 days)
    // is still alive.
    h.clock.advance(24 * 3600 + 31);
    let err = h
        .manager
        .validate_session(token)
        .await
        .expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn a_forged_token_in_the_slot_of_a_remembered_one_fails() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    h.manager.validate_session(token).await.expect("warm");
    // Same header and signature (so the same slot), another payload: a
    // payload of one more claim, signed by nobody.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload = parts[1].to_owned();
    payload.replace_range(..4, "eyJh");
    let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_ne!(forged, token);
    let err = h
        .manager
        .validate_session(&forged)
        .await
        .expect_err("forged");
    assert_eq!(err.kind(), ErrorKind::Token);
    // Inputs sharing the remembered token's tail (and so its slot) but
    // not all of it: a longer and a shorter one.
    for other in [&format!("x{token}"), &token[1..]] {
        let err = h
            .manager
            .validate_session(other)
            .await
            .expect_err("altered");
        assert_eq!(err.kind(), ErrorKind::Token);
    }
    h.manager
        .validate_session(token)
        .await
        .expect("the remembered token is untouched");
}

#[tokio::test]
async fn a_role_change_is_seen_at_once_after_validation() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    let before = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(before.user.role, role("member"));
    h.manager
        .set_membership(&h.user, &h.org, &role("admin"))
        .await
        .expect("promoted");
    let after = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(after.user.role, role("admin"));
}

#[tokio::test]
async fn activity_written_by_validation_is_seen_by_the_next_one() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    h.manager.validate_session(token).await.expect("warm");
    h.clock.advance(61);
    let touched = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(touched.last_activity, START + 61);
    let again = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(again.last_activity, START + 61);
}

fn manager_with_cache(entries: usize) -> (SessionManager, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::builder()
        .keys(keys())
        .store(store.clone())
        .clock(Arc::new(ManualClock::new(START)))
        .lifetimes(lifetimes())
        .validation_cache(entries)
        .build()
        .expect("manager builds");
    (manager, store)
}

#[tokio::test]
async fn sessions_sharing_one_slot_each_validate_as_themselves() {
    // One slot: every validation replaces the other session's entry.
    for entries in [0, 1] {
        let (manager, _store) = manager_with_cache(entries);
        let org = common::random_org();
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let user = common::random_user();
            manager
                .set_membership(&user, &org, &role("member"))
                .await
                .expect("member");
            let issued = manager
                .create_session(tessera::NewSession::new(user, org))
                .await
                .expect("created");
            sessions.push((user, issued));
        }
        for _ in 0..3 {
            for (user, issued) in &sessions {
                let info = manager
                    .validate_session(issued.access_token.expose())
                    .await
                    .expect("valid");
                assert_eq!(info.session_id, issued.session_id, "cache of {entries}");
                assert_eq!(info.user.id, *user);
            }
        }
    }
}

#[test]
fn an_oversized_cache_is_refused() {
    let err = SessionManager::builder()
        .keys(keys())
        .validation_cache(MAX_VALIDATION_CACHE + 1)
        .build()
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn a_record_copied_under_another_session_is_not_served_from_memory() {
    // One slot: both sessions' records compete for it, so the copy below
    // meets the original's entry.
    let (manager, store) = manager_with_cache(1);
    let (user, org) = (common::random_user(), common::random_org());
    manager
        .set_membership(&user, &org, &role("member"))
        .await
        .expect("member");
    let a = manager
        .create_session(tessera::NewSession::new(user, org))
        .await
        .expect("a");
    let b = manager
        .create_session(tessera::NewSession::new(user, org))
        .await
        .expect("b");
    manager
        .validate_session(a.access_token.expose())
        .await
        .expect("a is remembered");
    let a_sealed = store
        .get(&a.session_id, START)
        .await
        .expect("get")
        .expect("present")
        .sealed;
    replace_sealed(&store, &b.session_id, a_sealed).await;
    // Same user, same org, the same bytes as the remembered entry: only the
    // session id tells them apart.
    let err = manager
        .validate_session(b.access_token.expose())
        .await
        .expect_err("a's record under b's id");
    assert_eq!(err.kind(), ErrorKind::Token);
}
