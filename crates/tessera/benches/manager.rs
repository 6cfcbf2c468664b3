//! The session manager's hot paths on the memory store, and the building
//! blocks they are made of, measured in the same run so each manager figure
//! can be read against its parts.
//!
//! Run with `cargo bench -p tessera --bench manager`. Time comes from a
//! [`ManualClock`] standing still: no session expires and no validation is
//! due an activity write while a bench runs, so every iteration takes the
//! same path. Each manager bench runs against a store already holding
//! [`BACKGROUND_SESSIONS`] live sessions and cycles over a pool of
//! [`POOL`] sessions, so lookups are not all served from one hot cache line.
//! The pool fits the validation cache, so `validate_session` measures
//! repeats of a token; `validate_session_uncached` measures the full path.

use std::cell::RefCell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::{aead, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tessera::seal::{self, Purpose};
use tessera::token::access::AccessClaims;
use tessera::{
    DeviceId, KeyRing, Lifetimes, ManualClock, MemoryStore, NewSession, OrgId, RoleName, SessionId,
    SessionManager, SessionStore, UserId,
};
use tokio::runtime::Runtime;

/// Live sessions in the store besides the ones a bench works on.
const BACKGROUND_SESSIONS: usize = 100_000;
/// Sessions (or users, for create) a bench cycles over.
const POOL: usize = 1_000;
/// A fixed "now": mid-2025, Unix seconds.
const NOW: u64 = 1_750_000_000;

struct Fixture {
    manager: SessionManager,
    store: Arc<MemoryStore>,
    keys: KeyRing,
    jwt_secret: String,
    users: Vec<(UserId, OrgId)>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a Tokio runtime")
}

fn new_session(user: UserId, org: OrgId, n: usize) -> NewSession {
    let device = DeviceId::parse(&uuid::Uuid::new_v4().to_string()).expect("a device id");
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, (n >> 8) as u8, n as u8));
    NewSession::new(user, org).device_id(device).ip_address(ip)
}

/// A manager over a memory store holding `BACKGROUND_SESSIONS` sessions of
/// `POOL` members spread over ten orgs.
fn fixture(rt: &Runtime) -> Fixture {
    let jwt_secret = KeyRing::generate_secret().expect("a secret");
    let enc_secret = KeyRing::generate_secret().expect("a secret");
    let keys = KeyRing::new(&jwt_secret, &enc_secret).expect("valid keys");
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::builder()
        .keys(keys.clone())
        .store(store.clone())
        .clock(Arc::new(ManualClock::new(NOW)))
        .lifetimes(Lifetimes {
            cleanup_interval: Duration::ZERO,
            ..Lifetimes::default()
        })
        .build()
        .expect("a manager");
    let orgs: Vec<OrgId> = (0..10)
        .map(|_| OrgId::from_uuid(uuid::Uuid::new_v4()))
        .collect();
    let member = RoleName::parse("member").expect("a role");
    let users: Vec<(UserId, OrgId)> = (0..POOL)
        .map(|i| {
            (
                UserId::from_uuid(uuid::Uuid::new_v4()),
                orgs[i % orgs.len()],
            )
        })
        .collect();
    rt.block_on(async {
        for (user, org) in &users {
            manager
                .set_membership(user, org, &member)
                .await
                .expect("a membership");
        }
        for n in 0..BACKGROUND_SESSIONS {
            let (user, org) = users[n % POOL];
            manager
                .create_session(new_session(user, org, n))
                .await
                .expect("a session");
        }
    });
    Fixture {
        manager,
        store,
        keys,
        jwt_secret,
        users,
    }
}

/// Creates one session per pool user; returns (access, refresh) tokens.
fn pool_tokens(rt: &Runtime, f: &Fixture) -> Vec<(String, String)> {
    rt.block_on(async {
        let mut out = Vec::with_capacity(POOL);
        for (n, (user, org)) in f.users.iter().enumerate() {
            let issued = f
                .manager
                .create_session(new_session(*user, *org, n))
                .await
                .expect("a session");
            out.push((
                issued.access_token.expose().to_owned(),
                issued.refresh_token.expose().to_owned(),
            ));
        }
        out
    })
}

