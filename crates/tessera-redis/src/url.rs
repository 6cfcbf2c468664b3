//! Parsing the store URL (`TESSERA_STORE`).
//!
//! - `redis://[[user]:password@]host:port[/db]`: one server (`rediss://` for TLS).
//! - `redis+cluster://[[user]:password@]host:port,host:port,...`: a cluster,
//!   given any of its nodes (`rediss+cluster://` for TLS). The credentials
//!   apply to every node.
//!
//! Errors never echo the URL: it may carry a password.

use redis::{ConnectionInfo, IntoConnectionInfo};
use tessera::StoreError;

/// What to connect to.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) cluster: bool,
    pub(crate) tls: bool,
    pub(crate) nodes: Vec<ConnectionInfo>,
}

fn invalid(why: &'static str) -> StoreError {
    StoreError::new(why)
}

fn node(url: String) -> Result<ConnectionInfo, StoreError> {
    url.as_str()
        .into_connection_info()
        .map_err(|_| invalid("the Redis URL is not valid (expected redis://HOST:PORT[/DB])"))
}

pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        invalid("the Redis URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://")
    })?;
    let (cluster, tls, node_scheme) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false, "redis"),
        "rediss" => (false, true, "rediss"),
        "redis+cluster" => (true, false, "redis"),
        "rediss+cluster" => (true, true, "rediss"),
        _ => {
            return Err(invalid(
                "the Redis URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://",
            ));
        }
    };
    if !cluster {
        return Ok(Target {
            cluster,
            tls,
            nodes: vec![node(format!("{node_scheme}://{rest}"))?],
        });
    }
    // A cluster has no databases: only an empty path (or /0) is accepted.
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !(path.is_empty() || path == "0") {
        return Err(invalid("a Redis Cluster URL cannot name a database"));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let nodes = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| match userinfo {
            Some(u) => node(format!("{node_scheme}://{u}@{h}")),
            None => node(format!("{node_scheme}://{h}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err(invalid("a Redis Cluster URL must name at least one node"));
    }
    Ok(Target {
        cluster,
        tls,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_server_urls_keep_database_and_password() {
        let t = parse("redis://:s3cret@127.0.0.1:6380/4").expect("valid");
        assert!(!t.cluster && !t.tls);
        let info = &t.nodes[0];
        assert_eq!(info.redis_settings().db(), 4);
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        assert_eq!(info.addr().to_string(), "127.0.0.1:6380");
        assert!(parse("rediss://example.invalid:6380").expect("valid").tls);
    }

    #[test]
    fn cluster_urls_give_every_node_the_credentials() {
        let t = parse("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001").expect("valid");
        assert!(t.cluster && !t.tls);
        assert_eq!(t.nodes.len(), 2);
        for n in &t.nodes {
            assert_eq!(n.redis_settings().username(), Some("app"));
            assert_eq!(n.redis_settings().password(), Some("pw"));
        }
        assert_eq!(t.nodes[1].addr().to_string(), "10.0.0.2:7001");
        assert!(parse("rediss+cluster://h:1").expect("valid").tls);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in [
            "",
            "127.0.0.1:6379",
            "http://h:1",
            "redis+cluster://",
            "redis+cluster://h:1/3",
            "redis://:hunter2@[::1",
        ] {
            let err = parse(bad).map(|_| ()).expect_err(bad);
            let text = format!("{err} {err:?}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
