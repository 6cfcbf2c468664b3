//! Sealed records: what the store holds, and what happens when it is altered.

mod common;

use std::sync::Arc;

use common::{ENCRYPTION_KEY, Harness, JWT_SECRET, START, replace_sealed};
use tessera::store::SessionStore;
use tessera::{
    DeviceId, ErrorKind, KeyRing, Lifetimes, MemoryStore, SessionManager, UserAgent, ids::parse_ip,
};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_store_holds_no_plaintext_identifiers_or_tokens() {
    let h = Harness::new().await;
    let new = h
        .new_session()
        .device_id(DeviceId::parse("device-plaintext-probe").expect("device"))
        .ip_address(parse_ip("198.51.100.77").expect("ip"))
        .user_agent(UserAgent::parse("AgentPlaintextProbe/1.0").expect("ua"));
    let issued = h.manager.create_session(new).await.expect("created");
    let refreshed = h.refresh(&issued.refresh_token).await.expect("refreshed");

    let dump = h.store.export();
    assert!(!dump.is_empty());
    let user = h.user.to_string();
    let org = h.org.to_string();
    let forbidden: Vec<(&str, Vec<u8>)> = vec![
        ("user id (text)", user.clone().into_bytes()),
        ("user id (bytes)", h.user.as_bytes().to_vec()),
        ("org id (text)", org.clone().into_bytes()),
        ("org id (bytes)", h.org.as_bytes().to_vec()),
        ("device id", b"device-plaintext-probe".to_vec()),
        ("ip address (text)", b"198.51.100.77".to_vec()),
        ("ip address (bytes)", vec![198, 51, 100, 77]),
        ("user agent", b"AgentPlaintextProbe".to_vec()),
        ("role", b"member".to_vec()),
        (
            "refresh token",
            issued.refresh_token.expose().as_bytes().to_vec(),
        ),
        (
            "new refresh token",
            refreshed.refresh_token.expose().as_bytes().to_vec(),
        ),
        (
            "access token",
            issued.access_token.expose().as_bytes().to_vec(),
        ),
        ("refresh token body", {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&refreshed.refresh_token.expose()[5..])
                .expect("b64")[20..52]
                .to_vec()
        }),
        ("jwt secret", JWT_SECRET.as_bytes().to_vec()),
        ("encryption key", ENCRYPTION_KEY.as_bytes().to_vec()),
    ];
    for (what, bytes) in forbidden {
        assert!(
            !contains(&dump, &bytes),
            "the store dump holds the {what} in clear"
        );
    }
}

#[tokio::test]
async fn a_backup_restores_every_session() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let restored = Arc::new(MemoryStore::import(&h.store.export()).expect("restores"));
    let manager = SessionManager::builder()
        .keys(common::keys())
        .store(restored)
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager");
    manager
        .validate_session(issued.access_token.expose())
        .await
        .expect("valid after restore");
    assert!(
        manager
            .membership(&h.user, &h.org)
            .await
            .expect("read")
            .is_some(),
        "memberships are restored too"
    );
    assert!(MemoryStore::import(b"not a backup").is_err());
}

#[tokio::test]
async fn a_tampered_record_is_treated_as_absent() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let stored = h
        .store
        .get(&issued.session_id, START)
        .await
        .expect("get")
        .expect("present");
    for index in [0, 3, 10, stored.sealed.len() / 2, stored.sealed.len() - 1] {
        let mut sealed = stored.sealed.clone();
        sealed[index] ^= 0x01;
        replace_sealed(&h.store, &issued.session_id, sealed).await;
        let err = h
            .validate(&issued.access_token)
            .await
            .expect_err("tampered record");
        assert_eq!(err.kind(), ErrorKind::Token, "byte {index}");
    }
    assert!(h.refresh(&issued.refresh_token).await.is_err());
    assert!(
        h.manager
            .user_sessions(&h.user)
            .await
            .expect("listed")
            .is_empty()
    );
}

#[tokio::test]
async fn a_record_swapped_onto_another_session_fails_to_open() {
    let h = Harness::new().await;
    let a = h.login().await;
    let b = h.login().await;
    let a_sealed = h
        .store
        .get(&a.session_id, START)
        .await
        .expect("get")
        .expect("present")
        .sealed;
    replace_sealed(&h.store, &b.session_id, a_sealed).await;
    let err = h
        .validate(&b.access_token)
        .await
        .expect_err("swapped record");
    assert_eq!(err.kind(), ErrorKind::Token);
    h.validate(&a.access_token)
        .await
        .expect("the original is untouched");
}

#[tokio::test]
async fn rotating_the_encryption_key_keeps_old_sessions_valid() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let new_key = "Ht6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn-rotated";
    let rotated =
        KeyRing::with_previous(JWT_SECRET, &[], new_key, &[ENCRYPTION_KEY]).expect("keys");
    let manager = h.manager_with(
        rotated,
        Lifetimes {
            activity_interval: std::time::Duration::ZERO,
            ..common::lifetimes()
        },
    );
    manager
        .validate_session(issued.access_token.expose())
        .await
        .expect("a record sealed under the previous key opens");
    assert_eq!(
        manager.user_sessions(&h.user).await.expect("listed").len(),
        1
    );
    assert!(
        manager
            .membership(&h.user, &h.org)
            .await
            .expect("read")
            .is_some(),
        "memberships sealed under the previous key are found"
    );
    let refreshed = manager
        .refresh_session(issued.refresh_token.expose())
        .await
        .expect("refresh re-seals under the new key");
    // With the previous key gone, the re-sealed session still opens.
    let only_new = KeyRing::new(JWT_SECRET, new_key).expect("keys");
    let manager = h.manager_with(only_new, common::lifetimes());
    manager
        .validate_session(refreshed.access_token.expose())
        .await
        .expect("re-sealed under the current key");
}

#[tokio::test]
async fn a_record_under_a_retired_key_is_rejected() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let without_old =
        KeyRing::new(JWT_SECRET, "Ht6Yu9Io2Pa5Sd8Fg1Hj4Kl7Zx0Cv3Bn-rotated").expect("keys");
    let manager = h.manager_with(without_old, common::lifetimes());
    let err = manager
        .validate_session(issued.access_token.expose())
        .await
        .expect_err("retired key");
    assert_eq!(err.kind(), ErrorKind::Token);
}
