//! The configuration of `tessera serve`, from flags, the environment and an
//! optional TOML file, in that order of precedence.
//!
//! [`resolve`] takes the environment as a lookup function, so it is tested
//! without touching the process environment. Every error names the flag,
//! variable or file key at fault and, for secrets, says how to make one.
//! Secrets are read from the environment or the file only, never from flags
//! (which other users can see in the process list).
//!
//! | variable | file key | flag | default |
//! |---|---|---|---|
//! | `TESSERA_CONFIG` | | `--config` | none |
//! | `TESSERA_LISTEN` | `listen` | `--listen` | `127.0.0.1:8080` |
//! | `TESSERA_STORE` | `store` | `--store` | `embedded` (`memory` with `--dev`) |
//! | `TESSERA_DATA_DIR` | `data_dir` | `--data-dir` | `./tessera-data` (the embedded store's directory) |
//! | `TESSERA_POSTGRES_SCHEMA` | `postgres_schema` | | the connection's default (a schema for the tables of a `postgres://` store) |
//! | `TESSERA_REDIS_PREFIX` | `redis_prefix` | | `tessera:` (Redis key prefix) |
//! | `TESSERA_REDIS_CA` | `redis_ca` | | the system's roots (PEM CA file for a `rediss://` store) |
//! | `TESSERA_API_KEY` | `api_key` | | none (then loopback only) |
//! | `JWT_SECRET` | `jwt_secret` | | required (generated with `--dev`) |
//! | `SESSION_ENCRYPTION_KEY` | `session_encryption_key` | | required (generated with `--dev`) |
//! | `JWT_SECRET_PREVIOUS` | `jwt_secret_previous` | | none (comma-separated in the variable) |
//! | `SESSION_ENCRYPTION_KEY_PREVIOUS` | `session_encryption_key_previous` | | none |
//! | `TESSERA_ACCESS_TTL_SECS` | `access_ttl_secs` | `--access-ttl-secs` | 86400 |
//! | `TESSERA_REFRESH_TTL_SECS` | `refresh_ttl_secs` | `--refresh-ttl-secs` | 604800 |
//! | `TESSERA_LEEWAY_SECS` | `leeway_secs` | `--leeway-secs` | 30 (at most 60) |
//! | `TESSERA_REFRESH_REUSE_GRACE_SECS` | `refresh_reuse_grace_secs` | `--refresh-reuse-grace-secs` | 10 (0 disables, at most 60) |
//! | `TESSERA_CREATE_LIMIT_PER_MINUTE` | `create_limit_per_minute` | `--create-limit-per-minute` | 20 per user (0 disables) |
//! | `TESSERA_CREATE_LIMIT_TOTAL_PER_MINUTE` | `create_limit_total_per_minute` | | 60000 in all, whoever for (0 disables) |
//! | `TESSERA_MAX_SESSIONS` | `max_sessions` | | memory store only: 1000000 |
//! | `TESSERA_MAX_MEMBERSHIPS` | `max_memberships` | | memory store only: 1000000 |
//! | `TESSERA_REFRESH_LIMIT_PER_MINUTE` | `refresh_limit_per_minute` | `--refresh-limit-per-minute` | 10 per session (0 disables) |
//! | `TESSERA_POLICY` | `policy` | `--policy` | the built-in policy |
//! | `TESSERA_TLS_CERT`, `TESSERA_TLS_KEY` | `tls_cert`, `tls_key` | `--tls-cert`, `--tls-key` | plain HTTP |
//! | `TESSERA_LOG_FORMAT` | `log_format` | `--log-format` | `text` |
//! | `TESSERA_SHUTDOWN_GRACE_SECS` | `shutdown_grace_secs` | | 30 |
//! | `TESSERA_READ_TIMEOUT_SECS` | `read_timeout_secs` | | 15 (at least 1): a new connection's TLS handshake and first request's headers, every later request's headers, every request body |
//! | `TESSERA_IDLE_TIMEOUT_SECS` | `idle_timeout_secs` | | 60 (at least 1): a keep-alive connection with nothing in flight, HTTP/1.1 and HTTP/2 |
//! | `TESSERA_MAX_CONNECTIONS` | `max_connections` | | the descriptor limit less a reserve of a tenth (at least 64); the oldest idle connection is shed to make room |
//! | `TESSERA_VALIDATION_CACHE` | `validation_cache` | | 8192 verified tokens and opened records (0 disables) |

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use tessera::manager::{
    DEFAULT_VALIDATION_CACHE, MAX_LEEWAY, MAX_REUSE_GRACE, MAX_VALIDATION_CACHE,
};
use tessera::store::Capacity;
use tessera::{KeyRing, Lifetimes, Policy};
use zeroize::Zeroizing;

