//! What hostile input costs in memory, counted by the allocator itself.
//!
//! This test binary counts every allocation (`stats_alloc`). The counters
//! are process-wide, so the binary holds one test, which runs its checks one
//! after another on a current-thread runtime: nothing else allocates while
//! a region is measured.
//!
//! The claims: rejecting a forged or malformed token allocates a small,
//! fixed amount whatever its size (nothing is copied out of the input before
//! the signature holds), and validating or rejecting over and over holds no
//! memory from one call to the next.

mod common;

use std::alloc::System;

use common::Harness;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tessera::token::access::MAX_TOKEN_LEN;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// (bytes allocated, change in live bytes) while `f` runs.
async fn counted<F: std::future::Future>(f: F) -> (usize, isize, F::Output) {
    let region = Region::new(ALLOCATOR);
    let out = f.await;
    let c = region.change();
    let live = c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated;
    (
        c.bytes_allocated + c.bytes_reallocated.max(0) as usize,
        live,
        out,
    )
}

/// A token of `len` bytes that looks like a JWS (three base64url segments,
/// a real header) but carries someone else's signature.
fn forged(genuine: &str, len: usize) -> String {
    let header = genuine.split('.').next().expect("a header");
    let signature = genuine.rsplit('.').next().expect("a signature");
    let payload_len = len - header.len() - signature.len() - 2;
    format!("{header}.{}.{signature}", "A".repeat(payload_len))
}

#[tokio::test]
async fn hostile_input_allocates_little_and_nothing_is_held() {
    let h = Harness::new().await;
    rejecting_a_token_allocates_little_whatever_its_size(&h).await;
    rejecting_a_refresh_token_allocates_little_whatever_its_size(&h).await;
    validating_again_and_again_holds_no_memory(&h).await;
}

async fn rejecting_a_token_allocates_little_whatever_its_size(h: &Harness) {
    let issued = h.login().await;
    let genuine = issued.access_token.expose();
    let hostile = [
        forged(genuine, 200),
        forged(genuine, MAX_TOKEN_LEN),
        "A".repeat(MAX_TOKEN_LEN),
        "A".repeat(MAX_TOKEN_LEN + 1),
        "A".repeat(1 << 20),
        ".".repeat(MAX_TOKEN_LEN),
        format!("{}.{}", "e".repeat(4000), "e".repeat(4000)),
    ];
    for token in &hostile {
        let (allocated, _, result) = counted(h.manager.validate_session(token)).await;
        assert!(result.is_err(), "a hostile token of {} bytes", token.len());
        // The error itself and nothing more: no copy of the input.
        assert!(
            allocated <= 512,
            "rejecting a {}-byte token allocated {allocated} bytes",
            token.len()
        );
    }
}

async fn rejecting_a_refresh_token_allocates_little_whatever_its_size(h: &Harness) {
    let issued = h.login().await;
    let genuine = issued.refresh_token.expose();
    let mut flipped = genuine.as_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let hostile = [flipped, "tsr1_".repeat(20_000), "A".repeat(1 << 20)];
    for token in &hostile {
        let (allocated, _, result) = counted(h.manager.refresh_session(token)).await;
        assert!(
            result.is_err(),
            "a hostile refresh token of {} bytes",
            token.len()
        );
        assert!(
            allocated <= 512,
            "rejecting a {}-byte refresh token allocated {allocated} bytes",
            token.len()
        );
    }
}

async fn validating_again_and_again_holds_no_memory(h: &Harness) {
    let mut tokens = Vec::new();
    for _ in 0..16 {
        tokens.push(h.login().await.access_token);
    }
    let forged = forged(tokens[0].expose(), 400);
    // The same sessions through a manager that remembers nothing, so every
    // call takes the full path (HMAC, JSON, decryption).
    let uncached = tessera::SessionManager::builder()
        .keys(common::keys())
        .store(h.store.clone())
        .clock(std::sync::Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .validation_cache(0)
        .build()
        .expect("manager builds");
    for (name, manager) in [("cached", &h.manager), ("uncached", &uncached)] {
        // Warm up: the first validation of each token fills the validation
        // cache, which is memory held on purpose (and bounded by its size).
        for t in &tokens {
            manager.validate_session(t.expose()).await.expect("valid");
        }
        let (_, live, ()) = counted(async {
            for i in 0..10_000 {
                let t = &tokens[i % tokens.len()];
                manager.validate_session(t.expose()).await.expect("valid");
                assert!(manager.validate_session(&forged).await.is_err());
            }
        })
        .await;
        assert_eq!(
            live, 0,
            "{name}: 20,000 validations left {live} bytes behind"
        );
    }
}
