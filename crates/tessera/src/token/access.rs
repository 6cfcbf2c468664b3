//! Access tokens: JWTs signed with the key ring's one algorithm (HS256 with
//! the bytes of `JWT_SECRET` by default; EdDSA or ES256 when configured).
//!
//! Verification, in this order, each step refusing with the same
//! `TOKEN_ERROR` whatever went wrong:
//!
//! 1. length: at most [`MAX_TOKEN_LEN`] bytes, before anything is parsed;
//! 2. form: a strict compact JWS ([`super::jws`]);
//! 3. `alg`: exactly the ring's algorithm, byte for byte; `kid`, if
//!    present, one of the ring's keys (absent: the current key);
//! 4. the signature, over the exact bytes received;
//! 5. only then the claims: a JSON object without repeated members, with
//!    integer `exp` and `iat` (and `nbf` if present) checked against the
//!    injected clock with a bounded leeway, a lifetime no longer than
//!    configured, `iss` equal to the configured issuer, `aud` equal to the
//!    configured audience (and absent when none is configured), and
//!    UUIDs for `sub`, `org` and `sid`.
//!
//! A forged token therefore gets the forged answer even when it is also
//! expired. A verified token only says who the session was; whether it
//! still *is* a session is the store's answer.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use aws_lc_rs::constant_time;
use zeroize::Zeroizing;

use super::jws::{self, Members, Str};
use crate::error::{Result, SessionError};
use crate::ids::{OrgId, SessionId, UserId};
use crate::keys::KeyRing;
use crate::memo::Memo;

/// The largest access token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims Tessera writes into an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: UserId,
    /// The org id.
    pub org: OrgId,
    /// The session id.
    pub sid: SessionId,
    /// The user's role when the token was issued.
    pub role: String,
    /// The role's grants when the token was issued. Informational: checks use
    /// the session's current role, so a demotion applies at once.
    pub permissions: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Issuer.
    pub iss: String,
    /// Token id.
    pub jti: String,
}

/// What is signed: the claims, plus the audience when one is configured.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    claims: &'a AccessClaims,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// What verification reads from the claims; the rest is checked for form
/// only.
pub(crate) struct VerifiedClaims {
    pub(crate) sub: UserId,
    pub(crate) org: OrgId,
    pub(crate) sid: SessionId,
    pub(crate) exp: u64,
}

impl fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedClaims")
            .field("sid", &self.sid)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// The claims as parsed, before their values are checked.
struct RawClaims<'de> {
    sub: Option<UserId>,
    org: Option<OrgId>,
    sid: Option<SessionId>,
    iat: Option<u64>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iss: Option<Cow<'de, str>>,
    aud: Option<Cow<'de, str>>,
}

