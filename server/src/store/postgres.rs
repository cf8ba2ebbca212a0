//! PostgreSQL storage, for several stateless server processes in front of one database.
//!
//! A sequence number taken inside a transaction can become visible after a later one, so a naive
//! `seq > cursor` reader could skip a change forever. Here each push (group) locks its namespaces'
//! head rows before numbering, so writers of one namespace run one after another and feed numbers
//! become visible in order, across any number of server processes. Text that is compared (HLCs, keys) uses `COLLATE "C"`:
//! byte order, as the HLC encoding requires (locale collations ignore `-`).
//! Notices travel between processes with NOTIFY, sent inside the push transaction, so they are
//! delivered on commit and in commit order.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::Row as _;
use tokio::sync::watch;

use super::error::StoreError;
use super::lanes::{GroupWriter, Lanes};
use super::page::{PageBuilder, REMAINING_COUNT_CAP};
use super::plan::{plan_group, GroupPlan, Job, Loaded};
use super::rows::{decode_reply, encode_reply, new_epoch, PullPage, PushOutcome, Row};
use super::settings::DbTuning;
use crate::events::{decode_payload, encode_payload, Events, Notice};
use crate::wire::StoredRef;

/// Compaction, the expiry floor and pool figures (operations; `store/postgres/ops.rs`).
mod ops;

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
-- Added after the first release: databases created before get it here (no rewrite: nullable).
ALTER TABLE ferrosync_docs ADD COLUMN IF NOT EXISTS lineage TEXT;
CREATE TABLE IF NOT EXISTS ferrosync_client_pushes (
    namespace    TEXT COLLATE "C" NOT NULL,
    client_id    TEXT COLLATE "C" NOT NULL,
    request_hash TEXT NOT NULL,
    reply        TEXT NOT NULL,
    PRIMARY KEY (namespace, client_id)
);
"#;

/// Advisory lock key held while creating the schema, so processes starting together don't race.
const MIGRATION_LOCK: i64 = 0x6665_7272_6f73_796e; // "ferrosyn"

pub struct PgStore {
    pool: PgPool,
    lanes: Lanes,
    epoch: String,
    channel: String,
    events: Events,
}

/// Applies groups of pushes; shared by the lanes.
struct PgWriter {
    pool: PgPool,
    channel: String,
}

