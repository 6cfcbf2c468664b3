//! JSON responses, serialized into a buffer sized for this API's bodies so
//! the common answers need one allocation and no regrowth.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

/// Large enough for a session or a token pair.
const INITIAL_CAPACITY: usize = 1024;

/// A JSON response body with `content-type: application/json`.
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => {
                let mut res = Response::new(Body::from(buf));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                res
            }
            Err(_) => ApiError::system("the response could not be encoded").into_response(),
        }
    }
}
