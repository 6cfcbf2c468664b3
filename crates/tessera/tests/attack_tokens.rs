//! An attacker's toolkit against access-token validation (HS256 mode).
//!
//! Every forged token below that carries a *valid* HS256 signature is signed
//! with the real `JWT_SECRET`, so the only thing standing between it and an
//! accepted request is the one check its row is about: remove that check and
//! the row fails. Rows are collected per table and reported together, each
//! under its own name. The tables end by checking that the victim's session
//! survived the attack untouched.

mod common;

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::{
    STANDARD_NO_PAD as B64_STD, URL_SAFE as B64_PADDED, URL_SAFE_NO_PAD as B64,
};
use common::{Harness, JWT_SECRET, START};
use serde_json::{Value, json};
use tessera::{ErrorKind, IssuedTokens, ManualClock, MemoryStore, SessionManager};

/// A named attack.
struct Case {
    name: String,
    token: String,
}

fn case(name: impl Into<String>, token: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        token: token.into(),
    }
}

/// A victim's session and the pieces of its real access token.
struct Victim {
    h: Harness,
    issued: IssuedTokens,
    kid: String,
    claims: Value,
}

impl Victim {
    async fn new() -> Self {
        Self::of(Harness::new().await).await
    }

    async fn of(h: Harness) -> Self {
        let issued = h.login().await;
        let token = issued.access_token.expose().to_owned();
        let parts: Vec<&str> = token.split('.').collect();
        let header: Value =
            serde_json::from_slice(&B64.decode(parts[0]).expect("b64")).expect("json");
        let claims: Value =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        let kid = header["kid"].as_str().expect("kid").to_owned();
        Self {
            h,
            issued,
            kid,
            claims,
        }
    }

    fn token(&self) -> &str {
        self.issued.access_token.expose()
    }

    /// The header Tessera writes, as JSON text.
    fn header(&self) -> String {
        format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, self.kid)
    }

    /// The real claims with `remove` taken out and `raw` JSON members
    /// appended verbatim (so duplicates and odd spellings survive).
    fn payload(&self, remove: &[&str], raw: &str) -> String {
        let mut c = self.claims.clone();
        for k in remove {
            c.as_object_mut().expect("object").remove(*k);
        }
        let s = c.to_string();
        if raw.is_empty() {
            s
        } else if s == "{}" {
            format!("{{{raw}}}")
        } else {
            format!("{},{raw}}}", &s[..s.len() - 1])
        }
    }

    /// A token with the given header and payload texts, validly signed with
    /// the real secret.
    fn signed(&self, header: &str, payload: &str) -> String {
        jws(hmac::HMAC_SHA256, JWT_SECRET.as_bytes(), header, payload)
    }

    /// The real header, the given payload text, validly signed.
    fn with_payload(&self, payload: &str) -> String {
        self.signed(&self.header(), payload)
    }

    /// Claims changed as `remove` + `raw`, validly signed.
    fn with_claims(&self, remove: &[&str], raw: &str) -> String {
        self.with_payload(&self.payload(remove, raw))
    }

    /// Runs every case, expecting `TOKEN_ERROR`, then checks the victim's
    /// session is still valid and nothing was destroyed.
    async fn assert_all_rejected(&self, table: &str, cases: Vec<Case>) {
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for c in &cases {
            match self.h.manager.validate_session(&c.token).await {
                Ok(_) => failures.push(format!("{}: accepted", c.name)),
                Err(e) if e.kind() != ErrorKind::Token => {
                    failures.push(format!("{}: {} instead of TOKEN_ERROR", c.name, e.kind()))
                }
                Err(e) if c.token.len() >= 16 && e.message().contains(&c.token) => {
                    failures.push(format!("{}: the error echoes the token", c.name))
                }
                Err(_) => {}
            }
        }
        assert!(
            failures.is_empty(),
            "{table}: {} of {} cases not rejected:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        self.h
            .manager
            .validate_session(self.token())
            .await
            .expect("the victim's session survives the attack");
        let stats = self.h.stats().await;
        assert_eq!(stats.sessions_destroyed, 0, "{table}: a session was ended");
        eprintln!("{table}: {} cases rejected", cases.len());
    }

    async fn assert_accepted(&self, name: &str, token: &str) {
        if let Err(e) = self.h.manager.validate_session(token).await {
            panic!("{name}: rejected with {e}");
        }
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// A compact JWS over raw header and payload bytes, MACed with `alg`.
fn jws_bytes(alg: hmac::Algorithm, key: &[u8], header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = hmac::sign(&hmac::Key::new(alg, key), input.as_bytes());
    format!("{input}.{}", b64(sig))
}

fn jws(alg: hmac::Algorithm, key: &[u8], header: &str, payload: &str) -> String {
    jws_bytes(alg, key, header.as_bytes(), payload.as_bytes())
}

/// Signs an already encoded signing input (for non-canonical encodings).
fn sign_input(input: &str) -> String {
    let sig = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, JWT_SECRET.as_bytes()),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(sig))
}

