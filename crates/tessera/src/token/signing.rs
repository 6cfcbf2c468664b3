//! Access-token signing keys: HS256 (the default), Ed25519 (`EdDSA`) and
//! ES256, and the JWK form (RFC 7517, RFC 8037) of the public ones.
//!
//! A key is bound to exactly one algorithm when it is loaded, and a
//! [`KeyRing`](crate::KeyRing) holds keys of one algorithm only. A verifier
//! therefore never chooses an algorithm from a token: it compares the
//! token's `alg` with the ring's and refuses anything else, so algorithm
//! confusion (an HMAC keyed with a public key, `none`, a downgrade) has no
//! code path to take.
//!
//! Private keys are read as PKCS#8 (PEM or base64 DER; SEC1 `EC PRIVATE KEY`
//! is also accepted for P-256). Previous keys, which only verify, may be
//! given as their public half (`PUBLIC KEY` PEM, SubjectPublicKeyInfo DER)
//! so a retired private key can be destroyed.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, SessionError};

/// How access tokens are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with the bytes of `JWT_SECRET`: the specification's
    /// default. Whoever verifies a token can also mint one.
    #[default]
    Hs256,
    /// Ed25519 (RFC 8037). Other services verify with the public key from
    /// the JWKS and hold no secret.
    EdDsa,
    /// ECDSA on P-256 with SHA-256, signatures as `r || s` (RFC 7518 §3.4).
    Es256,
}

impl SigningAlgorithm {
    /// The JOSE name, as written in the `alg` header.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "HS256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name (`HS256`, `EdDSA`, `ES256`), ignoring ASCII case:
    /// this reads configuration, not tokens.
    pub fn parse(s: &str) -> Result<Self> {
        [Self::Hs256, Self::EdDsa, Self::Es256]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                SessionError::validation("TESSERA_SIGNING_ALG must be one of HS256, EdDSA, ES256")
            })
    }

    /// The length of a signature, in bytes.
    pub(crate) fn signature_len(self) -> usize {
        match self {
            SigningAlgorithm::Hs256 => 32,
            SigningAlgorithm::EdDsa | SigningAlgorithm::Es256 => 64,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One public key in a [`Jwks`] (RFC 7517 §4, RFC 8037 §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `OKP` for Ed25519, `EC` for P-256.
    pub kty: String,
    /// `Ed25519` or `P-256`.
    pub crv: String,
    /// The public key (Ed25519) or its x coordinate (P-256), base64url.
    pub x: String,
    /// The y coordinate (P-256 only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The key id that tokens signed with this key carry in `kid`: the
    /// key's RFC 7638 thumbprint.
    pub kid: String,
    /// The one algorithm this key is used with.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JSON Web Key Set: what `GET /.well-known/jwks.json` serves. Empty in
/// HS256 mode, where no key may be published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Current key first, then previous keys.
    pub keys: Vec<Jwk>,
}

enum Material {
    // Boxed: aws-lc's HMAC context is over a kilobyte.
    Hs256(Box<hmac::Key>),
    Ed25519 {
        /// `None` for a previous key given by its public half.
        pair: Option<Ed25519KeyPair>,
        public: ParsedPublicKey,
        raw: [u8; 32],
    },
    Es256 {
        pair: Option<EcdsaKeyPair>,
        public: ParsedPublicKey,
        /// The uncompressed point: `04 || x || y`.
        raw: [u8; 65],
    },
}

/// A key that signs or verifies access tokens, with its key id and the one
/// algorithm it is used with.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    /// The encoded header Tessera writes with this key, built once.
    header: String,
    material: Material,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey {{ kid: {:?}, alg: {}, secret: [redacted] }}",
            self.kid, self.algorithm
        )
    }
}

/// DER prefixes of the SubjectPublicKeyInfo of an Ed25519 key and of a
/// P-256 key (uncompressed point): the only public-key forms accepted.
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

const HOW_TO_GENERATE_KEY: &str = "generate one with `openssl genpkey -algorithm ed25519` (EdDSA) or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` (ES256); see docs/keys.md";

/// What a key text held, once its armour is removed.
enum KeyDer {
    /// `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    Private(Zeroizing<Vec<u8>>),
    /// `PUBLIC KEY` (SubjectPublicKeyInfo).
    Public(Vec<u8>),
    /// Base64 DER without armour: private or public, decided by parsing.
    Unknown(Zeroizing<Vec<u8>>),
}

