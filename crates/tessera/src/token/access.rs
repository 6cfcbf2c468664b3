//! Access tokens: HS256 JWTs signed with the bytes of `JWT_SECRET`.
//!
//! Signing and verification go through the `jsonwebtoken` crate. Verification
//! accepts HS256 only, checks the signature before any claim is trusted,
//! requires `exp`, `iat`, `iss`, `sub` and `sid`, and refuses a token over
//! [`MAX_TOKEN_LEN`] bytes before parsing anything. A verified token only says
//! who the session was; whether it still *is* a session is the store's answer.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SessionError};
use crate::ids::{OrgId, SessionId, UserId};
use crate::keys::KeyRing;

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

/// What verification needs from the claims; the rest is not parsed.
#[derive(Deserialize)]
pub(crate) struct VerifiedClaims {
    pub(crate) sub: UserId,
    pub(crate) org: OrgId,
    pub(crate) sid: SessionId,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    #[serde(default)]
    pub(crate) nbf: Option<u64>,
}

/// Signs and verifies access tokens for one issuer.
#[derive(Clone, Debug)]
pub(crate) struct AccessTokens {
    issuer: String,
    leeway: u64,
    max_lifetime: u64,
    validation: Validation,
}

fn invalid() -> SessionError {
    SessionError::token("the access token is not valid")
}

impl AccessTokens {
    pub(crate) fn new(issuer: String, leeway: u64, max_lifetime: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway;
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.validate_aud = false;
        // Times are checked in `verify` against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            issuer,
            leeway,
            max_lifetime,
            validation,
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn sign(&self, keys: &KeyRing, claims: &AccessClaims) -> Result<String> {
        let key = keys.signing_key();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| SessionError::system("signing the access token failed").with_source(e))
    }

    /// Verifies signature, algorithm, issuer and times, against `now`.
    pub(crate) fn verify(&self, keys: &KeyRing, token: &str, now: u64) -> Result<VerifiedClaims> {
        if token.len() > MAX_TOKEN_LEN || token.is_empty() {
            return Err(invalid());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        let key = match header.kid.as_deref() {
            Some(kid) => keys.signing_key_by_kid(kid).ok_or_else(invalid)?,
            None => keys.signing_key(),
        };
        let data = jsonwebtoken::decode::<VerifiedClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| invalid())?;
        let c = data.claims;
        // Times against the injected clock, with a bounded leeway.
        if c.exp.saturating_add(self.leeway) <= now {
            return Err(SessionError::token("the access token has expired"));
        }
        if c.iat > now.saturating_add(self.leeway)
            || c.nbf
                .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
            || c.exp < c.iat
            || c.exp - c.iat > self.max_lifetime
        {
            return Err(invalid());
        }
        Ok(c)
    }
}
