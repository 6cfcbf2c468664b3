//! The memory store against the store contract: every case of
//! `tessera-conformance`, one test each.

tessera_conformance::store_tests!(tessera::MemoryStore::new());
