//! Tessera: sessions with JWT access tokens, rotating refresh tokens and
//! sealed session records, over a pluggable store.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera::SessionError> {
//! use tessera::{KeyRing, NewSession, SessionManager, UserId, OrgId, RoleName};
//!
//! let manager = SessionManager::builder()
//!     .keys(KeyRing::from_env()?) // JWT_SECRET, SESSION_ENCRYPTION_KEY
//!     .build()?;
//! let user = UserId::parse("6f9619ff-8b86-d011-b42d-00cf4fc964ff")?;
//! let org = OrgId::parse("0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11")?;
//! manager.set_membership(&user, &org, &RoleName::parse("member")?).await?;
//!
//! let issued = manager.create_session(NewSession::new(user, org)).await?;
//! let session = manager.validate_session(issued.access_token.expose()).await?;
//! assert!(manager.has_permission(issued.access_token.expose(), "read:users").await?);
//! let rotated = manager.refresh_session(issued.refresh_token.expose()).await?;
//! manager.destroy_session(rotated.access_token.expose()).await?;
//! # let _ = session; Ok(()) }
//! ```
//!
//! Where things live:
//!
//! | module | what |
//! |---|---|
//! | [`manager`] | the [`SessionManager`] and its builder |
//! | [`token`] | access tokens (JWT) and refresh tokens |
//! | [`seal`] | AES-256-GCM sealing of session records |
//! | [`keys`] | secrets, derived keys, the key ring |
//! | [`store`] | the [`SessionStore`] contract and the memory store |
//! | [`policy`] | roles, grants and permissions |
//! | [`directory`] | memberships: who has which role in which org |
//! | [`events`] | lifecycle events for audit trails |
//! | [`error`] | [`SessionError`] and its kinds |
//! | [`backup`] | backups of any store, restorable into any store |

pub mod backup;
pub mod clock;
pub mod directory;
pub mod error;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod keys;
pub mod limit;
pub mod manager;
mod memo;
pub mod policy;
mod record;
pub mod seal;
pub mod store;
pub mod token;
mod weak;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::directory::{Directory, StoreDirectory};
pub use crate::error::{ErrorKind, Result, SessionError, StoreError, StoreErrorKind};
pub use crate::events::{EndReason, EventSink, SessionEvent, TracingEvents};
pub use crate::ids::{DeviceId, OrgId, SessionId, UserAgent, UserId};
pub use crate::keys::KeyRing;
pub use crate::manager::{
    DEFAULT_VALIDATION_CACHE, IssuedTokens, Lifetimes, MAX_VALIDATION_CACHE, NewSession,
    PageRequest, SessionFilter, SessionInfo, SessionManager, SessionManagerBuilder, SessionPage,
    SessionStats, SessionUser,
};
pub use crate::policy::{Permission, Policy, RoleName};
pub use crate::store::{MemoryStore, SessionStore};
pub use crate::token::Token;
