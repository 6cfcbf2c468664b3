//! Building a [`SessionManager`]: keys, store, policy, directory, clock and
//! lifetimes, each with a secure default.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::directory::{Directory, StoreDirectory};
use crate::error::{Result, SessionError};
use crate::events::{EventSink, TracingEvents};
use crate::keys::KeyRing;
use crate::memo::Memo;
use crate::policy::Policy;
use crate::store::{MemoryStore, SessionStore};
use crate::token::access::{AccessTokens, VerifiedTokens};

use super::{Counters, Inner, SessionManager, cleanup};

/// The largest leeway accepted for token times.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// How many verified access tokens, and as many opened session records,
/// validation remembers by default.
pub const DEFAULT_VALIDATION_CACHE: usize = 8192;
/// The most [`SessionManagerBuilder::validation_cache`] accepts.
pub const MAX_VALIDATION_CACHE: usize = 1 << 20;
/// The largest refresh-reuse grace window accepted.
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(60);

/// Lifetimes and intervals. Every default is the specification's value or
/// the safe choice.
#[derive(Clone, Debug)]
pub struct Lifetimes {
    /// Access token lifetime. Default 24 h (the specification).
    pub access: Duration,
    /// Refresh token lifetime; each refresh starts a new one. Default 7 d.
    pub refresh: Duration,
    /// The most a session can live, however often it is refreshed.
    /// Default 30 d.
    pub absolute: Duration,
    /// Clock skew tolerated on token times. Default 30 s, at most 60 s.
    pub leeway: Duration,
    /// How long the immediately previous refresh token may be presented
    /// again and get the same successor back (two tabs refreshing at once).
    /// Default 10 s, at most 60 s; zero disables it, so any second
    /// presentation revokes the session.
    pub reuse_grace: Duration,
    /// `last_activity` is written at most once per this interval, so
    /// validation does not write on every call. Default 60 s.
    pub activity_interval: Duration,
    /// How often expired sessions are cleaned up in the background; zero
    /// disables the task. Default 1 h (the specification).
    pub cleanup_interval: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(24 * 3600),
            refresh: Duration::from_secs(7 * 24 * 3600),
            absolute: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(30),
            reuse_grace: Duration::from_secs(10),
            activity_interval: Duration::from_secs(60),
            cleanup_interval: Duration::from_secs(3600),
        }
    }
}

/// Builds a [`SessionManager`]. Only the keys are required.
#[derive(Debug)]
pub struct SessionManagerBuilder {
    keys: Option<KeyRing>,
    store: Option<Arc<dyn SessionStore>>,
    policy: Policy,
    directory: Option<Arc<dyn Directory>>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    lifetimes: Lifetimes,
    issuer: String,
    audience: Option<String>,
    validation_cache: usize,
}

impl Default for SessionManagerBuilder {
    fn default() -> Self {
        Self {
            keys: None,
            store: None,
            policy: Policy::default(),
            directory: None,
            clock: Arc::new(SystemClock),
            events: Arc::new(TracingEvents),
            lifetimes: Lifetimes::default(),
            issuer: "tessera".to_owned(),
            audience: None,
            validation_cache: DEFAULT_VALIDATION_CACHE,
        }
    }
}

impl SessionManagerBuilder {
    /// The signing and sealing keys. Required.
    pub fn keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Reads the keys from `JWT_SECRET` and `SESSION_ENCRYPTION_KEY`.
    pub fn keys_from_env(self) -> Result<Self> {
        Ok(self.keys(KeyRing::from_env()?))
    }

    /// Where sessions live. Default: a new [`MemoryStore`].
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The role policy. Default: [`crate::policy::DEFAULT_POLICY_TOML`].
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Where memberships come from. Default: a [`StoreDirectory`] over the
    /// session store.
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The clock. Default: the system clock. Tests use
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where lifecycle events go. Default: [`TracingEvents`].
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Lifetimes and intervals.
    pub fn lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// The `iss` claim written and required. Default `tessera`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `aud` claim written and required. Default: none, and a token
    /// that carries an `aud` is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How many recently verified access tokens, and as many opened session
    /// records, validation remembers: default [`DEFAULT_VALIDATION_CACHE`]
    /// of each (about 1 KiB per pair), at most [`MAX_VALIDATION_CACHE`];
    /// zero remembers nothing.
    ///
    /// A repeat of a token skips its HMAC, base64 and JSON, and a record
    /// unchanged since the last validation skips its decryption. Only pure
    /// results are remembered, each with the whole input that produced it,
    /// so nothing changes but speed: expiry is checked and the store is
    /// read on every call, and a revoked session fails at once.
    ///
    /// The price is memory, and what sits in it: the remembered access
    /// tokens are live bearer secrets (wiped when replaced) and the records
    /// are decrypted (IP address, user agent, attributes), in this process
    /// for as long as they hold their slots. The entries are rounded up to
    /// a power of two; an empty slot costs 16 bytes.
    pub fn validation_cache(mut self, entries: usize) -> Self {
        self.validation_cache = entries;
        self
    }

    /// Checks the configuration and builds the manager. If called inside a
    /// Tokio runtime and the cleanup interval is not zero, starts the
    /// background cleanup task, which stops when the last handle is dropped.
    pub fn build(self) -> Result<SessionManager> {
        let keys = self
            .keys
            .ok_or_else(|| SessionError::validation("the session manager needs keys"))?;
        let l = &self.lifetimes;
        if l.leeway > MAX_LEEWAY {
            return Err(SessionError::validation(
                "leeway must be at most 60 seconds",
            ));
        }
        if l.reuse_grace > MAX_REUSE_GRACE {
            return Err(SessionError::validation(
                "the refresh reuse grace window must be at most 60 seconds",
            ));
        }
        if l.access.is_zero() || l.refresh.is_zero() || l.absolute.is_zero() {
            return Err(SessionError::validation(
                "lifetimes must be longer than zero",
            ));
        }
        if self.issuer.is_empty() || self.issuer.len() > 256 {
            return Err(SessionError::validation(
                "the issuer must be 1 to 256 bytes",
            ));
        }
        if self
            .audience
            .as_ref()
            .is_some_and(|a| a.is_empty() || a.len() > 256)
        {
            return Err(SessionError::validation(
                "the audience must be 1 to 256 bytes",
            ));
        }
        if self.validation_cache > MAX_VALIDATION_CACHE {
            return Err(SessionError::validation(
                "the validation cache holds at most 1,048,576 entries",
            ));
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let directory = self
            .directory
            .unwrap_or_else(|| Arc::new(StoreDirectory::new(store.clone(), keys.clone())));
        let tokens = AccessTokens::new(self.issuer, l.leeway.as_secs(), l.access.as_secs())
            .with_audience(self.audience);
        let (stop, stopped) = tokio::sync::watch::channel(());
        // Whole seconds, rounded up: the grace check compares seconds.
        let window = store.write_window();
        let write_window_secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
        let inner = Arc::new(Inner {
            keys,
            store,
            write_window_secs,
            unacked: super::unacked::Unacked::default(),
            policy: self.policy,
            directory,
            clock: self.clock,
            events: self.events,
            lifetimes: self.lifetimes,
            tokens,
            verified: VerifiedTokens::new(self.validation_cache),
            opened: Memo::new(self.validation_cache),
            counters: Counters::default(),
            org_names: parking_lot::RwLock::default(),
            _stop_cleanup: stop,
        });
        let interval = inner.lifetimes.cleanup_interval;
        if !interval.is_zero() && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(cleanup::run(Arc::downgrade(&inner), interval, stopped));
        }
        Ok(SessionManager { inner })
    }
}
