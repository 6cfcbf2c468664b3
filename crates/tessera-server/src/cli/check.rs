//! `tessera check-config`: resolves the configuration exactly as `serve`
//! would (flags, environment, file), opens the store and loads the TLS
//! files, and prints a summary without secrets.

use std::process::ExitCode;

use crate::config::{self, ServeArgs};
use crate::{backend, tls};

use super::EXIT_CONFIG;

pub(super) fn run(args: &ServeArgs) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let config = match config::resolve(args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match super::runtime(EXIT_CONFIG) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let checked = runtime.block_on(async {
        // Beside a running service, without taking its data directory.
        let backend =
            backend::open_for(&config.store, backend::Access::Tool { create: true }).await?;
        if backend.store.ping().await.is_err() {
            return Err(config::ConfigError(format!(
                "TESSERA_STORE: the store ({}) does not answer",
                config.store
            )));
        }
        if let Some(files) = &config.tls {
            tls::load(files).await?;
        }
        Ok(())
    });
    if let Err(e) = checked {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    for (key, value) in config.summary() {
        println!("{key:<20} {value}");
    }
    println!("configuration OK");
    ExitCode::SUCCESS
}
