//! core's outbox store ([`OutboxStore`]) over the browser store's IndexedDB database: this module
//! only implements [`OutboxStorage`], one IndexedDB transaction per method (`local_store_tx.rs`
//! issues its requests through rexie; what is done with the records read is in `local_store.js`).
//! Records cross the boundary as one JSON text per call, not field by field. The bookkeeping
//! (positions, watermarks, rows awaiting an ack, the batch read ahead, the wiped-database rule and
//! how the clock is persisted) is core's, and runs natively in the fault simulation too.
//!
//! Besides, sync's own `_meta` values: the cursor, offset and last sync time restored at open.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ferrosync_core::hlc::{HlcClock, DEFAULT_MAX_DRIFT_MS};
use ferrosync_core::protocol::Change;
use ferrosync_core::sync::outbox::{
    Loaded, Mark, OutboxPos, OutboxRow, OutboxStorage, OutboxStore, Plan,
};
use ferrosync_core::sync::{DocKey, LocalDoc, LocalStore, PendingKind, StoreOp, SyncClock};
use ferrosync_core::Hlc;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::local_store_tx;
use super::read_ahead::spawn;
use crate::error::{Error, Result};
use crate::store::indexeddb::{dom_error, Tx};
use crate::store::layout::{sync_keys, CLOCK, META};
use crate::store::records::{self, SyncedRecord};
use crate::store::schema::collection_stores;
use crate::store::{Conn, Store};

/// The sync engine's store over one `Database`'s IndexedDB database.
pub type IdbLocal = OutboxStore<IdbTables>;

/// Parses JSON text produced by `local_store.js`; anything else is a storage error (a corrupt record).
fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::storage(
            "DataError",
            format!("{what}: stored record unreadable: {e}"),
        )
    })
}

/// Pending records of `store`: local changes the server has not acknowledged (the store counts its
/// outbox; see `store/outbox.rs`).
pub async fn pending_count(store: &Store) -> Result<u64> {
    store.check_open()?;
    Ok(u64::from(store.outbox_len().await?))
}

#[derive(Deserialize)]
struct PendingRow {
    change: Change,
    resync: bool,
    /// The record's place in its collection's outbox (with its id).
    pend: String,
}

impl PendingRow {
    fn row(self) -> OutboxRow {
        OutboxRow {
            change: self.change,
            kind: kind(self.resync),
            pend: self.pend,
        }
    }
}

fn kind(resync: bool) -> PendingKind {
    if resync {
        PendingKind::Resync
    } else {
        PendingKind::Edit
    }
}

#[derive(Deserialize)]
struct LoadedDoc {
    change: Change,
    pending: Option<String>,
}

#[derive(Deserialize)]
struct LoadedText {
    clock: Option<String>,
    docs: Vec<Option<LoadedDoc>>,
}

/// `load_docs`'s JSON as core's [`Loaded`].
fn loaded(text: &str) -> Result<Loaded> {
    let loaded: LoadedText = parse(text, "documents")?;
    Ok(Loaded {
        clock: loaded.clock.as_deref().and_then(|c| c.parse::<Hlc>().ok()),
        docs: loaded
            .docs
            .into_iter()
            .map(|d| {
                d.map(|d| LocalDoc {
                    change: d.change,
                    pending: d.pending.map(|p| kind(p == "resync")),
                })
            })
            .collect(),
    })
}

/// The IndexedDB side of [`IdbLocal`].
pub struct IdbTables {
    store: Store,
    /// Test hook: how far this device's clock is off (`sync.clockSkewMs`); 0 in real use.
    skew_ms: f64,
}

/// The sync engine's store over `store`. `skew_ms` pretends the device clock is off by that much
/// (tests of clock correction).
pub fn open(store: Store, skew_ms: f64) -> Result<IdbLocal> {
    let hlc = HlcClock::new(store.client_id().to_string(), DEFAULT_MAX_DRIFT_MS)
        .map_err(|e| Error::storage("DataError", format!("client id: {e}")))?;
    let clock = SyncClock::new(hlc, move || (js_sys::Date::now() + skew_ms).max(0.0) as u64);
    store.set_clock_offset(skew_ms);
    Ok(OutboxStore::new(IdbTables { store, skew_ms }, clock))
}

