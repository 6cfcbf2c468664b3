//! Honest clients under a store fault, and the promises they must still see
//! kept.
//!
//! A store's fault test starts a [`Load`] (clients that validate and
//! refresh their own sessions, each through its own manager and store
//! connection, and one that creates sessions), breaks its
//! server for a few seconds its own way (`CLIENT PAUSE`, `SIGSTOP`, a
//! restart), lets it recover, and calls [`Load::finish`], which asserts:
//!
//! - no client was told its session was revoked, and none was counted as
//!   a refresh-token replay (`refresh_reuse_detected` stays 0): an honest
//!   client keeps the token it holds after an error and retries with it
//!   later, well past the grace window, and must not be taken for a thief;
//! - every session made before the fault still validates and refreshes;
//! - concurrent refreshes of one token still give exactly one successor;
//! - a create that failed left no session behind: the creating user has
//!   exactly as many sessions as creates that succeeded.
//!
//! The manager's reuse grace is [`GRACE`], short, so a retry after
//! [`RETRY_AFTER`] is well outside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera::{ErrorKind, IssuedTokens, NewSession, OrgId, RoleName, SessionManager, UserId};

/// The refresh-reuse grace window fault tests run with.
pub const GRACE: Duration = Duration::from_secs(1);
/// How long a client waits after a failed refresh before it retries with
/// the token it still holds: past [`GRACE`] plus any store's write window.
pub const RETRY_AFTER: Duration = Duration::from_secs(6);
/// How many clients refresh and validate. Each runs flat out, with no pause
/// between requests (for the second or so before a fault), so that when the
/// fault starts nearly every client has a write in flight.
pub const CLIENTS: usize = 16;

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    refreshed: u64,
    validated: u64,
    store_errors: u64,
    /// The message, if the client was told its session is gone.
    revoked: Option<String>,
}

/// The clients, running until [`Load::finish`].
#[derive(Debug)]
pub struct Load {
    manager: SessionManager,
    /// One per client: the reuse counter is per manager.
    managers: Vec<SessionManager>,
    creator: UserId,
    stop: Arc<AtomicBool>,
    stop_creating: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<(IssuedTokens, Seen)>>,
    creates: Option<tokio::task::JoinHandle<(u64, u64)>>,
    /// Creates that succeeded and failed, once the creator stopped.
    created: (u64, u64),
}

fn random_user() -> UserId {
    UserId::from_uuid(uuid::Uuid::new_v4())
}

async fn pause(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while waited < total && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(step).await;
        waited += step;
    }
}

async fn client(
    manager: SessionManager,
    mut tokens: IssuedTokens,
    stop: Arc<AtomicBool>,
) -> (IssuedTokens, Seen) {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        match manager.validate_session(tokens.access_token.expose()).await {
            Ok(_) => seen.validated += 1,
            Err(e) if e.kind() == ErrorKind::Token => {
                seen.revoked = Some(format!("validation: {}", e.message()));
                break;
            }
            Err(_) => seen.store_errors += 1,
        }
        match manager.refresh_session(tokens.refresh_token.expose()).await {
            Ok(next) => {
                tokens = next;
                seen.refreshed += 1;
            }
            Err(e) if e.kind() == ErrorKind::Token => {
                seen.revoked = Some(format!("refresh: {}", e.message()));
                break;
            }
            // The client keeps the token it has and tries again later.
            Err(_) => {
                seen.store_errors += 1;
                pause(&stop, RETRY_AFTER).await;
            }
        }
        tokio::task::yield_now().await;
    }
    (tokens, seen)
}

