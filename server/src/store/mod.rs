//! Durable storage of each namespace's documents and change feed, on SQLite or PostgreSQL.
//!
//! Both keep one row per document: its current version and `seq`, the document's position in its
//! namespace's feed, renumbered on every accepted write. Writers of a namespace are serialized
//! (SQLite: one writer, `BEGIN IMMEDIATE`; PostgreSQL: a row lock on the namespace's head), so `seq`
//! values become visible in commit order and `seq > cursor` never skips a change.

mod lanes;
pub mod ops;
mod page;
mod plan;
mod postgres;
mod sqlite;
pub mod url;

use ferrosync_core::protocol::{Change, PushResult};
use ferrosync_core::sync::lineage::{self, Lineage};
use ferrosync_core::Hlc;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use plan::{plan_group, GroupPlan, Job, Loaded, WriteRow};

pub use page::REMAINING_COUNT_CAP;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use url::redact;

use crate::events::Events;
use crate::wire::ChangesJson;

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

/// Bounds on one request's work, from the server's flags.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// See [`Job::max_reply_bytes`].
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

/// What a client's last push is remembered by, to answer its retry: the feed head it got and which
/// changes were stale. No document copies: a retry gets the documents' current versions as they
/// are then (each still newer than what it pushed), so the record stays small whatever the reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredReply {
    pub head: u64,
    /// Positions of the stale changes in the push.
    pub stale: Vec<u32>,
    /// Positions of the changes applied by an earlier push and replaced since by a version made
    /// on them (answered `applied` with that version: `ferrosync_core::sync::lineage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<u32>,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushOutcome {
    pub results: Vec<PushResult>,
    /// The namespace's feed head after the push.
    pub head: u64,
}

/// One page of a namespace's feed.
#[derive(Debug)]
pub struct PullPage {
    /// The changes, already written as the reply's JSON array.
    pub changes: ChangesJson,
    /// `seq` of the last change in `changes`.
    pub last_seq: Option<u64>,
    pub has_more: bool,
    pub remaining: Option<u64>,
    /// The namespace's feed head when the page was read.
    pub head: u64,
}

/// Length of an epoch: 16 lower-case hex digits (64 random bits).
pub const EPOCH_LEN: usize = 16;

/// A fresh random epoch, for a new database or one given a new identity (restored).
pub fn new_epoch() -> String {
    format!("{:0width$x}", rand::random::<u64>(), width = EPOCH_LEN)
}

/// The database behind the server: one of two implementations with the same behaviour.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

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

