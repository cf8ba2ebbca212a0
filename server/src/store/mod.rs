//! Durable storage of each namespace's documents and change feed, on SQLite or PostgreSQL.
//!
//! Both keep one row per document: its current version and `seq`, the document's position in its
//! namespace's feed, renumbered on every accepted write. Writers of a namespace are serialized
//! (SQLite: one writer, `BEGIN IMMEDIATE`; PostgreSQL: a row lock on the namespace's head), so `seq`
//! values become visible in commit order and `seq > cursor` never skips a change.

mod lanes;
pub mod ops;
mod plan;
mod postgres;
mod sqlite;

use ferrosync_core::protocol::{Change, PushResult};
use ferrosync_core::Hlc;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use plan::{plan_group, GroupPlan, Job, Loaded, WriteRow};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is shutting down")]
    Closed,
    #[error("database thread failed: {0}")]
    Thread(String),
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

/// Counting the rest of the feed costs an index scan: beyond this many rows `remaining` is the
/// upper bound `head - position` instead of an exact count.
pub const REMAINING_COUNT_CAP: i64 = 10_000;

/// The database behind the server: one of two implementations with the same behaviour.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating if needed) the database at `url`.
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
    ) -> Result<Store, StoreError> {
        let store = if url.starts_with("sqlite:") {
            Store::Sqlite(SqliteStore::open(url, max_connections, events).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(PgStore::open(url, max_connections, events).await?)
        } else {
            return Err(StoreError::BadUrl(url.chars().take(40).collect()));
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
        let job = Job {
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
        match self {
            Store::Sqlite(s) => s.pull(namespace, after, limit).await,
            Store::Postgres(s) => s.pull(namespace, after, limit).await,
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
}

impl Row {
    pub fn into_change(self) -> Result<Change, StoreError> {
        let Row {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
        } = self;
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
        Ok(Change {
            collection,
            id,
            hlc,
            deleted,
            doc,
            fields,
            base: None,
        })
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

pub(crate) fn encode_outcome(o: &PushOutcome) -> String {
    serde_json::to_string(o).unwrap_or_default()
}

pub(crate) fn decode_outcome(s: &str) -> Result<PushOutcome, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored push reply: {e}")))
}
