//! Backups: a backup of one store restored into another gives sessions
//! that validate and refresh there; a restore never rolls a session back,
//! never overwrites a membership, skips what expired and is idempotent; a
//! truncated, modified, foreign or other-keys file is refused before
//! anything is written; and the file holds no token and nothing in clear.

mod common;

use std::sync::Arc;

use common::{Harness, START, keys, lifetimes, role};
use tessera::backup::{self, BackupError};
use tessera::{KeyRing, ManualClock, MemoryStore, SessionManager, SessionStore};

async fn backup_of(h: &Harness) -> Vec<u8> {
    let mut out = Vec::new();
    backup::write(h.store.as_ref(), &keys(), START, &mut out, |_| {})
        .await
        .expect("backup");
    out
}

fn manager_on(store: Arc<MemoryStore>, clock: &ManualClock) -> SessionManager {
    SessionManager::builder()
        .keys(keys())
        .store(store)
        .clock(Arc::new(clock.clone()))
        .lifetimes(lifetimes())
        .build()
        .expect("manager")
}

#[tokio::test]
async fn a_backup_restored_elsewhere_validates_and_refreshes_there() {
    let h = Harness::new().await;
    let mut issued = Vec::new();
    for _ in 0..25 {
        issued.push(h.login().await);
    }
    let rotated = h.refresh(&issued[0].refresh_token).await.expect("refresh");
    let file = backup_of(&h).await;
    let info = backup::verify(file.as_slice(), &keys()).expect("verify");
    assert_eq!((info.sessions, info.memberships), (25, 1));
    assert_eq!(info.created_at, START);

    let target = Arc::new(MemoryStore::new());
    let summary = backup::restore(target.as_ref(), &keys(), START, file.as_slice(), |_| {})
        .await
        .expect("restore");
    assert_eq!(summary.sessions_written, 25);
    assert_eq!(summary.memberships_written, 1);

    let there = manager_on(target.clone(), &h.clock);
    for t in &issued[1..] {
        there
            .validate_session(t.access_token.expose())
            .await
            .expect("a restored session validates");
    }
    there
        .validate_session(rotated.access_token.expose())
        .await
        .expect("the rotated session's current token validates");
    let next = there
        .refresh_session(rotated.refresh_token.expose())
        .await
        .expect("its current refresh token refreshes there");
    there
        .validate_session(next.access_token.expose())
        .await
        .expect("and the successor validates");
    assert_eq!(
        there.membership(&h.user, &h.org).await.expect("get"),
        Some(role("member")),
        "the membership came along"
    );
    // A new session for the restored member.
    there.create_session(h.new_session()).await.expect("create");
}

#[tokio::test]
async fn restoring_an_old_backup_never_rolls_a_session_back_and_is_idempotent() {
    let h = Harness::new().await;
    let first = h.login().await;
    let old = backup_of(&h).await;
    // After the backup: a rotation and a role change.
    let second = h.refresh(&first.refresh_token).await.expect("refresh");
    h.manager
        .set_membership(&h.user, &h.org, &role("admin"))
        .await
        .expect("promote");
    let version_after = h
        .store
        .get(&second.session_id, START)
        .await
        .expect("get")
        .expect("live")
        .version;
    assert!(version_after >= 2, "the rotation moved the version on");

    for round in 0..2 {
        let summary = backup::restore(h.store.as_ref(), &keys(), START, old.as_slice(), |_| {})
            .await
            .expect("restore");
        assert_eq!(summary.sessions_written, 0, "round {round}");
        assert_eq!(summary.sessions_kept, 1, "round {round}");
        assert_eq!(summary.memberships_kept, 1, "round {round}");
    }
    let stored = h
        .store
        .get(&second.session_id, START)
        .await
        .expect("get")
        .expect("live");
    assert_eq!(stored.version, version_after, "no rollback");
    assert_eq!(
        h.manager.membership(&h.user, &h.org).await.expect("get"),
        Some(role("admin")),
        "the role changed after the backup is kept"
    );
    // The current refresh token still works: the old one was not revived.
    h.refresh(&second.refresh_token)
        .await
        .expect("the current token still refreshes");

    // Into an empty store, twice: the second time changes nothing.
    let target = MemoryStore::new();
    let a = backup::restore(&target, &keys(), START, old.as_slice(), |_| {})
        .await
        .expect("restore");
    let b = backup::restore(&target, &keys(), START, old.as_slice(), |_| {})
        .await
        .expect("restore again");
    assert_eq!((a.sessions_written, b.sessions_written), (1, 0));
    assert_eq!(b.sessions_kept, 1);
    assert_eq!(target.len(), 1);
}