/// Sync's `_meta` values around the engine's store.
#[allow(async_fn_in_trait)]
pub trait SyncMeta {
    /// Reads sync's `_meta` values at open: the cursor, the clock offset; returns `lastSyncAt`.
    async fn restore(&self) -> Result<Option<u64>>;
    /// After a successful sync: when it ended, and the clock offset (survives a reload).
    async fn save_sync_end(&self, at_ms: u64) -> Result<()>;
    /// Local changes the server has not acknowledged (pending records).
    async fn pending_count(&self) -> Result<u64>;
    /// The offset to the server's clock, as this instance knows it.
    fn offset_ms(&self) -> i64;
}

impl SyncMeta for IdbLocal {
    async fn restore(&self) -> Result<Option<u64>> {
        let wanted = [
            sync_keys::CURSOR,
            sync_keys::CLOCK_OFFSET,
            sync_keys::LAST_SYNC_AT,
        ];
        let tables = self.storage();
        let (values, lineage) = tables
            .tx(Stores::Fixed(&[META]), false, |conn, tx| async move {
                Ok((
                    local_store_tx::read_meta(&tx, &wanted).await?,
                    conn.lineage(),
                ))
            })
            .await?;
        let [cursor, offset, last]: [Option<JsValue>; 3] = values
            .try_into()
            .map_err(|_| Error::storage("DataError", "reading sync state"))?;
        if let Some(off) = offset.and_then(|v| v.as_f64()) {
            if off.is_finite() {
                self.adopt_offset(off as i64);
            }
        }
        self.remember_cursor(cursor.and_then(|v| v.as_string()), lineage);
        Ok(last.and_then(|v| v.as_f64()).map(|t| t as u64))
    }

    async fn save_sync_end(&self, at_ms: u64) -> Result<()> {
        let offset = self.clock().offset_ms() as f64;
        self.storage()
            .tx(Stores::Fixed(&[META]), true, |_, tx| async move {
                let values = [
                    (sync_keys::LAST_SYNC_AT, JsValue::from_f64(at_ms as f64)),
                    (sync_keys::CLOCK_OFFSET, JsValue::from_f64(offset)),
                ];
                local_store_tx::write_meta(&tx, &values).await
            })
            .await
    }

    async fn pending_count(&self) -> Result<u64> {
        pending_count(&self.storage().store).await
    }

    fn offset_ms(&self) -> i64 {
        self.clock().offset_ms()
    }
}

impl IdbTables {
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn tx<T, F, Fut>(&self, stores: Stores<'_>, write: bool, op: F) -> Result<T>
    where
        F: Fn(Conn, Rc<Tx>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        run_tx(&self.store, stores, write, op).await
    }

    /// The ops as one JSON text for `planApply` (`local_store.js`). Serialized once, straight from
    /// the engine's ops: documents are borrowed, not copied into a second tree (that copy and its
    /// drop were a tenth of a first sync's WASM time). Ops on collections the database does not
    /// have are left out.
    fn ops_text(
        &self,
        conn: &Conn,
        ops: &[StoreOp],
        requeue_at: Option<&Hlc>,
        known: &[String],
    ) -> Result<String> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let (collection, id) = match op {
                StoreOp::Put { change, .. } => (change.collection.as_str(), change.id.as_str()),
                StoreOp::Unpend { key, .. } | StoreOp::Requeue { key, .. } => {
                    (key.collection.as_str(), key.id.as_str())
                }
            };
            if !known.iter().any(|k| k == collection) {
                continue;
            }
            let (record, outbox, pend) = match op {
                StoreOp::Put {
                    change, pending, ..
                } => {
                    let ix = match (&change.doc, change.deleted) {
                        (Some(doc), false) => {
                            records::projection_value(doc, conn.schema.indexes(collection))
                        }
                        _ => None,
                    };
                    let record = SyncedRecord::of(change, ix);
                    (Some(record), if *pending { "put" } else { "ack" }, None)
                }
                StoreOp::Unpend { .. } => (None, "ack", None),
                StoreOp::Requeue { .. } => (None, "requeue", requeue_at),
            };
            out.push(OpOut {
                c: collection,
                id,
                record,
                outbox,
                pend,
            });
        }
        serde_json::to_string(&out)
            .map_err(|e| Error::storage("DataError", format!("encoding records: {e}")))
    }
}

