//! Keys: checked on the way in, derived once, rotated without logging anyone out.
//!
//! Two secrets feed Tessera, as in the specification:
//!
//! - `JWT_SECRET`: its bytes are the HS256 key of access tokens, so any JWT
//!   library verifies them with the same secret.
//! - `SESSION_ENCRYPTION_KEY`: never used raw. HKDF-SHA256 derives from it the
//!   AES-256-GCM key that seals records, the HMAC key that authenticates
//!   refresh tokens, and the HMAC key of the store's keyed-hash indexes.
//!
//! A [`KeyRing`] holds the current key of each kind and any previous keys.
//! New tokens and records always use the current key; previous keys are
//! chosen by key id (`kid`) to verify and open what was made before a
//! rotation. Key material zeroizes on drop and prints as `[redacted]`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::{aead, hkdf, hmac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use zeroize::Zeroizing;

use crate::error::{Result, SessionError};

/// The shortest secret accepted, in characters.
pub const MIN_SECRET_LEN: usize = 32;

/// Seals under one key after which Tessera warns: a quarter of the 2^32
/// random-nonce limit NIST SP 800-38D sets for AES-GCM.
pub const SEAL_WARN_THRESHOLD: u64 = 1 << 30;

const HOW_TO_GENERATE: &str = "generate one with `tessera keygen` or `openssl rand -base64 48`";

/// Lower-case fragments of the placeholders that documentation and tutorials
/// tell people to replace, and of other guessable values.
const PLACEHOLDERS: &[&str] = &[
    "your_jwt_secret",
    "your_session_encryption_key",
    "your-256-bit-secret",
    "your_secret",
    "changeme",
    "change_me",
    "change-me",
    "replace_me",
    "replaceme",
    "placeholder",
    "example",
    "secretkey",
    "secret_key",
    "supersecret",
    "password",
    "qwerty",
    "0123456789",
    "abcdefghij",
    "xxxxxxxx",
];

/// Checks that `value`, read from the variable `name`, is a usable secret.
///
/// Refuses values shorter than [`MIN_SECRET_LEN`] characters, values made of
/// fewer than eight distinct characters (one repeated character, `abab...`),
/// and well-known placeholders. The error names the variable and says how to
/// generate a good value; it never contains the value.
pub fn check_secret(name: &str, value: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(SessionError::validation(format!(
            "{name} {why}; {HOW_TO_GENERATE}"
        )))
    };
    if value.chars().count() < MIN_SECRET_LEN {
        return refuse(&format!("must be at least {MIN_SECRET_LEN} characters"));
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return refuse("is too repetitive to be a random secret");
    }
    let lower = value.to_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) || crate::weak::is_known_weak(value) {
        return refuse("is a well-known placeholder or weak value");
    }
    Ok(())
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(ikm: &[u8], info: &str, out: &mut [u8]) -> Result<()> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tessera/v1");
    let prk = salt.extract(ikm);
    let info = [info.as_bytes()];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| SessionError::system("key derivation failed"))
}

fn kid_of(ikm: &[u8], info: &str) -> Result<[u8; 4]> {
    let mut kid = [0u8; 4];
    derive(ikm, info, &mut kid)?;
    Ok(kid)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An HS256 key for access tokens, made from the bytes of `JWT_SECRET`.
pub struct SigningKey {
    kid: String,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    // Kept so the raw bytes are wiped when the key is dropped.
    _secret: Zeroizing<Vec<u8>>,
}

impl SigningKey {
    fn new(secret: &str) -> Result<Self> {
        let bytes = Zeroizing::new(secret.as_bytes().to_vec());
        let kid = hex(&kid_of(&bytes, "tessera/v1/jwt-kid")?);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_secret(&bytes),
            decoding: DecodingKey::from_secret(&bytes),
            _secret: bytes,
        })
    }

    /// The key id written in the `kid` header of tokens signed with this key.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey {{ kid: {:?}, secret: [redacted] }}",
            self.kid
        )
    }
}

/// The keys derived from one `SESSION_ENCRYPTION_KEY`.
pub struct SealingKey {
    kid: [u8; 4],
    pub(crate) aead: aead::RandomizedNonceKey,
    pub(crate) refresh_mac: hmac::Key,
    pub(crate) index: hmac::Key,
    seals: AtomicU64,
}

