//! The store factory: what `TESSERA_STORE` names becomes a session store and
//! the rate limiter that goes with it.
//!
//! Without `TESSERA_STORE`, `serve` keeps sessions in the embedded store: a
//! SQLite file under `TESSERA_DATA_DIR` (default `./tessera-data`), locked
//! by the process that serves from it. `--dev` stays in memory.
//!
//! A shared store brings a shared limiter (limits must hold across nodes),
//! which is why the factory returns both: `memory` and the embedded store
//! pair with a per-process limiter (one node owns the file); a `redis://`, `rediss://`,
//! `redis+cluster://` or `rediss+cluster://` URL pairs the Redis store with
//! a limiter whose state lives in the same Redis, so several `tessera
//! serve` nodes share sessions, counts and limits.
//!
//! Limiter keys reach the limiter only through [`KeyedLimiter`], which
//! replaces them with keyed hashes: the service's keys carry raw user and
//! session ids, and a shared limiter's state is readable by whoever can read
//! Redis.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tessera::limit::{Decision, MemoryRateLimiter, RateLimiter};
use tessera::store::Capacity;
use tessera::{KeyRing, MemoryStore, SessionStore, StoreError};
use tessera_postgres::{PostgresOptions, PostgresStore};
use tessera_redis::{RedisOptions, RedisStore};
use tessera_sqlite::{DataDir, SqliteOptions, SqliteStore};

use crate::config::ConfigError;

/// The Redis key prefix when none is configured.
pub const DEFAULT_REDIS_PREFIX: &str = "tessera:";

const REDIS_SCHEMES: [&str; 4] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
];

/// The data directory of the embedded store when none is configured,
/// relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "tessera-data";

const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// Which store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The in-process memory store: sessions end with the process.
    Memory,
    /// The embedded SQLite store in this data directory: the default.
    Embedded {
        /// The data directory (`TESSERA_DATA_DIR`).
        dir: PathBuf,
    },
    /// A Redis server or cluster at this URL.
    Redis {
        /// The URL, which may contain a password: never print it.
        url: String,
        /// Prepended to every key, so deployments can share one Redis.
        prefix: String,
        /// For `rediss://`: a PEM file of the CA to trust instead of the
        /// system's roots, for a Redis whose certificate a private CA issued.
        ca: Option<PathBuf>,
    },
    /// A PostgreSQL database at this URL.
    Postgres {
        /// The URL, which may contain a password: never print it.
        url: String,
        /// A schema of its own for the tables (`TESSERA_POSTGRES_SCHEMA`),
        /// or the connection's default.
        schema: Option<String>,
    },
}

impl StoreSpec {
    /// Parses `memory` or a Redis URL (`redis://`, `rediss://`,
    /// `redis+cluster://`, `rediss+cluster://`), with the default prefix.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        let scheme = s.get(..s.find("://").map_or(0, |i| i + 3)).unwrap_or("");
        if s == "memory" {
            Ok(Self::Memory)
        } else if s == "embedded" {
            Ok(Self::embedded())
        } else if POSTGRES_SCHEMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(scheme))
        {
            Ok(Self::Postgres {
                url: s.to_owned(),
                schema: None,
            })
        } else if REDIS_SCHEMES.iter().any(|r| r.eq_ignore_ascii_case(scheme)) {
            Ok(Self::Redis {
                url: s.to_owned(),
                prefix: DEFAULT_REDIS_PREFIX.to_owned(),
                ca: None,
            })
        } else {
            Err(ConfigError(
                "TESSERA_STORE must be `embedded`, `memory`, a postgres:// or postgresql:// \
                 URL, or a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL"
                    .to_owned(),
            ))
        }
    }

    /// The embedded store in the default data directory.
    pub fn embedded() -> Self {
        Self::Embedded {
            dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }

    /// The embedded store in `dir`. Only the embedded store has a data
    /// directory, so naming one with another store is a configuration
    /// error rather than a setting silently ignored.
    pub fn with_data_dir(self, dir: PathBuf) -> Result<Self, ConfigError> {
        match self {
            Self::Embedded { .. } => Ok(Self::Embedded { dir }),
            _ => Err(ConfigError(
                "TESSERA_DATA_DIR applies to the embedded store only; unset it or TESSERA_STORE"
                    .to_owned(),
            )),
        }
    }

    /// The same PostgreSQL store with its tables in `schema`. Only
    /// PostgreSQL has schemas, so naming one with another store is a
    /// configuration error.
    pub fn with_postgres_schema(self, schema: String) -> Result<Self, ConfigError> {
        match self {
            Self::Postgres { url, .. } => Ok(Self::Postgres {
                url,
                schema: Some(schema),
            }),
            _ => Err(ConfigError(
                "TESSERA_POSTGRES_SCHEMA applies to a PostgreSQL store (postgres://) only"
                    .to_owned(),
            )),
        }
    }

    /// Whether sessions on this store outlive the process.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Self::Memory)
    }

    /// The same store with keys under `prefix` (Redis only; `memory` has no
    /// keys to prefix).
    #[must_use]
    pub fn with_prefix(self, prefix: &str) -> Self {
        match self {
            Self::Redis { url, ca, .. } => Self::Redis {
                url,
                prefix: prefix.to_owned(),
                ca,
            },
            memory => memory,
        }
    }

    /// The same store trusting the CA in the PEM file `ca`. Only a TLS
    /// Redis URL (`rediss://`, `rediss+cluster://`) has a certificate to
    /// check, so anything else is a configuration error rather than a
    /// setting silently ignored.
    pub fn with_ca(self, ca: PathBuf) -> Result<Self, ConfigError> {
        match self {
            Self::Redis { url, prefix, .. } if is_tls_url(&url) => Ok(Self::Redis {
                url,
                prefix,
                ca: Some(ca),
            }),
            _ => Err(ConfigError(
                "TESSERA_REDIS_CA applies to a TLS Redis store (rediss:// or rediss+cluster://) only"
                    .to_owned(),
            )),
        }
    }
}

