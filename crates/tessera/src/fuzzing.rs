//! Entry points for the cargo-fuzz targets in `fuzz/`. Not an API: hidden
//! from the documentation, stable for nobody.
//!
//! Each function feeds arbitrary bytes to one parser the way untrusted input
//! reaches it, and must return (never panic, hang or allocate without bound)
//! whatever the bytes are. Where a MAC or signature would stop a fuzzer at
//! the door, a second entry point authenticates the fuzzer's bytes with a
//! fixed test key first, so the code *behind* the check is fuzzed too. The
//! keys here are fixed, public test values that sign nothing real.

use std::sync::OnceLock;

use crate::ids::{DeviceId, OrgId, SessionId, UserAgent, UserId, parse_ip};
use crate::keys::{KeyRing, SigningAlgorithm};
use crate::manager::NewSession;
use crate::policy::{Grant, Permission, Policy, RoleName};
use crate::record::SessionRecord;
use crate::seal::{self, Purpose};
use crate::token::access::AccessTokens;
use crate::token::refresh::{self, ParsedRefresh};

const JWT: &str = "fz7Kq2Lw9Xe4Rt1Yu8Io3Pa6Sd0Fg5Hj-fuzzing";
const ENC: &str = "Mn4Bv7Cx1Zl8Kj5Hg2Fd9Sa6Qw3Er0Ty-fuzzing";
/// The fixed "now" of every verification, with tokens issued around it.
pub const NOW: u64 = 1_800_000_000;
/// The issuer the fuzzing verifier expects.
pub const ISSUER: &str = "tessera";

fn hs256() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::new(JWT, ENC).expect("fixed test keys are valid"))
}

fn eddsa() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let pem = KeyRing::generate_signing_key(SigningAlgorithm::EdDsa).expect("a key");
        KeyRing::with_signing_keys(SigningAlgorithm::EdDsa, &pem, &[], ENC, &[])
            .expect("a generated key is valid")
    })
}

fn verifier() -> AccessTokens {
    AccessTokens::new(ISSUER.to_owned(), 30, 24 * 3600)
}

/// Verifies `data` as an access token against an HS256 and an EdDSA ring.
/// Returns whether either accepted it (a fuzzer never forges one).
pub fn access_token(data: &[u8]) -> bool {
    let Ok(token) = std::str::from_utf8(data) else {
        return false;
    };
    let v = verifier();
    v.verify(hs256(), token, NOW).is_ok() | v.verify(eddsa(), token, NOW).is_ok()
}

/// Signs arbitrary header and payload bytes with the HS256 test key and
/// verifies the result: fuzzes the header parser on a valid signature and
/// the claims parser and checks behind it.
pub fn signed_access_token(header: &[u8], payload: &[u8]) -> bool {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let input_len = token.len();
    token.push('.');
    let mut sig = String::new();
    if hs256()
        .signing_key()
        .sign_into(&token.as_bytes()[..input_len], &mut sig)
        .is_err()
    {
        return false;
    }
    token.push_str(&sig);
    verifier().verify(hs256(), &token, NOW).is_ok()
}

/// Parses `data` as a refresh token.
pub fn refresh_token(data: &[u8]) -> bool {
    let Ok(token) = std::str::from_utf8(data) else {
        return false;
    };
    let ok = ParsedRefresh::parse(token, hs256()).is_ok();
    ok | refresh::session_id_of(hs256(), token).is_ok()
}

/// Builds a refresh token from arbitrary id, generation and secret bytes,
/// authenticated with the test key, and parses it back: fuzzes what follows
/// the MAC check, and asserts the round trip.
pub fn authenticated_refresh_token(body: &[u8]) -> bool {
    let mut raw = [0u8; 52];
    let n = body.len().min(52);
    raw[..n].copy_from_slice(&body[..n]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&raw[..16]);
    let generation = u32::from_be_bytes([raw[16], raw[17], raw[18], raw[19]]);
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&raw[20..]);
    let made = ParsedRefresh::from_parts(
        SessionId::from_uuid(uuid::Uuid::from_bytes(id)),
        generation,
        secret,
    );
    let token = made.encode(hs256());
    let parsed = ParsedRefresh::parse(&token, hs256())
        .unwrap_or_else(|_| panic!("an authentic token must parse"));
    assert_eq!(parsed.session_id, made.session_id);
    assert_eq!(parsed.generation, made.generation);
    assert!(parsed.matches(&made.secret_hash()));
    let next = parsed.successor(hs256());
    assert!(
        parsed
            .successor_matching(hs256(), &next.secret_hash())
            .is_some()
    );
    assert!(!parsed.matches(&next.secret_hash()));
    true
}

