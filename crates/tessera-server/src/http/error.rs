//! The one place where errors become HTTP responses.
//!
//! Every error the service returns is
//! `{"error": {"type": TYPE, "message": TEXT, "request_id": ID}}` with the
//! status of its type:
//!
//! | type | status |
//! |---|---|
//! | `VALIDATION_ERROR` | 400 (413 for an oversized body, 405 for a wrong method) |
//! | `AUTHENTICATION_ERROR` | 401 |
//! | `TOKEN_ERROR` | 401, with `WWW-Authenticate: Bearer error="invalid_token"` for bearer tokens |
//! | `AUTHORIZATION_ERROR` | 403 |
//! | `NOT_FOUND` | 404 |
//! | `RATE_LIMITED` | 429, with `Retry-After` |
//! | `DATABASE_ERROR` | 503 |
//! | `ENCRYPTION_ERROR` | 500 |
//! | `SYSTEM_ERROR` | 500 |
//!
//! Handlers return [`ApiError`]; its response carries the type and message
//! as an extension and no body yet. The observing layer, which knows the
//! request id, renders the body with [`render`], so the id is in every error
//! without every handler having to carry it.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera::{ErrorKind, SessionError};
use utoipa::ToSchema;

/// An error response: an error type of the wire, a status and a message
/// that is safe to show a client.
#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: Cow<'static, str>,
    retry_after_secs: Option<u64>,
    www_authenticate: Option<&'static str>,
}

/// The error type and message, carried from [`ApiError`] to [`render`] in
/// the response's extensions.
#[derive(Clone, Debug)]
pub(crate) struct PendingError {
    pub(crate) kind: &'static str,
    message: Cow<'static, str>,
}

const TOKEN_ERROR: &str = "TOKEN_ERROR";
const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    /// `400 VALIDATION_ERROR`.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// `413 VALIDATION_ERROR`: the body is over the limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "VALIDATION_ERROR",
            "the request body is larger than 64 KiB",
        )
    }

    /// `408 VALIDATION_ERROR`: the body did not arrive within its read
    /// deadline.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "VALIDATION_ERROR",
            "the request body did not arrive in time",
        )
    }

    /// `405 VALIDATION_ERROR`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "VALIDATION_ERROR",
            "this method is not allowed on this path",
        )
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// `401 AUTHENTICATION_ERROR`.
    pub fn authentication(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AUTHENTICATION_ERROR", message)
    }

    /// `401 TOKEN_ERROR` for a bearer token, with
    /// `WWW-Authenticate: Bearer error="invalid_token"`.
    pub fn invalid_bearer(message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, TOKEN_ERROR, message);
        e.www_authenticate = Some(INVALID_TOKEN);
        e
    }

    /// `401 TOKEN_ERROR` for a request without a bearer token:
    /// `WWW-Authenticate: Bearer` without an error code (RFC 6750, 3.1).
    pub fn missing_bearer() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            TOKEN_ERROR,
            "an Authorization: Bearer access token is required",
        );
        e.www_authenticate = Some("Bearer");
        e
    }

    /// `503 DATABASE_ERROR`.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "DATABASE_ERROR", message)
    }

    /// `500 SYSTEM_ERROR`.
    pub fn system(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "SYSTEM_ERROR", message)
    }

    /// Marks a `TOKEN_ERROR` as being about the request's bearer token, so
    /// its 401 carries `WWW-Authenticate: Bearer error="invalid_token"`.
    pub fn bearer(mut self) -> Self {
        if self.kind == TOKEN_ERROR {
            self.www_authenticate = Some(INVALID_TOKEN);
        }
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error type on the wire.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let kind = e.kind();
        let status = match kind {
            ErrorKind::Validation => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication | ErrorKind::Token => StatusCode::UNAUTHORIZED,
            ErrorKind::Authorization => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Database => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Encryption | ErrorKind::System => StatusCode::INTERNAL_SERVER_ERROR,
            // A kind added to the core later is a server-side matter until
            // it is mapped here.
            _ => return ApiError::system("internal error"),
        };
        let mut out = Self::new(status, kind.as_str(), e.message().to_owned());
        if let ErrorKind::RateLimited { retry_after_secs } = kind {
            out.retry_after_secs = Some(retry_after_secs.max(1));
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        let h = res.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res.extensions_mut().insert(PendingError {
            kind: self.kind,
            message: self.message,
        });
        res
    }
}

/// The error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// The error.
    #[schema(inline)]
    pub error: ErrorDetail<'a>,
}

