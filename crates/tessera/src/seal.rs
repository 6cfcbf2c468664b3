//! Sealing: AES-256-GCM over everything the store keeps about a session.
//!
//! A sealed blob is `version (1) || kid (4) || nonce (12) || ciphertext || tag (16)`.
//! The nonce is fresh from the CSPRNG for every seal (aws-lc-rs'
//! `RandomizedNonceKey` draws it; Tessera never chooses one).
//!
//! Each record is sealed under a key of its own,
//! `HMAC-SHA256(seal key, purpose || owner)`, where the seal key is derived
//! from `SESSION_ENCRYPTION_KEY` by HKDF. AES-GCM allows 2^32 random-nonce
//! seals per key (NIST SP 800-38D); with one key per record that budget is
//! per session, which re-seals only on refreshes, role changes and activity
//! writes (at most one a minute by default: about 43,000 over a 30-day
//! session), instead of being shared by every session of a deployment.
//!
//! The associated
//! data binds the blob to its purpose, its owner (a session id, a membership
//! key) and the key id, so a blob copied onto another session, or relabelled
//! with another key id, fails to open. A blob that fails to open is an
//! `ENCRYPTION_ERROR`; callers treat the record as absent.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::error::{Result, SessionError};
use crate::keys::{KeyRing, SealingKey};

const VERSION: u8 = 2;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// What a sealed blob is for; part of its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A session record, owned by its session id.
    Session,
    /// A membership record, owned by its keyed-hash index key.
    Membership,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"tessera/v1/session",
            Purpose::Membership => b"tessera/v1/membership",
        }
    }
}

fn aad(purpose: Purpose, owner: &[u8], kid: [u8; 4]) -> Vec<u8> {
    let label = purpose.label();
    let mut aad = Vec::with_capacity(label.len() + 1 + kid.len() + owner.len());
    aad.extend_from_slice(label);
    aad.push(0);
    aad.extend_from_slice(&kid);
    aad.extend_from_slice(owner);
    aad
}

/// The AES-256-GCM key of one record: a PRF of the seal key over the
/// record's purpose and owner.
fn record_key(key: &SealingKey, purpose: Purpose, owner: &[u8]) -> Result<RandomizedNonceKey> {
    let bytes = record_key_bytes(key, purpose, owner);
    RandomizedNonceKey::new(&AES_256_GCM, bytes.as_ref())
        .map_err(|_| SessionError::encryption("AES-256-GCM key setup failed"))
}

fn record_key_bytes(key: &SealingKey, purpose: Purpose, owner: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut ctx = hmac::Context::with_key(&key.seal_kdf);
    ctx.update(purpose.label());
    ctx.update(&[0]);
    ctx.update(owner);
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(ctx.sign().as_ref());
    bytes
}

/// Seals `plaintext` for `owner` under the ring's current key.
pub fn seal(keys: &KeyRing, purpose: Purpose, owner: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let key = keys.sealing_key();
    let kid = key.kid();
    let mut in_out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    in_out.extend_from_slice(plaintext);
    let nonce = record_key(key, purpose, owner)?
        .seal_in_place_append_tag(Aad::from(aad(purpose, owner, kid)), &mut in_out)
        .map_err(|_| SessionError::encryption("sealing the session record failed"))?;
    key.count_seal();
    let mut blob = Vec::with_capacity(HEADER_LEN + in_out.len());
    blob.push(VERSION);
    blob.extend_from_slice(&kid);
    blob.extend_from_slice(nonce.as_ref());
    blob.extend_from_slice(&in_out);
    Ok(blob)
}

/// Seals a blob whose first `HEADER_LEN` bytes are reserved and whose rest
/// is the plaintext, in place: one allocation, no plaintext copy left behind.
pub(crate) fn seal_reserved(
    keys: &KeyRing,
    purpose: Purpose,
    owner: &[u8],
    mut blob: Vec<u8>,
) -> Result<Vec<u8>> {
    let key = keys.sealing_key();
    let kid = key.kid();
    let mut aad_buf = [0u8; 64];
    let label = purpose.label();
    let aad_len = label.len() + 1 + kid.len() + owner.len();
    let aad_vec;
    let aad_bytes: &[u8] = if aad_len <= aad_buf.len() {
        aad_buf[..label.len()].copy_from_slice(label);
        aad_buf[label.len() + 1..label.len() + 5].copy_from_slice(&kid);
        aad_buf[label.len() + 5..aad_len].copy_from_slice(owner);
        &aad_buf[..aad_len]
    } else {
        aad_vec = aad(purpose, owner, kid);
        &aad_vec
    };
    let (nonce, tag) = record_key(key, purpose, owner)?
        .seal_in_place_separate_tag(Aad::from(aad_bytes), &mut blob[HEADER_LEN..])
        .map_err(|_| SessionError::encryption("sealing the session record failed"))?;
    key.count_seal();
    blob[0] = VERSION;
    blob[1..5].copy_from_slice(&kid);
    blob[5..HEADER_LEN].copy_from_slice(nonce.as_ref());
    blob.extend_from_slice(tag.as_ref());
    Ok(blob)
}

