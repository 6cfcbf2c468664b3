//! Extractors whose every rejection is an [`ApiError`]: JSON bodies, query
//! strings and bearer tokens.
//!
//! Rejection messages are built here, never taken verbatim from a parser,
//! because parser messages quote the input and the input may be a token.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest `Authorization` header looked at; a longer one is refused
/// without being parsed.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// The largest request body accepted.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// A JSON request body. Wrong content type, malformed JSON, unknown fields
/// and wrong types are `400 VALIDATION_ERROR`; a body over 64 KiB is `413`,
/// one that did not arrive within its read deadline `408`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::validation(
                "the request body must be JSON (content-type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else if super::deadline::is_deadline(&e) {
                ApiError::body_timeout()
            } else {
                ApiError::validation("the request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::validation(describe_json_error(&e)))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!(
            "the request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        Category::Data => format!("the request body is not valid: {}", redact(&e.to_string())),
        Category::Io => "the request body could not be read".to_owned(),
    }
}

/// Removes what a parser message quotes from the input: string values in
/// double quotes become `"…"`, and names in backticks are kept only when
/// they are short identifiers (field names of this API), else `` `…` ``.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                let name: String = chars.by_ref().take_while(|d| *d != '`').collect();
                let plain = name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                out.push('`');
                out.push_str(if plain { &name } else { "…" });
                out.push('`');
            }
            c => out.push(c),
        }
        if out.len() > 512 {
            out.push('…');
            break;
        }
    }
    out
}

/// A query string. Unknown parameters and values that do not fit are
/// `400 VALIDATION_ERROR`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| ApiQuery(t))
            .map_err(|e| ApiError::validation(describe_query_error(&e.body_text())))
    }
}

/// A message for a query string the parser refused that quotes nothing from
/// it: the parser's own text starts with the parameter's name as sent.
fn describe_query_error(text: &str) -> String {
    if text.contains("unknown field") {
        // What follows "expected one of" lists this API's names only.
        match text.find("expected one of") {
            Some(at) => format!(
                "the query string has an unknown parameter; {}",
                redact(&text[at..])
            ),
            None => "the query string has an unknown parameter".to_owned(),
        }
    } else if text.contains("duplicate field") {
        "a query parameter is given more than once".to_owned()
    } else {
        "the query string is not valid".to_owned()
    }
}

/// Path parameters. Each is then parsed by its own type, whose messages
/// name the parameter.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|_| ApiError::validation("a path parameter is not valid"))
    }
}

/// The access token of an `Authorization: Bearer` header.
///
/// A missing header is `401 TOKEN_ERROR` with `WWW-Authenticate: Bearer`;
/// a header over 8 KiB, repeated, not ASCII or not of the Bearer scheme is
/// `401 TOKEN_ERROR` with `WWW-Authenticate: Bearer error="invalid_token"`.
#[derive(Debug)]
pub struct Bearer {
    value: HeaderValue,
    start: usize,
}

impl Bearer {
    /// The token.
    pub fn token(&self) -> &str {
        // Checked to be visible ASCII when extracted.
        self.value
            .to_str()
            .ok()
            .and_then(|s| s.get(self.start..))
            .unwrap_or("")
    }

    fn parse(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut all = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = all.next() else {
            return Err(ApiError::missing_bearer());
        };
        // Checked before anything else so an oversized header is never parsed.
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(ApiError::invalid_bearer(
                "the Authorization header is larger than 8 KiB",
            ));
        }
        if all.next().is_some() {
            return Err(ApiError::invalid_bearer(
                "only one Authorization header is allowed",
            ));
        }
        let invalid =
            || ApiError::invalid_bearer("the Authorization header must be `Bearer TOKEN`");
        let s = value.to_str().map_err(|_| invalid())?;
        let (scheme, rest) = s.split_once(' ').ok_or_else(invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(invalid());
        }
        let token = rest.trim_start_matches(' ');
        if token.is_empty() || token.contains(' ') {
            return Err(invalid());
        }
        Ok(Self {
            value: value.clone(),
            start: s.len() - token.len(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::parse(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("ascii"),
            );
        }
        h
    }

    #[test]
    fn bearer_tokens_are_taken_from_the_bearer_scheme_only() {
        let b = Bearer::parse(&headers(&["Bearer abc.def.ghi"])).expect("bearer");
        assert_eq!(b.token(), "abc.def.ghi");
        let b = Bearer::parse(&headers(&["bearer   xyz"])).expect("any case");
        assert_eq!(b.token(), "xyz");
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Token x",
        ] {
            let e = Bearer::parse(&headers(&[bad])).expect_err(bad);
            assert_eq!(e.kind(), "TOKEN_ERROR");
        }
        assert!(Bearer::parse(&headers(&["Bearer a", "Bearer b"])).is_err());
        assert!(Bearer::parse(&HeaderMap::new()).is_err());
    }

    #[test]
    fn parser_messages_lose_the_values_they_quote() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let msg = format!("invalid type: string \"{token}\", expected u64 at line 1 column 9");
        let red = redact(&msg);
        assert!(!red.contains(token), "{red}");
        assert!(red.contains("expected u64"));
        let msg = format!("unknown field `{token}`, expected one of `user_id`, `org_id`");
        let red = redact(&msg);
        assert!(!red.contains(token), "{red}");
        assert!(red.contains("`user_id`"));
        assert!(redact(r#"string "a\"b" left"#).ends_with("left"));
    }
}