/// Validates the pool's access tokens in turn.
fn validate_loop(
    b: &mut criterion::Bencher<'_>,
    rt: &Runtime,
    manager: &SessionManager,
    tokens: &[(String, String)],
) {
    b.to_async(rt).iter_custom(|iters| async move {
        let start = Instant::now();
        for i in 0..iters as usize {
            let token = &tokens[i % POOL].0;
            black_box(manager.validate_session(token).await.expect("valid"));
        }
        start.elapsed()
    })
}

fn manager_benches(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("manager");

    {
        let f = fixture(&rt);
        let tokens = pool_tokens(&rt, &f);
        g.bench_function("validate_session", |b| {
            validate_loop(b, &rt, &f.manager, &tokens)
        });
        // The same sessions through a manager that remembers nothing: every
        // call verifies the HMAC and decrypts the record.
        let uncached = SessionManager::builder()
            .keys(f.keys.clone())
            .store(f.store.clone())
            .clock(Arc::new(ManualClock::new(NOW)))
            .lifetimes(Lifetimes {
                cleanup_interval: Duration::ZERO,
                ..Lifetimes::default()
            })
            .validation_cache(0)
            .build()
            .expect("a manager");
        g.bench_function("validate_session_uncached", |b| {
            validate_loop(b, &rt, &uncached, &tokens)
        });
        g.bench_function("has_permission", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (m, tokens) = (&f.manager, &tokens);
                async move {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let token = &tokens[i % POOL].0;
                        let allowed = m.has_permission(token, "write:users").await;
                        assert!(allowed.expect("valid"), "a member may write:users");
                    }
                    start.elapsed()
                }
            })
        });
    }

    {
        let f = fixture(&rt);
        let created = std::cell::Cell::new(0usize);
        g.bench_function("create_session", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (m, users, created) = (&f.manager, &f.users, &created);
                // Device ids are made outside the timed loop: parsing client
                // input is the caller's cost, not the manager's.
                let requests: Vec<NewSession> = (0..iters as usize)
                    .map(|i| {
                        let (user, org) = users[(created.get() + i) % POOL];
                        new_session(user, org, i)
                    })
                    .collect();
                async move {
                    let start = Instant::now();
                    for new in requests {
                        black_box(m.create_session(new).await.expect("created"));
                    }
                    let elapsed = start.elapsed();
                    created.set(created.get() + iters as usize);
                    elapsed
                }
            })
        });
    }

    {
        let f = fixture(&rt);
        // Each iteration presents the pool session's *current* refresh token
        // and keeps the successor for that session's next turn: a rotation
        // chain, never the grace path (which re-presents the previous token).
        let chain = RefCell::new(
            pool_tokens(&rt, &f)
                .into_iter()
                .map(|(_, refresh)| refresh)
                .collect::<Vec<_>>(),
        );
        let mut done = 0u64;
        let before = rt
            .block_on(f.manager.session_stats())
            .expect("stats")
            .sessions_refreshed;
        g.bench_function("refresh_session", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (m, cell) = (&f.manager, &chain);
                done += iters;
                async move {
                    let mut chain = cell.take();
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let slot = &mut chain[i % POOL];
                        let next = m.refresh_session(slot).await.expect("rotated");
                        *slot = next.refresh_token.expose().to_owned();
                    }
                    let elapsed = start.elapsed();
                    cell.replace(chain);
                    elapsed
                }
            })
        });
        // Proof that every iteration was a real rotation: the grace path and
        // reuse detection do not count as refreshes.
        let stats = rt.block_on(f.manager.session_stats()).expect("stats");
        assert_eq!(
            stats.sessions_refreshed - before,
            done,
            "every call rotated"
        );
        assert_eq!(stats.refresh_reuse_detected, 0, "no reuse was detected");
    }
    g.finish();
}

