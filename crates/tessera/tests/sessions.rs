//! The session lifecycle: create, validate, permissions, destroy, list,
//! statistics and cleanup.

mod common;

use common::{Harness, START, random_org, random_user, role};
use tessera::{
    DeviceId, ErrorKind, NewSession, PageRequest, SessionFilter, UserAgent, ids::parse_ip,
};

#[tokio::test]
async fn a_created_session_validates_and_reports_its_user() {
    let h = Harness::new().await;
    let new = h
        .new_session()
        .device_id(DeviceId::parse("laptop-1").expect("device"))
        .ip_address(parse_ip("203.0.113.9").expect("ip"))
        .user_agent(UserAgent::parse("Mozilla/5.0").expect("ua"))
        .attribute("plan", "pro");
    let issued = h.manager.create_session(new).await.expect("created");
    assert_eq!(issued.expires_in, 24 * 3600);
    assert_eq!(issued.refresh_expires_in, 7 * 24 * 3600);
    assert_eq!(issued.user.id, h.user);
    assert_eq!(issued.user.role.as_str(), "member");
    assert!(issued.user.permissions.contains(&"write:*".to_owned()));

    let info = h.validate(&issued.access_token).await.expect("valid");
    assert_eq!(info.session_id, issued.session_id);
    assert_eq!(info.user.org_id, h.org);
    assert_eq!(
        info.device_id.as_ref().map(|d| d.as_str()),
        Some("laptop-1")
    );
    assert_eq!(
        info.ip_address.map(|i| i.to_string()).as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(
        info.user_agent.as_ref().map(|u| u.as_str()),
        Some("Mozilla/5.0")
    );
    assert_eq!(info.attributes.get("plan").map(String::as_str), Some("pro"));
    assert_eq!(info.created_at, START);

    let user = h
        .manager
        .get_user_from_token(issued.access_token.expose())
        .await
        .expect("user");
    assert_eq!(user, issued.user);
}

#[tokio::test]
async fn a_user_who_is_not_a_member_cannot_create_a_session() {
    let h = Harness::new().await;
    let err = h
        .manager
        .create_session(NewSession::new(random_user(), h.org))
        .await
        .expect_err("not a member");
    assert_eq!(err.kind(), ErrorKind::Authentication);
    let err = h
        .manager
        .create_session(NewSession::new(h.user, random_org()))
        .await
        .expect_err("member of another org only");
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(h.store.len(), 0, "a refused creation stores nothing");
}

#[tokio::test]
async fn invalid_input_is_a_validation_error_and_changes_nothing() {
    let h = Harness::new().await;
    for (user, org, device, ip, ua) in [
        (
            "not-a-uuid",
            "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11",
            None,
            None,
            None,
        ),
        ("6f9619ff-8b86-d011-b42d-00cf4fc964ff", "", None, None, None),
        (
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11",
            Some("bad device"),
            None,
            None,
        ),
        (
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11",
            None,
            Some("999.1.1.1"),
            None,
        ),
        (
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11",
            None,
            None,
            Some("line\nbreak"),
        ),
    ] {
        let err = NewSession::parse(user, org, device, ip, ua).expect_err("invalid input");
        assert_eq!(err.kind(), ErrorKind::Validation);
    }
    let issued = h.login().await;
    let err = h
        .manager
        .has_permission(issued.access_token.expose(), "read:*")
        .await
        .expect_err("wildcards are for grants only");
    assert_eq!(err.kind(), ErrorKind::Validation);
    let err = h
        .manager
        .set_membership(&h.user, &h.org, &role("superuser"))
        .await
        .expect_err("role not in the policy");
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(
        h.manager.membership(&h.user, &h.org).await.expect("read"),
        Some(role("member")),
        "a refused membership change changes nothing"
    );
}

#[tokio::test]
async fn permissions_follow_the_role_policy() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    assert!(
        h.manager
            .has_permission(token, "read:users")
            .await
            .expect("ok")
    );
    assert!(
        h.manager
            .has_permission(token, "write:documents")
            .await
            .expect("ok")
    );
    assert!(
        !h.manager
            .has_permission(token, "delete:users")
            .await
            .expect("ok")
    );
    let err = h
        .manager
        .has_permission("garbage", "read:users")
        .await
        .expect_err("bad token");
    assert_eq!(err.kind(), ErrorKind::Token);
}

#[tokio::test]
async fn a_destroyed_session_rejects_its_tokens_at_the_next_call() {
    let h = Harness::new().await;
    let issued = h.login().await;
    h.manager
        .destroy_session(issued.access_token.expose())
        .await
        .expect("destroyed");
    let err = h
        .validate(&issued.access_token)
        .await
        .expect_err("access token dead");
    assert_eq!(err.kind(), ErrorKind::Token);
    let err = h
        .refresh(&issued.refresh_token)
        .await
        .expect_err("refresh token dead");
    assert_eq!(err.kind(), ErrorKind::Token);
    let err = h
        .manager
        .destroy_session(issued.access_token.expose())
        .await
        .expect_err("already gone");
    assert_eq!(err.kind(), ErrorKind::Token);
}

