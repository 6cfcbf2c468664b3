//! From a [`Config`] to a running service: open the store, build the
//! manager and the state, listen, and shut down gracefully.
//!
//! Shutdown: when the `shutdown` future resolves (SIGTERM or Ctrl-C in the
//! binary), the listener closes, idle connections are closed and in-flight
//! requests run to completion. Whatever is still running after the grace
//! period is dropped, so a stuck client cannot hold the process forever.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera::{SessionManager, TracingEvents};

use crate::backend::StoreSpec;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{app, backend, listen, tls};

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration could not be used (the store, the TLS files).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The manager refused its configuration.
    #[error("{0}")]
    Manager(#[from] tessera::SessionError),
    /// Listening or serving failed.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds the state `serve` would run: store, manager (with lifecycle events
/// counted in the metrics), limiter, limits and API key.
pub async fn build_state(config: &Config) -> Result<AppState, ServeError> {
    let backend = match config.store {
        StoreSpec::Memory => backend::memory(config.memory_capacity),
        _ => backend::open(&config.store).await?,
    };
    let metrics = Arc::new(Metrics::new());
    let manager = SessionManager::builder()
        .keys(config.keys.clone())
        .store(backend.store)
        .policy(config.policy.clone())
        .lifetimes(config.lifetimes.clone())
        .events(metrics.event_sink(Arc::new(TracingEvents)))
        .validation_cache(config.validation_cache)
        .build()?;
    Ok(AppState::builder(manager)
        .limiter(Arc::new(backend::KeyedLimiter::new(
            backend.limiter,
            config.keys.clone(),
        )))
        .limits(config.limits)
        .api_key(config.api_key.clone())
        .metrics(metrics)
        .body_read_timeout(config.read_timeout)
        .build())
}

fn announce(config: &Config, addr: SocketAddr) {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if config.dev && config.store.is_durable() {
        tracing::warn!(
            "DEVELOPMENT MODE: secrets are ephemeral, so the sessions this process stores \
             cannot be opened after it stops. Never use --dev in production."
        );
    } else if config.dev {
        tracing::warn!(
            "DEVELOPMENT MODE: secrets are ephemeral and sessions live in memory; \
             every session is lost when this process stops. Never use --dev in production."
        );
    } else if !config.store.is_durable() {
        tracing::warn!(
            "TESSERA_STORE=memory: sessions and memberships live in this process only and \
             are lost when it stops or restarts; leave TESSERA_STORE unset for the embedded \
             durable store"
        );
    }
    let summary: Vec<String> = config
        .summary()
        .into_iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect();
    tracing::info!("configuration: {}", summary.join("; "));
    tracing::info!(%addr, "listening on {scheme}://{addr}");
}

/// The default of how long a client gets to send what it must, so that one
/// that connects and trickles (or sends nothing) cannot hold a connection
/// and a task forever: a new connection its TLS handshake and first
/// request's headers; every later request its headers, from their first
/// byte; every request with a body that body, counted from the end of its
/// headers (see [`crate::http::deadline`]).
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// The default of how long a keep-alive connection may sit with nothing in
/// flight, HTTP/1.1 and HTTP/2 alike.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = build_state(&config).await?;
    let metrics = state.metrics().connections().clone();
    let router = app(state);
    let io = |source| ServeError::Io {
        addr: config.listen,
        source,
    };
    let descriptors = listen::raise_descriptor_limit();
    let limits = listen::ConnectionLimits {
        idle_timeout: config.idle_timeout,
        header_timeout: config.read_timeout,
        max_connections: config
            .max_connections
            .unwrap_or_else(|| listen::default_max_connections(descriptors)),
        shutdown_grace: config.shutdown_grace,
    };
    let tls = match &config.tls {
        None => None,
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            tls::load(files).await?.get_inner(),
        )),
    };
    let listener = listen::bind(config.listen).map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    announce(&config, addr);
    tracing::info!(
        max_connections = limits.max_connections,
        descriptor_limit = descriptors,
        "connections: at most {} open, idle ones closed after {}s",
        limits.max_connections,
        limits.idle_timeout.as_secs()
    );
    listen::serve(listener, tls, router, limits, metrics, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}
