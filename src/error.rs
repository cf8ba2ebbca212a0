//! The one error type of the browser library. Every failure is one of these; `src/js/error.rs` turns
//! it into a JavaScript `Error` with a stable `code` (the only place that does).

use ferrosync_core::document::DocumentError;
use ferrosync_core::query::QueryError;

/// Stable codes, part of the public API (listed in the TypeScript declarations too).
pub mod codes {
    pub const UNKNOWN_COLLECTION: &str = "UNKNOWN_COLLECTION";
    pub const INVALID_DOCUMENT: &str = "INVALID_DOCUMENT";
    pub const INVALID_QUERY: &str = "INVALID_QUERY";
    pub const INVALID_OPTIONS: &str = "INVALID_OPTIONS";
    pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";
    pub const DATABASE_CLOSED: &str = "DATABASE_CLOSED";
    pub const STORAGE_ERROR: &str = "STORAGE_ERROR";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "unknown collection {0:?}: declare it in Database.open({{ collections: {{ {0}: {{}} }} }})"
    )]
    UnknownCollection(String),
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The browser refused to store more (`QuotaExceededError`); the transaction wrote nothing.
    #[error("storage quota exceeded, nothing was written: {0}")]
    QuotaExceeded(String),
    #[error("database {0:?} is closed")]
    DatabaseClosed(String),
    #[error("database {0:?} was deleted (Database.destroy); open it again to use it")]
    DatabaseDeleted(String),
    /// The browser closed the IndexedDB connection under us; retried once after reopening.
    #[error("the IndexedDB connection was closed by the browser: {0}")]
    ConnectionLost(String),
    #[error("IndexedDB failed ({name}): {message}")]
    Storage { name: String, message: String },
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownCollection(_) => codes::UNKNOWN_COLLECTION,
            Error::InvalidDocument(_) => codes::INVALID_DOCUMENT,
            Error::InvalidQuery(_) => codes::INVALID_QUERY,
            Error::InvalidOptions(_) => codes::INVALID_OPTIONS,
            Error::QuotaExceeded(_) => codes::QUOTA_EXCEEDED,
            Error::DatabaseClosed(_) | Error::DatabaseDeleted(_) => codes::DATABASE_CLOSED,
            Error::ConnectionLost(_) | Error::Storage { .. } => codes::STORAGE_ERROR,
        }
    }

    pub(crate) fn storage(name: &str, message: impl Into<String>) -> Error {
        Error::Storage {
            name: name.to_string(),
            message: message.into(),
        }
    }
}

impl From<DocumentError> for Error {
    fn from(e: DocumentError) -> Self {
        Error::InvalidDocument(e.to_string())
    }
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        Error::InvalidQuery(e.0)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
