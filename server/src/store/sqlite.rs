//! SQLite storage: one file in WAL mode. All writes go through a single connection and take the
//! write lock up front (`BEGIN IMMEDIATE`), so feed numbers are assigned in commit order; reads use
//! a pool of read-only connections that never block the writer.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Row as _;

use super::lanes::{GroupWriter, Lanes};
use super::{
    decode_outcome, encode, encode_outcome, plan_group, GroupPlan, Job, Loaded, PullPage,
    PushOutcome, Row, StoreError, REMAINING_COUNT_CAP,
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
    request_hash TEXT NOT NULL,
    reply        TEXT NOT NULL,
    PRIMARY KEY (namespace, client_id)
) WITHOUT ROWID;
"#;

pub struct SqliteStore {
    lanes: Lanes,
    reader: SqlitePool,
    writer: Arc<SqliteWriter>,
    epoch: String,
}

/// The single writing connection.
struct SqliteWriter {
    pool: SqlitePool,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::query(
            "INSERT INTO ferrosync_meta (key, value) VALUES ('epoch', ?) ON CONFLICT DO NOTHING",
        )
        .bind(new_epoch())
        .execute(&pool)
        .await?;
        let epoch: String =
            sqlx::query_scalar("SELECT value FROM ferrosync_meta WHERE key = 'epoch'")
                .fetch_one(&pool)
                .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        let writer = Arc::new(SqliteWriter { pool, events });
        Ok(SqliteStore {
            // SQLite has one writer: one lane.
            lanes: Lanes::spawn(writer.clone(), 1),
            reader,
            writer,
            epoch,
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub async fn push(&self, job: Job) -> Result<PushOutcome, StoreError> {
        self.lanes.push(job).await
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
                .into_stored()?,
            );
        }
        let remaining = Some(if has_more {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM ferrosync_docs WHERE namespace = ? AND seq > ? LIMIT ?)",
            )
            .bind(namespace)
            .bind(last_seq.unwrap_or(after) as i64)
            .bind(REMAINING_COUNT_CAP)
            .fetch_one(&mut *tx)
            .await?;
            if n < REMAINING_COUNT_CAP {
                n as u64
            } else {
                // Every row has its own position in (last, head]: an upper bound, at no cost.
                (head as u64).saturating_sub(last_seq.unwrap_or(after))
            }
        } else {
            0
        });
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
        self.writer.pool.close().await;
    }
}

impl GroupWriter for SqliteWriter {
    async fn write_group(&self, jobs: &[Job]) -> Result<Vec<PushOutcome>, StoreError> {
        // Take the write lock up front: feed numbers are assigned under it, in commit order.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let loaded = load(&mut tx, jobs).await?;
        let plan = plan_group(jobs, loaded);
        write(&mut tx, &plan).await?;
        tx.commit().await?;
        for (ns, head) in &plan.heads {
            self.events.publish(Notice {
                namespace: Some(Arc::from(ns.as_str())),
                head: *head,
            });
        }
        Ok(plan.outcomes)
    }
}

/// Reads what a group of pushes touches. Keys travel as one JSON array each (`json_each`), so
/// a group costs a fixed number of statements whatever its size.
async fn load(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<Loaded, StoreError> {
    let mut namespaces: Vec<&str> = jobs.iter().map(|j| j.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let mut clients: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.namespace.as_str(), j.client_id.as_str()))
        .collect();
    clients.sort_unstable();
    clients.dedup();
    let mut docs: Vec<(&str, &str, &str)> = jobs
        .iter()
        .flat_map(|j| {
            j.changes
                .iter()
                .map(|c| (j.namespace.as_str(), c.collection.as_str(), c.id.as_str()))
        })
        .collect();
    docs.sort_unstable();
    docs.dedup();

    let mut loaded = Loaded::default();
    let rows = sqlx::query(
        "SELECT n.namespace, n.head FROM json_each(?) k \
         JOIN ferrosync_namespaces n ON n.namespace = k.value",
    )
    .bind(json_text(&namespaces))
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        loaded
            .heads
            .insert(r.try_get(0)?, r.try_get::<i64, _>(1)? as u64);
    }
    let rows = sqlx::query(
        "SELECT p.namespace, p.client_id, p.request_hash, p.reply FROM json_each(?) k \
         JOIN ferrosync_client_pushes p ON p.namespace = k.value->>0 AND p.client_id = k.value->>1",
    )
    .bind(json_text(&clients))
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let reply: String = r.try_get(3)?;
        loaded.replies.insert(
            (r.try_get(0)?, r.try_get(1)?),
            (r.try_get(2)?, decode_outcome(&reply)?),
        );
    }
    let rows = sqlx::query(
        "SELECT d.namespace, d.collection, d.id, d.hlc, d.deleted, d.doc, d.fields FROM json_each(?) k \
         JOIN ferrosync_docs d \
           ON d.namespace = k.value->>0 AND d.collection = k.value->>1 AND d.id = k.value->>2",
    )
    .bind(json_text(&docs))
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let ns: String = r.try_get(0)?;
        let change = Row {
            collection: r.try_get(1)?,
            id: r.try_get(2)?,
            hlc: r.try_get(3)?,
            deleted: r.try_get(4)?,
            doc: r.try_get(5)?,
            fields: r.try_get(6)?,
        }
        .into_change()?;
        loaded
            .current
            .insert((ns, change.collection.clone(), change.id.clone()), change);
    }
    Ok(loaded)
}

/// Writes a decided group: document rows, namespace heads, remembered replies.
async fn write(conn: &mut SqliteConnection, plan: &GroupPlan) -> Result<(), StoreError> {
    if !plan.rows.is_empty() {
        // Tuples serialize as JSON arrays without building a `Value` tree.
        let rows: Vec<_> = plan
            .rows
            .iter()
            .map(|r| {
                let e = encode(&r.change);
                (
                    &r.namespace,
                    &r.change.collection,
                    &r.change.id,
                    e.hlc,
                    &r.client_id,
                    r.change.deleted,
                    e.doc,
                    e.fields,
                    r.seq,
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO ferrosync_docs (namespace, collection, id, hlc, client_id, deleted, doc, fields, seq) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8 \
             FROM json_each(?) WHERE true \
             ON CONFLICT (namespace, collection, id) DO UPDATE SET \
             hlc = excluded.hlc, client_id = excluded.client_id, deleted = excluded.deleted, \
             doc = excluded.doc, fields = excluded.fields, seq = excluded.seq",
        )
        .bind(json_text(&rows))
        .execute(&mut *conn)
        .await?;
    }
    if !plan.heads.is_empty() {
        sqlx::query(
            "INSERT INTO ferrosync_namespaces (namespace, head) \
             SELECT value->>0, value->>1 FROM json_each(?) WHERE true \
             ON CONFLICT (namespace) DO UPDATE SET head = excluded.head",
        )
        .bind(json_text(&plan.heads))
        .execute(&mut *conn)
        .await?;
    }
    if !plan.replies.is_empty() {
        let replies: Vec<_> = plan
            .replies
            .iter()
            .map(|((ns, client), hash, outcome)| (ns, client, hash, encode_outcome(outcome)))
            .collect();
        sqlx::query(
            "INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) \
             SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?) WHERE true \
             ON CONFLICT (namespace, client_id) DO UPDATE SET \
             request_hash = excluded.request_hash, reply = excluded.reply",
        )
        .bind(json_text(&replies))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
