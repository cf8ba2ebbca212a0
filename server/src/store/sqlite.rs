//! SQLite storage: one file in WAL mode. All writes go through a single connection owned by a
//! thread of its own, and take the write lock up front (`BEGIN IMMEDIATE`), so feed numbers are
//! assigned in commit order; reads use a few read-only connections that never block the writer.
//!
//! SQLite is called synchronously (rusqlite, with the SQLite it bundles): the writer
//! thread runs a whole group (reads, decisions, writes, commit) without leaving its thread, and a
//! pull is one hop to a blocking thread. Through sqlx every statement and every row went through a
//! worker thread and a channel, and those hand-offs were the largest cost under load.

use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::StoreError;
use super::lanes::{gather, Pending};
use super::page::{PageBuilder, REMAINING_COUNT_CAP};
use super::plan::{plan_group, GroupPlan, Job, Loaded};
use super::rows::{decode_reply, encode_reply, new_epoch, PullPage, PushOutcome, Row};
use super::settings::DbTuning;
use super::url::{parse_sqlite, SqliteUrl};
use crate::events::{Events, Notice};
use crate::wire::StoredRef;

/// Compaction, the expiry floor, backups and pool figures (operations; `store/sqlite/ops.rs`).
mod ops;

/// `ferrosync_docs` is a rowid table: a pull walks the feed index `(namespace, seq)` and reaches
/// each row by its integer rowid, where a `WITHOUT ROWID` table (keyed by the three text columns)
/// cost a text-key search per pulled row. Databases created before keep their layout; the
/// statements are the same for both.
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
    lineage    TEXT,
    PRIMARY KEY (namespace, collection, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ferrosync_docs_feed ON ferrosync_docs (namespace, seq);
CREATE TABLE IF NOT EXISTS ferrosync_client_pushes (
    namespace    TEXT NOT NULL,
    client_id    TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    reply        TEXT NOT NULL,
    PRIMARY KEY (namespace, client_id)
);
"#;

/// The replay table is a rowid table: a lookup walks its primary-key index (the two short keys)
/// and reads one record. As a `WITHOUT ROWID` table (before) every key comparison read the whole
/// record, overflow pages included, so one large stored reply slowed every push of every
/// namespace. Databases created before are rebuilt once, their records made small.
const REPLAY_TABLE_SQL: &str =
    "SELECT sql FROM sqlite_master WHERE name = 'ferrosync_client_pushes'";

/// How often the background checkpointer copies the write-ahead log back into the database file.
/// At tens of thousands of changes a second this is roughly SQLite's own threshold (1 000 pages).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// The writer still checkpoints by itself beyond this many log pages (40 MB), should the
/// background checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

pub struct SqliteStore {
    /// Queue of the writer thread; taken (dropped) on close, which ends the thread.
    writer: Mutex<Option<mpsc::Sender<Pending>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropping the sender stops the checkpointer thread.
    checkpointer: Mutex<Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>>,
    readers: Readers,
    epoch: String,
    /// For the operations' own connections (compaction).
    target: Target,
    /// How many read connections there are (for the pool figures).
    reader_count: usize,
}

/// Where the database lives, as rusqlite opens it.
#[derive(Clone)]
struct Target {
    path: String,
    flags: OpenFlags,
    /// An in-memory database has no log to checkpoint.
    in_memory: bool,
    /// How long a connection waits for a lock held by another process before failing
    /// (`--sqlite-busy-timeout-ms`).
    busy_timeout: Duration,
}

impl Target {
    /// Where `url` (see [`parse_sqlite`]) puts the database.
    fn parse(url: &str, busy_timeout: Duration) -> Result<Target, StoreError> {
        let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let file = match parse_sqlite(url).map_err(StoreError::InvalidUrl)? {
            // One in-memory database shared by the writer and the readers of this process.
            SqliteUrl::Memory => {
                return Ok(Target {
                    path: format!("file:ferrosync-{}?mode=memory&cache=shared", new_epoch()),
                    flags: base,
                    in_memory: true,
                    busy_timeout,
                })
            }
            SqliteUrl::File(file) => file,
        };
        if let Some(dir) = file.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        Ok(Target {
            // A plain path: keep `?` and `#` in file names literal.
            path: file.to_string_lossy().into_owned(),
            flags: OpenFlags::SQLITE_OPEN_NO_MUTEX,
            in_memory: false,
            busy_timeout,
        })
    }

    fn open(&self, write: bool) -> Result<Connection, StoreError> {
        let mode = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let conn = Connection::open_with_flags(&self.path, self.flags | mode)?;
        conn.busy_timeout(self.busy_timeout)?;
        // Statements are few and fixed; keep them all prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
        tuning: DbTuning,
    ) -> Result<SqliteStore, StoreError> {
        let busy_timeout = Duration::from_millis(tuning.sqlite_busy_timeout_ms);
        let target = Target::parse(url, busy_timeout)?;
        // Reads are CPU work on cached pages: more concurrent readers than cores only takes CPU
        // time away from the writer (and from answering requests).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers = (max_connections as usize).clamp(1, cores);
        let in_memory = target.in_memory;
        let kept = target.clone();
        let (conn, epoch, read_conns, checkpoint_conn) = blocking(move || {
            let conn = open_writer(&target)?;
            let epoch: String = conn.query_row(
                "SELECT value FROM ferrosync_meta WHERE key = 'epoch'",
                [],
                |r| r.get(0),
            )?;
            let read_conns = (0..readers)
                .map(|_| target.open(false))
                .collect::<Result<Vec<_>, _>>()?;
            let checkpoint_conn = if target.in_memory {
                None
            } else {
                Some(target.open(true)?)
            };
            Ok((conn, epoch, read_conns, checkpoint_conn))
        })
        .await?;
        let checkpointer = match checkpoint_conn {
            Some(c) if !in_memory => {
                let (stop, stopped) = std::sync::mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("ferrosync-sqlite-checkpointer".into())
                    .spawn(move || run_checkpointer(c, stopped))?;
                Some((stop, thread))
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(1024);
        let thread = std::thread::Builder::new()
            .name("ferrosync-sqlite-writer".into())
            .spawn(move || run_writer(conn, rx, events))?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(checkpointer),
            readers: Readers {
                idle: Arc::new(Mutex::new(read_conns)),
                permits: Arc::new(Semaphore::new(readers)),
            },
            epoch,
            target: kept,
            reader_count: readers,
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Queues a push for the writer thread and waits until its group has committed.
    pub async fn push(&self, job: Job) -> Result<PushOutcome, StoreError> {
        let writer = lock(&self.writer).clone().ok_or(StoreError::Closed)?;
        let (tx, rx) = oneshot::channel();
        writer
            .send(Pending { job, reply: tx })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(writer);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn pull(
        &self,
        namespace: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<PullPage, StoreError> {
        let namespace = namespace.to_string();
        self.readers
            .run(move |conn| pull(conn, &namespace, after, limit, max_bytes))
            .await
    }

    pub async fn head(&self, namespace: &str) -> Result<u64, StoreError> {
        let namespace = namespace.to_string();
        self.readers
            .run(move |conn| {
                let head: Option<i64> = conn
                    .prepare_cached("SELECT head FROM ferrosync_namespaces WHERE namespace = ?1")?
                    .query_row([&namespace], |r| r.get(0))
                    .optional()?;
                Ok(head.unwrap_or(0) as u64)
            })
            .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))?;
                Ok(())
            })
            .await
    }

    /// Lets queued pushes finish, stops the writer thread and closes every connection. The
    /// writer's connection closes last: the last connection to close checkpoints the log and
    /// removes it, which a read-only one cannot do.
    pub async fn close(&self) {
        self.readers.close();
        let checkpointer = lock(&self.checkpointer).take();
        if let Some((stop, thread)) = checkpointer {
            drop(stop);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        drop(lock(&self.writer).take());
        let thread = lock(&self.writer_thread).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Read-only connections, each used by one blocking task at a time.
struct Readers {
    idle: Arc<Mutex<Vec<Connection>>>,
    /// One permit per connection; closed when the store closes.
    permits: Arc<Semaphore>,
}

impl Readers {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.idle.clone();
        // The connection goes back inside the blocking task, so a request that is dropped while
        // its query runs (client gone) does not lose it.
        blocking(move || {
            let conn = lock(&idle).pop().ok_or(StoreError::Closed)?;
            let result = f(&conn);
            lock(&idle).push(conn);
            drop(permit);
            result
        })
        .await
    }

    fn close(&self) {
        self.permits.close();
        lock(&self.idle).clear();
    }
}

/// Runs `f` on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Thread(e.to_string()))?
}

/// A mutex whose holder panicked still guards valid data here (connections, a sender).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the writing connection, sets durability and creates the schema and the epoch.
fn open_writer(target: &Target) -> Result<Connection, StoreError> {
    let conn = target.open(true)?;
    // WAL: readers never block the writer nor the writer them. (In-memory databases say "memory".)
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // FULL: an acknowledged push survives power loss (the client drops its outbox row on ack);
    // in WAL mode this is one fsync of the log per commit, i.e. per group of pushes.
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    // Checkpoints run on a thread of their own (`run_checkpointer`), not inside a commit that
    // pushes are waiting for; this is only the backstop.
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}"
    ))?;
    conn.execute_batch(SCHEMA)?;
    migrate_replay_table(&conn)?;
    add_lineage_column(&conn)?;
    conn.execute(
        "INSERT INTO ferrosync_meta (key, value) VALUES ('epoch', ?1) ON CONFLICT DO NOTHING",
        [new_epoch()],
    )?;
    Ok(conn)
}

