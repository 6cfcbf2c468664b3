//! Keys: checked on the way in, derived once, rotated without logging anyone out.
//!
//! Two kinds of key feed Tessera:
//!
//! - The access-token signing key, of the ring's one [`SigningAlgorithm`]:
//!   by default `JWT_SECRET`, whose bytes are the HS256 key, so any JWT
//!   library verifies tokens with the same secret; or an Ed25519 (`EdDSA`)
//!   or P-256 (`ES256`) private key (`TESSERA_SIGNING_KEY`), whose public
//!   half other services fetch from the JWKS.
//! - `SESSION_ENCRYPTION_KEY`: never used raw. HKDF-SHA256 derives from it the
//!   AES-256-GCM key that seals records, the HMAC key that authenticates
//!   refresh tokens, and the HMAC key of the store's keyed-hash indexes.
//!
//! A [`KeyRing`] holds the current key of each kind and any previous keys.
//! New tokens and records always use the current key; previous keys are
//! chosen by key id (`kid`) to verify and open what was made before a
//! rotation. Key material zeroizes on drop and prints as `[redacted]`.
//! `docs/keys.md` says how to generate, rotate and retire each key.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::{hkdf, hmac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Result, SessionError};
pub use crate::token::signing::{Jwk, Jwks, SigningAlgorithm, SigningKey};

/// The shortest secret accepted, in characters.
pub const MIN_SECRET_LEN: usize = 32;

/// Seals under one key after which Tessera warns: a quarter of the 2^32
/// random-nonce limit NIST SP 800-38D sets for AES-GCM, so an operator has
/// time to rotate long before the limit.
pub const SEAL_WARN_THRESHOLD: u64 = 1 << 30;

/// The AES-GCM limit itself: past it, the chance of a repeated random
/// 96-bit nonce exceeds 2^-32.
pub const SEAL_LIMIT: u64 = 1 << 32;

// The warning must leave room to rotate: at most a quarter of the limit.
const _: () = assert!(SEAL_WARN_THRESHOLD <= SEAL_LIMIT / 4);

const HOW_TO_GENERATE: &str = "generate one with `tessera keygen` or `openssl rand -base64 48`";

/// Lower-case fragments of the placeholders that documentation and tutorials
/// tell people to replace, and of other guessable values. Each is at least
/// six characters, so a random secret contains one by chance with odds
/// around 2^-30.
const PLACEHOLDERS: &[&str] = &[
    "your_jwt_secret",
    "your-jwt-secret",
    "yourjwtsecret",
    "your_session_encryption_key",
    "your-256-bit-secret",
    "your-512-bit-secret",
    "your_secret",
    "your-secret",
    "yoursecret",
    "changeme",
    "change_me",
    "change-me",
    "changethis",
    "change_this",
    "change-this",
    "replace_me",
    "replace-me",
    "replaceme",
    "replace_with",
    "replace-with",
    "placeholder",
    "example",
    "secretkey",
    "secret_key",
    "secret-key",
    "supersecret",
    "super_secret",
    "super-secret",
    "topsecret",
    "top_secret",
    "top-secret",
    "mysecret",
    "my_secret",
    "my-secret",
    "password",
    "passw0rd",
    "p@ssw0rd",
    "letmein",
    "insecure",
    "not-secure",
    "notsecure",
    "do_not_use",
    "do-not-use",
    "dontuse",
    "for-testing",
    "for_testing",
    "for-development",
    "for_development",
    "development-secret",
    "dev-secret",
    "dev_secret",
    "test-secret",
    "test_secret",
    "testsecret",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "at-least-32",
    "at_least_32",
    "atleast32",
    "characters-long",
    "characters_long",
    "256-bit",
    "256bit",
    "qwerty",
    "asdfgh",
    "zxcvbn",
    "0123456789",
    "1234567890",
    "abcdefghij",
    "xxxxxxxx",
];

/// Whether `b` repeats a unit of at most half its length (`abcabcab...`).
fn is_periodic(b: &[u8]) -> bool {
    // Secrets are short; bound the quadratic scan anyway.
    if b.len() > 4096 {
        return false;
    }
    (1..=b.len() / 2).any(|p| (p..b.len()).all(|i| b[i] == b[i - p]))
}

