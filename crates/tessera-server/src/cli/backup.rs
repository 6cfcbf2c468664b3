//! `tessera backup` and `tessera restore`: the store configured exactly as
//! `serve` configures it, to a backup file and back, while the service
//! keeps running. The format and the rules of a restore are in
//! [`tessera::backup`]; this is the command around them: which store,
//! where the file goes, progress on a terminal and a summary.
//!
//! A backup is written to a temporary file beside the target and renamed
//! into place when complete, so a file under the chosen name is always a
//! whole backup. A restore reads its file twice: once to check it whole
//! (format, counts, MAC), then to write it, so a damaged or foreign file
//! changes nothing.

use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tessera::backup::{self, BackupError, Progress};

use super::{BackupArgs, EXIT_CONFIG, EXIT_REFUSED, EXIT_UNREACHABLE, RestoreArgs};
use crate::backend::{self, Access, StoreSpec};
use crate::config::{self, Config};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// The configuration `serve` would use, refusing the memory store: it
/// lives inside the serving process, out of this command's reach.
fn config_for(args: &crate::config::ServeArgs, what: &str) -> Result<Config, ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let config = config::resolve(args, &env).map_err(|e| fail(EXIT_CONFIG, e))?;
    if config.store == StoreSpec::Memory {
        return Err(fail(
            EXIT_CONFIG,
            format!(
                "TESSERA_STORE=memory: the memory store lives inside the serving process, so \
                 there is nothing to {what} from here; use the embedded store, Redis or PostgreSQL"
            ),
        ));
    }
    Ok(config)
}

/// Shows progress on a terminal (stderr), at most a few times a second.
struct Meter {
    on: bool,
    last: Instant,
}

impl Meter {
    fn new(quiet: bool) -> Self {
        Self {
            on: !quiet && std::io::stderr().is_terminal(),
            last: Instant::now(),
        }
    }

    fn show(&mut self, p: Progress) {
        if self.on && self.last.elapsed().as_millis() >= 200 {
            self.last = Instant::now();
            eprint!("\r{} sessions, {} memberships", p.sessions, p.memberships);
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

fn default_output() -> PathBuf {
    PathBuf::from(format!("tessera-backup-{}.tbk", now()))
}

/// A file in `target`'s directory, created readable by its owner only.
fn private_temp(target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_owned());
    let temp = target.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&temp)?;
    Ok((temp, file))
}

fn exit_for(e: &BackupError) -> u8 {
    match e {
        BackupError::Store(_) => EXIT_UNREACHABLE,
        _ => EXIT_REFUSED,
    }
}

pub(super) fn run_backup(args: &BackupArgs) -> ExitCode {
    let config = match config_for(&args.serve, "back up") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match super::runtime(EXIT_UNREACHABLE) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let output = args.output.clone().unwrap_or_else(default_output);
    if output.exists() {
        return fail(
            EXIT_REFUSED,
            format!("{} exists; choose another --output", output.display()),
        );
    }
    let started = Instant::now();
    let result = runtime.block_on(async {
        let backend = backend::open_for(&config.store, Access::Tool { create: false })
            .await
            .map_err(|e| (EXIT_CONFIG, e.to_string()))?;
        let (temp, file) = private_temp(&output).map_err(|e| {
            (
                EXIT_REFUSED,
                format!("cannot write next to {}: {e}", output.display()),
            )
        })?;
        let mut meter = Meter::new(args.json);
        let written = backup::write(
            backend.store.as_ref(),
            &config.keys,
            now(),
            BufWriter::new(&file),
            |p| meter.show(p),
        )
        .await;
        meter.done();
        let finished = written.and_then(|info| {
            file.sync_all()?;
            std::fs::rename(&temp, &output)?;
            Ok(info)
        });
        if finished.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        finished.map_err(|e| (exit_for(&e), e.to_string()))
    });
    let info = match result {
        Ok(info) => info,
        Err((code, message)) => return fail(code, message),
    };
    let bytes = std::fs::metadata(&output).map_or(0, |m| m.len());
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "file": output.display().to_string(),
                "store": config.store.to_string(),
                "sessions": info.sessions,
                "memberships": info.memberships,
                "bytes": bytes,
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "backed up {} sessions and {} memberships from {} to {} ({} bytes, {:.1} s)",
            info.sessions,
            info.memberships,
            config.store,
            output.display(),
            bytes,
            seconds
        );
    }
    ExitCode::SUCCESS
}

pub(super) fn run_restore(args: &RestoreArgs) -> ExitCode {
    let config = match config_for(&args.serve, "restore into") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let open = || {
        std::fs::File::open(&args.file)
            .map(BufReader::new)
            .map_err(|e| {
                fail(
                    EXIT_REFUSED,
                    format!("cannot read {}: {e}", args.file.display()),
                )
            })
    };
    // The whole file is checked before anything is written.
    let reader = match open() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let info = match backup::verify(reader, &config.keys) {
        Ok(info) => info,
        Err(e) => {
            return fail(
                exit_for(&e),
                format!("{}: {e}; nothing was restored", args.file.display()),
            );
        }
    };
    let runtime = match super::runtime(EXIT_UNREACHABLE) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let started = Instant::now();
    let result = runtime.block_on(async {
        let backend = backend::open_for(&config.store, Access::Tool { create: true })
            .await
            .map_err(|e| (EXIT_CONFIG, e.to_string()))?;
        let reader = open().map_err(|_| (EXIT_REFUSED, "the file went away".to_owned()))?;
        let mut meter = Meter::new(args.json);
        let summary = backup::restore(backend.store.as_ref(), &config.keys, now(), reader, |p| {
            meter.show(p)
        })
        .await;
        meter.done();
        summary.map_err(|e| (exit_for(&e), e.to_string()))
    });
    let s = match result {
        Ok(s) => s,
        Err((code, message)) => return fail(code, message),
    };
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "file": args.file.display().to_string(),
                "store": config.store.to_string(),
                "created_at": info.created_at,
                "sessions_written": s.sessions_written,
                "sessions_kept": s.sessions_kept,
                "sessions_expired": s.sessions_expired,
                "memberships_written": s.memberships_written,
                "memberships_kept": s.memberships_kept,
                "seconds": seconds,
            })
        );
    } else {
        println!(
            "restored {} into {}: {} sessions written, {} kept (the store had the same or a \
             newer version), {} expired since the backup; {} memberships written, {} kept \
             ({:.1} s)",
            args.file.display(),
            config.store,
            s.sessions_written,
            s.sessions_kept,
            s.sessions_expired,
            s.memberships_written,
            s.memberships_kept,
            seconds
        );
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
