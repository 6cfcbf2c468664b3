//! PostgreSQL holds only ciphertext, hashes and keyed-hash indexes:
//! sessions are created, refreshed and validated through a real
//! `SessionManager`, then every row of every table in the store's schema,
//! as text and every `bytea` column as raw bytes, is scanned for the user
//! id, org id, device id, IP addresses, user agent, attribute, role and
//! tokens, in every encoding they could leak in.

mod support;

use tessera::limit::RateLimiter;
use tessera_test_support::plaintext::Probe;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every table of `schema`: each row as PostgreSQL's text form (`bytea` as
/// `\x` hex), and each `bytea` value as raw bytes.
async fn dump(schema: &str) -> Vec<(String, Vec<u8>)> {
    let client = support::raw(&support::url().await).await;
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .expect("list tables");
    let mut out = Vec::new();
    for t in &tables {
        let table: String = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM \"{schema}\".{table} t"), &[])
            .await
            .expect("rows as text");
        for r in &rows {
            let text: String = r.get(0);
            out.push((format!("{table} (row text)"), text.into_bytes()));
        }
        let columns = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                &[&schema, &table],
            )
            .await
            .expect("bytea columns");
        for c in &columns {
            let column: String = c.get(0);
            let rows = client
                .query(&format!("SELECT {column} FROM \"{schema}\".{table}"), &[])
                .await
                .expect("bytea values");
            for r in &rows {
                let raw: Vec<u8> = r.get(0);
                out.push((format!("{table}.{column} (raw)"), raw));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_plaintext_identifiers_or_tokens() {
    let store = support::store().await;
    let schema = store.schema().expect("a test schema").to_owned();
    let limiter = store.rate_limiter();
    let manager = support::manager(store);

    let probe = Probe::seed(&manager, 24).await;
    for _ in 0..3 {
        limiter
            .check(
                tessera::SessionId::random().as_bytes(),
                10,
                1_800_000_000_000,
            )
            .await
            .expect("rate limit");
    }

    let dump = dump(&schema).await;
    for table in [
        "tessera_sessions",
        "tessera_memberships",
        "tessera_rate_limits",
        "tessera_migrations",
    ] {
        assert!(
            dump.iter().any(|(what, _)| what.starts_with(table)),
            "the scan read {table}"
        );
    }
    for id in &probe.session_ids {
        assert!(
            dump.iter()
                .any(|(_, blob)| contains(blob, id.to_string().as_bytes())),
            "the scan sees what the store may hold (session id {id})"
        );
    }
    let mut scanned = 0usize;
    for (what, blob) in &dump {
        scanned += blob.len();
        probe.assert_absent(what, blob);
    }
    assert!(
        scanned > 24 * 200,
        "the scan read the sealed records ({scanned} bytes)"
    );
    support::drop_schema(Some(&schema)).await;
}
