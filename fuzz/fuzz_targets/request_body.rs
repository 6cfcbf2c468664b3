//! Request bodies of the HTTP service: create, refresh and membership, each
//! through the real JSON extractor, wire type and the parsers the handler
//! applies before calling the session manager. The first byte picks the
//! endpoint and the content type; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_server::fuzzing::{RequestBody, decode_request};

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let kind = RequestBody::from_byte(first);
    // Mostly JSON: the other content types only need a few runs.
    let content_type = if first & 0xf0 == 0xf0 {
        CONTENT_TYPES[usize::from(first >> 2) % CONTENT_TYPES.len()]
    } else {
        CONTENT_TYPES[0]
    };
    let _ = decode_request(kind, content_type, body);
});
