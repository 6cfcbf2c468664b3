//! The plaintext of a sealed session record.
//!
//! This is everything Tessera knows about a session. It exists in clear only
//! inside the manager: it is serialized with `postcard` and sealed
//! ([`crate::seal`]) before it reaches a store.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SessionError};
use crate::ids::{DeviceId, OrgId, SessionId, UserAgent, UserId};
use crate::keys::KeyRing;
use crate::policy::RoleName;
use crate::seal::{self, Purpose};

/// Where a session's refresh token stands.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RefreshState {
    /// Generation of the current refresh token; each rotation adds one.
    pub(crate) generation: u32,
    /// `SHA-256` of the current refresh token's secret.
    pub(crate) secret_hash: [u8; 16],
    /// When the current refresh token was issued.
    pub(crate) issued_at: u64,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) user_id: UserId,
    pub(crate) org_id: OrgId,
    pub(crate) role: RoleName,
    pub(crate) device_id: Option<DeviceId>,
    pub(crate) ip_address: Option<IpAddr>,
    pub(crate) user_agent: Option<UserAgent>,
    pub(crate) created_at: u64,
    pub(crate) last_activity: u64,
    /// When the refresh token (and so the session) expires, unless refreshed.
    pub(crate) expires_at: u64,
    /// The end of the session whatever refreshes happen.
    pub(crate) absolute_expires_at: u64,
    pub(crate) refresh: RefreshState,
    pub(crate) attributes: BTreeMap<String, String>,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    pub(crate) fn seal(&self, keys: &KeyRing, id: &SessionId) -> Result<Vec<u8>> {
        // Serialized into a wiped stack buffer first, so the sealed blob is
        // allocated once at its exact size (spare capacity would be shrunk
        // by the store, fragmenting the heap) and no plaintext is left in
        // freed heap memory by a growing Vec.
        let mut scratch = zeroize::Zeroizing::new([0u8; 1024]);
        let Ok(plain) = postcard::to_slice(self, scratch.as_mut()) else {
            // Larger than any record without big custom attributes.
            let plain = zeroize::Zeroizing::new(postcard::to_stdvec(self).map_err(|e| {
                SessionError::system("encoding a session record failed").with_source(e)
            })?);
            return seal::seal(keys, Purpose::Session, id.as_bytes(), &plain);
        };
        let mut blob = Vec::with_capacity(seal::RESERVED + plain.len() + seal::TAG_BYTES);
        blob.resize(seal::RESERVED, 0);
        blob.extend_from_slice(plain);
        seal::seal_reserved(keys, Purpose::Session, id.as_bytes(), blob)
    }

    pub(crate) fn open(keys: &KeyRing, id: &SessionId, sealed: &[u8]) -> Result<Self> {
        let plain =
            zeroize::Zeroizing::new(seal::open(keys, Purpose::Session, id.as_bytes(), sealed)?);
        postcard::from_bytes(&plain)
            .map_err(|_| SessionError::encryption("a sealed record holds no valid session"))
    }
}
