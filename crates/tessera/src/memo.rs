//! A small, bounded memo table for the validate path.
//!
//! Validation runs two pure functions of its input on every call: checking
//! an access token's signature and claims, and opening a sealed record. The
//! same token and the same record come back many times in a row (a page
//! makes several API calls with one token), so [`Memo`] remembers recent
//! results and validation skips the HMAC, the base64, the JSON, the key
//! derivation and the AES-GCM of a repeat.
//!
//! What makes this safe is that only *pure* results are remembered, each
//! with the whole input that produced it:
//!
//! - a hit requires the input to be equal byte for byte to the remembered
//!   one (compared in constant time where the input is a secret), so a
//!   remembered result is exactly what recomputing it would give;
//! - only inputs that verified are remembered (an authentic token, a record
//!   that opened), so a forged or broken input always takes the full path;
//! - nothing time-dependent is remembered: expiry is checked on every call,
//!   and the store is read on every call, so a revoked session fails at once.
//!
//! What is remembered is a pure function of the input *and of the keys and
//! settings the manager was built with*; those are fixed for a manager's
//! life. Anything that ever changes them in place (a live key reload) must
//! start from empty tables.
//!
//! The table is direct-mapped: a fixed number of slots chosen by a keyed
//! hash (std's per-process random SipHash key, so nobody can aim inputs at
//! one slot), each behind its own lock, and a new entry simply replaces
//! whatever held its slot. No eviction bookkeeping, no growth: the number
//! of entries is fixed when it is built. Empty slots cost 16 bytes (a lock
//! and a pointer); an entry is boxed, so its size is paid only once used.

use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// See the module docs. `E` is an entry holding both the input it was
/// computed from and the result.
pub(crate) struct Memo<E> {
    slots: Box<[Mutex<Option<Box<E>>>]>,
    hasher: RandomState,
}

impl<E> Memo<E> {
    /// A table of `capacity` slots, rounded up to a power of two; 0 makes a
    /// table that remembers nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        let n = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        Self {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// How many entries it can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, key: &[u8]) -> Option<&Mutex<Option<Box<E>>>> {
        if self.slots.is_empty() {
            return None;
        }
        // The mask keeps the low bits; the length is a power of two.
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.hasher.hash_one(key) as usize) & (self.slots.len() - 1);
        self.slots.get(i)
    }

    /// Looks in the slot of `key`: `hit` sees the entry there, if any, and
    /// returns the result when the entry is the one wanted.
    pub(crate) fn get<R>(&self, key: &[u8], hit: impl FnOnce(&E) -> Option<R>) -> Option<R> {
        let slot = self.slot(key)?;
        slot.lock().as_deref().and_then(hit)
    }

    /// Puts `entry` in the slot of `key`, replacing what was there.
    pub(crate) fn put(&self, key: &[u8], entry: E) {
        if let Some(slot) = self.slot(key) {
            let old = slot.lock().replace(Box::new(entry));
            // Dropped after the lock is released.
            drop(old);
        }
    }

    /// Forgets everything.
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        for slot in &*self.slots {
            slot.lock().take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_put_and_checks_the_entry() {
        let memo: Memo<(Vec<u8>, u32)> = Memo::new(100);
        assert_eq!(memo.capacity(), 128);
        memo.put(b"a", (b"a".to_vec(), 1));
        let find = |key: &'static [u8]| memo.get(key, |(k, v)| (k.as_slice() == key).then_some(*v));
        assert_eq!(find(b"a"), Some(1));
        assert_eq!(find(b"b"), None);
        memo.put(b"a", (b"a".to_vec(), 2));
        assert_eq!(find(b"a"), Some(2), "a new entry replaces the old one");
        memo.clear();
        assert_eq!(find(b"a"), None);
    }

    #[test]
    fn an_empty_slot_costs_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Mutex<Option<Box<[u8; 512]>>>>(), 16);
    }

    #[test]
    fn a_zero_capacity_memo_remembers_nothing() {
        let memo: Memo<u32> = Memo::new(0);
        memo.put(b"a", 1);
        assert_eq!(memo.get(b"a", |v| Some(*v)), None);
        assert_eq!(memo.capacity(), 0);
    }

    #[test]
    fn memory_is_fixed_however_many_entries_are_put() {
        let memo: Memo<(u32, u32)> = Memo::new(8);
        for i in 0..10_000u32 {
            memo.put(&i.to_le_bytes(), (i, i));
        }
        let held = (0..10_000u32)
            .filter(|i| {
                memo.get(&i.to_le_bytes(), |(k, _)| (k == i).then_some(()))
                    .is_some()
            })
            .count();
        assert!(held <= 8, "{held} entries held by 8 slots");
        assert!(held >= 1);
    }
}
