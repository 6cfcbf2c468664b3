//! Access tokens: what verifies, what does not, and that a standard JWT
//! implementation agrees.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{ENCRYPTION_KEY, Harness, JWT_SECRET, START};
use jwt_simple::prelude::*;
use tessera::{ErrorKind, KeyRing, Lifetimes};

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = B64.decode(&segments(token)[1]).expect("base64 payload");
    serde_json::from_slice(&payload).expect("json payload")
}

fn hs256(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use aws_lc_rs::hmac;
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let sig = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.as_ref()))
}

async fn assert_token_error(h: &Harness, token: &str, why: &str) {
    let err = h.manager.validate_session(token).await.expect_err(why);
    assert_eq!(err.kind(), ErrorKind::Token, "{why}");
    assert!(
        token.len() < 8 || !err.message().contains(token),
        "the error echoes the token"
    );
}

#[tokio::test]
async fn access_tokens_carry_the_documented_header_and_claims() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(&segments(token)[0]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].is_string());
    let c = claims_of(token);
    assert_eq!(c["sub"], h.user.to_string());
    assert_eq!(c["org"], h.org.to_string());
    assert_eq!(c["sid"], issued.session_id.to_string());
    assert_eq!(c["role"], "member");
    assert!(c["permissions"].as_array().is_some_and(|p| !p.is_empty()));
    assert_eq!(c["iat"], START);
    assert_eq!(c["exp"], START + 24 * 3600);
    assert_eq!(c["iss"], "tessera");
    assert!(c["jti"].is_string());
}

#[tokio::test]
async fn an_independent_jwt_implementation_verifies_access_tokens() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let key = HS256Key::from_bytes(JWT_SECRET.as_bytes());
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&["tessera"])),
        // The test clock is in the future of the real one.
        time_tolerance: Some(Duration::from_days(20_000)),
        ..Default::default()
    };
    let verified = key
        .verify_token::<serde_json::Map<String, serde_json::Value>>(
            issued.access_token.expose(),
            Some(options),
        )
        .expect("jwt-simple verifies the token with the same secret");
    assert_eq!(
        verified.subject.as_deref(),
        Some(h.user.to_string().as_str())
    );
    assert_eq!(
        verified.custom.get("sid").and_then(|v| v.as_str()),
        Some(issued.session_id.to_string().as_str())
    );
    let wrong = HS256Key::from_bytes(b"another-secret-of-enough-length-000");
    assert!(
        wrong
            .verify_token::<serde_json::Value>(issued.access_token.expose(), None)
            .is_err()
    );
}

#[tokio::test]
async fn a_tampered_token_is_rejected() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    let mut c = claims_of(token);
    c["role"] = "owner".into();
    let s = segments(token);
    let forged = format!("{}.{}.{}", s[0], B64.encode(c.to_string()), s[2]);
    assert_token_error(&h, &forged, "payload changed, signature kept").await;
    let mut sig = B64.decode(&s[2]).expect("b64");
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", s[0], s[1], B64.encode(sig));
    assert_token_error(&h, &flipped, "signature bit flipped").await;
    assert_token_error(&h, &format!("{}.{}.", s[0], s[1]), "signature stripped").await;
    assert_token_error(&h, &format!("{}.{}", s[0], s[1]), "two segments").await;
    assert_token_error(&h, "", "empty").await;
    assert_token_error(&h, "not a token", "garbage").await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_rejected() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let forged = hs256(
        b"Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-attacker",
        &header,
        &claims_of(issued.access_token.expose()),
    );
    assert_token_error(&h, &forged, "wrong key").await;
    let with_kid = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "../../etc/passwd"});
    let forged = hs256(
        JWT_SECRET.as_bytes(),
        &with_kid,
        &claims_of(issued.access_token.expose()),
    );
    assert_token_error(&h, &forged, "unknown kid").await;
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_rejected() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let c = claims_of(issued.access_token.expose());
    for alg in ["none", "None", "NONE", "HS512", "RS256", "ES256"] {
        let header = serde_json::json!({"alg": alg, "typ": "JWT"});
        let unsigned = format!(
            "{}.{}.",
            B64.encode(header.to_string()),
            B64.encode(c.to_string())
        );
        assert_token_error(&h, &unsigned, alg).await;
        let signed = hs256(JWT_SECRET.as_bytes(), &header, &c);
        assert_token_error(&h, &signed, alg).await;
    }
}

