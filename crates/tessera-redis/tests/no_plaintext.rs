//! Redis holds only ciphertext, hashes and keyed-hash indexes: sessions are
//! created, refreshed and validated through a real `SessionManager`, then
//! every key the store wrote, and everything in it, is scanned for the user
//! id, org id, device id, IP address, user agent, attributes, role and
//! tokens, in every encoding they could leak in.

mod support;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use support::Mode;
use tessera::{DeviceId, NewSession, UserAgent};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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

async fn redis_holds_no_plaintext(mode: Mode) {
    let store = support::store(mode).await;
    let prefix = store.prefix().to_owned();
    let manager = support::manager(store);

    let user = support::random_user();
    let org = support::random_org();
    let device = "probe-device-7f3a9c";
    let ip: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().expect("ip");
    let ip4: IpAddr = "203.0.113.77".parse().expect("ip");
    let agent = "Mozilla/5.0 (TesseraProbe) plaintext-canary";
    let attribute = "attribute-canary-91c2";
    manager
        .set_membership(&user, &org, &support::role("admin"))
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

    // Enough sessions that, in a cluster, every master holds some.
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
            let rotated = manager
                .refresh_session(issued.refresh_token.expose())
                .await
                .expect("refresh");
            tokens.push(rotated);
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
    manager.session_stats().await.expect("stats");
    assert_eq!(manager.user_sessions(&user).await.expect("list").len(), 48);

    let dump = support::dump(mode, &prefix);
    assert!(
        dump.len() > 16,
        "the scan found the store's keys ({} keys)",
        dump.len()
    );
    let mut scanned = 0usize;
    for (key, values) in &dump {
        for blob in std::iter::once(key).chain(values) {
            scanned += blob.len();
            for (what, needle) in &needles {
                assert!(
                    !contains(blob, needle),
                    "Redis key {:?} holds the {what} in plaintext",
                    String::from_utf8_lossy(key)
                );
            }
        }
    }
    assert!(
        scanned > 48 * 100,
        "the scan read the sealed records ({scanned} bytes)"
    );
    if mode == Mode::Cluster {
        for node in support::cluster().servers() {
            let on_node = support::keys(Mode::Cluster, &prefix)
                .into_iter()
                .filter(|(url, _)| *url == node.url())
                .count();
            assert!(on_node > 0, "every master holds some of the sessions");
        }
    }
    support::delete_keys(mode, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_plaintext_identifiers_or_tokens() {
    redis_holds_no_plaintext(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_holds_no_plaintext_identifiers_or_tokens() {
    redis_holds_no_plaintext(Mode::Cluster).await;
}
