//! The one error type of Tessera.
//!
//! Every fallible call returns [`SessionError`]. Callers branch on
//! [`SessionError::kind`], which carries the seven categories of the
//! specification; [`ErrorKind::as_str`] is the name used on the wire
//! (`VALIDATION_ERROR`, ...). The message is safe to show a client: it never
//! contains a token, a key or a stored value. The underlying cause, when there
//! is one, is kept as the [`std::error::Error::source`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// The category of a [`SessionError`].
///
/// New kinds may be added in minor releases, so matches need a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input failed validation before any work was done; nothing changed.
    Validation,
    /// The caller could not be authenticated (for example: not a member of the org).
    Authentication,
    /// The caller is authenticated but not allowed to do this.
    Authorization,
    /// The store failed or could not be reached.
    Database,
    /// Sealing or opening a record failed.
    Encryption,
    /// A token is malformed, forged, expired, revoked or of the wrong type.
    Token,
    /// Anything else: configuration, internal invariants.
    System,
    /// The named object does not exist.
    NotFound,
    /// A rate limit was hit; retry after the given number of seconds.
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
}

impl ErrorKind {
    /// The name of the kind on the wire, as in the specification.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Validation => "VALIDATION_ERROR",
            ErrorKind::Authentication => "AUTHENTICATION_ERROR",
            ErrorKind::Authorization => "AUTHORIZATION_ERROR",
            ErrorKind::Database => "DATABASE_ERROR",
            ErrorKind::Encryption => "ENCRYPTION_ERROR",
            ErrorKind::Token => "TOKEN_ERROR",
            ErrorKind::System => "SYSTEM_ERROR",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::RateLimited { .. } => "RATE_LIMITED",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// An error from Tessera: a kind, a client-safe message and an optional cause.
pub struct SessionError {
    kind: ErrorKind,
    message: Cow<'static, str>,
    context: Vec<(&'static str, String)>,
    source: Option<Source>,
}

impl SessionError {
    /// A new error of `kind` with a message that is safe to show a client.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Adds a piece of context, such as the operation or a session id. Never
    /// a token, a key or a stored value.
    pub fn with_context(mut self, key: &'static str, value: impl ToString) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// The context added along the way, oldest first.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// Attaches the underlying cause. Its text must not contain secrets either.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The category to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A human message, safe to show a client.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    pub(crate) fn token(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Token, message)
    }

    pub(crate) fn system(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::System, message)
    }

    pub(crate) fn encryption(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Encryption, message)
    }

    pub(crate) fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
}

impl fmt::Debug for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SessionError");
        d.field("kind", &self.kind).field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl StdError for SessionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The error a [`SessionStore`](crate::store::SessionStore) returns.
///
/// Stores report infrastructure failures only; "not found" and "lost a race"
/// are ordinary return values of the store methods. It converts into a
/// [`SessionError`] of kind [`ErrorKind::Database`].
#[derive(Debug, thiserror::Error)]
#[error("store error: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: Cow<'static, str>,
    #[source]
    source: Option<Source>,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store failed or could not be reached.
    Failed,
    /// The store is at its capacity and refuses to hold more; what it holds
    /// is unaffected.
    Full,
    /// The caller passed something the store cannot use (a cursor it did
    /// not issue); the store itself is fine.
    InvalidInput,
}

impl StoreError {
    /// A store failure described by `message` (no secrets, no stored values).
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: StoreErrorKind::Failed,
            message: message.into(),
            source: None,
        }
    }

    /// A store failure caused by `source`.
    pub fn with_source(message: impl Into<Cow<'static, str>>, source: impl Into<Source>) -> Self {
        Self {
            kind: StoreErrorKind::Failed,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The store is at its capacity: nothing was written.
    pub fn full(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: StoreErrorKind::Full,
            message: message.into(),
            source: None,
        }
    }

    /// The caller passed something the store cannot use: nothing was read
    /// or written.
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: StoreErrorKind::InvalidInput,
            message: message.into(),
            source: None,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> Self {
        let (kind, message) = match err.kind {
            StoreErrorKind::Full => (
                ErrorKind::Database,
                "the session store is full; try again later",
            ),
            StoreErrorKind::InvalidInput => (ErrorKind::Validation, "the cursor is not valid"),
            StoreErrorKind::Failed => (ErrorKind::Database, "the session store is unavailable"),
        };
        SessionError::new(kind, message).with_source(err)
    }
}

/// Shorthand for results of Tessera operations.
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_the_specification() {
        let names: Vec<_> = [
            ErrorKind::Validation,
            ErrorKind::Authentication,
            ErrorKind::Authorization,
            ErrorKind::Database,
            ErrorKind::Encryption,
            ErrorKind::Token,
            ErrorKind::System,
        ]
        .iter()
        .map(ErrorKind::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "VALIDATION_ERROR",
                "AUTHENTICATION_ERROR",
                "AUTHORIZATION_ERROR",
                "DATABASE_ERROR",
                "ENCRYPTION_ERROR",
                "TOKEN_ERROR",
                "SYSTEM_ERROR"
            ]
        );
    }

    #[test]
    fn context_is_kept_in_order_and_shown_by_debug() {
        let err = SessionError::validation("bad input")
            .with_context("operation", "create_session")
            .with_context("field", "user_id");
        assert_eq!(
            err.context(),
            [
                ("operation", "create_session".to_owned()),
                ("field", "user_id".to_owned())
            ]
        );
        assert!(format!("{err:?}").contains("create_session"));
    }

    #[test]
    fn store_errors_become_database_errors_and_keep_their_cause() {
        let err: SessionError = StoreError::new("connection refused").into();
        assert_eq!(err.kind(), ErrorKind::Database);
        let source = err.source().expect("cause kept");
        assert!(source.to_string().contains("connection refused"));
    }
}
