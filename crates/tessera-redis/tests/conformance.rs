//! The Redis store against the store contract, unchanged: every case of
//! `tessera-conformance` on one server and on a three-master cluster. Each
//! test gets its own key prefix and deletes its keys afterwards.

mod support;

mod standalone {
    use super::support::{self, Mode};

    tessera_conformance::store_tests!(
        support::store(Mode::Standalone).await,
        teardown = |store| async move { support::delete_keys(Mode::Standalone, store.prefix()) }
    );
}

mod cluster {
    use super::support::{self, Mode};

    tessera_conformance::store_tests!(
        support::store(Mode::Cluster).await,
        teardown = |store| async move { support::delete_keys(Mode::Cluster, store.prefix()) }
    );
}