/// What tessera's access-token verification deserializes.
#[derive(Deserialize)]
#[allow(dead_code)]
struct VerifiedClaims {
    sub: UserId,
    org: OrgId,
    sid: SessionId,
    iat: u64,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

/// The building blocks, each measured alone.
fn building_block_benches(c: &mut Criterion) {
    let rt = runtime();
    let f = fixture(&rt);
    let (access, refresh) = pool_tokens(&rt, &f).swap_remove(0);
    let mut g = c.benchmark_group("blocks");

    // Access tokens through jsonwebtoken with tessera's settings: the
    // reference that tessera's own verifier (inside validate_session) is
    // read against. The verifier itself is crate-private.
    let decoding = DecodingKey::from_secret(f.jwt_secret.as_bytes());
    let encoding = EncodingKey::from_secret(f.jwt_secret.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 30;
    validation.set_issuer(&["tessera"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    g.bench_function("jwt_decode_header", |b| {
        b.iter(|| jsonwebtoken::decode_header(black_box(&access)).expect("a header"))
    });
    g.bench_function("jwt_verify", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<VerifiedClaims>(black_box(&access), &decoding, &validation)
                .expect("verified")
        })
    });
    let claims: AccessClaims = jsonwebtoken::dangerous::insecure_decode(&access)
        .expect("claims")
        .claims;
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".to_owned());
    header.kid = Some(f.keys.signing_key().kid().to_owned());
    g.bench_function("jwt_sign", |b| {
        b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).expect("signed"))
    });
    // jsonwebtoken builds an HMAC key from the secret on every verify.
    g.bench_function("hmac_key_setup", |b| {
        b.iter(|| hmac::Key::new(hmac::HMAC_SHA256, black_box(f.jwt_secret.as_bytes())))
    });

    // Every seal and open derives the record's own AES-256-GCM key: an HMAC
    // (above) and this key setup.
    g.bench_function("aes_gcm_key_setup", |b| {
        b.iter(|| {
            aead::RandomizedNonceKey::new(&aead::AES_256_GCM, black_box(&[7u8; 32])).expect("a key")
        })
    });

    // Sealed records: a real one, read back from the store.
    let sid = rt
        .block_on(f.manager.validate_session(&access))
        .expect("valid")
        .session_id;
    let stored = rt
        .block_on(SessionStore::get(&*f.store, &sid, NOW))
        .expect("the store answers")
        .expect("the session exists");
    let plain = seal::open(&f.keys, Purpose::Session, sid.as_bytes(), &stored.sealed)
        .expect("the record opens");
    println!(
        "sealed session record: {} bytes ({} bytes of postcard plaintext)",
        stored.sealed.len(),
        plain.len()
    );
    g.bench_function("seal_record", |b| {
        b.iter(|| seal::seal(&f.keys, Purpose::Session, sid.as_bytes(), black_box(&plain)))
    });
    g.bench_function("open_record", |b| {
        b.iter(|| {
            seal::open(
                &f.keys,
                Purpose::Session,
                sid.as_bytes(),
                black_box(&stored.sealed),
            )
        })
    });
    g.bench_function("store_get", |b| {
        b.to_async(&rt)
            .iter(|| SessionStore::get(&*f.store, black_box(&sid), NOW))
    });

    // The refresh-token parse, rebuilt from public parts (the parser is
    // crate-private): base64url decode, HMAC-SHA256 tag, constant-time
    // compare. The key differs from tessera's derived one, so the tag does
    // not match; the work is the same.
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
    g.bench_function("refresh_parse", |b| {
        b.iter(|| {
            let mut raw = [0u8; 86];
            let n = URL_SAFE_NO_PAD
                .decode_slice(&black_box(&refresh).as_bytes()[5..], &mut raw)
                .expect("base64url");
            let mut ctx = hmac::Context::with_key(&mac);
            ctx.update(b"tessera/v1/refresh\0");
            ctx.update(&raw[..n - 16]);
            let tag = ctx.sign();
            black_box(bool::from(tag.as_ref()[..16].ct_eq(&raw[n - 16..n])))
        })
    });
    g.bench_function("hmac_sha256_64b", |b| {
        b.iter(|| hmac::sign(&mac, black_box(&[1u8; 64])))
    });
    g.bench_function("sha256_32b", |b| {
        b.iter(|| digest::digest(&digest::SHA256, black_box(&[1u8; 32])))
    });
    g.bench_function("csprng_32b", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            aws_lc_rs::rand::fill(&mut out).expect("random");
            out
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Two shared cores: short runs, enough samples for a stable median.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = building_block_benches, manager_benches
}
criterion_main!(benches);
