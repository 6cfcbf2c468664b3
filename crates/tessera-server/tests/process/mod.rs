//! The real `tessera` binary as a child process, for the end-to-end tests:
//! start it on a free loopback port, read its address from its log, keep
//! its log lines, stop it.
#![allow(dead_code, unreachable_pub)]

pub mod node;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Variables that would leak from the developer's shell into the child.
const INHERITED: &[&str] = &[
    "JWT_SECRET",
    "SESSION_ENCRYPTION_KEY",
    "JWT_SECRET_PREVIOUS",
    "SESSION_ENCRYPTION_KEY_PREVIOUS",
    "TESSERA_API_KEY",
    "TESSERA_URL",
    "TESSERA_LISTEN",
    "TESSERA_CONFIG",
    "TESSERA_STORE",
    "TESSERA_DATA_DIR",
    "TESSERA_REDIS_PREFIX",
    "TESSERA_POSTGRES_SCHEMA",
    "TESSERA_REDIS_CA",
    "TESSERA_POLICY",
    "TESSERA_CREATE_LIMIT_PER_MINUTE",
    "TESSERA_REFRESH_LIMIT_PER_MINUTE",
    "TESSERA_REFRESH_REUSE_GRACE_SECS",
    "TESSERA_VALIDATION_CACHE",
    "TESSERA_READ_TIMEOUT_SECS",
    "TESSERA_IDLE_TIMEOUT_SECS",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_MAX_SESSIONS",
    "TESSERA_MAX_MEMBERSHIPS",
    "TESSERA_CREATE_LIMIT_TOTAL_PER_MINUTE",
    "RUST_LOG",
];

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tessera-test-{what}-{}-{n}-{:08x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The binary with `args`, none of the developer's Tessera settings, and
/// `env`. Unless `env` names a store or a data directory, the embedded
/// store (the default) gets a data directory of its own, so tests running
/// at once never share one; [`Server`] deletes it when dropped.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let dir = opens_a_store(args, env).then(|| temp_dir("cmd"));
    command_in(&[], args, env, dir.as_deref())
}

/// Whether `tessera ARGS` would open the default embedded store.
fn opens_a_store(args: &[&str], env: &[(&str, &str)]) -> bool {
    let opens = matches!(
        args.first(),
        Some(&("serve" | "check-config" | "backup" | "restore"))
    );
    opens
        && !names_a_store(env)
        && !args
            .iter()
            .any(|a| a.starts_with("--data-dir") || a.starts_with("--store"))
}

fn command_in(
    wrapper: &[&str],
    args: &[&str],
    env: &[(&str, &str)],
    data_dir: Option<&std::path::Path>,
) -> Command {
    let mut c = match wrapper.split_first() {
        None => Command::new(BIN),
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(BIN);
            c
        }
    };
    c.args(args);
    for v in INHERITED {
        c.env_remove(v);
    }
    if let Some(dir) = data_dir {
        c.env("TESSERA_DATA_DIR", dir);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `tessera ARGS` to its end, killed after `within`: for a start that
/// must fail. Returns its exit code (`None` if it had to be killed: it did
/// not refuse) and what it printed to stderr.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], within: Duration) -> (Option<i32>, String) {
    let mut child = command(args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let deadline = std::time::Instant::now() + within;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (code, err)
}

fn names_a_store(env: &[(&str, &str)]) -> bool {
    env.iter()
        .any(|(k, _)| *k == "TESSERA_STORE" || *k == "TESSERA_DATA_DIR")
}

/// A running service; killed when dropped if still running.
pub struct Server {
    child: Child,
    /// The data directory made for it, deleted on drop.
    data_dir: Option<std::path::PathBuf>,
    /// `http://` or `https://` and the address it listens on.
    pub url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `tessera ARGS` (on 127.0.0.1, port 0, unless `env` sets
    /// `TESSERA_LISTEN`) and waits for its "listening on" line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_under(&[], args, env)
    }

    /// [`start`](Self::start) under a program that execs it, for example
    /// `prlimit --nofile=64:128 --`.
    pub fn start_under(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "TESSERA_LISTEN") {
            env.push(("TESSERA_LISTEN", "127.0.0.1:0"));
        }
        let data_dir = opens_a_store(args, &env).then(|| temp_dir("data"));
        let mut child = command_in(wrapper, args, &env, data_dir.as_deref())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tessera");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(url);
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line; logs: {:?}", logs.lock()));
        Self {
            child,
            data_dir,
            url,
            logs,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// The logs once they contain `needle` (request lines are written in
    /// batches, up to 100 ms late).
    pub fn logs_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || std::time::Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).expect("address").to_owned()
    }

    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--url", self.url.as_str()]);
        command(&all, env).output().expect("run the cli")
    }

    /// `kill -9`: the process gets no chance to flush or close anything.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not exit; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A CA and a `localhost` certificate signed by it, written to `dir`:
/// returns the paths of the CA, the certificate and its key (PEM).
pub fn write_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, leaf.pem()).expect("write");
    std::fs::write(&paths.2, leaf_key.serialize_pem()).expect("write");
    (paths.0, paths.1, paths.2)
}
