//! What the store tests share: the standalone Redis (the one on
//! 127.0.0.1:6379, or `TESSERA_TEST_REDIS_URL`, or a private server), a
//! three-master Redis Cluster started once per test binary, and helpers to
//! build stores and managers and to read back what they wrote.
//!
//! The servers themselves (free ports, starting, stopping, the watchdog that
//! stops them when the test process exits) come from `tessera-test-support`,
//! which the service tests use too.
#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;
use std::time::Duration;

use tessera_redis::{RedisOptions, RedisStore};
use tessera_test_support::{RedisCluster, RedisServer};

/// The cluster of this test binary, started on first use. The watchdogs
/// stop it when the binary exits.
pub fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

fn reachable(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// The standalone Redis for tests: `TESSERA_TEST_REDIS_URL`, else
/// 127.0.0.1:6379, else (if that is not running) a private server.
pub fn standalone_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    static PRIVATE: OnceLock<RedisServer> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("TESSERA_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        if reachable(&url) {
            url
        } else {
            PRIVATE.get_or_init(|| RedisServer::start(&[])).url()
        }
    })
    .clone()
}

/// A key prefix no other test (or test run) uses.
pub fn unique_prefix() -> String {
    let id = tessera::SessionId::random().to_string();
    format!("tessera-test:{}:", &id[..18])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

impl Mode {
    pub fn url(self) -> String {
        match self {
            Mode::Standalone => standalone_url(),
            Mode::Cluster => cluster().url(),
        }
    }

    /// URLs of every server that can hold keys, for scans.
    pub fn servers(self) -> Vec<String> {
        match self {
            Mode::Standalone => vec![standalone_url()],
            Mode::Cluster => cluster().servers().iter().map(RedisServer::url).collect(),
        }
    }
}

/// A store on `mode` under a fresh prefix.
pub async fn store(mode: Mode) -> RedisStore {
    let options = RedisOptions {
        prefix: unique_prefix(),
        ..RedisOptions::default()
    };
    RedisStore::connect_with(&mode.url(), options)
        .await
        .expect("connect to the test Redis")
}

/// Every key under `prefix` on every server of `mode`.
pub fn keys(mode: Mode, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for url in mode.servers() {
        let mut c = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect for a scan");
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut c)
            .expect("KEYS");
        out.extend(keys.into_iter().map(|k| (url.clone(), k)));
    }
    out
}

/// Deletes every key under `prefix` on every server of `mode`.
pub fn delete_keys(mode: Mode, prefix: &str) {
    for (url, key) in keys(mode, prefix) {
        let mut c = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect for cleanup");
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&key).query(&mut c);
    }
}

/// Every key under `prefix` and everything in it, as raw bytes: key name,
/// then each value, member, field and score.
pub fn dump(mode: Mode, prefix: &str) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for (url, key) in keys(mode, prefix) {
        let mut c = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect for a dump");
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut c).expect("TYPE");
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query(&mut c).expect("GET")],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query(&mut c)
                .expect("HGETALL"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut c)
                .expect("ZRANGE"),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query(&mut c)
                .expect("SMEMBERS"),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(&mut c)
                .expect("LRANGE"),
            "none" => continue,
            other => panic!("unexpected key type {other}"),
        };
        out.push((key, values));
    }
    out
}

pub const JWT_SECRET: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-redis-test-only";
pub const ENCRYPTION_KEY: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-redis-test-only";

/// A manager over `store` with test keys, the system clock (Redis TTLs run
/// on wall-clock time) and no background cleanup.
pub fn manager(store: RedisStore) -> tessera::SessionManager {
    manager_with(store, tessera::Lifetimes::default())
}

pub fn manager_with(store: RedisStore, lifetimes: tessera::Lifetimes) -> tessera::SessionManager {
    tessera::SessionManager::builder()
        .keys(tessera::KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("test keys"))
        .store(std::sync::Arc::new(store))
        .lifetimes(tessera::Lifetimes {
            cleanup_interval: Duration::ZERO,
            ..lifetimes
        })
        .build()
        .expect("manager")
}

pub fn random_user() -> tessera::UserId {
    tessera::UserId::from_uuid(uuid::Uuid::new_v4())
}

pub fn random_org() -> tessera::OrgId {
    tessera::OrgId::from_uuid(uuid::Uuid::new_v4())
}

pub fn role(name: &str) -> tessera::RoleName {
    tessera::RoleName::parse(name).expect("role")
}

/// Waits (up to 15 s) until the manager's store answers again: the first
/// request after a restart meets the broken connection and reconnects.
pub async fn until_up(manager: &tessera::SessionManager) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while manager.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