/// Checks that `value`, read from the variable `name`, is a usable secret.
///
/// Refuses values shorter than [`MIN_SECRET_LEN`] characters, values made of
/// fewer than eight distinct characters (one repeated character, `abab...`),
/// values that repeat a shorter unit (`mysecretkeymysecretkey...`),
/// well-known placeholders and fragments of them, and secrets published in
/// tutorials, framework defaults and the word lists JWT crackers try first.
/// The error names the variable and says how to generate a good value; it
/// never contains the value.
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
    if distinct.len() < 8 || is_periodic(value.as_bytes()) {
        return refuse("is too repetitive to be a random secret");
    }
    // Not constant time, and need not be: this runs once at start-up on the
    // operator's own value, not on anything an attacker sends.
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

/// An HS256 key made from the bytes of `JWT_SECRET`, with a key id derived
/// from it (so the id says nothing about the secret).
fn hs256_key(secret: &str) -> Result<SigningKey> {
    let kid = hex(&kid_of(secret.as_bytes(), "tessera/v1/jwt-kid")?);
    Ok(SigningKey::hs256(secret.as_bytes(), kid))
}

/// The keys derived from one `SESSION_ENCRYPTION_KEY`.
pub struct SealingKey {
    kid: [u8; 4],
    /// Derives each record's own AES-256-GCM key (see [`crate::seal`]).
    pub(crate) seal_kdf: hmac::Key,
    pub(crate) refresh_mac: hmac::Key,
    pub(crate) index: hmac::Key,
    /// Authenticates backup files (see [`crate::backup`]).
    pub(crate) backup_mac: hmac::Key,
    seals: AtomicU64,
    warn_at: u64,
}

impl SealingKey {
    fn new(secret: &str) -> Result<Self> {
        let ikm = secret.as_bytes();
        let mut aead_key = Zeroizing::new([0u8; 32]);
        let mut refresh_key = Zeroizing::new([0u8; 32]);
        let mut index_key = Zeroizing::new([0u8; 32]);
        let mut backup_key = Zeroizing::new([0u8; 32]);
        derive(ikm, "tessera/v1/backup-mac", backup_key.as_mut())?;
        derive(ikm, "tessera/v1/seal", aead_key.as_mut())?;
        derive(ikm, "tessera/v1/refresh-mac", refresh_key.as_mut())?;
        derive(ikm, "tessera/v1/index", index_key.as_mut())?;
        Ok(Self {
            kid: kid_of(ikm, "tessera/v1/seal-kid")?,
            seal_kdf: hmac::Key::new(hmac::HMAC_SHA256, aead_key.as_ref()),
            refresh_mac: hmac::Key::new(hmac::HMAC_SHA256, refresh_key.as_ref()),
            index: hmac::Key::new(hmac::HMAC_SHA256, index_key.as_ref()),
            backup_mac: hmac::Key::new(hmac::HMAC_SHA256, backup_key.as_ref()),
            seals: AtomicU64::new(0),
            warn_at: SEAL_WARN_THRESHOLD,
        })
    }

    /// The key id stored in front of every record sealed with this key.
    pub fn kid(&self) -> [u8; 4] {
        self.kid
    }

    /// How many records this process has sealed with this key. The count is
    /// per process: a cluster's total is the sum over its nodes.
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

    /// Counts one seal. Warns at the threshold and at every doubling after
    /// it, and logs an error from the 2^32 limit on; returns whether it
    /// logged.
    pub(crate) fn count_seal(&self) -> bool {
        let n = self.seals.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.warn_at || !(n == self.warn_at || n.is_power_of_two()) {
            return false;
        }
        if n >= SEAL_LIMIT {
            tracing::error!(
                kid = %hex(&self.kid),
                seals = n,
                "SESSION_ENCRYPTION_KEY is past the AES-GCM limit of 2^32 random-nonce seals; rotate it now"
            );
        } else {
            tracing::warn!(
                kid = %hex(&self.kid),
                seals = n,
                limit = SEAL_LIMIT,
                "SESSION_ENCRYPTION_KEY is nearing the AES-GCM limit of 2^32 random-nonce seals; rotate it"
            );
        }
        true
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
#[derive(Clone)]
pub struct KeyRing {
    algorithm: SigningAlgorithm,
    signing: Arc<[SigningKey]>,
    sealing: Arc<[SealingKey]>,
    jwks: Arc<str>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .field("signing", &self.signing)
            .field("sealing", &self.sealing)
            .finish()
    }
}

/// Splits a list of keys from one variable.
fn lookup_list(text: &str) -> Vec<Zeroizing<String>> {
    // PEM blocks may be concatenated; other forms are comma-separated.
    if text.contains("-----BEGIN ") {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start..];
            let end = after
                .find("-----END ")
                .and_then(|e| after[e + 9..].find("-----").map(|f| e + 9 + f + 5))
                .unwrap_or(after.len());
            out.push(Zeroizing::new(after[..end].to_owned()));
            rest = &after[end..];
        }
        out
    } else {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Zeroizing::new(s.to_owned()))
            .collect()
    }
}

