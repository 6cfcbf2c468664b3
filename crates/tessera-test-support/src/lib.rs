//! Real Redis for Tessera's tests: standalone `redis-server` processes and a
//! three-master Redis Cluster, each on free loopback ports, started by the
//! test that uses them; and private PostgreSQL servers ([`PostgresServer`])
//! for tests that stop and start their database. The store tests
//! (`tessera-redis`, `tessera-postgres`) and the service tests
//! (`tessera-server`) use it, so a fix to how servers start, wait or stop
//! lands in one place. [`plaintext`] is the probe every store's
//! no-plaintext test runs; [`faults`] the honest load every store's fault
//! test runs, and what it must still see.
//!
//! Only `redis-server` and `redis-cli` are needed. Each server runs under a
//! small `sh` watchdog that stops it when the test process exits, however
//! the process ends, so no server outlives the tests; a server a test owns
//! is also stopped when its [`RedisServer`] is dropped.
//!
//! Test binaries run in parallel, so nothing here uses a fixed port: ports
//! come from the operating system, and a server that loses its port to
//! another process between the check and its bind is started again on
//! another one.
//!
//! This crate is for tests only: it panics when a server cannot be started,
//! which is the right outcome for a test and wrong anywhere else.

pub mod faults;
pub mod plaintext;
mod postgres;

use std::fmt;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::postgres::PostgresServer;

/// The shell watchdog: runs redis-server with the given arguments, and
/// stops it when the owning test process is gone. It removes the data
/// folder only then, so a test can stop and restart a server on its data.
const WATCHDOG: &str = r#"
owner="$1"; dir="$2"; shift 2
redis-server "$@" &
r=$!
trap 'kill "$r" 2>/dev/null; wait "$r" 2>/dev/null; exit 0' TERM
while kill -0 "$r" 2>/dev/null && kill -0 "$owner" 2>/dev/null; do sleep 0.2; done
kill "$r" 2>/dev/null; wait "$r" 2>/dev/null
kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
"#;

/// A loopback port that is free, and whose cluster bus port (port + 10000)
/// is too. Nothing holds it afterwards: the caller must expect to lose it
/// and try again (as [`RedisServer::start`] does).
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

/// A redis-server this test process started on a loopback port, with a
/// data folder of its own. Dropping it stops the server (`SHUTDOWN NOSAVE`)
/// and removes the folder.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server without persistence on a free port, plus `extra`
    /// arguments, which override the defaults. `{port}` in an extra
    /// argument stands for the chosen port (a TLS server's
    /// `--tls-port {port}` with `--port 0`).
    pub fn start(extra: &[&str]) -> Self {
        // Another process may take the port between the check and the
        // server's bind: then the server exits and another port is tried.
        for _ in 0..5 {
            if let Some(server) = Self::try_start_on(free_port(), extra) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts a server that speaks only TLS, on a free port, with the
    /// certificate and key in the PEM files `cert` and `key` (issued by the
    /// CA in `ca`); clients need no certificate of their own.
    pub fn start_tls(cert: &str, key: &str, ca: &str) -> Self {
        Self::start(&[
            "--port",
            "0",
            "--tls-port",
            "{port}",
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ])
    }

    /// Like [`RedisServer::start`], on a given port (one a test chose
    /// earlier with [`free_port`], to connect before the server is up).
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        Self::try_start_on(port, extra).expect("redis-server starts on the given port")
    }

    fn try_start_on(port: u16, extra: &[&str]) -> Option<Self> {
        // The process id keeps parallel test binaries out of each other's
        // folders.
        let dir =
            std::env::temp_dir().join(format!("tessera-test-redis-{}-{port}", std::process::id()));
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
        args.extend(extra.iter().map(|s| s.replace("{port}", &port.to_string())));
        let mut server = Self {
            port,
            dir,
            args,
            child: None,
        };
        server.run().then_some(server)
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
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.cli(&["ping"]).is_some_and(|o| o.trim() == "PONG") {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        panic!("timed out waiting for redis-server on port {}", self.port);
    }

    /// The port the server answers on (its TLS port when it serves TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn arg(&self, name: &str) -> Option<String> {
        let at = self.args.iter().position(|a| a == name)?;
        self.args.get(at + 1).cloned()
    }

    /// redis-cli flags to reach this server: its password, and TLS with its
    /// CA when it serves TLS.
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

    /// Runs `redis-cli` against this server; its output, or `None` if the
    /// command failed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        cli(self.port, &self.cli_flags(), args)
    }

    /// Stops the server the way an operator would (`SHUTDOWN SAVE`, which
    /// writes a snapshot, or the append-only file when that is on) and
    /// waits until it is gone. [`RedisServer::restart`] brings it back on
    /// its data.
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

    /// The redis-server process id (from `INFO server`).
    pub fn pid(&self) -> u32 {
        let info = self.cli(&["info", "server"]).expect("INFO server");
        info.lines()
            .find_map(|l| l.trim().strip_prefix("process_id:"))
            .and_then(|p| p.parse().ok())
            .expect("INFO server names the process id")
    }

    /// Stops the server process in its tracks (`SIGSTOP`): it answers
    /// nothing, and what clients send waits in its socket, until
    /// [`RedisServer::resume`].
    pub fn freeze(&self) -> u32 {
        let pid = self.pid();
        signal(pid, "STOP");
        pid
    }

    /// `SIGCONT` to a process [`RedisServer::freeze`] stopped.
    pub fn resume(&self, pid: u32) {
        signal(pid, "CONT");
    }
}

/// Sends `SIG<name>` to one process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The port and data folder only: the arguments may hold a password.
impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown("nosave");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster (no replicas) on free loopback ports,
/// stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with
    /// `redis-cli --cluster create` and waits until every one of them
    /// reports `cluster_state:ok`.
    pub fn start() -> Self {
        let servers: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ])
            })
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(Self::addrs(&servers))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for s in &servers {
            wait_for("cluster_state:ok", Duration::from_secs(30), || {
                s.cli(&["cluster", "info"])
                    .is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        Self { servers }
    }

    fn addrs(servers: &[RedisServer]) -> Vec<String> {
        servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// `redis+cluster://` with every master as a seed.
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", Self::addrs(&self.servers).join(","))
    }

    /// The masters, each of which holds a share of the keys.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }
}
