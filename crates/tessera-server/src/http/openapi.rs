//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! wire types, so it cannot drift from the code. A test checks that every
//! routed endpoint is in it.

use std::sync::OnceLock;

use axum::body::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::wire::{
    ActiveSessionView, CreateSessionRequest, MembershipView, PermissionView, RefreshRequest,
    RemovedView, RevokedView, SessionPageView, SessionView, SetMembershipRequest, StatsView,
    StatusView, TokenPair, UserSessionList, UserSessionView, UserView,
};
use super::{admin, health, members, sessions};

/// The document's root.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Sessions with JWT access tokens and rotating refresh tokens. \
            Every /v1 request needs the x-api-key header when the service has an API key. \
            Errors are {\"error\": {\"type\", \"message\", \"request_id\"}}; every response \
            carries x-request-id."
    ),
    paths(
        sessions::create,
        sessions::current,
        sessions::refresh,
        sessions::destroy,
        sessions::permission,
        admin::user_sessions,
        admin::revoke_user_sessions,
        admin::revoke_session,
        admin::list_sessions,
        admin::stats,
        admin::cleanup,
        members::set,
        members::get,
        members::remove,
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
        health::jwks,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, CreateSessionRequest, RefreshRequest, SetMembershipRequest,
        TokenPair, UserView, SessionView, UserSessionView, UserSessionList, ActiveSessionView,
        SessionPageView, PermissionView, MembershipView, RevokedView, RemovedView, StatsView,
        StatusView,
    )),
    modifiers(&Security),
    tags(
        (name = "sessions", description = "Create, validate, refresh and end sessions"),
        (name = "admin", description = "List and revoke sessions, statistics, cleanup"),
        (name = "members", description = "Who has which role in which org"),
        (name = "operations", description = "Health, readiness, metrics, this document, the public signing keys"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built once per process.
pub fn json() -> Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        Bytes::from(doc.to_json().unwrap_or_else(|_| "{}".to_owned()))
    })
    .clone()
}
