//! The two kinds of token a session hands out.
//!
//! - [`access`]: short-lived JWTs (HS256 by default, EdDSA or ES256 when
//!   configured), verified on every request.
//! - [`refresh`]: opaque, rotating refresh tokens, stored only as hashes.
//! - [`signing`]: the keys access tokens are signed with, and their JWKS.
//!
//! The formats cannot be confused: an access token has three dot-separated
//! segments, a refresh token starts with `tsr1_` and has none.

pub mod access;
mod jws;
pub mod refresh;
pub mod signing;

use std::fmt;

use zeroize::Zeroizing;

/// A bearer secret handed to a client: an access or refresh token string.
///
/// It prints as `[redacted]` and is wiped from memory when dropped; use
/// [`expose`](Self::expose) to read it when sending it to the client.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub(crate) fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The token string. Send it to its owner; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}