impl SealingKey {
    fn new(secret: &str) -> Result<Self> {
        let ikm = secret.as_bytes();
        let mut aead_key = Zeroizing::new([0u8; 32]);
        let mut refresh_key = Zeroizing::new([0u8; 32]);
        let mut index_key = Zeroizing::new([0u8; 32]);
        derive(ikm, "tessera/v1/seal", aead_key.as_mut())?;
        derive(ikm, "tessera/v1/refresh-mac", refresh_key.as_mut())?;
        derive(ikm, "tessera/v1/index", index_key.as_mut())?;
        let aead = aead::RandomizedNonceKey::new(&aead::AES_256_GCM, aead_key.as_ref())
            .map_err(|_| SessionError::system("AES-256-GCM key setup failed"))?;
        Ok(Self {
            kid: kid_of(ikm, "tessera/v1/seal-kid")?,
            aead,
            refresh_mac: hmac::Key::new(hmac::HMAC_SHA256, refresh_key.as_ref()),
            index: hmac::Key::new(hmac::HMAC_SHA256, index_key.as_ref()),
            seals: AtomicU64::new(0),
        })
    }

    /// The key id stored in front of every record sealed with this key.
    pub fn kid(&self) -> [u8; 4] {
        self.kid
    }

    /// How many records this process has sealed with this key.
    pub fn seal_count(&self) -> u64 {
        self.seals.load(Ordering::Relaxed)
    }

    /// A keyed hash of `parts` under this key's index key, labelled so
    /// hashes of different kinds of value never collide.
    pub(crate) fn index_key(&self, label: &str, parts: &[&[u8]]) -> crate::store::IndexKey {
        let mut ctx = hmac::Context::with_key(&self.index);
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        for part in parts {
            ctx.update(part);
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&ctx.sign().as_ref()[..16]);
        out
    }

    pub(crate) fn count_seal(&self) {
        let n = self.seals.fetch_add(1, Ordering::Relaxed) + 1;
        if n == SEAL_WARN_THRESHOLD || (n > SEAL_WARN_THRESHOLD && n.is_power_of_two()) {
            tracing::warn!(
                kid = %hex(&self.kid),
                seals = n,
                "SESSION_ENCRYPTION_KEY has sealed over 2^30 records; rotate it before 2^32"
            );
        }
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealingKey {{ kid: {:?}, key: [redacted] }}",
            hex(&self.kid)
        )
    }
}

/// The current and previous keys of both kinds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KeyRing {
    signing: Arc<[SigningKey]>,
    sealing: Arc<[SealingKey]>,
}

impl KeyRing {
    /// A ring from a JWT secret and an encryption key, both checked with
    /// [`check_secret`] and required to differ.
    pub fn new(jwt_secret: &str, encryption_key: &str) -> Result<Self> {
        Self::with_previous(jwt_secret, &[], encryption_key, &[])
    }

