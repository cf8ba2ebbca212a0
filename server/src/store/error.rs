//! Why the storage layer failed, and which failures are worth a retry.

/// Why the storage layer failed. Never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt stored row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://path or postgres://...")]
    BadUrl(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is shutting down")]
    Closed,
    #[error("database thread failed: {0}")]
    Thread(String),
    /// The push's reply would exceed its cap; nothing was written (413 to the client).
    #[error("{0}")]
    ReplyTooLarge(String),
    /// PostgreSQL: the namespace's head row is locked by another transaction (another process,
    /// perhaps frozen); the lane hands the push to a task of its own that waits for the lock, so
    /// the lane's other namespaces are not held up.
    #[error("the namespace is locked by another transaction")]
    LockedElsewhere,
    /// The push did not commit within its deadline, or waited too long for a lock another
    /// transaction holds (PostgreSQL); nothing was written (503 to the client).
    #[error("{0}")]
    Busy(String),
}

impl StoreError {
    /// Nothing was written and the same request may succeed later: the database is unreachable
    /// or busy (a pool time-out, a lost connection, PostgreSQL's lock, statement or idle
    /// time-outs, SQLite busy or locked past its busy time-out).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            // PostgreSQL's lock_timeout (55P03), statement_timeout (57014) and
            // idle_in_transaction_session_timeout (25P03): nothing was written.
            StoreError::Db(sqlx::Error::Database(d)) => {
                matches!(d.code().as_deref(), Some("55P03" | "57014" | "25P03"))
            }
            // Another connection (a backup, a second process) held the lock past
            // `--sqlite-busy-timeout-ms`: the transaction was not begun or was rolled back.
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