/// One op of `planApply` (`local_store.js`): `outbox` "put" (the record is pending), "ack"
/// (acknowledged) or "requeue" (pending at the new place `pend`).
#[derive(Serialize)]
struct OpOut<'a> {
    c: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<SyncedRecord<'a>>,
    outbox: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pend: Option<&'a Hlc>,
}

/// Runs `op` in one transaction over `stores` (reopening the connection once if the browser
/// closed it: the store's `run`).
async fn run_tx<T, F, Fut>(store: &Store, stores: Stores<'_>, write: bool, op: F) -> Result<T>
where
    F: Fn(Conn, Rc<Tx>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    store
        .run(|conn| {
            let names: Vec<String> = match &stores {
                Stores::Fixed(list) => list.iter().map(|s| s.to_string()).collect(),
                Stores::AllCollectionsAnd(list) => {
                    let mut v = collection_stores(&conn.db);
                    v.extend(list.iter().map(|s| s.to_string()));
                    if v.is_empty() {
                        // A transaction needs a store; over `_meta` it reads nothing here.
                        v.push(META.to_string());
                    }
                    v
                }
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let tx = if write {
                Tx::write(&conn.db, &refs)
            } else {
                Tx::read(&conn.db, &refs)
            }
            .map(Rc::new);
            let fut = tx.map(|tx| (op(conn.clone(), tx.clone()), tx));
            async move {
                let (fut, tx) = fut?;
                let work = fut.await;
                tx.finish(work).await
            }
        })
        .await
}

/// One batch of the outbox from `from` (one read transaction), and the lineage it was read in.
async fn read_batch(
    store: &Store,
    from: &OutboxPos,
    limit: usize,
) -> Result<(Vec<OutboxRow>, u64)> {
    let limit = limit.min(u32::MAX as usize) as u32;
    let (text, lineage) = run_tx(
        store,
        Stores::AllCollectionsAnd(&[META]),
        false,
        |conn, tx| async move {
            let text =
                local_store_tx::read_pending(&tx, collection_stores(&conn.db), from, limit).await?;
            Ok((text, conn.lineage()))
        },
    )
    .await?;
    let rows: Vec<PendingRow> = parse(&text, "outbox")?;
    Ok((rows.into_iter().map(PendingRow::row).collect(), lineage))
}

/// A batch being read in its own task.
pub type IdbBatch = oneshot::Receiver<Result<(Vec<OutboxRow>, u64)>>;

/// Which object stores a transaction spans.
enum Stores<'a> {
    Fixed(&'a [&'a str]),
    /// Every collection store in the database, plus these (`_meta` alone when there are none).
    AllCollectionsAnd(&'a [&'a str]),
}

impl OutboxStorage for IdbTables {
    type Error = Error;
    type Batch = IdbBatch;

    fn lineage(&self) -> u64 {
        self.store.lineage()
    }

    fn wiped(&self) -> Error {
        Error::DatabaseWiped(self.store.name().to_string())
    }

    fn start_batch(&self, from: OutboxPos, limit: usize) -> IdbBatch {
        let store = self.store.clone();
        spawn(async move { read_batch(&store, &from, limit).await })
    }

    async fn batch(&self, batch: IdbBatch) -> Result<(Vec<OutboxRow>, u64)> {
        batch
            .await
            .map_err(|_| Error::storage("AbortError", "reading the outbox was cancelled"))?
    }

