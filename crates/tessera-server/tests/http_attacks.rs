//! The attacker's toolkit of `crates/tessera/tests/attack_tokens.rs`, sent
//! over HTTP, and the JWK Set endpoint.
//!
//! The library tables prove the verifier rejects each forged token; these
//! prove the service in front of it gives every one the same answer (401
//! `TOKEN_ERROR`, the bearer challenge, never a 5xx, never the token echoed)
//! on every endpoint that takes a token, including the cases only HTTP has:
//! oversized, repeated, non-UTF-8 and wrongly schemed `Authorization`
//! headers. Each table ends by checking the victim's session is untouched.
//!
//! The `Authorization` scheme is matched case-insensitively (`bearer`,
//! `BEARER`), as RFC 9110 section 11.1 requires of auth schemes: the scheme
//! carries no security, the token does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use common::{
    API_KEY, Answer, ENCRYPTION_KEY, JWT_SECRET, ORG, START, TestApp, USER, token as field,
};
use http_body_util::BodyExt;
use jwt_simple::prelude::{
    Ed25519PublicKey, EdDSAPublicKeyLike, HS256Key, HS384Key, HS512Key, HashSet, MACLike,
    VerificationOptions,
};
use serde_json::{Value, json};
use tessera::keys::SigningAlgorithm;
use tessera::{KeyRing, Lifetimes, ManualClock, MemoryStore, SessionManager, TracingEvents};
use tessera_server::http::auth::ApiKey;
use tessera_server::metrics::Metrics;
use tessera_server::{AppState, app};
use tower::ServiceExt;

const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

// ---------------------------------------------------------------------------
// base64url and signing, by hand, so a forged token can have any bytes.

const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = URL.iter().position(|&u| u == c).expect("base64url") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Mac {
    Hs256,
    Hs384,
    Hs512,
}

fn mac(alg: Mac, key: &[u8], input: &str) -> Vec<u8> {
    match alg {
        Mac::Hs256 => HS256Key::from_bytes(key).authentication_tag(input.as_bytes()),
        Mac::Hs384 => HS384Key::from_bytes(key).authentication_tag(input.as_bytes()),
        Mac::Hs512 => HS512Key::from_bytes(key).authentication_tag(input.as_bytes()),
    }
}

fn jws(alg: Mac, key: &[u8], header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = mac(alg, key, &input);
    format!("{input}.{}", b64(sig))
}

/// Signs an already encoded signing input with the real secret.
fn sign_input(input: &str) -> String {
    let sig = mac(Mac::Hs256, JWT_SECRET.as_bytes(), input);
    format!("{input}.{}", b64(sig))
}

// ---------------------------------------------------------------------------
// The victim and the attack.

/// A named `Authorization` header value (raw bytes: it may not be UTF-8).
struct Case {
    name: String,
    authorization: Vec<u8>,
    /// What must never appear in a response.
    secret: String,
}

fn bearer(name: impl Into<String>, token: impl Into<String>) -> Case {
    let token = token.into();
    Case {
        name: name.into(),
        authorization: format!("Bearer {token}").into_bytes(),
        secret: token,
    }
}

fn raw(name: impl Into<String>, authorization: impl Into<Vec<u8>>) -> Case {
    let authorization = authorization.into();
    Case {
        name: name.into(),
        secret: String::from_utf8_lossy(&authorization).into_owned(),
        authorization,
    }
}

struct Victim {
    app: TestApp,
    access: String,
    refresh: String,
    kid: String,
    claims: Value,
}

impl Victim {
    async fn new() -> Self {
        let app = TestApp::with(common::Options {
            api_key: true,
            ..Default::default()
        })
        .await;
        let a = app.login().await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let access = field(&a, "access_token");
        let refresh = field(&a, "refresh_token");
        let parts: Vec<&str> = access.split('.').collect();
        let header: Value = serde_json::from_slice(&unb64(parts[0])).expect("header");
        let claims: Value = serde_json::from_slice(&unb64(parts[1])).expect("claims");
        let kid = header["kid"].as_str().expect("kid").to_owned();
        Self {
            app,
            access,
            refresh,
            kid,
            claims,
        }
    }

