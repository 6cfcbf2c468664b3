//! The database file holds only ciphertext, keyed hashes, ids, versions and
//! expiries: sessions are created, refreshed and validated through a real
//! `SessionManager`, then the raw bytes of the file and of its write-ahead
//! log are scanned for the user id, org id, device id, IP addresses, user
//! agent, attributes, role and tokens, in every encoding they could leak in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera::{
    DeviceId, KeyRing, NewSession, OrgId, RoleName, SessionId, SessionManager, UserAgent, UserId,
};
use tessera_sqlite::SqliteStore;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Every form a secret or identifier could be stored in.
fn forms(label: &str, text: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (format!("{label} (text)"), text.as_bytes().to_vec()),
        (format!("{label} (upper)"), text.to_uppercase().into_bytes()),
    ];
    if !raw.is_empty() {
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        out.push((format!("{label} (hex)"), hex.into_bytes()));
        out.push((format!("{label} (raw)"), raw.to_vec()));
        out.push((
            format!("{label} (base64url)"),
            URL_SAFE_NO_PAD.encode(raw).into_bytes(),
        ));
    }
    out
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn scan(path: &Path, needles: &[(String, Vec<u8>)]) -> usize {
    let mut scanned = 0;
    for suffix in ["", "-wal"] {
        let file = with_suffix(path, suffix);
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        scanned += bytes.len();
        for (what, needle) in needles {
            assert!(
                !contains(&bytes, needle),
                "{} holds the {what} in plaintext",
                file.display()
            );
        }
    }
    scanned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_and_its_log_hold_no_plaintext() {
    let path =
        std::env::temp_dir().join(format!("tessera-sqlite-plain-{}.db", SessionId::random()));
    let store = SqliteStore::open(&path).expect("open");
    let keys = KeyRing::new(
        &KeyRing::generate_secret().expect("secret"),
        &KeyRing::generate_secret().expect("secret"),
    )
    .expect("keys");
    let manager = SessionManager::builder()
        .keys(keys)
        .store(Arc::new(store.clone()))
        .build()
        .expect("manager");

    let user = UserId::from_uuid(uuid::Uuid::new_v4());
    let org = OrgId::from_uuid(uuid::Uuid::new_v4());
    let device = "probe-device-7f3a9c";
    let ip: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().expect("ip");
    let ip4: IpAddr = "203.0.113.77".parse().expect("ip");
    let agent = "Mozilla/5.0 (TesseraProbe) plaintext-canary";
    let attribute = "attribute-canary-91c2";
    manager
        .set_membership(&user, &org, &RoleName::parse("admin").expect("role"))
        .await
        .expect("membership");

    let mut needles = Vec::new();
    needles.extend(forms("user id", &user.to_string(), user.as_bytes()));
    needles.extend(forms(
        "user id (simple)",
        &user.as_uuid().simple().to_string(),
        &[],
    ));
    needles.extend(forms("org id", &org.to_string(), org.as_bytes()));
    needles.extend(forms(
        "org id (simple)",
        &org.as_uuid().simple().to_string(),
        &[],
    ));
    needles.extend(forms("device id", device, &[]));
    needles.extend(forms("ip", &ip.to_string(), &[]));
    if let IpAddr::V6(v6) = ip {
        needles.push(("ip (raw)".into(), v6.octets().to_vec()));
    }
    needles.extend(forms("ipv4", &ip4.to_string(), &[]));
    needles.extend(forms("user agent", agent, &[]));
    needles.extend(forms("attribute", attribute, &[]));
    needles.push(("role".into(), b"admin".to_vec()));

    for i in 0..48 {
        let mut new = NewSession::new(user, org)
            .device_id(DeviceId::parse(device).expect("device"))
            .user_agent(UserAgent::parse(agent).expect("agent"))
            .ip_address(if i % 2 == 0 { ip } else { ip4 })
            .attribute("plan", attribute);
        if i % 3 == 0 {
            new = NewSession::new(user, org);
        }
        let issued = manager.create_session(new).await.expect("create");
        manager
            .validate_session(issued.access_token.expose())
            .await
            .expect("validate");
        let mut tokens = vec![issued.clone()];
        if i % 4 == 0 {
            tokens.push(
                manager
                    .refresh_session(issued.refresh_token.expose())
                    .await
                    .expect("refresh"),
            );
        }
        for t in tokens {
            let access = t.access_token.expose().to_owned();
            let refresh = t.refresh_token.expose().to_owned();
            for (n, part) in access.split('.').enumerate() {
                needles.push((format!("access token part {n}"), part.as_bytes().to_vec()));
            }
            let body = URL_SAFE_NO_PAD
                .decode(&refresh["tsr1_".len()..])
                .expect("refresh token body");
            // session id (16) | generation (4) | secret (32) | tag (16)
            needles.push(("refresh secret (raw)".into(), body[20..52].to_vec()));
            needles.push(("refresh tag (raw)".into(), body[52..].to_vec()));
            needles.push(("refresh token".into(), refresh.into_bytes()));
            needles.push(("access token".into(), access.into_bytes()));
        }
    }
    assert_eq!(manager.user_sessions(&user).await.expect("list").len(), 48);

    // With the write-ahead log still holding the recent writes...
    let scanned = scan(&path, &needles);
    assert!(
        scanned > 48 * 100,
        "the scan read the records ({scanned} bytes)"
    );
    // ...and after the last connection closes and checkpoints it.
    drop(manager);
    drop(store);
    let scanned = scan(&path, &needles);
    assert!(
        scanned > 48 * 100,
        "the scan read the file ({scanned} bytes)"
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&path, suffix));
    }
}
