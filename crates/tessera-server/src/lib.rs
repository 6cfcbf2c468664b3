//! The Tessera HTTP service and the `tessera` command.
//!
//! The service is a library first: [`app`] turns an [`AppState`] into an
//! `axum::Router` that tests drive in-process; the binary only parses its
//! configuration, installs logging and serves that router.
//!
//! | module | what |
//! |---|---|
//! | [`http`] | the router, handlers, error mapping, wire types, OpenAPI |
//! | [`state`] | [`AppState`]: manager, rate limiter, limits, API key, metrics |
//! | [`metrics`] | Prometheus metrics |
//! | [`config`] | configuration from flags, environment and a TOML file |
//! | [`backend`] | the store factory: `TESSERA_STORE` to a store and a rate limiter |
//! | [`serve`] | building the state from a configuration and serving it |
//! | [`listen`] | the accept loop: idle and header timeouts, the connection cap, HTTP/2 limits |
//! | [`cli`] | the `tessera` command line: serve, keygen, check-config, admin |
//! | [`logging`] | text or JSON log lines, written in batches |
//! | [`tls`] | loading the HTTPS certificate and key |

pub mod backend;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod state;
pub mod tls;

pub use crate::http::app;
pub use crate::state::{AppState, Limits};
