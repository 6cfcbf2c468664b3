//! Refresh tokens: opaque, authenticated, and stored only as a hash.
//!
//! A refresh token is `tsr1_` followed by base64url (no padding) of
//!
//! ```text
//! session id (16) || generation (4, big endian) || secret (32) || tag (16)
//! ```
//!
//! - The session id lets the store find the session without a scan.
//! - The secret is 256 bits. The first one of a session comes from the OS
//!   CSPRNG; each rotation derives the next as
//!   `HMAC-SHA256(refresh key, "next" || id || generation || secret)`, so the
//!   holder of the immediately previous token can be handed the same successor
//!   again inside the grace window without the store ever keeping a token.
//!   The store keeps only `SHA-256(secret)` of the current generation.
//! - The tag is HMAC-SHA256 over everything before it, under a key derived
//!   from `SESSION_ENCRYPTION_KEY`, truncated to 128 bits. It tells a token
//!   Tessera issued from a forgery *before* the store is asked, so a forged
//!   token that names a victim's session can never trigger reuse detection
//!   and log the victim out.

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Result, SessionError};
use crate::ids::SessionId;
use crate::keys::KeyRing;

const PREFIX: &str = "tsr1_";
const BODY_LEN: usize = 16 + 4 + 32;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = BODY_LEN + TAG_LEN;
/// The length of every refresh token, in characters.
pub const REFRESH_TOKEN_LEN: usize = PREFIX.len() + (RAW_LEN * 4).div_ceil(3);

/// The session a refresh token names, once its MAC has been checked against
/// the key ring. Reads no store, so it says nothing about whether the token
/// is still current: it lets a caller key per-session work (rate limits) on a
/// session id an attacker cannot choose. `TOKEN_ERROR` for anything Tessera
/// did not issue.
pub fn session_id_of(keys: &KeyRing, token: &str) -> Result<SessionId> {
    ParsedRefresh::parse(token, keys).map(|p| p.session_id)
}

/// A parsed, authenticated refresh token.
pub(crate) struct ParsedRefresh {
    pub(crate) session_id: SessionId,
    pub(crate) generation: u32,
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ParsedRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedRefresh")
            .field("session_id", &self.session_id)
            .field("generation", &self.generation)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn tag(key: &hmac::Key, body: &[u8]) -> [u8; TAG_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(b"tessera/v1/refresh\0");
    ctx.update(body);
    let full = ctx.sign();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
    out
}

fn invalid() -> SessionError {
    SessionError::token("the refresh token is not valid")
}

impl ParsedRefresh {
    /// A first-generation token with a fresh random secret.
    #[cfg(test)]
    pub(crate) fn generate(session_id: SessionId) -> Result<Self> {
        let mut secret = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(secret.as_mut())
            .map_err(|_| SessionError::system("the OS random generator failed"))?;
        Ok(Self {
            session_id,
            generation: 0,
            secret,
        })
    }

