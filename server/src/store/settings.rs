//! What the server's flags set in the store: the bounds of one request's work and the
//! database's time-outs.

/// Bounds on one request's work, from the server's flags.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// See [`super::Job::max_reply_bytes`].
    pub max_reply_bytes: usize,
    /// A pull page stops before passing this many bytes of changes (one change always comes).
    pub max_page_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

/// Default of `--max-reply-bytes`.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// Default of `--max-page-bytes`.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The database's time-outs (ms): PostgreSQL session settings (0 turns one off), so a stuck lock,
/// statement or transaction fails instead of holding a connection and everyone queued behind it;
/// SQLite's busy time-out, how long a connection waits for a lock another process holds.
#[derive(Clone, Copy, Debug)]
pub struct DbTuning {
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub idle_in_transaction_timeout_ms: u64,
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for DbTuning {
    fn default() -> Self {
        DbTuning {
            lock_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            idle_in_transaction_timeout_ms: 60_000,
            sqlite_busy_timeout_ms: 10_000,
        }
    }
}