fn is_tls_url(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("rediss+cluster")
}

/// Shows the scheme, the hosts and the prefix only: a URL's user info is a
/// credential.
impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Embedded { dir } => write!(
                f,
                "embedded (SQLite file {})",
                DataDir::database_in(dir).display()
            ),
            StoreSpec::Postgres { url, schema } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = rest.split('?').next().unwrap_or("");
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                write!(f, "{scheme}://{host}")?;
                if let Some(schema) = schema {
                    write!(f, " (schema {schema})")?;
                }
                Ok(())
            }
            StoreSpec::Redis { url, prefix, ca } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host = host.split('/').next().unwrap_or("");
                write!(f, "{scheme}://{host} (key prefix {prefix:?}")?;
                if let Some(ca) = ca {
                    write!(f, ", CA {}", ca.display())?;
                }
                f.write_str(")")
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
    /// Where rate-limit state lives. Wrap it in a [`KeyedLimiter`] before
    /// handing it raw ids.
    pub limiter: Arc<dyn RateLimiter>,
}

/// Who opens the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `serve`: the embedded store's data directory is created if needed
    /// and locked, so a second service on it is refused.
    Serve,
    /// A command that works beside a running service (`backup`, `restore`,
    /// `check-config`): the embedded store is opened without its lock. With
    /// `create`, a missing data directory or database is made; without, a
    /// missing database is an error (a backup of nothing is a mistake).
    Tool {
        /// Whether a missing database may be created.
        create: bool,
    },
}

/// Opens the store `spec` names, for `serve`.
pub async fn open(spec: &StoreSpec) -> Result<Backend, ConfigError> {
    open_for(spec, Access::Serve).await
}

/// Opens the embedded store in `dir`.
fn open_embedded(dir: &std::path::Path, access: Access) -> Result<SqliteStore, ConfigError> {
    let failed = |e: StoreError| ConfigError(format!("the embedded store: {}", error_chain(&e)));
    let database = DataDir::database_in(dir);
    match access {
        Access::Serve => DataDir::lock(dir)
            .and_then(|d| d.open_store(SqliteOptions::default()))
            .map_err(failed),
        Access::Tool { create } => {
            if !database.exists() {
                if !create {
                    return Err(ConfigError(format!(
                        "there is no embedded database at {}; set TESSERA_DATA_DIR (or \
                         TESSERA_STORE) as tessera serve has it",
                        database.display()
                    )));
                }
                // Made as serve would make it, then let go of the lock.
                drop(DataDir::lock(dir).map_err(failed)?);
            }
            SqliteStore::open(&database).map_err(failed)
        }
    }
}

/// An error and its causes on one line: a start-up failure should say why
/// (a permission denied, a disk full), not only what.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The memory store, holding at most `capacity`, and a memory rate limiter.
pub fn memory(capacity: Capacity) -> Backend {
    Backend {
        store: Arc::new(MemoryStore::with_capacity(capacity)),
        limiter: Arc::new(MemoryRateLimiter::default()),
    }
}

