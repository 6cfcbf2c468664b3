//! The PostgreSQL store against the store contract, unchanged: every case
//! of `tessera-conformance`, each in a fresh schema dropped afterwards.

mod support;

tessera_conformance::store_tests!(
    support::store().await,
    teardown = |store| async move { support::drop_schema(store.schema()).await }
);
