//! Arbitrary header and payload bytes, validly signed with a test key, so
//! the header parser and the claims parser and checks behind the signature
//! are fuzzed. The first byte says where the header ends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (header, payload) = rest.split_at(usize::from(split).min(rest.len()));
    let _ = tessera::fuzzing::signed_access_token(header, payload);
});
