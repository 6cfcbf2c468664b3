//! PostgreSQL holds only ciphertext, hashes and keyed-hash indexes:
//! sessions are created, refreshed and validated through a real
//! `SessionManager`, then every row of every table in the store's schema,
//! as text and every `bytea` column as raw bytes, is scanned for the user
//! id, org id, device id, IP addresses, user agent, attribute, role and
//! tokens, in every encoding they could leak in.

mod support;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tessera::limit::RateLimiter;
use tessera::{DeviceId, NewSession, UserAgent};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every form a secret or identifier could be stored in.
fn forms(label: &str, text: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        (format!("{label} (text)"), text.as_bytes().to_vec()),
        (format!("{label} (upper)"), text.to_uppercase().into_bytes()),
        (
            format!("{label} (text as hex)"),
            text.bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            format!("{label} (text as base64)"),
            STANDARD.encode(text).into_bytes(),
        ),
    ];
    if !raw.is_empty() {
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        out.push((format!("{label} (hex)"), hex.into_bytes()));
        out.push((format!("{label} (raw)"), raw.to_vec()));
        out.push((
            format!("{label} (base64url)"),
            URL_SAFE_NO_PAD.encode(raw).into_bytes(),
        ));
        out.push((
            format!("{label} (base64)"),
            STANDARD.encode(raw).into_bytes(),
        ));
    }
    out
}

/// Every table of `schema`: each row as PostgreSQL's text form (`bytea` as
/// `\x` hex), and each `bytea` value as raw bytes.
async fn dump(schema: &str) -> Vec<(String, Vec<u8>)> {
    let client = support::raw(&support::url().await).await;
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .expect("list tables");
    let mut out = Vec::new();
    for t in &tables {
        let table: String = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM \"{schema}\".{table} t"), &[])
            .await
            .expect("rows as text");
        for r in &rows {
            let text: String = r.get(0);
            out.push((format!("{table} (row text)"), text.into_bytes()));
        }
        let columns = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                &[&schema, &table],
            )
            .await
            .expect("bytea columns");
        for c in &columns {
            let column: String = c.get(0);
            let rows = client
                .query(&format!("SELECT {column} FROM \"{schema}\".{table}"), &[])
                .await
                .expect("bytea values");
            for r in &rows {
                let raw: Vec<u8> = r.get(0);
                out.push((format!("{table}.{column} (raw)"), raw));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_plaintext_identifiers_or_tokens() {
    let store = support::store().await;
    let schema = store.schema().expect("a test schema").to_owned();
    let limiter = store.rate_limiter();
    let manager = support::manager(store);

    let user = support::random_user();
    let org = support::random_org();
    let device = "probe-device-7f3a9c";
    let ip: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().expect("ip");
    let ip4: IpAddr = "203.0.113.77".parse().expect("ip");
    let agent = "Mozilla/5.0 (TesseraProbe) plaintext-canary";
    let attribute = "attribute-canary-91c2";
    let role = "admin";
    manager
        .set_membership(&user, &org, &support::role(role))
        .await
        .expect("membership");

    let mut needles = Vec::new();
    // What the store may hold, to prove the scan sees it: session ids.
    let mut session_ids = Vec::new();
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
        needles.extend(forms("ip (octets)", "", &v6.octets()).into_iter().skip(4));
    }
    needles.extend(forms("ipv4", &ip4.to_string(), &[]));
    needles.extend(forms("user agent", agent, &[]));
    needles.extend(forms("attribute", attribute, &[]));
    needles.extend(forms("role", role, &[]));

    for i in 0..24 {
        let mut new = NewSession::new(user, org)
            .device_id(DeviceId::parse(device).expect("device"))
            .user_agent(UserAgent::parse(agent).expect("agent"))
            .ip_address(if i % 2 == 0 { ip } else { ip4 })
            .attribute("plan", attribute);
        if i % 3 == 0 {
            new = NewSession::new(user, org);
        }
        let issued = manager.create_session(new).await.expect("create");
        session_ids.push(issued.session_id.to_string());
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
            needles.extend(
                forms("refresh secret", "", &body[20..52])
                    .into_iter()
                    .skip(4),
            );
            needles.extend(forms("refresh tag", "", &body[52..]).into_iter().skip(4));
            needles.push(("refresh token".into(), refresh.into_bytes()));
            needles.push(("access token".into(), access.into_bytes()));
        }
    }
    manager.session_stats().await.expect("stats");
    assert_eq!(manager.user_sessions(&user).await.expect("list").len(), 24);
    for _ in 0..3 {
        limiter
            .check(
                tessera::SessionId::random().as_bytes(),
                10,
                1_800_000_000_000,
            )
            .await
            .expect("rate limit");
    }

    let dump = dump(&schema).await;
    for table in [
        "tessera_sessions",
        "tessera_memberships",
        "tessera_rate_limits",
        "tessera_migrations",
    ] {
        assert!(
            dump.iter().any(|(what, _)| what.starts_with(table)),
            "the scan read {table}"
        );
    }
    for id in &session_ids {
        assert!(
            dump.iter().any(|(_, blob)| contains(blob, id.as_bytes())),
            "the scan sees what the store may hold (session id {id})"
        );
    }
    let mut scanned = 0usize;
    for (what, blob) in &dump {
        scanned += blob.len();
        for (label, needle) in &needles {
            assert!(
                needle.is_empty() || !contains(blob, needle),
                "{what} holds the {label} in plaintext"
            );
        }
    }
    assert!(
        scanned > 24 * 200,
        "the scan read the sealed records ({scanned} bytes)"
    );
    support::drop_schema(Some(&schema)).await;
}
