//! Redis holds only ciphertext, hashes and keyed-hash indexes: sessions are
//! created, refreshed and validated through a real `SessionManager`, then
//! every key the store wrote, and everything in it, is scanned for the user
//! id, org id, device id, IP address, user agent, attributes, role and
//! tokens, in every encoding they could leak in.

mod support;

use support::Mode;
use tessera_test_support::plaintext::Probe;

async fn redis_holds_no_plaintext(mode: Mode) {
    let store = support::store(mode).await;
    let prefix = store.prefix().to_owned();
    let manager = support::manager(store);

    // Enough sessions that, in a cluster, every master holds some.
    let probe = Probe::seed(&manager, 48).await;

    let dump = support::dump(mode, &prefix);
    assert!(
        dump.len() > 16,
        "the scan found the store's keys ({} keys)",
        dump.len()
    );
    let mut scanned = 0usize;
    for (key, values) in &dump {
        let what = format!("Redis key {:?}", String::from_utf8_lossy(key));
        for blob in std::iter::once(key).chain(values) {
            scanned += blob.len();
            probe.assert_absent(&what, blob);
        }
    }
    assert!(
        scanned > 48 * 100,
        "the scan read the sealed records ({scanned} bytes)"
    );
    if mode == Mode::Cluster {
        for node in support::cluster().servers() {
            let on_node = support::keys(Mode::Cluster, &prefix)
                .into_iter()
                .filter(|(url, _)| *url == node.url())
                .count();
            assert!(on_node > 0, "every master holds some of the sessions");
        }
    }
    support::delete_keys(mode, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_plaintext_identifiers_or_tokens() {
    redis_holds_no_plaintext(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_holds_no_plaintext_identifiers_or_tokens() {
    redis_holds_no_plaintext(Mode::Cluster).await;
}