use crate::backend::StoreSpec;
use crate::http::auth::ApiKey;
use crate::state::Limits;

/// A configuration that cannot be used. The message names what is wrong and
/// never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// How request and event logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(ConfigError::new("must be `text` or `json`")),
        }
    }
}

/// The flags of `tessera serve` and `tessera check-config`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file (also TESSERA_CONFIG).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Quick start: ephemeral secrets, loopback only. Sessions do not
    /// survive a restart.
    #[arg(long)]
    pub dev: bool,
    /// The address to listen on (TESSERA_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// `embedded` (the default), `memory`, a postgres:// URL, or a redis://,
    /// rediss://, redis+cluster:// or rediss+cluster:// URL (TESSERA_STORE).
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// The embedded store's data directory, default ./tessera-data
    /// (TESSERA_DATA_DIR).
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// A role policy TOML file (TESSERA_POLICY).
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// PEM certificate chain; serves HTTPS with --tls-key (TESSERA_TLS_CERT).
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (TESSERA_TLS_KEY).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Log format (TESSERA_LOG_FORMAT).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Access token lifetime in seconds (TESSERA_ACCESS_TTL_SECS).
    #[arg(long, value_name = "SECS")]
    pub access_ttl_secs: Option<u64>,
    /// Refresh token lifetime in seconds (TESSERA_REFRESH_TTL_SECS).
    #[arg(long, value_name = "SECS")]
    pub refresh_ttl_secs: Option<u64>,
    /// Clock skew tolerated on token times, at most 60 (TESSERA_LEEWAY_SECS).
    #[arg(long, value_name = "SECS")]
    pub leeway_secs: Option<u64>,
    /// Refresh reuse grace window, 0 disables, at most 60
    /// (TESSERA_REFRESH_REUSE_GRACE_SECS).
    #[arg(long, value_name = "SECS")]
    pub refresh_reuse_grace_secs: Option<u64>,
    /// Session creations per user per minute, 0 disables
    /// (TESSERA_CREATE_LIMIT_PER_MINUTE).
    #[arg(long, value_name = "N")]
    pub create_limit_per_minute: Option<u32>,
    /// Refreshes per session per minute, 0 disables
    /// (TESSERA_REFRESH_LIMIT_PER_MINUTE).
    #[arg(long, value_name = "N")]
    pub refresh_limit_per_minute: Option<u32>,
}

/// The TOML file. Unknown keys are refused, so a typo is not silently
/// ignored.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    store: Option<String>,
    data_dir: Option<PathBuf>,
    postgres_schema: Option<String>,
    redis_prefix: Option<String>,
    redis_ca: Option<PathBuf>,
    api_key: Option<String>,
    jwt_secret: Option<String>,
    session_encryption_key: Option<String>,
    #[serde(default)]
    jwt_secret_previous: Vec<String>,
    #[serde(default)]
    session_encryption_key_previous: Vec<String>,
    access_ttl_secs: Option<u64>,
    refresh_ttl_secs: Option<u64>,
    leeway_secs: Option<u64>,
    refresh_reuse_grace_secs: Option<u64>,
    create_limit_per_minute: Option<u32>,
    create_limit_total_per_minute: Option<u32>,
    refresh_limit_per_minute: Option<u32>,
    max_sessions: Option<usize>,
    max_memberships: Option<usize>,
    policy: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    shutdown_grace_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    validation_cache: Option<usize>,
}

impl Drop for FileConfig {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for s in [
            &mut self.api_key,
            &mut self.jwt_secret,
            &mut self.session_encryption_key,
        ]
        .into_iter()
        .flatten()
        {
            s.zeroize();
        }
        for s in self
            .jwt_secret_previous
            .iter_mut()
            .chain(self.session_encryption_key_previous.iter_mut())
        {
            s.zeroize();
        }
    }
}

