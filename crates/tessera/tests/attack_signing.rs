//! Asymmetric signing (EdDSA, ES256), the JWKS, rotation, and algorithm
//! confusion between the modes.
//!
//! Interoperability is checked with two independent implementations:
//! `jwt-simple` (RustCrypto keys built from the JWK coordinates alone) and
//! `jsonwebtoken` (its own JWK Set parser).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{ENCRYPTION_KEY, Harness, JWT_SECRET, START};
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ES256PublicKey, Ed25519PublicKey, EdDSAPublicKeyLike, HashSet,
    VerificationOptions,
};
use serde_json::Value;
use tessera::keys::{Jwks, SigningAlgorithm};
use tessera::{ErrorKind, KeyRing, SessionManager};

const ASYMMETRIC: [SigningAlgorithm; 2] = [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256];

fn pem(alg: SigningAlgorithm) -> String {
    KeyRing::generate_signing_key(alg)
        .expect("generated")
        .to_string()
}

fn ring(alg: SigningAlgorithm, current: &str, previous: &[&str]) -> KeyRing {
    KeyRing::with_signing_keys(alg, current, previous, ENCRYPTION_KEY, &[]).expect("valid keys")
}

fn parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    let decode = |s: &str| serde_json::from_slice(&B64.decode(s).expect("b64")).expect("json");
    (decode(p[0]), decode(p[1]))
}

/// A manager sharing `h`'s store and clock, with other keys.
fn manager_on(h: &Harness, keys: KeyRing) -> SessionManager {
    SessionManager::builder()
        .keys(keys)
        .store(h.store.clone())
        .clock(Arc::new(h.clock.clone()))
        .lifetimes(common::lifetimes())
        .build()
        .expect("manager")
}

fn jwt_simple_options() -> VerificationOptions {
    VerificationOptions {
        allowed_issuers: Some(HashSet::from_iter(["tessera".to_owned()])),
        // The test clock is in the future of the real one.
        time_tolerance: Some(jwt_simple::prelude::Duration::from_days(20_000)),
        ..Default::default()
    }
}

/// Verifies `token` with jwt-simple, using nothing but the JWKS document.
fn verify_with_jwks_jwt_simple(jwks_json: &str, token: &str) -> Result<Value, String> {
    let jwks: Value = serde_json::from_str(jwks_json).map_err(|e| e.to_string())?;
    let (header, _) = parts(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or("kid not in the JWKS")?;
    let coord = |name: &str| B64.decode(jwk[name].as_str().unwrap_or_default());
    let mut options = jwt_simple_options();
    options.required_key_id = Some(kid.to_owned());
    let claims = match (
        jwk["kty"].as_str(),
        jwk["crv"].as_str(),
        jwk["alg"].as_str(),
    ) {
        (Some("OKP"), Some("Ed25519"), Some("EdDSA")) => {
            let key = Ed25519PublicKey::from_bytes(&coord("x").map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            key.verify_token::<Value>(token, Some(options))
        }
        (Some("EC"), Some("P-256"), Some("ES256")) => {
            let mut point = vec![4u8];
            point.extend(coord("x").map_err(|e| e.to_string())?);
            point.extend(coord("y").map_err(|e| e.to_string())?);
            let key = ES256PublicKey::from_bytes(&point).map_err(|e| e.to_string())?;
            key.verify_token::<Value>(token, Some(options))
        }
        other => return Err(format!("unexpected JWK {other:?}")),
    }
    .map_err(|e| e.to_string())?;
    Ok(claims.custom)
}

/// Verifies `token` with jsonwebtoken's own JWK Set parser.
fn verify_with_jwks_jsonwebtoken(jwks_json: &str, token: &str) -> Result<Value, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(jwks_json).map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().ok_or("no kid")?)
        .ok_or("kid not in the JWKS")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let alg = match jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA) => jsonwebtoken::Algorithm::EdDSA,
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => jsonwebtoken::Algorithm::ES256,
        other => return Err(format!("unexpected alg {other:?}")),
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&["tessera"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn asymmetric_tokens_verify_with_a_standard_library_from_the_jwks_alone() {
    for alg in ASYMMETRIC {
        let keys = ring(alg, &pem(alg), &[]);
        let jwks_json = keys.jwks_json().to_owned();
        let h = Harness::with(keys, common::lifetimes()).await;
        let issued = h.login().await;
        let token = issued.access_token.expose();
        let (header, claims) = parts(token);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "JWT");
        h.manager
            .validate_session(token)
            .await
            .expect("Tessera verifies its own token");
        let by_jwt_simple = verify_with_jwks_jwt_simple(&jwks_json, token)
            .unwrap_or_else(|e| panic!("{alg}: jwt-simple: {e}"));
        assert_eq!(by_jwt_simple["sid"], issued.session_id.to_string());
        let by_jsonwebtoken = verify_with_jwks_jsonwebtoken(&jwks_json, token)
            .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken: {e}"));
        assert_eq!(by_jsonwebtoken, claims);
        // And both refuse a tampered token.
        let mut tampered = token.to_owned();
        tampered.replace_range(tampered.len() - 3.., "AAA");
        assert!(verify_with_jwks_jwt_simple(&jwks_json, &tampered).is_err());
        assert!(verify_with_jwks_jsonwebtoken(&jwks_json, &tampered).is_err());
    }
}

