//! Several `tessera serve` nodes over one Redis: the real binary, twice, on
//! free loopback ports, sharing the Redis on 127.0.0.1:6379 under a key
//! prefix of each test's own (removed afterwards). Proves over HTTP that a
//! session lives in Redis rather than in a node, that refresh rotation is
//! one compare-and-swap whichever node it reaches, that the rate limit is
//! one limit for all nodes, and that every node counts the same sessions.
//!
//! Redis on 6379 must be running (`.ci/run` starts it); if it is not, those
//! tests fail at once saying so. The failure test and the Redis Cluster test
//! start their own `redis-server` processes with `tessera-test-support`:
//! `redis-server` and `redis-cli` must be installed. The TLS test starts a
//! TLS-only `redis-server` whose certificate a CA made for the run issued.

mod process;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use process::node::{Node, field, id, wait_ready};
use reqwest::StatusCode;
use tessera_test_support::{RedisCluster, RedisServer};

const REDIS: &str = "127.0.0.1:6379";

/// A Redis reply, as far as these tests need one.
#[derive(Debug)]
enum Reply {
    /// A status or an integer, as text.
    Simple(String),
    Error(String),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let bad = || std::io::Error::other(format!("not a RESP reply: {line:?}"));
    let num = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        // An integer: its text is all these tests could want.
        ":" => Reply::Simple(rest.to_owned()),
        "$" => match usize::try_from(num()?) {
            Ok(len) => {
                let mut buf = vec![0u8; len + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(len);
                Reply::Bulk(Some(buf))
            }
            Err(_) => Reply::Bulk(None),
        },
        "*" => {
            let n = usize::try_from(num()?).unwrap_or(0);
            (0..n)
                .map(|_| read_reply(r))
                .collect::<std::io::Result<_>>()
                .map(Reply::Array)?
        }
        _ => return Err(bad()),
    })
}

/// One command to Redis over RESP, for the tests' own housekeeping without
/// a client crate.
fn redis_command(args: &[&str]) -> std::io::Result<Reply> {
    let mut stream =
        TcpStream::connect_timeout(&REDIS.parse().expect("addr"), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    stream.write_all(&req)?;
    read_reply(&mut BufReader::new(stream))
}

/// The keys under a prefix (`KEYS` is fine for a test's few keys).
fn keys_under(prefix: &str) -> Vec<String> {
    match redis_command(&["KEYS", &format!("{prefix}*")]).expect("KEYS") {
        Reply::Array(keys) => keys
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("KEYS returned {other:?}"),
            })
            .collect(),
        other => panic!("KEYS returned {other:?}"),
    }
}

/// A key prefix of one test's own; its keys are deleted when it drops.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        let pong = redis_command(&["PING"]).unwrap_or_else(|e| {
            panic!("Redis is not answering on {REDIS} ({e}); these tests need a real Redis there")
        });
        assert!(
            matches!(&pong, Reply::Simple(s) if s == "PONG"),
            "Redis on {REDIS} answered PING with {pong:?}"
        );
        Self(format!("tessera-test-{}:", uuid::Uuid::new_v4().simple()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let script = "local n = 0 \
            for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end \
            return n";
        if let Ok(Reply::Error(e)) = redis_command(&["EVAL", script, "0", &format!("{}*", self.0)])
        {
            eprintln!("could not remove the test keys under {}: {e}", self.0);
        }
    }
}

/// A node on the Redis store `store`, under `prefix`.
fn redis_node(store: &str, prefix: &Prefix, extra: &[(&str, &str)]) -> Node {
    let mut env = vec![
        ("TESSERA_STORE", store),
        ("TESSERA_REDIS_PREFIX", prefix.0.as_str()),
    ];
    env.extend_from_slice(extra);
    Node::start(&env)
}