    async fn save_marks(&self, lineage: u64, marks: Vec<Mark>) -> Result<u64> {
        // The transaction is created (and its first request issued) before this returns, and
        // IndexedDB runs transactions over overlapping stores (`_meta`) in creation order, so every
        // later read of the outbox (the next batch, a count, a pulled page) sees the new marks. Its
        // commit is not awaited: the next batch goes out meanwhile. Should it fail, the rows stay
        // pending and are pushed again (the server answers a repeated version as applied).
        let conn = self.store.conn().await?;
        if conn.lineage() != lineage {
            return Ok(conn.lineage());
        }
        let tx = Tx::write(&conn.db, &[META])?;
        wasm_bindgen_futures::spawn_local(async move {
            let work = local_store_tx::advance_marks(&tx, &marks).await;
            if let Err(e) = tx.finish(work).await {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "ferrosync: acknowledging pushed changes failed (they will be pushed again): {e}"
                )));
            }
        });
        Ok(lineage)
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Loaded> {
        let text = self
            .tx(
                Stores::AllCollectionsAnd(&[META]),
                false,
                |conn, tx| async move {
                    let known = collection_stores(&conn.db);
                    Ok(local_store_tx::load_docs(&tx, keys, &known).await?.0)
                },
            )
            .await?;
        loaded(&text)
    }

    async fn write<'a>(
        &self,
        keys: &[DocKey],
        plan: &mut Plan<'_, 'a, Error>,
    ) -> Result<Option<Cow<'a, [StoreOp]>>> {
        let plan = &RefCell::new(plan);
        self.tx(
            Stores::AllCollectionsAnd(&[META]),
            true,
            |conn, tx| async move {
                let known = collection_stores(&conn.db);
                let (text, found) = local_store_tx::load_docs(&tx, keys, &known).await?;
                let Some(planned) = (*plan.borrow_mut())(conn.lineage(), loaded(&text)?)? else {
                    tx.roll_back().await;
                    return Ok(None);
                };
                let text =
                    self.ops_text(&conn, &planned.ops, planned.requeue_at.as_ref(), &known)?;
                let ops_js = js_sys::JSON::parse(&text).map_err(|e| dom_error(&e))?;
                local_store_tx::apply_ops(
                    &tx,
                    &ops_js,
                    &found,
                    planned.cursor,
                    planned.clock.as_ref(),
                )
                .await?;
                Ok(Some(planned.ops))
            },
        )
        .await
    }

    async fn read_cursor(&self) -> Result<(Option<String>, u64)> {
        let (values, lineage) = self
            .tx(Stores::Fixed(&[META]), false, |conn, tx| async move {
                Ok((
                    local_store_tx::read_meta(&tx, &[sync_keys::CURSOR]).await?,
                    conn.lineage(),
                ))
            })
            .await?;
        let c = values
            .into_iter()
            .next()
            .flatten()
            .and_then(|v| v.as_string());
        Ok((c, lineage))
    }

    async fn stored_clock(&self) -> Result<Option<Hlc>> {
        let stored = self
            .tx(Stores::Fixed(&[META]), false, |_, tx| async move {
                local_store_tx::read_meta(&tx, &[CLOCK]).await
            })
            .await?;
        Ok(stored
            .into_iter()
            .next()
            .flatten()
            .and_then(|v| v.as_string())
            .and_then(|c| c.parse::<Hlc>().ok()))
    }

    async fn queue_resync(&self, stamp: &Hlc) -> Result<u64> {
        self.tx(
            Stores::AllCollectionsAnd(&[META]),
            true,
            |conn, tx| async move {
                local_store_tx::queue_resync(&tx, &collection_stores(&conn.db), stamp).await?;
                Ok(conn.lineage())
            },
        )
        .await
    }

    /// One live-query notice per collection per committed call (so per pulled page), with the
    /// new versions, so live queries the page cannot touch are not run again.
    fn committed(&self, ops: &[StoreOp]) {
        type Changed<'a> = (Vec<String>, Vec<Option<&'a Value>>);
        let mut changed: BTreeMap<&str, Changed> = BTreeMap::new();
        for op in ops {
            if let StoreOp::Put { change, .. } = op {
                let (ids, values) = changed.entry(&change.collection).or_default();
                ids.push(change.id.clone());
                values.push(change.doc.as_ref().filter(|_| !change.deleted));
            }
        }
        for (collection, (ids, values)) in changed {
            self.store.notify_pulled(collection, ids, &values);
        }
    }

    fn share_offset(&self, offset_ms: i64) {
        self.store.set_clock_offset(self.skew_ms + offset_ms as f64);
    }

    fn rewind_clock(&self, to: &Hlc) {
        self.store.rewind_clock(to);
    }
}
