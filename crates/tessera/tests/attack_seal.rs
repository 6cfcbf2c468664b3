//! Attacks on sealed records by someone who can write to the store. Extends
//! `sealing.rs` (a few flipped bytes, one swap, rotation and retirement).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{ENCRYPTION_KEY, Harness, JWT_SECRET, START};
use tessera::seal::{self, Purpose};
use tessera::store::CasOutcome;
use tessera::{
    ErrorKind, KeyRing, Lifetimes, MemoryStore, SessionId, SessionManager, SessionStore,
};

/// `version (1) || kid (4) || nonce (12) || ciphertext || tag (16)`.
fn region(i: usize, len: usize) -> &'static str {
    match i {
        0 => "version",
        1..=4 => "kid",
        5..=16 => "nonce",
        _ if i >= len - 16 => "tag",
        _ => "ciphertext",
    }
}

async fn stored(store: &MemoryStore, id: &SessionId) -> Vec<u8> {
    store
        .get(id, START)
        .await
        .expect("get")
        .expect("present")
        .sealed
}

async fn replace(store: &MemoryStore, id: &SessionId, sealed: Vec<u8>) {
    let s = store.get(id, START).await.expect("get").expect("present");
    let outcome = store
        .compare_and_swap(id, s.version, sealed, s.expires_at, START)
        .await
        .expect("cas");
    assert!(matches!(outcome, CasOutcome::Swapped { .. }));
}

/// Every way the manager reads a session treats it as absent.
async fn assert_absent(h: &Harness, issued: &tessera::IssuedTokens, what: &str) -> Vec<String> {
    let mut failures = Vec::new();
    match h.validate(&issued.access_token).await {
        Err(e) if e.kind() == ErrorKind::Token => {}
        other => failures.push(format!("{what}: validate gave {:?}", other.map(|_| ()))),
    }
    match h
        .manager
        .has_permission(issued.access_token.expose(), "read:users")
        .await
    {
        Err(e) if e.kind() == ErrorKind::Token => {}
        other => failures.push(format!("{what}: has_permission gave {other:?}")),
    }
    match h.refresh(&issued.refresh_token).await {
        Err(e) if e.kind() == ErrorKind::Token => {}
        other => failures.push(format!("{what}: refresh gave {:?}", other.map(|_| ()))),
    }
    let listed = h.manager.user_sessions(&h.user).await.expect("listed");
    if listed.iter().any(|s| s.session_id == issued.session_id) {
        failures.push(format!("{what}: listed as a live session"));
    }
    failures
}

