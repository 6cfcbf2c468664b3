//! `tessera backup` and `tessera restore` with the real binary: a backup of
//! the embedded store taken while the service runs, restored into a fresh
//! embedded store, into Redis and from there into PostgreSQL, gives sessions that validate and refresh
//! there with the same keys; a restore is idempotent; a damaged file is
//! refused with nothing written; the memory store is refused by name.

mod process;

use std::path::Path;
use std::process::Output;

use process::{Server, command, temp_dir};
use serde_json::{Value, json};

const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-backup-test";
const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-backup-test";
const ORG: &str = "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11";
const USER: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";

fn with_keys(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("JWT_SECRET", JWT.to_owned()),
        ("SESSION_ENCRYPTION_KEY", ENC.to_owned()),
        ("TESSERA_CREATE_LIMIT_PER_MINUTE", "0".to_owned()),
    ];
    v.extend_from_slice(extra);
    v
}

fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn run(args: &[&str], env: &[(&'static str, String)]) -> Output {
    command(args, &refs(env)).output().expect("run tessera")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

struct Tokens {
    access: String,
    refresh: String,
}

async fn seed(url: &str, n: usize) -> Vec<Tokens> {
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{url}/v1/orgs/{ORG}/members/{USER}"))
        .json(&json!({"role": "member"}))
        .send()
        .await
        .expect("membership");
    assert!(r.status().is_success());
    let mut out = Vec::new();
    for _ in 0..n {
        let v: Value = http
            .post(format!("{url}/v1/sessions"))
            .json(&json!({"user_id": USER, "org_id": ORG}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        out.push(Tokens {
            access: v["access_token"].as_str().expect("access").to_owned(),
            refresh: v["refresh_token"].as_str().expect("refresh").to_owned(),
        });
    }
    out
}

/// Every session validates on `url`, the first three refresh there, and a
/// new session can be made for the restored member.
async fn all_work_on(url: &str, tokens: &[Tokens]) {
    let http = reqwest::Client::new();
    for t in tokens {
        let r = http
            .get(format!("{url}/v1/sessions/current"))
            .bearer_auth(&t.access)
            .send()
            .await
            .expect("validate");
        assert_eq!(r.status(), 200, "a restored session validates");
    }
    for t in tokens.iter().take(3) {
        let r = http
            .post(format!("{url}/v1/sessions/refresh"))
            .json(&json!({"refresh_token": t.refresh}))
            .send()
            .await
            .expect("refresh");
        assert_eq!(r.status(), 200, "a restored session refreshes");
    }
    let r = http
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"user_id": USER, "org_id": ORG}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201, "the membership came along");
}

fn file_in(dir: &Path, name: &str) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    dir.join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_backup_taken_live_restores_into_embedded_redis_and_postgres() {
    let work = temp_dir("backup");
    let source_dir = work.join("source").display().to_string();
    let source_env = with_keys(&[("TESSERA_DATA_DIR", source_dir.clone())]);
    let server = Server::start(&["serve"], &refs(&source_env));
    let tokens = seed(&server.url, 40).await;

    // While the service runs.
    let file = file_in(&work, "sessions.tbk");
    let out = run(&["backup", "--output", &file, "--json"], &source_env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json_of(&out);
    assert_eq!(summary["sessions"], 40);
    assert_eq!(summary["memberships"], 1);
    let again = run(&["backup", "--output", &file], &source_env);
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    drop(server);

    // Into a fresh embedded store, twice.
    let target_dir = work.join("target").display().to_string();
    let target_env = with_keys(&[("TESSERA_DATA_DIR", target_dir)]);
    let first = json_of(&run(&["restore", &file, "--json"], &target_env));
    assert_eq!(first["sessions_written"], 40);
    assert_eq!(first["memberships_written"], 1);
    let second = json_of(&run(&["restore", &file, "--json"], &target_env));
    assert_eq!(second["sessions_written"], 0, "idempotent");
    assert_eq!(second["sessions_kept"], 40);
    assert_eq!(second["memberships_kept"], 1);
    let target = Server::start(&["serve"], &refs(&target_env));
    all_work_on(&target.url, &tokens).await;
    drop(target);

    // Into Redis: the migration path from one store to another.
    let prefix = format!("tessera-backup-test-{}:", std::process::id());
    let redis_env = with_keys(&[
        ("TESSERA_STORE", "redis://127.0.0.1:6379".to_owned()),
        ("TESSERA_REDIS_PREFIX", prefix.clone()),
    ]);
    let into_redis = run(&["restore", &file], &redis_env);
    assert!(
        into_redis.status.success(),
        "{}",
        String::from_utf8_lossy(&into_redis.stderr)
    );
    assert!(
        String::from_utf8_lossy(&into_redis.stdout).contains("40 sessions written"),
        "{}",
        String::from_utf8_lossy(&into_redis.stdout)
    );
    let on_redis = Server::start(&["serve"], &refs(&redis_env));
    all_work_on(&on_redis.url, &tokens[3..]).await;
    // And back out of Redis, live.
    let from_redis = file_in(&work, "from-redis.tbk");
    let out = json_of(&run(&["backup", "-o", &from_redis, "--json"], &redis_env));
    assert_eq!(out["memberships"], 1);
    assert!(out["sessions"].as_u64().is_some_and(|n| n >= 40), "{out}");
    drop(on_redis);

    // Into PostgreSQL, in a schema of this test's own.
    let schema = format!("tessera_backup_test_{}", std::process::id());
    let pg_env = with_keys(&[
        (
            "TESSERA_STORE",
            "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        ),
        ("TESSERA_POSTGRES_SCHEMA", schema.clone()),
    ]);
    let into_pg = json_of(&run(&["restore", &from_redis, "--json"], &pg_env));
    assert!(
        into_pg["sessions_written"]
            .as_u64()
            .is_some_and(|n| n >= 40),
        "{into_pg}"
    );
    let on_pg = Server::start(&["serve"], &refs(&pg_env));
    all_work_on(&on_pg.url, &tokens[6..]).await;
    drop(on_pg);
    let _ = std::process::Command::new("psql")
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-c",
        ])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .status();
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "redis-cli --scan --pattern '{prefix}*' | xargs -r redis-cli DEL >/dev/null"
        ))
        .status();
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_or_foreign_file_restores_nothing() {
    let work = temp_dir("damaged");
    let source_env = with_keys(&[("TESSERA_DATA_DIR", work.join("s").display().to_string())]);
    let server = Server::start(&["serve"], &refs(&source_env));
    seed(&server.url, 5).await;
    let file = file_in(&work, "good.tbk");
    assert!(run(&["backup", "-o", &file], &source_env).status.success());
    drop(server);
    let good = std::fs::read(&file).expect("read");

    let target_env = with_keys(&[("TESSERA_DATA_DIR", work.join("t").display().to_string())]);
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x10;
    for (name, bytes) in [
        ("truncated", good[..good.len() - 7].to_vec()),
        ("flipped", flipped),
        ("foreign", b"PGDMP not a tessera backup".to_vec()),
    ] {
        let bad = file_in(&work, name);
        std::fs::write(&bad, &bytes).expect("write");
        let out = run(&["restore", &bad], &target_env);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("nothing was restored"), "{name}: {err}");
    }
    // Under other keys.
    let mut other = target_env.clone();
    other[1].1 = "Xq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-other-keys".to_owned();
    let out = run(&["restore", &file], &other);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another SESSION_ENCRYPTION_KEY"));
    // Nothing was written by any of them: the good file writes all five.
    let out = json_of(&run(&["restore", &file, "--json"], &target_env));
    assert_eq!(out["sessions_written"], 5);

    let memory = with_keys(&[("TESSERA_STORE", "memory".to_owned())]);
    let out = run(&["backup", "-o", &file_in(&work, "m.tbk")], &memory);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory store"));
    let _ = std::fs::remove_dir_all(&work);
}