#[test]
fn the_jwks_publishes_public_keys_only_in_the_rfc_format() {
    let hs = KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("keys");
    assert_eq!(hs.jwks(), Jwks::default(), "HS256 publishes nothing");
    assert_eq!(hs.jwks_json(), r#"{"keys":[]}"#);
    for (alg, kty, crv, members) in [
        (
            SigningAlgorithm::EdDsa,
            "OKP",
            "Ed25519",
            &["alg", "crv", "kid", "kty", "use", "x"][..],
        ),
        (
            SigningAlgorithm::Es256,
            "EC",
            "P-256",
            &["alg", "crv", "kid", "kty", "use", "x", "y"][..],
        ),
    ] {
        let (current, previous) = (pem(alg), pem(alg));
        let keys = ring(alg, &current, &[&previous]);
        let jwks: Value = serde_json::from_str(keys.jwks_json()).expect("json");
        let list = jwks["keys"].as_array().expect("keys");
        assert_eq!(list.len(), 2, "current and previous");
        assert_eq!(list[0]["kid"], keys.signing_key().kid(), "current first");
        for jwk in list {
            let mut names: Vec<&str> = jwk
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            names.sort_unstable();
            assert_eq!(names, members, "{alg}: no private member such as d");
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["crv"], crv);
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(
                B64.decode(jwk["x"].as_str().expect("x"))
                    .expect("b64")
                    .len(),
                32
            );
        }
        assert_eq!(
            serde_json::to_value(keys.jwks()).expect("json"),
            jwks,
            "the typed and the cached JWKS agree"
        );
    }
}