/// Reads PEM blocks or a base64 DER string. Never echoes the input.
///
/// Some tools write a private key followed by its public key in one file;
/// that yields two blocks, which the caller reconciles.
fn decode_key_text(variable: &str, text: &str) -> Result<Vec<KeyDer>> {
    let bad = || {
        SessionError::validation(format!(
            "{variable} must be a PEM key or base64 DER; {HOW_TO_GENERATE_KEY}"
        ))
    };
    let mut text = text.trim();
    if !text.starts_with("-----BEGIN ") {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
        let der = STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| URL_SAFE_NO_PAD.decode(compact.as_bytes()))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(compact.as_bytes()))
            .map_err(|_| bad())?;
        return Ok(vec![KeyDer::Unknown(Zeroizing::new(der))]);
    }
    let mut blocks = Vec::new();
    while let Some(rest) = text.strip_prefix("-----BEGIN ") {
        if blocks.len() == 4 {
            return Err(bad());
        }
        let (label, rest) = rest.split_once("-----").ok_or_else(bad)?;
        let end = format!("-----END {label}-----");
        let (body, tail) = rest.split_once(end.as_str()).ok_or_else(bad)?;
        let body: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
        let der = Zeroizing::new(STANDARD.decode(body.as_bytes()).map_err(|_| bad())?);
        blocks.push(match label {
            "PRIVATE KEY" | "EC PRIVATE KEY" => KeyDer::Private(der),
            "PUBLIC KEY" => KeyDer::Public(der.to_vec()),
            _ => return Err(bad()),
        });
        text = tail.trim_start();
    }
    if !text.is_empty() {
        return Err(bad());
    }
    Ok(blocks)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// An HS256 key from the bytes of a secret, with the key id Tessera has
    /// always derived for it.
    pub(crate) fn hs256(secret: &[u8], kid: String) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        Self::assemble(kid, SigningAlgorithm::Hs256, Material::Hs256(Box::new(key)))
    }

    /// An Ed25519 or P-256 key from the text of a configuration variable.
    /// With `public_ok`, a public key is accepted too (a previous key that
    /// only verifies).
    pub(crate) fn asymmetric(
        algorithm: SigningAlgorithm,
        variable: &str,
        text: &str,
        public_ok: bool,
    ) -> Result<Self> {
        let wrong = || {
            SessionError::validation(format!(
                "{variable} is not a valid {algorithm} {} key; {HOW_TO_GENERATE_KEY}",
                if public_ok {
                    "private or public"
                } else {
                    "private"
                }
            ))
        };
        let blocks = decode_key_text(variable, text)?;
        let private_blocks = blocks
            .iter()
            .filter(|b| matches!(b, KeyDer::Private(_)))
            .count();
        let public_blocks = blocks.len() - private_blocks;
        // At most one key of each half; a lone unarmoured DER may be either.
        if private_blocks > 1 || public_blocks > 1 {
            return Err(wrong());
        }
        let mut private: Option<&[u8]> = None;
        let mut public: Option<&[u8]> = None;
        for block in &blocks {
            match block {
                KeyDer::Private(d) => private = Some(d),
                KeyDer::Public(d) => public = Some(d),
                KeyDer::Unknown(d) => (private, public) = (Some(&d[..]), Some(&d[..])),
            }
        }
        let unarmoured = matches!(blocks.first(), Some(KeyDer::Unknown(_)));
        if public.is_some() && private.is_none() && !public_ok {
            return Err(SessionError::validation(format!(
                "{variable} must be a private key: the current key signs; {HOW_TO_GENERATE_KEY}"
            )));
        }
        // A public block next to a private one must be its own half.
        let check_pair = |raw: &[u8], prefix: &[u8]| -> Result<()> {
            match public {
                Some(spki) if private.is_some() && !unarmoured => {
                    if spki.strip_prefix(prefix) == Some(raw) {
                        Ok(())
                    } else {
                        Err(SessionError::validation(format!(
                            "{variable} holds a public key that does not belong to its private key"
                        )))
                    }
                }
                _ => Ok(()),
            }
        };
        let material = match algorithm {
            SigningAlgorithm::Hs256 => return Err(wrong()),
            SigningAlgorithm::EdDsa => {
                let pair = private.and_then(|d| Ed25519KeyPair::from_pkcs8(d).ok());
                let raw: [u8; 32] = match (&pair, public) {
                    (Some(p), _) => p.public_key().as_ref().try_into().map_err(|_| wrong())?,
                    (None, Some(spki)) if public_ok => spki
                        .strip_prefix(ED25519_SPKI_PREFIX)
                        .and_then(|k| k.try_into().ok())
                        .ok_or_else(wrong)?,
                    _ => return Err(wrong()),
                };
                if pair.is_some() {
                    check_pair(&raw, ED25519_SPKI_PREFIX)?;
                }
                let public = ParsedPublicKey::new(&signature::ED25519, raw).map_err(|_| wrong())?;
                Material::Ed25519 { pair, public, raw }
            }
            SigningAlgorithm::Es256 => {
                let pair = private.and_then(|d| {
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, d)
                        .or_else(|_| {
                            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, d)
                        })
                        .ok()
                });
                let raw: [u8; 65] = match (&pair, public) {
                    (Some(p), _) => p.public_key().as_ref().try_into().map_err(|_| wrong())?,
                    (None, Some(spki)) if public_ok => spki
                        .strip_prefix(P256_SPKI_PREFIX)
                        .and_then(|k| k.try_into().ok())
                        .ok_or_else(wrong)?,
                    _ => return Err(wrong()),
                };
                let public =
                    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, raw).map_err(|_| wrong())?;
                Material::Es256 { pair, public, raw }
            }
        };
        let kid = thumbprint(&material);
        Ok(Self::assemble(kid, algorithm, material))
    }

    fn assemble(kid: String, algorithm: SigningAlgorithm, material: Material) -> Self {
        // The kid is hex or base64url, so it needs no JSON escaping.
        let header = b64(format!(
            r#"{{"alg":"{}","typ":"JWT","kid":"{kid}"}}"#,
            algorithm.as_str()
        )
        .as_bytes());
        Self {
            kid,
            algorithm,
            header,
            material,
        }
    }

    /// The key id written in the `kid` header of tokens signed with this key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is used with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Whether this key can sign (a previous key given by its public half
    /// cannot).
    pub fn can_sign(&self) -> bool {
        match &self.material {
            Material::Hs256(_) => true,
            Material::Ed25519 { pair, .. } => pair.is_some(),
            Material::Es256 { pair, .. } => pair.is_some(),
        }
    }

    /// The base64url header Tessera writes with this key.
    pub(crate) fn encoded_header(&self) -> &str {
        &self.header
    }

    /// Signs `input` and appends the base64url signature to `out`.
    pub(crate) fn sign_into(&self, input: &[u8], out: &mut String) -> Result<()> {
        let failed = || SessionError::system("signing the access token failed");
        match &self.material {
            Material::Hs256(key) => {
                URL_SAFE_NO_PAD.encode_string(hmac::sign(key, input).as_ref(), out);
            }
            Material::Ed25519 { pair, .. } => {
                let pair = pair.as_ref().ok_or_else(failed)?;
                URL_SAFE_NO_PAD.encode_string(pair.sign(input).as_ref(), out);
            }
            Material::Es256 { pair, .. } => {
                let pair = pair.as_ref().ok_or_else(failed)?;
                let sig = pair
                    .sign(&SystemRandom::new(), input)
                    .map_err(|_| failed())?;
                let mut rs: [u8; 64] = sig.as_ref().try_into().map_err(|_| failed())?;
                low_s::normalize(&mut rs);
                URL_SAFE_NO_PAD.encode_string(rs, out);
            }
        }
        Ok(())
    }

    /// Whether `signature` (already decoded, of this algorithm's exact
    /// length) signs `input` under this key.
    pub(crate) fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            // Constant time: aws-lc's `hmac::verify` recomputes the MAC and
            // compares with `CRYPTO_memcmp`, so the time taken says nothing
            // about how many bytes of a guessed MAC were right.
            Material::Hs256(key) => hmac::verify(key, input, signature).is_ok(),
            // Public-key verification: no secret is compared.
            Material::Ed25519 { public, .. } => public.verify_sig(input, signature).is_ok(),
            // Only the low-S form: (r, n - s) verifies as well as (r, s), and
            // accepting both would give every token a second valid spelling.
            Material::Es256 { public, .. } => {
                !low_s::is_high(signature) && public.verify_sig(input, signature).is_ok()
            }
        }
    }

    /// The public key as a JWK; `None` for an HS256 key, which is secret.
    pub fn jwk(&self) -> Option<Jwk> {
        let (kty, crv, x, y) = match &self.material {
            Material::Hs256(_) => return None,
            Material::Ed25519 { raw, .. } => ("OKP", "Ed25519", b64(raw), None),
            Material::Es256 { raw, .. } => ("EC", "P-256", b64(&raw[1..33]), Some(b64(&raw[33..]))),
        };
        Some(Jwk {
            kty: kty.to_owned(),
            crv: crv.to_owned(),
            x,
            y,
            kid: self.kid.clone(),
            alg: self.algorithm.as_str().to_owned(),
            use_: "sig".to_owned(),
        })
    }

    /// A new private key for `algorithm`, as PKCS#8 PEM. `None` for HS256,
    /// whose key is a random secret ([`KeyRing::generate_secret`](crate::KeyRing::generate_secret)).
    pub fn generate_pem(algorithm: SigningAlgorithm) -> Result<Option<Zeroizing<String>>> {
        let failed = |_| SessionError::system("generating a signing key failed");
        let der = match algorithm {
            SigningAlgorithm::Hs256 => return Ok(None),
            SigningAlgorithm::EdDsa => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?,
            SigningAlgorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?,
        };
        let body = Zeroizing::new(STANDARD.encode(der.as_ref()));
        let mut pem = Zeroizing::new(String::with_capacity(body.len() + 80));
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(
                std::str::from_utf8(line)
                    .map_err(|_| SessionError::system("generating a signing key failed"))?,
            );
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(Some(pem))
    }
}