    /// A ring with previous keys, still accepted for tokens and records made
    /// before a rotation. Lists are newest first.
    pub fn with_previous(
        jwt_secret: &str,
        previous_jwt_secrets: &[&str],
        encryption_key: &str,
        previous_encryption_keys: &[&str],
    ) -> Result<Self> {
        check_secret("JWT_SECRET", jwt_secret)?;
        check_secret("SESSION_ENCRYPTION_KEY", encryption_key)?;
        if jwt_secret == encryption_key {
            return Err(SessionError::validation(format!(
                "JWT_SECRET and SESSION_ENCRYPTION_KEY must differ; {HOW_TO_GENERATE}"
            )));
        }
        for s in previous_jwt_secrets {
            check_secret("JWT_SECRET_PREVIOUS", s)?;
        }
        for s in previous_encryption_keys {
            check_secret("SESSION_ENCRYPTION_KEY_PREVIOUS", s)?;
        }
        let signing = std::iter::once(jwt_secret)
            .chain(previous_jwt_secrets.iter().copied())
            .map(SigningKey::new)
            .collect::<Result<Vec<_>>>()?;
        let sealing = std::iter::once(encryption_key)
            .chain(previous_encryption_keys.iter().copied())
            .map(SealingKey::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            signing: signing.into(),
            sealing: sealing.into(),
        })
    }

    /// A ring from the environment: `JWT_SECRET` and `SESSION_ENCRYPTION_KEY`,
    /// and optionally `JWT_SECRET_PREVIOUS` and `SESSION_ENCRYPTION_KEY_PREVIOUS`
    /// (comma-separated, newest first).
    pub fn from_env() -> Result<Self> {
        let read = |name: &str| {
            std::env::var(name).map_err(|_| {
                SessionError::validation(format!("{name} is not set; {HOW_TO_GENERATE}"))
            })
        };
        let list = |name: &str| -> Vec<String> {
            std::env::var(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let jwt = Zeroizing::new(read("JWT_SECRET")?);
        let enc = Zeroizing::new(read("SESSION_ENCRYPTION_KEY")?);
        let prev_jwt = list("JWT_SECRET_PREVIOUS");
        let prev_enc = list("SESSION_ENCRYPTION_KEY_PREVIOUS");
        let ring = Self::with_previous(
            &jwt,
            &prev_jwt.iter().map(String::as_str).collect::<Vec<_>>(),
            &enc,
            &prev_enc.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        for mut s in prev_jwt.into_iter().chain(prev_enc) {
            zeroize::Zeroize::zeroize(&mut s);
        }
        ring
    }

    /// The key new access tokens are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing[0]
    }

    /// The signing key with this `kid`, current or previous.
    pub fn signing_key_by_kid(&self, kid: &str) -> Option<&SigningKey> {
        self.signing.iter().find(|k| k.kid == kid)
    }

    /// The key new records are sealed with.
    pub fn sealing_key(&self) -> &SealingKey {
        &self.sealing[0]
    }

    /// The sealing key with this `kid`, current or previous.
    pub fn sealing_key_by_kid(&self, kid: [u8; 4]) -> Option<&SealingKey> {
        self.sealing.iter().find(|k| k.kid == kid)
    }

    /// All sealing keys, current first.
    pub fn sealing_keys(&self) -> &[SealingKey] {
        &self.sealing
    }

    /// Generates a fresh random secret suitable for either variable:
    /// 48 bytes from the OS CSPRNG, base64url without padding (64 characters).
    pub fn generate_secret() -> Result<String> {
        use base64::Engine;
        let mut bytes = Zeroizing::new([0u8; 48]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| SessionError::system("the OS random generator failed"))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa";
    const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms";

    #[test]
    fn weak_secrets_are_refused_with_the_variable_named() {
        for (value, why) in [
            ("short", "at least 32"),
            (&"a".repeat(64) as &str, "repetitive"),
            (&"ab".repeat(32), "repetitive"),
            ("your_jwt_secret_at_least_32_characters_long", "placeholder"),
            (
                "your_session_encryption_key_at_least_32_characters_long",
                "placeholder",
            ),
        ] {
            let err = check_secret("JWT_SECRET", value).expect_err(value);
            assert!(err.message().starts_with("JWT_SECRET "), "{err}");
            assert!(err.message().contains(why), "{err}");
            assert!(err.message().contains("tessera keygen"), "{err}");
            assert!(!err.message().contains(value), "message echoes the value");
        }
    }

    #[test]
    fn the_two_secrets_must_differ() {
        let err = KeyRing::new(JWT, JWT).expect_err("same secret twice");
        assert!(err.message().contains("must differ"));
    }

    #[test]
    fn debug_output_redacts_key_material() {
        let ring = KeyRing::new(JWT, ENC).expect("valid keys");
        let debug = format!("{ring:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains(JWT) && !debug.contains(ENC));
    }

    #[test]
    fn generated_secrets_pass_the_checks_and_differ() {
        let a = KeyRing::generate_secret().expect("random");
        let b = KeyRing::generate_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(KeyRing::new(&a, &b).is_ok());
    }

    #[test]
    fn previous_keys_are_found_by_kid() {
        let old = "Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc";
        let ring = KeyRing::with_previous(JWT, &[old], ENC, &[]).expect("valid keys");
        let old_ring = KeyRing::new(old, ENC).expect("valid keys");
        let kid = old_ring.signing_key().kid();
        assert_ne!(ring.signing_key().kid(), kid);
        assert!(ring.signing_key_by_kid(kid).is_some());
        assert!(ring.signing_key_by_kid("00000000").is_none());
    }
}