#[tokio::test]
async fn an_asymmetric_verifier_accepts_only_its_algorithm_and_keys() {
    for alg in ASYMMETRIC {
        let keys = ring(alg, &pem(alg), &[]);
        let public_jwk = keys.jwks().keys[0].clone();
        let h = Harness::with(keys.clone(), common::lifetimes()).await;
        let issued = h.login().await;
        let token = issued.access_token.expose().to_owned();
        let p: Vec<&str> = token.split('.').collect();
        let (header, _) = parts(&token);
        let kid = header["kid"].as_str().expect("kid").to_owned();
        let payload = p[1];
        let raw_public = {
            let mut v = B64.decode(&public_jwk.x).expect("x");
            if let Some(y) = &public_jwk.y {
                v.insert(0, 4);
                v.extend(B64.decode(y).expect("y"));
            }
            v
        };
        let hs = |key: &[u8], header: &str| {
            let input = format!("{}.{payload}", B64.encode(header));
            let sig = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
            format!("{input}.{}", B64.encode(sig))
        };
        let hs_header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        let mut cases: Vec<(String, String)> = vec![];
        for (name, key) in [
            ("the raw public key", raw_public.clone()),
            ("the JWK x as text", public_jwk.x.clone().into_bytes()),
            ("the JWKS as text", keys.jwks_json().to_owned().into_bytes()),
            ("the kid", kid.clone().into_bytes()),
            ("JWT_SECRET", JWT_SECRET.as_bytes().to_vec()),
            ("an empty key", vec![]),
        ] {
            cases.push((format!("HS256 keyed with {name}"), hs(&key, &hs_header)));
            cases.push((
                format!("HS256 without kid keyed with {name}"),
                hs(&key, r#"{"alg":"HS256","typ":"JWT"}"#),
            ));
        }
        // The other asymmetric algorithm, validly signed by a real key of
        // that algorithm but naming this ring's kid.
        let other_alg = if alg == SigningAlgorithm::EdDsa {
            SigningAlgorithm::Es256
        } else {
            SigningAlgorithm::EdDsa
        };
        let other_ring = ring(other_alg, &pem(other_alg), &[]);
        let other = Harness::with(other_ring, common::lifetimes()).await;
        let other_token = other.login().await.access_token.expose().to_owned();
        cases.push((format!("a valid {other_alg} token"), other_token.clone()));
        let op: Vec<&str> = other_token.split('.').collect();
        let swapped_header = format!(
            r#"{{"alg":"{}","typ":"JWT","kid":"{kid}"}}"#,
            other_alg.as_str()
        );
        cases.push((
            format!("{other_alg} header with this kid"),
            format!("{}.{payload}.{}", B64.encode(&swapped_header), op[2]),
        ));
        // This algorithm, signed by an attacker's key: under the real kid,
        // under the attacker's kid, and with the key embedded in the header.
        let attacker_pem = pem(alg);
        let attacker = ring(alg, &attacker_pem, &[]);
        let attacker_jwk = serde_json::to_string(&attacker.jwks().keys[0]).expect("json");
        for (name, kid_used, extra) in [
            ("under the real kid", kid.as_str(), String::new()),
            (
                "under its own kid",
                attacker.signing_key().kid(),
                String::new(),
            ),
            (
                "embedded as jwk",
                attacker.signing_key().kid(),
                format!(r#","jwk":{attacker_jwk}"#),
            ),
            (
                "named by jku",
                attacker.signing_key().kid(),
                r#","jku":"https://attacker.example/jwks.json""#.to_owned(),
            ),
        ] {
            let header = format!(
                r#"{{"alg":"{}","typ":"JWT","kid":"{kid_used}"{extra}}}"#,
                alg.as_str()
            );
            let input = format!("{}.{payload}", B64.encode(&header));
            let sig = sign_with_pem(alg, &attacker_pem, input.as_bytes());
            cases.push((
                format!("an attacker's key {name}"),
                format!("{input}.{}", B64.encode(sig)),
            ));
        }
        for (name, alg_value) in [
            ("none", "none"),
            ("lower case", &alg.as_str().to_lowercase()),
        ] {
            let header = format!(r#"{{"alg":"{alg_value}","typ":"JWT","kid":"{kid}"}}"#);
            cases.push((
                format!("alg {name}"),
                format!("{}.{payload}.{}", B64.encode(&header), p[2]),
            ));
        }
        if alg == SigningAlgorithm::Es256 {
            // An ASN.1 DER signature, as some libraries emit: the verifier
            // wants the fixed-width r || s of RFC 7518.
            let der_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
            let input = format!("{}.{payload}", p[0]);
            let der_sig = der_key
                .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
                .expect("signed");
            cases.push((
                "ES256 with a DER signature".into(),
                format!("{input}.{}", B64.encode(der_sig.as_ref())),
            ));
        }
        let mut failures = Vec::new();
        for (name, t) in &cases {
            match h.manager.validate_session(t).await {
                Ok(_) => failures.push(format!("{alg}: {name}: accepted")),
                Err(e) if e.kind() != ErrorKind::Token => {
                    failures.push(format!("{alg}: {name}: {}", e.kind()))
                }
                Err(_) => {}
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        h.manager
            .validate_session(&token)
            .await
            .expect("the real token still validates");
        eprintln!("{alg}: {} confusion cases rejected", cases.len());
    }
}

/// Signs `input` with a PKCS#8 PEM key of `alg`, outside Tessera.
fn sign_with_pem(alg: SigningAlgorithm, pem: &str, input: &[u8]) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    match alg {
        SigningAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8(&der)
            .expect("key")
            .sign(input)
            .as_ref()
            .to_vec(),
        _ => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .expect("key")
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input)
            .expect("signed")
            .as_ref()
            .to_vec(),
    }
}

#[tokio::test]
async fn an_hs256_verifier_rejects_asymmetric_tokens_and_the_reverse() {
    let hs = Harness::new().await;
    let hs_token = hs.login().await.access_token.expose().to_owned();
    for alg in ASYMMETRIC {
        let asym = manager_on(&hs, ring(alg, &pem(alg), &[]));
        let err = asym
            .validate_session(&hs_token)
            .await
            .expect_err("an HS256 token on an asymmetric verifier");
        assert_eq!(err.kind(), ErrorKind::Token);
        // A session created by the asymmetric manager in the same store.
        let issued = asym
            .create_session(hs.new_session())
            .await
            .expect("created");
        let err = hs
            .manager
            .validate_session(issued.access_token.expose())
            .await
            .expect_err("an asymmetric token on the HS256 verifier");
        assert_eq!(err.kind(), ErrorKind::Token);
    }
}

#[tokio::test]
async fn rotating_an_asymmetric_key_keeps_old_tokens_valid_until_the_key_is_retired() {
    for alg in ASYMMETRIC {
        let (old_pem, new_pem) = (pem(alg), pem(alg));
        let old_ring = ring(alg, &old_pem, &[]);
        let h = Harness::with(old_ring.clone(), common::lifetimes()).await;
        let issued = h.login().await;
        let old_kid = old_ring.signing_key().kid().to_owned();
        // The previous key is given by its public half only.
        let old_public = public_pem(&old_ring);
        let rotated = ring(alg, &new_pem, &[&old_public]);
        assert!(!rotated.signing_keys()[1].can_sign());
        let m = manager_on(&h, rotated.clone());
        m.validate_session(issued.access_token.expose())
            .await
            .expect("a token of the previous key still validates");
        let refreshed = m
            .refresh_session(issued.refresh_token.expose())
            .await
            .expect("refresh across the rotation");
        let (header, _) = parts(refreshed.access_token.expose());
        assert_eq!(header["kid"], rotated.signing_key().kid());
        assert_ne!(header["kid"], old_kid.as_str());
        let jwks = rotated.jwks_json().to_owned();
        verify_with_jwks_jwt_simple(&jwks, issued.access_token.expose())
            .expect("the JWKS still has the old key");
        verify_with_jwks_jwt_simple(&jwks, refreshed.access_token.expose())
            .expect("and the new one");
        // Retired: the old key is gone from the ring.
        let retired = manager_on(&h, ring(alg, &new_pem, &[]));
        let err = retired
            .validate_session(issued.access_token.expose())
            .await
            .expect_err("the retired key's token");
        assert_eq!(err.kind(), ErrorKind::Token);
        retired
            .validate_session(refreshed.access_token.expose())
            .await
            .expect("the new key's token");
    }
}

/// The public half of a ring's current key, as SubjectPublicKeyInfo PEM,
/// built from its JWK.
fn public_pem(keys: &KeyRing) -> String {
    let jwk = &keys.jwks().keys[0];
    let mut der = match jwk.crv.as_str() {
        "Ed25519" => vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ],
        _ => vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        ],
    };
    der.extend(B64.decode(&jwk.x).expect("x"));
    if let Some(y) = &jwk.y {
        der.extend(B64.decode(y).expect("y"));
    }
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

#[tokio::test]
async fn keys_made_by_other_tools_load_and_interoperate() {
    // A PKCS#8 key generated by jwt-simple (RustCrypto), not by aws-lc.
    let ed = jwt_simple::prelude::Ed25519KeyPair::generate();
    let es = jwt_simple::prelude::ES256KeyPair::generate();
    for (alg, private, public) in [
        (
            SigningAlgorithm::EdDsa,
            ed.to_pem(),
            ed.public_key().to_pem(),
        ),
        (
            SigningAlgorithm::Es256,
            es.to_pem().expect("pem"),
            es.public_key().to_pem().expect("pem"),
        ),
    ] {
        let keys = ring(alg, &private, &[]);
        let h = Harness::with(keys.clone(), common::lifetimes()).await;
        let issued = h.login().await;
        let token = issued.access_token.expose();
        let options = Some(jwt_simple_options());
        match alg {
            SigningAlgorithm::EdDsa => {
                let key = Ed25519PublicKey::from_pem(&public).expect("public key");
                key.verify_token::<Value>(token, options)
                    .expect("jwt-simple verifies with its own public key");
            }
            _ => {
                let key = ES256PublicKey::from_pem(&public).expect("public key");
                key.verify_token::<Value>(token, options)
                    .expect("jwt-simple verifies with its own public key");
            }
        }
        // The public key alone is a valid previous key.
        KeyRing::with_signing_keys(alg, &pem(alg), &[&public], ENCRYPTION_KEY, &[])
            .expect("a public key as a previous key");
        // But never the current key: the current key signs.
        let err = KeyRing::with_signing_keys(alg, &public, &[], ENCRYPTION_KEY, &[])
            .expect_err("a public key cannot sign");
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.message().starts_with("TESSERA_SIGNING_KEY"));
    }
}

#[test]
fn signing_keys_come_from_the_environment_or_a_file() {
    let ed = pem(SigningAlgorithm::EdDsa);
    let prev = pem(SigningAlgorithm::EdDsa);
    let lookup = |vars: HashMap<&'static str, String>| move |name: &str| vars.get(name).cloned();
    let base = || {
        HashMap::from([
            ("SESSION_ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
            ("TESSERA_SIGNING_ALG", "EdDSA".to_owned()),
        ])
    };
    // PEM in the variable, previous keys concatenated.
    let mut vars = base();
    vars.insert("TESSERA_SIGNING_KEY", ed.clone());
    vars.insert(
        "TESSERA_SIGNING_KEY_PREVIOUS",
        format!("{prev}{}", pem(SigningAlgorithm::EdDsa)),
    );
    let keys = KeyRing::from_lookup(lookup(vars)).expect("from PEM");
    assert_eq!(keys.signing_algorithm(), SigningAlgorithm::EdDsa);
    assert_eq!(keys.signing_keys().len(), 3);
    let kid = keys.signing_key().kid().to_owned();
    // Base64 DER in the variable, previous as a comma-separated list.
    let der = |p: &str| -> String { p.lines().filter(|l| !l.starts_with("-----")).collect() };
    let mut vars = base();
    vars.insert("TESSERA_SIGNING_KEY", der(&ed));
    vars.insert(
        "TESSERA_SIGNING_KEY_PREVIOUS",
        format!("{}, {}", der(&prev), der(&pem(SigningAlgorithm::EdDsa))),
    );
    let keys = KeyRing::from_lookup(lookup(vars)).expect("from DER");
    assert_eq!(keys.signing_key().kid(), kid, "same key, same kid");
    assert_eq!(keys.signing_keys().len(), 3);
    // From a file.
    let path = std::env::temp_dir().join(format!("tessera-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&path, &ed).expect("written");
    let mut vars = base();
    vars.insert("TESSERA_SIGNING_KEY_FILE", path.display().to_string());
    let keys = KeyRing::from_lookup(lookup(vars));
    std::fs::remove_file(&path).expect("removed");
    assert_eq!(keys.expect("from a file").signing_key().kid(), kid);
    // Errors name the variable and never echo the value.
    for (vars, expected) in [
        (base(), "TESSERA_SIGNING_KEY"),
        (
            {
                let mut v = base();
                v.insert("TESSERA_SIGNING_ALG", "RS256".to_owned());
                v
            },
            "TESSERA_SIGNING_ALG",
        ),
        (
            {
                let mut v = base();
                v.insert("TESSERA_SIGNING_ALG", "ES256".to_owned());
                v.insert("TESSERA_SIGNING_KEY", ed.clone());
                v
            },
            "TESSERA_SIGNING_KEY",
        ),
        (
            {
                let mut v = base();
                v.insert(
                    "TESSERA_SIGNING_KEY_FILE",
                    "/nonexistent/tessera.pem".to_owned(),
                );
                v
            },
            "TESSERA_SIGNING_KEY_FILE",
        ),
    ] {
        let err = KeyRing::from_lookup(lookup(vars)).expect_err(expected);
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.message().contains(expected), "{err}");
        assert!(!err.message().contains(ed.lines().nth(1).expect("line")));
    }
    // A key listed twice is kept once.
    let mut vars = base();
    vars.insert("TESSERA_SIGNING_KEY", ed.clone());
    vars.insert("TESSERA_SIGNING_KEY_PREVIOUS", format!("{ed}{prev}"));
    let keys = KeyRing::from_lookup(lookup(vars)).expect("duplicates");
    assert_eq!(keys.signing_keys().len(), 2);
    // HS256 stays the default, from JWT_SECRET.
    let vars = HashMap::from([
        ("SESSION_ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
    ]);
    let keys = KeyRing::from_lookup(lookup(vars)).expect("HS256");
    assert_eq!(keys.signing_algorithm(), SigningAlgorithm::Hs256);
}

#[tokio::test]
async fn a_standard_library_token_signed_with_the_ring_key_and_tessera_claims_verifies() {
    // The positive control for the asymmetric modes: nothing Tessera-specific
    // is needed to mint a token its verifier accepts, only the key.
    use jwt_simple::prelude::{Claims, EdDSAKeyPairLike};
    let kp = jwt_simple::prelude::Ed25519KeyPair::generate();
    let keys = ring(SigningAlgorithm::EdDsa, &kp.to_pem(), &[]);
    let h = Harness::with(keys.clone(), common::lifetimes()).await;
    let issued = h.login().await;
    let (_, claims) = parts(issued.access_token.expose());
    let kp = kp.with_key_id(keys.signing_key().kid());
    let custom = serde_json::json!({"org": claims["org"], "sid": claims["sid"]});
    let mut c = Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_hours(1))
        .with_issuer("tessera")
        .with_subject(claims["sub"].as_str().expect("sub"));
    // jwt-simple stamps the real time; move it to the test clock.
    c.issued_at = Some(jwt_simple::prelude::UnixTimeStamp::from_secs(START));
    c.invalid_before = Some(jwt_simple::prelude::UnixTimeStamp::from_secs(START));
    c.expires_at = Some(jwt_simple::prelude::UnixTimeStamp::from_secs(START + 3600));
    let token = kp.sign(c).expect("signed");
    h.manager
        .validate_session(&token)
        .await
        .expect("a token minted by jwt-simple with the ring's key");
}

/// The order of P-256 and half of it (rounded down), big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

#[tokio::test]
async fn es256_tokens_carry_low_s_and_their_high_s_twin_is_refused() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    let alg = SigningAlgorithm::Es256;
    let keys = ring(alg, &pem(alg), &[]);
    let h = Harness::with(keys.clone(), common::lifetimes()).await;
    let jwks: Value = serde_json::from_str(keys.jwks_json()).expect("json");
    let coord = |name: &str| {
        B64.decode(jwks["keys"][0][name].as_str().expect(name))
            .expect("b64")
    };
    let point = [vec![4u8], coord("x"), coord("y")].concat();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    for _ in 0..64 {
        let issued = h.login().await;
        let token = issued.access_token.expose();
        let (input, sig) = token.rsplit_once('.').expect("a signature");
        let sig = B64.decode(sig).expect("b64");
        assert!(
            sig[32..] <= P256_HALF_ORDER[..],
            "Tessera signs with a low s"
        );
        // The twin (r, n - s).
        let mut twin = sig.clone();
        let mut borrow = 0u16;
        for i in (0..32).rev() {
            let d = u16::from(P256_ORDER[i])
                .wrapping_sub(u16::from(sig[32 + i]))
                .wrapping_sub(borrow);
            twin[32 + i] = (d & 0xff) as u8;
            borrow = (d >> 8) & 1;
        }
        // Plain ECDSA accepts the twin: it is a real signature, not noise.
        public
            .verify(input.as_bytes(), &twin)
            .expect("ECDSA accepts (r, n - s)");
        let twin_token = format!("{input}.{}", B64.encode(&twin));
        let err = h
            .manager
            .validate_session(&twin_token)
            .await
            .expect_err("the high-s twin is refused");
        assert_eq!(err.kind(), ErrorKind::Token);
        h.manager
            .validate_session(token)
            .await
            .expect("the token itself is valid");
    }
}