/// Certificate and key files for HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A resolved, checked configuration.
#[derive(Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where sessions live.
    pub store: StoreSpec,
    /// The key every `/v1` request must carry, if any.
    pub api_key: Option<ApiKey>,
    /// Signing and sealing keys.
    pub keys: KeyRing,
    /// Token lifetimes.
    pub lifetimes: Lifetimes,
    /// Rate limits.
    pub limits: Limits,
    /// The role policy.
    pub policy: Policy,
    /// Where the policy came from: a path, or `built-in`.
    pub policy_source: String,
    /// HTTPS, if configured.
    pub tls: Option<TlsFiles>,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether this is `--dev` (ephemeral secrets).
    pub dev: bool,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// How long a client gets to send a request's headers or body (see
    /// [`crate::serve::READ_TIMEOUT`], the default).
    pub read_timeout: Duration,
    /// How long a connection with nothing in flight stays open (see
    /// [`crate::serve::IDLE_TIMEOUT`], the default).
    pub idle_timeout: Duration,
    /// The connection cap; `None` derives it from the descriptor limit at
    /// start ([`crate::listen::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// What the memory store may hold (`TESSERA_MAX_SESSIONS`,
    /// `TESSERA_MAX_MEMBERSHIPS`); unused by the other stores.
    pub memory_capacity: Capacity,
    /// How many verified tokens and opened records validation remembers.
    pub validation_cache: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store", &self.store)
            .field("api_key", &self.api_key)
            .field("keys", &self.keys)
            .field("lifetimes", &self.lifetimes)
            .field("limits", &self.limits)
            .field("policy_source", &self.policy_source)
            .field("tls", &self.tls)
            .field("log_format", &self.log_format)
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What the memory store holds at most by default: about a gigabyte of
/// sessions, so that a flood of creations is refused before the process
/// runs out of memory.
pub const DEFAULT_MEMORY_CAPACITY: Capacity = Capacity {
    sessions: 1_000_000,
    memberships: 1_000_000,
};

fn parse_num<T: FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(format!("{name} must be a whole number, not {value:?}")))
}

/// Flag, then environment variable, then file key.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Sources<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    fn num<T: FromStr + Copy>(
        &self,
        flag: Option<T>,
        name: &str,
        file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError> {
        if let Some(v) = flag {
            return Ok(v);
        }
        if let Some(v) = self.var(name) {
            return parse_num(name, &v);
        }
        Ok(file.unwrap_or(default))
    }

    fn path(&self, flag: &Option<PathBuf>, name: &str, file: &Option<PathBuf>) -> Option<PathBuf> {
        flag.clone()
            .or_else(|| self.var(name).map(PathBuf::from))
            .or_else(|| file.clone())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError::new(format!(
            "the configuration file {} is not valid: {}",
            path.display(),
            e.message()
        ))
    })
}

const HOW: &str = "generate one with `tessera keygen`, or run `tessera serve --dev` for a quick start with ephemeral secrets";

fn secret(
    src: &Sources<'_>,
    name: &str,
    file: &Option<String>,
) -> Result<Zeroizing<String>, ConfigError> {
    src.var(name)
        .or_else(|| file.clone())
        .map(Zeroizing::new)
        .ok_or_else(|| ConfigError::new(format!("{name} is not set; {HOW}")))
}

fn list(src: &Sources<'_>, name: &str, file: &[String]) -> Vec<Zeroizing<String>> {
    match src.var(name) {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Zeroizing::new(s.to_owned()))
            .collect(),
        None => file.iter().map(|s| Zeroizing::new(s.clone())).collect(),
    }
}

