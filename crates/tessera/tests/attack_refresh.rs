//! Attacks on refresh tokens and on sessions in flight. Extends
//! `refresh.rs`, which covers the basic replay, grace and race cases.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{ENCRYPTION_KEY, Harness, JWT_SECRET};
use tessera::store::{CasOutcome, IndexKey, Page, SessionCounts, StoredSession};
use tessera::{
    ErrorKind, KeyRing, Lifetimes, ManualClock, MemoryStore, SessionId, SessionManager,
    SessionStore, StoreError,
};
use tokio::sync::{Mutex, oneshot};

fn with_grace(grace: u64) -> Lifetimes {
    Lifetimes {
        reuse_grace: Duration::from_secs(grace),
        ..common::lifetimes()
    }
}

async fn reuse_count(h: &Harness) -> u64 {
    h.stats().await.refresh_reuse_detected
}

#[tokio::test]
async fn replaying_any_earlier_refresh_token_revokes_even_inside_the_grace_window() {
    const ROTATIONS: usize = 5;
    // Generation k of a chain of ROTATIONS rotations, all at the same instant
    // (well inside the 10 s grace window). Only the immediately previous
    // token is the grace window's business; every older one is theft.
    for k in 0..ROTATIONS - 1 {
        let h = Harness::new().await;
        let mut chain = vec![h.login().await];
        for _ in 0..ROTATIONS {
            let next = h
                .manager
                .refresh_session(chain.last().expect("one").refresh_token.expose())
                .await
                .expect("rotated");
            chain.push(next);
        }
        let current = chain.last().expect("current");
        let err = h
            .refresh(&chain[k].refresh_token)
            .await
            .expect_err("an earlier token");
        assert_eq!(err.kind(), ErrorKind::Token, "generation {k}");
        assert_eq!(reuse_count(&h).await, 1, "generation {k} counts as reuse");
        assert!(
            h.validate(&current.access_token).await.is_err(),
            "generation {k}: the session is revoked"
        );
        assert!(
            h.refresh(&current.refresh_token).await.is_err(),
            "generation {k}: the newest refresh token dies with it"
        );
    }
    // The control: the immediately previous one, inside the window, gets
    // the current pair back and revokes nothing.
    let h = Harness::new().await;
    let first = h.login().await;
    let second = h.refresh(&first.refresh_token).await.expect("rotated");
    let third = h.refresh(&second.refresh_token).await.expect("rotated");
    let again = h
        .refresh(&second.refresh_token)
        .await
        .expect("the previous token inside the window");
    assert_eq!(again.refresh_token, third.refresh_token);
    assert_eq!(reuse_count(&h).await, 0);
}

fn raw(token: &str) -> Vec<u8> {
    B64.decode(&token["tsr1_".len()..]).expect("b64")
}

fn encode(raw: &[u8]) -> String {
    format!("tsr1_{}", B64.encode(raw))
}

