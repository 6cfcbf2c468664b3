//! Concurrent validations share one query (`src/batch.rs`); each caller
//! must still get exactly its own answer: its session, `None` for an id
//! that is missing, and `None` for a session expired by its own `now`,
//! even when the callers in one batch ask with different clocks.

mod support;

use std::sync::Arc;

use tessera::ids::SessionId;
use tessera::store::SessionStore;
use tessera_conformance::{random_key, session, wall_clock_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_caller_of_a_coalesced_read_gets_its_own_answer() {
    let store = Arc::new(support::store().await);
    let now = wall_clock_now();
    let mut sessions = Vec::new();
    for i in 0..60u64 {
        // Expiries spread over the next 60 minutes.
        let s = session(random_key(), random_key(), now + 60 + i * 60);
        assert!(store.insert(s.clone(), now).await.expect("insert"));
        sessions.push(s);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..10u64 {
        for (i, s) in sessions.iter().enumerate() {
            let (store, s) = (store.clone(), s.clone());
            // Callers with clocks up to 30 minutes apart in one burst.
            let asked_at = now + (round * 180) + (i as u64 % 7) * 10;
            tasks.spawn(async move {
                let got = store.get(&s.id, asked_at).await.expect("get");
                let live = s.expires_at > asked_at;
                assert_eq!(got.is_some(), live, "expiry judged by the caller's own now");
                if let Some(got) = got {
                    assert_eq!(got.id, s.id, "the caller's own session");
                    assert_eq!(got.sealed, s.sealed);
                }
            });
        }
        for _ in 0..20 {
            let store = store.clone();
            tasks.spawn(async move {
                let missing = SessionId::random();
                assert!(store.get(&missing, now).await.expect("get").is_none());
            });
        }
    }
    let n = tasks.len();
    for done in tasks.join_all().await {
        let () = done;
    }
    assert_eq!(n, 800);
    support::drop_schema(store.schema()).await;
}