/// Resolves the configuration of `serve` from `args`, the environment (read
/// through `env`) and the TOML file named by `--config` or `TESSERA_CONFIG`.
pub fn resolve(
    args: &ServeArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let src = Sources { env };
    let file_path = args
        .config
        .clone()
        .or_else(|| src.var("TESSERA_CONFIG").map(PathBuf::from));
    let file = match &file_path {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };

    let listen_text = args
        .listen
        .clone()
        .or_else(|| src.var("TESSERA_LISTEN"))
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.trim().parse().map_err(|_| {
        ConfigError::new(format!(
            "TESSERA_LISTEN must be an address such as 127.0.0.1:8080, not {listen_text:?}"
        ))
    })?;

    let store_text = args
        .store
        .clone()
        .or_else(|| src.var("TESSERA_STORE"))
        .or_else(|| file.store.clone());
    let data_dir = src.path(&args.data_dir, "TESSERA_DATA_DIR", &file.data_dir);
    // Sessions are durable unless asked otherwise; `--dev` has ephemeral
    // secrets, so its sessions could not outlive it anyway.
    let mut store = match &store_text {
        Some(text) => StoreSpec::parse(text)?,
        None if args.dev && data_dir.is_none() => StoreSpec::Memory,
        None => StoreSpec::embedded(),
    };
    if let Some(dir) = data_dir {
        store = store.with_data_dir(dir)?;
    }
    if let Some(schema) = src
        .var("TESSERA_POSTGRES_SCHEMA")
        .or_else(|| file.postgres_schema.clone())
    {
        store = store.with_postgres_schema(schema)?;
    }
    if let Some(prefix) = src
        .var("TESSERA_REDIS_PREFIX")
        .or_else(|| file.redis_prefix.clone())
    {
        store = store.with_prefix(&prefix);
    }
    if let Some(ca) = src.path(&None, "TESSERA_REDIS_CA", &file.redis_ca) {
        store = store.with_ca(ca)?;
    }

    let api_key = match src.var("TESSERA_API_KEY").or_else(|| file.api_key.clone()) {
        Some(k) => {
            let k = Zeroizing::new(k);
            tessera::keys::check_secret("TESSERA_API_KEY", &k)
                .map_err(|e| ConfigError::new(e.message().to_owned()))?;
            Some(ApiKey::new(&k))
        }
        None => None,
    };

    let keys = if args.dev {
        let generate = || {
            KeyRing::generate_secret().map(Zeroizing::new).map_err(|e| {
                ConfigError::new(format!("cannot generate dev secrets: {}", e.message()))
            })
        };
        let (jwt, enc) = (generate()?, generate()?);
        KeyRing::new(&jwt, &enc)
    } else {
        let jwt = secret(&src, "JWT_SECRET", &file.jwt_secret)?;
        let enc = secret(&src, "SESSION_ENCRYPTION_KEY", &file.session_encryption_key)?;
        let prev_jwt = list(&src, "JWT_SECRET_PREVIOUS", &file.jwt_secret_previous);
        let prev_enc = list(
            &src,
            "SESSION_ENCRYPTION_KEY_PREVIOUS",
            &file.session_encryption_key_previous,
        );
        let prev_jwt: Vec<&str> = prev_jwt.iter().map(|s| s.as_str()).collect();
        let prev_enc: Vec<&str> = prev_enc.iter().map(|s| s.as_str()).collect();
        KeyRing::with_previous(&jwt, &prev_jwt, &enc, &prev_enc)
    }
    .map_err(|e| ConfigError::new(e.message().to_owned()))?;

    if args.dev && !listen.ip().is_loopback() {
        return Err(ConfigError::new(format!(
            "--dev binds loopback only, and {listen} is not a loopback address; \
             use 127.0.0.1 or [::1], or configure secrets and TESSERA_API_KEY for a real deployment"
        )));
    }
    if !listen.ip().is_loopback() && api_key.is_none() {
        return Err(ConfigError::new(format!(
            "refusing to listen on {listen} without TESSERA_API_KEY: anyone who can reach it \
             could create and revoke sessions; set TESSERA_API_KEY (see `tessera keygen`) \
             or listen on a loopback address"
        )));
    }

    let defaults = Lifetimes::default();
    let access = src.num(
        args.access_ttl_secs,
        "TESSERA_ACCESS_TTL_SECS",
        file.access_ttl_secs,
        defaults.access.as_secs(),
    )?;
    let refresh = src.num(
        args.refresh_ttl_secs,
        "TESSERA_REFRESH_TTL_SECS",
        file.refresh_ttl_secs,
        defaults.refresh.as_secs(),
    )?;
    let leeway = src.num(
        args.leeway_secs,
        "TESSERA_LEEWAY_SECS",
        file.leeway_secs,
        defaults.leeway.as_secs(),
    )?;
    let grace = src.num(
        args.refresh_reuse_grace_secs,
        "TESSERA_REFRESH_REUSE_GRACE_SECS",
        file.refresh_reuse_grace_secs,
        defaults.reuse_grace.as_secs(),
    )?;
    if access == 0 || refresh == 0 {
        return Err(ConfigError::new(
            "TESSERA_ACCESS_TTL_SECS and TESSERA_REFRESH_TTL_SECS must be more than 0",
        ));
    }
    if leeway > MAX_LEEWAY.as_secs() {
        return Err(ConfigError::new(format!(
            "TESSERA_LEEWAY_SECS must be at most {}",
            MAX_LEEWAY.as_secs()
        )));
    }
    if grace > MAX_REUSE_GRACE.as_secs() {
        return Err(ConfigError::new(format!(
            "TESSERA_REFRESH_REUSE_GRACE_SECS must be at most {}",
            MAX_REUSE_GRACE.as_secs()
        )));
    }
    let lifetimes = Lifetimes {
        access: Duration::from_secs(access),
        refresh: Duration::from_secs(refresh),
        absolute: defaults.absolute.max(Duration::from_secs(refresh)),
        leeway: Duration::from_secs(leeway),
        reuse_grace: Duration::from_secs(grace),
        ..defaults
    };

    let default_limits = Limits::default();
    let limits = Limits {
        create_per_minute: src.num(
            args.create_limit_per_minute,
            "TESSERA_CREATE_LIMIT_PER_MINUTE",
            file.create_limit_per_minute,
            default_limits.create_per_minute,
        )?,
        create_total_per_minute: src.num(
            None,
            "TESSERA_CREATE_LIMIT_TOTAL_PER_MINUTE",
            file.create_limit_total_per_minute,
            default_limits.create_total_per_minute,
        )?,
        refresh_per_minute: src.num(
            args.refresh_limit_per_minute,
            "TESSERA_REFRESH_LIMIT_PER_MINUTE",
            file.refresh_limit_per_minute,
            default_limits.refresh_per_minute,
        )?,
    };

    let (policy, policy_source) = match src.path(&args.policy, "TESSERA_POLICY", &file.policy) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(format!(
                    "TESSERA_POLICY: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let policy = Policy::from_toml(&text).map_err(|e| {
                ConfigError::new(format!(
                    "TESSERA_POLICY ({}): {}",
                    path.display(),
                    e.message()
                ))
            })?;
            (policy, path.display().to_string())
        }
        None => (Policy::default(), "built-in".to_owned()),
    };

    let tls = match (
        src.path(&args.tls_cert, "TESSERA_TLS_CERT", &file.tls_cert),
        src.path(&args.tls_key, "TESSERA_TLS_KEY", &file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            return Err(ConfigError::new(
                "--tls-cert and --tls-key (TESSERA_TLS_CERT, TESSERA_TLS_KEY) go together: set both or neither",
            ));
        }
    };

    let log_format = match args.log_format {
        Some(f) => f,
        None => match src.var("TESSERA_LOG_FORMAT") {
            Some(v) => v
                .parse()
                .map_err(|e: ConfigError| ConfigError::new(format!("TESSERA_LOG_FORMAT {e}")))?,
            None => file.log_format.unwrap_or_default(),
        },
    };

    let shutdown_grace = Duration::from_secs(src.num(
        None,
        "TESSERA_SHUTDOWN_GRACE_SECS",
        file.shutdown_grace_secs,
        30,
    )?);

    let read_timeout = src.num(
        None,
        "TESSERA_READ_TIMEOUT_SECS",
        file.read_timeout_secs,
        crate::serve::READ_TIMEOUT.as_secs(),
    )?;
    if read_timeout == 0 {
        return Err(ConfigError::new(
            "TESSERA_READ_TIMEOUT_SECS must be at least 1",
        ));
    }
    let read_timeout = Duration::from_secs(read_timeout);

    let idle_timeout = src.num(
        None,
        "TESSERA_IDLE_TIMEOUT_SECS",
        file.idle_timeout_secs,
        crate::serve::IDLE_TIMEOUT.as_secs(),
    )?;
    if idle_timeout == 0 {
        return Err(ConfigError::new(
            "TESSERA_IDLE_TIMEOUT_SECS must be at least 1",
        ));
    }
    let idle_timeout = Duration::from_secs(idle_timeout);

    let memory_capacity = Capacity {
        sessions: src.num(
            None,
            "TESSERA_MAX_SESSIONS",
            file.max_sessions,
            DEFAULT_MEMORY_CAPACITY.sessions,
        )?,
        memberships: src.num(
            None,
            "TESSERA_MAX_MEMBERSHIPS",
            file.max_memberships,
            DEFAULT_MEMORY_CAPACITY.memberships,
        )?,
    };
    if memory_capacity.sessions == 0 || memory_capacity.memberships == 0 {
        return Err(ConfigError::new(
            "TESSERA_MAX_SESSIONS and TESSERA_MAX_MEMBERSHIPS must be at least 1",
        ));
    }

    let max_connections = match src.var("TESSERA_MAX_CONNECTIONS") {
        Some(v) => Some(parse_num::<usize>("TESSERA_MAX_CONNECTIONS", &v)?),
        None => file.max_connections,
    };
    if max_connections == Some(0) {
        return Err(ConfigError::new(
            "TESSERA_MAX_CONNECTIONS must be at least 1",
        ));
    }

    let validation_cache = src.num(
        None,
        "TESSERA_VALIDATION_CACHE",
        file.validation_cache,
        DEFAULT_VALIDATION_CACHE,
    )?;
    if validation_cache > MAX_VALIDATION_CACHE {
        return Err(ConfigError::new(format!(
            "TESSERA_VALIDATION_CACHE must be at most {MAX_VALIDATION_CACHE}"
        )));
    }

    Ok(Config {
        listen,
        store,
        api_key,
        keys,
        lifetimes,
        limits,
        policy,
        policy_source,
        tls,
        log_format,
        dev: args.dev,
        shutdown_grace,
        read_timeout,
        idle_timeout,
        max_connections,
        memory_capacity,
        validation_cache,
    })
}

