//! End to end: the real `tessera` binary on a free loopback port, driven
//! over HTTP and through its own admin commands. Covers `--dev`, the API
//! key, HTTPS, start-up refusals, and a graceful shutdown on SIGTERM with a
//! request in flight.

mod process;

use std::process::Output;
use std::time::Duration;

use process::{Server, command, write_certificates};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-e2e-test";
const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-e2e-test";
const API_KEY: &str = "Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-e2e-test";
const USER: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
const ORG: &str = "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {} / {}", stdout(o), stderr(o)))
}

fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![("JWT_SECRET", JWT), ("SESSION_ENCRYPTION_KEY", ENC)]
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_serves_the_api_and_the_admin_cli_drives_it() {
    let server = Server::start(&["serve", "--dev"], &[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let http = reqwest::Client::new();

    let set = server.cli(&["members", "set", ORG, USER, "member"], &[]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(
        stdout(&set).contains("is member in org"),
        "{}",
        stdout(&set)
    );
    let get = server.cli(&["members", "get", ORG, USER, "--json"], &[]);
    assert_eq!(json_out(&get)["role"], "member");

    let created: Value = http
        .post(format!("{}/v1/sessions", server.url))
        .json(&json!({"user_id": USER, "org_id": ORG, "device_id": "e2e"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let access = created["access_token"].as_str().expect("token").to_owned();
    let refresh = created["refresh_token"].as_str().expect("token").to_owned();
    let session = created["session_id"].as_str().expect("id").to_owned();
    let current = http
        .get(format!("{}/v1/sessions/current", server.url))
        .bearer_auth(&access)
        .send()
        .await
        .expect("validate");
    assert_eq!(current.status(), 200);
    assert!(current.headers().contains_key("x-request-id"));

    let list = server.cli(&["sessions", "list", "--user", USER, "--json"], &[]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(
        json_out(&list)["sessions"][0]["session_id"],
        session.as_str()
    );
    let table = server.cli(&["sessions", "list", "--user", USER], &[]);
    assert!(stdout(&table).starts_with("SESSION"), "{}", stdout(&table));
    assert!(stdout(&table).contains(&session));

    let stats = server.cli(&["stats", "--json"], &[]);
    assert_eq!(json_out(&stats)["active_sessions"], 1);
    let stats = server.cli(&["stats"], &[]);
    assert!(
        stdout(&stats).contains("active sessions"),
        "{}",
        stdout(&stats)
    );

    let revoke = server.cli(&["sessions", "revoke", &session], &[]);
    assert!(revoke.status.success(), "{}", stderr(&revoke));
    assert!(stdout(&revoke).contains(&session));
    let again = server.cli(&["sessions", "revoke", &session], &[]);
    assert_eq!(again.status.code(), Some(1), "a refused request exits 1");
    assert!(stderr(&again).contains("NOT_FOUND"), "{}", stderr(&again));
    let again_json = server.cli(&["sessions", "revoke", &session, "--json"], &[]);
    assert_eq!(json_out(&again_json)["error"]["type"], "NOT_FOUND");

    let revoke_user = server.cli(&["sessions", "revoke-user", USER, "--json"], &[]);
    assert_eq!(json_out(&revoke_user)["revoked"], 0);
    let cleanup = server.cli(&["cleanup"], &[]);
    assert!(stdout(&cleanup).contains("removed 0 expired sessions"));
    let remove = server.cli(&["members", "remove", ORG, USER], &[]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    let gone = server.cli(&["members", "get", ORG, USER], &[]);
    assert_eq!(gone.status.code(), Some(1));

    let bad = server.cli(&["sessions", "revoke", "not-a-uuid"], &[]);
    assert_eq!(bad.status.code(), Some(2), "a bad id is a usage error");
    let unreachable = command(
        &[
            "stats",
            "--url",
            "http://127.0.0.1:9",
            "--timeout-secs",
            "2",
        ],
        &[],
    )
    .output()
    .expect("run");
    assert_eq!(unreachable.status.code(), Some(3));

    let logs = server.logs_with("route=\"/v1/sessions/current\" status=200");
    assert!(logs.contains("DEVELOPMENT MODE"), "{logs}");
    assert!(
        logs.contains("route=\"/v1/sessions/current\" status=200"),
        "{logs}"
    );
    for secret in [&access, &refresh] {
        assert!(!logs.contains(secret.as_str()), "a token reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_api_key_requests_and_the_cli_must_carry_it() {
    let mut env = secrets();
    env.push(("TESSERA_API_KEY", API_KEY));
    env.push(("TESSERA_LOG_FORMAT", "json"));
    let server = Server::start(&["serve"], &env);
    let http = reqwest::Client::new();
    let refused = http
        .get(format!("{}/v1/stats", server.url))
        .send()
        .await
        .expect("stats");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "AUTHENTICATION_ERROR");
    let ok = http
        .get(format!("{}/v1/stats", server.url))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .expect("stats");
    assert_eq!(ok.status(), 200);
    let health = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    let with_key = server.cli(&["stats", "--json"], &[("TESSERA_API_KEY", API_KEY)]);
    assert!(with_key.status.success(), "{}", stderr(&with_key));
    let without = server.cli(&["stats"], &[]);
    assert_eq!(without.status.code(), Some(1));
    assert!(stderr(&without).contains("AUTHENTICATION_ERROR"));

    let logs = server.logs_with("\"route\":\"/v1/stats\"");
    let request_line = logs
        .lines()
        .find(|l| l.contains("\"route\":\"/v1/stats\""))
        .unwrap_or_else(|| panic!("no JSON request line: {logs}"));
    let line: Value = serde_json::from_str(request_line).expect("a JSON log line");
    assert_eq!(line["method"], "GET");
    assert!(line["latency_us"].is_u64());
    assert!(line["request_id"].is_string());
    assert!(!logs.contains(API_KEY), "the API key reached the logs");
}

/// Opens a connection and sends a membership PUT whose body is announced
/// as `content_length` bytes but of which only `sent` goes out: a request
/// in flight, waiting for the rest of its body.
async fn partial_put(server: &Server, content_length: usize, sent: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let request = format!(
        "PUT /v1/orgs/{ORG}/members/{USER} HTTP/1.1\r\nhost: localhost\r\n\
         content-type: application/json\r\ncontent-length: {content_length}\r\n\r\n{sent}"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the head");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_then_exits() {
    let mut server = Server::start(&["serve", "--dev"], &[]);
    let body = json!({"role": "admin"}).to_string();
    let (head, tail) = body.split_at(5);
    let mut stream = partial_put(&server, body.len(), head).await;
    // Let the server read the head; the request is now in flight, waiting
    // for the rest of its body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(server.addr()).await.is_err(),
        "the listener is closed once shutdown starts"
    );
    stream
        .write_all(tail.as_bytes())
        .await
        .expect("send the rest");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the answer");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"role\":\"admin\""), "{response}");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let logs = server.logs();
    assert!(logs.contains("shutting down"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_first_request_is_cut_off() {
    let server = Server::start(&["serve", "--dev"], &[("TESSERA_READ_TIMEOUT_SECS", "1")]);
    let started = std::time::Instant::now();
    // One connection trickles a head that never ends, one sends nothing.
    let mut trickle = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .expect("send part of a head");
    let mut silent = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    // A prompt client is served meanwhile.
    let res = reqwest::get(format!("http://{}/healthz", server.addr()))
        .await
        .expect("a prompt request");
    assert_eq!(res.status(), 200);
    for stream in [&mut trickle, &mut silent] {
        let mut rest = Vec::new();
        // Closed (or reset) by the server: either way the read ends.
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes a stalled connection");
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "an unfinished request was not answered"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not closed before the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_changes_nothing() {
    let server = Server::start(&["serve", "--dev"], &[("TESSERA_READ_TIMEOUT_SECS", "1")]);
    let body = json!({"role": "admin"}).to_string();
    let mut stream = partial_put(&server, body.len(), &body[..5]).await;
    let started = std::time::Instant::now();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answered and closed within 10 s")
    .expect("read");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("VALIDATION_ERROR"), "{response}");
    let get = reqwest::get(format!("{}/v1/orgs/{ORG}/members/{USER}", server.url))
        .await
        .expect("get");
    assert_eq!(get.status(), 404, "the membership was not set");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_still_running_after_the_grace_period_is_dropped_and_logged() {
    let mut server = Server::start(&["serve", "--dev"], &[("TESSERA_SHUTDOWN_GRACE_SECS", "1")]);
    // A body that never comes: the request is in flight until dropped.
    let _stream = partial_put(&server, 100, "{").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let logs = server.logs();
    assert!(logs.contains("grace period over"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_with_rustls_and_the_cli_trusts_a_given_ca() {
    let dir = std::env::temp_dir().join(format!("tessera-e2e-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ca, cert, key) = write_certificates(&dir);
    let server = Server::start(
        &[
            "serve",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
        &secrets(),
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let port = server.url.rsplit(':').next().expect("port").to_owned();
    let url = format!("https://localhost:{port}");
    let stats = command(
        &[
            "stats",
            "--json",
            "--url",
            &url,
            "--ca-cert",
            ca.to_str().expect("utf-8"),
        ],
        &[],
    )
    .output()
    .expect("run");
    assert!(stats.status.success(), "{}", stderr(&stats));
    assert_eq!(json_out(&stats)["active_sessions"], 0);
    let untrusted = command(&["stats", "--url", &url], &[])
        .output()
        .expect("run");
    assert_eq!(untrusted.status.code(), Some(3), "an unknown CA is refused");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn start_up_refuses_unsafe_or_incomplete_configurations() {
    let out = command(&["serve"], &[("TESSERA_LISTEN", "127.0.0.1:0")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("JWT_SECRET is not set"), "{err}");
    assert!(err.contains("tessera keygen"), "{err}");

    let mut env = secrets();
    env.push(("TESSERA_LISTEN", "0.0.0.0:0"));
    let out = command(&["serve"], &env).output().expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("TESSERA_API_KEY"), "{}", stderr(&out));

    let out = command(&["serve", "--dev", "--listen", "0.0.0.0:0"], &[])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));

    let weak = [
        ("JWT_SECRET", "changeme-changeme-changeme-changeme"),
        ("SESSION_ENCRYPTION_KEY", ENC),
        ("TESSERA_LISTEN", "127.0.0.1:0"),
    ];
    let out = command(&["serve"], &weak).output().expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("JWT_SECRET"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("changeme-changeme"),
        "echoed the secret"
    );
}

#[test]
fn keygen_prints_secrets_that_check_config_accepts() {
    let out = command(&["keygen"], &[]).output().expect("run");
    assert!(out.status.success());
    let text = stdout(&out);
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["JWT_SECRET", "SESSION_ENCRYPTION_KEY", "TESSERA_API_KEY"]
    );
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("TESSERA_LISTEN", "0.0.0.0:8080"));
    let check = command(&["check-config"], &env).output().expect("run");
    assert!(check.status.success(), "{}", stderr(&check));
    let summary = stdout(&check);
    assert!(summary.contains("configuration OK"), "{summary}");
    for (_, secret) in &vars {
        assert!(
            !summary.contains(secret.as_str()),
            "a secret in the summary"
        );
    }
    let json = command(&["keygen", "--json"], &[]).output().expect("run");
    let v = json_out(&json);
    assert_eq!(v["JWT_SECRET"].as_str().map(str::len), Some(64));

    let bad = command(&["check-config"], &[("TESSERA_STORE", "mongodb://x")])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(78));
}