impl Load {
    /// Makes a session for each of `clients` (the store must be up) and
    /// starts them, and a creator on `manager`. Each client should have a
    /// manager of its own, over a store with its own connections, so a
    /// request stuck behind another client's does not stop it; all must
    /// share keys and data. [`CLIENTS`] is the intended count.
    pub async fn start(manager: &SessionManager, clients: Vec<SessionManager>) -> Self {
        let managers = clients;
        let org = OrgId::from_uuid(uuid::Uuid::new_v4());
        let member = RoleName::parse("member").expect("role");
        let creator = random_user();
        manager
            .set_membership(&creator, &org, &member)
            .await
            .expect("membership");
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for m in &managers {
            let user = random_user();
            manager
                .set_membership(&user, &org, &member)
                .await
                .expect("membership");
            let tokens = m
                .create_session(NewSession::new(user, org))
                .await
                .expect("a session made before the fault");
            clients.push(tokio::spawn(client(m.clone(), tokens, stop.clone())));
        }
        let stop_creating = Arc::new(AtomicBool::new(false));
        let creates = {
            let (manager, stop) = (manager.clone(), stop_creating.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    match manager.create_session(NewSession::new(creator, org)).await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (ok, failed)
            })
        };
        Self {
            manager: manager.clone(),
            managers,
            creator,
            stop,
            stop_creating,
            clients,
            creates: Some(creates),
            created: (0, 0),
        }
    }

    /// Stops the creator and waits for its last create to answer.
    pub async fn stop_creating(&mut self) -> (u64, u64) {
        self.stop_creating.store(true, Ordering::Relaxed);
        if let Some(task) = self.creates.take() {
            self.created = task.await.expect("the creator ran");
        }
        self.created
    }

    /// Stops the clients and asserts the promises in the module docs. The
    /// store must be up again.
    pub async fn finish(mut self) {
        let (created, create_errors) = self.stop_creating().await;
        self.stop.store(true, Ordering::Relaxed);
        let mut held = Vec::new();
        let (mut refreshed, mut validated, mut store_errors) = (0, 0, 0);
        for task in self.clients.drain(..) {
            let (tokens, seen) = task.await.expect("a client ran");
            assert_eq!(
                seen.revoked, None,
                "an honest client was told its session is gone"
            );
            refreshed += seen.refreshed;
            validated += seen.validated;
            store_errors += seen.store_errors;
            held.push(tokens);
        }
        eprintln!(
            "load: {refreshed} refreshes, {validated} validations, {store_errors} store errors, \
             {created} creates ({create_errors} failed)"
        );
        assert!(refreshed > 0 && validated > 0, "the load ran");
        assert!(store_errors > 0, "the fault was seen by the clients");
        // Every client retries, past the grace window, with what it holds.
        tokio::time::sleep(RETRY_AFTER).await;
        let mut latest = Vec::new();
        for (tokens, m) in held.iter().zip(&self.managers) {
            // The first request on a connection the fault broke may fail
            // while it reconnects; a client retries that too.
            let mut tries = 0;
            let next = loop {
                match m.refresh_session(tokens.refresh_token.expose()).await {
                    Err(e) if e.kind() == ErrorKind::Database && tries < 50 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => break other,
                }
            };
            let next = next.expect(
                "a session made before the fault refreshes with the token its client holds",
            );
            m.validate_session(next.access_token.expose())
                .await
                .expect("and its successor validates");
            latest.push(next);
        }
        for m in self.managers.iter().chain([&self.manager]) {
            let stats = m.session_stats().await.expect("stats");
            assert_eq!(stats.refresh_reuse_detected, 0, "no replay was detected");
        }
        let m = &self.manager;
        // Concurrent refreshes of one token: one successor, given to all.
        let token = latest[0].refresh_token.expose().to_owned();
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (m, t) = (m.clone(), token.clone());
                tokio::spawn(async move { m.refresh_session(&t).await })
            })
            .collect();
        let mut successors = std::collections::BTreeSet::new();
        for r in racers {
            let issued = r
                .await
                .expect("ran")
                .expect("a concurrent refresh succeeds");
            successors.insert(issued.refresh_token.expose().to_owned());
        }
        assert_eq!(successors.len(), 1, "concurrent refreshes, one successor");
        // Failed creates left nothing behind.
        let made = m
            .user_sessions(&self.creator)
            .await
            .expect("the creator's sessions")
            .len();
        assert_eq!(
            made as u64, created,
            "the creating user has exactly the sessions whose create succeeded \
             ({create_errors} failed)"
        );
    }
}