#[tokio::test]
async fn an_expired_token_is_rejected_and_leeway_is_bounded() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let token = issued.access_token.expose();
    // Keep the session itself alive with a refresh-free clock jump inside the
    // refresh lifetime: only the access token expires.
    h.clock.advance(24 * 3600 + 29);
    assert!(
        h.manager.validate_session(token).await.is_ok(),
        "inside the 30 s leeway"
    );
    h.clock.advance(1);
    assert_token_error(&h, token, "at exp + leeway").await;
    h.clock.advance(3600);
    assert_token_error(&h, token, "well past exp").await;
}

#[tokio::test]
async fn a_forged_token_with_a_long_lifetime_or_future_iat_is_rejected() {
    let h = Harness::new().await;
    let issued = h.login().await;
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let mut c = claims_of(issued.access_token.expose());
    c["exp"] = (START + 365 * 24 * 3600).into();
    let long = hs256(JWT_SECRET.as_bytes(), &header, &c);
    assert_token_error(&h, &long, "lifetime longer than configured").await;
    let mut c = claims_of(issued.access_token.expose());
    c["iat"] = (START + 3600).into();
    c["exp"] = (START + 7200).into();
    let future = hs256(JWT_SECRET.as_bytes(), &header, &c);
    assert_token_error(&h, &future, "issued in the future").await;
    let mut c = claims_of(issued.access_token.expose());
    c["iss"] = "tessera-evil".into();
    let wrong_iss = hs256(JWT_SECRET.as_bytes(), &header, &c);
    assert_token_error(&h, &wrong_iss, "wrong issuer").await;
    let mut c = claims_of(issued.access_token.expose());
    c.as_object_mut().expect("object").remove("exp");
    let no_exp = hs256(JWT_SECRET.as_bytes(), &header, &c);
    assert_token_error(&h, &no_exp, "no exp").await;
}

#[tokio::test]
async fn an_oversized_token_is_rejected_before_parsing() {
    let h = Harness::new().await;
    let big = format!(
        "{}.{}.{}",
        "a".repeat(4000),
        "b".repeat(4000),
        "c".repeat(400)
    );
    assert_token_error(&h, &big, "over 8 KiB").await;
    let dots = format!("Bearer {}", ".".repeat(10_000));
    assert_token_error(&h, &dots, "thousands of dots").await;
}

#[tokio::test]
async fn refresh_and_access_tokens_cannot_stand_in_for_each_other() {
    let h = Harness::new().await;
    let issued = h.login().await;
    assert_token_error(&h, issued.refresh_token.expose(), "refresh token as bearer").await;
    let err = h
        .refresh(&issued.access_token)
        .await
        .expect_err("access token at refresh");
    assert_eq!(err.kind(), ErrorKind::Token);
    assert!(
        h.validate(&issued.access_token).await.is_ok(),
        "a wrong-type attempt harms nothing"
    );
}

#[tokio::test]
async fn rotating_the_jwt_secret_keeps_old_tokens_valid() {
    let old = Harness::with(common::keys(), common::lifetimes()).await;
    let issued = old.login().await;
    let rotated = KeyRing::with_previous(
        "Nw5Qe8Rt1Yu4Io7Pa0Sd3Fg6Hj9Kl2Zx-new",
        &[JWT_SECRET],
        ENCRYPTION_KEY,
        &[],
    )
    .expect("keys");
    let manager = old.manager_with(
        rotated,
        Lifetimes {
            cleanup_interval: std::time::Duration::ZERO,
            ..Lifetimes::default()
        },
    );
    manager
        .validate_session(issued.access_token.expose())
        .await
        .expect("a token signed with the previous secret still validates");
    let refreshed = manager
        .refresh_session(issued.refresh_token.expose())
        .await
        .expect("refresh works across the rotation");
    let header = B64
        .decode(&segments(refreshed.access_token.expose())[0])
        .expect("b64");
    let old_header = B64
        .decode(&segments(issued.access_token.expose())[0])
        .expect("b64");
    assert_ne!(header, old_header, "new tokens carry the new kid");
    // The old ring does not know the new key.
    assert_token_error(&old, refreshed.access_token.expose(), "unknown new kid").await;
}
