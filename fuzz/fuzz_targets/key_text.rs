//! Signing-key configuration: PEM blocks and base64 DER as the current and
//! as a previous key, and the algorithm name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera::fuzzing::key_text(data);
});