#[tokio::test]
async fn forged_refresh_tokens_naming_a_victims_session_never_revoke_it() {
    let h = Harness::new().await;
    let victim = h.login().await;
    // Move the victim to generation 3, so older generations exist to name.
    let mut current = victim;
    for _ in 0..3 {
        h.clock.advance(60);
        current = h.refresh(&current.refresh_token).await.expect("rotated");
    }
    let attacker = h.login().await;
    let v = raw(current.refresh_token.expose());
    let a = raw(attacker.refresh_token.expose());
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // Layout: id (16) | generation (4) | secret (32) | tag (16).
    for generation in 0..3u32 {
        let mut t = v.clone();
        t[16..20].copy_from_slice(&generation.to_be_bytes());
        cases.push((format!("victim's token with generation {generation}"), t));
        let mut t = a.clone();
        t[..16].copy_from_slice(&v[..16]);
        t[16..20].copy_from_slice(&generation.to_be_bytes());
        cases.push((
            format!("attacker's token renamed to the victim, generation {generation}"),
            t,
        ));
    }
    let mut t = v.clone();
    t[52..].copy_from_slice(&a[52..]);
    cases.push(("victim's token with the attacker's tag".into(), t));
    let mut t = a.clone();
    t[..16].copy_from_slice(&v[..16]);
    cases.push(("attacker's whole token renamed to the victim".into(), t));
    let mut t = v.clone();
    t[20..52].fill(0);
    cases.push(("victim's id and generation, zero secret".into(), t));
    let mut t = v.clone();
    t[52..].fill(0);
    cases.push(("victim's token with a zero tag".into(), t));
    let mut t = v.clone();
    t[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    cases.push(("victim's token with generation u32::MAX".into(), t));
    let mut tokens: Vec<(String, String)> = cases
        .into_iter()
        .map(|(name, bytes)| (name, encode(&bytes)))
        .collect();
    // A token MACed under a key the ring does not hold.
    let foreign =
        KeyRing::new(JWT_SECRET, "Ht6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn-elsewhere").expect("keys");
    let other = SessionManager::builder()
        .keys(foreign)
        .store(h.store.clone())
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    other
        .set_membership(&h.user, &h.org, &common::role("member"))
        .await
        .expect("member over there");
    let foreign = other
        .create_session(h.new_session())
        .await
        .expect("a session over there");
    tokens.push((
        "another deployment's token".into(),
        foreign.refresh_token.expose().to_owned(),
    ));
    let mut bytes = raw(foreign.refresh_token.expose());
    bytes[..16].copy_from_slice(&v[..16]);
    bytes[16..20].copy_from_slice(&0u32.to_be_bytes());
    tokens.push((
        "another deployment's token renamed to the victim".into(),
        encode(&bytes),
    ));
    let mut failures = Vec::new();
    for (name, token) in &tokens {
        match h.manager.refresh_session(token).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) if e.kind() != ErrorKind::Token => {
                failures.push(format!("{name}: {}", e.kind()))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        reuse_count(&h).await,
        0,
        "no forgery reached reuse detection"
    );
    h.validate(&current.access_token)
        .await
        .expect("the victim's session is untouched");
    h.refresh(&current.refresh_token)
        .await
        .expect("and refreshes");
    eprintln!("{} forged refresh tokens rejected", tokens.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_refreshes_never_leave_two_live_successors() {
    for grace in [0, 10] {
        for round in 0..25 {
            let h = Arc::new(Harness::with(common::keys(), with_grace(grace)).await);
            let first = h.login().await;
            let token = first.refresh_token.expose().to_owned();
            let barrier = Arc::new(tokio::sync::Barrier::new(20));
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (h, token, barrier) = (h.clone(), token.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        h.manager.refresh_session(&token).await
                    })
                })
                .collect();
            let mut successors = HashSet::new();
            for task in tasks {
                if let Ok(issued) = task.await.expect("task") {
                    successors.insert((
                        issued.refresh_token.expose().to_owned(),
                        issued.access_token.expose().to_owned(),
                    ));
                }
            }
            assert!(
                successors.len() <= 1,
                "grace {grace}, round {round}: {} different successors",
                successors.len()
            );
            let mut live = 0;
            for (_, access) in &successors {
                if h.manager.validate_session(access).await.is_ok() {
                    live += 1;
                }
            }
            assert!(live <= 1, "grace {grace}, round {round}: {live} live");
            if grace > 0 {
                assert_eq!(
                    live, 1,
                    "inside the window every racer shares one successor"
                );
            }
        }
    }
}

/// A real memory store with a gate before `compare_and_swap`: a test arms
/// it, the next swap stops there until the test lets it go. This is how a
/// request is held "in flight" at its most delicate point, deterministically.
#[derive(Debug)]
struct GatedStore {
    inner: MemoryStore,
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl GatedStore {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            gate: Mutex::new(None),
        }
    }

    /// Arms the gate: returns (reached, release).
    async fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.gate.lock().await = Some((reached_tx, release_rx));
        (reached_rx, release_tx)
    }
}

#[async_trait]
impl SessionStore for GatedStore {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        self.inner.insert(s, now).await
    }
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        self.inner.get(id, now).await
    }
    async fn compare_and_swap(
        &self,
        id: &SessionId,
        expected_version: u64,
        sealed: Vec<u8>,
        expires_at: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        let gate = self.gate.lock().await.take();
        if let Some((reached, release)) = gate {
            let _ = reached.send(());
            let _ = release.await;
        }
        self.inner
            .compare_and_swap(id, expected_version, sealed, expires_at, now)
            .await
    }
    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.inner.remove(id).await
    }
    async fn user_sessions(
        &self,
        user_key: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        self.inner.user_sessions(user_key, now).await
    }
    async fn remove_user_sessions(&self, user_key: &IndexKey, now: u64) -> Result<u64, StoreError> {
        self.inner.remove_user_sessions(user_key, now).await
    }
    async fn list(
        &self,
        org_key: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        self.inner.list(org_key, cursor, limit, now).await
    }
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        self.inner.purge_expired(now, limit).await
    }
    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        self.inner.count(now).await
    }
    async fn put_membership(&self, key: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put_membership(key, sealed).await
    }
    async fn get_membership(&self, key: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_membership(key).await
    }
    async fn remove_membership(&self, key: &IndexKey) -> Result<bool, StoreError> {
        self.inner.remove_membership(key).await
    }
    async fn restore(
        &self,
        s: StoredSession,
        now: u64,
    ) -> Result<tessera::store::RestoreOutcome, StoreError> {
        self.inner.restore(s, now).await
    }
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<tessera::store::MembershipPage, StoreError> {
        self.inner.list_memberships(cursor, limit).await
    }
    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.inner.restore_membership(key, sealed).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

struct Gated {
    manager: SessionManager,
    store: Arc<GatedStore>,
    user: tessera::UserId,
    org: tessera::OrgId,
}

async fn gated(lifetimes: Lifetimes) -> Gated {
    let store = Arc::new(GatedStore::new());
    let manager = SessionManager::builder()
        .keys(KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("keys"))
        .store(store.clone())
        .clock(Arc::new(ManualClock::new(common::START)))
        .lifetimes(lifetimes)
        .build()
        .expect("manager");
    let (user, org) = (common::random_user(), common::random_org());
    manager
        .set_membership(&user, &org, &common::role("admin"))
        .await
        .expect("member");
    Gated {
        manager,
        store,
        user,
        org,
    }
}

