//! Durable storage of each namespace's documents and change feed, on SQLite or PostgreSQL.
//!
//! Both keep one row per document: its current version and `seq`, the document's position in its
//! namespace's feed, renumbered on every accepted write. Writers of a namespace are serialized
//! (SQLite: one writer, `BEGIN IMMEDIATE`; PostgreSQL: a row lock on the namespace's head), so `seq`
//! values become visible in commit order and `seq > cursor` never skips a change.

//!
//! This file is the store's face: `Store` over the two databases, and the names the rest of the
//! server uses. The pieces below it: `rows.rs` (what both store and return), `error.rs`,
//! `settings.rs`, `url.rs`, `page.rs` (one pull page), `plan.rs` (deciding pushes), `lanes.rs`
//! (group commit), `ops.rs` (operations' types), and one module per database.

mod error;
mod lanes;
pub mod ops;
mod page;
mod plan;
mod postgres;
mod rows;
mod settings;
mod sqlite;
pub mod url;

use ferrosync_core::protocol::Change;
use tokio::sync::watch;

pub use error::StoreError;
pub use page::REMAINING_COUNT_CAP;
pub use plan::{plan_group, GroupPlan, Job, Loaded, WriteRow};
pub use postgres::PgStore;
pub use rows::{
    encode, new_epoch, position_check, Encoded, PullPage, PushOutcome, StoredReply, CHECK_LEN,
    EPOCH_LEN,
};
pub use settings::{DbTuning, RequestLimits, DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_REPLY_BYTES};
pub use sqlite::SqliteStore;
pub use url::redact;

use crate::events::Events;
use ops::{CompactReport, Compaction, PoolStats};

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

impl Store {
    /// Creates the operations' tables (marks and floors) if missing.
    pub async fn ensure_ops_schema(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ensure_ops_schema().await,
            Store::Postgres(s) => s.ensure_ops_schema().await,
        }
    }

    /// One compaction run: marks the heads, purges what is older than the horizon, in batches.
    pub async fn compact(&self, c: Compaction) -> Result<CompactReport, StoreError> {
        match self {
            Store::Sqlite(s) => s.compact(c).await,
            Store::Postgres(s) => s.compact(c).await,
        }
    }

    /// The highest purged feed position of the namespace (0: nothing purged). A cursor below it
    /// has expired. Read it after the page: the purge and the floor commit together, so a page
    /// read before a purge is caught by the floor read after it.
    pub async fn expiry_floor(&self, namespace: &str) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.expiry_floor(namespace).await,
            Store::Postgres(s) => s.expiry_floor(namespace).await,
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Store::Sqlite(s) => s.pool_stats(),
            Store::Postgres(s) => s.pool_stats(),
        }
    }
}