    /// A first-generation token for a new session: the session id and the
    /// secret from one draw of the CSPRNG.
    pub(crate) fn generate_with_id() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 48]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| SessionError::system("the OS random generator failed"))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&bytes[16..]);
        Ok(Self {
            session_id: SessionId::from_uuid(uuid::Builder::from_random_bytes(id).into_uuid()),
            generation: 0,
            secret,
        })
    }

    /// A token of the given parts; for the fuzzing entry points, which must
    /// be deterministic.
    pub(crate) fn from_parts(session_id: SessionId, generation: u32, secret: [u8; 32]) -> Self {
        Self {
            session_id,
            generation,
            secret: Zeroizing::new(secret),
        }
    }

    /// Parses and authenticates a token. Fails with `TOKEN_ERROR` for anything
    /// Tessera did not issue, before any store access.
    pub(crate) fn parse(token: &str, keys: &KeyRing) -> Result<Self> {
        if token.len() != REFRESH_TOKEN_LEN || !token.starts_with(PREFIX) {
            return Err(invalid());
        }
        let mut raw = Zeroizing::new([0u8; RAW_LEN + 2]);
        let n = URL_SAFE_NO_PAD
            .decode_slice(&token.as_bytes()[PREFIX.len()..], raw.as_mut())
            .map_err(|_| invalid())?;
        if n != RAW_LEN {
            return Err(invalid());
        }
        let (body, presented) = raw[..RAW_LEN].split_at(BODY_LEN);
        // Constant time: the tag is a MAC, so a timing leak would let an
        // attacker forge one byte at a time. Every key is tried so the time
        // taken does not say which key matched.
        let mut ok = subtle::Choice::from(0);
        for key in keys.sealing_keys() {
            ok |= tag(&key.refresh_mac, body).ct_eq(presented);
        }
        if !bool::from(ok) {
            return Err(invalid());
        }
        let session_id = SessionId::from_uuid(uuid::Uuid::from_bytes(
            body[..16].try_into().map_err(|_| invalid())?,
        ));
        let generation = u32::from_be_bytes(body[16..20].try_into().map_err(|_| invalid())?);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&body[20..52]);
        Ok(Self {
            session_id,
            generation,
            secret,
        })
    }

    fn body(&self) -> Zeroizing<[u8; BODY_LEN]> {
        let mut body = Zeroizing::new([0u8; BODY_LEN]);
        body[..16].copy_from_slice(self.session_id.as_bytes());
        body[16..20].copy_from_slice(&self.generation.to_be_bytes());
        body[20..].copy_from_slice(self.secret.as_ref());
        body
    }

    /// The token string, authenticated with the current key.
    pub(crate) fn encode(&self, keys: &KeyRing) -> String {
        let body = self.body();
        let t = tag(&keys.sealing_key().refresh_mac, body.as_ref());
        let mut raw = Zeroizing::new([0u8; RAW_LEN]);
        raw[..BODY_LEN].copy_from_slice(body.as_ref());
        raw[BODY_LEN..].copy_from_slice(&t);
        let mut out = String::with_capacity(REFRESH_TOKEN_LEN);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut out);
        out
    }

    /// The next generation, derived with the given sealing key's refresh key.
    fn successor_with(&self, key: &hmac::Key) -> Self {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(b"tessera/v1/refresh-next\0");
        ctx.update(self.body().as_ref());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(ctx.sign().as_ref());
        Self {
            session_id: self.session_id,
            generation: self.generation.wrapping_add(1),
            secret,
        }
    }

    /// The next generation under the current key.
    pub(crate) fn successor(&self, keys: &KeyRing) -> Self {
        self.successor_with(&keys.sealing_key().refresh_mac)
    }

    /// The successor under whichever key of the ring produces `hash`, if any:
    /// how a re-presented previous token is recognised in the grace window.
    pub(crate) fn successor_matching(&self, keys: &KeyRing, hash: &[u8; 16]) -> Option<Self> {
        keys.sealing_keys()
            .iter()
            .map(|k| self.successor_with(&k.refresh_mac))
            .find(|s| s.matches(hash))
    }

    /// `SHA-256(secret)`: the only form of the token the store keeps.
    pub(crate) fn secret_hash(&self) -> [u8; 16] {
        let d = digest::digest(&digest::SHA256, self.secret.as_ref());
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        out
    }

    /// Whether this token's secret hashes to `hash`.
    pub(crate) fn matches(&self, hash: &[u8; 16]) -> bool {
        // Constant time (`subtle::ConstantTimeEq`): the stored hash is what
        // a presented secret is measured against, so the comparison must
        // not say how many leading bytes matched.
        bool::from(self.secret_hash().ct_eq(hash))
    }

    /// A 128-bit id derived from the secret, used as the `jti` of the access
    /// token issued with this refresh token so a grace-window repeat signs
    /// the very same access token.
    pub(crate) fn jti(&self, keys: &KeyRing) -> String {
        let mut ctx = hmac::Context::with_key(&keys.sealing_key().refresh_mac);
        ctx.update(b"tessera/v1/jti\0");
        ctx.update(self.body().as_ref());
        let sig = ctx.sign();
        URL_SAFE_NO_PAD.encode(&sig.as_ref()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(enc: &str) -> KeyRing {
        KeyRing::new("k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa", enc).expect("keys")
    }
    const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms";

    #[test]
    fn a_token_round_trips_and_has_a_fixed_length() {
        let keys = ring(ENC);
        let t = ParsedRefresh::generate(SessionId::random()).expect("random");
        let s = t.encode(&keys);
        assert_eq!(s.len(), REFRESH_TOKEN_LEN);
        let back = ParsedRefresh::parse(&s, &keys).expect("parses");
        assert_eq!(back.session_id, t.session_id);
        assert!(back.matches(&t.secret_hash()));
    }

    #[test]
    fn any_changed_character_is_rejected_before_the_store() {
        let keys = ring(ENC);
        let s = ParsedRefresh::generate(SessionId::random())
            .expect("random")
            .encode(&keys);
        for i in PREFIX.len()..s.len() {
            let mut bytes = s.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bytes).expect("ascii");
            if bad != s {
                assert!(ParsedRefresh::parse(&bad, &keys).is_err(), "index {i}");
            }
        }
        let other = ring("Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc");
        assert!(ParsedRefresh::parse(&s, &other).is_err(), "another key");
        assert!(ParsedRefresh::parse("", &keys).is_err());
        assert!(ParsedRefresh::parse(&format!("{s}="), &keys).is_err());
    }

    #[test]
    fn successors_are_deterministic_and_distinct() {
        let keys = ring(ENC);
        let t = ParsedRefresh::generate(SessionId::random()).expect("random");
        let a = t.successor(&keys);
        let b = t.successor(&keys);
        assert_eq!(a.encode(&keys), b.encode(&keys));
        assert_eq!(a.generation, 1);
        assert_ne!(a.secret_hash(), t.secret_hash());
        assert!(t.successor_matching(&keys, &a.secret_hash()).is_some());
        assert!(t.successor_matching(&keys, &t.secret_hash()).is_none());
    }

    #[test]
    fn session_id_of_authenticates_before_answering() {
        let keys = ring(ENC);
        let id = SessionId::random();
        let s = ParsedRefresh::generate(id).expect("random").encode(&keys);
        assert_eq!(session_id_of(&keys, &s).expect("authentic"), id);
        let other = ring("Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc");
        assert!(session_id_of(&other, &s).is_err(), "another key");
        assert!(session_id_of(&keys, "tsr1_forged").is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let t = ParsedRefresh::generate(SessionId::random()).expect("random");
        assert!(format!("{t:?}").contains("[redacted]"));
    }
}
