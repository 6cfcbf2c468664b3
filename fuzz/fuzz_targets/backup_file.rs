//! Arbitrary bytes as a backup file, and as the frames of an authentic one
//! (the frame and end-of-file checks behind the MAC).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(!tessera::fuzzing::backup_file(data), "a fuzzed backup was accepted");
    let _ = tessera::fuzzing::authenticated_backup(data);
});
