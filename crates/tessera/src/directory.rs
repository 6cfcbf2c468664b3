//! Memberships: which role a user has in an org.
//!
//! The manager asks a [`Directory`] when a session is created. Tessera ships
//! [`StoreDirectory`], which keeps memberships sealed in the session store;
//! library users with their own user database implement [`Directory`] over it
//! and call [`SessionManager::apply_membership`](crate::SessionManager::apply_membership)
//! after a change so live sessions follow.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result, SessionError};
use crate::ids::{OrgId, UserId};
use crate::keys::KeyRing;
use crate::policy::RoleName;
use crate::seal::{self, Purpose};
use crate::store::{IndexKey, SessionStore};

/// The source of memberships.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// The role of `user` in `org`, or `None` if the user is not a member.
    async fn role(&self, user: &UserId, org: &OrgId) -> Result<Option<RoleName>>;

    /// Sets the role of `user` in `org`. Read-only directories keep the
    /// default, which refuses.
    async fn set_role(&self, user: &UserId, org: &OrgId, role: &RoleName) -> Result<()> {
        let _ = (user, org, role);
        Err(read_only())
    }

    /// Removes `user` from `org`; `Ok(true)` if they were a member.
    async fn remove(&self, user: &UserId, org: &OrgId) -> Result<bool> {
        let _ = (user, org);
        Err(read_only())
    }
}

fn read_only() -> SessionError {
    SessionError::new(
        ErrorKind::System,
        "this directory is read-only; change memberships where they are kept",
    )
}

#[derive(Serialize, Deserialize)]
struct Membership {
    user_id: UserId,
    org_id: OrgId,
    role: RoleName,
}

/// Memberships kept in the session store, sealed like session records and
/// found by a keyed hash of (user, org).
#[derive(Clone)]
pub struct StoreDirectory {
    store: Arc<dyn SessionStore>,
    keys: KeyRing,
}

impl fmt::Debug for StoreDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreDirectory")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl StoreDirectory {
    /// A directory over `store`, sealing with `keys`.
    pub fn new(store: Arc<dyn SessionStore>, keys: KeyRing) -> Self {
        Self { store, keys }
    }

    fn keys_for(&self, user: &UserId, org: &OrgId) -> impl Iterator<Item = IndexKey> + '_ {
        let (u, o) = (*user.as_bytes(), *org.as_bytes());
        self.keys
            .sealing_keys()
            .iter()
            .map(move |k| k.index_key("membership", &[&u, &o]))
    }
}

#[async_trait]
impl Directory for StoreDirectory {
    async fn role(&self, user: &UserId, org: &OrgId) -> Result<Option<RoleName>> {
        // Current key first; previous keys find memberships written before a
        // rotation.
        for key in self.keys_for(user, org) {
            let Some(sealed) = self.store.get_membership(&key).await? else {
                continue;
            };
            let plain = match seal::open(&self.keys, Purpose::Membership, &key, &sealed) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error.kind = %e.kind(), "a sealed membership failed to open; treated as absent");
                    continue;
                }
            };
            let m: Membership = postcard::from_bytes(&plain)
                .map_err(|_| SessionError::encryption("a sealed membership is malformed"))?;
            if m.user_id == *user && m.org_id == *org {
                return Ok(Some(m.role));
            }
        }
        Ok(None)
    }

    async fn set_role(&self, user: &UserId, org: &OrgId, role: &RoleName) -> Result<()> {
        let m = Membership {
            user_id: *user,
            org_id: *org,
            role: role.clone(),
        };
        let plain = postcard::to_stdvec(&m)
            .map_err(|e| SessionError::system("encoding a membership failed").with_source(e))?;
        let mut keys = self.keys_for(user, org);
        let current = keys
            .next()
            .ok_or_else(|| SessionError::system("no sealing key"))?;
        let sealed = seal::seal(&self.keys, Purpose::Membership, &current, &plain)?;
        self.store.put_membership(&current, sealed).await?;
        // A membership written under a previous key is superseded.
        for old in keys {
            self.store.remove_membership(&old).await?;
        }
        Ok(())
    }

    async fn remove(&self, user: &UserId, org: &OrgId) -> Result<bool> {
        let mut removed = false;
        for key in self.keys_for(user, org) {
            removed |= self.store.remove_membership(&key).await?;
        }
        Ok(removed)
    }
}