impl Config {
    /// A summary for `check-config` and the start-up log: no secrets.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let mut roles: Vec<_> = self.policy.role_names().map(|r| r.to_string()).collect();
        roles.sort();
        vec![
            ("listen", self.listen.to_string()),
            (
                "tls",
                match &self.tls {
                    Some(t) => format!("cert {}, key {}", t.cert.display(), t.key.display()),
                    None => "off (plain HTTP)".to_owned(),
                },
            ),
            ("store", self.store.to_string()),
            (
                "api key",
                if self.api_key.is_some() {
                    "set".to_owned()
                } else {
                    "not set (loopback only)".to_owned()
                },
            ),
            (
                "secrets",
                if self.dev {
                    "ephemeral (--dev)".to_owned()
                } else {
                    format!("jwt kid {}", self.keys.signing_key().kid())
                },
            ),
            (
                "access ttl",
                format!("{}s", self.lifetimes.access.as_secs()),
            ),
            (
                "refresh ttl",
                format!("{}s", self.lifetimes.refresh.as_secs()),
            ),
            ("leeway", format!("{}s", self.lifetimes.leeway.as_secs())),
            (
                "refresh reuse grace",
                format!("{}s", self.lifetimes.reuse_grace.as_secs()),
            ),
            (
                "create limit",
                limit_text(self.limits.create_per_minute, "user"),
            ),
            (
                "create limit in all",
                match self.limits.create_total_per_minute {
                    0 => "off".to_owned(),
                    n => format!("{n} per minute"),
                },
            ),
            (
                "refresh limit",
                limit_text(self.limits.refresh_per_minute, "session"),
            ),
            (
                "policy",
                format!("{} (roles: {})", self.policy_source, roles.join(", ")),
            ),
            (
                "validation cache",
                match self.validation_cache {
                    0 => "off".to_owned(),
                    n if n.is_power_of_two() => format!("{n} entries"),
                    n => format!("{} entries ({n} rounded up)", n.next_power_of_two()),
                },
            ),
            (
                "log format",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
        ]
    }
}

