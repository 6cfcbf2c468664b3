//! Connections: one server or a cluster, behind one type, with a request
//! counter.
//!
//! Both kinds multiplex every request of the process over shared
//! connections and reconnect by themselves: [`ConnectionManager`] starts a
//! new connection when a request meets a broken one, and the cluster client
//! refreshes its slot map and reconnects per node. Timeouts are set on both
//! so that, with Redis down, a request fails within about the response
//! timeout instead of hanging. The client waits [`WRITE_MARGIN`] beyond the
//! deadline every write carries (see `lua/lib.lua`), so it never gives up
//! on a write Redis may still apply.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value};
use tessera::StoreError;

use crate::url::Target;

/// How much longer than [`Timeouts::response`] the client waits for the
/// answer to a write. Redis refuses a write that reaches it more than the
/// response timeout after the call began (its deadline, checked on the
/// server's clock); this margin covers the answer of a write applied just
/// before its deadline on its way back, and clock skew between the hosts up
/// to about as much, so that a write the store reports as failed is one
/// Redis did not apply and never will.
pub const WRITE_MARGIN: Duration = Duration::from_millis(300);

/// Connection timeouts and retries.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// How long one attempt to open a connection may take. Default 1 s.
    pub connect: Duration,
    /// How long a request may wait for its answer, plus [`WRITE_MARGIN`].
    /// It is also the deadline of every write: a write Redis reaches later
    /// than this after the call began (queued behind `CLIENT PAUSE`, a
    /// stopped or overloaded server) is refused there and changes nothing,
    /// so a write reported as failed never takes effect afterwards.
    /// Default 2 s.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A cheap-to-clone handle on the connection(s), counting requests.
#[derive(Clone)]
pub(crate) struct Conn {
    kind: Kind,
    requests: Arc<AtomicU64>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The clients' own Debug output includes connection details, which
        // can carry a password; say only what kind this is.
        let kind = match self.kind {
            Kind::Single(_) => "single server",
            Kind::Cluster(_) => "cluster",
        };
        f.debug_struct("Conn")
            .field("kind", &kind)
            .field("requests", &self.requests())
            .finish()
    }
}

fn connect_error(e: redis::RedisError) -> StoreError {
    StoreError::with_source("could not connect to Redis", e)
}

impl Conn {
    /// Connects to `target`. When `lazy`, returns at once and connects on
    /// the first request (so a service can start while Redis is down);
    /// otherwise fails if Redis does not answer.
    pub(crate) async fn open(
        target: Target,
        timeouts: &Timeouts,
        lazy: bool,
        tls_root_cert: Option<&[u8]>,
    ) -> Result<Self, StoreError> {
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: tls_root_cert.map(<[u8]>::to_vec),
        };
        if target.tls {
            // The redis client builds rustls configs with the process-wide
            // provider; install aws-lc-rs (already used by Tessera) unless
            // the application installed one.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let kind = if target.cluster {
            let mut builder = ClusterClientBuilder::new(target.nodes);
            if target.tls && tls_root_cert.is_some() {
                builder = builder.certs(certs());
            }
            let client = builder
                .connection_timeout(timeouts.connect)
                .response_timeout(timeouts.response + WRITE_MARGIN)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .build()
                .map_err(connect_error)?;
            // The per-connection config replaces the builder's timeouts, so
            // it repeats them.
            let config = ClusterConfig::new()
                .set_connection_timeout(timeouts.connect)
                .set_response_timeout(timeouts.response + WRITE_MARGIN);
            let conn = if lazy {
                client.get_pending_async_connection_with_config(config)
            } else {
                client
                    .get_async_connection_with_config(config)
                    .await
                    .map_err(connect_error)?
            };
            Kind::Cluster(conn)
        } else {
            let info = target
                .nodes
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::new("no Redis server given"))?;
            let client = if target.tls && tls_root_cert.is_some() {
                redis::Client::build_with_tls(info, certs())
            } else {
                redis::Client::open(info)
            }
            .map_err(connect_error)?;
            // One quick retry: the manager reconnects again on the next
            // request anyway, so long retry loops would only delay errors.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeouts.connect))
                .set_response_timeout(Some(timeouts.response + WRITE_MARGIN))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(200));
            let manager = if lazy {
                ConnectionManager::new_lazy_with_config(client, config)
            } else {
                ConnectionManager::new_with_config(client, config).await
            };
            Kind::Single(manager.map_err(connect_error)?)
        };
        Ok(Self {
            kind,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests sent so far (a pipeline or a script call is one): the round
    /// trips this handle and its clones have made.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// Sends a command that names no key (`SCAN`) to the master that owns
    /// `slot` on a cluster; to the server otherwise, where `slot` means
    /// nothing. Naming a master by a slot rather than an address lets the
    /// cluster client's slot map find it.
    pub(crate) async fn query_node(&mut self, cmd: &Cmd, slot: u16) -> Result<Value, RedisError> {
        match &mut self.kind {
            Kind::Single(_) => cmd.query_async(self).await,
            Kind::Cluster(c) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let route = Route::new(slot, SlotAddr::Master);
                c.route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        }
    }

    /// The masters of a cluster, each named by the lowest slot it owns, in
    /// ascending order (one `CLUSTER SLOTS`); `[0]` for a single server.
    pub(crate) async fn masters(&mut self) -> Result<Vec<u16>, StoreError> {
        if !self.is_cluster() {
            return Ok(vec![0]);
        }
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(self)
            .await
            .map_err(|e| StoreError::with_source("a Redis request failed", e))?;
        lowest_slots(&slots)
            .ok_or_else(|| StoreError::new("Redis returned a CLUSTER SLOTS answer it cannot read"))
    }
}

/// From a `CLUSTER SLOTS` answer (ranges of `[start, end, [host, port, ..],
/// replicas..]`), the lowest slot of each master, ascending.
fn lowest_slots(answer: &Value) -> Option<Vec<u16>> {
    let Value::Array(ranges) = answer else {
        return None;
    };
    let mut lowest = std::collections::HashMap::<(Vec<u8>, i64), u16>::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let [
            Value::Int(start),
            Value::Int(_end),
            Value::Array(master),
            ..,
        ] = fields.as_slice()
        else {
            return None;
        };
        let [host, Value::Int(port), ..] = master.as_slice() else {
            return None;
        };
        let host = match host {
            Value::BulkString(b) => b.clone(),
            Value::SimpleString(s) => s.clone().into_bytes(),
            _ => return None,
        };
        let start = u16::try_from(*start).ok().filter(|s| *s < 16384)?;
        lowest
            .entry((host, *port))
            .and_modify(|s| *s = (*s).min(start))
            .or_insert(start);
    }
    let mut out: Vec<u16> = lowest.into_values().collect();
    out.sort_unstable();
    Some(out)
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match &mut self.kind {
            Kind::Single(c) => c.req_packed_command(cmd),
            Kind::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match &mut self.kind {
            Kind::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Kind::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.kind {
            Kind::Single(c) => c.get_db(),
            Kind::Cluster(c) => c.get_db(),
        }
    }
}
