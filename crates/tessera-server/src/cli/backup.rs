//! `tessera backup` and `tessera restore`: the store configured exactly as
//! `serve` configures it, to a backup file and back, while the service
//! keeps running. The format and the rules of a restore are in
//! [`tessera::backup`]; this is the command around them: which store,
//! where the file goes, progress on a terminal and a summary.
//!
//! A backup is written to a temporary file beside the target and renamed
//! into place when complete, so a file under the chosen name is always a
//! whole backup. A restore reads its file once, checking it whole (format,
//! counts, MAC) while copying it into a private, already unlinked
//! temporary file, and then writes the store from that copy: a damaged or
//! foreign file changes nothing, and a file changed after the check cannot
//! be written unchecked, because the bytes written are the bytes checked.

use std::io::{BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
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

/// Passes reads through and writes what it read to `copy`.
struct Tee<R, W> {
    input: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A new file in the temporary directory (`TMPDIR`), readable by its owner
/// only, removed from the directory at once where the system allows it (a
/// crash leaves nothing behind, and no one can open it by name) and
/// otherwise when the returned path guard drops.
fn private_scratch() -> std::io::Result<(std::fs::File, ScratchPath)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path =
        std::env::temp_dir().join(format!(".tessera-restore.{}.{nanos}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok((file, ScratchPath(path)))
}

/// Removes the scratch file's name if it is still there.
struct ScratchPath(PathBuf);

impl Drop for ScratchPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks the whole backup in `input` (format, frames, counts, MAC) while
/// copying it to `copy`, then rewinds the copy: what a restore then reads
/// from `copy` is exactly what was checked.
fn verify_into(
    input: impl Read,
    keys: &tessera::KeyRing,
    copy: &std::fs::File,
) -> Result<backup::BackupInfo, BackupError> {
    let mut tee = Tee {
        input,
        copy: BufWriter::new(copy),
    };
    let info = backup::verify(&mut tee, keys)?;
    tee.copy.flush()?;
    let mut copy = copy;
    copy.seek(SeekFrom::Start(0))?;
    Ok(info)
}

pub(super) fn run_restore(args: &RestoreArgs) -> ExitCode {
    let config = match config_for(&args.serve, "restore into") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let reader = match std::fs::File::open(&args.file) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            return fail(
                EXIT_REFUSED,
                format!("cannot read {}: {e}", args.file.display()),
            );
        }
    };
    let (copy, _scratch) = match private_scratch() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                EXIT_REFUSED,
                format!(
                    "cannot make a private copy of the backup in {}: {e}",
                    std::env::temp_dir().display()
                ),
            );
        }
    };
    // The whole file is checked before anything is written, and the
    // store is written from the copy of the bytes that were checked.
    let info = match verify_into(reader, &config.keys, &copy) {
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
        let reader = BufReader::new(&copy);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> tessera::KeyRing {
        let secret = || tessera::KeyRing::generate_secret().expect("secret");
        tessera::KeyRing::new(&secret(), &secret()).expect("keys")
    }

    /// A real backup of a memory store holding one membership.
    fn a_backup(keys: &tessera::KeyRing) -> Vec<u8> {
        let store = tessera::MemoryStore::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            use tessera::SessionStore;
            store
                .put_membership(&[7; 16], vec![1, 2, 3])
                .await
                .expect("put");
            let mut out = Vec::new();
            backup::write(&store, keys, now(), &mut out, |_| {})
                .await
                .expect("backup");
            out
        })
    }

    #[test]
    fn the_checked_copy_holds_exactly_the_checked_bytes_under_no_name() {
        let keys = keys();
        let original = a_backup(&keys);
        let (copy, _scratch) = private_scratch().expect("scratch");
        let info = verify_into(original.as_slice(), &keys, &copy).expect("a good backup");
        assert_eq!(info.memberships, 1);
        let mut read_back = Vec::new();
        (&copy).read_to_end(&mut read_back).expect("read the copy");
        assert_eq!(
            read_back, original,
            "the copy is byte for byte what was checked"
        );
        #[cfg(unix)]
        assert!(
            !_scratch.0.exists(),
            "the scratch file has no name anyone else could open"
        );
    }

    #[test]
    fn a_modified_file_is_refused_while_copying() {
        let keys = keys();
        let mut bad = a_backup(&keys);
        let at = bad.len() - 40;
        bad[at] ^= 1;
        let (copy, _scratch) = private_scratch().expect("scratch");
        assert!(matches!(
            verify_into(bad.as_slice(), &keys, &copy),
            Err(BackupError::Tampered | BackupError::Damaged)
        ));
    }
}
