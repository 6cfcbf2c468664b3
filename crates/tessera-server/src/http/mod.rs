//! The HTTP API: [`app`] builds the whole router from an [`AppState`].
//!
//! | module | what |
//! |---|---|
//! | [`operation`] | the table of endpoints, for metrics and logs |
//! | [`error`] | the one mapping of errors to status codes and JSON bodies |
//! | [`extract`] | JSON, query, path and bearer extractors that reject with [`error::ApiError`] |
//! | [`wire`] | the JSON shapes of requests and responses |
//! | [`openapi`] | the OpenAPI document generated from the handlers |
//! | `sessions`, `admin`, `members`, `health` | the handlers (`health` also serves the JWKS) |
//! | `observe`, [`auth`] | request ids, metrics and logs; the API key |
//! | [`deadline`] | the read deadline of request bodies |

mod admin;
pub mod auth;
pub mod deadline;
pub mod error;
pub mod extract;
mod health;
mod members;
mod observe;
pub mod openapi;
pub mod operation;
mod respond;
mod sessions;
pub mod wire;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};

use self::auth::RequireApiKey;
use self::error::ApiError;
use self::observe::ObserveLayer;
pub use self::observe::{MAX_REQUEST_ID_LEN, REQUEST_ID};
use crate::state::AppState;

/// The service: every route of the API, with the API key check on `/v1`,
/// the body limit, request ids, error bodies, metrics and request logs.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/sessions",
            post(sessions::create).get(admin::list_sessions),
        )
        .route(
            "/v1/sessions/current",
            get(sessions::current).delete(sessions::destroy),
        )
        .route("/v1/sessions/refresh", post(sessions::refresh))
        .route(
            "/v1/sessions/current/permissions/{permission}",
            get(sessions::permission),
        )
        .route("/v1/sessions/{session_id}", delete(admin::revoke_session))
        .route(
            "/v1/users/{user_id}/sessions",
            get(admin::user_sessions).delete(admin::revoke_user_sessions),
        )
        .route("/v1/stats", get(admin::stats))
        .route("/v1/cleanup", post(admin::cleanup))
        .route(
            "/v1/orgs/{org_id}/members/{user_id}",
            put(members::set).get(members::get).delete(members::remove),
        );
    let v1 = match &state.inner.api_key {
        Some(key) => v1.route_layer(RequireApiKey::new(key.clone())),
        None => v1,
    };
    let operations = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/.well-known/jwks.json", get(health::jwks));
    let metrics = state.inner.metrics.clone();
    let body_read_timeout = state.inner.body_read_timeout;
    v1.merge(operations)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_LEN))
        .layer(ObserveLayer::new(metrics, body_read_timeout))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