impl<'de> Deserialize<'de> for RawClaims<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawClaims<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWT claims object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawClaims<'de>, A::Error> {
                let mut m = Members::new();
                let mut c = RawClaims {
                    sub: None,
                    org: None,
                    sid: None,
                    iat: None,
                    exp: None,
                    nbf: None,
                    iss: None,
                    aud: None,
                };
                // Numbers are u64: floats, negatives, strings, null and
                // values past u64 do not deserialize.
                while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
                    match &*name {
                        "sub" => {
                            m.known(0)?;
                            c.sub = Some(map.next_value()?);
                        }
                        "org" => {
                            m.known(1)?;
                            c.org = Some(map.next_value()?);
                        }
                        "sid" => {
                            m.known(2)?;
                            c.sid = Some(map.next_value()?);
                        }
                        "iat" => {
                            m.known(3)?;
                            c.iat = Some(map.next_value()?);
                        }
                        "exp" => {
                            m.known(4)?;
                            c.exp = Some(map.next_value()?);
                        }
                        "nbf" => {
                            m.known(5)?;
                            c.nbf = Some(map.next_value()?);
                        }
                        "iss" => {
                            m.known(6)?;
                            c.iss = Some(map.next_value::<Str<'de>>()?.0);
                        }
                        "aud" => {
                            m.known(7)?;
                            c.aud = Some(map.next_value::<Str<'de>>()?.0);
                        }
                        // Written by Tessera, not needed to verify.
                        "role" | "permissions" | "jti" => {
                            m.known(match &*name {
                                "role" => 8,
                                "permissions" => 9,
                                _ => 10,
                            })?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            m.other(name)?;
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

/// Signs and verifies access tokens for one issuer and audience.
#[derive(Clone, Debug)]
pub(crate) struct AccessTokens {
    issuer: String,
    audience: Option<String>,
    leeway: u64,
    max_lifetime: u64,
}

fn invalid() -> SessionError {
    SessionError::token("the access token is not valid")
}

impl AccessTokens {
    pub(crate) fn new(issuer: String, leeway: u64, max_lifetime: u64) -> Self {
        Self {
            issuer,
            audience: None,
            leeway,
            max_lifetime,
        }
    }

    /// Writes `aud` into every token and requires it on verification.
    pub(crate) fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn sign(&self, keys: &KeyRing, claims: &AccessClaims) -> Result<String> {
        let key = keys.signing_key();
        let payload = serde_json::to_vec(&Payload {
            claims,
            aud: self.audience.as_deref(),
        })
        .map_err(|e| SessionError::system("encoding the access token failed").with_source(e))?;
        let header = key.encoded_header();
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 92);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let input_len = token.len();
        token.push('.');
        let mut signature = String::with_capacity(88);
        key.sign_into(&token.as_bytes()[..input_len], &mut signature)?;
        token.push_str(&signature);
        Ok(token)
    }

    /// Verifies form, algorithm, key and signature, then the claims against
    /// `now`.
    pub(crate) fn verify(&self, keys: &KeyRing, token: &str, now: u64) -> Result<VerifiedClaims> {
        self.check_time(self.verify_untimed(keys, token)?, now)
    }

    /// Everything [`Self::verify`] checks that does not depend on the clock:
    /// a pure function of the token, the ring and this configuration.
    fn verify_untimed(&self, keys: &KeyRing, token: &str) -> Result<Untimed> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(invalid());
        }
        let segments = jws::split(token).ok_or_else(invalid)?;
        verify_signature(keys, &segments).ok_or_else(invalid)?;
        // Signature checked: from here on the bytes are Tessera's own.
        let payload = jws::decode(segments.payload).ok_or_else(invalid)?;
        let text = std::str::from_utf8(&payload).map_err(|_| invalid())?;
        let c: RawClaims<'_> = serde_json::from_str(text).map_err(|_| invalid())?;
        let (Some(sub), Some(org), Some(sid), Some(iat), Some(exp), Some(iss)) =
            (c.sub, c.org, c.sid, c.iat, c.exp, c.iss)
        else {
            return Err(invalid());
        };
        // Byte equality: no prefix, case or Unicode folding.
        if *iss != *self.issuer {
            return Err(invalid());
        }
        if c.aud.as_deref() != self.audience.as_deref() {
            return Err(invalid());
        }
        if exp < iat || exp - iat > self.max_lifetime {
            return Err(invalid());
        }
        Ok(Untimed {
            sub,
            org,
            sid,
            iat,
            exp,
            nbf: c.nbf,
        })
    }

    fn check_time(&self, c: Untimed, now: u64) -> Result<VerifiedClaims> {
        if c.exp.saturating_add(self.leeway) <= now {
            return Err(SessionError::token("the access token has expired"));
        }
        let horizon = now.saturating_add(self.leeway);
        if c.iat > horizon || c.nbf.is_some_and(|nbf| nbf > horizon) {
            return Err(invalid());
        }
        Ok(VerifiedClaims {
            sub: c.sub,
            org: c.org,
            sid: c.sid,
            exp: c.exp,
        })
    }
}

/// The claims of a token whose form, signature, issuer, audience and
/// lifetime are good, before the clock is consulted.
#[derive(Clone, Copy)]
struct Untimed {
    sub: UserId,
    org: OrgId,
    sid: SessionId,
    iat: u64,
    exp: u64,
    nbf: Option<u64>,
}

/// A verified token and its claims, as remembered by [`VerifiedTokens`].
struct Remembered {
    /// The whole token, wiped when the entry is replaced.
    token: Zeroizing<Box<[u8]>>,
    claims: Untimed,
}

/// [`AccessTokens::verify`] with a memory of recently verified tokens (see
/// [`crate::memo`]): a repeat of a token costs a constant-time comparison
/// instead of an HMAC, base64 and JSON. The clock is checked on every call.
///
/// It belongs to one key ring and one [`AccessTokens`]: the manager that
/// owns it never calls it with another.
pub(crate) struct VerifiedTokens {
    memo: Memo<Remembered>,
}

impl fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("capacity", &self.memo.capacity())
            .finish()
    }
}

