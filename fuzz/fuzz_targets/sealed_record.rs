//! Arbitrary bytes as a sealed session record from the store, and as the
//! plaintext of an authentic one (the record decoder behind AES-GCM).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(!tessera::fuzzing::sealed_record(data), "a fuzzed record opened");
    let _ = tessera::fuzzing::record_plaintext(data);
});
