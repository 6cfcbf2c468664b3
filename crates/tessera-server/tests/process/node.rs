//! A `tessera serve` node of a multi-node test: the real binary with the
//! keys and API key every node shares, and the HTTP calls the tests make.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Server;

pub const JWT: &str = "k3J8vQm2xN7pL4sW9zR6tY1uH5gF0dCa-nodes-test";
pub const ENC: &str = "Zq8Wm3Np6Rt1Vx4Yb7Cd0Fg2Hj5Kl9Ms-nodes-test";
pub const API_KEY: &str = "Pw4Er7Ty0Ui3Op6As9Df2Gh5Jk8Lz1Xc-nodes-test";

/// A running `tessera serve`; killed when dropped.
pub struct Node {
    pub server: Server,
    pub url: String,
    pub http: reqwest::Client,
}

impl Node {
    /// Starts `tessera serve` with the nodes' shared keys and API key, and
    /// `env` (the store, limits).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("JWT_SECRET", JWT),
            ("SESSION_ENCRYPTION_KEY", ENC),
            ("TESSERA_API_KEY", API_KEY),
        ];
        all.extend_from_slice(env);
        let env = all;
        let server = Server::start(&["serve"], &env);
        Self {
            url: server.url.clone(),
            server,
            http: reqwest::Client::new(),
        }
    }

    pub fn logs(&self) -> String {
        self.server.logs()
    }

    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let res = req
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {}: {e}; logs:\n{}", self.url, self.logs()));
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let (s, _, b) = self.send(req).await;
        (s, b)
    }

    pub async fn add_member(&self, org: &str, user: &str) {
        let req = self
            .http
            .put(format!("{}/v1/orgs/{org}/members/{user}", self.url))
            .json(&json!({"role": "member"}));
        let (status, _, body) = self.send(req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn create(
        &self,
        user: &str,
        org: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let req = self
            .http
            .post(format!("{}/v1/sessions", self.url))
            .json(&json!({"user_id": user, "org_id": org}));
        self.send(req).await
    }

    pub async fn refresh(&self, token: &str) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}/v1/sessions/refresh", self.url))
            .json(&json!({"refresh_token": token}));
        let (s, _, b) = self.send(req).await;
        (s, b)
    }

    pub async fn validate(&self, access: &str) -> StatusCode {
        self.get("/v1/sessions/current", Some(access)).await.0
    }

    pub async fn log_out(&self, access: &str) -> StatusCode {
        let req = self
            .http
            .delete(format!("{}/v1/sessions/current", self.url))
            .bearer_auth(access);
        self.send(req).await.0
    }

    pub async fn active_sessions(&self) -> u64 {
        let (status, body) = self.get("/v1/stats", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["active_sessions"].as_u64().expect("a count")
    }
}

pub fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

/// Waits up to 15 s for `/readyz` to answer `want`.
pub async fn wait_ready(node: &Node, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = node.get("/readyz", None).await.0;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status}, expected {want}; logs:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