impl KeyRing {
    /// An HS256 ring from a JWT secret and an encryption key, both checked
    /// with [`check_secret`] and required to differ.
    pub fn new(jwt_secret: &str, encryption_key: &str) -> Result<Self> {
        Self::with_previous(jwt_secret, &[], encryption_key, &[])
    }

    /// An HS256 ring with previous keys, still accepted for tokens and
    /// records made before a rotation. Lists are newest first.
    pub fn with_previous(
        jwt_secret: &str,
        previous_jwt_secrets: &[&str],
        encryption_key: &str,
        previous_encryption_keys: &[&str],
    ) -> Result<Self> {
        Self::with_signing_keys(
            SigningAlgorithm::Hs256,
            jwt_secret,
            previous_jwt_secrets,
            encryption_key,
            previous_encryption_keys,
        )
    }

    /// A ring for any signing algorithm. For HS256, `signing_key` and
    /// `previous_signing_keys` are secrets, as in [`with_previous`](Self::with_previous).
    /// For EdDSA and ES256 they are private keys as PKCS#8 PEM or base64 DER
    /// (the previous ones may also be public keys: they only verify). Every
    /// signing key of the ring is of `algorithm`; lists are newest first.
    pub fn with_signing_keys(
        algorithm: SigningAlgorithm,
        signing_key: &str,
        previous_signing_keys: &[&str],
        encryption_key: &str,
        previous_encryption_keys: &[&str],
    ) -> Result<Self> {
        check_secret("SESSION_ENCRYPTION_KEY", encryption_key)?;
        for s in previous_encryption_keys {
            check_secret("SESSION_ENCRYPTION_KEY_PREVIOUS", s)?;
        }
        let signing = match algorithm {
            SigningAlgorithm::Hs256 => {
                check_secret("JWT_SECRET", signing_key)?;
                // Constant time out of habit: both are secrets, though this
                // runs once at start-up.
                if bool::from(signing_key.as_bytes().ct_eq(encryption_key.as_bytes())) {
                    return Err(SessionError::validation(format!(
                        "JWT_SECRET and SESSION_ENCRYPTION_KEY must differ; {HOW_TO_GENERATE}"
                    )));
                }
                for s in previous_signing_keys {
                    check_secret("JWT_SECRET_PREVIOUS", s)?;
                }
                std::iter::once(signing_key)
                    .chain(previous_signing_keys.iter().copied())
                    .map(hs256_key)
                    .collect::<Result<Vec<_>>>()?
            }
            _ => {
                let current =
                    SigningKey::asymmetric(algorithm, "TESSERA_SIGNING_KEY", signing_key, false)?;
                let mut keys = vec![current];
                for s in previous_signing_keys {
                    keys.push(SigningKey::asymmetric(
                        algorithm,
                        "TESSERA_SIGNING_KEY_PREVIOUS",
                        s,
                        true,
                    )?);
                }
                keys
            }
        };
        // A key listed twice (a PEM file holding both halves of a key, a
        // previous key equal to the current one) is kept once.
        let mut signing = signing;
        let mut i = 1;
        while i < signing.len() {
            if signing[..i].iter().any(|o| o.kid() == signing[i].kid()) {
                signing.remove(i);
            } else {
                i += 1;
            }
        }
        let sealing = std::iter::once(encryption_key)
            .chain(previous_encryption_keys.iter().copied())
            .map(SealingKey::new)
            .collect::<Result<Vec<_>>>()?;
        let jwks = Jwks {
            keys: signing.iter().filter_map(SigningKey::jwk).collect(),
        };
        let jwks = serde_json::to_string(&jwks)
            .map_err(|e| SessionError::system("encoding the JWKS failed").with_source(e))?;
        Ok(Self {
            algorithm,
            signing: signing.into(),
            sealing: sealing.into(),
            jwks: jwks.into(),
        })
    }