/// Opens the store `spec` names, for `access`.
///
/// Redis connects lazily: a malformed URL or prefix fails here, but an
/// unreachable Redis does not, so a node can start while Redis is down,
/// report 503 on `/readyz` and serve as soon as Redis answers (connections
/// reconnect by themselves). `tessera check-config` pings the store to catch
/// an unreachable Redis before deploying.
pub async fn open_for(spec: &StoreSpec, access: Access) -> Result<Backend, ConfigError> {
    match spec {
        StoreSpec::Memory => Ok(memory(Capacity::UNBOUNDED)),
        StoreSpec::Embedded { dir } => Ok(Backend {
            store: Arc::new(open_embedded(dir, access)?),
            limiter: Arc::new(MemoryRateLimiter::default()),
        }),
        StoreSpec::Postgres { url, schema } => {
            let options = PostgresOptions {
                schema: schema.clone(),
                // A service starts while PostgreSQL is down and reports
                // itself not ready; a tool wants to know at once.
                lazy: access == Access::Serve,
                ..PostgresOptions::default()
            };
            // The store's errors never echo the URL (it may hold a password).
            let store = PostgresStore::connect(url, options)
                .await
                .map_err(|e| ConfigError(format!("TESSERA_STORE ({spec}): {}", error_chain(&e))))?;
            Ok(Backend {
                limiter: Arc::new(store.rate_limiter()),
                store: Arc::new(store),
            })
        }
        StoreSpec::Redis { url, prefix, ca } => {
            let tls_root_cert = match ca {
                Some(path) => Some(read_ca(path)?),
                None => None,
            };
            let options = RedisOptions {
                prefix: prefix.clone(),
                lazy: true,
                tls_root_cert,
                ..RedisOptions::default()
            };
            // The store's errors never echo the URL (it may hold a password).
            let store = RedisStore::connect_with(url, options)
                .await
                .map_err(|e| ConfigError(format!("TESSERA_STORE ({spec}): {e}")))?;
            Ok(Backend {
                limiter: Arc::new(store.rate_limiter()),
                store: Arc::new(store),
            })
        }
    }
}