/// How a session is ended while a request is held at its swap.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Logout,
    RevokeById,
    LogoutEverywhere,
    MembershipRemoved,
}

async fn end(g: &Gated, issued: &tessera::IssuedTokens, how: Ending) {
    match how {
        Ending::Logout => g
            .manager
            .destroy_session(issued.access_token.expose())
            .await
            .expect("logged out"),
        Ending::RevokeById => g
            .manager
            .destroy_session_by_id(&issued.session_id)
            .await
            .expect("revoked"),
        Ending::LogoutEverywhere => {
            assert_eq!(
                g.manager
                    .destroy_user_sessions(&g.user)
                    .await
                    .expect("everywhere"),
                1
            );
        }
        Ending::MembershipRemoved => {
            assert!(
                g.manager
                    .remove_membership(&g.user, &g.org)
                    .await
                    .expect("removed")
            );
        }
    }
}

#[tokio::test]
async fn a_refresh_in_flight_while_the_session_ends_does_not_bring_it_back() {
    for how in [
        Ending::Logout,
        Ending::RevokeById,
        Ending::LogoutEverywhere,
        Ending::MembershipRemoved,
    ] {
        let g = gated(common::lifetimes()).await;
        let issued = g
            .manager
            .create_session(tessera::NewSession::new(g.user, g.org))
            .await
            .expect("created");
        let (reached, release) = g.store.arm().await;
        let m = g.manager.clone();
        let token = issued.refresh_token.expose().to_owned();
        let in_flight = tokio::spawn(async move { m.refresh_session(&token).await });
        reached.await.expect("the refresh reached its swap");
        end(&g, &issued, how).await;
        release.send(()).expect("released");
        let result = in_flight.await.expect("task");
        let err = result.expect_err("the refresh must not succeed after the end");
        assert_eq!(err.kind(), ErrorKind::Token, "{how:?}");
        assert!(
            g.manager
                .validate_session(issued.access_token.expose())
                .await
                .is_err(),
            "{how:?}: the session stays gone"
        );
        assert!(
            g.manager
                .user_sessions(&g.user)
                .await
                .expect("listed")
                .is_empty(),
            "{how:?}: nothing was written back"
        );
    }
}

#[tokio::test]
async fn a_validation_in_flight_while_the_session_ends_does_not_write_it_back() {
    for how in [
        Ending::Logout,
        Ending::RevokeById,
        Ending::LogoutEverywhere,
        Ending::MembershipRemoved,
    ] {
        // An activity interval of zero: every validation writes last_activity.
        let g = gated(Lifetimes {
            activity_interval: Duration::ZERO,
            ..common::lifetimes()
        })
        .await;
        let issued = g
            .manager
            .create_session(tessera::NewSession::new(g.user, g.org))
            .await
            .expect("created");
        let (reached, release) = g.store.arm().await;
        let m = g.manager.clone();
        let token = issued.access_token.expose().to_owned();
        let in_flight = tokio::spawn(async move { m.validate_session(&token).await });
        reached
            .await
            .expect("the validation reached its activity write");
        end(&g, &issued, how).await;
        release.send(()).expect("released");
        // The in-flight request began before the end; whatever it answers,
        // the session must not exist afterwards.
        let _ = in_flight.await.expect("task");
        assert!(
            g.manager
                .validate_session(issued.access_token.expose())
                .await
                .is_err(),
            "{how:?}: the very next request is refused"
        );
        assert!(
            g.manager
                .user_sessions(&g.user)
                .await
                .expect("listed")
                .is_empty(),
            "{how:?}: the activity write did not resurrect the record"
        );
    }
}

#[tokio::test]
async fn a_demotion_during_a_refresh_in_flight_is_in_the_refreshed_session() {
    let g = gated(common::lifetimes()).await;
    let issued = g
        .manager
        .create_session(tessera::NewSession::new(g.user, g.org))
        .await
        .expect("created");
    assert_eq!(issued.user.role, common::role("admin"));
    let (reached, release) = g.store.arm().await;
    let m = g.manager.clone();
    let token = issued.refresh_token.expose().to_owned();
    let in_flight = tokio::spawn(async move { m.refresh_session(&token).await });
    reached.await.expect("the refresh reached its swap");
    // The demotion's own swap runs while the refresh waits; the refresh then
    // loses its compare-and-swap and must start over from the new record.
    let demote = {
        let m = g.manager.clone();
        let (user, org) = (g.user, g.org);
        tokio::spawn(async move { m.set_membership(&user, &org, &common::role("viewer")).await })
    };
    // The demotion's swap is not gated: it completes while the refresh
    // still waits at its own.
    demote.await.expect("task").expect("demoted");
    release.send(()).expect("released");
    let refreshed = in_flight.await.expect("task").expect("refreshed");
    assert_eq!(
        refreshed.user.role,
        common::role("viewer"),
        "the refresh did not overwrite the demotion"
    );
    assert!(
        !g.manager
            .has_permission(refreshed.access_token.expose(), "delete:users")
            .await
            .expect("checked")
    );
}
