//! Migrations: versioned, applied once however many nodes start at once
//! (the advisory lock), run at first use by a lazy store, and a schema
//! newer than this code is refused with a message that says what to do.

mod support;

use futures_util::future::join_all;
use tessera::SessionStore;
use tessera_postgres::{PostgresOptions, PostgresStore};

/// `(version, rows with that version)` in a schema's migrations table.
async fn versions(schema: &str) -> Vec<(i32, i64)> {
    support::raw(&support::url().await)
        .await
        .query(
            &format!(
                "SELECT version, count(*) FROM \"{schema}\".tessera_migrations \
                 GROUP BY version ORDER BY version"
            ),
            &[],
        )
        .await
        .expect("read the migrations table")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn schema_exists(schema: &str) -> bool {
    support::raw(&support::url().await)
        .await
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .expect("pg_namespace")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_starting_at_once_on_a_fresh_schema_migrate_it_once() {
    let schema = support::unique_schema();
    let url = support::url().await;
    let nodes = join_all((0..8).map(|_| {
        let options = PostgresOptions {
            pool_size: 2,
            ..support::options(&schema)
        };
        let url = url.clone();
        async move { PostgresStore::connect(&url, options).await }
    }))
    .await;
    let nodes: Vec<PostgresStore> = nodes
        .into_iter()
        .map(|n| n.expect("every node starts"))
        .collect();
    assert_eq!(
        versions(&schema).await,
        vec![(PostgresStore::schema_version(), 1)],
        "one schema version, recorded once"
    );
    // What one node writes, another reads.
    let now = tessera_conformance::wall_clock_now();
    let s = tessera_conformance::session(
        tessera_conformance::random_key(),
        tessera_conformance::random_key(),
        now + 3600,
    );
    assert!(nodes[0].insert(s.clone(), now).await.expect("insert"));
    let read = nodes[7].get(&s.id, now).await.expect("get").expect("found");
    assert_eq!(read.sealed, s.sealed);
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_again_on_a_migrated_schema_changes_nothing() {
    let store = support::store().await;
    let schema = store.schema().expect("schema").to_owned();
    let now = tessera_conformance::wall_clock_now();
    let s = tessera_conformance::session([1; 16], [2; 16], now + 3600);
    store.insert(s.clone(), now).await.expect("insert");
    let again = PostgresStore::connect(&support::url().await, support::options(&schema))
        .await
        .expect("a second start");
    assert_eq!(versions(&schema).await, vec![(1, 1)]);
    assert!(
        again.get(&s.id, now).await.expect("get").is_some(),
        "data kept"
    );
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_this_code_is_refused_with_a_clear_message() {
    let store = support::store().await;
    let schema = store.schema().expect("schema").to_owned();
    support::raw(&support::url().await)
        .await
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".tessera_migrations (version, description) \
                 VALUES (999, 'from the future')"
            ),
            &[],
        )
        .await
        .expect("pretend a newer Tessera migrated");
    let want = format!(
        "the database schema is version 999, newer than this Tessera knows ({}); upgrade Tessera",
        PostgresStore::schema_version()
    );

    let err = PostgresStore::connect(&support::url().await, support::options(&schema))
        .await
        .expect_err("a newer schema is refused");
    assert!(err.to_string().ends_with(&want), "{err}");

    // A lazy node starts, but is not ready, and says why.
    let lazy = PostgresStore::connect(
        &support::url().await,
        PostgresOptions {
            lazy: true,
            ..support::options(&schema)
        },
    )
    .await
    .expect("a lazy store starts");
    let err = lazy.ping().await.expect_err("not ready on a newer schema");
    assert!(err.to_string().ends_with(&want), "{err}");
    let err = lazy
        .get(&tessera::SessionId::random(), 0)
        .await
        .expect_err("no reads either");
    assert!(err.to_string().ends_with(&want), "{err}");
    assert_eq!(
        versions(&schema).await,
        vec![(1, 1), (999, 1)],
        "nothing written"
    );
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_creates_its_schema_at_first_use() {
    let schema = support::unique_schema();
    let store = PostgresStore::connect(
        &support::url().await,
        PostgresOptions {
            lazy: true,
            ..support::options(&schema)
        },
    )
    .await
    .expect("a lazy store starts");
    assert!(
        !schema_exists(&schema).await,
        "nothing done before first use"
    );
    store.ping().await.expect("ready");
    assert!(schema_exists(&schema).await);
    assert_eq!(versions(&schema).await, vec![(1, 1)]);
    support::drop_schema(Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schemas_pool_sizes_and_urls_are_refused_before_connecting() {
    // Nothing listens on port 1: these must fail on their own checks.
    let url = "postgres://postgres@127.0.0.1:1/test";
    for schema in ["Upper", "has space", "x\"y", "pg_temp", "1st", ""] {
        let options = PostgresOptions {
            schema: Some(schema.to_owned()),
            lazy: true,
            ..PostgresOptions::default()
        };
        let err = PostgresStore::connect(url, options)
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("plain identifier"),
            "{schema:?}: {err}"
        );
    }
    let options = PostgresOptions {
        pool_size: 0,
        lazy: true,
        ..PostgresOptions::default()
    };
    assert!(PostgresStore::connect(url, options).await.is_err());
    for url in [
        "redis://127.0.0.1:6379",
        "postgres://127.0.0.1/test?sslmode=verify-ca",
        "postgres://u@127.0.0.1/test?sslmode=bogus",
        "nonsense",
    ] {
        let options = PostgresOptions {
            lazy: true,
            ..PostgresOptions::default()
        };
        assert!(PostgresStore::connect(url, options).await.is_err(), "{url}");
    }
}