/// Opens `data` as a sealed session record of a fixed session id.
pub fn sealed_record(data: &[u8]) -> bool {
    let id = SessionId::from_uuid(uuid::Uuid::from_bytes([7; 16]));
    let a = seal::open(hs256(), Purpose::Session, id.as_bytes(), data).is_ok();
    a | SessionRecord::open(hs256(), &id, data).is_ok()
}

/// Seals arbitrary plaintext as a session record and opens it: fuzzes the
/// record decoding that only authentic ciphertext reaches.
pub fn record_plaintext(data: &[u8]) -> bool {
    let id = SessionId::from_uuid(uuid::Uuid::from_bytes([9; 16]));
    let Ok(blob) = seal::seal(hs256(), Purpose::Session, id.as_bytes(), data) else {
        return false;
    };
    match SessionRecord::open(hs256(), &id, &blob) {
        // Whatever decodes must seal again and open to the same record.
        Ok(record) => record
            .seal(hs256(), &id)
            .and_then(|b| SessionRecord::open(hs256(), &id, &b))
            .is_ok(),
        Err(_) => false,
    }
}

/// Every parser of client-supplied identifiers, and the policy parser,
/// on pieces of `data`.
pub fn inputs(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut accepted = 0;
    for piece in text.split('\n') {
        accepted += usize::from(UserId::parse(piece).is_ok())
            + usize::from(OrgId::parse(piece).is_ok())
            + usize::from(SessionId::parse(piece).is_ok())
            + usize::from(DeviceId::parse(piece).is_ok())
            + usize::from(UserAgent::parse(piece).is_ok())
            + usize::from(parse_ip(piece).is_ok())
            + usize::from(Permission::parse(piece).is_ok())
            + usize::from(Grant::parse(piece).is_ok())
            + usize::from(RoleName::parse(piece).is_ok());
    }
    let mut lines = text.splitn(6, '\n');
    let fields: Vec<&str> = (0..5).map(|_| lines.next().unwrap_or("")).collect();
    fn opt(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }
    accepted += usize::from(
        NewSession::parse(
            fields[0],
            fields[1],
            opt(fields[2]),
            opt(fields[3]),
            opt(fields[4]),
        )
        .is_ok(),
    );
    if let Ok(policy) = Policy::from_toml(&text) {
        accepted += 1;
        let names: Vec<RoleName> = policy.role_names().cloned().collect();
        for role in &names {
            for piece in text.split(['\n', ' ', '"']) {
                if let Ok(p) = Permission::parse(piece) {
                    accepted += usize::from(policy.allows(role, &p));
                }
            }
            accepted += policy.grants(role).len();
        }
    }
    accepted
}

/// Reads `data` as signing-key configuration, as `TESSERA_SIGNING_KEY` and
/// `TESSERA_SIGNING_ALG` would carry it.
pub fn key_text(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut ok = SigningAlgorithm::parse(&text).is_ok();
    static PEMS: OnceLock<[String; 2]> = OnceLock::new();
    let pems = PEMS.get_or_init(|| {
        [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256].map(|alg| {
            KeyRing::generate_signing_key(alg)
                .expect("a key")
                .to_string()
        })
    });
    for (alg, pem) in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256]
        .into_iter()
        .zip(pems)
    {
        ok |= KeyRing::with_signing_keys(alg, &text, &[], ENC, &[]).is_ok();
        ok |= KeyRing::with_signing_keys(alg, pem, &[&text], ENC, &[]).is_ok();
    }
    ok
}

/// Reads `data` as a backup file under the test keys, to its end. Returns
/// whether it was accepted (a fuzzer never forges the MAC).
pub fn backup_file(data: &[u8]) -> bool {
    crate::backup::verify(data, hs256()).is_ok()
}

/// Wraps `frames` in an authentic header and MAC under the test key and
/// reads the result: fuzzes the frame and end-of-file checks that only an
/// authentic file reaches.
pub fn authenticated_backup(frames: &[u8]) -> bool {
    use aws_lc_rs::hmac;
    let key = hs256().sealing_key();
    let mut file = Vec::with_capacity(frames.len() + 64);
    file.extend_from_slice(crate::backup::MAGIC);
    file.push(crate::backup::FORMAT);
    file.extend_from_slice(&key.kid());
    file.extend_from_slice(&NOW.to_be_bytes());
    file.extend_from_slice(frames);
    let tag = hmac::sign(&key.backup_mac, &file);
    file.extend_from_slice(tag.as_ref());
    crate::backup::verify(file.as_slice(), hs256()).is_ok()
}