/// Reads the PEM file of `TESSERA_REDIS_CA`. A file without a certificate
/// (empty, DER, a key) would give the TLS client an empty trust store and a
/// service that can never reach Redis, so it is refused here, by name.
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConfigError(format!(
            "TESSERA_REDIS_CA: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if !pem.windows(marker.len()).any(|w| w == marker) {
        return Err(ConfigError(format!(
            "TESSERA_REDIS_CA: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(pem)
}

/// A [`RateLimiter`] that passes on a keyed hash
/// ([`KeyRing::limiter_key`]) of every key instead of the key itself, so
/// the limiter's state (in Redis, for a shared one) holds no user or
/// session id.
pub struct KeyedLimiter {
    inner: Arc<dyn RateLimiter>,
    keys: KeyRing,
}

impl KeyedLimiter {
    /// Hashes keys under `keys` before `inner` sees them.
    pub fn new(inner: Arc<dyn RateLimiter>, keys: KeyRing) -> Self {
        Self { inner, keys }
    }
}

impl fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for KeyedLimiter {
    async fn check(
        &self,
        key: &[u8],
        limit_per_minute: u32,
        now_ms: u64,
    ) -> Result<Decision, StoreError> {
        let hashed = self.keys.limiter_key("service", key);
        self.inner.check(&hashed, limit_per_minute, now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_parse_and_print_without_credentials() {
        for url in [
            "postgres://tessera:hunter2-pw@db.internal:5432/sessions?sslmode=require",
            "POSTGRESQL://tessera:hunter2-pw@db.internal/sessions",
        ] {
            let spec = StoreSpec::parse(url).expect("postgres url");
            let shown = format!("{spec} {spec:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("tessera:"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
            let spec = spec
                .with_postgres_schema("app1".to_owned())
                .expect("a schema");
            assert!(spec.to_string().contains("schema app1"), "{spec}");
        }
        let err = StoreSpec::parse("redis://x:1")
            .expect("redis")
            .with_postgres_schema("app1".to_owned())
            .expect_err("not postgres");
        assert!(err.0.contains("TESSERA_POSTGRES_SCHEMA"), "{}", err.0);
    }

    #[test]
    fn redis_urls_print_without_credentials() {
        let spec =
            StoreSpec::parse("redis://:hunter2-password@cache.internal:6379/0").expect("url");
        let shown = format!("{spec} {spec:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://cache.internal:6379"), "{shown}");
    }

    #[test]
    fn every_redis_scheme_parses_and_unknown_stores_are_a_clear_error() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://cache:6380/2",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
            "REDISS+CLUSTER://10.0.0.1:7000",
        ] {
            let spec = StoreSpec::parse(url).expect("redis url");
            assert!(
                matches!(&spec, StoreSpec::Redis { prefix, .. } if prefix == DEFAULT_REDIS_PREFIX),
                "{url}"
            );
        }
        for bad in ["mysql://x", "redis", "redis+sentinel://x:1", ""] {
            let err = StoreSpec::parse(bad).expect_err("unknown");
            assert!(err.0.contains("TESSERA_STORE"), "{bad}");
        }
        assert_eq!(
            StoreSpec::parse(" memory ").expect("memory"),
            StoreSpec::Memory
        );
    }

    #[tokio::test]
    async fn a_bad_prefix_fails_at_open_without_echoing_the_url() {
        let spec = StoreSpec::parse("redis://:hunter2@127.0.0.1:6379")
            .expect("url")
            .with_prefix("bad{prefix}");
        let err = open(&spec).await.expect_err("bad prefix");
        assert!(err.0.contains("prefix"), "{}", err.0);
        assert!(!err.0.contains("hunter2"), "{}", err.0);
    }

    #[test]
    fn a_ca_applies_to_tls_urls_only_and_is_shown() {
        let ca = PathBuf::from("/etc/tessera/redis-ca.pem");
        for url in ["rediss://cache:6380", "rediss+cluster://10.0.0.1:7000"] {
            let spec = StoreSpec::parse(url)
                .expect("url")
                .with_ca(ca.clone())
                .expect("a TLS url takes a CA");
            assert!(
                spec.to_string().contains("CA /etc/tessera/redis-ca.pem"),
                "{spec}"
            );
            // The prefix keeps the CA.
            let spec = spec.with_prefix("app:");
            assert!(
                matches!(&spec, StoreSpec::Redis { ca: Some(_), .. }),
                "{spec}"
            );
        }
        for url in [
            "memory",
            "redis://cache:6379",
            "redis+cluster://10.0.0.1:7000",
        ] {
            let err = StoreSpec::parse(url)
                .expect("store")
                .with_ca(ca.clone())
                .expect_err("no TLS, no CA");
            assert!(err.0.contains("TESSERA_REDIS_CA"), "{url}: {}", err.0);
        }
    }

    #[tokio::test]
    async fn a_missing_ca_file_fails_at_open_and_names_the_setting() {
        let spec = StoreSpec::parse("rediss://127.0.0.1:1")
            .expect("url")
            .with_ca(PathBuf::from("/nonexistent/ca.pem"))
            .expect("tls url");
        let err = open(&spec).await.expect_err("no such file");
        assert!(err.0.contains("TESSERA_REDIS_CA"), "{}", err.0);
        assert!(err.0.contains("/nonexistent/ca.pem"), "{}", err.0);
    }

    #[tokio::test]
    async fn a_ca_file_without_a_certificate_fails_at_open_by_name() {
        let dir = std::env::temp_dir().join(format!("tessera-ca-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let key = dir.join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        for path in [empty, key] {
            let spec = StoreSpec::parse("rediss://127.0.0.1:1")
                .expect("url")
                .with_ca(path.clone())
                .expect("tls url");
            let err = open(&spec).await.expect_err("no certificate");
            assert!(err.0.contains("TESSERA_REDIS_CA"), "{}", err.0);
            assert!(err.0.contains("no PEM certificate"), "{}", err.0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_unreachable_redis_opens_lazily_and_fails_its_ping() {
        // Port 1 on loopback: nothing listens there.
        let spec = StoreSpec::parse("redis://127.0.0.1:1").expect("url");
        let b = open(&spec).await.expect("lazy open");
        assert!(b.store.ping().await.is_err());
    }

    #[tokio::test]
    async fn the_keyed_limiter_hides_ids_but_keeps_them_apart() {
        /// Records the keys it is asked about.
        #[derive(Debug, Default)]
        struct Spy(parking_lot::Mutex<Vec<Vec<u8>>>);
        #[async_trait]
        impl RateLimiter for Spy {
            async fn check(&self, key: &[u8], _: u32, _: u64) -> Result<Decision, StoreError> {
                self.0.lock().push(key.to_vec());
                Ok(Decision::ALLOW)
            }
        }
        let spy = Arc::new(Spy::default());
        let keys = KeyRing::new(
            "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-backend",
            "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-backend",
        )
        .expect("keys");
        let limiter = KeyedLimiter::new(spy.clone(), keys);
        let user = *b"user-id-16-bytes";
        for key in [&b"create\0\0"[..], &b"refresh\0"[..]] {
            let mut k = key.to_vec();
            k.extend_from_slice(&user);
            limiter.check(&k, 5, 0).await.expect("check");
            limiter.check(&k, 5, 0).await.expect("check");
        }
        let seen = spy.0.lock().clone();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], seen[1], "one key, one hash");
        assert_ne!(seen[0], seen[2], "different keys, different hashes");
        for k in &seen {
            assert!(
                !k.windows(user.len()).any(|w| w == user),
                "raw id passed on"
            );
        }
    }
}