/// Rebuilds a `WITHOUT ROWID` replay table (see [`REPLAY_TABLE_SQL`]) as a rowid table, with
/// each record rewritten in the small form.
fn migrate_replay_table(conn: &Connection) -> Result<(), StoreError> {
    let sql: String = conn.query_row(REPLAY_TABLE_SQL, [], |r| r.get(0))?;
    if !sql.contains("WITHOUT ROWID") {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         ALTER TABLE ferrosync_client_pushes RENAME TO ferrosync_client_pushes_old;",
    )?;
    let migrated = (|| {
        conn.execute_batch(SCHEMA)?;
        let mut read = conn.prepare(
            "SELECT namespace, client_id, request_hash, reply FROM ferrosync_client_pushes_old",
        )?;
        let mut write = conn.prepare(
            "INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let reply: String = r.get(3)?;
            // An unreadable record only costs a retry its replay.
            let Ok(small) = decode_reply(&reply) else {
                continue;
            };
            write.execute(params![
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                encode_reply(&small)
            ])?;
        }
        drop(rows);
        conn.execute_batch("DROP TABLE ferrosync_client_pushes_old; COMMIT;")?;
        tracing::info!("replay table rebuilt as a rowid table");
        Ok::<_, StoreError>(())
    })();
    if migrated.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    migrated
}