fn split(token: &str) -> (String, String, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The same segment with its unused trailing bits set: a lenient decoder
/// reads the very same bytes from it.
fn with_trailing_bits(segment: &str) -> Option<String> {
    let unused = match segment.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *segment.as_bytes().last()?;
    let index = ALPHABET.iter().position(|&c| c == last)?;
    let changed = index | ((1 << unused) - 1);
    let mut s = segment[..segment.len() - 1].to_owned();
    s.push(ALPHABET[changed] as char);
    Some(s)
}

#[tokio::test]
async fn every_alg_but_hs256_is_rejected_in_any_spelling() {
    let v = Victim::new().await;
    let payload = v.payload(&[], "");
    let kid = &v.kid;
    let mut cases = Vec::new();
    // Spellings of `none` and near-misses of `HS256`, as JSON values.
    let spellings: &[(&str, &str)] = &[
        ("none", r#""none""#),
        ("None", r#""None""#),
        ("nOnE", r#""nOnE""#),
        ("NONE", r#""NONE""#),
        ("empty string", r#""""#),
        ("trailing space", r#""HS256 ""#),
        ("leading space", r#"" HS256""#),
        ("trailing tab", r#""HS256\t""#),
        ("trailing newline", r#""HS256\n""#),
        ("zero-width space (escaped)", r#""HS256\u200b""#),
        ("zero-width space (raw)", "\"HS256\u{200b}\""),
        ("zero-width joiner inside", r#""HS\u200d256""#),
        ("byte order mark", r#""\ufeffHS256""#),
        ("trailing NUL", r#""HS256\u0000""#),
        ("lower case", r#""hs256""#),
        ("mixed case", r#""Hs256""#),
        ("none with trailing space", r#""none ""#),
        ("list in a string", r#""HS256,none""#),
        ("null", "null"),
        ("number", "256"),
        ("zero", "0"),
        ("boolean", "true"),
        ("array", r#"["HS256"]"#),
        ("empty array", "[]"),
        ("object", r#"{"name":"HS256"}"#),
    ];
    for (name, alg) in spellings {
        let header = format!(r#"{{"alg":{alg},"typ":"JWT","kid":"{kid}"}}"#);
        cases.push(case(
            format!("alg {name}, signed with the real secret"),
            v.signed(&header, &payload),
        ));
        cases.push(case(
            format!("alg {name}, no signature"),
            format!("{}.{}.", b64(&header), b64(&payload)),
        ));
    }
    cases.push(case(
        "alg missing",
        v.signed(&format!(r#"{{"typ":"JWT","kid":"{kid}"}}"#), &payload),
    ));
    for (alg, mac) in [("HS384", hmac::HMAC_SHA384), ("HS512", hmac::HMAC_SHA512)] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
        cases.push(case(
            format!("{alg} with the real secret"),
            jws(mac, JWT_SECRET.as_bytes(), &header, &payload),
        ));
        cases.push(case(
            format!("{alg} header, HS256 signature"),
            v.signed(&header, &payload),
        ));
    }
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K",
        "EdDSA", "Ed25519",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
        cases.push(case(
            format!("{alg} header, HMAC signature with the real secret"),
            v.signed(&header, &payload),
        ));
        for len in [64, 256] {
            let input = format!("{}.{}", b64(&header), b64(&payload));
            cases.push(case(
                format!("{alg} header, {len} bytes of signature"),
                format!("{input}.{}", b64(vec![7u8; len])),
            ));
        }
    }
    cases.push(case(
        "HS256 with an empty key",
        jws(hmac::HMAC_SHA256, b"", &v.header(), &payload),
    ));
    cases.push(case(
        "HS256 with the kid as the key",
        jws(hmac::HMAC_SHA256, kid.as_bytes(), &v.header(), &payload),
    ));
    v.assert_all_rejected("alg", cases).await;
}

#[tokio::test]
async fn headers_that_name_keys_or_change_the_format_are_rejected() {
    let v = Victim::new().await;
    let payload = v.payload(&[], "");
    let kid = &v.kid;
    let base = format!(r#""alg":"HS256","typ":"JWT","kid":"{kid}""#);
    let rows: &[(&str, String)] = &[
        ("crit naming exp", r#""crit":["exp"]"#.to_owned()),
        ("crit empty", r#""crit":[]"#.to_owned()),
        (
            "crit b64 with b64 false",
            r#""crit":["b64"],"b64":false"#.to_owned(),
        ),
        ("b64 false", r#""b64":false"#.to_owned()),
        (
            "jku",
            r#""jku":"https://attacker.example/jwks.json""#.to_owned(),
        ),
        (
            "x5u",
            r#""x5u":"https://attacker.example/cert.pem""#.to_owned(),
        ),
        (
            "jwk",
            format!(
                r#""jwk":{{"kty":"oct","k":"{}"}}"#,
                b64("attacker-chosen-key-of-32-bytes!")
            ),
        ),
        ("x5c", r#""x5c":["MIIBszCCAVmgAwIBAgIUQ"]"#.to_owned()),
        ("x5t", r#""x5t":"dGVzdA""#.to_owned()),
        ("x5t#S256", r##""x5t#S256":"dGVzdA""##.to_owned()),
        ("cty JWT (nested token)", r#""cty":"JWT""#.to_owned()),
        ("cty jwt", r#""cty":"jwt""#.to_owned()),
        ("enc (a JWE header)", r#""enc":"A256GCM""#.to_owned()),
        ("zip", r#""zip":"DEF""#.to_owned()),
        ("typ JWE", r#""typ":"JWE""#.to_owned()),
    ];
    let mut cases = Vec::new();
    for (name, extra) in rows {
        // `typ` rows replace the real typ rather than duplicate it.
        let header = if name.starts_with("typ") {
            format!(r#"{{"alg":"HS256",{extra},"kid":"{kid}"}}"#)
        } else {
            format!("{{{base},{extra}}}")
        };
        cases.push(case(*name, v.signed(&header, &payload)));
    }
    for (name, typ) in [
        ("typ refresh", r#""refresh""#),
        ("typ number", "1"),
        ("typ null", "null"),
    ] {
        let header = format!(r#"{{"alg":"HS256","typ":{typ},"kid":"{kid}"}}"#);
        cases.push(case(name, v.signed(&header, &payload)));
    }
    // A nested token: the payload is itself a signed JWT.
    let nested_header = format!(r#"{{"alg":"HS256","cty":"JWT","kid":"{kid}"}}"#);
    cases.push(case(
        "nested JWT as payload",
        v.signed(&nested_header, v.token()),
    ));
    v.assert_all_rejected("header", cases).await;
}

#[tokio::test]
async fn hostile_key_ids_are_rejected_without_side_effects() {
    let v = Victim::new().await;
    let payload = v.payload(&[], "");
    let huge = "k".repeat(6000);
    let rows: Vec<(&str, String)> = vec![
        ("unknown", r#""ffffffff""#.to_owned()),
        ("empty", r#""""#.to_owned()),
        ("path traversal", r#""../../../../etc/passwd""#.to_owned()),
        ("absolute path", r#""/dev/null""#.to_owned()),
        ("SQL injection", r#""' OR '1'='1' --""#.to_owned()),
        ("SQL statement", r#""x'; DROP TABLE keys; --""#.to_owned()),
        (
            "shell substitution",
            r#""$(touch /tmp/tessera-pwned)""#.to_owned(),
        ),
        ("shell backticks", r#""`id`""#.to_owned()),
        ("shell pipe", r#""|id""#.to_owned()),
        ("URL", r#""https://attacker.example/key""#.to_owned()),
        ("real kid plus NUL", format!(r#""{}\u0000""#, v.kid)),
        (
            "real kid upper case",
            format!(r#""{}""#, v.kid.to_uppercase()),
        ),
        ("real kid with a space", format!(r#""{} ""#, v.kid)),
        ("lone surrogate", r#""\ud800""#.to_owned()),
        ("huge", format!(r#""{huge}""#)),
        ("number", "1".to_owned()),
        ("null", "null".to_owned()),
        ("boolean", "false".to_owned()),
        ("array of the real kid", format!(r#"["{}"]"#, v.kid)),
        ("object", format!(r#"{{"kid":"{}"}}"#, v.kid)),
    ];
    let mut cases = Vec::new();
    for (name, kid) in rows {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":{kid}}}"#);
        cases.push(case(format!("kid {name}"), v.signed(&header, &payload)));
    }
    v.assert_all_rejected("kid", cases).await;
}

#[tokio::test]
async fn duplicate_keys_and_malformed_json_are_rejected() {
    let v = Victim::new().await;
    let kid = &v.kid;
    let payload = v.payload(&[], "");
    let other_user = common::random_user();
    let far = START + 20 * 24 * 3600;
    let mut cases = Vec::new();
    let headers: Vec<(&str, String)> = vec![
        (
            "alg twice, same value",
            format!(r#"{{"alg":"HS256","alg":"HS256","typ":"JWT","kid":"{kid}"}}"#),
        ),
        (
            "alg none then HS256",
            format!(r#"{{"alg":"none","alg":"HS256","typ":"JWT","kid":"{kid}"}}"#),
        ),
        (
            "alg HS256 then none",
            format!(r#"{{"alg":"HS256","alg":"none","typ":"JWT","kid":"{kid}"}}"#),
        ),
        (
            "kid twice",
            format!(r#"{{"alg":"HS256","kid":"ffffffff","kid":"{kid}"}}"#),
        ),
        (
            "alg twice, one spelled with an escape",
            format!(r#"{{"alg":"HS256","a\u006cg":"HS256","kid":"{kid}"}}"#),
        ),
        (
            "unknown field twice",
            format!(r#"{{"alg":"HS256","kid":"{kid}","x":1,"x":2}}"#),
        ),
        ("header is an array", r#"["HS256"]"#.to_owned()),
        ("header is a string", r#""HS256""#.to_owned()),
        ("header is null", "null".to_owned()),
        ("header is empty", String::new()),
        ("header is an empty object", "{}".to_owned()),
        (
            "header with trailing garbage",
            format!(r#"{{"alg":"HS256","kid":"{kid}"}}x"#),
        ),
        (
            "two header objects",
            format!(r#"{{"alg":"HS256","kid":"{kid}"}}{{"alg":"none"}}"#),
        ),
        (
            "header with a trailing comma",
            format!(r#"{{"alg":"HS256","kid":"{kid}",}}"#),
        ),
        (
            "header with a comment",
            format!(r#"{{"alg":"HS256",/*x*/"kid":"{kid}"}}"#),
        ),
        (
            "header nested 2000 deep",
            format!(
                r#"{{"alg":"HS256","kid":"{kid}","x":{}{}}}"#,
                "[".repeat(2000),
                "]".repeat(2000)
            ),
        ),
    ];
    for (name, header) in headers {
        cases.push(case(format!("header: {name}"), v.signed(&header, &payload)));
    }
    let payloads: Vec<(&str, String)> = vec![
        (
            "sub twice, the second another user",
            v.payload(&[], &format!(r#""sub":"{other_user}""#)),
        ),
        (
            "exp twice, the second far away",
            v.payload(&[], &format!(r#""exp":{far}"#)),
        ),
        ("iss twice", v.payload(&[], r#""iss":"evil""#)),
        (
            "sid twice",
            v.payload(&[], &format!(r#""sid":"{}""#, uuid::Uuid::new_v4())),
        ),
        (
            "exp twice, one spelled with an escape",
            v.payload(&[], &format!(r#""\u0065xp":{far}"#)),
        ),
        ("unknown claim twice", v.payload(&[], r#""x":1,"x":2"#)),
        ("payload is an array", "[]".to_owned()),
        ("payload is a string", r#""claims""#.to_owned()),
        ("payload is a number", "1".to_owned()),
        ("payload is null", "null".to_owned()),
        ("payload is true", "true".to_owned()),
        ("payload is empty", String::new()),
        ("payload is an empty object", "{}".to_owned()),
        (
            "payload with trailing garbage",
            format!("{} x", v.payload(&[], "")),
        ),
        (
            "two payload objects",
            format!("{}{}", v.payload(&[], ""), v.payload(&[], "")),
        ),
        (
            "payload nested 3000 deep",
            v.payload(
                &[],
                &format!(r#""x":{}{}"#, "[".repeat(3000), "]".repeat(3000)),
            ),
        ),
        (
            "payload objects nested 3000 deep",
            v.payload(
                &[],
                &format!(r#""x":{}1{}"#, r#"{"a":"#.repeat(3000), "}".repeat(3000)),
            ),
        ),
    ];
    for (name, p) in payloads {
        cases.push(case(format!("payload: {name}"), v.with_payload(&p)));
    }
    // Bytes that are not UTF-8, inside otherwise valid JSON.
    let header = v.header();
    let claims = v.payload(&[], "");
    let invalid_utf8: &[(&str, &[u8])] = &[
        ("0xff", b"\xff"),
        ("overlong slash", b"\xc0\xaf"),
        ("encoded surrogate", b"\xed\xa0\x80"),
        ("truncated sequence", b"\xe2\x82"),
    ];
    for (name, bytes) in invalid_utf8 {
        let mut p = claims.as_bytes()[..claims.len() - 1].to_vec();
        p.extend_from_slice(br#","x":""#);
        p.extend_from_slice(bytes);
        p.extend_from_slice(br#""}"#);
        cases.push(case(
            format!("payload with invalid UTF-8 ({name})"),
            jws_bytes(
                hmac::HMAC_SHA256,
                JWT_SECRET.as_bytes(),
                header.as_bytes(),
                &p,
            ),
        ));
        let mut hb = header.as_bytes()[..header.len() - 1].to_vec();
        hb.extend_from_slice(br#","x":""#);
        hb.extend_from_slice(bytes);
        hb.extend_from_slice(br#""}"#);
        cases.push(case(
            format!("header with invalid UTF-8 ({name})"),
            jws_bytes(
                hmac::HMAC_SHA256,
                JWT_SECRET.as_bytes(),
                &hb,
                claims.as_bytes(),
            ),
        ));
    }
    v.assert_all_rejected("json", cases).await;
}

#[tokio::test]
async fn every_malformed_claim_is_rejected() {
    let v = Victim::new().await;
    let iat = START;
    let exp = START + 3600;
    let mut cases = Vec::new();
    // exp: missing or not a non-negative integer.
    for (name, value) in [
        ("a string", r#""1800003600""#.to_owned()),
        ("null", "null".to_owned()),
        ("true", "true".to_owned()),
        ("false", "false".to_owned()),
        ("an array", format!("[{exp}]")),
        ("an object", format!(r#"{{"v":{exp}}}"#)),
        ("a float", format!("{exp}.0")),
        ("an exponent", "1.8000036e9".to_owned()),
        ("huge (1e400)", "1e400".to_owned()),
        ("past u64", "18446744073709551616".to_owned()),
        ("30 digits", "999999999999999999999999999999".to_owned()),
        ("negative", "-1".to_owned()),
        ("negative zero", "-0".to_owned()),
        ("NaN", "NaN".to_owned()),
        ("Infinity", "Infinity".to_owned()),
        ("hexadecimal", "0x6B49D200".to_owned()),
        ("leading zero", format!("0{exp}")),
        ("u64::MAX", u64::MAX.to_string()),
    ] {
        cases.push(case(
            format!("exp {name}"),
            v.with_claims(&["exp"], &format!(r#""exp":{value}"#)),
        ));
    }
    cases.push(case("exp missing", v.with_claims(&["exp"], "")));
    // Times.
    let leeway = 30;
    cases.push(case(
        "exp past the leeway",
        v.with_claims(
            &["exp", "iat"],
            &format!(r#""iat":{},"exp":{}"#, START - 3600, START - leeway - 1),
        ),
    ));
    cases.push(case(
        "iat in the future beyond the leeway",
        v.with_claims(
            &["exp", "iat"],
            &format!(
                r#""iat":{},"exp":{}"#,
                START + leeway + 1,
                START + leeway + 3601
            ),
        ),
    ));
    cases.push(case(
        "nbf in the future beyond the leeway",
        v.with_claims(&[], &format!(r#""nbf":{}"#, START + leeway + 1)),
    ));
    for (name, value) in [("a string", r#""0""#), ("null", "null"), ("negative", "-5")] {
        cases.push(case(
            format!("nbf {name}"),
            v.with_claims(&[], &format!(r#""nbf":{value}"#)),
        ));
        cases.push(case(
            format!("iat {name}"),
            v.with_claims(&["iat"], &format!(r#""iat":{value}"#)),
        ));
    }
    cases.push(case("iat missing", v.with_claims(&["iat"], "")));
    cases.push(case(
        "a lifetime one second longer than configured",
        v.with_claims(
            &["exp", "iat"],
            &format!(r#""iat":{iat},"exp":{}"#, iat + 24 * 3600 + 1),
        ),
    ));
    cases.push(case(
        "exp before iat",
        v.with_claims(
            &["exp", "iat"],
            &format!(r#""iat":{iat},"exp":{}"#, iat - 1),
        ),
    ));
    // Issuer.
    for (name, iss) in [
        ("wrong", r#""evil""#.to_owned()),
        ("a prefix", r#""tess""#.to_owned()),
        ("a substring", r#""esser""#.to_owned()),
        ("with a suffix", r#""tessera-evil""#.to_owned()),
        ("with a prefix", r#""evil-tessera""#.to_owned()),
        (
            "an URL containing it",
            r#""https://tessera.evil""#.to_owned(),
        ),
        ("in an array", r#"["tessera"]"#.to_owned()),
        (
            "in an array with another",
            r#"["evil","tessera"]"#.to_owned(),
        ),
        ("capitalised", r#""Tessera""#.to_owned()),
        ("upper case", r#""TESSERA""#.to_owned()),
        ("with a Cyrillic a", "\"tesser\u{430}\"".to_owned()),
        ("with a Cyrillic e", "\"t\u{435}ssera\"".to_owned()),
        (
            "full width",
            "\"\u{ff54}\u{ff45}\u{ff53}\u{ff53}\u{ff45}\u{ff52}\u{ff41}\"".to_owned(),
        ),
        ("with a combining accent", r#""tessera\u0301""#.to_owned()),
        ("with a zero-width space", r#""tessera\u200b""#.to_owned()),
        ("with a NUL", r#""tessera\u0000""#.to_owned()),
        ("with a trailing space", r#""tessera ""#.to_owned()),
        ("with a lone surrogate", r#""tessera\ud800""#.to_owned()),
        ("empty", r#""""#.to_owned()),
        ("null", "null".to_owned()),
        ("a number", "1".to_owned()),
        ("an object", r#"{"iss":"tessera"}"#.to_owned()),
    ] {
        cases.push(case(
            format!("iss {name}"),
            v.with_claims(&["iss"], &format!(r#""iss":{iss}"#)),
        ));
    }
    cases.push(case("iss missing", v.with_claims(&["iss"], "")));
    // Audience: none is configured, so a token meant for someone is not for us.
    cases.push(case(
        "aud present though none is configured",
        v.with_claims(&[], r#""aud":"tessera""#),
    ));
    // Subject, org and session must be hyphenated UUIDs.
    for claim in ["sub", "org", "sid"] {
        cases.push(case(
            format!("{claim} missing"),
            v.with_claims(&[claim], ""),
        ));
        for (name, value) in [
            ("not a UUID", r#""admin""#),
            ("a number", "1"),
            ("null", "null"),
            ("an array", "[]"),
        ] {
            cases.push(case(
                format!("{claim} {name}"),
                v.with_claims(&[claim], &format!(r#""{claim}":{value}"#)),
            ));
        }
    }
    cases.push(case(
        "sub of another user",
        v.with_claims(&["sub"], &format!(r#""sub":"{}""#, common::random_user())),
    ));
    v.assert_all_rejected("claims", cases).await;
}

#[tokio::test]
async fn broken_structure_and_signatures_are_rejected() {
    let v = Victim::new().await;
    let (h, p, s) = split(v.token());
    let other = v.h.login().await;
    let (_, _, other_sig) = split(other.access_token.expose());
    let mut cases = vec![
        case("empty", ""),
        case("one dot", "."),
        case("two dots", ".."),
        case("three dots", "..."),
        case("one segment", h.clone()),
        case("two segments", format!("{h}.{p}")),
        case("four segments", format!("{h}.{p}.{s}.{s}")),
        case("trailing dot", format!("{h}.{p}.{s}.")),
        case("leading dot", format!(".{h}.{p}.{s}")),
        case("empty header", format!(".{p}.{s}")),
        case("empty payload", format!("{h}..{s}")),
        case("signature stripped", format!("{h}.{p}.")),
        case(
            "signature one character short",
            format!("{h}.{p}.{}", &s[..s.len() - 1]),
        ),
        case("signature one byte short", {
            let sig = B64.decode(&s).expect("b64");
            format!("{h}.{p}.{}", b64(&sig[..31]))
        }),
        case("signature halved", format!("{h}.{p}.{}", &s[..s.len() / 2])),
        case("signature with an extra byte", {
            let mut sig = B64.decode(&s).expect("b64");
            sig.push(0);
            format!("{h}.{p}.{}", b64(sig))
        }),
        case("signature with an extra character", format!("{h}.{p}.{s}A")),
        case("signature twice", format!("{h}.{p}.{s}{s}")),
        case("signature of another token", format!("{h}.{p}.{other_sig}")),
        case("signature padded", format!("{h}.{p}.{s}=")),
        case(
            "JWE with five segments",
            format!(
                "{}.{}.{}.{}.{}",
                b64(r#"{"alg":"dir","enc":"A256GCM"}"#),
                "",
                b64([1u8; 12]),
                p,
                b64([2u8; 16])
            ),
        ),
        case(
            "five segments of the real token",
            format!("{h}.{p}.{s}.{p}.{s}"),
        ),
        case(
            "flattened JSON serialization",
            json!({"protected": h, "payload": p, "signature": s}).to_string(),
        ),
        case(
            "general JSON serialization",
            json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string(),
        ),
        case("Bearer prefix", format!("Bearer {}", v.token())),
        case("refresh token as bearer", v.issued.refresh_token.expose()),
        case(
            "refresh token prefix on an access token",
            format!("tsr1_{}", v.token()),
        ),
    ];
    if let Some(t) = with_trailing_bits(&s) {
        cases.push(case(
            "signature with non-zero trailing bits",
            format!("{h}.{p}.{t}"),
        ));
    }
    // A valid token whose signature's encoding has '-' or '_', so that its
    // standard-alphabet spelling differs.
    let with_url_chars = (0..)
        .map(|n| v.with_claims(&[], &format!(r#""n":{n}"#)))
        .find(|t| {
            let sig = t.rsplit('.').next().unwrap_or_default();
            sig.contains('-') || sig.contains('_')
        })
        .expect("one in a few tries");
    v.assert_accepted("the url-safe control", &with_url_chars)
        .await;
    let (sh, sp, ss) = split(&with_url_chars);
    cases.push(case(
        "signature in the standard alphabet",
        format!(
            "{sh}.{sp}.{}",
            B64_STD.encode(B64.decode(&ss).expect("b64"))
        ),
    ));
    // Non-canonical encodings of header and payload, re-signed so that the
    // signature covers exactly these bytes.
    let header = v.header();
    let mut payload = v.payload(&[], "");
    // Make the payload's encoding contain '-' or '_' and need padding.
    let mut n = 0;
    while {
        let e = b64(&payload);
        !(e.contains('-') || e.contains('_')) || e.len() % 4 == 0
    } {
        payload = v.payload(&[], &format!(r#""pad":"{}""#, "\u{3fff}?".repeat(n)));
        n += 1;
    }
    let hp = b64(&header);
    let pp = b64(&payload);
    v.assert_accepted("the canonical control", &sign_input(&format!("{hp}.{pp}")))
        .await;
    cases.push(case(
        "payload padded",
        sign_input(&format!("{hp}.{}", B64_PADDED.encode(&payload))),
    ));
    cases.push(case(
        "payload in the standard alphabet",
        sign_input(&format!("{hp}.{}", B64_STD.encode(&payload))),
    ));
    if let Some(t) = with_trailing_bits(&pp) {
        cases.push(case(
            "payload with non-zero trailing bits",
            sign_input(&format!("{hp}.{t}")),
        ));
    }
    for (name, hh) in [
        ("header padded", B64_PADDED.encode(&header)),
        ("header in the standard alphabet", B64_STD.encode(&header)),
    ] {
        if hh != hp {
            cases.push(case(name, sign_input(&format!("{hh}.{pp}"))));
        }
    }
    // Whitespace and control characters anywhere.
    let token = v.token().to_owned();
    let dot1 = token.find('.').expect("dot");
    let dot2 = token.rfind('.').expect("dot");
    let positions = [
        ("start", 0),
        ("inside the header", dot1 / 2),
        ("before the first dot", dot1),
        ("after the first dot", dot1 + 1),
        ("inside the payload", (dot1 + dot2) / 2),
        ("before the second dot", dot2),
        ("after the second dot", dot2 + 1),
        ("inside the signature", (dot2 + token.len()) / 2),
        ("end", token.len()),
    ];
    for (cname, c) in [
        ("space", " "),
        ("tab", "\t"),
        ("newline", "\n"),
        ("carriage return", "\r"),
        ("NUL", "\0"),
        ("vertical tab", "\x0b"),
        ("form feed", "\x0c"),
        ("DEL", "\x7f"),
        ("no-break space", "\u{a0}"),
        ("zero-width space", "\u{200b}"),
        ("byte order mark", "\u{feff}"),
        ("escaped newline", "%0A"),
    ] {
        for (pname, at) in positions {
            let mut t = token.clone();
            t.insert_str(at, c);
            cases.push(case(format!("{cname} at {pname}"), t));
        }
    }
    v.assert_all_rejected("structure", cases).await;
}

#[tokio::test]
async fn any_bit_flipped_anywhere_is_rejected() {
    let v = Victim::new().await;
    let token = v.token().as_bytes().to_vec();
    let mut cases = Vec::new();
    for i in 0..token.len() * 8 {
        let mut t = token.clone();
        t[i / 8] ^= 1 << (i % 8);
        // A flip of the top bit is not UTF-8, which a `&str` cannot hold;
        // the HTTP layer refuses such headers before the library sees them.
        if let Ok(t) = String::from_utf8(t) {
            cases.push(case(format!("bit {i}"), t));
        }
    }
    assert!(cases.len() >= token.len() * 7);
    v.assert_all_rejected("bit flips", cases).await;
}

#[tokio::test]
async fn oversized_tokens_are_refused_and_the_limit_is_exact() {
    let v = Victim::new().await;
    let header = v.header();
    let limit = tessera::token::access::MAX_TOKEN_LEN;
    // Grow a filler claim until the signed token has exactly `len` bytes.
    let sized = |len: usize| {
        let mut n = 0;
        loop {
            let t = v.with_claims(&[], &format!(r#""filler":"{}""#, "f".repeat(n)));
            match t.len().cmp(&len) {
                std::cmp::Ordering::Equal => return Some(t),
                std::cmp::Ordering::Greater => return None,
                std::cmp::Ordering::Less => n += 1,
            }
        }
    };
    // Base64 grows in steps, so not every length is reachable with one
    // claim; take the largest reachable length at or under the limit.
    let at_limit = (0..4)
        .find_map(|back| sized(limit - back))
        .expect("a token near the limit");
    v.assert_accepted("a token at the limit", &at_limit).await;
    let mut cases = vec![
        case(
            "one byte over the limit",
            format!("{}{}", at_limit, "A".repeat(limit + 1 - at_limit.len())),
        ),
        case(
            "a megabyte",
            format!(
                "{}.{}.{}",
                b64(&header),
                "A".repeat(1 << 20),
                "B".repeat(43)
            ),
        ),
        case("a megabyte of dots", ".".repeat(1 << 20)),
    ];
    if let Some(t) = (1..8).find_map(|d| sized(limit + d)) {
        cases.push(case("a signed token over the limit", t));
    }
    v.assert_all_rejected("size", cases).await;
}

#[tokio::test]
async fn a_forged_token_gets_the_same_answer_whatever_else_is_wrong() {
    let v = Victim::new().await;
    let attacker_key = b"Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-attacker";
    let forge = |payload: &str| jws(hmac::HMAC_SHA256, attacker_key, &v.header(), payload);
    let answer = |t: String| {
        let m = v.h.manager.clone();
        async move {
            let e = m.validate_session(&t).await.expect_err("rejected");
            (e.kind(), e.message().to_owned())
        }
    };
    let forged = answer(forge(&v.payload(&[], ""))).await;
    assert_eq!(forged.0, ErrorKind::Token);
    for (name, payload) in [
        (
            "expired",
            v.payload(
                &["exp", "iat"],
                &format!(r#""iat":{},"exp":{}"#, START - 7200, START - 3600),
            ),
        ),
        ("wrong issuer", v.payload(&["iss"], r#""iss":"evil""#)),
        (
            "issued in the future",
            v.payload(
                &["exp", "iat"],
                &format!(r#""iat":{},"exp":{}"#, START + 7200, START + 9000),
            ),
        ),
        ("no exp", v.payload(&["exp"], "")),
        ("not an object", "[]".to_owned()),
    ] {
        assert_eq!(
            answer(forge(&payload)).await,
            forged,
            "a forged token that is also {name} must get the forged answer"
        );
    }
    // The genuine expired token gets a different, more helpful answer: so the
    // equality above really shows that the signature was checked first.
    let expired = v.with_claims(
        &["exp", "iat"],
        &format!(r#""iat":{},"exp":{}"#, START - 7200, START - 3600),
    );
    assert_ne!(answer(expired).await, forged);
}

#[tokio::test]
async fn unknown_header_fields_and_claims_do_not_break_validation() {
    let v = Victim::new().await;
    let kid = &v.kid;
    let payload = v.payload(&[], "");
    for (name, header) in [
        (
            "an unknown header field",
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}","x-trace":"abc"}}"#),
        ),
        (
            "an unknown structured header field",
            format!(r#"{{"alg":"HS256","kid":"{kid}","ext":{{"a":[1,2,{{"b":null}}]}}}}"#),
        ),
        (
            "fields in another order",
            format!(r#"{{"kid":"{kid}","typ":"JWT","alg":"HS256"}}"#),
        ),
        ("no typ", format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#)),
        ("no kid (the current key)", r#"{"alg":"HS256"}"#.to_owned()),
        (
            "whitespace between members",
            format!("{{\"alg\" : \"HS256\",\r\n \"kid\":\"{kid}\"}}"),
        ),
    ] {
        v.assert_accepted(name, &v.signed(&header, &payload)).await;
    }
    v.assert_accepted(
        "unknown claims",
        &v.with_claims(&[], r#""scope":"a b","ctx":{"x":[1,2.5,"\u00e9"]}"#),
    )
    .await;
    v.assert_accepted(
        "nbf inside the leeway",
        &v.with_claims(&[], &format!(r#""nbf":{}"#, START + 30)),
    )
    .await;
}

async fn manager_with_audience(audience: &str) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(START);
    let manager = SessionManager::builder()
        .keys(common::keys())
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .lifetimes(common::lifetimes())
        .audience(audience)
        .build()
        .expect("manager builds");
    let (user, org) = (common::random_user(), common::random_org());
    manager
        .set_membership(&user, &org, &common::role("member"))
        .await
        .expect("membership");
    Harness {
        manager,
        store,
        clock,
        user,
        org,
    }
}

#[tokio::test]
async fn a_wrong_audience_is_rejected_where_one_is_configured() {
    let v = Victim::of(manager_with_audience("billing-api").await).await;
    assert_eq!(v.claims["aud"], "billing-api", "tokens name the audience");
    let mut cases = vec![case("aud missing", v.with_claims(&["aud"], ""))];
    for (name, aud) in [
        ("wrong", r#""other-api""#),
        ("a prefix", r#""billing""#),
        ("with a suffix", r#""billing-api-v2""#),
        ("capitalised", r#""Billing-api""#),
        ("in an array", r#"["billing-api"]"#),
        ("in an array with another", r#"["other-api","billing-api"]"#),
        ("null", "null"),
        ("a number", "1"),
    ] {
        cases.push(case(
            format!("aud {name}"),
            v.with_claims(&["aud"], &format!(r#""aud":{aud}"#)),
        ));
    }
    v.assert_all_rejected("aud", cases).await;
    let plain = Victim::new().await;
    let without = plain.h.manager.validate_session(v.token()).await;
    assert!(
        without.is_err(),
        "another deployment's token is not valid here"
    );
}