    /// A ring from the environment; see [`from_lookup`](Self::from_lookup)
    /// for the variables.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// A ring from a configuration source that maps variable names to
    /// values (the environment, for [`from_env`](Self::from_env)):
    ///
    /// - `SESSION_ENCRYPTION_KEY`, and optionally
    ///   `SESSION_ENCRYPTION_KEY_PREVIOUS` (comma-separated, newest first);
    /// - `TESSERA_SIGNING_ALG`: `HS256` (the default), `EdDSA` or `ES256`;
    /// - for HS256: `JWT_SECRET`, and optionally `JWT_SECRET_PREVIOUS`;
    /// - for EdDSA and ES256: `TESSERA_SIGNING_KEY` (PKCS#8 PEM or base64
    ///   DER) or `TESSERA_SIGNING_KEY_FILE` (a path to it), and optionally
    ///   `TESSERA_SIGNING_KEY_PREVIOUS` or `TESSERA_SIGNING_KEY_PREVIOUS_FILE`
    ///   (concatenated PEM blocks or comma-separated base64, newest first;
    ///   public keys are enough). `JWT_SECRET` is not used in these modes.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let read = |name: &str| -> Option<Zeroizing<String>> {
            lookup(name)
                .map(Zeroizing::new)
                .filter(|v| !v.trim().is_empty())
        };
        let required = |name: &str| {
            read(name).ok_or_else(|| {
                SessionError::validation(format!("{name} is not set; {HOW_TO_GENERATE}"))
            })
        };
        let from_file = |name: &str| -> Result<Option<Zeroizing<String>>> {
            if let Some(v) = read(name) {
                return Ok(Some(v));
            }
            let file_var = format!("{name}_FILE");
            match read(&file_var) {
                None => Ok(None),
                Some(path) => std::fs::read_to_string(path.trim())
                    .map(|t| Some(Zeroizing::new(t)))
                    .map_err(|e| {
                        SessionError::validation(format!(
                            "{file_var} names a file that cannot be read"
                        ))
                        .with_source(e)
                    }),
            }
        };
        let algorithm = match read("TESSERA_SIGNING_ALG") {
            Some(a) => SigningAlgorithm::parse(&a)?,
            None => SigningAlgorithm::Hs256,
        };
        let enc = required("SESSION_ENCRYPTION_KEY")?;
        let prev_enc = read("SESSION_ENCRYPTION_KEY_PREVIOUS")
            .map(|v| lookup_list(&v))
            .unwrap_or_default();
        let (current, previous) = match algorithm {
            SigningAlgorithm::Hs256 => (
                required("JWT_SECRET")?,
                read("JWT_SECRET_PREVIOUS")
                    .map(|v| lookup_list(&v))
                    .unwrap_or_default(),
            ),
            _ => {
                if read("JWT_SECRET").is_some() {
                    tracing::warn!(
                        alg = %algorithm,
                        "JWT_SECRET is set but not used: access tokens are signed with TESSERA_SIGNING_KEY"
                    );
                }
                let current = from_file("TESSERA_SIGNING_KEY")?.ok_or_else(|| {
                    SessionError::validation(format!(
                        "TESSERA_SIGNING_KEY (or TESSERA_SIGNING_KEY_FILE) is not set, and TESSERA_SIGNING_ALG is {algorithm}; see docs/keys.md to generate one"
                    ))
                })?;
                let previous = from_file("TESSERA_SIGNING_KEY_PREVIOUS")?
                    .map(|v| lookup_list(&v))
                    .unwrap_or_default();
                (current, previous)
            }
        };
        Self::with_signing_keys(
            algorithm,
            &current,
            &previous.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            &enc,
            &prev_enc.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        )
    }

    /// The algorithm every access token of this ring is signed with, and
    /// the only one its verifier accepts.
    pub fn signing_algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The key new access tokens are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing[0]
    }

    /// The signing key with this `kid`, current or previous.
    pub fn signing_key_by_kid(&self, kid: &str) -> Option<&SigningKey> {
        // Key ids are public: no need for constant time.
        self.signing.iter().find(|k| k.kid() == kid)
    }

    /// All signing keys, current first.
    pub fn signing_keys(&self) -> &[SigningKey] {
        &self.signing
    }

    /// The public signing keys as a JWK Set: empty in HS256 mode.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.signing.iter().filter_map(SigningKey::jwk).collect(),
        }
    }

    /// [`jwks`](Self::jwks) as JSON, built once: the body of
    /// `GET /.well-known/jwks.json`.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// A keyed hash of `id` for a rate limiter, under the current sealing
    /// key's index key, so a limiter kept in a shared store (Redis) never
    /// holds a raw user or session id. `kind` separates the limits (for
    /// example `"create"` and `"refresh"`). Rotating
    /// `SESSION_ENCRYPTION_KEY` changes every hash, which resets the limits
    /// once.
    pub fn limiter_key(&self, kind: &str, id: &[u8]) -> [u8; 16] {
        self.sealing_key()
            .index_key("rate-limit", &[kind.as_bytes(), &[0], id])
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

    /// Generates a fresh random secret suitable for `JWT_SECRET` or
    /// `SESSION_ENCRYPTION_KEY`: 48 bytes from the OS CSPRNG, base64url
    /// without padding (64 characters).
    pub fn generate_secret() -> Result<String> {
        use base64::Engine;
        let mut bytes = Zeroizing::new([0u8; 48]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| SessionError::system("the OS random generator failed"))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
    }

    /// Generates a signing key for `algorithm`: a secret for HS256
    /// ([`generate_secret`](Self::generate_secret)), a PKCS#8 PEM private
    /// key for EdDSA and ES256.
    pub fn generate_signing_key(algorithm: SigningAlgorithm) -> Result<Zeroizing<String>> {
        match SigningKey::generate_pem(algorithm)? {
            Some(pem) => Ok(pem),
            None => Self::generate_secret().map(Zeroizing::new),
        }
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

    #[test]
    fn repeated_units_and_placeholder_fragments_are_refused() {
        for value in [
            "mysecretkeymysecretkeymysecretkey",
            "abcdefghabcdefghabcdefghabcdefghab",
            "Xk9#Lm2@Xk9#Lm2@Xk9#Lm2@Xk9#Lm2@",
            "django-insecure-k3J8vQm2xN7pL4sW9zR6tY1uH5g",
            "prod-jwt-secret-k3J8vQm2xN7pL4sW9zR6tY1uH5g",
            "K3J8VQM2XN7PL4SW-CHANGEME-9ZR6TY1UH5GF0DCA",
            "qwertyuiop-k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa",
        ] {
            assert!(check_secret("JWT_SECRET", value).is_err(), "{value}");
        }
        // Random values of the documented forms pass.
        for _ in 0..200 {
            let s = KeyRing::generate_secret().expect("random");
            check_secret("JWT_SECRET", &s).expect("a generated secret passes");
        }
        check_secret("JWT_SECRET", JWT).expect("a random-looking test secret passes");
    }

    fn key_with_threshold(warn_at: u64) -> SealingKey {
        let mut key = SealingKey::new(ENC).expect("key");
        key.warn_at = warn_at;
        key
    }

    #[test]
    fn seals_are_counted_and_warned_about_well_before_the_limit() {
        let key = key_with_threshold(4);
        let warned: Vec<u64> = (1..=40)
            .filter(|_| key.count_seal())
            .map(|_| key.seal_count())
            .collect();
        assert_eq!(
            warned,
            [4, 8, 16, 32],
            "at the threshold, then at each doubling"
        );
        assert_eq!(key.seal_count(), 40);
    }

    #[test]
    fn the_seal_warning_reaches_the_log_and_names_no_key_material() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let key = key_with_threshold(2);
        tracing::subscriber::with_default(subscriber, || {
            key.count_seal();
            key.count_seal();
        });
        let log = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("2^32") && log.contains("rotate"), "{log}");
        assert!(log.contains(&hex(&key.kid())), "names the key by id: {log}");
        assert!(!log.contains(ENC), "{log}");
    }
}