/// Reserved bytes in front of the plaintext for [`seal_reserved`].
pub(crate) const RESERVED: usize = HEADER_LEN;
/// Bytes the tag adds after the plaintext.
pub(crate) const TAG_BYTES: usize = TAG_LEN;

/// Opens a blob sealed by [`seal`] for the same purpose and owner, under any
/// key of the ring. Fails if a single bit of it changed.
pub fn open(keys: &KeyRing, purpose: Purpose, owner: &[u8], blob: &[u8]) -> Result<Vec<u8>> {
    let fail = || SessionError::encryption("a sealed record failed to open");
    if blob.len() < HEADER_LEN + TAG_LEN || blob[0] != VERSION {
        return Err(fail());
    }
    let kid: [u8; 4] = blob[1..5].try_into().map_err(|_| fail())?;
    let nonce = Nonce::try_assume_unique_for_key(&blob[5..HEADER_LEN]).map_err(|_| fail())?;
    let key = keys.sealing_key_by_kid(kid).ok_or_else(fail)?;
    let mut in_out = blob[HEADER_LEN..].to_vec();
    // The GCM tag is checked inside aws-lc's `open_in_place`, in constant
    // time, before any plaintext is released.
    let plaintext = record_key(key, purpose, owner)?
        .open_in_place(nonce, Aad::from(aad(purpose, owner, kid)), &mut in_out)
        .map_err(|_| fail())?;
    let len = plaintext.len();
    in_out.truncate(len);
    Ok(in_out)
}

/// The id of the key a blob was sealed with, if it has the sealed layout.
pub fn kid_of(blob: &[u8]) -> Option<[u8; 4]> {
    blob.get(1..5).and_then(|k| k.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(
            "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa",
            "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms",
        )
        .expect("valid keys")
    }

    #[test]
    fn every_record_owner_and_purpose_gets_its_own_aes_key() {
        let keys = ring();
        let key = keys.sealing_key();
        let a = record_key_bytes(key, Purpose::Session, b"session-a");
        let b = record_key_bytes(key, Purpose::Session, b"session-b");
        let m = record_key_bytes(key, Purpose::Membership, b"session-a");
        assert_ne!(*a, *b);
        assert_ne!(*a, *m);
        assert_eq!(*a, *record_key_bytes(key, Purpose::Session, b"session-a"));
    }

    #[test]
    fn a_sealed_record_opens_for_its_owner_only() {
        let keys = ring();
        let blob = seal(&keys, Purpose::Session, b"owner-a", b"hello").expect("seal");
        assert_eq!(
            open(&keys, Purpose::Session, b"owner-a", &blob).expect("open"),
            b"hello"
        );
        assert!(open(&keys, Purpose::Session, b"owner-b", &blob).is_err());
        assert!(open(&keys, Purpose::Membership, b"owner-a", &blob).is_err());
    }

    #[test]
    fn every_flipped_bit_makes_the_record_fail_to_open() {
        let keys = ring();
        let blob = seal(&keys, Purpose::Session, b"id", b"some session record").expect("seal");
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let err = open(&keys, Purpose::Session, b"id", &bad).expect_err("tampered");
            assert_eq!(err.kind(), crate::ErrorKind::Encryption);
        }
        assert!(open(&keys, Purpose::Session, b"id", &blob[..blob.len() - 1]).is_err());
        assert!(open(&keys, Purpose::Session, b"id", &[]).is_err());
    }

    #[test]
    fn nonces_are_unique_across_many_seals() {
        let keys = ring();
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let blob = seal(&keys, Purpose::Session, b"id", b"x").expect("seal");
            assert!(nonces.insert(blob[5..HEADER_LEN].to_vec()), "nonce reused");
        }
        assert!(keys.sealing_key().seal_count() >= 100_000);
    }
}
