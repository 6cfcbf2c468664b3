//! Liveness, readiness, metrics, the API document and the JWK Set of the
//! public signing keys: no API key needed.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::{ApiError, ErrorBody};
use super::wire::StatusView;
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

const JSON: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "application/json")];

/// 200 while the process runs. Also the ceiling in load tests: it does as
/// little as a route can.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is running", body = StatusView))
)]
pub(crate) async fn healthz() -> impl IntoResponse {
    (JSON, r#"{"status":"ok"}"#)
}

/// 200 when the session store answers, 503 otherwise.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = StatusView),
        (status = 503, description = "DATABASE_ERROR: the store does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    s.inner
        .manager
        .ping()
        .await
        .map_err(|_| ApiError::unavailable("the session store is not answering"))?;
    Ok((JSON, r#"{"status":"ready"}"#))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = &s.inner.metrics;
    match s.inner.manager.session_stats().await {
        Ok(stats) => m.set_store_state(true, Some(stats.active_sessions)),
        Err(_) => m.set_store_state(false, None),
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render())
}

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi() -> impl IntoResponse {
    (JSON, super::openapi::json())
}

/// The media type of a JWK Set (RFC 7517, section 8.5.1).
const JWK_SET: &str = "application/jwk-set+json";

/// Verifiers may cache the key set for five minutes: a new key should be
/// published (as a previous key) at least that long before it signs.
const JWKS_CACHE: &str = "public, max-age=300";

/// The public keys access tokens are signed with, as a JWK Set (RFC 7517),
/// so other services verify tokens without holding a secret. Empty
/// (`{"keys":[]}`) in HS256 mode, whose key is a shared secret.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The JWK Set of the current and previous public signing keys", content_type = "application/jwk-set+json", body = Object))
)]
pub(crate) async fn jwks(State(s): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, JWK_SET),
            (header::CACHE_CONTROL, JWKS_CACHE),
        ],
        // Built once with the key ring; a clone of a short string per request.
        s.inner.manager.keys().jwks_json().to_owned(),
    )
}
