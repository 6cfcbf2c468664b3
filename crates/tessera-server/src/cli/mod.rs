//! The `tessera` command line.
//!
//! `serve` runs the service (see `main.rs`); the other commands are here:
//! `keygen`, `check-config`, `backup` and `restore` (which open the store
//! `serve` is configured with), and admin commands that call a running service
//! with its URL and API key. Output is for people by default and JSON with
//! `--json`. Exit codes: 0 success, 1 the service refused the request,
//! 2 usage error, 3 the service could not be reached, 78 the configuration
//! is not valid.

mod admin;
mod backup;
mod check;
mod keygen;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeArgs;

/// Exit code: the service answered with an error.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: the command line is not valid (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the service could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the configuration is not valid (`EX_CONFIG` of sysexits.h).
pub const EXIT_CONFIG: u8 = 78;

/// Tessera: sessions with JWT access tokens and rotating refresh tokens.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP service.
    Serve(ServeArgs),
    /// Print fresh random secrets for JWT_SECRET, SESSION_ENCRYPTION_KEY and
    /// TESSERA_API_KEY.
    Keygen(KeygenArgs),
    /// Check the configuration `serve` would use, without starting it.
    CheckConfig(ServeArgs),
    /// Show session statistics of a running service.
    Stats(ClientArgs),
    /// List and revoke sessions of a running service.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Manage memberships (who has which role in which org).
    #[command(subcommand)]
    Members(MembersCommand),
    /// Remove expired sessions now.
    Cleanup(ClientArgs),
    /// Write every live session and membership of the store `serve` is
    /// configured with to a backup file (the service may keep running).
    Backup(BackupArgs),
    /// Write a backup file into the store `serve` is configured with. Never
    /// rolls a session back; checks the whole file before writing.
    Restore(RestoreArgs),
}

/// Options of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup [default: ./tessera-backup-<unix time>.tbk].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print a JSON summary, and no progress.
    #[arg(long)]
    pub json: bool,
    /// The store and keys, exactly as `serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Options of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// Print a JSON summary, and no progress.
    #[arg(long)]
    pub json: bool,
    /// The store and keys, exactly as `serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Options of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Print a JSON object instead of VAR=value lines.
    #[arg(long)]
    pub json: bool,
}

/// How to reach a running service.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The service's base URL.
    #[arg(long, env = "TESSERA_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The service's API key (prefer the environment variable: flags show
    /// in the process list).
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A PEM CA certificate to trust for an https URL (for a private CA).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Print the service's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout_secs: u64,
}

/// `tessera sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's live sessions.
    List {
        /// The user id.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke one session.
    Revoke {
        /// The session id.
        session_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke every session of a user.
    RevokeUser {
        /// The user id.
        user_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `tessera members ...`
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Set a user's role in an org.
    Set {
        /// The org id.
        org_id: String,
        /// The user id.
        user_id: String,
        /// A role the policy defines.
        role: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a user's role in an org.
    Get {
        /// The org id.
        org_id: String,
        /// The user id.
        user_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a user from an org (their sessions there are revoked).
    Remove {
        /// The org id.
        org_id: String,
        /// The user id.
        user_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs every command except `serve`, which `main` runs.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Serve(_) => ExitCode::from(EXIT_USAGE),
        Command::Keygen(args) => keygen::run(&args),
        Command::CheckConfig(args) => check::run(&args),
        Command::Backup(args) => backup::run_backup(&args),
        Command::Restore(args) => backup::run_restore(&args),
        other => admin::run(other),
    }
}

/// A current-thread runtime for one command, or the exit code `on_error`
/// after saying why it could not start.
fn runtime(on_error: u8) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start a runtime: {e}");
            ExitCode::from(on_error)
        })
}