/// The RFC 7638 thumbprint of a public key: base64url of the SHA-256 of its
/// canonical JWK (required members only, in lexicographic order).
fn thumbprint(material: &Material) -> String {
    let canonical = match material {
        Material::Hs256(_) => return String::new(),
        Material::Ed25519 { raw, .. } => {
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(raw))
        }
        Material::Es256 { raw, .. } => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(&raw[1..33]),
            b64(&raw[33..])
        ),
    };
    b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// ECDSA signature malleability on P-256: for a valid `r || s`, `r || n - s`
/// is valid too. Tessera signs and accepts only the low form (`s <= n / 2`,
/// as Bitcoin's BIP 62 and many JWT libraries do), so a token has exactly
/// one valid signature.
pub(crate) mod low_s {
    /// The order of P-256, big-endian.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    /// `ORDER / 2`, rounded down, big-endian.
    const HALF_ORDER: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31,
        0x92, 0xa8,
    ];

    /// Whether the `s` half of a fixed-width `r || s` signature is above
    /// `n / 2`. A signature of another length is not judged here.
    pub(crate) fn is_high(signature: &[u8]) -> bool {
        // Equal-length big-endian byte strings compare as numbers.
        signature.len() == 64 && signature[32..] > HALF_ORDER[..]
    }

    /// Replaces a high `s` by `n - s`.
    pub(crate) fn normalize(rs: &mut [u8; 64]) {
        if !is_high(rs) {
            return;
        }
        let mut borrow = 0u16;
        for i in (0..32).rev() {
            let d = u16::from(ORDER[i])
                .wrapping_sub(u16::from(rs[32 + i]))
                .wrapping_sub(borrow);
            rs[32 + i] = (d & 0xff) as u8;
            borrow = (d >> 8) & 1;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_half_order_is_half_the_order() {
            // n is odd: 2 * (n / 2) + 1 == n, computed bytewise.
            let mut carry = 1u16;
            let mut doubled = [0u8; 32];
            for i in (0..32).rev() {
                let v = u16::from(HALF_ORDER[i]) * 2 + carry;
                doubled[i] = (v & 0xff) as u8;
                carry = v >> 8;
            }
            assert_eq!(doubled, ORDER);
        }

        #[test]
        fn normalizing_maps_high_s_to_n_minus_s_and_leaves_low_s() {
            let mut rs = [0u8; 64];
            rs[32..].copy_from_slice(&ORDER);
            rs[63] -= 1; // s = n - 1, the highest
            normalize(&mut rs);
            let mut one = [0u8; 32];
            one[31] = 1;
            assert_eq!(rs[32..], one, "n - (n - 1) = 1");
            let before = rs;
            normalize(&mut rs);
            assert_eq!(rs, before, "a low s is kept");
            let mut half = [0u8; 64];
            half[32..].copy_from_slice(&HALF_ORDER);
            assert!(!is_high(&half), "n / 2 itself is low");
            half[63] += 1;
            assert!(is_high(&half));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_thumbprint_example_matches() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
        let raw: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("b64")
            .try_into()
            .expect("32 bytes");
        let public = ParsedPublicKey::new(&signature::ED25519, raw).expect("key");
        let material = Material::Ed25519 {
            pair: None,
            public,
            raw,
        };
        assert_eq!(
            thumbprint(&material),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rfc8037_signature_example_verifies() {
        // RFC 8037 appendix A.4: an Ed25519 JWS over "Example of Ed25519 signing".
        let raw: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("b64")
            .try_into()
            .expect("32 bytes");
        let public = ParsedPublicKey::new(&signature::ED25519, raw).expect("key");
        let key = SigningKey::assemble(
            "a".into(),
            SigningAlgorithm::EdDsa,
            Material::Ed25519 {
                pair: None,
                public,
                raw,
            },
        );
        let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = URL_SAFE_NO_PAD
            .decode("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
            .expect("b64");
        assert!(key.verify(input, &sig));
        assert!(!key.verify(
            b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmG",
            &sig
        ));
        assert!(!key.can_sign());
    }

    #[test]
    fn generated_keys_load_sign_and_verify() {
        for alg in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let pem = SigningKey::generate_pem(alg)
                .expect("generated")
                .expect("pem");
            let key =
                SigningKey::asymmetric(alg, "TESSERA_SIGNING_KEY", &pem, false).expect("loads");
            assert!(key.can_sign());
            let mut sig = String::new();
            key.sign_into(b"input", &mut sig).expect("signs");
            let raw = URL_SAFE_NO_PAD.decode(&sig).expect("b64");
            assert_eq!(raw.len(), alg.signature_len());
            assert!(key.verify(b"input", &raw));
            assert!(!key.verify(b"inpuT", &raw));
            assert_eq!(key.kid().len(), 43, "a SHA-256 thumbprint");
            // The same key as unarmoured base64 DER loads to the same kid.
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let again = SigningKey::asymmetric(alg, "V", &body, false).expect("loads");
            assert_eq!(again.kid(), key.kid());
        }
    }

    #[test]
    fn a_pem_file_with_both_halves_must_hold_one_key() {
        let private = SigningKey::generate_pem(SigningAlgorithm::EdDsa)
            .expect("generated")
            .expect("pem");
        let key =
            SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", &private, false).expect("loads");
        let jwk = key.jwk().expect("public");
        let spki = |raw: &[u8]| {
            let mut der = ED25519_SPKI_PREFIX.to_vec();
            der.extend_from_slice(raw);
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                STANDARD.encode(der)
            )
        };
        let own = spki(&URL_SAFE_NO_PAD.decode(&jwk.x).expect("x"));
        let both = format!("{}{own}", private.as_str());
        let again = SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", &both, false)
            .expect("private and its own public half");
        assert_eq!(again.kid(), key.kid());
        let other = SigningKey::generate_pem(SigningAlgorithm::EdDsa)
            .expect("generated")
            .expect("pem");
        let other_key =
            SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", &other, false).expect("loads");
        let other_x = URL_SAFE_NO_PAD
            .decode(other_key.jwk().expect("public").x)
            .expect("x");
        let mismatched = format!("{}{}", private.as_str(), spki(&other_x));
        let err = SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", &mismatched, false)
            .expect_err("a public half of another key");
        assert!(err.message().contains("does not belong"), "{err}");
        let two_private = format!("{}{}", private.as_str(), other.as_str());
        assert!(SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", &two_private, false).is_err());
    }

    #[test]
    fn a_key_of_the_other_algorithm_or_garbage_is_refused_without_echo() {
        let ed = SigningKey::generate_pem(SigningAlgorithm::EdDsa)
            .expect("generated")
            .expect("pem");
        let err =
            SigningKey::asymmetric(SigningAlgorithm::Es256, "TESSERA_SIGNING_KEY", &ed, false)
                .expect_err("an Ed25519 key is not a P-256 key");
        assert!(err.message().starts_with("TESSERA_SIGNING_KEY "));
        assert!(!err.message().contains(ed.lines().nth(1).expect("line")));
        for garbage in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            assert!(
                SigningKey::asymmetric(SigningAlgorithm::EdDsa, "V", garbage, true).is_err(),
                "{garbage:?}"
            );
        }
        assert!(SigningKey::asymmetric(SigningAlgorithm::Hs256, "V", &ed, true).is_err());
    }
}
