//! The no-plaintext probe every store's test runs: sessions full of
//! recognisable values (user, org and device ids, IP addresses, a user
//! agent, an attribute, a role) are created, validated and refreshed
//! through a real `SessionManager`, and every form those values and the
//! issued tokens could be stored in becomes a needle. The store's test then
//! dumps what the store holds, its own way (Redis keys, SQL rows, a
//! database file), and hands each blob to [`Probe::assert_absent`].

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tessera::{
    DeviceId, IssuedTokens, NewSession, OrgId, RoleName, SessionId, SessionManager, UserAgent,
    UserId,
};

const DEVICE: &str = "probe-device-7f3a9c";
const AGENT: &str = "Mozilla/5.0 (TesseraProbe) plaintext-canary";
const ATTRIBUTE: &str = "attribute-canary-91c2";
const ROLE: &str = "admin";

/// What a store must never hold in clear, and the sessions made to find it.
#[derive(Debug)]
pub struct Probe {
    /// The user every session belongs to.
    pub user: UserId,
    /// The ids of the sessions made (a store may hold these: they are how
    /// a test proves its dump reached the records).
    pub session_ids: Vec<SessionId>,
    needles: Vec<(String, Vec<u8>)>,
}

/// Every form `text` and `raw` could be stored in: as text, upper case,
/// hex and base64 of the text; and raw, hex, base64 and base64url of the
/// bytes.
fn forms(label: &str, text: &str, raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if !text.is_empty() {
        out.push((format!("{label} (text)"), text.as_bytes().to_vec()));
        out.push((format!("{label} (upper)"), text.to_uppercase().into_bytes()));
        out.push((
            format!("{label} (text as hex)"),
            text.bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ));
        out.push((
            format!("{label} (text as base64)"),
            STANDARD.encode(text).into_bytes(),
        ));
    }
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

fn token_forms(t: &IssuedTokens) -> Vec<(String, Vec<u8>)> {
    let access = t.access_token.expose();
    let refresh = t.refresh_token.expose();
    let mut out = Vec::new();
    for (n, part) in access.split('.').enumerate() {
        out.push((format!("access token part {n}"), part.as_bytes().to_vec()));
    }
    let body = URL_SAFE_NO_PAD
        .decode(refresh.trim_start_matches("tsr1_"))
        .unwrap_or_else(|_| panic!("a refresh token the manager issued decodes"));
    // session id (16) | generation (4) | secret (32) | tag (16)
    if body.len() >= 68 {
        out.extend(forms("refresh secret", "", &body[20..52]));
        out.extend(forms("refresh tag", "", &body[52..68]));
    }
    out.push(("refresh token".into(), refresh.as_bytes().to_vec()));
    out.push(("access token".into(), access.as_bytes().to_vec()));
    out
}

impl Probe {
    /// Makes `sessions` sessions on `manager` (a member with role `admin`
    /// in a fresh org; most with a device, user agent, IP and attribute),
    /// validates each and refreshes every fourth, and collects the needles.
    pub async fn seed(manager: &SessionManager, sessions: usize) -> Self {
        let user = UserId::from_uuid(uuid::Uuid::new_v4());
        let org = OrgId::from_uuid(uuid::Uuid::new_v4());
        let ip: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().expect("ip");
        let ip4: IpAddr = "203.0.113.77".parse().expect("ip");
        manager
            .set_membership(&user, &org, &RoleName::parse(ROLE).expect("role"))
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
        needles.extend(forms("device id", DEVICE, &[]));
        needles.extend(forms("ip", &ip.to_string(), &[]));
        if let IpAddr::V6(v6) = ip {
            needles.extend(forms("ip (octets)", "", &v6.octets()));
        }
        needles.extend(forms("ipv4", &ip4.to_string(), &[]));
        needles.extend(forms("user agent", AGENT, &[]));
        needles.extend(forms("attribute", ATTRIBUTE, &[]));
        needles.push(("role".into(), ROLE.as_bytes().to_vec()));

        let mut session_ids = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let new = if i % 3 == 0 {
                NewSession::new(user, org)
            } else {
                NewSession::new(user, org)
                    .device_id(DeviceId::parse(DEVICE).expect("device"))
                    .user_agent(UserAgent::parse(AGENT).expect("agent"))
                    .ip_address(if i % 2 == 0 { ip } else { ip4 })
                    .attribute("plan", ATTRIBUTE)
            };
            let issued = manager.create_session(new).await.expect("create");
            session_ids.push(issued.session_id);
            manager
                .validate_session(issued.access_token.expose())
                .await
                .expect("validate");
            needles.extend(token_forms(&issued));
            if i % 4 == 0 {
                let rotated = manager
                    .refresh_session(issued.refresh_token.expose())
                    .await
                    .expect("refresh");
                needles.extend(token_forms(&rotated));
            }
        }
        manager.session_stats().await.expect("stats");
        assert_eq!(
            manager.user_sessions(&user).await.expect("list").len(),
            sessions,
            "every probe session is live"
        );
        Self {
            user,
            session_ids,
            needles,
        }
    }

    /// Panics, naming `what` and the value, if `haystack` holds any needle.
    pub fn assert_absent(&self, what: &str, haystack: &[u8]) {
        for (value, needle) in &self.needles {
            assert!(
                memchr::memmem::find(haystack, needle).is_none(),
                "{what} holds the {value} in plaintext"
            );
        }
    }
}
