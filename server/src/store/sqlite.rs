//! SQLite storage: one file in WAL mode. All writes go through a single connection and take the
//! write lock up front (`BEGIN IMMEDIATE`), so feed numbers are assigned in commit order; reads use
//! a pool of read-only connections that never block the writer.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ferrosync_core::protocol::Change;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row as _;

use super::{
    decode_outcome, encode, encode_outcome, plan, Key, PullPage, PushOutcome, Row, StoreError,
    REMAINING_COUNT_CAP,
};
use crate::cursor::new_epoch;
use crate::events::{Events, Notice};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ferrosync_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ferrosync_namespaces (
    namespace TEXT PRIMARY KEY,
    head      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ferrosync_docs (
    namespace  TEXT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    hlc        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    deleted    INTEGER NOT NULL,
    doc        TEXT,
    fields     TEXT,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (namespace, collection, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ferrosync_docs_feed ON ferrosync_docs (namespace, seq);
CREATE TABLE IF NOT EXISTS ferrosync_client_pushes (
    namespace    TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    reply        TEXT NOT NULL,
    PRIMARY KEY (namespace, client_id)
) WITHOUT ROWID;
"#;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    epoch: String,
    events: Events,
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
    ) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged push survives power loss (the client drops its outbox row on ack).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = Path::new(opts.get_filename()).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&writer).await?;
        sqlx::query(
            "INSERT INTO ferrosync_meta (key, value) VALUES ('epoch', ?) ON CONFLICT DO NOTHING",
        )
        .bind(new_epoch())
        .execute(&writer)
        .await?;
        let epoch: String =
            sqlx::query_scalar("SELECT value FROM ferrosync_meta WHERE key = 'epoch'")
                .fetch_one(&writer)
                .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteStore {
            writer,
            reader,
            epoch,
            events,
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub async fn push(
        &self,
        namespace: &str,
        client_id: &str,
        request_hash: &[u8],
        changes: &[Change],
    ) -> Result<PushOutcome, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;

        let previous = sqlx::query(
            "SELECT request_hash, reply FROM ferrosync_client_pushes WHERE namespace = ? AND client_id = ?",
        )
        .bind(namespace)
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = previous {
            let hash: Vec<u8> = row.try_get(0)?;
            if hash == request_hash {
                let reply: String = row.try_get(1)?;
                return decode_outcome(&reply);
            }
        }

        let head: i64 =
            sqlx::query_scalar("SELECT head FROM ferrosync_namespaces WHERE namespace = ?")
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);

        let mut current: HashMap<Key, Change> = HashMap::new();
        for c in changes {
            let key = (c.collection.clone(), c.id.clone());
            if current.contains_key(&key) {
                continue;
            }
            let row = sqlx::query(
                "SELECT hlc, deleted, doc, fields FROM ferrosync_docs \
                 WHERE namespace = ? AND collection = ? AND id = ?",
            )
            .bind(namespace)
            .bind(&c.collection)
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                let change = Row {
                    collection: c.collection.clone(),
                    id: c.id.clone(),
                    hlc: r.try_get(0)?,
                    deleted: r.try_get(1)?,
                    doc: r.try_get(2)?,
                    fields: r.try_get(3)?,
                }
                .into_change()?;
                current.insert(key, change);
            }
        }

        let plan = plan(changes, current);
        let mut seq = head;
        for w in &plan.writes {
            seq += 1;
            let e = encode(w);
            sqlx::query(
                "INSERT INTO ferrosync_docs (namespace, collection, id, hlc, client_id, deleted, doc, fields, seq) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET \
                 hlc = excluded.hlc, client_id = excluded.client_id, deleted = excluded.deleted, \
                 doc = excluded.doc, fields = excluded.fields, seq = excluded.seq",
            )
            .bind(namespace)
            .bind(&w.collection)
            .bind(&w.id)
            .bind(e.hlc)
            .bind(client_id)
            .bind(w.deleted)
            .bind(e.doc)
            .bind(e.fields)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        if seq != head {
            sqlx::query(
                "INSERT INTO ferrosync_namespaces (namespace, head) VALUES (?, ?) \
                 ON CONFLICT (namespace) DO UPDATE SET head = excluded.head",
            )
            .bind(namespace)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        let outcome = PushOutcome {
            results: plan.results,
            head: seq as u64,
        };
        sqlx::query(
            "INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) VALUES (?, ?, ?, ?) \
             ON CONFLICT (namespace, client_id) DO UPDATE SET request_hash = excluded.request_hash, reply = excluded.reply",
        )
        .bind(namespace)
        .bind(client_id)
        .bind(request_hash)
        .bind(encode_outcome(&outcome))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        if seq != head {
            self.events.publish(Notice {
                namespace: Some(Arc::from(namespace)),
                head: outcome.head,
            });
        }
        Ok(outcome)
    }

    pub async fn pull(
        &self,
        namespace: &str,
        after: u64,
        limit: usize,
    ) -> Result<PullPage, StoreError> {
        // One read transaction: the page, the head and the count come from the same snapshot.
        let mut tx = self.reader.begin().await?;
        let head: i64 =
            sqlx::query_scalar("SELECT head FROM ferrosync_namespaces WHERE namespace = ?")
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT collection, id, hlc, deleted, doc, fields, seq FROM ferrosync_docs \
             WHERE namespace = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(namespace)
        .bind(after as i64)
        .bind(limit as i64 + 1)
        .fetch_all(&mut *tx)
        .await?;
        let has_more = rows.len() > limit;
        let mut changes = Vec::with_capacity(rows.len().min(limit));
        let mut last_seq = None;
        for r in rows.into_iter().take(limit) {
            last_seq = Some(r.try_get::<i64, _>(6)? as u64);
            changes.push(
                Row {
                    collection: r.try_get(0)?,
                    id: r.try_get(1)?,
                    hlc: r.try_get(2)?,
                    deleted: r.try_get(3)?,
                    doc: r.try_get(4)?,
                    fields: r.try_get(5)?,
                }
                .into_change()?,
            );
        }
        let remaining = if has_more {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM ferrosync_docs WHERE namespace = ? AND seq > ? LIMIT ?)",
            )
            .bind(namespace)
            .bind(last_seq.unwrap_or(after) as i64)
            .bind(REMAINING_COUNT_CAP)
            .fetch_one(&mut *tx)
            .await?;
            (n < REMAINING_COUNT_CAP).then_some(n as u64)
        } else {
            Some(0)
        };
        tx.commit().await?;
        Ok(PullPage {
            changes,
            last_seq,
            has_more,
            remaining,
            head: head as u64,
        })
    }

    pub async fn head(&self, namespace: &str) -> Result<u64, StoreError> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT head FROM ferrosync_namespaces WHERE namespace = ?")
                .bind(namespace)
                .fetch_optional(&self.reader)
                .await?;
        Ok(head.unwrap_or(0) as u64)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