/// Two nodes on the Redis on 6379, under a fresh prefix.
fn two_nodes(extra: &[(&str, &str)]) -> (Prefix, Node, Node) {
    let prefix = Prefix::new();
    let store = format!("redis://{REDIS}");
    let a = redis_node(&store, &prefix, extra);
    let b = redis_node(&store, &prefix, extra);
    (prefix, a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_from_one_node_is_validated_refreshed_and_ended_on_the_other() {
    let (_prefix, a, b) = two_nodes(&[]);
    assert_eq!(a.get("/readyz", None).await.0, StatusCode::OK);
    assert_eq!(b.get("/readyz", None).await.0, StatusCode::OK);
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;

    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (access, refresh) = (
        field(&created, "access_token"),
        field(&created, "refresh_token"),
    );
    assert_eq!(b.validate(&access).await, StatusCode::OK);

    let (status, rotated) = b.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (access2, refresh2) = (
        field(&rotated, "access_token"),
        field(&rotated, "refresh_token"),
    );
    assert_ne!(refresh2, refresh);
    assert_eq!(a.validate(&access2).await, StatusCode::OK);

    assert_eq!(b.log_out(&access2).await, StatusCode::NO_CONTENT);
    // No cache in front of Redis: the very next request on A sees it.
    assert_eq!(a.validate(&access2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.validate(&access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.refresh(&refresh2).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refreshes_split_across_both_nodes_yield_one_successor() {
    let (_prefix, a, b) = two_nodes(&[]);
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;
    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let refresh = field(&created, "refresh_token");

    // Eight at once, four through each node: within the refresh limit of
    // 10 per session per minute, so only the rotation can refuse one.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = refresh.clone();
        tasks.spawn(async move { node.refresh(&token).await });
    }
    let answers = tasks.join_all().await;
    let mut successors: Vec<String> = Vec::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::OK => successors.push(field(body, "refresh_token")),
            // Without a grace window the losers of the swap are refused.
            StatusCode::UNAUTHORIZED => assert_eq!(body["error"]["type"], "TOKEN_ERROR"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!successors.is_empty(), "no refresh succeeded: {answers:?}");
    successors.sort();
    successors.dedup();
    assert_eq!(
        successors.len(),
        1,
        "more than one successor: {successors:?}"
    );

    // The one successor works on either node, and the session was never
    // revoked as a reuse.
    let (status, next) = b.refresh(&successors[0]).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(
        a.validate(&field(&next, "access_token")).await,
        StatusCode::OK
    );
    assert_eq!(a.active_sessions().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_create_limit_holds_across_both_nodes_together() {
    let (prefix, a, b) = two_nodes(&[("TESSERA_CREATE_LIMIT_PER_MINUTE", "3")]);
    let (user, other, org) = (id(), id(), id());
    a.add_member(&org, &user).await;
    b.add_member(&org, &other).await;

    for node in [&a, &b, &a] {
        let (status, _, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Each node alone has seen at most two: only a shared limit refuses.
    for node in [&b, &a] {
        let (status, headers, body) = node.create(&user, &org).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["type"], "RATE_LIMITED");
        let retry: u64 = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {headers:?}"));
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // The limit is per user.
    assert_eq!(b.create(&other, &org).await.0, StatusCode::CREATED);

    // The limiter's keys in Redis are keyed hashes, not user ids.
    let limiter_keys: Vec<String> = keys_under(&prefix.0)
        .into_iter()
        .filter(|k| k.starts_with(&format!("{}rl:", prefix.0)))
        .collect();
    // One per user, and the limit in all, whose key at its default rate
    // expires a few milliseconds after each creation.
    assert!((2..=3).contains(&limiter_keys.len()), "{limiter_keys:?}");
    for u in [&user, &other] {
        let raw = u.replace('-', "");
        assert!(
            limiter_keys.iter().all(|k| !k.contains(&raw)),
            "a raw user id in a limiter key: {limiter_keys:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_nodes_report_the_same_active_sessions() {
    let (_prefix, a, b) = two_nodes(&[]);
    let org = id();
    let users: Vec<String> = (0..3).map(|_| id()).collect();
    let mut access = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        node.add_member(&org, user).await;
        let (status, _, body) = node.create(user, &org).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        access.push(field(&body, "access_token"));
    }
    assert_eq!(a.active_sessions().await, 3);
    assert_eq!(b.active_sessions().await, 3);

    assert_eq!(a.log_out(&access[1]).await, StatusCode::NO_CONTENT);
    assert_eq!(a.active_sessions().await, 2);
    assert_eq!(b.active_sessions().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_down_nodes_answer_503_and_recover_by_themselves() {
    let mut redis = RedisServer::start(&[]);
    let prefix = Prefix(format!("tessera-test-{}:", uuid::Uuid::new_v4().simple()));
    let store = redis.url();
    let (a, b) = (
        redis_node(&store, &prefix, &[]),
        redis_node(&store, &prefix, &[]),
    );
    let (user, org) = (id(), id());
    a.add_member(&org, &user).await;
    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let access = field(&created, "access_token");

    // SHUTDOWN SAVE writes a snapshot: the restart below brings it back.
    redis.stop();
    for node in [&a, &b] {
        assert_eq!(
            node.get("/readyz", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, body) = node.get("/v1/sessions/current", Some(&access)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["type"], "DATABASE_ERROR");
    }

    redis.restart();
    for node in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while node.get("/readyz", None).await.0 != StatusCode::OK {
            assert!(
                Instant::now() < deadline,
                "no recovery; logs:\n{}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(node.validate(&access).await, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_redis_cluster_two_nodes_share_sessions_rotation_counts_and_limits() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let prefix = Prefix(format!("tessera-test-{}:", uuid::Uuid::new_v4().simple()));
    let extra = [("TESSERA_CREATE_LIMIT_PER_MINUTE", "3")];
    let (a, b) = (
        redis_node(&url, &prefix, &extra),
        redis_node(&url, &prefix, &extra),
    );
    assert_eq!(a.get("/readyz", None).await.0, StatusCode::OK);
    let (user, org) = (id(), id());
    b.add_member(&org, &user).await;

    let (status, _, created) = a.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (access, refresh) = (
        field(&created, "access_token"),
        field(&created, "refresh_token"),
    );
    assert_eq!(b.validate(&access).await, StatusCode::OK);

    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = refresh.clone();
        tasks.spawn(async move { node.refresh(&token).await });
    }
    let mut successors: Vec<String> = tasks
        .join_all()
        .await
        .into_iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| field(&body, "refresh_token"))
        .collect();
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "successors: {successors:?}");

    for node in [&b, &a] {
        assert_eq!(node.create(&user, &org).await.0, StatusCode::CREATED);
    }
    let (status, headers, body) = b.create(&user, &org).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));

    assert_eq!(a.active_sessions().await, 3);
    assert_eq!(b.active_sessions().await, 3);
    let (_, next) = a.refresh(&successors[0]).await;
    assert_eq!(
        b.log_out(&field(&next, "access_token")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.validate(&field(&next, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(a.active_sessions().await, 2);
    assert_eq!(b.active_sessions().await, 2);
}

/// A CA, and a certificate for 127.0.0.1 it issued, as PEM files in `dir`:
/// (CA, certificate, key).
fn tls_files(dir: &std::path::Path) -> [String; 3] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    std::fs::create_dir_all(dir).expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (redis-server, redis-cli) takes a leaf named
    // like its issuer for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tessera test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    let mut paths = Vec::new();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("cert.pem", leaf.pem()),
        ("key.pem", leaf_key.serialize_pem()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write");
        paths.push(path.to_str().expect("utf-8").to_owned());
    }
    paths.try_into().expect("three files")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_reaches_a_tls_redis_through_the_ca_in_tessera_redis_ca() {
    let dir = std::env::temp_dir().join(format!("tessera-nodes-tls-{}", std::process::id()));
    let [ca, cert, key] = tls_files(&dir);
    let redis = RedisServer::start_tls(&cert, &key, &ca);
    let url = format!("rediss://127.0.0.1:{}", redis.port());
    let prefix = Prefix(format!("tessera-test-{}:", uuid::Uuid::new_v4().simple()));

    let trusting = redis_node(&url, &prefix, &[("TESSERA_REDIS_CA", &ca)]);
    wait_ready(&trusting, StatusCode::OK).await;
    let (user, org) = (id(), id());
    trusting.add_member(&org, &user).await;
    let (status, _, created) = trusting.create(&user, &org).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let access = field(&created, "access_token");
    assert_eq!(trusting.validate(&access).await, StatusCode::OK);

    // Without the CA the system's roots do not vouch for the server: the
    // node starts, is not ready, and fails requests with DATABASE_ERROR.
    let untrusting = redis_node(&url, &prefix, &[]);
    wait_ready(&untrusting, StatusCode::SERVICE_UNAVAILABLE).await;
    let (status, body) = untrusting.get("/v1/sessions/current", Some(&access)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "DATABASE_ERROR");
    drop((trusting, untrusting, redis));
    let _ = std::fs::remove_dir_all(&dir);
}
