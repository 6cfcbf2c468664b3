//! Memberships, and how their changes reach live sessions.

mod common;

use common::{Harness, random_org, role};
use tessera::{ErrorKind, NewSession};

#[tokio::test]
async fn a_demotion_takes_effect_at_the_next_validation() {
    let h = Harness::new().await;
    h.manager
        .set_membership(&h.user, &h.org, &role("admin"))
        .await
        .expect("promoted");
    let issued = h.login().await;
    let token = issued.access_token.expose();
    assert!(
        h.manager
            .has_permission(token, "delete:users")
            .await
            .expect("ok")
    );

    h.manager
        .set_membership(&h.user, &h.org, &role("viewer"))
        .await
        .expect("demoted");
    assert!(
        !h.manager
            .has_permission(token, "delete:users")
            .await
            .expect("ok"),
        "the old token lost what the role lost"
    );
    assert!(
        h.manager
            .has_permission(token, "read:users")
            .await
            .expect("ok")
    );
    let info = h
        .manager
        .validate_session(token)
        .await
        .expect("still valid");
    assert_eq!(info.user.role, role("viewer"));
    let refreshed = h.refresh(&issued.refresh_token).await.expect("refreshed");
    assert_eq!(refreshed.user.role, role("viewer"));
}

#[tokio::test]
async fn removing_a_member_revokes_their_sessions_in_that_org_only() {
    let h = Harness::new().await;
    let other_org = random_org();
    h.manager
        .set_membership(&h.user, &other_org, &role("viewer"))
        .await
        .expect("member");
    let here = h.login().await;
    let there = h
        .manager
        .create_session(NewSession::new(h.user, other_org))
        .await
        .expect("created");

    assert!(
        h.manager
            .remove_membership(&h.user, &h.org)
            .await
            .expect("removed")
    );
    let err = h.validate(&here.access_token).await.expect_err("revoked");
    assert_eq!(err.kind(), ErrorKind::Token);
    h.validate(&there.access_token)
        .await
        .expect("the other org's session lives");
    assert_eq!(
        h.manager.membership(&h.user, &h.org).await.expect("read"),
        None
    );
    let err = h
        .manager
        .create_session(h.new_session())
        .await
        .expect_err("no longer a member");
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(
        !h.manager
            .remove_membership(&h.user, &h.org)
            .await
            .expect("idempotent")
    );
}

#[tokio::test]
async fn lifecycle_events_reach_the_event_sink() {
    use std::sync::{Arc, Mutex};
    use tessera::{EventSink, SessionEvent};

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<SessionEvent>>);
    impl EventSink for Recorder {
        fn record(&self, event: &SessionEvent) {
            self.0.lock().expect("lock").push(event.clone());
        }
    }

    let recorder = Arc::new(Recorder::default());
    let manager = tessera::SessionManager::builder()
        .keys(common::keys())
        .events(recorder.clone())
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    let (user, org) = (common::random_user(), random_org());
    manager
        .set_membership(&user, &org, &role("viewer"))
        .await
        .expect("member");
    let issued = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("created");
    let next = manager
        .refresh_session(issued.refresh_token.expose())
        .await
        .expect("refreshed");
    manager
        .destroy_session(next.access_token.expose())
        .await
        .expect("destroyed");

    let events = recorder.0.lock().expect("lock").clone();
    let names: Vec<&str> = events
        .iter()
        .map(|e| match e {
            SessionEvent::MembershipChanged { .. } => "membership",
            SessionEvent::Created { .. } => "created",
            SessionEvent::Refreshed { .. } => "refreshed",
            SessionEvent::Destroyed { .. } => "destroyed",
            _ => "other",
        })
        .collect();
    assert_eq!(names, ["membership", "created", "refreshed", "destroyed"]);
    let debug = format!("{events:?}");
    assert!(!debug.contains(issued.refresh_token.expose()));
    assert!(!debug.contains(issued.access_token.expose()));
}

/// A directory whose answer changes after the first lookup, as if an admin
/// changed the membership while the session was being created.
#[derive(Debug)]
struct ChangingDirectory {
    first: Option<tessera::RoleName>,
    then: Option<tessera::RoleName>,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl tessera::Directory for ChangingDirectory {
    async fn role(
        &self,
        _user: &tessera::UserId,
        _org: &tessera::OrgId,
    ) -> tessera::Result<Option<tessera::RoleName>> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(if n == 0 {
            self.first.clone()
        } else {
            self.then.clone()
        })
    }
}

async fn create_with_changing_directory(
    first: Option<&str>,
    then: Option<&str>,
) -> (
    tessera::Result<tessera::IssuedTokens>,
    std::sync::Arc<tessera::MemoryStore>,
) {
    let store = std::sync::Arc::new(tessera::MemoryStore::new());
    let manager = tessera::SessionManager::builder()
        .keys(common::keys())
        .store(store.clone())
        .directory(std::sync::Arc::new(ChangingDirectory {
            first: first.map(role),
            then: then.map(role),
            calls: Default::default(),
        }))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    let result = manager
        .create_session(NewSession::new(common::random_user(), random_org()))
        .await;
    (result, store)
}

#[tokio::test]
async fn a_demotion_during_creation_still_applies_to_the_new_session() {
    let (result, _) = create_with_changing_directory(Some("admin"), Some("viewer")).await;
    let issued = result.expect("created with the newer role");
    assert_eq!(issued.user.role, role("viewer"));
}

#[tokio::test]
async fn a_removal_during_creation_leaves_no_session_behind() {
    let (result, store) = create_with_changing_directory(Some("admin"), None).await;
    assert_eq!(
        result.expect_err("removed").kind(),
        ErrorKind::Authentication
    );
    assert!(store.is_empty());
}