    fn header(&self) -> String {
        format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, self.kid)
    }

    fn payload(&self) -> String {
        self.claims.to_string()
    }

    /// A token with this header text over the real claims, validly MACed
    /// with the real secret under `alg`.
    fn signed_header(&self, alg: Mac, header: &str) -> String {
        jws(alg, JWT_SECRET.as_bytes(), header, &self.payload())
    }

    /// Sends `authorization` to every endpoint that takes a bearer token;
    /// `false` if it cannot be sent at all.
    async fn send_everywhere(&self, c: &Case, failures: &mut Vec<String>) -> bool {
        let endpoints = [
            (Method::GET, "/v1/sessions/current".to_owned()),
            (Method::DELETE, "/v1/sessions/current".to_owned()),
            (
                Method::GET,
                "/v1/sessions/current/permissions/sessions:read".to_owned(),
            ),
        ];
        let Ok(value) = HeaderValue::from_bytes(&c.authorization) else {
            // Not sendable over HTTP at all (a control character): hyper
            // would refuse it before any handler runs.
            return false;
        };
        for (method, uri) in endpoints {
            let req = self
                .app
                .request(method.clone(), &uri)
                .header(header::AUTHORIZATION, value.clone())
                .body(Body::empty())
                .expect("request");
            let a = self.app.send(req).await;
            if let Some(why) = wrong_bearer_answer(&a, &c.secret) {
                failures.push(format!("{} ({method} {uri}): {why}", c.name));
            }
        }
        true
    }

    async fn assert_all_rejected(&self, table: &str, cases: Vec<Case>) {
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        let mut sent = 0;
        for c in &cases {
            sent += usize::from(self.send_everywhere(c, &mut failures).await);
        }
        assert!(
            failures.is_empty(),
            "{table}: {} answers wrong over {} cases:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        self.assert_untouched(table).await;
        eprintln!(
            "{table}: {sent} cases rejected on 3 endpoints ({} not sendable)",
            cases.len() - sent
        );
    }

    /// The victim's access token still validates and the attack ended no
    /// session.
    async fn assert_untouched(&self, table: &str) {
        let a = self
            .app
            .with_bearer(Method::GET, "/v1/sessions/current", &self.access)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{table}: the victim's session survives: {}",
            a.text
        );
        assert_eq!(self.app.active_sessions().await, 1, "{table}");
        let stats = self.app.call(Method::GET, "/v1/stats", None).await;
        assert_eq!(
            stats.body["sessions_destroyed"].as_u64(),
            Some(0),
            "{table}: no session was ended: {}",
            stats.text
        );
    }
}

/// `None` when `a` is the answer every bad bearer token must get.
fn wrong_bearer_answer(a: &Answer, secret: &str) -> Option<String> {
    if a.status.is_server_error() {
        return Some(format!("{} (a 5xx)", a.status));
    }
    if a.status != StatusCode::UNAUTHORIZED {
        return Some(format!("{} instead of 401: {}", a.status, a.text));
    }
    if a.body["error"]["type"] != "TOKEN_ERROR" {
        return Some(format!("not TOKEN_ERROR: {}", a.text));
    }
    if a.header("www-authenticate") != Some(INVALID_TOKEN) {
        return Some(format!(
            "WWW-Authenticate is {:?}",
            a.header("www-authenticate")
        ));
    }
    echoes(a, secret)
}

fn echoes(a: &Answer, secret: &str) -> Option<String> {
    // Short strings (a lone "none") may occur in any message by chance.
    if secret.len() >= 16 && a.text.contains(secret) {
        return Some("the answer echoes the token".to_owned());
    }
    let last = secret.rsplit('.').next().unwrap_or("");
    if last.len() >= 16 && a.text.contains(last) {
        return Some("the answer echoes the signature".to_owned());
    }
    None
}

// ---------------------------------------------------------------------------
// The tables.

