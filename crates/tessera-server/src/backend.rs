//! The store factory: what `TESSERA_STORE` names becomes a session store and
//! the rate limiter that goes with it.
//!
//! `memory` is the only store built in today. A shared store brings a shared
//! limiter (limits must hold across nodes), which is why the factory returns
//! both. The Redis store plugs in here: a `redis://` or `rediss://` URL
//! already parses to [`StoreSpec::Redis`], and [`open`] is the one function
//! to extend.

use std::fmt;
use std::sync::Arc;

use tessera::limit::{MemoryRateLimiter, RateLimiter};
use tessera::{MemoryStore, SessionStore};

use crate::config::ConfigError;

/// Which store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The in-process memory store: sessions end with the process.
    Memory,
    /// A Redis server or cluster at this URL.
    Redis {
        /// The URL, which may contain a password: never print it.
        url: String,
    },
}

impl StoreSpec {
    /// Parses `memory` or a `redis://` / `rediss://` URL.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s == "memory" {
            Ok(Self::Memory)
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(Self::Redis { url: s.to_owned() })
        } else {
            Err(ConfigError(
                "TESSERA_STORE must be `memory` or a redis:// URL".to_owned(),
            ))
        }
    }
}

/// Shows the scheme and host only: a URL's user info is a credential.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Redis { url } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host = host.split('/').next().unwrap_or("");
                write!(f, "{scheme}://{host}")
            }
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({self})")
    }
}

/// A session store and the rate limiter that goes with it.
#[derive(Debug)]
pub struct Backend {
    /// Where sessions and memberships live.
    pub store: Arc<dyn SessionStore>,
    /// Where rate-limit state lives.
    pub limiter: Arc<dyn RateLimiter>,
}

/// Opens the store `spec` names. Async because a networked store connects
/// (and should fail here, at start-up, if it cannot).
pub async fn open(spec: &StoreSpec) -> Result<Backend, ConfigError> {
    match spec {
        StoreSpec::Memory => Ok(Backend {
            store: Arc::new(MemoryStore::new()),
            limiter: Arc::new(MemoryRateLimiter::default()),
        }),
        StoreSpec::Redis { .. } => Err(ConfigError(format!(
            "TESSERA_STORE: the Redis store ({spec}) is not part of this build yet; use `memory`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_print_without_credentials() {
        let spec =
            StoreSpec::parse("redis://:hunter2-password@cache.internal:6379/0").expect("url");
        let shown = format!("{spec} {spec:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://cache.internal:6379"), "{shown}");
    }

    #[test]
    fn unknown_stores_are_a_clear_error() {
        let err = StoreSpec::parse("postgres://x").expect_err("unknown");
        assert!(err.0.contains("TESSERA_STORE"));
        assert_eq!(
            StoreSpec::parse(" memory ").expect("memory"),
            StoreSpec::Memory
        );
    }

    #[tokio::test]
    async fn memory_opens_and_redis_is_not_built_in_yet() {
        let b = open(&StoreSpec::Memory).await.expect("memory");
        b.store.ping().await.expect("answers");
        let err = open(&StoreSpec::parse("redis://127.0.0.1:6379").expect("url"))
            .await
            .expect_err("not built in");
        assert!(err.0.contains("TESSERA_STORE"));
    }
}