impl VerifiedTokens {
    /// Remembers up to `capacity` tokens (rounded up to a power of two); 0
    /// remembers none.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            memo: Memo::new(capacity),
        }
    }

    pub(crate) fn verify(
        &self,
        tokens: &AccessTokens,
        keys: &KeyRing,
        token: &str,
        now: u64,
    ) -> Result<VerifiedClaims> {
        let bytes = token.as_bytes();
        // The tail of the signature picks the slot; the whole token decides
        // a hit.
        let key = &bytes[bytes.len().saturating_sub(16)..];
        let remembered = self.memo.get(key, |r| {
            // Constant time: the remembered token is a live bearer secret,
            // so how much of it a guess matched must not show. (The length
            // is not secret: every token of one ring has nearly the same.)
            constant_time::verify_slices_are_equal(&r.token, bytes)
                .is_ok()
                .then_some(r.claims)
        });
        let claims = match remembered {
            Some(c) => c,
            None => {
                let c = tokens.verify_untimed(keys, token)?;
                // Only tokens that verified are remembered.
                self.memo.put(
                    key,
                    Remembered {
                        token: Zeroizing::new(bytes.into()),
                        claims: c,
                    },
                );
                c
            }
        };
        tokens.check_time(claims, now)
    }
}

/// Checks the header against the ring and the signature against the key
/// it names. `None` for anything but a valid signature by one of the ring's
/// keys, in the ring's algorithm.
fn verify_signature(keys: &KeyRing, segments: &jws::Segments<'_>) -> Option<()> {
    let mut header_buf = [0u8; jws::MAX_HEADER_LEN * 3 / 4 + 3];
    let header = jws::parse_header(segments.header, &mut header_buf)?;
    let algorithm = keys.signing_algorithm();
    // The ring holds keys of one algorithm; the token does not get a say.
    if *header.alg != *algorithm.as_str() {
        return None;
    }
    let key = match header.kid.as_deref() {
        Some(kid) => keys.signing_key_by_kid(kid)?,
        None => keys.signing_key(),
    };
    let mut sig = [0u8; 64 + 2];
    let n = jws::decode_into(segments.signature, &mut sig)?;
    if n != algorithm.signature_len() {
        return None;
    }
    key.verify(segments.signing_input, &sig[..n]).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7515 appendix A.1: an HS256 JWS from another issuer, with the
    /// claims `iss: joe`, `exp: 1300819380` and no `kid`.
    const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC7515_A1_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

    /// The registered claims of a foreign token, checked the way Tessera
    /// checks its own: for the positive control only.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Foreign {
        iss: String,
        exp: u64,
        #[serde(rename = "http://example.com/is_root")]
        is_root: bool,
    }

    fn rfc_key() -> crate::token::signing::SigningKey {
        // The JWK `k` is the base64url of the raw key bytes, which are not
        // UTF-8; build the HMAC key from the bytes directly.
        let bytes = URL_SAFE_NO_PAD.decode(RFC7515_A1_KEY).expect("b64");
        crate::token::signing::SigningKey::hs256(&bytes, "rfc".into())
    }

    #[test]
    fn rfc7515_a1_hs256_example_verifies_with_its_key_and_a_fixed_clock() {
        let key = rfc_key();
        let segments = jws::split(RFC7515_A1_TOKEN).expect("three segments");
        let mut buf = [0u8; jws::MAX_HEADER_LEN * 3 / 4 + 3];
        let header = jws::parse_header(segments.header, &mut buf).expect("strict header");
        assert_eq!(header.alg, "HS256");
        assert!(header.kid.is_none());
        let mut sig = [0u8; 66];
        let n = jws::decode_into(segments.signature, &mut sig).expect("canonical");
        assert!(key.verify(segments.signing_input, &sig[..n]), "signature");
        let payload = jws::decode(segments.payload).expect("canonical");
        let claims: Foreign = serde_json::from_slice(&payload).expect("claims");
        assert_eq!(claims.iss, "joe");
        assert!(claims.is_root);
        let now = 1_300_819_000;
        assert!(claims.exp > now, "not expired at the fixed clock");
        // And the control's control: one changed signing-input byte fails.
        let mut input = segments.signing_input.to_vec();
        input[10] ^= 1;
        assert!(!key.verify(&input, &sig[..n]));
    }
}
