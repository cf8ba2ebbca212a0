//! PostgreSQL storage, for several stateless server processes in front of one database.
//!
//! A sequence number taken inside a transaction can become visible after a later one, so a naive
//! `seq > cursor` reader could skip a change forever. Here each push locks its namespace's head row
//! (`SELECT ... FOR UPDATE`) before numbering, so writers of one namespace run one after another and
//! feed numbers become visible in order. Text that is compared (HLCs, keys) uses `COLLATE "C"`:
//! byte order, as the HLC encoding requires (locale collations ignore `-`).
//! Notices travel between processes with NOTIFY, sent inside the push transaction, so they are
//! delivered on commit and in commit order.

use std::collections::HashMap;
use std::time::Duration;

use ferrosync_core::protocol::Change;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::Row as _;
use tokio::sync::watch;

use super::{
    decode_outcome, encode, encode_outcome, plan, Key, PullPage, PushOutcome, Row, StoreError,
    REMAINING_COUNT_CAP,
};
use crate::cursor::new_epoch;
use crate::events::{decode_payload, encode_payload, Events, Notice};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ferrosync_meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ferrosync_namespaces (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    head      BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ferrosync_docs (
    namespace  TEXT COLLATE "C" NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    hlc        TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    deleted    BOOLEAN NOT NULL,
    doc        TEXT,
    fields     TEXT,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (namespace, collection, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ferrosync_docs_feed ON ferrosync_docs (namespace, seq);
CREATE TABLE IF NOT EXISTS ferrosync_client_pushes (
    namespace    TEXT COLLATE "C" NOT NULL,
    client_id    TEXT COLLATE "C" NOT NULL,
    request_hash BYTEA NOT NULL,
    reply        TEXT NOT NULL,
    PRIMARY KEY (namespace, client_id)
);
"#;

/// Advisory lock key held while creating the schema, so processes starting together don't race.
const MIGRATION_LOCK: i64 = 0x6665_7272_6f73_796e; // "ferrosyn"

pub struct PgStore {
    pool: PgPool,
    epoch: String,
    channel: String,
    events: Events,
}

impl PgStore {
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
    ) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let migrated = async {
            sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
            sqlx::query("INSERT INTO ferrosync_meta (key, value) VALUES ('epoch', $1) ON CONFLICT DO NOTHING")
                .bind(new_epoch())
                .execute(&mut *conn)
                .await?;
            sqlx::query_scalar::<_, String>("SELECT value FROM ferrosync_meta WHERE key = 'epoch'")
                .fetch_one(&mut *conn)
                .await
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let epoch = migrated?;
        drop(conn);
        Ok(PgStore {
            pool,
            channel: format!("ferrosync_{epoch}"),
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
        let mut tx = self.pool.begin().await?;

        // Serialize this namespace's writers: the row lock is held until commit, and a waiter
        // re-reads the row after the holder commits, so it numbers after everything committed.
        let mut head: Option<i64> = sqlx::query_scalar(
            "SELECT head FROM ferrosync_namespaces WHERE namespace = $1 FOR UPDATE",
        )
        .bind(namespace)
        .fetch_optional(&mut *tx)
        .await?;
        if head.is_none() {
            sqlx::query("INSERT INTO ferrosync_namespaces (namespace, head) VALUES ($1, 0) ON CONFLICT DO NOTHING")
                .bind(namespace)
                .execute(&mut *tx)
                .await?;
            head = sqlx::query_scalar(
                "SELECT head FROM ferrosync_namespaces WHERE namespace = $1 FOR UPDATE",
            )
            .bind(namespace)
            .fetch_optional(&mut *tx)
            .await?;
        }
        let head = head.unwrap_or(0);

        let previous = sqlx::query(
            "SELECT request_hash, reply FROM ferrosync_client_pushes WHERE namespace = $1 AND client_id = $2",
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

        let mut current: HashMap<Key, Change> = HashMap::new();
        if !changes.is_empty() {
            let collections: Vec<&str> = changes.iter().map(|c| c.collection.as_str()).collect();
            let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
            let rows = sqlx::query(
                "SELECT d.collection, d.id, d.hlc, d.deleted, d.doc, d.fields FROM ferrosync_docs d \
                 JOIN (SELECT DISTINCT * FROM UNNEST($2::text[], $3::text[])) AS k(collection, id) \
                   ON d.collection = k.collection COLLATE \"C\" AND d.id = k.id COLLATE \"C\" \
                 WHERE d.namespace = $1",
            )
            .bind(namespace)
            .bind(&collections)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                let change = Row {
                    collection: r.try_get(0)?,
                    id: r.try_get(1)?,
                    hlc: r.try_get(2)?,
                    deleted: r.try_get(3)?,
                    doc: r.try_get(4)?,
                    fields: r.try_get(5)?,
                }
                .into_change()?;
                current.insert((change.collection.clone(), change.id.clone()), change);
            }
        }

        let plan = plan(changes, current);
        let n = plan.writes.len();
        if n > 0 {
            let mut collections = Vec::with_capacity(n);
            let mut ids = Vec::with_capacity(n);
            let mut hlcs = Vec::with_capacity(n);
            let mut deleted = Vec::with_capacity(n);
            let mut docs = Vec::with_capacity(n);
            let mut fields = Vec::with_capacity(n);
            let mut seqs = Vec::with_capacity(n);
            for (i, w) in plan.writes.iter().enumerate() {
                let e = encode(w);
                collections.push(w.collection.as_str());
                ids.push(w.id.as_str());
                hlcs.push(e.hlc);
                deleted.push(w.deleted);
                docs.push(e.doc);
                fields.push(e.fields);
                seqs.push(head + 1 + i as i64);
            }
            sqlx::query(
                "INSERT INTO ferrosync_docs (namespace, collection, id, hlc, client_id, deleted, doc, fields, seq) \
                 SELECT $1, c, i, h, $2, d, doc, f, s \
                 FROM UNNEST($3::text[], $4::text[], $5::text[], $6::bool[], $7::text[], $8::text[], $9::int8[]) \
                   AS u(c, i, h, d, doc, f, s) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET \
                 hlc = excluded.hlc, client_id = excluded.client_id, deleted = excluded.deleted, \
                 doc = excluded.doc, fields = excluded.fields, seq = excluded.seq",
            )
            .bind(namespace)
            .bind(client_id)
            .bind(&collections)
            .bind(&ids)
            .bind(&hlcs)
            .bind(&deleted)
            .bind(&docs)
            .bind(&fields)
            .bind(&seqs)
            .execute(&mut *tx)
            .await?;
        }
        let new_head = head + n as i64;
        let outcome = PushOutcome {
            results: plan.results,
            head: new_head as u64,
        };
        // Head, remembered reply and notice in one round trip (data-modifying CTEs always run).
        sqlx::query(
            "WITH h AS (UPDATE ferrosync_namespaces SET head = $3 WHERE namespace = $1 AND $3 <> head), \
             p AS (INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) \
                   VALUES ($1, $2, $4, $5) ON CONFLICT (namespace, client_id) \
                   DO UPDATE SET request_hash = excluded.request_hash, reply = excluded.reply) \
             SELECT pg_notify($6, $7) WHERE $8",
        )
        .bind(namespace)
        .bind(client_id)
        .bind(new_head)
        .bind(request_hash)
        .bind(encode_outcome(&outcome))
        .bind(&self.channel)
        .bind(encode_payload(namespace, outcome.head))
        .bind(n > 0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn pull(
        &self,
        namespace: &str,
        after: u64,
        limit: usize,
    ) -> Result<PullPage, StoreError> {
        // One snapshot for the page, the head and the count.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let head: i64 =
            sqlx::query_scalar("SELECT head FROM ferrosync_namespaces WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT collection, id, hlc, deleted, doc, fields, seq FROM ferrosync_docs \
             WHERE namespace = $1 AND seq > $2 ORDER BY seq LIMIT $3",
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
                "SELECT count(*) FROM (SELECT 1 FROM ferrosync_docs WHERE namespace = $1 AND seq > $2 LIMIT $3) t",
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
            sqlx::query_scalar("SELECT head FROM ferrosync_namespaces WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.pool)
                .await?;
        Ok(head.unwrap_or(0) as u64)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Forwards this database's notices (from every process) to the local event streams.
    pub fn spawn_listener(&self, mut shutdown: watch::Receiver<bool>) {
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut listener: Option<PgListener> = None;
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if listener.is_none() {
                    match connect_listener(&pool, &channel).await {
                        Ok(l) => {
                            // Anything may have happened while we were not listening.
                            events.publish(Notice {
                                namespace: None,
                                head: 0,
                            });
                            listener = Some(l);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN failed; retrying in 1 s");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                _ = shutdown.changed() => return,
                            }
                        }
                    }
                }
                let Some(l) = listener.as_mut() else { continue };
                tokio::select! {
                    _ = shutdown.changed() => return,
                    msg = l.try_recv() => match msg {
                        Ok(Some(n)) => match decode_payload(n.payload()) {
                            Some(notice) => events.publish(notice),
                            None => tracing::warn!(payload = n.payload(), "ignoring malformed notification"),
                        },
                        Ok(None) => {
                            tracing::warn!("notification connection lost; reconnected");
                            events.publish(Notice { namespace: None, head: 0 });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "notification connection failed; reconnecting");
                            listener = None;
                        }
                    },
                }
            }
        });
    }
}

async fn connect_listener(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(channel).await?;
    Ok(l)
}