#[tokio::test]
async fn forged_algorithms_and_key_headers_get_401_token_error_on_every_endpoint() {
    let v = Victim::new().await;
    let kid = v.kid.clone();
    let payload = v.payload();
    let mut cases = Vec::new();
    for alg in [
        r#""none""#,
        r#""None""#,
        r#""nOnE""#,
        r#""NONE""#,
        r#"" none""#,
        r#""none\u200b""#,
        r#""HS256 ""#,
        r#""hs256""#,
        "null",
        "0",
        r#"["HS256"]"#,
        r#""RS256""#,
        r#""ES256""#,
        r#""PS256""#,
        r#""EdDSA""#,
    ] {
        let header = format!(r#"{{"alg":{alg},"typ":"JWT","kid":"{kid}"}}"#);
        cases.push(bearer(
            format!("alg {alg}, empty signature"),
            format!("{}.{}.", b64(&header), b64(&payload)),
        ));
        cases.push(bearer(
            format!("alg {alg}, HS256 MAC with the real secret"),
            v.signed_header(Mac::Hs256, &header),
        ));
    }
    for (name, alg, label) in [
        ("HS384 with the real secret", Mac::Hs384, "HS384"),
        ("HS512 with the real secret", Mac::Hs512, "HS512"),
    ] {
        let header = format!(r#"{{"alg":"{label}","typ":"JWT","kid":"{kid}"}}"#);
        cases.push(bearer(name, v.signed_header(alg, &header)));
    }
    cases.push(bearer(
        "HS256 with an empty key",
        jws(Mac::Hs256, b"", &v.header(), &payload),
    ));
    cases.push(bearer(
        "HS256 with the encryption key",
        jws(Mac::Hs256, ENCRYPTION_KEY.as_bytes(), &v.header(), &payload),
    ));
    let base = format!(r#""alg":"HS256","typ":"JWT","kid":"{kid}""#);
    for (name, extra) in [
        ("crit exp", r#""crit":["exp"]"#),
        ("crit unknown", r#""crit":["b64"],"b64":false"#),
        ("crit empty", r#""crit":[]"#),
        ("jku", r#""jku":"https://attacker.example/jwks.json""#),
        ("x5u", r#""x5u":"https://attacker.example/cert.pem""#),
        (
            "jwk",
            r#""jwk":{"kty":"oct","k":"YXR0YWNrZXIta2V5LWF0dGFja2VyLWtleS0xMjM0NTY"}"#,
        ),
        ("x5c", r#""x5c":["MIIBszCCAVmgAwIBAgIUAttacker"]"#),
        ("cty JWT (nested)", r#""cty":"JWT""#),
    ] {
        let header = format!("{{{base},{extra}}}");
        cases.push(bearer(name, v.signed_header(Mac::Hs256, &header)));
    }
    for (name, k) in [
        ("kid unknown", r#""no-such-key""#),
        ("kid path", r#""../../../../dev/null""#),
        ("kid SQL", r#""x' UNION SELECT 'secret' --""#),
        ("kid shell", r#""$(touch /tmp/tessera-pwned)""#),
        ("kid number", "7"),
        ("kid null", "null"),
        ("kid object", r#"{"k":"v"}"#),
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":{k}}}"#);
        cases.push(bearer(name, v.signed_header(Mac::Hs256, &header)));
    }
    cases.push(bearer(
        "kid 4 KiB",
        v.signed_header(
            Mac::Hs256,
            &format!(
                r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
                "k".repeat(4096)
            ),
        ),
    ));
    let real = v.access.clone();
    let (h, p, s) = split(&real);
    cases.push(bearer(
        "JWE, 5 segments",
        format!("{h}.{}.{}.{}.{}", b64("key"), b64("iv"), p, s),
    ));
    cases.push(bearer(
        "JSON serialization",
        json!({"protected": h, "payload": p, "signature": s}).to_string(),
    ));
    v.assert_all_rejected("algorithms and key headers", cases)
        .await;
    assert!(
        !std::path::Path::new("/tmp/tessera-pwned").exists(),
        "a kid was run as a command"
    );
}

fn split(token: &str) -> (String, String, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
}

#[tokio::test]
async fn broken_tokens_get_401_token_error_on_every_endpoint() {
    let v = Victim::new().await;
    let real = v.access.clone();
    let (h, p, s) = split(&real);
    let mut cases = vec![
        bearer("one segment", h.clone()),
        bearer("two segments", format!("{h}.{p}")),
        bearer("four segments", format!("{real}.{s}")),
        bearer("empty signature", format!("{h}.{p}.")),
        bearer(
            "truncated signature",
            format!("{h}.{p}.{}", &s[..s.len() - 4]),
        ),
        bearer("over-long signature", format!("{real}AAAA")),
        bearer("signature stripped", format!("{h}.{p}")),
        bearer("empty segments", ".."),
        bearer("a lone dot", "."),
        bearer("padding on the signature", format!("{real}=")),
        bearer("padding on the header", format!("{h}=.{p}.{s}")),
        // Six `~` always hold an aligned `~~~`, which encodes as `fn5-`:
        // the header then has a character the standard alphabet spells `+`.
        bearer("standard alphabet, validly MACed", {
            let header = format!(
                r#"{{"alg":"HS256","typ":"JWT","kid":"{}","x":"~~~~~~"}}"#,
                v.kid
            );
            let encoded = b64(&header);
            assert!(encoded.contains('-'), "{encoded}");
            sign_input(&format!("{}.{p}", encoded.replace('-', "+")))
        }),
        bearer("tab inside", format!("{h}.\t{p}.{s}")),
        bearer("NUL escaped as text", format!("{h}.{p}\\u0000.{s}")),
        bearer("non-ASCII inside", format!("{h}.{p}é.{s}")),
        bearer("10,000 dots", ".".repeat(10_000)),
        bearer("7,000 dots", ".".repeat(7_000)),
        bearer("refresh token as bearer", v.refresh.clone()),
        raw("no scheme", real.clone()),
        raw("Basic scheme", format!("Basic {real}")),
        raw("Token scheme", format!("Token {real}")),
        raw("Bearer with nothing", "Bearer "),
        raw("Bearer alone", "Bearer"),
        raw("two tokens", format!("Bearer {real} {real}")),
        raw(
            "Authorization over 8 KiB",
            format!("Bearer {}", "a".repeat(9 * 1024)),
        ),
        raw(
            "non-UTF-8 bytes",
            b"Bearer \xff\xfe\xfd.\x80\x81.\xc3\x28".to_vec(),
        ),
        raw("Latin-1 in the token", {
            let mut b = format!("Bearer {h}.{p}").into_bytes();
            b.extend_from_slice(b".\xe9");
            b.extend_from_slice(s.as_bytes());
            b
        }),
    ];
    // A trailing-bits variant of the signature decodes to the same bytes
    // in a lenient decoder.
    if let Some(last) = s.bytes().last() {
        let i = URL.iter().position(|&c| c == last).expect("alphabet");
        let unused = match s.len() % 4 {
            2 => 4,
            3 => 2,
            _ => 0,
        };
        if unused > 0 {
            let mut t = s[..s.len() - 1].to_owned();
            t.push(URL[i | ((1 << unused) - 1)] as char);
            if t != s {
                cases.push(bearer(
                    "non-zero trailing bits in the signature",
                    format!("{h}.{p}.{t}"),
                ));
            }
        }
    }
    // Expired and forged: the same answer as forged.
    let mut claims = v.claims.clone();
    claims["exp"] = json!(START - 3600);
    cases.push(bearer(
        "forged and expired",
        format!("{}.{}.{}", h, b64(claims.to_string()), s),
    ));
    let mut claims = v.claims.clone();
    claims["exp"] = json!(START + 86_400 * 365);
    cases.push(bearer(
        "lifetime extended, signature kept",
        format!("{}.{}.{}", h, b64(claims.to_string()), s),
    ));
    v.assert_all_rejected("broken structure", cases).await;

    // A repeated Authorization header.
    let req = v
        .app
        .request(Method::GET, "/v1/sessions/current")
        .header(header::AUTHORIZATION, format!("Bearer {real}"))
        .header(header::AUTHORIZATION, "Bearer x.y.z")
        .body(Body::empty())
        .expect("request");
    let a = v.app.send(req).await;
    assert_eq!(wrong_bearer_answer(&a, &real), None, "{}", a.text);
}

#[tokio::test]
async fn any_bit_flipped_in_the_access_token_gets_401_on_every_endpoint() {
    let v = Victim::new().await;
    let real = v.access.clone();
    let mut cases = Vec::new();
    for i in 0..real.len() {
        for bit in [0x01u8, 0x02, 0x04, 0x20, 0x80] {
            let mut bytes = real.clone().into_bytes();
            bytes[i] ^= bit;
            cases.push(Case {
                name: format!("byte {i} ^ {bit:#04x}"),
                secret: String::from_utf8_lossy(&bytes).into_owned(),
                authorization: [b"Bearer ".as_slice(), &bytes].concat(),
            });
        }
    }
    v.assert_all_rejected("bit flips", cases).await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_only_that() {
    let v = Victim::new().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let req = v
            .app
            .request(Method::GET, "/v1/sessions/current")
            .header(header::AUTHORIZATION, format!("{scheme} {}", v.access))
            .body(Body::empty())
            .expect("request");
        let a = v.app.send(req).await;
        assert_eq!(a.status, StatusCode::OK, "{scheme}: {}", a.text);
    }
    v.assert_all_rejected(
        "near-miss schemes",
        vec![
            raw("Bearer: with a colon", format!("Bearer: {}", v.access)),
            raw("Bearers", format!("Bearers {}", v.access)),
            raw("tab separator", format!("Bearer\t{}", v.access)),
        ],
    )
    .await;
}

#[tokio::test]
async fn bad_refresh_tokens_get_401_token_error_and_harm_no_session() {
    let v = Victim::new().await;
    let r = v.refresh.clone();
    let mut bad = vec![
        ("empty".to_owned(), String::new()),
        ("access token at refresh".to_owned(), v.access.clone()),
        ("10,000 dots".to_owned(), ".".repeat(10_000)),
        ("60 KiB".to_owned(), "a".repeat(60 * 1024)),
        ("non-ASCII".to_owned(), format!("{r}é")),
        ("NUL inside".to_owned(), format!("{}\0{}", &r[..8], &r[8..])),
        ("whitespace around".to_owned(), format!(" {r} ")),
        ("truncated".to_owned(), r[..r.len() - 1].to_owned()),
        ("extended".to_owned(), format!("{r}A")),
        ("padding".to_owned(), format!("{r}=")),
    ];
    // Only a token that has a `-` or `_` has a standard-alphabet twin.
    let standard = r.replace('-', "+").replace('_', "/");
    if standard != r {
        bad.push(("standard alphabet".to_owned(), standard));
    }
    // Every single-bit change of the victim's token still names the
    // victim's session: reuse detection must not fire on it.
    for i in 0..r.len() {
        for bit in [0x01u8, 0x02, 0x20] {
            let mut b = r.clone().into_bytes();
            b[i] ^= bit;
            if let Ok(s) = String::from_utf8(b)
                && s != r
            {
                bad.push((format!("byte {i} ^ {bit:#04x}"), s));
            }
        }
    }
    let mut failures = Vec::new();
    for (name, token) in &bad {
        let a = v.app.refresh(token).await;
        let why = if a.status.is_server_error() {
            Some(format!("{} (a 5xx)", a.status))
        } else if a.status != StatusCode::UNAUTHORIZED || a.body["error"]["type"] != "TOKEN_ERROR" {
            Some(format!("{}: {}", a.status, a.text))
        } else if a.header("www-authenticate").is_some() {
            // The refresh token is in the body: no bearer challenge.
            Some("a WWW-Authenticate challenge for a body token".to_owned())
        } else {
            echoes(&a, token)
        };
        if let Some(why) = why {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad refresh tokens answered wrong:\n{}",
        failures.len(),
        bad.len(),
        failures.join("\n")
    );
    v.assert_untouched("bad refresh tokens").await;
    let a = v.app.refresh(&r).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the victim's own refresh token still works: {}",
        a.text
    );
    eprintln!("bad refresh tokens: {} cases rejected", bad.len());
}

// ---------------------------------------------------------------------------
// The JWK Set.

#[tokio::test]
async fn jwks_is_public_cacheable_and_empty_in_hs256_mode() {
    let app = TestApp::with(common::Options {
        api_key: true,
        ..Default::default()
    })
    .await;
    // No API key: verifiers fetch it like /healthz.
    let req = Request::builder()
        .uri("/.well-known/jwks.json")
        .body(Body::empty())
        .expect("request");
    let a = app.send(req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.header("content-type"), Some("application/jwk-set+json"));
    assert_eq!(a.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(
        a.body,
        json!({"keys": []}),
        "the HS256 secret is never published"
    );
    assert!(!a.text.contains(JWT_SECRET));
    assert!(
        app.metrics().await.contains("jwks"),
        "counted as its own endpoint"
    );
    let doc = app.call(Method::GET, "/openapi.json", None).await;
    assert!(
        doc.body["paths"]["/.well-known/jwks.json"]["get"].is_object(),
        "in the OpenAPI document"
    );
}

/// A service signing with Ed25519, with an API key, over a memory store.
struct EdApp {
    router: axum::Router,
}

impl EdApp {
    fn new() -> Self {
        let pem = KeyRing::generate_signing_key(SigningAlgorithm::EdDsa).expect("key");
        let keys =
            KeyRing::with_signing_keys(SigningAlgorithm::EdDsa, &pem, &[], ENCRYPTION_KEY, &[])
                .expect("EdDSA ring");
        let clock = ManualClock::new(START);
        let metrics = Arc::new(Metrics::new());
        let manager = SessionManager::builder()
            .keys(keys)
            .store(Arc::new(MemoryStore::default()))
            .clock(Arc::new(clock.clone()))
            .events(metrics.event_sink(Arc::new(TracingEvents)))
            .lifetimes(Lifetimes {
                cleanup_interval: Duration::ZERO,
                ..Lifetimes::default()
            })
            .build()
            .expect("manager");
        let state = AppState::builder(manager)
            .api_key(Some(ApiKey::new(API_KEY)))
            .metrics(metrics)
            .clock(Arc::new(clock))
            .build();
        Self { router: app(state) }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>, bearer: &str) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-api-key", API_KEY);
        if !bearer.is_empty() {
            b = b.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    async fn login(&self) -> Answer {
        let m = self
            .call(
                Method::PUT,
                &format!("/v1/orgs/{ORG}/members/{USER}"),
                Some(json!({"role": "member"})),
                "",
            )
            .await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text);
        self.call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"user_id": USER, "org_id": ORG})),
            "",
        )
        .await
    }

    async fn current(&self, token: &str) -> Answer {
        self.call(Method::GET, "/v1/sessions/current", None, token)
            .await
    }
}

#[tokio::test]
async fn an_eddsa_token_made_over_http_verifies_with_jwt_simple_from_the_jwks_alone() {
    let app = EdApp::new();
    let a = app.login().await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let token = field(&a, "access_token");

    let req = Request::builder()
        .uri("/.well-known/jwks.json")
        .body(Body::empty())
        .expect("request");
    let jwks = app.send(req).await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.text);
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{}", jwks.text);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert!(jwk.get("d").is_none(), "never the private key: {jwk}");

    let header: Value =
        serde_json::from_slice(&unb64(token.split('.').next().expect("header"))).expect("json");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], jwk["kid"]);

    let x = unb64(jwk["x"].as_str().expect("x"));
    let key = Ed25519PublicKey::from_bytes(&x).expect("an Ed25519 public key");
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from_iter(["tessera".to_owned()])),
        required_key_id: jwk["kid"].as_str().map(str::to_owned),
        // The test clock is in the future of the real one.
        time_tolerance: Some(jwt_simple::prelude::Duration::from_days(20_000)),
        ..Default::default()
    };
    let claims = key
        .verify_token::<Value>(&token, Some(options.clone()))
        .expect("jwt-simple verifies the token from the JWKS alone");
    let session = app.current(&token).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.text);
    assert_eq!(
        claims.custom["sid"], session.body["session_id"],
        "the same session"
    );
    assert_eq!(claims.subject.as_deref(), Some(USER));

    // And a changed token does not verify there either.
    let (h, p, s) = split(&token);
    let mut forged: Value = serde_json::from_slice(&unb64(&p)).expect("claims");
    forged["sub"] = json!("00000000-0000-0000-0000-000000000000");
    let forged = format!("{h}.{}.{s}", b64(forged.to_string()));
    assert!(key.verify_token::<Value>(&forged, Some(options)).is_err());
    let a = app.current(&forged).await;
    assert_eq!(wrong_bearer_answer(&a, &forged), None, "{}", a.text);

    // An HS256 token MACed with the published key bytes: alg confusion.
    let confused = jws(
        Mac::Hs256,
        &x,
        &format!(r#"{{"alg":"HS256","typ":"JWT","kid":{}}}"#, jwk["kid"]),
        &p,
    );
    let a = app.current(&confused).await;
    assert_eq!(wrong_bearer_answer(&a, &confused), None, "{}", a.text);
    let confused = jws(
        Mac::Hs256,
        jwks.text.as_bytes(),
        &format!(r#"{{"alg":"HS256","typ":"JWT","kid":{}}}"#, jwk["kid"]),
        &p,
    );
    let a = app.current(&confused).await;
    assert_eq!(wrong_bearer_answer(&a, &confused), None, "{}", a.text);
}
