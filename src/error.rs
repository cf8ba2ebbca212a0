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
    /// The database was wiped while open (eviction, "clear site data") under a running sync.
    pub const DATABASE_WIPED: &str = "DATABASE_WIPED";
    /// The database was written by a newer version of ferrosync (a newer record format).
    pub const DATABASE_NEWER: &str = "DATABASE_NEWER";
    pub const STORAGE_ERROR: &str = "STORAGE_ERROR";
    // Sync (src/sync): why a `db.sync()` failed, also in `db.status.error.code`.
    pub const SYNC_UNAUTHORIZED: &str = "SYNC_UNAUTHORIZED";
    pub const SYNC_NETWORK: &str = "SYNC_NETWORK";
    pub const SYNC_SERVER: &str = "SYNC_SERVER";
    pub const SYNC_MALFORMED_REPLY: &str = "SYNC_MALFORMED_REPLY";
    pub const SYNC_REFUSED: &str = "SYNC_REFUSED";
    pub const SYNC_OFFLINE: &str = "SYNC_OFFLINE";
    pub const SYNC_RESOLVER_FAILED: &str = "SYNC_RESOLVER_FAILED";
    pub const SYNC_BUSY: &str = "SYNC_BUSY";
    pub const SYNC_NOT_CONFIGURED: &str = "SYNC_NOT_CONFIGURED";
    pub const SYNC_NAMESPACE_MISMATCH: &str = "SYNC_NAMESPACE_MISMATCH";

    /// Every code above, once (the TypeScript `ErrorCode` union lists the same).
    pub const ALL: &[&str] = &[
        UNKNOWN_COLLECTION,
        INVALID_DOCUMENT,
        INVALID_QUERY,
        INVALID_OPTIONS,
        QUOTA_EXCEEDED,
        DATABASE_CLOSED,
        DATABASE_WIPED,
        DATABASE_NEWER,
        STORAGE_ERROR,
        SYNC_UNAUTHORIZED,
        SYNC_NETWORK,
        SYNC_SERVER,
        SYNC_MALFORMED_REPLY,
        SYNC_REFUSED,
        SYNC_OFFLINE,
        SYNC_RESOLVER_FAILED,
        SYNC_BUSY,
        SYNC_NOT_CONFIGURED,
        SYNC_NAMESPACE_MISMATCH,
    ];

    /// `code` as one of [`ALL`] (a `&'static str` to keep), or none for a code this version does
    /// not know (a failure reported by another tab running another version).
    pub fn known(code: &str) -> Option<&'static str> {
        ALL.iter().copied().find(|c| *c == code)
    }
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
    /// The database was deleted and created anew, empty, under a running sync (eviction, "clear
    /// site data"): what that sync read from the old one (its cursor) was not written into the new
    /// one. The next sync starts from scratch.
    #[error("database {0:?} was wiped while a sync was running (eviction or cleared site data); nothing of that sync was saved, the next one pulls everything again")]
    DatabaseWiped(String),
    /// The database's record format (`_meta` `format`) is above the one this version writes.
    #[error("this database was written by a newer version of ferrosync (record format {found}; this version reads up to {reads}); reload the page to run the newer version")]
    DatabaseNewer { found: String, reads: u32 },
    /// The browser closed the IndexedDB connection under us; retried once after reopening.
    #[error("the IndexedDB connection was closed by the browser: {0}")]
    ConnectionLost(String),
    #[error("IndexedDB failed ({name}): {message}")]
    Storage { name: String, message: String },
    // Sync (src/sync maps core's SyncError to these).
    /// 401/403: no automatic sync until `db.setToken()`.
    #[error("sync unauthorized ({0}); set a valid token with db.setToken()")]
    SyncUnauthorized(String),
    /// The token is for another account than the one this device synced with: nothing is pushed
    /// or pulled until `db.setToken()` gives that account's token again.
    #[error("sync stopped: {0}; set that account's token again with db.setToken(), or delete this database (Database.destroy) and open an empty one for the new account")]
    SyncNamespaceMismatch(String),
    #[error("sync failed: the server could not be reached ({0})")]
    SyncNetwork(String),
    #[error("sync failed: server error ({0})")]
    SyncServer(String),
    /// The reply did not parse or broke the protocol; nothing of it was applied.
    #[error("sync failed: malformed server reply, nothing was applied ({0})")]
    SyncMalformedReply(String),
    #[error("sync failed: the server refused the request ({0})")]
    SyncRefused(String),
    #[error("offline (navigator.onLine is false): changes stay on this device until the network returns")]
    SyncOffline,
    #[error("sync failed: {0}")]
    SyncResolver(String),
    #[error("sync did not finish: {0}")]
    SyncBusy(String),
    #[error("sync is not configured: pass sync: {{ url, token }} to Database.open")]
    SyncNotConfigured,
    /// A failure reported by the instance (tab) that syncs for this one: its code and message.
    #[error("{message}")]
    SyncRemote { code: &'static str, message: String },
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
            Error::DatabaseWiped(_) => codes::DATABASE_WIPED,
            Error::DatabaseNewer { .. } => codes::DATABASE_NEWER,
            Error::ConnectionLost(_) | Error::Storage { .. } => codes::STORAGE_ERROR,
            Error::SyncUnauthorized(_) => codes::SYNC_UNAUTHORIZED,
            Error::SyncNamespaceMismatch(_) => codes::SYNC_NAMESPACE_MISMATCH,
            Error::SyncNetwork(_) => codes::SYNC_NETWORK,
            Error::SyncServer(_) => codes::SYNC_SERVER,
            Error::SyncMalformedReply(_) => codes::SYNC_MALFORMED_REPLY,
            Error::SyncRefused(_) => codes::SYNC_REFUSED,
            Error::SyncOffline => codes::SYNC_OFFLINE,
            Error::SyncResolver(_) => codes::SYNC_RESOLVER_FAILED,
            Error::SyncBusy(_) => codes::SYNC_BUSY,
            Error::SyncNotConfigured => codes::SYNC_NOT_CONFIGURED,
            Error::SyncRemote { code, .. } => code,
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
