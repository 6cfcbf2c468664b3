//! Arbitrary bytes as a bearer token, against an HS256 and an EdDSA ring:
//! the size check, the compact-JWS split, base64url, the strict header
//! parser, the algorithm and key-id checks and signature verification.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Nobody forges a signature by fuzzing; acceptance would be a finding.
    assert!(!tessera::fuzzing::access_token(data), "a fuzzed token verified");
});
