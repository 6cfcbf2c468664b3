//! Refresh-token rotation, reuse detection and the grace window.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use tessera::{ErrorKind, Lifetimes};

fn lifetimes_with_grace(grace: u64) -> Lifetimes {
    Lifetimes {
        reuse_grace: Duration::from_secs(grace),
        ..common::lifetimes()
    }
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_and_retires_the_old_pair() {
    let h = Harness::new().await;
    let first = h.login().await;
    h.clock.advance(60);
    let second = h.refresh(&first.refresh_token).await.expect("refreshed");
    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.refresh_expires_in, 7 * 24 * 3600);
    h.validate(&second.access_token)
        .await
        .expect("new access token works");
    let third = h
        .refresh(&second.refresh_token)
        .await
        .expect("the new refresh token works");
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_eq!(h.stats().await.sessions_refreshed, 2);
}

#[tokio::test]
async fn replaying_a_rotated_refresh_token_revokes_the_session() {
    let h = Harness::new().await;
    let first = h.login().await;
    let second = h.refresh(&first.refresh_token).await.expect("refreshed");
    // Past the grace window, the old token is a stolen one.
    h.clock.advance(11);
    let err = h.refresh(&first.refresh_token).await.expect_err("replay");
    assert_eq!(err.kind(), ErrorKind::Token);
    for token in [first.access_token.expose(), second.access_token.expose()] {
        let err = h
            .manager
            .validate_session(token)
            .await
            .expect_err("revoked");
        assert_eq!(err.kind(), ErrorKind::Token);
    }
    assert!(
        h.refresh(&second.refresh_token).await.is_err(),
        "the legitimate successor dies with the session"
    );
    let stats = h.stats().await;
    assert_eq!(stats.refresh_reuse_detected, 1);
    assert_eq!(stats.active_sessions, 0);
}

#[tokio::test]
async fn replaying_an_older_token_revokes_even_inside_the_grace_window() {
    let h = Harness::new().await;
    let first = h.login().await;
    let second = h.refresh(&first.refresh_token).await.expect("refreshed");
    h.refresh(&second.refresh_token)
        .await
        .expect("refreshed again");
    let err = h
        .refresh(&first.refresh_token)
        .await
        .expect_err("two generations old");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert_eq!(h.stats().await.active_sessions, 0);
}

#[tokio::test]
async fn the_previous_token_inside_the_grace_window_gets_the_same_successor() {
    let h = Harness::new().await;
    let first = h.login().await;
    let a = h.refresh(&first.refresh_token).await.expect("tab one");
    h.clock.advance(10);
    let b = h
        .refresh(&first.refresh_token)
        .await
        .expect("tab two, inside the window");
    assert_eq!(a.refresh_token, b.refresh_token);
    assert_eq!(a.access_token, b.access_token);
    h.refresh(&b.refresh_token)
        .await
        .expect("the shared successor is live");
}

#[tokio::test]
async fn with_the_grace_window_disabled_any_second_presentation_revokes() {
    let h = Harness::with(common::keys(), lifetimes_with_grace(0)).await;
    let first = h.login().await;
    h.refresh(&first.refresh_token).await.expect("refreshed");
    assert!(h.refresh(&first.refresh_token).await.is_err());
    assert_eq!(h.stats().await.active_sessions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_refreshes_of_one_token_yield_one_successor() {
    let h = Arc::new(Harness::new().await);
    let first = h.login().await;
    let token = first.refresh_token.expose().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let h = h.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            h.manager.refresh_session(&token).await
        }));
    }
    let mut successors = HashSet::new();
    for task in tasks {
        let issued = task
            .await
            .expect("task")
            .expect("every racer inside the grace window succeeds");
        successors.insert(issued.refresh_token.expose().to_owned());
    }
    assert_eq!(successors.len(), 1, "one successor, handed to every racer");
    let only = successors.into_iter().next().expect("one");
    h.manager
        .refresh_session(&only)
        .await
        .expect("the successor is the live token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_without_grace_never_leave_two_live_successors() {
    let h = Arc::new(Harness::with(common::keys(), lifetimes_with_grace(0)).await);
    let first = h.login().await;
    let token = first.refresh_token.expose().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let h = h.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            h.manager.refresh_session(&token).await
        }));
    }
    let mut live = 0;
    for task in tasks {
        if let Ok(issued) = task.await.expect("task")
            && h.validate(&issued.access_token).await.is_ok()
        {
            live += 1;
        }
    }
    assert!(live <= 1, "{live} live successors");
}

#[tokio::test]
async fn a_forged_refresh_token_naming_a_victims_session_does_not_harm_it() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    let h = Harness::new().await;
    let victim = h.login().await;
    // Keep the session id and generation, change the secret: the MAC fails,
    // so the store is never asked and reuse detection never fires.
    let raw = B64
        .decode(&victim.refresh_token.expose()["tsr1_".len()..])
        .expect("b64");
    for i in [20, 40, raw.len() - 1] {
        let mut forged = raw.clone();
        forged[i] ^= 0x55;
        let forged = format!("tsr1_{}", B64.encode(&forged));
        let err = h
            .manager
            .refresh_session(&forged)
            .await
            .expect_err("forged");
        assert_eq!(err.kind(), ErrorKind::Token);
    }
    // An older generation number with a garbage secret and tag: same answer.
    let mut older = raw.clone();
    older[16..20].copy_from_slice(&0u32.to_be_bytes());
    older[30] ^= 1;
    let older = format!("tsr1_{}", B64.encode(&older));
    assert!(h.manager.refresh_session(&older).await.is_err());
    h.validate(&victim.access_token)
        .await
        .expect("the victim's session is untouched");
    h.refresh(&victim.refresh_token)
        .await
        .expect("and can still refresh");
    assert_eq!(h.stats().await.refresh_reuse_detected, 0);
}

#[tokio::test]
async fn refreshes_cannot_extend_a_session_past_its_absolute_lifetime() {
    let lifetimes = Lifetimes {
        absolute: Duration::from_secs(10 * 24 * 3600),
        ..common::lifetimes()
    };
    let h = Harness::with(common::keys(), lifetimes).await;
    let mut current = h.login().await;
    for day in [3, 6, 9] {
        h.clock.advance(3 * 24 * 3600);
        current = h
            .refresh(&current.refresh_token)
            .await
            .expect("refresh inside the absolute lifetime");
        assert_eq!(current.refresh_expires_in, (10 - day) * 24 * 3600);
    }
    // Day 9: the refresh lifetime is capped by the absolute end at day 10.
    h.clock.advance(24 * 3600);
    let err = h
        .refresh(&current.refresh_token)
        .await
        .expect_err("past the absolute lifetime");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert!(h.validate(&current.access_token).await.is_err());
}

#[tokio::test]
async fn malformed_refresh_tokens_are_token_errors() {
    let h = Harness::new().await;
    for bad in ["", "tsr1_", "tsr1_!!!!", "Bearer x", &"t".repeat(10_000)] {
        let err = h.manager.refresh_session(bad).await.expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Token);
    }
}
