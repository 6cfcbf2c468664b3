//! Real Redis servers for the tests: the shared one on 127.0.0.1:6379 (or
//! `TESSERA_TEST_REDIS_URL`), private servers on free loopback ports, and a
//! three-master Redis Cluster started once per test binary.
//!
//! Only `redis-server` and `redis-cli` are needed. Each server runs under a
//! small `sh` watchdog that stops it when the test process exits, however
//! the process ends, so no server outlives the tests; a server a test owns
//! is also stopped when its [`Node`] is dropped.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tessera_redis::{RedisOptions, RedisStore};

/// The shell watchdog: runs redis-server with the given arguments, and
/// stops it when the owning test process is gone. It removes the data
/// folder only then, so a test can stop and restart a node on its data.
const WATCHDOG: &str = r#"
owner="$1"; dir="$2"; shift 2
redis-server "$@" &
r=$!
trap 'kill "$r" 2>/dev/null; wait "$r" 2>/dev/null; exit 0' TERM
while kill -0 "$r" 2>/dev/null && kill -0 "$owner" 2>/dev/null; do sleep 0.2; done
kill "$r" 2>/dev/null; wait "$r" 2>/dev/null
kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
"#;

/// A port that is free, and whose cluster bus port (port + 10000) is too.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = l.local_addr().expect("local addr").port();
        if port < 50000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

fn cli(port: u16, flags: &[String], args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(flags)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A redis-server this test process started on a free loopback port.
pub struct Node {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Starts a server without persistence (plus `extra` arguments, which
    /// override the defaults).
    pub fn start(extra: &[&str]) -> Self {
        // Another process may take the port between the check and the
        // server's bind: then the server exits and another port is tried.
        for _ in 0..5 {
            if let Some(node) = Self::try_start_on(free_port(), extra) {
                return node;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Like [`Node::start`], on a given port.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        Self::try_start_on(port, extra).expect("redis-server starts on the given port")
    }

    fn try_start_on(port: u16, extra: &[&str]) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("tessera-redis-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a data folder");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // `{port}` in an extra argument stands for the chosen port (a TLS
        // server's `--tls-port {port}` with `--port 0`).
        args.extend(extra.iter().map(|s| s.replace("{port}", &port.to_string())));
        let mut node = Self {
            port,
            dir,
            args,
            child: None,
        };
        node.run().then_some(node)
    }

    /// Starts the server; `false` if it exited instead of answering.
    fn run(&mut self) -> bool {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let port = self.port;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.cli(&["ping"]).is_some_and(|o| o.trim() == "PONG") {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        panic!("timed out waiting for redis-server on port {port}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn arg(&self, name: &str) -> Option<String> {
        let at = self.args.iter().position(|a| a == name)?;
        self.args.get(at + 1).cloned()
    }

    /// redis-cli flags to reach this server: its password, and TLS with its
    /// CA when it serves TLS (then `port` is its TLS port).
    fn cli_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(pw) = self.arg("--requirepass") {
            flags.extend(["--no-auth-warning".into(), "-a".into(), pw]);
        }
        if let Some(ca) = self.arg("--tls-ca-cert-file") {
            flags.extend(["--tls".into(), "--cacert".into(), ca]);
        }
        flags
    }

    /// Stops the server the way an operator would (`SHUTDOWN`, which writes
    /// the append-only file when persistence is on) and waits until it is
    /// gone.
    pub fn stop(&mut self) {
        self.shutdown("save");
    }

    fn shutdown(&mut self, mode: &str) {
        // Without a running child the port may belong to someone else now.
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self.cli(&["shutdown", mode]);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The server ignored SHUTDOWN: the watchdog stops it on TERM.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }

    /// Starts the server again on the same port and data folder.
    pub fn restart(&mut self) {
        assert!(self.run(), "redis-server restarts on port {}", self.port);
    }

    pub fn cli(&self, args: &[&str]) -> Option<String> {
        cli(self.port, &self.cli_flags(), args)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown("nosave");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on free loopback ports.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start() -> Self {
        let nodes: Vec<Node> = (0..3)
            .map(|_| {
                Node::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            wait_for("cluster_state:ok", Duration::from_secs(30), || {
                n.cli(&["cluster", "info"])
                    .is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// The cluster of this test binary, started on first use. The watchdogs
/// stop it when the binary exits.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
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
    static PRIVATE: OnceLock<Node> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("TESSERA_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        if reachable(&url) {
            url
        } else {
            PRIVATE.get_or_init(|| Node::start(&[])).url()
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
            Mode::Cluster => cluster().nodes.iter().map(Node::url).collect(),
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
