//! Arbitrary bytes as a refresh token (parsing and MAC check), and as the
//! body of an authentic one (what follows the MAC check, with a round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(!tessera::fuzzing::refresh_token(data), "a fuzzed refresh token authenticated");
    tessera::fuzzing::authenticated_refresh_token(data);
});
