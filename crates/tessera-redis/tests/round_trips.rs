//! Validation costs exactly one Redis round trip, on one server and on a
//! cluster; the store's request counter is what the benchmarks report.

mod support;

use support::Mode;
use tessera::NewSession;

async fn validation_is_one_round_trip(mode: Mode) {
    let store = support::store(mode).await;
    let prefix = store.prefix().to_owned();
    let manager = support::manager(store.clone());
    let (user, org) = (support::random_user(), support::random_org());
    manager
        .set_membership(&user, &org, &support::role("member"))
        .await
        .expect("membership");
    let issued = manager
        .create_session(NewSession::new(user, org))
        .await
        .expect("create");
    // Warm: the first call after connecting may load scripts.
    manager
        .validate_session(issued.access_token.expose())
        .await
        .expect("validate");
    for _ in 0..10 {
        let before = store.round_trips();
        manager
            .validate_session(issued.access_token.expose())
            .await
            .expect("validate");
        assert_eq!(
            store.round_trips() - before,
            1,
            "one round trip per validation"
        );
    }
    support::delete_keys(mode, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_costs_one_round_trip() {
    validation_is_one_round_trip(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_costs_one_round_trip_on_a_cluster() {
    validation_is_one_round_trip(Mode::Cluster).await;
}
