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

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{app, backend, tls};

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
    let backend = backend::open(&config.store).await?;
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
/// and a task forever:
///
/// - a new connection, its first request's headers (plain HTTP and HTTPS);
/// - every request with a body, that body, counted from the end of its
///   headers (see [`crate::http::deadline`]);
/// - on HTTPS, every later request's headers too.
///
/// Plain HTTP has no timer on the headers of a connection's later requests:
/// hyper arms one for every request of a keep-alive connection, which
/// cost a measurable share of validate throughput with scripts/load.sh (the
/// figure is in docs/http-api.md).
/// So on plain HTTP a client that has sent one request can hold its
/// connection idle: a plain-HTTP listener that faces untrusted clients
/// belongs behind a proxy that bounds idle and slow clients. (The TLS
/// handshake is bounded by rustls's own 10 s.)
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = build_state(&config).await?;
    let router = app(state);
    let io = |source| ServeError::Io {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let grace = config.shutdown_grace;
    let read_timeout = config.read_timeout;

    // On shutdown the listener closes, idle connections close, in-flight
    // requests get `grace` to finish, and the rest are dropped.
    // The grace timer is ours, not axum-server's: when it fires, the count
    // of connections still open is read and logged before they are dropped,
    // so the warning never races the connections' own teardown.
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        h.graceful_shutdown(None);
        tokio::time::sleep(grace).await;
        let open = h.connection_count();
        if open > 0 {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                connections = open,
                "grace period over; dropped the connections still open"
            );
        }
        h.shutdown();
    });
    // Small JSON responses: do not let Nagle delay them.
    let tcp = axum_server::accept::TcpConfigAcceptor::new(
        axum_server::accept::TcpSocketConfig::new().nodelay(true),
    );
    let server = axum_server::from_tcp(listener)
        .map_err(io)?
        .handle(handle)
        .first_request_timeout(read_timeout);
    let service = router.into_make_service();
    match &config.tls {
        None => {
            let mut server = server.acceptor(tcp);
            server.http_builder().http1().header_read_timeout(None);
            announce(&config, addr);
            server.serve(service).await.map_err(io)?;
        }
        Some(files) => {
            let rustls = tls::load(files).await?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls).acceptor(tcp);
            let mut server = server.acceptor(acceptor);
            server
                .http_builder()
                .http1()
                .header_read_timeout(read_timeout);
            announce(&config, addr);
            server.serve(service).await.map_err(io)?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}
