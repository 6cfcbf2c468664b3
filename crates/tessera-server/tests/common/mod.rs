//! Shared setup for the in-process HTTP tests: the real router over a real
//! memory store, a clock the test moves, and helpers to send requests with
//! `oneshot` and read JSON answers.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera::store::{CasOutcome, IndexKey, Page, SessionCounts, StoredSession};
use tessera::{
    KeyRing, Lifetimes, ManualClock, MemoryStore, SessionId, SessionManager, SessionStore,
    StoreError, TracingEvents,
};
use tessera_server::http::auth::ApiKey;
use tessera_server::metrics::Metrics;
use tessera_server::{AppState, Limits, app};
use tower::ServiceExt;

pub const JWT_SECRET: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-http-test";
pub const ENCRYPTION_KEY: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-http-test";
pub const API_KEY: &str = "Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-http-test";
pub const START: u64 = 1_800_000_000;

pub const USER: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
pub const ORG: &str = "0b7e2a43-5f55-4b4e-9a3c-2f1f0d2c9e11";

/// How a test app is set up.
pub struct Options {
    pub api_key: bool,
    pub limits: Limits,
    pub reuse_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: false,
            limits: Limits::default(),
            reuse_grace: Duration::from_secs(10),
        }
    }
}

pub struct TestApp {
    pub router: Router,
    pub clock: ManualClock,
    pub state: AppState,
    pub store: Arc<OutageStore>,
    api_key: bool,
}

/// A real memory store that can be switched off, to test what clients see
/// when the store is down. It is fault injection, not a mock: while on, every
/// call is the memory store's.
#[derive(Debug, Default)]
pub struct OutageStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl OutageStore {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::new("connection refused (test outage)"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for OutageStore {
    async fn insert(&self, s: StoredSession, now: u64) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.insert(s, now).await
    }
    async fn get(&self, id: &SessionId, now: u64) -> Result<Option<StoredSession>, StoreError> {
        self.check()?;
        self.inner.get(id, now).await
    }
    async fn compare_and_swap(
        &self,
        id: &SessionId,
        v: u64,
        sealed: Vec<u8>,
        exp: u64,
        now: u64,
    ) -> Result<CasOutcome, StoreError> {
        self.check()?;
        self.inner.compare_and_swap(id, v, sealed, exp, now).await
    }
    async fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.remove(id).await
    }
    async fn user_sessions(
        &self,
        k: &IndexKey,
        now: u64,
    ) -> Result<Vec<StoredSession>, StoreError> {
        self.check()?;
        self.inner.user_sessions(k, now).await
    }
    async fn remove_user_sessions(&self, k: &IndexKey, now: u64) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.remove_user_sessions(k, now).await
    }
    async fn list(
        &self,
        org: Option<&IndexKey>,
        cursor: Option<&str>,
        limit: usize,
        now: u64,
    ) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(org, cursor, limit, now).await
    }
    async fn purge_expired(&self, now: u64, limit: usize) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.purge_expired(now, limit).await
    }
    async fn count(&self, now: u64) -> Result<SessionCounts, StoreError> {
        self.check()?;
        self.inner.count(now).await
    }
    async fn put_membership(&self, k: &IndexKey, sealed: Vec<u8>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_membership(k, sealed).await
    }
    async fn get_membership(&self, k: &IndexKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.get_membership(k).await
    }
    async fn remove_membership(&self, k: &IndexKey) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.remove_membership(k).await
    }
    async fn restore(
        &self,
        s: StoredSession,
        now: u64,
    ) -> Result<tessera::store::RestoreOutcome, StoreError> {
        self.check()?;
        self.inner.restore(s, now).await
    }
    async fn list_memberships(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<tessera::store::MembershipPage, StoreError> {
        self.check()?;
        self.inner.list_memberships(cursor, limit).await
    }
    async fn restore_membership(
        &self,
        key: &IndexKey,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.restore_membership(key, sealed).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check()
    }
}

/// An answer: status, headers and the body as JSON (`Null` if empty or not
/// JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the error shape and returns its type.
    pub fn error_type(&self) -> &str {
        let e = &self.body["error"];
        assert!(e.is_object(), "not an error body: {}", self.text);
        assert!(e["message"].is_string(), "{}", self.text);
        assert_eq!(
            e["request_id"].as_str(),
            self.header("x-request-id"),
            "the body's request id is the header's"
        );
        e["type"].as_str().expect("type")
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        let clock = ManualClock::new(START);
        let store = Arc::new(OutageStore::default());
        let metrics = Arc::new(Metrics::new());
        let manager = SessionManager::builder()
            .keys(KeyRing::new(JWT_SECRET, ENCRYPTION_KEY).expect("test keys"))
            .store(store.clone())
            .clock(Arc::new(clock.clone()))
            .events(metrics.event_sink(Arc::new(TracingEvents)))
            .lifetimes(Lifetimes {
                cleanup_interval: Duration::ZERO,
                reuse_grace: options.reuse_grace,
                ..Lifetimes::default()
            })
            .build()
            .expect("manager");
        let state = AppState::builder(manager)
            .limits(options.limits)
            .api_key(options.api_key.then(|| ApiKey::new(API_KEY)))
            .metrics(metrics)
            .clock(Arc::new(clock.clone()))
            .build();
        Self {
            router: app(state.clone()),
            clock,
            state,
            store,
            api_key: options.api_key,
        }
    }

    /// A request builder with the API key (when the app has one).
    pub fn request(&self, method: Method, uri: &str) -> axum::http::request::Builder {
        let b = Request::builder().method(method).uri(uri);
        if self.api_key {
            b.header("x-api-key", API_KEY)
        } else {
            b
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
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

    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let b = self.request(method, uri);
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn with_bearer(&self, method: Method, uri: &str, token: &str) -> Answer {
        let req = self
            .request(method, uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        self.send(req).await
    }

    pub async fn set_member(&self, org: &str, user: &str, role: &str) -> Answer {
        self.call(
            Method::PUT,
            &format!("/v1/orgs/{org}/members/{user}"),
            Some(json!({"role": role})),
        )
        .await
    }

    /// Makes USER a member of ORG and creates a session; returns the answer.
    pub async fn login(&self) -> Answer {
        let a = self.set_member(ORG, USER, "member").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        self.create(USER, ORG).await
    }

    pub async fn create(&self, user: &str, org: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/sessions",
            Some(json!({"user_id": user, "org_id": org})),
        )
        .await
    }

    pub async fn refresh(&self, token: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/sessions/refresh",
            Some(json!({"refresh_token": token})),
        )
        .await
    }

    pub async fn active_sessions(&self) -> u64 {
        let a = self.call(Method::GET, "/v1/stats", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body["active_sessions"].as_u64().expect("count")
    }

    pub async fn metrics(&self) -> String {
        self.call(Method::GET, "/metrics", None).await.text
    }
}

pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn token(a: &Answer, field: &str) -> String {
    a.body[field].as_str().expect("token").to_owned()
}
