//! The [`SessionStore`] contract as a runnable test suite.
//!
//! Every "must" in the docs of [`tessera::store::SessionStore`] is one async
//! function in [`cases`]. Each takes a fresh, empty store and panics (with an
//! assertion message naming the broken promise) when the store breaks the
//! contract. A store crate runs the whole suite with one macro call in an
//! integration test:
//!
//! ```ignore
//! // tests/store_conformance.rs of a store crate
//! tessera_conformance::store_tests!(my_store::MyStore::new());
//! ```
//!
//! The expression is evaluated once per test inside an `async` test body, so
//! it may `.await` (a store that connects to a server). A teardown closure,
//! given the store in an `Arc`, runs after the case whether it passed or
//! failed:
//!
//! ```ignore
//! tessera_conformance::store_tests!(
//!     fresh_store().await,
//!     teardown = |store| async move { store.delete_everything().await }
//! );
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case, named after the case,
//! so each promise shows by name in the test output; the calling crate needs
//! `tokio` with the `macros` and `rt-multi-thread` features as a
//! dev-dependency. Put each call in its own module to run the suite against
//! several configurations in one file.
//!
//! # Time
//!
//! The store methods take `now` explicitly, and the cases never sleep: they
//! read the wall clock once ([`wall_clock_now`]) and pass that value plus
//! offsets, so "later" is a larger `now`, not a pause. Stores that expire
//! records by themselves (a Redis TTL set from `expires_at`) run on their own
//! clock, so **the `now` passed to a store is expected to be close to
//! wall-clock time for TTL-based stores**: the cases keep every record they
//! expect to be live at least an hour past the wall clock, and every "later"
//! they ask about at most a few minutes past it, so a server's TTL never drops
//! a record the case still expects to find.
//!
//! # Data
//!
//! Sealed records are random bytes of varied lengths (and every byte value),
//! because a store must treat them as opaque. User and org keys are random.

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera::SessionStore;
use tessera::ids::SessionId;
use tessera::store::{IndexKey, StoredSession};

pub mod cases;

/// Seconds since the Unix epoch by the system clock: the base of every `now`
/// the cases pass.
pub fn wall_clock_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random bytes from the OS CSPRNG (through random session ids, so the
/// suite needs no RNG crate of its own).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid_bytes().as_slice());
    }
    out.truncate(n);
    out
}

fn uuid_bytes() -> [u8; 16] {
    *SessionId::random().as_bytes()
}

/// A random user or org key.
pub fn random_key() -> IndexKey {
    uuid_bytes()
}

/// An opaque sealed record: random bytes whose length varies with the seed
/// byte, from 1 byte to a few KiB.
pub fn opaque_record() -> Vec<u8> {
    let len = 1 + usize::from(uuid_bytes()[0]) * 13;
    random_bytes(len)
}

/// A new session for `user_key` in `org_key`, expiring at `expires_at`, with
/// an opaque record. Its `version` is deliberately not 1: a store must set it.
pub fn session(user_key: IndexKey, org_key: IndexKey, expires_at: u64) -> StoredSession {
    StoredSession {
        id: SessionId::random(),
        user_key,
        org_key,
        expires_at,
        version: 7,
        sealed: opaque_record(),
    }
}

/// Runs one case on a fresh store, then the teardown, then re-raises the
/// case's panic if it failed. Used by [`store_tests!`]; the case runs in its
/// own task so a panic still lets the teardown clean up.
pub async fn run_case<S, C, CF, T, TF>(store: S, case: C, teardown: T)
where
    S: SessionStore,
    C: FnOnce(Arc<dyn SessionStore>) -> CF,
    CF: Future<Output = ()> + Send + 'static,
    T: FnOnce(Arc<S>) -> TF,
    TF: Future<Output = ()>,
{
    let store = Arc::new(store);
    let outcome = tokio::spawn(case(store.clone())).await;
    teardown(store).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the case did not finish: {e}"),
        }
    }
}

/// Expands to one `#[tokio::test]` per contract case, each running the case
/// on a store made by the given expression. See the crate docs.
#[macro_export]
macro_rules! store_tests {
    ($make:expr $(,)?) => {
        $crate::store_tests!($make, teardown = |_store| async {});
    };
    ($make:expr, teardown = $teardown:expr $(,)?) => {
        $crate::__store_cases! {
            ($make) ($teardown)
            insert_then_get_returns_the_record_unchanged_at_version_one,
            insert_with_a_live_id_returns_false_and_changes_nothing,
            insert_over_an_expired_id_replaces_it,
            concurrent_inserts_of_one_id_admit_exactly_one,
            expired_sessions_are_never_returned_listed_or_counted_before_purge,
            missing_ids_are_not_errors,
            compare_and_swap_succeeds_only_on_the_expected_version,
            compare_and_swap_moves_the_expiry_in_every_index,
            compare_and_swap_on_an_expired_session_is_missing,
            concurrent_swaps_from_one_version_have_exactly_one_winner,
            remove_drops_the_session_from_every_index,
            user_sessions_returns_only_live_sessions_of_that_user,
            remove_user_sessions_counts_live_ones_and_spares_other_users,
            remove_user_sessions_leaves_no_session_behind_under_concurrent_inserts,
            list_visits_every_live_session_exactly_once,
            list_with_an_org_filter_visits_exactly_that_orgs_sessions,
            list_visits_sessions_that_live_through_the_listing_exactly_once,
            list_with_a_bad_cursor_is_an_error,
            purge_expired_removes_only_expired_sessions_within_the_limit,
            count_reports_live_sessions_in_all_and_per_org,
            memberships_are_stored_replaced_and_removed,
            restore_writes_a_missing_session_with_its_version,
            restore_never_rolls_a_session_back,
            restore_skips_expired_sessions_and_replaces_expired_ones,
            concurrent_restores_keep_the_highest_version,
            restore_batch_gives_each_session_the_outcome_of_restoring_it_alone,
            list_memberships_visits_every_membership,
            restore_membership_never_overwrites,
            restore_memberships_never_overwrite_and_answer_in_order,
            ping_answers,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    (($make:expr) ($teardown:expr) $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::run_case($make, $crate::cases::$case, $teardown).await;
            }
        )*
    };
}
