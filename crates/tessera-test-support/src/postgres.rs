//! A private PostgreSQL server for tests that need one they can stop: a
//! fresh cluster made by `initdb` in a temporary folder, served by
//! `postgres` on a free loopback port with trust authentication for the
//! `postgres` user.
//!
//! The binaries come from `/usr/lib/postgresql/<version>/bin` (the newest
//! version there), or from `TESSERA_TEST_PG_BIN`. PostgreSQL refuses to run
//! as root, so when the tests run as root the folder is given to the
//! `postgres` OS user and every PostgreSQL program runs as that user through
//! `setpriv`, which (unlike `runuser`) replaces itself with the program:
//! the process the watchdog signals is the postmaster itself, so a stop is
//! PostgreSQL's fast shutdown, not a signal relayed through a wrapper.
//!
//! Like the Redis servers, the postmaster runs under a small `sh` watchdog
//! that shuts it down and removes the folder when the test process exits,
//! however it ends.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The watchdog: runs the postmaster (the remaining arguments), logs to the
/// folder, and stops it with SIGINT (fast shutdown: disconnect clients,
/// checkpoint, exit) when the owning test process is gone or on TERM.
const WATCHDOG: &str = r#"
owner="$1"; dir="$2"; shift 2
"$@" >>"$dir/postgres.log" 2>&1 &
r=$!
trap 'kill -INT "$r" 2>/dev/null; wait "$r" 2>/dev/null; exit 0' TERM
while kill -0 "$r" 2>/dev/null && kill -0 "$owner" 2>/dev/null; do sleep 0.2; done
kill -INT "$r" 2>/dev/null; wait "$r" 2>/dev/null
kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
"#;

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TESSERA_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL must be installed under /usr/lib/postgresql (or set TESSERA_TEST_PG_BIN)",
        )
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb found")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A command for a PostgreSQL program: as the `postgres` user when we are
/// root (PostgreSQL refuses root), as ourselves otherwise.
fn pg_command(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL server this test process started on a loopback port, with
/// a cluster of its own. Dropping it shuts the server down and removes the
/// folder.
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

impl PostgresServer {
    /// Makes a fresh cluster and starts it on a free port. Takes a second
    /// or two (`initdb`).
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "tessera-test-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create a data folder");
        if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the data folder to postgres");
        }
        let out = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Another process may take the port between the check and the
        // postmaster's bind: then it exits and another port is tried.
        let mut server = Self {
            port: 0,
            dir,
            bin,
            child: None,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.run() {
                return server;
            }
        }
        panic!("postgres did not start on any of 5 free ports");
    }

    /// Starts the postmaster; `false` if it exited instead of answering.
    fn run(&mut self) -> bool {
        let mut postgres = pg_command(&self.bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=50",
                "-c",
                "shared_buffers=16MB",
                // Durable enough for a test: a fast shutdown still writes
                // everything out; only a machine crash would lose data.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ]);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(postgres.get_program())
            .args(postgres.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the postgres watchdog");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.is_ready() {
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
        panic!(
            "timed out waiting for postgres on port {} (see {}/postgres.log)",
            self.port,
            self.dir.display()
        );
    }

    fn is_ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Whether the server is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server with a fast shutdown (clients are disconnected, the
    /// data is checkpointed) and waits until it is gone.
    /// [`PostgresServer::restart`] brings it back on the same port and data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "20", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The watchdog stops the postmaster on TERM.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }

    /// Stops the postmaster and every process it started (`SIGSTOP`),
    /// postmaster first so it forks no new backend: statements sent now
    /// wait in their sockets until [`PostgresServer::resume`]. Returns the
    /// process ids, for `resume`.
    pub fn freeze(&self) -> Vec<u32> {
        let file = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .expect("postmaster.pid");
        let postmaster: u32 = file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("postmaster.pid starts with the process id");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: the command may hold spaces, so
            // read after its closing parenthesis.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        for pid in &pids {
            crate::signal(*pid, "STOP");
        }
        pids
    }

    /// `SIGCONT` to the processes [`PostgresServer::freeze`] stopped.
    pub fn resume(&self, pids: &[u32]) {
        for pid in pids {
            crate::signal(*pid, "CONT");
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        if self.child.is_none() {
            assert!(self.run(), "postgres restarts on port {}", self.port);
        }
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