impl PgStore {
    pub async fn open(
        url: &str,
        max_connections: u32,
        events: Events,
        tuning: DbTuning,
    ) -> Result<PgStore, StoreError> {
        use std::str::FromStr;
        let options = PgConnectOptions::from_str(url)?.options([
            ("lock_timeout", format!("{}ms", tuning.lock_timeout_ms)),
            (
                "statement_timeout",
                format!("{}ms", tuning.statement_timeout_ms),
            ),
            (
                "idle_in_transaction_session_timeout",
                format!("{}ms", tuning.idle_in_transaction_timeout_ms),
            ),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
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
        let channel = format!("ferrosync_{epoch}");
        let writer = Arc::new(PgWriter {
            pool: pool.clone(),
            channel: channel.clone(),
        });
        // A few lanes so that pushes to different namespaces commit in parallel, leaving most
        // connections to pulls and event streams.
        let lanes = (max_connections as usize / 4).clamp(1, 4);
        Ok(PgStore {
            lanes: Lanes::spawn(writer, lanes),
            pool,
            channel,
            epoch,
            events,
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
        max_bytes: usize,
    ) -> Result<PullPage, StoreError> {
        use futures::TryStreamExt;
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
        let mut page = PageBuilder::new(after, limit, max_bytes);
        if let Some(at) = page.after() {
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT collection, id, hlc FROM ferrosync_docs WHERE namespace = $1 AND seq = $2",
            )
            .bind(namespace)
            .bind(at as i64)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((collection, id, hlc)) = row {
                page.at_after(&collection, &id, &hlc);
            }
        }
        {
            // Row by row, so that a page of large documents is never all in memory twice.
            let mut rows = sqlx::query(
                "SELECT collection, id, hlc, deleted, doc, fields, seq FROM ferrosync_docs \
                 WHERE namespace = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(namespace)
            .bind(after as i64)
            .bind(page.rows_to_read())
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                let doc = r.try_get::<Option<&str>, _>(4)?.map(str::as_bytes);
                let fields = r.try_get::<Option<&str>, _>(5)?.map(str::as_bytes);
                if page.ends_before(doc.map_or(0, <[u8]>::len) + fields.map_or(0, <[u8]>::len)) {
                    break;
                }
                let change = StoredRef {
                    collection: r.try_get(0)?,
                    id: r.try_get(1)?,
                    hlc: r.try_get(2)?,
                    deleted: r.try_get(3)?,
                    doc,
                    fields,
                };
                page.push(namespace, r.try_get::<i64, _>(6)? as u64, &change)?;
            }
        }
        let counted = match page.count_after() {
            Some(position) => Some(
                sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT 1 FROM ferrosync_docs WHERE namespace = $1 AND seq > $2 LIMIT $3) t",
                )
                .bind(namespace)
                .bind(position as i64)
                .bind(REMAINING_COUNT_CAP)
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        tx.commit().await?;
        Ok(page.finish(head as u64, counted))
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

impl GroupWriter for PgWriter {
    async fn write_group(
        &self,
        jobs: &[Job],
        wait: bool,
    ) -> Result<Vec<Result<PushOutcome, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !wait {
            // Namespaces whose head row another transaction holds: their jobs leave the group
            // (the lane has them wait elsewhere), so one stuck namespace stalls only itself.
            let held = locked_elsewhere(&mut tx, jobs).await?;
            if !held.is_empty() {
                let ready: Vec<Job> = jobs
                    .iter()
                    .filter(|j| !held.contains(&j.namespace))
                    .cloned()
                    .collect();
                let mut decided = if ready.is_empty() {
                    Vec::new()
                } else {
                    let loaded = load(&mut tx, &ready).await?;
                    let plan = plan_group(&ready, loaded);
                    write(&mut tx, &plan, &self.channel).await?;
                    plan.outcomes
                }
                .into_iter();
                tx.commit().await?;
                return Ok(jobs
                    .iter()
                    .map(|j| {
                        if held.contains(&j.namespace) {
                            Err(StoreError::LockedElsewhere)
                        } else {
                            decided.next().unwrap_or(Err(StoreError::Closed))
                        }
                    })
                    .collect());
            }
        }
        let loaded = load(&mut tx, jobs).await?;
        let plan = plan_group(jobs, loaded);
        write(&mut tx, &plan, &self.channel).await?;
        tx.commit().await?;
        Ok(plan.outcomes)
    }
}

/// The namespaces of `jobs` whose head row exists and is locked by another transaction; the
/// others' rows are locked by this one from here on.
async fn locked_elsewhere(
    conn: &mut PgConnection,
    jobs: &[Job],
) -> Result<Vec<String>, StoreError> {
    let mut namespaces: Vec<&str> = jobs.iter().map(|j| j.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT namespace FROM ferrosync_namespaces WHERE namespace = ANY($1::text[])",
    )
    .bind(&namespaces)
    .fetch_all(&mut *conn)
    .await?;
    if existing.is_empty() {
        return Ok(existing);
    }
    let locked: Vec<String> = sqlx::query_scalar(
        "SELECT namespace FROM ferrosync_namespaces WHERE namespace = ANY($1::text[]) \
         ORDER BY namespace FOR UPDATE SKIP LOCKED",
    )
    .bind(&existing)
    .fetch_all(&mut *conn)
    .await?;
    Ok(existing
        .into_iter()
        .filter(|ns| !locked.contains(ns))
        .collect())
}

/// Locks the namespaces a group writes (in a fixed order, so groups never deadlock) and reads what
/// the group touches. A fixed number of statements per group, whatever its size.
async fn load(conn: &mut PgConnection, jobs: &[Job]) -> Result<Loaded, StoreError> {
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
    // Serialize each namespace's writers: the row lock is held until commit, and a waiter re-reads
    // the row after the holder commits, so it numbers after everything committed before it. The
    // no-op update takes the lock on existing rows; missing ones are created (and locked).
    let rows = sqlx::query(
        "INSERT INTO ferrosync_namespaces AS n (namespace, head) SELECT ns, 0 FROM UNNEST($1::text[]) AS u(ns) \
         ON CONFLICT (namespace) DO UPDATE SET head = n.head RETURNING namespace, head",
    )
    .bind(&namespaces)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        loaded
            .heads
            .insert(r.try_get(0)?, r.try_get::<i64, _>(1)? as u64);
    }
    let (cn, cc): (Vec<&str>, Vec<&str>) = clients.into_iter().unzip();
    let rows = sqlx::query(
        "SELECT p.namespace, p.client_id, p.request_hash, p.reply FROM ferrosync_client_pushes p \
         JOIN UNNEST($1::text[], $2::text[]) AS k(ns, client) \
           ON p.namespace = k.ns COLLATE \"C\" AND p.client_id = k.client COLLATE \"C\"",
    )
    .bind(&cn)
    .bind(&cc)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let reply: String = r.try_get(3)?;
        loaded.replies.insert(
            (r.try_get(0)?, r.try_get(1)?),
            (r.try_get(2)?, decode_reply(&reply)?),
        );
    }
    let mut dn = Vec::with_capacity(docs.len());
    let mut dc = Vec::with_capacity(docs.len());
    let mut di = Vec::with_capacity(docs.len());
    for (n, c, i) in docs {
        dn.push(n);
        dc.push(c);
        di.push(i);
    }
    let rows = sqlx::query(
        "SELECT d.namespace, d.collection, d.id, d.hlc, d.deleted, d.doc, d.fields, d.lineage FROM ferrosync_docs d \
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS k(ns, collection, id) \
           ON d.namespace = k.ns COLLATE \"C\" AND d.collection = k.collection COLLATE \"C\" \
          AND d.id = k.id COLLATE \"C\"",
    )
    .bind(&dn)
    .bind(&dc)
    .bind(&di)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let ns: String = r.try_get(0)?;
        let row = Row {
            collection: r.try_get(1)?,
            id: r.try_get(2)?,
            hlc: r.try_get(3)?,
            deleted: r.try_get(4)?,
            doc: r.try_get(5)?,
            fields: r.try_get(6)?,
            lineage: r.try_get(7)?,
        };
        loaded.insert_current(ns, row.into_change()?);
    }
    Ok(loaded)
}

/// Writes a decided group: document rows, then heads, replies and notices in one statement.
/// NOTIFY inside the transaction is delivered on commit, in commit order.
async fn write(
    conn: &mut PgConnection,
    plan: &GroupPlan<'_>,
    channel: &str,
) -> Result<(), StoreError> {
    let n = plan.rows.len();
    if n > 0 {
        let mut namespaces = Vec::with_capacity(n);
        let mut collections = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut hlcs = Vec::with_capacity(n);
        let mut clients = Vec::with_capacity(n);
        let mut deleted = Vec::with_capacity(n);
        let mut docs = Vec::with_capacity(n);
        let mut fields = Vec::with_capacity(n);
        let mut seqs = Vec::with_capacity(n);
        let mut lineages = Vec::with_capacity(n);
        for r in &plan.rows {
            let e = r.encoded;
            namespaces.push(r.namespace.as_str());
            collections.push(r.change.collection.as_str());
            ids.push(r.change.id.as_str());
            hlcs.push(e.hlc.as_str());
            clients.push(r.client_id.as_str());
            deleted.push(r.change.deleted);
            docs.push(e.doc.as_deref());
            fields.push(e.fields.as_deref());
            seqs.push(r.seq as i64);
            lineages.push(r.lineage.as_deref());
        }
        sqlx::query(
            "INSERT INTO ferrosync_docs (namespace, collection, id, hlc, client_id, deleted, doc, fields, seq, lineage) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], \
                                  $7::text[], $8::text[], $9::int8[], $10::text[]) \
             ON CONFLICT (namespace, collection, id) DO UPDATE SET \
             hlc = excluded.hlc, client_id = excluded.client_id, deleted = excluded.deleted, \
             doc = excluded.doc, fields = excluded.fields, seq = excluded.seq, lineage = excluded.lineage",
        )
        .bind(&namespaces)
        .bind(&collections)
        .bind(&ids)
        .bind(&hlcs)
        .bind(&clients)
        .bind(&deleted)
        .bind(&docs)
        .bind(&fields)
        .bind(&seqs)
        .bind(&lineages)
        .execute(&mut *conn)
        .await?;
    }
    let head_ns: Vec<&str> = plan.heads.iter().map(|(ns, _)| ns.as_str()).collect();
    let head_values: Vec<i64> = plan.heads.iter().map(|(_, h)| *h as i64).collect();
    let notices: Vec<String> = plan
        .heads
        .iter()
        .map(|(ns, h)| encode_payload(ns, *h))
        .collect();
    let mut rn = Vec::new();
    let mut rc = Vec::new();
    let mut rh = Vec::new();
    let mut rr = Vec::new();
    for ((ns, client), hash, stored) in &plan.replies {
        rn.push(ns.as_str());
        rc.push(client.as_str());
        rh.push(hash.as_str());
        rr.push(encode_reply(stored));
    }
    sqlx::query(
        "WITH h AS (UPDATE ferrosync_namespaces n SET head = u.head \
                    FROM UNNEST($1::text[], $2::int8[]) AS u(ns, head) WHERE n.namespace = u.ns COLLATE \"C\"), \
         p AS (INSERT INTO ferrosync_client_pushes (namespace, client_id, request_hash, reply) \
               SELECT * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[]) \
               ON CONFLICT (namespace, client_id) \
               DO UPDATE SET request_hash = excluded.request_hash, reply = excluded.reply) \
         SELECT pg_notify($7, x) FROM UNNEST($8::text[]) AS x",
    )
    .bind(&head_ns)
    .bind(&head_values)
    .bind(&rn)
    .bind(&rc)
    .bind(&rh)
    .bind(&rr)
    .bind(channel)
    .bind(&notices)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
