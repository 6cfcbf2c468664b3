//! The `tessera` binary: parse the command line; for `serve`, resolve the
//! configuration, install logging and serve until SIGTERM or Ctrl-C. All
//! the work lives in the `tessera_server` library.

use std::process::ExitCode;

use clap::Parser;
use tessera_server::cli::{self, Cli, Command, EXIT_CONFIG};
use tessera_server::config::{self, ServeArgs};
use tessera_server::{logging, serve};

/// jemalloc, with its background threads purging freed pages, gives memory
/// back to the system after connections close (glibc's allocator kept 80% of
/// what 4,000 connections took after they were gone).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => run_serve(&args),
        other => cli::run(other),
    }
}

fn run_serve(args: &ServeArgs) -> ExitCode {
    // Purge freed pages on jemalloc's own threads, not only when an arena
    // happens to allocate again.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc background threads are off: {e}");
    }
    let config = match config::resolve(args, &|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _logs = logging::init(config.log_format);
    log_panics();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::serve(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the service stopped");
            eprintln!("error: {e}");
            ExitCode::from(match e {
                serve::ServeError::Config(_) => EXIT_CONFIG,
                _ => 1,
            })
        }
    }
}

/// Replaces the default panic hook, which prints the panic's message to
/// stderr: a message may carry request data, and an unstructured line would
/// break JSON logs. A panic is logged through tracing with where it
/// happened, never what it said; a panicking request answers 500 (see
/// `http/observe.rs`).
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        tracing::error!(%location, "a panic (its message is not logged: it may hold request data)");
    }));
}

/// Resolves on SIGTERM (how orchestrators stop a service) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
