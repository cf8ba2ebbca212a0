//! SQLite side of compaction, the expiry floor and pool figures (see `store/ops.rs`). Compaction
//! uses a connection of its own and short `BEGIN IMMEDIATE` transactions: the writer thread waits
//! at most one batch for the lock.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{blocking, lock, SqliteStore};
use crate::store::error::StoreError;
use crate::store::ops::{CompactReport, Compaction, PoolStats};

/// `ferrosync_marks`: a namespace's head at a time. `ferrosync_floors`: the highest purged
/// position (cursors below it expired) and how far the compactor has looked (`scanned`: nothing
/// at or below it is left to purge, since new writes always get positions above the head).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ferrosync_marks (
    namespace TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    head      INTEGER NOT NULL,
    PRIMARY KEY (namespace, at_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ferrosync_floors (
    namespace TEXT PRIMARY KEY,
    floor     INTEGER NOT NULL,
    scanned   INTEGER NOT NULL
) WITHOUT ROWID;
"#;

impl SqliteStore {
    pub async fn ensure_ops_schema(&self) -> Result<(), StoreError> {
        let target = self.target.clone();
        blocking(move || {
            let conn = target.open(true)?;
            conn.execute_batch(SCHEMA)?;
            Ok(())
        })
        .await
    }

    pub async fn compact(&self, c: Compaction) -> Result<CompactReport, StoreError> {
        let target = self.target.clone();
        blocking(move || {
            let mut conn = target.open(true)?;
            compact(&mut conn, c)
        })
        .await
    }

    pub async fn expiry_floor(&self, namespace: &str) -> Result<u64, StoreError> {
        let namespace = namespace.to_string();
        self.readers
            .run(move |conn| {
                let floor: Option<i64> = conn
                    .prepare_cached("SELECT floor FROM ferrosync_floors WHERE namespace = ?1")?
                    .query_row([&namespace], |r| r.get(0))
                    .optional()?;
                Ok(floor.unwrap_or(0) as u64)
            })
            .await
    }

    pub fn pool_stats(&self) -> PoolStats {
        let idle = self.readers.permits.available_permits() as u64;
        let queued = lock(&self.writer)
            .as_ref()
            .map_or(0, |tx| (tx.max_capacity() - tx.capacity()) as u64);
        PoolStats {
            in_use: (self.reader_count as u64).saturating_sub(idle),
            idle,
            queued_pushes: queued,
        }
    }
}

/// One run; see `store/ops.rs`.
pub(crate) fn compact(conn: &mut Connection, c: Compaction) -> Result<CompactReport, StoreError> {
    let mut report = CompactReport::default();
    let cutoff = c.now_ms.saturating_sub(c.retention_ms) as i64;
    let batch = c.batch.max(1) as i64;
    // Mark the heads that moved since their last mark.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO ferrosync_marks (namespace, at_ms, head) \
         SELECT n.namespace, ?1, n.head FROM ferrosync_namespaces n \
         WHERE n.head > COALESCE((SELECT max(m.head) FROM ferrosync_marks m WHERE m.namespace = n.namespace), 0) \
         ON CONFLICT (namespace, at_ms) DO UPDATE SET head = max(head, excluded.head)",
        [c.now_ms as i64],
    )?;
    tx.commit()?;
    let horizons: Vec<(String, i64)> = conn
        .prepare(
            "SELECT namespace, max(head) FROM ferrosync_marks WHERE at_ms <= ?1 GROUP BY namespace",
        )?
        .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (ns, horizon) in horizons {
        report.namespaces += 1;
        report.tombstones += purge_tombstones(conn, &ns, horizon, batch)?;
        report.replays += purge_replays(conn, &ns, horizon, batch)?;
        // Only the newest mark at or before the cutoff still matters.
        conn.execute(
            "DELETE FROM ferrosync_marks WHERE namespace = ?1 AND at_ms < \
             (SELECT max(at_ms) FROM ferrosync_marks WHERE namespace = ?1 AND at_ms <= ?2)",
            params![ns, cutoff],
        )?;
    }
    Ok(report)
}

/// Deletes the namespace's tombstones at or below `horizon`, examining at most `batch` feed rows
/// per transaction; raises the floor with each batch.
fn purge_tombstones(
    conn: &mut Connection,
    ns: &str,
    horizon: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut floor, scanned): (i64, i64) = tx
            .query_row(
                "SELECT floor, scanned FROM ferrosync_floors WHERE namespace = ?1",
                [ns],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, 0));
        if scanned >= horizon {
            return Ok(purged);
        }
        let rows: Vec<(i64, bool)> = tx
            .prepare_cached(
                "SELECT seq, deleted FROM ferrosync_docs \
                 WHERE namespace = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
            )?
            .query_map(params![ns, scanned, horizon, batch], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let reached = if (rows.len() as i64) < batch {
            horizon
        } else {
            rows.last().map_or(horizon, |r| r.0)
        };
        {
            let mut delete = tx.prepare_cached(
                "DELETE FROM ferrosync_docs WHERE namespace = ?1 AND seq = ?2 AND deleted = 1",
            )?;
            for (seq, _) in rows.iter().filter(|r| r.1) {
                purged += delete.execute(params![ns, seq])? as u64;
                floor = floor.max(*seq);
            }
        }
        tx.execute(
            "INSERT INTO ferrosync_floors (namespace, floor, scanned) VALUES (?1, ?2, ?3) \
             ON CONFLICT (namespace) DO UPDATE SET floor = excluded.floor, scanned = excluded.scanned",
            params![ns, floor, reached],
        )?;
        tx.commit()?;
    }
}

/// Deletes the replay rows (each client's last push) of pushes made at or below `horizon`.
/// A retry that old is applied again instead of replayed: harmless, since applying a change
/// twice stores it once.
fn purge_replays(
    conn: &mut Connection,
    ns: &str,
    horizon: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let mut purged = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "DELETE FROM ferrosync_client_pushes WHERE namespace = ?1 AND client_id IN \
             (SELECT client_id FROM ferrosync_client_pushes \
              WHERE namespace = ?1 AND json_extract(reply, '$.head') <= ?2 LIMIT ?3)",
            params![ns, horizon, batch],
        )?;
        tx.commit()?;
        purged += n as u64;
        if (n as i64) < batch {
            return Ok(purged);
        }
    }
}