/// Adds `ferrosync_docs.lineage` to a database created before it (every existing version then
/// stands alone: only later edits build lineages).
fn add_lineage_column(conn: &Connection) -> Result<(), StoreError> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('ferrosync_docs') WHERE name = 'lineage'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE ferrosync_docs ADD COLUMN lineage TEXT")?;
        tracing::info!("ferrosync_docs: lineage column added");
    }
    Ok(())
}

/// Copies the write-ahead log back into the database file every [`CHECKPOINT_EVERY`], until
/// `stop`'s sender is dropped. PASSIVE: it never blocks the writer or the readers (what readers
/// still use is copied next time), and commits stay durable by their own fsync of the log.
fn run_checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let started = Instant::now();
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((log, copied)) => tracing::debug!(
                log,
                copied,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "checkpoint"
            ),
            Err(e) => tracing::warn!(error = %e, "checkpoint failed; retrying later"),
        }
    }
}

/// The writer thread: applies whatever pushes have queued up as one transaction (group commit,
/// as the lanes do for PostgreSQL), until the queue is closed.
fn run_writer(mut conn: Connection, mut rx: mpsc::Receiver<Pending>, events: Events) {
    while let Some(first) = rx.blocking_recv() {
        let group = gather(first, || rx.try_recv().ok());
        let changes: usize = group.iter().map(|p| p.job.changes.len()).sum();
        let (jobs, replies): (Vec<Job>, Vec<_>) =
            group.into_iter().map(|p| (p.job, p.reply)).unzip();
        let started = Instant::now();
        let written = write_group(&mut conn, &jobs, &events);
        tracing::debug!(
            pushes = jobs.len(),
            changes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have gone away; the push stands (a retry replays it).
                    let _ = reply.send(outcome);
                }
            }
            Err(e) if jobs.len() > 1 => {
                // Don't let one push fail the others: apply each on its own.
                tracing::warn!(error = %e, pushes = jobs.len(), "group commit failed; retrying pushes one by one");
                for (job, reply) in jobs.iter().zip(replies) {
                    let single = write_group(&mut conn, std::slice::from_ref(job), &events)
                        .and_then(|mut o| o.pop().ok_or(StoreError::Closed)?);
                    let _ = reply.send(single);
                }
            }
            Err(e) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
}

