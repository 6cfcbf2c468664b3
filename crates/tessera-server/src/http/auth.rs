//! The API key that guards `/v1`.
//!
//! When `TESSERA_API_KEY` is set, every `/v1` request must carry it in the
//! `x-api-key` header, compared in constant time, or it is refused with
//! `401 AUTHENTICATION_ERROR` before its body is read or any work is done.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};
use zeroize::Zeroizing;

use super::error::ApiError;

/// The header that carries the API key.
pub static API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The service's API key. Prints as `[redacted]`; wiped on drop.
#[derive(Clone)]
pub struct ApiKey(Arc<Zeroizing<Vec<u8>>>);

impl ApiKey {
    /// Wraps a key. Strength is checked by the configuration, not here.
    pub fn new(key: &str) -> Self {
        Self(Arc::new(Zeroizing::new(key.as_bytes().to_vec())))
    }

    /// Whether `presented` is the key, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(presented))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Requires the API key on the routes it wraps.
#[derive(Clone, Debug)]
pub(crate) struct RequireApiKey {
    key: ApiKey,
}

impl RequireApiKey {
    pub(crate) fn new(key: ApiKey) -> Self {
        Self { key }
    }
}

impl<S> Layer<S> for RequireApiKey {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService {
            inner,
            key: self.key.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ApiKeyService<S> {
    inner: S,
    key: ApiKey,
}

impl<S> Service<Request> for ApiKeyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ApiKeyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let mut all = req.headers().get_all(&API_KEY_HEADER).iter();
        let presented = all.next();
        if all.next().is_some() {
            // Which one would a proxy in front have checked? Refuse both.
            return ApiKeyFuture::Refused {
                response: Some(
                    ApiError::authentication("send exactly one x-api-key header").into_response(),
                ),
            };
        }
        match presented {
            Some(k) if self.key.matches(k.as_bytes()) => ApiKeyFuture::Allowed {
                inner: self.inner.call(req),
            },
            Some(_) => ApiKeyFuture::Refused {
                response: Some(
                    ApiError::authentication("the API key is not valid").into_response(),
                ),
            },
            None => ApiKeyFuture::Refused {
                response: Some(
                    ApiError::authentication("an x-api-key header is required").into_response(),
                ),
            },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = ApiKeyFutureProj]
    pub(crate) enum ApiKeyFuture<F> {
        Allowed { #[pin] inner: F },
        Refused { response: Option<Response> },
    }
}

impl<F> Future for ApiKeyFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ApiKeyFutureProj::Allowed { inner } => inner.poll(cx),
            ApiKeyFutureProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| ApiError::system("polled after completion").into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_matches_only_itself_and_never_prints() {
        let k = ApiKey::new("a-very-long-api-key-for-the-test-suite");
        assert!(k.matches(b"a-very-long-api-key-for-the-test-suite"));
        assert!(!k.matches(b"a-very-long-api-key-for-the-test-suitE"));
        assert!(!k.matches(b""));
        assert!(!format!("{k:?}").contains("api-key-for"));
    }
}