impl Store {
    /// Opens (creating if needed) the database at `url`.
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
    ) -> Result<Store, StoreError> {
        Self::open_tuned(url, max_connections, events, DbTuning::default()).await
    }

    /// [`Store::open`] with the given time-outs.
    pub async fn open_tuned(
        url: &str,
        max_connections: u32,
        events: Events,
        tuning: DbTuning,
    ) -> Result<Store, StoreError> {
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(SqliteStore::open(url, max_connections, events, tuning).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(PgStore::open(url, max_connections, events, tuning).await?)
        } else {
            return Err(StoreError::BadUrl(redact(url).chars().take(80).collect()));
        };
        store.ensure_ops_schema().await?;
        Ok(store)
    }

    /// The random id created with the database; part of every cursor.
    pub fn epoch(&self) -> &str {
        match self {
            Store::Sqlite(s) => s.epoch(),
            Store::Postgres(s) => s.epoch(),
        }
    }

    /// Applies a push atomically. A push whose `request_hash` (hex) equals the same client's
    /// previous push is a retry: it changes nothing and gets the earlier outcome again.
    pub async fn push(
        &self,
        namespace: &str,
        client_id: &str,
        request_hash: String,
        changes: Vec<Change>,
    ) -> Result<PushOutcome, StoreError> {
        self.push_with(
            namespace,
            client_id,
            request_hash,
            changes,
            RequestLimits::default(),
        )
        .await
    }

    /// [`Store::push`] within the given limits.
    pub async fn push_with(
        &self,
        namespace: &str,
        client_id: &str,
        request_hash: String,
        changes: Vec<Change>,
        limits: RequestLimits,
    ) -> Result<PushOutcome, StoreError> {
        let job = Job {
            max_reply_bytes: limits.max_reply_bytes,
            namespace: namespace.to_string(),
            client_id: client_id.to_string(),
            hash: request_hash,
            // Here, in the request's task, not on the (single) writer: requests encode in parallel.
            encoded: changes.iter().map(encode).collect(),
            changes,
        };
        match self {
            Store::Sqlite(s) => s.push(job).await,
            Store::Postgres(s) => s.push(job).await,
        }
    }

    /// Up to `limit` changes with `seq > after`, in feed order.
    pub async fn pull(
        &self,
        namespace: &str,
        after: u64,
        limit: usize,
    ) -> Result<PullPage, StoreError> {
        self.pull_within(namespace, after, limit, DEFAULT_MAX_PAGE_BYTES)
            .await
    }

    /// [`Store::pull`], stopping before the page passes `max_bytes` (one change always comes, so
    /// a document larger than the budget comes alone); `has_more` then says more follow.
    pub async fn pull_within(
        &self,
        namespace: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<PullPage, StoreError> {
        match self {
            Store::Sqlite(s) => s.pull(namespace, after, limit, max_bytes).await,
            Store::Postgres(s) => s.pull(namespace, after, limit, max_bytes).await,
        }
    }

    /// The namespace's feed head (0 when it has no changes).
    pub async fn head(&self, namespace: &str) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.head(namespace).await,
            Store::Postgres(s) => s.head(namespace).await,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Starts whatever carries notices between processes (PostgreSQL LISTEN), until `shutdown`.
    pub fn spawn_listener(&self, shutdown: watch::Receiver<bool>) {
        if let Store::Postgres(s) = self {
            s.spawn_listener(shutdown);
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// A stored row as both databases return it.
pub(crate) struct Row {
    pub collection: String,
    pub id: String,
    pub hlc: String,
    pub deleted: bool,
    pub doc: Option<String>,
    pub fields: Option<String>,
    /// `ferrosync_docs.lineage` (`ferrosync_core::sync::lineage`).
    pub lineage: Option<String>,
}

impl Row {
    /// The version, and its lineage (an unreadable one counts as none: it only costs a resolver
    /// call).
    pub fn into_change(self) -> Result<(Change, Option<Lineage>), StoreError> {
        let Row {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
            lineage,
        } = self;
        let lineage = lineage.as_deref().and_then(lineage::decode);
        let corrupt =
            |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{collection}/{id}: {e}"));
        let hlc: Hlc = hlc.parse().map_err(|e| corrupt(&e))?;
        let doc = doc
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(&e))?;
        let fields = fields
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(&e))?;
        let change = Change {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
            base: None,
        };
        Ok((change, lineage))
    }
}

/// A change's columns ready for binding.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub hlc: String,
    pub doc: Option<String>,
    pub fields: Option<String>,
}

pub fn encode(c: &Change) -> Encoded {
    Encoded {
        hlc: c.hlc.encode(),
        // Serializing a serde_json::Value cannot fail.
        doc: c.doc.as_ref().map(|d| d.to_string()),
        fields: c
            .fields
            .as_ref()
            .map(|f| serde_json::to_string(f).unwrap_or_default()),
    }
}

pub(crate) fn encode_reply(r: &StoredReply) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Reads a replay record; records written before they were made small (a whole [`PushOutcome`],
/// document copies included) are read as what they stand for.
pub(crate) fn decode_reply(s: &str) -> Result<StoredReply, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("stored push reply: {e}"));
    if s.starts_with("{\"results\"") {
        let old: PushOutcome = serde_json::from_str(s).map_err(corrupt)?;
        let stale = old
            .results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.status == ferrosync_core::protocol::PushStatus::Stale)
            .map(|(i, _)| i as u32)
            .collect();
        return Ok(StoredReply {
            head: old.head,
            stale,
            superseded: Vec::new(),
        });
    }
    serde_json::from_str(s).map_err(corrupt)
}