/// Applies a group of pushes in one transaction, all or nothing, then announces the new heads.
fn write_group(
    conn: &mut Connection,
    jobs: &[Job],
    events: &Events,
) -> Result<Vec<Result<PushOutcome, StoreError>>, StoreError> {
    // Take the write lock up front: feed numbers are assigned under it, in commit order.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let loaded = load(&tx, jobs)?;
    let plan = plan_group(jobs, loaded);
    write(&tx, &plan)?;
    tx.commit()?;
    for (ns, head) in &plan.heads {
        events.publish(Notice {
            namespace: Some(Arc::from(ns.as_str())),
            head: *head,
        });
    }
    Ok(plan.outcomes)
}

/// Reads what a group of pushes touches, one prepared point lookup per key.
fn load(conn: &Connection, jobs: &[Job]) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    let mut head =
        conn.prepare_cached("SELECT head FROM ferrosync_namespaces WHERE namespace = ?1")?;
    let mut reply = conn.prepare_cached(
        "SELECT request_hash, reply FROM ferrosync_client_pushes WHERE namespace = ?1 AND client_id = ?2",
    )?;
    let mut doc = conn.prepare_cached(
        "SELECT hlc, deleted, doc, fields, lineage FROM ferrosync_docs \
         WHERE namespace = ?1 AND collection = ?2 AND id = ?3",
    )?;
    for job in jobs {
        let ns = &job.namespace;
        if !loaded.heads.contains_key(ns) {
            if let Some(h) = head.query_row([ns], |r| r.get::<_, i64>(0)).optional()? {
                loaded.heads.insert(ns.clone(), h as u64);
            }
        }
        if let Entry::Vacant(slot) = loaded.replies.entry((ns.clone(), job.client_id.clone())) {
            let found = reply
                .query_row([ns, &job.client_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .optional()?;
            if let Some((hash, text)) = found {
                slot.insert((hash, decode_reply(&text)?));
            }
        }
        for c in &job.changes {
            let found = doc
                .query_row(params![ns, c.collection, c.id], |r| {
                    Ok(Row {
                        collection: c.collection.clone(),
                        id: c.id.clone(),
                        hlc: r.get(0)?,
                        deleted: r.get(1)?,
                        doc: r.get(2)?,
                        fields: r.get(3)?,
                        lineage: r.get(4)?,
                    })
                })
                .optional()?;
            if let Some(row) = found {
                loaded.insert_current(ns.clone(), row.into_change()?);
            }
        }
    }
    Ok(loaded)
}

/// Writes a decided group: document rows, namespace heads, remembered replies.
fn write(conn: &Connection, plan: &GroupPlan<'_>) -> Result<(), StoreError> {
    let mut doc = conn.prepare_cached(
        "INSERT INTO ferrosync_docs (namespace, collection, id, hlc, client_id, deleted, doc, fields, seq, lineage) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (namespace, collection, id) DO UPDATE SET \
         hlc = excluded.hlc, client_id = excluded.client_id, deleted = excluded.deleted, \
         doc = excluded.doc, fields = excluded.fields, seq = excluded.seq, lineage = excluded.lineage",
    )?;
    for r in &plan.rows {
        let e = r.encoded;
        doc.execute(params![
            r.namespace,
            r.change.collection,
            r.change.id,
            e.hlc,
            r.client_id,
            r.change.deleted,
            e.doc,
            e.fields,
            r.seq as i64,
            r.lineage,
        ])?;
    }
    let mut head = conn.prepare_cached(
        "INSERT INTO ferrosync_namespaces (namespace, head) VALUES (?1, ?2) \
         ON CONFLICT (namespace) DO UPDATE SET head = excluded.head",
    )?;
    for (ns, h) in &plan.heads {
        head.execute(params![ns, *h as i64])?;
    }
    let mut reply = conn.prepare_cached(
        "INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (namespace, client_id) DO UPDATE SET \
         request_hash = excluded.request_hash, reply = excluded.reply",
    )?;
    for ((ns, client), hash, stored) in &plan.replies {
        reply.execute(params![ns, client, hash, encode_reply(stored)])?;
    }
    Ok(())
}

/// Up to `limit` changes with `seq > after`, in feed order, within `max_bytes` (see
/// [`crate::store::Store::pull_within`]). One read transaction: the page, the head and the count come
/// from the same snapshot.
fn pull(
    conn: &Connection,
    namespace: &str,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<PullPage, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let head: i64 = tx
        .prepare_cached("SELECT head FROM ferrosync_namespaces WHERE namespace = ?1")?
        .query_row([namespace], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut page = PageBuilder::new(after, limit, max_bytes);
    if let Some(at) = page.after() {
        let row = tx
            .prepare_cached(
                "SELECT collection, id, hlc FROM ferrosync_docs WHERE namespace = ?1 AND seq = ?2",
            )?
            .query_row(params![namespace, at as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        if let Some((collection, id, hlc)) = row {
            page.at_after(&collection, &id, &hlc);
        }
    }
    let mut stmt = tx.prepare_cached(
        "SELECT collection, id, hlc, deleted, doc, fields, seq FROM ferrosync_docs \
         WHERE namespace = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![namespace, after as i64, page.rows_to_read()])?;
    while let Some(r) = rows.next()? {
        // Sizes without reading the values (SQLite reads overflow pages only when asked).
        let size = |i: usize| {
            r.get_ref(i)
                .map(|v| v.as_bytes_or_null().map_or(0, |b| b.map_or(0, <[u8]>::len)))
        };
        if page.ends_before(size(4)? + size(5)?) {
            break;
        }
        // Borrowed from SQLite's row: nothing is copied before it is written out.
        let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        let opt = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_bytes_or_null()?));
        let change = StoredRef {
            collection: text(0)?,
            id: text(1)?,
            hlc: text(2)?,
            deleted: r.get(3)?,
            doc: opt(4)?,
            fields: opt(5)?,
        };
        page.push(namespace, r.get::<_, i64>(6)? as u64, &change)?;
    }
    drop(rows);
    drop(stmt);
    let counted = match page.count_after() {
        Some(position) => Some(
            tx.prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM ferrosync_docs WHERE namespace = ?1 AND seq > ?2 LIMIT ?3)",
            )?
            .query_row(
                params![namespace, position as i64, REMAINING_COUNT_CAP],
                |r| r.get(0),
            )?,
        ),
        None => None,
    };
    tx.commit()?;
    Ok(page.finish(head as u64, counted))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::rows::encode;
    use ferrosync_core::protocol::{Change, PushStatus};
    use ferrosync_core::Hlc;
    use serde_json::json;

    /// The layout this store used before documents moved to a rowid table.
    const OLD_DOCS: &str = "CREATE TABLE ferrosync_docs (
        namespace TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, hlc TEXT NOT NULL,
        client_id TEXT NOT NULL, deleted INTEGER NOT NULL, doc TEXT, fields TEXT,
        seq INTEGER NOT NULL, PRIMARY KEY (namespace, collection, id)) WITHOUT ROWID;";

    fn job(hash: &str, changes: Vec<Change>) -> Job {
        Job {
            namespace: "ns".into(),
            client_id: "c1".into(),
            hash: hash.into(),
            encoded: changes.iter().map(encode).collect(),
            changes,
            max_reply_bytes: usize::MAX,
        }
    }

    fn change(id: &str, wall: u64) -> Change {
        Change {
            collection: "t".into(),
            id: id.into(),
            hlc: Hlc::new(wall, 0, "c1").unwrap(),
            deleted: false,
            doc: Some(json!({"id": id, "w": wall}).into()),
            fields: None,
            base: None,
        }
    }

    async fn round_trip(path: &Path) {
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::open(&url, 4, Events::new(), DbTuning::default())
            .await
            .unwrap();
        let first = store
            .push(job("h1", vec![change("a", 10), change("b", 10)]))
            .await
            .unwrap();
        assert_eq!(first.head, 2);
        // A retry replays; an older write is stale and carries the current version.
        assert_eq!(
            store
                .push(job("h1", vec![change("a", 10), change("b", 10)]))
                .await
                .unwrap(),
            first
        );
        let stale = store.push(job("h2", vec![change("a", 5)])).await.unwrap();
        assert_eq!(stale.results[0].status, PushStatus::Stale);
        assert_eq!(stale.results[0].current, Some(change("a", 10)));
        store.push(job("h3", vec![change("a", 20)])).await.unwrap();

        let page = store.pull("ns", 0, 1, usize::MAX).await.unwrap();
        assert_eq!(
            (page.last_seq, page.has_more, page.head),
            (Some(2), true, 3)
        );
        assert_eq!(page.remaining, Some(1));
        let text = crate::wire::pull_reply(page.changes, "e:2", true, Some(1), 0, None);
        let reply: ferrosync_core::protocol::PullResponse = serde_json::from_slice(&text).unwrap();
        assert_eq!(reply.changes, vec![change("b", 10)]);
        let rest = store.pull("ns", 2, 10, usize::MAX).await.unwrap();
        assert_eq!((rest.last_seq, rest.has_more), (Some(3), false));
        lineage_round_trip(&store).await;
        store.close().await;
        // The writer closes last and removes the log: one file after a clean stop.
        assert!(!path.with_extension("db-wal").exists());
    }

    /// A lineage is written with a version and read back by the next push: c1's edit of `l`,
    /// applied (its reply lost) and replaced by c2's edit made on it, is answered `applied`.
    async fn lineage_round_trip(store: &SqliteStore) {
        let based = |mut c: Change, node: &str, base: u64, base_node: &str| {
            c.hlc = Hlc::new(c.hlc.wall_ms, 0, node).unwrap();
            c.base = Some(Hlc::new(base, 0, base_node).unwrap());
            c
        };
        store.push(job("l1", vec![change("l", 10)])).await.unwrap();
        let e1 = based(change("l", 11), "c1", 10, "c1");
        store.push(job("l2", vec![e1.clone()])).await.unwrap();
        let e2 = based(change("l", 12), "c2", 11, "c1");
        let by_c2 = Job {
            client_id: "c2".into(),
            ..job("l3", vec![e2.clone()])
        };
        store.push(by_c2).await.unwrap();
        let again = store
            .push(job("l4", vec![e1, change("m", 1)]))
            .await
            .unwrap();
        assert_eq!(again.results[0].status, PushStatus::Applied);
        let current = again.results[0].current.as_ref().unwrap();
        assert_eq!(current.hlc, e2.hlc);
    }

    /// How the documents table was created (which layout the file has).
    fn docs_table_sql(path: &std::path::Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'ferrosync_docs'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[tokio::test]
    async fn new_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        round_trip(&path).await;
        let sql = docs_table_sql(&path);
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    }

    #[tokio::test]
    async fn database_created_with_the_earlier_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(OLD_DOCS)
            .unwrap();
        round_trip(&path).await;
        let sql = docs_table_sql(&path);
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        assert!(
            sql.contains("lineage"),
            "the lineage column was added: {sql}"
        );
    }

    #[tokio::test]
    async fn in_memory() {
        let store = SqliteStore::open("sqlite::memory:", 2, Events::new(), DbTuning::default())
            .await
            .unwrap();
        store.push(job("h1", vec![change("a", 10)])).await.unwrap();
        assert_eq!(store.head("ns").await.unwrap(), 1);
        assert_eq!(
            store
                .pull("ns", 0, 10, usize::MAX)
                .await
                .unwrap()
                .changes
                .len(),
            1
        );
        store.close().await;
    }
}
