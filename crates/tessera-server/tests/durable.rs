//! Sessions survive the process: the real binary on its default embedded
//! store is killed with SIGKILL and started again on the same data
//! directory with the same keys, and every write it acknowledged is there.
//! A second service on a locked directory and a directory that cannot be
//! made are refused at start, by path.

mod process;

use std::time::Duration;

use process::{Server, run_to_exit, temp_dir};
use serde_json::{Value, json};

const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-durable-test";
const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-durable-test";
const ORG: &str = "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11";

fn user(i: usize) -> String {
    format!("6f9619ff-8b86-d011-b42d-{i:012x}")
}

fn env(dir: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JWT_SECRET", JWT.to_owned()),
        ("SESSION_ENCRYPTION_KEY", ENC.to_owned()),
        ("TESSERA_DATA_DIR", dir.to_owned()),
        // Creates and refreshes in a burst; the limits are not under test.
        ("TESSERA_CREATE_LIMIT_PER_MINUTE", "0".to_owned()),
        ("TESSERA_REFRESH_LIMIT_PER_MINUTE", "0".to_owned()),
    ]
}

fn start(dir: &str) -> Server {
    let vars = env(dir);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(&["serve"], &vars)
}

struct Live {
    access: String,
    refresh: String,
}

async fn create(http: &reqwest::Client, url: &str, user: &str) -> Live {
    let r = http
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"user_id": user, "org_id": ORG}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    Live {
        access: v["access_token"].as_str().expect("token").to_owned(),
        refresh: v["refresh_token"].as_str().expect("token").to_owned(),
    }
}

async fn status_of_current(http: &reqwest::Client, url: &str, access: &str) -> u16 {
    http.get(format!("{url}/v1/sessions/current"))
        .bearer_auth(access)
        .send()
        .await
        .expect("validate")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9_and_a_restart() {
    let dir = temp_dir("durable");
    let dir_text = dir.display().to_string();
    let mut server = start(&dir_text);
    let logs = server.logs();
    assert!(
        logs.contains(&format!("embedded (SQLite file {dir_text}/sessions.db)")),
        "the start-up line names the store and its file: {logs}"
    );
    let http = reqwest::Client::new();
    let url = server.url.clone();

    for i in 0..6 {
        let r = http
            .put(format!("{url}/v1/orgs/{ORG}/members/{}", user(i)))
            .json(&json!({"role": "member"}))
            .send()
            .await
            .expect("membership");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let mut sessions = Vec::new();
    for i in 0..30 {
        sessions.push(create(&http, &url, &user(i % 5)).await);
    }
    // Rotate ten: only the successors may work after the restart.
    for s in sessions.iter_mut().take(10) {
        let r = http
            .post(format!("{url}/v1/sessions/refresh"))
            .json(&json!({"refresh_token": s.refresh}))
            .send()
            .await
            .expect("refresh");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        s.access = v["access_token"].as_str().expect("token").to_owned();
        s.refresh = v["refresh_token"].as_str().expect("token").to_owned();
    }
    // Destroy five.
    let destroyed: Vec<Live> = sessions.drain(25..).collect();
    for s in &destroyed {
        let r = http
            .delete(format!("{url}/v1/sessions/current"))
            .bearer_auth(&s.access)
            .send()
            .await
            .expect("destroy");
        assert_eq!(r.status(), 204);
    }
    // A membership change: user 5 (no sessions) is removed.
    let r = http
        .delete(format!("{url}/v1/orgs/{ORG}/members/{}", user(5)))
        .send()
        .await
        .expect("remove");
    assert!(r.status().is_success());

    server.kill_hard();
    let server = start(&dir_text);
    let url = server.url.clone();

    for s in &sessions {
        assert_eq!(status_of_current(&http, &url, &s.access).await, 200);
    }
    for s in &destroyed {
        assert_eq!(
            status_of_current(&http, &url, &s.access).await,
            401,
            "a destroyed session stays destroyed"
        );
    }
    // The successors' refresh tokens are the live ones.
    for s in sessions.iter().take(10) {
        let r = http
            .post(format!("{url}/v1/sessions/refresh"))
            .json(&json!({"refresh_token": s.refresh}))
            .send()
            .await
            .expect("refresh");
        assert_eq!(r.status(), 200);
    }
    let stats: Value = http
        .get(format!("{url}/v1/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["active_sessions"], 25, "{stats}");
    let kept = http
        .get(format!("{url}/v1/orgs/{ORG}/members/{}", user(0)))
        .send()
        .await
        .expect("member");
    assert_eq!(kept.status(), 200);
    let removed = http
        .get(format!("{url}/v1/orgs/{ORG}/members/{}", user(5)))
        .send()
        .await
        .expect("member");
    assert_eq!(removed.status(), 404, "a removal is durable too");
    // A new session for a member kept across the restart.
    create(&http, &url, &user(4)).await;

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_service_on_the_same_data_directory_is_refused() {
    let dir = temp_dir("locked");
    let dir_text = dir.display().to_string();
    let first = start(&dir_text);
    let vars = env(&dir_text);
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("TESSERA_LISTEN", "127.0.0.1:0"));
    let (code, err) = run_to_exit(&["serve"], &vars, Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&dir_text), "{err}");
    assert!(err.contains("in use by another tessera serve"), "{err}");
    // The first one still serves.
    let health = reqwest::get(format!("{}/readyz", first.url))
        .await
        .expect("ready");
    assert_eq!(health.status(), 200);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_directory_that_cannot_be_made_is_refused_by_path() {
    let file = temp_dir("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let dir = file.join("data");
    let dir_text = dir.display().to_string();
    let vars = env(&dir_text);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, err) = run_to_exit(&["serve"], &vars, Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&dir_text), "{err}");
    assert!(err.contains("cannot be created"), "{err}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_store_outside_dev_warns_that_sessions_are_lost_at_restart() {
    let server = Server::start(
        &["serve"],
        &[
            ("JWT_SECRET", JWT),
            ("SESSION_ENCRYPTION_KEY", ENC),
            ("TESSERA_STORE", "memory"),
        ],
    );
    let logs = server.logs_with("lost when it stops");
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("lost when it stops or restarts"), "{logs}");
}