#[tokio::test]
async fn every_byte_of_a_stored_record_altered_makes_the_session_absent() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let original = stored(&h.store, &issued.session_id).await;
    let len = original.len();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..len {
        let mut b = original.clone();
        b[i] ^= 0x80;
        cases.push((format!("{} byte {i} flipped", region(i, len)), b));
    }
    let mut zero_nonce = original.clone();
    zero_nonce[5..17].fill(0);
    cases.push(("nonce zeroed".into(), zero_nonce));
    let mut zero_tag = original.clone();
    zero_tag[len - 16..].fill(0);
    cases.push(("tag zeroed".into(), zero_tag));
    cases.push(("tag removed".into(), original[..len - 16].to_vec()));
    cases.push(("last byte removed".into(), original[..len - 1].to_vec()));
    cases.push(("header only".into(), original[..17].to_vec()));
    cases.push(("empty".into(), Vec::new()));
    cases.push(("a byte appended".into(), [&original[..], &[0]].concat()));
    cases.push(("doubled".into(), [&original[..], &original[..]].concat()));
    let regions: HashSet<&str> = (0..len).map(|i| region(i, len)).collect();
    assert_eq!(regions.len(), 5, "every region of the layout is attacked");
    let mut failures = Vec::new();
    for (what, sealed) in &cases {
        replace(&h.store, &issued.session_id, sealed.clone()).await;
        failures.extend(assert_absent(&h, &issued, what).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let stats = h.stats().await;
    assert_eq!(stats.refresh_reuse_detected, 0, "tampering is not reuse");
    // The control: the untouched record is whole again.
    replace(&h.store, &issued.session_id, original).await;
    h.validate(&issued.access_token)
        .await
        .expect("the original record opens");
    eprintln!("{} altered records treated as absent", cases.len());
}

#[tokio::test]
async fn records_moved_between_sessions_users_or_purposes_fail_to_open() {
    let h = Harness::new().await;
    let victim = h.login().await;
    // Another user's session in the same deployment.
    let other_user = common::random_user();
    h.manager
        .set_membership(&other_user, &h.org, &common::role("admin"))
        .await
        .expect("member");
    let donor = h
        .manager
        .create_session(tessera::NewSession::new(other_user, h.org))
        .await
        .expect("created");
    let donor_blob = stored(&h.store, &donor.session_id).await;
    let keys = common::keys();
    let id = victim.session_id.as_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("another user's admin session record", donor_blob.clone()),
        (
            "a membership-purpose blob bound to the victim's id",
            seal::seal(&keys, Purpose::Membership, id, b"anything").expect("sealed"),
        ),
        (
            "a session blob bound to the donor's id",
            seal::seal(&keys, Purpose::Session, donor.session_id.as_bytes(), b"x").expect("sealed"),
        ),
        (
            "a correctly sealed blob holding no session",
            seal::seal(&keys, Purpose::Session, id, b"\xff\xff\xff garbage").expect("sealed"),
        ),
        (
            "a correctly sealed empty blob",
            seal::seal(&keys, Purpose::Session, id, b"").expect("sealed"),
        ),
    ];
    let mut failures = Vec::new();
    for (what, blob) in &cases {
        replace(&h.store, &victim.session_id, blob.clone()).await;
        failures.extend(assert_absent(&h, &victim, what).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let info = h
        .validate(&donor.access_token)
        .await
        .expect("the donor is untouched");
    assert_eq!(info.user.id, other_user);
}

#[tokio::test]
async fn a_record_relabelled_with_another_key_id_of_the_ring_fails_to_open() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let new_key = "Ht6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn-rotated";
    let rotated =
        KeyRing::with_previous(JWT_SECRET, &[], new_key, &[ENCRYPTION_KEY]).expect("keys");
    let manager = SessionManager::builder()
        .keys(rotated.clone())
        .store(h.store.clone())
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    let mut blob = stored(&h.store, &issued.session_id).await;
    assert_eq!(seal::kid_of(&blob), Some(rotated.sealing_keys()[1].kid()));
    blob[1..5].copy_from_slice(&rotated.sealing_key().kid());
    replace(&h.store, &issued.session_id, blob).await;
    let err = manager
        .validate_session(issued.access_token.expose())
        .await
        .expect_err("the key id is bound to the ciphertext");
    assert_eq!(err.kind(), ErrorKind::Token);
}

#[test]
fn nonces_are_unique_across_100_000_seals_from_four_threads() {
    let keys = common::keys();
    let before = keys.sealing_key().seal_count();
    let nonces: Vec<Vec<[u8; 12]>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..25_000)
                        .map(|_| {
                            let blob = seal::seal(&keys, Purpose::Session, b"owner", b"x")
                                .expect("sealed");
                            blob[5..17].try_into().expect("12 bytes")
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut seen = HashSet::with_capacity(100_000);
    for n in nonces.into_iter().flatten() {
        assert!(seen.insert(n), "a nonce repeated");
    }
    assert_eq!(seen.len(), 100_000);
    assert_eq!(
        keys.sealing_key().seal_count() - before,
        100_000,
        "every seal is counted towards the 2^32 limit"
    );
}

#[tokio::test]
async fn an_activity_write_reseals_under_the_new_key_so_the_old_one_can_retire() {
    let h = Harness::new().await;
    let touched = h.login().await;
    let untouched = h.login().await;
    let new_key = "Ht6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn-rotated";
    let rotated =
        KeyRing::with_previous(JWT_SECRET, &[], new_key, &[ENCRYPTION_KEY]).expect("keys");
    let manager = SessionManager::builder()
        .keys(rotated.clone())
        .store(h.store.clone())
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(Lifetimes {
            activity_interval: Duration::ZERO,
            ..common::lifetimes()
        })
        .build()
        .expect("manager");
    manager
        .validate_session(touched.access_token.expose())
        .await
        .expect("opens under the previous key");
    assert_eq!(
        seal::kid_of(&stored(&h.store, &touched.session_id).await),
        Some(rotated.sealing_key().kid()),
        "the activity write re-sealed it under the current key"
    );
    let retired = SessionManager::builder()
        .keys(KeyRing::new(JWT_SECRET, new_key).expect("keys"))
        .store(h.store.clone())
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    retired
        .validate_session(touched.access_token.expose())
        .await
        .expect("re-sealed: survives the retirement");
    let err = retired
        .validate_session(untouched.access_token.expose())
        .await
        .expect_err("never re-sealed: gone with the retired key");
    assert_eq!(err.kind(), ErrorKind::Token);
}