/// The fields of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// One of `VALIDATION_ERROR`, `AUTHENTICATION_ERROR`, `TOKEN_ERROR`,
    /// `AUTHORIZATION_ERROR`, `NOT_FOUND`, `RATE_LIMITED`, `DATABASE_ERROR`,
    /// `ENCRYPTION_ERROR`, `SYSTEM_ERROR`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// A human-readable message; never contains a token or secret.
    pub message: &'a str,
    /// The request's id, as in the `x-request-id` response header.
    pub request_id: &'a str,
}

/// The pending error of a response, if it has one.
pub(crate) fn pending(res: &Response) -> Option<&PendingError> {
    res.extensions().get::<PendingError>()
}

/// Gives an error response its JSON body, with the request id. A response
/// with an error status that did not come from [`ApiError`] (a framework
/// default) is given the body its status implies, so every error has the
/// same shape.
pub(crate) fn render(res: &mut Response, request_id: &str) {
    let pending = match res.extensions_mut().remove::<PendingError>() {
        Some(p) => p,
        None if res.status().is_client_error() || res.status().is_server_error() => {
            let default = default_for(res.status());
            PendingError {
                kind: default.kind,
                message: default.message,
            }
        }
        None => return,
    };
    let body = ErrorBody {
        error: ErrorDetail {
            kind: pending.kind,
            message: &pending.message,
            request_id,
        },
    };
    // Serializing plain strings cannot fail; an empty body is the fallback.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut().remove(header::CONTENT_LENGTH);
    *res.body_mut() = axum::body::Body::from(bytes);
}

fn default_for(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        StatusCode::UNAUTHORIZED => ApiError::authentication("authentication required"),
        s if s.is_client_error() => ApiError::validation("the request is not valid"),
        _ => ApiError::system("internal error"),
    }
}

/// The outcome index (see [`crate::metrics::OUTCOMES`]) of an error type.
pub(crate) fn outcome_index(kind: &str) -> usize {
    crate::metrics::OUTCOMES
        .iter()
        .position(|o| *o == kind)
        .unwrap_or(crate::metrics::OUTCOMES.len() - 1)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    #[test]
    fn every_kind_maps_to_its_status_and_wire_name() {
        for (kind, status, name) in [
            (ErrorKind::Validation, 400, "VALIDATION_ERROR"),
            (ErrorKind::Authentication, 401, "AUTHENTICATION_ERROR"),
            (ErrorKind::Token, 401, "TOKEN_ERROR"),
            (ErrorKind::Authorization, 403, "AUTHORIZATION_ERROR"),
            (ErrorKind::NotFound, 404, "NOT_FOUND"),
            (
                ErrorKind::RateLimited {
                    retry_after_secs: 7,
                },
                429,
                "RATE_LIMITED",
            ),
            (ErrorKind::Database, 503, "DATABASE_ERROR"),
            (ErrorKind::Encryption, 500, "ENCRYPTION_ERROR"),
            (ErrorKind::System, 500, "SYSTEM_ERROR"),
        ] {
            let e = ApiError::from(SessionError::new(kind, "m"));
            assert_eq!(e.status().as_u16(), status, "{name}");
            assert_eq!(e.kind(), name);
            let res = e.into_response();
            assert_eq!(
                res.headers().contains_key(header::RETRY_AFTER),
                status == 429,
                "{name}"
            );
            assert!(!res.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn only_bearer_token_errors_carry_the_challenge() {
        let token = ApiError::from(SessionError::new(ErrorKind::Token, "bad")).bearer();
        let res = token.into_response();
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let other = ApiError::from(SessionError::new(ErrorKind::Database, "down")).bearer();
        assert!(
            !other
                .into_response()
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }

    #[tokio::test]
    async fn rendered_bodies_carry_type_message_and_request_id() {
        let mut res = ApiError::not_found("no such session").into_response();
        render(&mut res, "req-1");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(res.into_body(), 1024).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"error": {"type": "NOT_FOUND", "message": "no such session", "request_id": "req-1"}})
        );
    }

    #[tokio::test]
    async fn framework_errors_get_the_same_shape() {
        let mut res = StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
        render(&mut res, "req-2");
        let body = to_bytes(res.into_body(), 1024).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["type"], "VALIDATION_ERROR");
        let mut ok = StatusCode::OK.into_response();
        render(&mut ok, "req-3");
        assert!(!ok.headers().contains_key(header::CONTENT_TYPE));
    }
}
