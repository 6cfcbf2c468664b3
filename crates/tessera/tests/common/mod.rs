//! Shared setup for the integration tests: a manager over a memory store the
//! test can inspect, a clock the test moves, and a member to log in as.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use tessera::{
    KeyRing, Lifetimes, ManualClock, MemoryStore, NewSession, OrgId, RoleName, SessionManager,
    UserId,
};

pub const JWT_SECRET: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-test-only";
pub const ENCRYPTION_KEY: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-test-only";
pub const START: u64 = 1_800_000_000;

pub struct Harness {
    pub manager: SessionManager,
    pub store: Arc<MemoryStore>,
    pub clock: ManualClock,
    pub user: UserId,
    pub org: OrgId,
}

pub fn keys() -> KeyRing {
    KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("test keys are valid")
}

pub fn lifetimes() -> Lifetimes {
    Lifetimes {
        cleanup_interval: Duration::ZERO,
        ..Lifetimes::default()
    }
}

pub fn role(name: &str) -> RoleName {
    RoleName::parse(name).expect("role name")
}

pub fn random_user() -> UserId {
    UserId::from_uuid(uuid::Uuid::new_v4())
}

pub fn random_org() -> OrgId {
    OrgId::from_uuid(uuid::Uuid::new_v4())
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(keys(), lifetimes()).await
    }

    pub async fn with(keys: KeyRing, lifetimes: Lifetimes) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = ManualClock::new(START);
        let manager = SessionManager::builder()
            .keys(keys)
            .store(store.clone())
            .clock(Arc::new(clock.clone()))
            .lifetimes(lifetimes)
            .build()
            .expect("manager builds");
        let (user, org) = (random_user(), random_org());
        manager
            .set_membership(&user, &org, &role("member"))
            .await
            .expect("membership set");
        Self {
            manager,
            store,
            clock,
            user,
            org,
        }
    }

    pub fn new_session(&self) -> NewSession {
        NewSession::new(self.user, self.org)
    }

    /// `refresh_session` on this harness's manager.
    pub async fn refresh(&self, token: &tessera::Token) -> tessera::Result<tessera::IssuedTokens> {
        self.manager.refresh_session(token.expose()).await
    }

    /// `validate_session` on this harness's manager.
    pub async fn validate(&self, token: &tessera::Token) -> tessera::Result<tessera::SessionInfo> {
        self.manager.validate_session(token.expose()).await
    }

    /// The manager's statistics.
    pub async fn stats(&self) -> tessera::SessionStats {
        self.manager.session_stats().await.expect("stats")
    }

    pub async fn login(&self) -> tessera::IssuedTokens {
        self.manager
            .create_session(self.new_session())
            .await
            .expect("session created")
    }
}

impl Harness {
    /// Another manager over this harness's store and clock, as a second node
    /// or a restarted process with other keys would be.
    pub fn manager_with(&self, keys: KeyRing, lifetimes: Lifetimes) -> SessionManager {
        SessionManager::builder()
            .keys(keys)
            .store(self.store.clone())
            .clock(Arc::new(self.clock.clone()))
            .lifetimes(lifetimes)
            .build()
            .expect("manager builds")
    }
}

/// Overwrites a session's sealed record in the store, as someone with write
/// access to the store could.
pub async fn replace_sealed(store: &MemoryStore, id: &tessera::SessionId, sealed: Vec<u8>) {
    use tessera::SessionStore;
    use tessera::store::CasOutcome;
    let stored = store.get(id, START).await.expect("get").expect("present");
    let outcome = store
        .compare_and_swap(id, stored.version, sealed, stored.expires_at, START)
        .await
        .expect("cas");
    assert!(matches!(outcome, CasOutcome::Swapped { .. }));
}
