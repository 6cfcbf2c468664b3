//! Entry points for the cargo-fuzz targets in `fuzz/`, not part of the API.
//!
//! [`decode_request`] runs a request body through the same [`ApiJson`]
//! extractor and wire types the handlers use, then through the parsers the
//! handlers apply next, so the fuzzer reaches everything between the bytes
//! of a body and the session manager: content-type check, JSON parsing,
//! `deny_unknown_fields`, the redaction of parser messages and the id,
//! address, user-agent, role and refresh-token parsers.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use tessera::ids::parse_ip;
use tessera::{DeviceId, KeyRing, OrgId, RoleName, UserAgent, UserId};

use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::wire::{CreateSessionRequest, RefreshRequest, SetMembershipRequest};

/// Which endpoint's body to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// `POST /v1/sessions`
    Create,
    /// `POST /v1/sessions/refresh`
    Refresh,
    /// `PUT /v1/orgs/{org_id}/members/{user_id}`
    Membership,
}

impl RequestBody {
    /// Picks a kind from a fuzzer's byte.
    pub fn from_byte(b: u8) -> Self {
        match b % 3 {
            0 => Self::Create,
            1 => Self::Refresh,
            _ => Self::Membership,
        }
    }
}

/// Decodes `body`, sent with `content_type`, as the handler of `kind`
/// would before it calls the session manager. Every input is `Ok` or an
/// [`ApiError`]; a panic is a bug.
pub fn decode_request(kind: RequestBody, content_type: &str, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        RequestBody::Create => {
            let req: CreateSessionRequest = extract(content_type, body)?;
            // The parsing steps of `sessions::create`, in its order.
            UserId::parse(&req.user_id)?;
            OrgId::parse(&req.org_id)?;
            if let Some(d) = &req.device_id {
                DeviceId::parse(d)?;
            }
            if let Some(ip) = &req.ip_address {
                parse_ip(ip)?;
            }
            if let Some(ua) = &req.user_agent {
                UserAgent::parse(ua)?;
            }
        }
        RequestBody::Refresh => {
            let req: RefreshRequest = extract(content_type, body)?;
            // `sessions::refresh` checks the MAC before anything else.
            if let Some(keys) = keys() {
                tessera::token::refresh::session_id_of(keys, &req.refresh_token)?;
            }
        }
        RequestBody::Membership => {
            let req: SetMembershipRequest = extract(content_type, body)?;
            RoleName::parse(&req.role)?;
        }
    }
    Ok(())
}

/// A fixed key ring for the refresh token's MAC check. Not a secret: it
/// exists only in fuzzing builds' inputs.
fn keys() -> Option<&'static KeyRing> {
    static KEYS: OnceLock<Option<KeyRing>> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeyRing::new(
            "Fz7Qk2Lm9Vb4Nx1Rt8Yc3Wd6Hs0Jp5Ga-fuzzing",
            "Ue2Io9Pa4Sd7Fg1Hj6Kl3Zx8Cv0Bn5Mq-fuzzing",
        )
        .ok()
    })
    .as_ref()
}

fn extract<T: serde::de::DeserializeOwned>(content_type: &str, body: &[u8]) -> Result<T, ApiError> {
    let req = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .map_err(|_| ApiError::validation("not a valid request"))?;
    // A full in-memory body: the extractor never waits, so one poll with
    // a no-op waker completes it and no runtime is needed.
    match poll_once(ApiJson::<T>::from_request(req, &())) {
        Poll::Ready(r) => r.map(|ApiJson(t)| t),
        Poll::Pending => Err(ApiError::validation("the body was not ready")),
    }
}

fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let f = pin!(f);
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/json";

    #[test]
    fn well_formed_bodies_decode() {
        let create = br#"{"user_id":"6f9619ff-8b86-d011-b42d-00cf4fc964ff","org_id":"0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11","ip_address":"192.0.2.1","user_agent":"curl/8","device_id":"d1"}"#;
        assert!(decode_request(RequestBody::Create, JSON, create).is_ok());
        assert!(decode_request(RequestBody::Membership, JSON, br#"{"role":"member"}"#).is_ok());
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        for kind in [
            RequestBody::Create,
            RequestBody::Refresh,
            RequestBody::Membership,
        ] {
            for body in [
                &b""[..],
                b"{",
                b"[]",
                b"null",
                b"{\"x\":1}",
                b"\xff\xfe",
                br#"{"refresh_token":"a.b"}"#,
            ] {
                assert!(
                    decode_request(kind, JSON, body).is_err(),
                    "{kind:?} {body:?}"
                );
            }
            assert!(decode_request(kind, "text/plain", b"{}").is_err());
        }
    }
}
