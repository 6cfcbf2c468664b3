//! The parsers of everything a client or an operator supplies: user, org,
//! session and device ids, IP addresses, user agents, permissions, grants,
//! role names, a new-session request, and role policies in TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera::fuzzing::inputs(data);
});