#[tokio::test]
async fn sessions_that_expired_since_the_backup_are_skipped() {
    let h = Harness::new().await;
    h.login().await;
    let file = backup_of(&h).await;
    let later = START + 8 * 24 * 3600; // past the 7-day refresh lifetime
    let target = MemoryStore::new();
    let summary = backup::restore(&target, &keys(), later, file.as_slice(), |_| {})
        .await
        .expect("restore");
    assert_eq!(summary.sessions_expired, 1);
    assert_eq!(summary.sessions_written, 0);
    assert!(target.is_empty());
}

#[tokio::test]
async fn a_damaged_modified_or_foreign_file_is_refused_before_anything_is_written() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.login().await;
    }
    let file = backup_of(&h).await;

    // Every truncation.
    for len in 0..file.len() {
        let err = backup::verify(&file[..len], &keys()).expect_err("truncated");
        assert!(
            matches!(err, BackupError::NotABackup | BackupError::Damaged),
            "truncated to {len}: {err}"
        );
    }
    // Every single-bit flip in the first 200 bytes and the last 100, and a
    // sample in between.
    let positions: Vec<usize> = (0..200.min(file.len()))
        .chain((file.len().saturating_sub(100))..file.len())
        .chain((200..file.len()).step_by(37))
        .collect();
    for at in positions {
        let mut bad = file.clone();
        bad[at] ^= 0x04;
        assert!(
            backup::verify(bad.as_slice(), &keys()).is_err(),
            "a flipped bit at {at} was accepted"
        );
    }
    // Trailing bytes.
    let mut longer = file.clone();
    longer.push(0);
    assert!(matches!(
        backup::verify(longer.as_slice(), &keys()),
        Err(BackupError::Damaged)
    ));
    // Not a backup at all.
    for foreign in [&b"SQLite format 3\0 and more bytes here"[..], b"", b"{}\n"] {
        assert!(matches!(
            backup::verify(foreign, &keys()),
            Err(BackupError::NotABackup)
        ));
    }
    // The right format under other keys.
    let other = KeyRing::new(
        &KeyRing::generate_secret().expect("secret"),
        &KeyRing::generate_secret().expect("secret"),
    )
    .expect("keys");
    assert!(matches!(
        backup::verify(file.as_slice(), &other),
        Err(BackupError::OtherKeys)
    ));
    // A modified record restores nothing: verify refuses it first.
    let mut bad = file.clone();
    let mid = file.len() / 2;
    bad[mid] ^= 1;
    let target = MemoryStore::new();
    assert!(backup::verify(bad.as_slice(), &other).is_err());
    assert!(backup::verify(bad.as_slice(), &keys()).is_err());
    assert!(target.is_empty());
}

#[tokio::test]
async fn a_backup_made_before_a_key_rotation_restores_after_it() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let file = backup_of(&h).await;
    let new_enc = KeyRing::generate_secret().expect("secret");
    let rotated =
        KeyRing::with_previous(common::JWT_SECRET, &[], &new_enc, &[common::ENCRYPTION_KEY])
            .expect("rotated keys");
    backup::verify(file.as_slice(), &rotated).expect("the previous key authenticates it");
    let target = Arc::new(MemoryStore::new());
    backup::restore(target.as_ref(), &rotated, START, file.as_slice(), |_| {})
        .await
        .expect("restore");
    let there = SessionManager::builder()
        .keys(rotated)
        .store(target)
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(lifetimes())
        .build()
        .expect("manager");
    there
        .validate_session(issued.access_token.expose())
        .await
        .expect("valid under the rotated ring");
}

#[tokio::test]
async fn the_backup_file_holds_no_token_and_nothing_in_clear() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let h = Harness::new().await;
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("user id".into(), h.user.to_string().into_bytes()),
        ("user id (raw)".into(), h.user.as_bytes().to_vec()),
        ("org id".into(), h.org.to_string().into_bytes()),
        ("org id (raw)".into(), h.org.as_bytes().to_vec()),
        ("role".into(), b"member".to_vec()),
        ("device".into(), b"backup-probe-device".to_vec()),
        ("ip".into(), b"203.0.113.9".to_vec()),
    ];
    for _ in 0..5 {
        let new = h
            .new_session()
            .device_id(tessera::DeviceId::parse("backup-probe-device").expect("device"))
            .ip_address("203.0.113.9".parse().expect("ip"));
        let t = h.manager.create_session(new).await.expect("create");
        let refresh = t.refresh_token.expose().to_owned();
        let body = URL_SAFE_NO_PAD
            .decode(&refresh["tsr1_".len()..])
            .expect("refresh body");
        needles.push(("refresh secret".into(), body[20..52].to_vec()));
        needles.push(("refresh token".into(), refresh.into_bytes()));
        for part in t.access_token.expose().split('.') {
            needles.push(("access token part".into(), part.as_bytes().to_vec()));
        }
    }
    let file = backup_of(&h).await;
    for (what, needle) in &needles {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the backup holds the {what}"
        );
    }
}
