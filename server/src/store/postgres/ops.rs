//! PostgreSQL side of compaction, the expiry floor and pool figures (see `store/ops.rs`). With
//! several server processes on one database, one run at a time compacts (a session advisory lock;
//! the others skip that run). Each batch is its own short transaction; rows a push is rewriting
//! are locked by it, and the delete re-checks them after the push committed (a rewritten row has a
//! new position and is left alone).

use sqlx::postgres::PgConnection;
use sqlx::Row as _;

use super::{PgStore, MIGRATION_LOCK};
use crate::store::error::StoreError;
use crate::store::ops::{CompactReport, Compaction, PoolStats};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ferrosync_marks (
    namespace TEXT COLLATE "C" NOT NULL,
    at_ms     BIGINT NOT NULL,
    head      BIGINT NOT NULL,
    PRIMARY KEY (namespace, at_ms)
);
CREATE TABLE IF NOT EXISTS ferrosync_floors (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    floor     BIGINT NOT NULL,
    scanned   BIGINT NOT NULL
);
"#;

/// Advisory lock key of a compaction run ("ferrocmp").
const COMPACT_LOCK: i64 = 0x6665_7272_6f63_6d70;

impl PgStore {
    pub async fn ensure_ops_schema(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let created = sqlx::raw_sql(SCHEMA).execute(&mut *conn).await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        created?;
        Ok(())
    }

    pub async fn compact(&self, c: Compaction) -> Result<CompactReport, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(COMPACT_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !locked {
            return Ok(CompactReport::default());
        }
        let result = compact(&mut conn, c).await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(COMPACT_LOCK)
            .execute(&mut *conn)
            .await?;
        result
    }

    pub async fn expiry_floor(&self, namespace: &str) -> Result<u64, StoreError> {
        let floor: Option<i64> =
            sqlx::query_scalar("SELECT floor FROM ferrosync_floors WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.pool)
                .await?;
        Ok(floor.unwrap_or(0) as u64)
    }

    pub fn pool_stats(&self) -> PoolStats {
        let size = self.pool.size() as u64;
        let idle = self.pool.num_idle() as u64;
        PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            queued_pushes: 0,
        }
    }
}

async fn compact(conn: &mut PgConnection, c: Compaction) -> Result<CompactReport, StoreError> {
    let mut report = CompactReport::default();
    let cutoff = c.now_ms.saturating_sub(c.retention_ms) as i64;
    let batch = c.batch.max(1) as i64;
    sqlx::query(
        "INSERT INTO ferrosync_marks (namespace, at_ms, head) \
         SELECT n.namespace, $1, n.head FROM ferrosync_namespaces n \
         WHERE n.head > COALESCE((SELECT max(m.head) FROM ferrosync_marks m WHERE m.namespace = n.namespace), 0) \
         ON CONFLICT (namespace, at_ms) DO UPDATE SET head = GREATEST(ferrosync_marks.head, excluded.head)",
    )
    .bind(c.now_ms as i64)
    .execute(&mut *conn)
    .await?;
    let horizons: Vec<(String, i64)> = sqlx::query(
        "SELECT namespace, max(head) FROM ferrosync_marks WHERE at_ms <= $1 GROUP BY namespace",
    )
    .bind(cutoff)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    for (ns, horizon) in horizons {
        report.namespaces += 1;
        report.tombstones += purge_tombstones(conn, &ns, horizon, batch).await?;
        report.replays += purge_replays(conn, &ns, horizon, batch).await?;
        sqlx::query(
            "DELETE FROM ferrosync_marks WHERE namespace = $1 AND at_ms < \
             (SELECT max(at_ms) FROM ferrosync_marks WHERE namespace = $1 AND at_ms <= $2)",
        )
        .bind(&ns)
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
    }
    Ok(report)
}

async fn purge_tombstones(
    conn: &mut PgConnection,
    ns: &str,
    horizon: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // Locks the floor row: one batch of a namespace at a time.
        let (floor, scanned): (i64, i64) = sqlx::query_as(
            "INSERT INTO ferrosync_floors AS f (namespace, floor, scanned) VALUES ($1, 0, 0) \
             ON CONFLICT (namespace) DO UPDATE SET floor = f.floor RETURNING floor, scanned",
        )
        .bind(ns)
        .fetch_one(&mut *tx)
        .await?;
        if scanned >= horizon {
            tx.commit().await?;
            return Ok(purged);
        }
        let rows: Vec<(i64, bool)> = sqlx::query_as(
            "SELECT seq, deleted FROM ferrosync_docs \
             WHERE namespace = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(ns)
        .bind(scanned)
        .bind(horizon)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let reached = if (rows.len() as i64) < batch {
            horizon
        } else {
            rows.last().map_or(horizon, |r| r.0)
        };
        let dead: Vec<i64> = rows.iter().filter(|r| r.1).map(|r| r.0).collect();
        let gone: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM ferrosync_docs WHERE namespace = $1 AND deleted AND seq = ANY($2) RETURNING seq",
        )
        .bind(ns)
        .bind(&dead)
        .fetch_all(&mut *tx)
        .await?;
        purged += gone.len() as u64;
        let floor = gone.iter().copied().fold(floor, i64::max);
        sqlx::query("UPDATE ferrosync_floors SET floor = $2, scanned = $3 WHERE namespace = $1")
            .bind(ns)
            .bind(floor)
            .bind(reached)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
}

async fn purge_replays(
    conn: &mut PgConnection,
    ns: &str,
    horizon: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM ferrosync_client_pushes WHERE namespace = $1 AND client_id IN \
             (SELECT client_id FROM ferrosync_client_pushes \
              WHERE namespace = $1 AND (reply::jsonb->>'head')::bigint <= $2 LIMIT $3)",
        )
        .bind(ns)
        .bind(horizon)
        .bind(batch)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        purged += n;
        if (n as i64) < batch {
            return Ok(purged);
        }
    }
}
