//! What the store tests share: the PostgreSQL to test on (the one on
//! 127.0.0.1:5432, or `TESSERA_TEST_POSTGRES_URL`, or a private server when
//! neither answers), a fresh schema per test, and helpers to build managers
//! and to read back what the store wrote.
#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;
use std::time::Duration;

use tessera_postgres::{PostgresOptions, PostgresStore};
use tessera_test_support::PostgresServer;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn reachable(url: &str) -> bool {
    let Ok(mut config) = url.parse::<tokio_postgres::Config>() else {
        return false;
    };
    config.connect_timeout(Duration::from_secs(1));
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

/// The database for tests: `TESSERA_TEST_POSTGRES_URL`, else
/// 127.0.0.1:5432/test, else (if that does not answer) a private server
/// started once per test binary.
pub async fn url() -> String {
    static URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    static PRIVATE: OnceLock<PostgresServer> = OnceLock::new();
    URL.get_or_init(|| async {
        let url =
            std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        if reachable(&url).await {
            url
        } else {
            PRIVATE.get_or_init(PostgresServer::start).url()
        }
    })
    .await
    .clone()
}

/// A schema name no other test (or test run) uses.
pub fn unique_schema() -> String {
    let id = tessera::SessionId::random().as_uuid().simple().to_string();
    format!("tessera_test_{}", &id[..16])
}

/// Options for a fresh schema, with short timeouts.
pub fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: Some(schema.to_owned()),
        pool_size: 8,
        ..PostgresOptions::default()
    }
}

/// A store on the test database in a fresh schema.
pub async fn store() -> PostgresStore {
    PostgresStore::connect(&url().await, options(&unique_schema()))
        .await
        .expect("connect to the test PostgreSQL")
}

/// A plain client on `url`, for reading back and cleaning up.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a raw connection to the test PostgreSQL");
    tokio::spawn(conn);
    client
}

/// Drops a test's schema and everything in it.
pub async fn drop_schema(schema: Option<&str>) {
    let Some(schema) = schema else { return };
    assert!(
        schema.starts_with("tessera_test_"),
        "only test schemas are dropped"
    );
    raw(&url().await)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
}

pub const JWT_SECRET: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-postgres-test-only";
pub const ENCRYPTION_KEY: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-postgres-test-only";

/// A manager over `store` with test keys and no background cleanup.
pub fn manager(store: PostgresStore) -> tessera::SessionManager {
    tessera::SessionManager::builder()
        .keys(tessera::KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("test keys"))
        .store(std::sync::Arc::new(store))
        .lifetimes(tessera::Lifetimes {
            cleanup_interval: Duration::ZERO,
            ..tessera::Lifetimes::default()
        })
        .build()
        .expect("manager")
}

pub fn random_user() -> tessera::UserId {
    tessera::UserId::from_uuid(uuid::Uuid::new_v4())
}

pub fn random_org() -> tessera::OrgId {
    tessera::OrgId::from_uuid(uuid::Uuid::new_v4())
}

pub fn role(name: &str) -> tessera::RoleName {
    tessera::RoleName::parse(name).expect("role")
}