#[tokio::test]
async fn a_session_revoked_by_id_is_rejected_and_a_second_revocation_is_not_found() {
    let h = Harness::new().await;
    let issued = h.login().await;
    h.manager
        .destroy_session_by_id(&issued.session_id)
        .await
        .expect("revoked");
    assert!(h.validate(&issued.access_token).await.is_err());
    let err = h
        .manager
        .destroy_session_by_id(&issued.session_id)
        .await
        .expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn log_out_everywhere_ends_every_session_of_the_user_only() {
    let h = Harness::new().await;
    let mine: Vec<_> = [h.login().await, h.login().await, h.login().await].into();
    let other = random_user();
    h.manager
        .set_membership(&other, &h.org, &role("viewer"))
        .await
        .expect("member");
    let theirs = h
        .manager
        .create_session(NewSession::new(other, h.org))
        .await
        .expect("created");

    let listed = h.manager.user_sessions(&h.user).await.expect("listed");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|s| s.user.id == h.user));

    assert_eq!(
        h.manager.destroy_user_sessions(&h.user).await.expect("ok"),
        3
    );
    for issued in &mine {
        assert!(h.validate(&issued.access_token).await.is_err());
    }
    assert!(
        h.manager
            .user_sessions(&h.user)
            .await
            .expect("listed")
            .is_empty()
    );
    assert!(h.validate(&theirs.access_token).await.is_ok());
    assert_eq!(
        h.manager.destroy_user_sessions(&h.user).await.expect("ok"),
        0
    );
}

#[tokio::test]
async fn active_sessions_are_paged_and_filtered_by_org() {
    let h = Harness::new().await;
    let other_org = random_org();
    h.manager
        .set_membership(&h.user, &other_org, &role("viewer"))
        .await
        .expect("member");
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(h.login().await.session_id);
    }
    h.manager
        .create_session(NewSession::new(h.user, other_org))
        .await
        .expect("created");

    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 2,
        cursor: None,
    };
    let filter = SessionFilter {
        org_id: Some(h.org),
    };
    loop {
        let got = h
            .manager
            .active_sessions(&filter, &page)
            .await
            .expect("page");
        assert!(got.sessions.len() <= 2);
        seen.extend(got.sessions.iter().map(|s| s.session_id));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    seen.sort();
    created.sort();
    assert_eq!(seen, created);

    let all = h
        .manager
        .active_sessions(&SessionFilter::default(), &PageRequest::default())
        .await
        .expect("page");
    assert_eq!(all.sessions.len(), 6);
    let err = h
        .manager
        .active_sessions(
            &SessionFilter::default(),
            &PageRequest {
                limit: 10,
                cursor: Some("not a cursor".into()),
            },
        )
        .await
        .expect_err("bad cursor");
    assert_eq!(err.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn expired_sessions_are_rejected_then_cleaned_up_and_counted() {
    let h = Harness::new().await;
    let early = h.login().await;
    h.clock.advance(3 * 24 * 3600);
    let late = h.login().await;

    let stats = h.stats().await;
    assert_eq!(stats.active_sessions, 2);
    assert_eq!(stats.active_by_org.get(&h.org), Some(&2));
    assert_eq!(stats.sessions_created, 2);
    assert_eq!(stats.last_cleanup, None);

    // Past the first session's refresh lifetime (7 d), before the second's.
    h.clock.advance(5 * 24 * 3600);
    let err = h.refresh(&early.refresh_token).await.expect_err("expired");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert_eq!(h.stats().await.active_sessions, 1);

    assert_eq!(
        h.manager.cleanup_expired_sessions().await.expect("cleanup"),
        1
    );
    assert_eq!(h.store.len(), 1);
    let stats = h.stats().await;
    assert_eq!(stats.sessions_expired, 1);
    assert_eq!(stats.last_cleanup, Some(START + 8 * 24 * 3600));
    assert_eq!(stats.last_cleanup_removed, 1);
    assert!(h.refresh(&late.refresh_token).await.is_ok());
}

#[tokio::test]
async fn activity_is_written_at_most_once_per_interval() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    h.clock.advance(30);
    let info = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(info.last_activity, START, "inside the interval: no write");
    h.clock.advance(31);
    h.manager.validate_session(token).await.expect("valid");
    h.clock.advance(1);
    let info = h.manager.validate_session(token).await.expect("valid");
    assert_eq!(
        info.last_activity,
        START + 61,
        "written once the interval passed"
    );
    let listed = h.manager.user_sessions(&h.user).await.expect("listed");
    assert_eq!(listed[0].last_activity, START + 61);
}

#[tokio::test(start_paused = true)]
async fn the_background_cleanup_runs_on_its_interval_and_stops_with_the_manager() {
    use std::sync::Arc;
    use std::time::Duration;

    let store = Arc::new(tessera::MemoryStore::new());
    let clock = tessera::ManualClock::new(START);
    let manager = tessera::SessionManager::builder()
        .keys(common::keys())
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .lifetimes(tessera::Lifetimes {
            cleanup_interval: Duration::from_secs(3600),
            ..tessera::Lifetimes::default()
        })
        .build()
        .expect("manager");
    let (user, org) = (random_user(), random_org());
    manager
        .set_membership(&user, &org, &role("viewer"))
        .await
        .expect("member");
    manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("created");
    clock.advance(8 * 24 * 3600);
    assert_eq!(store.len(), 1);
    tokio::time::sleep(Duration::from_secs(3601)).await;
    assert_eq!(
        store.len(),
        0,
        "the scheduled cleanup removed the expired session"
    );
    assert!(
        manager
            .session_stats()
            .await
            .expect("stats")
            .last_cleanup
            .is_some()
    );

    // Dropping the last handle ends the task: the store is then held only here.
    drop(manager);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the cleanup task let go of the manager"
    );
}

#[tokio::test]
async fn tokens_never_show_in_debug_output() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let debug = format!("{issued:?} {:?}", h.manager);
    assert!(debug.contains("[redacted]"));
    assert!(!debug.contains(issued.access_token.expose()));
    assert!(!debug.contains(issued.refresh_token.expose()));
    assert!(!debug.contains(common::JWT_SECRET));
    assert!(!debug.contains(common::ENCRYPTION_KEY));
}