fn limit_text(n: u32, per: &str) -> String {
    if n == 0 {
        "off".to_owned()
    } else {
        format!("{n} per {per} per minute")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-config-test";
    const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-config-test";
    const API: &str = "Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-config-test";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn secrets() -> Vec<(&'static str, &'static str)> {
        vec![("JWT_SECRET", JWT), ("SESSION_ENCRYPTION_KEY", ENC)]
    }

    #[test]
    fn defaults_apply_when_only_secrets_are_set() {
        let c = resolve(&ServeArgs::default(), &env(&secrets())).expect("valid");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.store, StoreSpec::embedded());
        assert!(c.api_key.is_none());
        assert_eq!(c.lifetimes.access.as_secs(), 86_400);
        assert_eq!(c.lifetimes.refresh.as_secs(), 604_800);
        assert_eq!(c.lifetimes.leeway.as_secs(), 30);
        assert_eq!(c.lifetimes.reuse_grace.as_secs(), 10);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.tls.is_none());
        assert_eq!(c.validation_cache, DEFAULT_VALIDATION_CACHE);
        assert_eq!(c.read_timeout, crate::serve::READ_TIMEOUT);
    }

    #[test]
    fn tessera_redis_ca_needs_a_tls_redis_store() {
        let mut vars = secrets();
        vars.push(("TESSERA_STORE", "rediss://cache:6380"));
        vars.push(("TESSERA_REDIS_CA", "/etc/tessera/ca.pem"));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("valid");
        assert!(
            matches!(&c.store, StoreSpec::Redis { ca: Some(p), .. } if p.ends_with("ca.pem")),
            "{:?}",
            c.store
        );
        vars[2] = ("TESSERA_STORE", "memory");
        let err = resolve(&ServeArgs::default(), &env(&vars)).expect_err("memory has no TLS");
        assert!(err.0.contains("TESSERA_REDIS_CA"), "{err}");
    }

    #[test]
    fn the_validation_cache_can_be_sized_or_turned_off_within_bounds() {
        let mut vars = secrets();
        vars.push(("TESSERA_VALIDATION_CACHE", "0"));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("valid");
        assert_eq!(c.validation_cache, 0);
        assert!(
            c.summary()
                .contains(&("validation cache", "off".to_owned()))
        );
        vars.pop();
        vars.push(("TESSERA_VALIDATION_CACHE", "2000000"));
        let err = resolve(&ServeArgs::default(), &env(&vars)).expect_err("too large");
        assert!(err.0.contains("TESSERA_VALIDATION_CACHE"), "{err}");
    }

    #[test]
    fn a_redis_store_takes_its_key_prefix_from_tessera_redis_prefix() {
        let mut vars = secrets();
        vars.push((
            "TESSERA_STORE",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
        ));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("valid");
        assert!(
            matches!(&c.store, StoreSpec::Redis { prefix, .. } if prefix == "tessera:"),
            "{:?}",
            c.store
        );
        vars.push(("TESSERA_REDIS_PREFIX", "app1:"));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("valid");
        assert!(
            matches!(&c.store, StoreSpec::Redis { prefix, .. } if prefix == "app1:"),
            "{:?}",
            c.store
        );
    }

    #[test]
    fn a_missing_or_weak_secret_names_the_variable_and_how_to_make_one() {
        let err = resolve(&ServeArgs::default(), &env(&[])).expect_err("no secrets");
        assert!(err.0.contains("JWT_SECRET is not set"), "{err}");
        assert!(err.0.contains("tessera keygen"), "{err}");
        let weak = [("JWT_SECRET", JWT), ("SESSION_ENCRYPTION_KEY", "short")];
        let err = resolve(&ServeArgs::default(), &env(&weak)).expect_err("weak");
        assert!(err.0.contains("SESSION_ENCRYPTION_KEY"), "{err}");
        assert!(err.0.contains("tessera keygen"), "{err}");
        assert!(!err.0.contains("short"), "{err}");
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("tessera-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tessera.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:7001\"\naccess_ttl_secs = 100\nrefresh_ttl_secs = 200\n\
                 leeway_secs = 5\njwt_secret = \"{JWT}\"\nsession_encryption_key = \"{ENC}\"\n"
            ),
        )
        .expect("write file");
        let path_text = path.to_str().expect("utf-8").to_owned();
        let e = env(&[
            ("TESSERA_CONFIG", path_text.as_str()),
            ("TESSERA_LISTEN", "127.0.0.1:7002"),
            ("TESSERA_ACCESS_TTL_SECS", "300"),
        ]);
        let args = ServeArgs {
            listen: Some("127.0.0.1:7003".to_owned()),
            ..ServeArgs::default()
        };
        let c = resolve(&args, &e).expect("valid");
        assert_eq!(c.listen.port(), 7003, "flag wins");
        assert_eq!(c.lifetimes.access.as_secs(), 300, "env beats file");
        assert_eq!(c.lifetimes.refresh.as_secs(), 200, "file beats default");
        assert_eq!(c.lifetimes.leeway.as_secs(), 5);
        let c = resolve(&ServeArgs::default(), &e).expect("valid");
        assert_eq!(c.listen.port(), 7002, "env beats file");
        std::fs::write(&path, "listn = \"typo\"\n").expect("write file");
        let err = resolve(&ServeArgs::default(), &e).expect_err("unknown key");
        assert!(err.0.contains("listn"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sessions_are_durable_unless_memory_or_dev_is_asked_for() {
        let store = |vars: &[(&str, &str)], dev: bool| {
            let mut all = secrets();
            all.extend_from_slice(vars);
            let args = ServeArgs {
                dev,
                ..ServeArgs::default()
            };
            resolve(&args, &env(&all)).map(|c| c.store)
        };
        assert_eq!(store(&[], false).expect("default"), StoreSpec::embedded());
        assert_eq!(
            store(&[("TESSERA_DATA_DIR", "/var/lib/tessera")], false).expect("dir"),
            StoreSpec::Embedded {
                dir: PathBuf::from("/var/lib/tessera")
            }
        );
        assert_eq!(
            store(&[("TESSERA_STORE", "memory")], false).expect("opt out"),
            StoreSpec::Memory
        );
        assert_eq!(store(&[], true).expect("dev"), StoreSpec::Memory);
        assert_eq!(
            store(&[("TESSERA_DATA_DIR", "/tmp/d")], true).expect("dev with a dir"),
            StoreSpec::Embedded {
                dir: PathBuf::from("/tmp/d")
            }
        );
        assert_eq!(
            store(&[("TESSERA_STORE", "embedded")], true).expect("dev, embedded"),
            StoreSpec::embedded()
        );
        for other in ["memory", "redis://127.0.0.1:6379"] {
            let err = store(
                &[("TESSERA_STORE", other), ("TESSERA_DATA_DIR", "/d")],
                false,
            )
            .expect_err("a data dir needs the embedded store");
            assert!(err.0.contains("TESSERA_DATA_DIR"), "{err}");
        }
        let shown = StoreSpec::embedded().to_string();
        assert!(shown.contains("tessera-data/sessions.db"), "{shown}");
    }

    #[test]
    fn non_loopback_needs_an_api_key() {
        let mut vars = secrets();
        vars.push(("TESSERA_LISTEN", "0.0.0.0:8080"));
        let err = resolve(&ServeArgs::default(), &env(&vars)).expect_err("no key");
        assert!(err.0.contains("TESSERA_API_KEY"), "{err}");
        vars.push(("TESSERA_API_KEY", API));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("with key");
        assert!(c.api_key.is_some());
        vars.pop();
        vars.push(("TESSERA_API_KEY", "too-short"));
        let err = resolve(&ServeArgs::default(), &env(&vars)).expect_err("weak key");
        assert!(err.0.contains("TESSERA_API_KEY"), "{err}");
    }

    #[test]
    fn dev_mode_generates_secrets_and_stays_on_loopback() {
        let args = ServeArgs {
            dev: true,
            ..ServeArgs::default()
        };
        let a = resolve(&args, &env(&[])).expect("dev needs no secrets");
        let b = resolve(&args, &env(&[])).expect("dev needs no secrets");
        assert!(a.dev);
        assert_ne!(a.keys.signing_key().kid(), b.keys.signing_key().kid());
        let args = ServeArgs {
            dev: true,
            listen: Some("0.0.0.0:8080".to_owned()),
            ..ServeArgs::default()
        };
        let err = resolve(&args, &env(&[])).expect_err("dev on all interfaces");
        assert!(err.0.contains("loopback"), "{err}");
    }

    #[test]
    fn limits_and_bounds_are_checked_with_the_variable_named() {
        for (name, value, needle) in [
            ("TESSERA_LEEWAY_SECS", "61", "TESSERA_LEEWAY_SECS"),
            (
                "TESSERA_REFRESH_REUSE_GRACE_SECS",
                "120",
                "TESSERA_REFRESH_REUSE_GRACE_SECS",
            ),
            ("TESSERA_ACCESS_TTL_SECS", "soon", "TESSERA_ACCESS_TTL_SECS"),
            ("TESSERA_STORE", "mongodb://x", "TESSERA_STORE"),
            ("TESSERA_LOG_FORMAT", "xml", "TESSERA_LOG_FORMAT"),
            (
                "TESSERA_POLICY",
                "/nonexistent/policy.toml",
                "TESSERA_POLICY",
            ),
            ("TESSERA_TLS_CERT", "/tmp/cert.pem", "--tls-key"),
        ] {
            let mut vars = secrets();
            vars.push((name, value));
            let err = resolve(&ServeArgs::default(), &env(&vars)).expect_err(name);
            assert!(err.0.contains(needle), "{name}: {err}");
        }
        let mut vars = secrets();
        vars.push(("TESSERA_CREATE_LIMIT_PER_MINUTE", "0"));
        vars.push(("TESSERA_REFRESH_REUSE_GRACE_SECS", "0"));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("zero disables");
        assert_eq!(c.limits.create_per_minute, 0);
        assert!(c.lifetimes.reuse_grace.is_zero());
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let mut vars = secrets();
        vars.push(("TESSERA_API_KEY", API));
        let c = resolve(&ServeArgs::default(), &env(&vars)).expect("valid");
        let debug = format!("{c:?}");
        for s in [JWT, ENC, API] {
            assert!(!debug.contains(s), "{debug}");
        }
        let summary = format!("{:?}", c.summary());
        for s in [JWT, ENC, API] {
            assert!(!summary.contains(s), "{summary}");
        }
    }
}
