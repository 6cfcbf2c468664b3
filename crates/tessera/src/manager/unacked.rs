//! Rotations whose answer this process never got.
//!
//! A store that reports a failed write guarantees it will not take effect
//! later (the store contract's **No late writes**), but it cannot promise
//! the opposite: a rotation can be applied and its answer lost (a restart
//! that drops replies already computed, a reply still in transit at the
//! deadline). The client then holds the previous token and its retry looks
//! exactly like a replay. This table remembers, for a short while, each
//! rotation this process attempted and got no answer for, by the refresh
//! state it tried to write. If the session is later found in precisely
//! that state and the previous token comes back, it is the one replay
//! that cannot have seen its successor yet: it gets that successor back,
//! once, instead of a revocation. Whoever presents the previous token
//! next (a thief or the client) is treated as a replay as usual.
//!
//! It lives in process memory, so it covers retries that reach the node
//! that saw the failure; a retry that reaches another node after the grace
//! window is still revoked. Bounded in size and in age.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::ids::SessionId;

/// The most rotations remembered at once; past it new ones are not
/// remembered (a store failing that often is an outage to fix, not a case
/// to optimise).
const CAPACITY: usize = 4096;
/// How long a rotation is remembered: longer than a client's retry after an
/// error takes.
const KEEP_SECS: u64 = 600;

/// The refresh state a failed rotation tried to write.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Attempt {
    generation: u32,
    issued_at: u64,
}

#[derive(Default)]
pub(crate) struct Unacked {
    attempts: Mutex<HashMap<SessionId, (Attempt, u64)>>,
}

impl Unacked {
    /// Remembers that a rotation of `id` to `generation`, issued at
    /// `issued_at`, got no answer at `now`.
    pub(crate) fn remember(&self, id: SessionId, generation: u32, issued_at: u64, now: u64) {
        let mut map = self.attempts.lock();
        if map.len() >= CAPACITY {
            map.retain(|_, (_, at)| now.saturating_sub(*at) < KEEP_SECS);
            if map.len() >= CAPACITY {
                return;
            }
        }
        let attempt = Attempt {
            generation,
            issued_at,
        };
        map.insert(id, (attempt, now));
    }

    /// Forgets `id` (its rotation has been answered).
    pub(crate) fn forget(&self, id: &SessionId) {
        self.attempts.lock().remove(id);
    }

    /// Whether the session's current refresh state is the one a rotation
    /// with no answer wrote; if so it is forgotten, so this answers `true`
    /// once.
    pub(crate) fn take(&self, id: &SessionId, generation: u32, issued_at: u64, now: u64) -> bool {
        let mut map = self.attempts.lock();
        let matches = map.get(id).is_some_and(|(a, at)| {
            *a == Attempt {
                generation,
                issued_at,
            } && now.saturating_sub(*at) < KEEP_SECS
        });
        if matches {
            map.remove(id);
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_taken_once_and_only_in_the_state_it_wrote() {
        let u = Unacked::default();
        let id = SessionId::random();
        u.remember(id, 3, 100, 100);
        assert!(!u.take(&id, 4, 100, 101), "another generation");
        assert!(!u.take(&id, 3, 99, 101), "another rotation");
        assert!(u.take(&id, 3, 100, 101));
        assert!(!u.take(&id, 3, 100, 101), "only once");
    }

    #[test]
    fn attempts_age_out_and_are_forgotten_when_answered() {
        let u = Unacked::default();
        let id = SessionId::random();
        u.remember(id, 3, 100, 100);
        assert!(!u.take(&id, 3, 100, 100 + KEEP_SECS));
        u.remember(id, 3, 100, 100);
        u.forget(&id);
        assert!(!u.take(&id, 3, 100, 101));
    }
}
