//! core's [`LocalStore`] over the browser store's IndexedDB database.
//!
//! Each method is one IndexedDB transaction (`local_store_tx.rs`, its requests issued through
//! rexie; what is done with the records read is in `local_store.js`). Records cross the boundary as
//! one JSON text per call, not field by field.
//!
//! Clock: the engine's [`SyncClock`] and the store's write clock are kept in step through `_meta`:
//! `load` restores the sync clock from the persisted `clock` (the last HLC any tab issued), and
//! `apply` persists what the sync clock observed, in the same transaction as the page, so local
//! writes made afterwards (in any tab) order after every remote version they saw. The offset to the
//! server's clock learnt from replies is handed to the store, which stamps writes with it.
//!
//! Wiped database (eviction, "clear site data"): the store reopens it empty, under a new
//! [`Store::lineage`]. Everything remembered here of the old one (the cursor, outbox positions,
//! rows awaiting an ack, a prefetched batch) is dropped at the first call that sees the new lineage,
//! and a write carrying a cursor read in another lineage is refused (`DATABASE_WIPED`) inside its
//! transaction: saved in the new database, that cursor would skip every document before it for
//! good. The next sync reads no cursor there, so it pulls everything from the start.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use ferrosync_core::hlc::{HlcClock, DEFAULT_MAX_DRIFT_MS};
use ferrosync_core::protocol::Change;
use ferrosync_core::sync::{
    ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange, PendingKind, Pushed,
    StoreOp, SyncClock,
};
use ferrosync_core::Hlc;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::local_store_tx::{self, ApplyMeta, OutboxPos};
use super::read_ahead::ReadAhead;
use crate::error::{Error, Result};
use crate::store::indexeddb::{dom_error, Tx};
use crate::store::layout::{sync_keys, CLOCK, META};
use crate::store::records::{self, SyncedRecord};
use crate::store::schema::collection_stores;
use crate::store::{Conn, Store};

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

/// An outbox row handed to the engine this pass, in outbox order, until the watermark passes it.
#[derive(Debug)]
struct Outstanding {
    id: String,
    hlc: Hlc,
    pend: String,
    /// Acknowledged by the server, or settled by the engine (the record was rewritten: it is no
    /// longer at this place in the outbox).
    handled: bool,
}

#[derive(Deserialize)]
struct LoadedDoc {
    change: Change,
    pending: Option<String>,
}

#[derive(Deserialize)]
struct Loaded {
    clock: Option<String>,
    docs: Vec<Option<LoadedDoc>>,
}

/// The sync engine's view of one `Database`'s IndexedDB store.
pub struct IdbLocal {
    store: Store,
    clock: SyncClock,
    /// Test hook: how far this device's clock is off (`sync.clockSkewMs`); 0 in real use.
    skew_ms: f64,
    /// The saved cursor, once read (the scheduler compares event-stream cursors with it).
    cursor: RefCell<Option<Option<String>>>,
    /// The next push batch, read while the current one is on the wire.
    prefetch: ReadAhead<BatchKey, Batch>,
    /// The last row `pending` returned, to continue after it (`pend` is not in the engine's key).
    last_read: RefCell<Option<(DocKey, String)>>,
    /// Per collection, the rows handed to the engine this sync and not yet acknowledged, in outbox
    /// order: a watermark may move only over a leading run of acknowledged rows.
    outstanding: RefCell<BTreeMap<String, VecDeque<Outstanding>>>,
    /// The sync clock's rewinds already handed to the store (see [`IdbLocal::take_rewind`]).
    rewinds_seen: Cell<u64>,
    /// The [`Store::lineage`] everything remembered above was read in (see the module doc).
    lineage: Cell<u64>,
    /// The lineage of the database the cursor last handed to the engine was read in: the engine
    /// carries it (and the cursors of the pages it pulls from there) into `apply`.
    cursor_lineage: Cell<u64>,
}

impl IdbLocal {
    /// `skew_ms` pretends the device clock is off by that much (tests of clock correction).
    pub fn new(store: Store, skew_ms: f64) -> Result<IdbLocal> {
        let hlc = HlcClock::new(store.client_id().to_string(), DEFAULT_MAX_DRIFT_MS)
            .map_err(|e| Error::storage("DataError", format!("client id: {e}")))?;
        let clock = SyncClock::new(hlc, move || (js_sys::Date::now() + skew_ms).max(0.0) as u64);
        store.set_clock_offset(skew_ms);
        Ok(IdbLocal {
            clock,
            skew_ms,
            cursor: RefCell::new(None),
            prefetch: ReadAhead::new(),
            last_read: RefCell::new(None),
            outstanding: RefCell::new(BTreeMap::new()),
            rewinds_seen: Cell::new(0),
            lineage: Cell::new(store.lineage()),
            cursor_lineage: Cell::new(store.lineage()),
            store,
        })
    }

    /// Moves to `lineage` (a store call ran there), dropping what was remembered of an older
    /// database. False when `lineage` is older than the one known: that call read a database
    /// that is gone since, and its result must not be used.
    fn follow_lineage(&self, lineage: u64) -> bool {
        let known = self.lineage.get();
        if lineage > known {
            self.lineage.set(lineage);
            *self.cursor.borrow_mut() = None;
            self.outstanding.borrow_mut().clear();
            *self.last_read.borrow_mut() = None;
            self.prefetch.clear();
        }
        lineage >= known
    }

    /// Inside a write transaction on `conn`: refuses to save `cursor` into a database other than
    /// the one the engine's cursor was read in. An empty cursor (read from the start) is a
    /// position in no database, and safe in any.
    fn check_cursor(&self, conn: &Conn, cursor: Option<&str>) -> Result<()> {
        self.follow_lineage(conn.lineage());
        match cursor {
            Some(c) if !c.is_empty() && conn.lineage() != self.cursor_lineage.get() => {
                Err(Error::DatabaseWiped(self.store.name().to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Whether the engine wound the sync clock back (after `CLOCK_AHEAD`) since the last write:
    /// then the store's write clock is wound back with it, and the next write persists the clock
    /// as it is instead of keeping the higher stored one, so later writes in this tab and after a
    /// reload are stamped sanely too.
    fn take_rewind(&self) -> bool {
        let n = self.clock.rewinds();
        if n == self.rewinds_seen.replace(n) {
            return false;
        }
        self.store.rewind_clock(&self.clock.last());
        true
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cursor as last read or written (`None` when not known yet).
    pub fn known_cursor(&self) -> Option<Option<String>> {
        self.cursor.borrow().clone()
    }

    /// The offset to the server's clock learnt by the syncing instance (another tab): a follower
    /// stamps its writes with it, not with the one stored when it opened.
    pub fn adopt_offset(&self, offset_ms: i64) {
        self.clock.set_offset_ms(offset_ms);
        self.share_offset();
    }

    /// The offset to the server's clock, as this instance knows it.
    pub fn offset_ms(&self) -> i64 {
        self.clock.offset_ms()
    }

    /// Hands the offset to the server's clock (learnt by the engine) to the store's write clock.
    fn share_offset(&self) {
        self.store
            .set_clock_offset(self.skew_ms + self.clock.offset_ms() as f64);
    }

    async fn tx<T, F, Fut>(&self, stores: Stores<'_>, write: bool, op: F) -> Result<T>
    where
        F: Fn(Conn, Rc<Tx>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        run_tx(&self.store, stores, write, op).await
    }

    /// Reads sync's `_meta` values at open: restores the clock offset, returns `lastSyncAt`.
    pub async fn restore(&self) -> Result<Option<u64>> {
        let wanted = [
            sync_keys::CURSOR,
            sync_keys::CLOCK_OFFSET,
            sync_keys::LAST_SYNC_AT,
        ];
        let (values, lineage) = self
            .tx(Stores::Fixed(&[META]), false, |conn, tx| async move {
                Ok((
                    local_store_tx::read_meta(&tx, &wanted).await?,
                    conn.lineage(),
                ))
            })
            .await?;
        self.follow_lineage(lineage);
        self.cursor_lineage.set(lineage);
        let [cursor, offset, last]: [Option<JsValue>; 3] = values
            .try_into()
            .map_err(|_| Error::storage("DataError", "reading sync state"))?;
        if let Some(off) = offset.and_then(|v| v.as_f64()) {
            if off.is_finite() {
                self.clock.set_offset_ms(off as i64);
                self.share_offset();
            }
        }
        *self.cursor.borrow_mut() = Some(cursor.and_then(|v| v.as_string()));
        Ok(last.and_then(|v| v.as_f64()).map(|t| t as u64))
    }

    /// After a successful sync: when it ended, and the clock offset (survives a reload).
    pub async fn save_sync_end(&self, at_ms: u64) -> Result<()> {
        let offset = self.clock.offset_ms() as f64;
        self.tx(Stores::Fixed(&[META]), true, |_, tx| async move {
            let values = [
                (sync_keys::LAST_SYNC_AT, JsValue::from_f64(at_ms as f64)),
                (sync_keys::CLOCK_OFFSET, JsValue::from_f64(offset)),
            ];
            local_store_tx::write_meta(&tx, &values).await
        })
        .await
    }

    /// Local changes the server has not acknowledged (pending records).
    pub async fn pending_count(&self) -> Result<u64> {
        pending_count(&self.store).await
    }

    /// Marks outstanding rows as handled: `(key, hlc)` of each acknowledged or settled version.
    fn handled<'a>(&self, versions: impl Iterator<Item = (&'a DocKey, &'a Hlc)>) {
        let mut outstanding = self.outstanding.borrow_mut();
        for (key, hlc) in versions {
            if let Some(rows) = outstanding.get_mut(&key.collection) {
                if let Some(row) = rows.iter_mut().find(|r| r.id == key.id && &r.hlc == hlc) {
                    row.handled = true;
                }
            }
        }
    }

    /// Moves each collection's watermark over the leading run of handled rows. A row the server
    /// answered stale and the engine has not settled (yet) stops it there; the rows after it stay
    /// pending and go again next pass, where the server answers a repeated version as applied.
    async fn advance_marks(&self) -> Result<()> {
        let mut marks = Vec::new();
        for (collection, rows) in self.outstanding.borrow_mut().iter_mut() {
            let mut mark = None;
            while rows.front().is_some_and(|r| r.handled) {
                mark = rows.pop_front();
            }
            if let Some(m) = mark {
                marks.push((collection.clone(), m.pend, m.id));
            }
        }
        if marks.is_empty() {
            return Ok(());
        }
        // The transaction is created (and its first request issued) before this returns, and
        // IndexedDB runs transactions over overlapping stores (`_meta`) in creation order, so every
        // later read of the outbox (the next batch, a count, a pulled page) sees the new marks. Its
        // commit is not awaited: the next batch goes out meanwhile. Should it fail, the rows stay
        // pending and are pushed again (the server answers a repeated version as applied).
        let conn = self.store.conn().await?;
        if conn.lineage() != self.lineage.get() {
            // Positions in a database that was wiped since: they mean nothing in the new one.
            self.follow_lineage(conn.lineage());
            return Ok(());
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
        Ok(())
    }

    /// The records (with index projections) of every `Put`, keyed by op position.
    /// `load_docs`'s JSON as the engine's local versions; restores the persisted clock first, so
    /// decisions are stamped after everything this database ever wrote.
    fn local_docs(&self, text: &str) -> Result<Vec<Option<LocalDoc>>> {
        let loaded: Loaded = parse(text, "documents")?;
        if let Some(clock) = loaded.clock.as_deref().and_then(|c| c.parse::<Hlc>().ok()) {
            self.clock.restore(&clock);
        }
        Ok(loaded
            .docs
            .into_iter()
            .map(|d| {
                d.map(|d| LocalDoc {
                    change: d.change,
                    pending: match d.pending.as_deref() {
                        None => None,
                        Some("resync") => Some(PendingKind::Resync),
                        Some(_) => Some(PendingKind::Edit),
                    },
                })
            })
            .collect())
    }

    /// What a write of decisions saves in `_meta` besides the records: `cursor`, and the clock as
    /// the engine left it (taking a pending rewind, see [`IdbLocal::take_rewind`]).
    fn apply_meta(&self, cursor: Option<&str>) -> ApplyMeta {
        ApplyMeta {
            cursor: cursor.map(str::to_string),
            clock: self.clock.last().encode(),
            rewound: self.take_rewind(),
        }
    }

    /// Writes `ops` (and `meta`) in `tx`: `false`, with the transaction rolled back, when an op's
    /// precondition failed. `found`: the records already read in `tx`, if any (else read here).
    async fn write_ops(
        &self,
        conn: &Conn,
        tx: &Tx,
        ops: &[StoreOp],
        known: &[String],
        meta: &ApplyMeta,
        found: Option<js_sys::Map>,
    ) -> Result<bool> {
        let (keys, text) = self.build_ops(conn, ops, known)?;
        let ops_js = js_sys::JSON::parse(&text).map_err(|e| dom_error(&e))?;
        let written = local_store_tx::apply_ops(tx, &keys, &ops_js, meta, found).await?;
        if !written {
            tx.roll_back().await;
        }
        Ok(written)
    }

    /// After `ops` (and `cursor`) committed: the cached cursor, the outbox bookkeeping, and one
    /// live-query notice per collection.
    async fn applied(&self, ops: &[StoreOp], cursor: Option<&str>) -> Result<()> {
        if let Some(c) = cursor {
            *self.cursor.borrow_mut() = Some(Some(c.to_string()));
        }
        // A settled version was rewritten (or unmarked): its old place in the outbox is gone.
        // Except a pending version re-stamped lower (after `CLOCK_AHEAD`): its new place is
        // below the old one, so the watermark must not pass the old one.
        let settled: Vec<(DocKey, Hlc)> = ops
            .iter()
            .filter(|op| {
                !matches!(op, StoreOp::Put { change, pending: true, expect: Some(e) } if change.hlc < *e)
            })
            .filter_map(|op| op.expect().map(|h| (op.key(), h.clone())))
            .collect();
        self.handled(settled.iter().map(|(k, h)| (k, h)));
        self.advance_marks().await?;
        // One live-query notice per collection per committed call (so per pulled page), with the
        // new versions, so live queries the page cannot touch are not run again.
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
        Ok(())
    }

    /// The ops of `apply_ops` as one JSON text (see `planApply` in `local_store.js`), and the key of
    /// each. Serialized once, straight from the engine's ops: documents are borrowed, not copied
    /// into a second tree (that copy and its drop were a tenth of a first sync's WASM time).
    fn build_ops<'a>(
        &self,
        conn: &Conn,
        ops: &'a [StoreOp],
        known: &[String],
    ) -> Result<(Vec<(&'a str, &'a str)>, String)> {
        let mut keys = Vec::with_capacity(ops.len());
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
            keys.push((collection, id));
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
                // Behind every row now in the outbox: a fresh stamp of this client's clock.
                StoreOp::Requeue { .. } => (None, "requeue", Some(self.clock.tick())),
            };
            out.push(OpOut {
                c: collection,
                id,
                expect: op.expect(),
                record,
                outbox,
                pend,
            });
        }
        let text = serde_json::to_string(&out)
            .map_err(|e| Error::storage("DataError", format!("encoding records: {e}")))?;
        Ok((keys, text))
    }
}

/// One op of `planApply` (`local_store.js`): `expect` is the HLC the stored record must have (`null`:
/// none), `outbox` "put" (the record is pending), "ack" (acknowledged) or "requeue" (pending
/// at the new place `pend`).
#[derive(Serialize)]
struct OpOut<'a> {
    c: &'a str,
    id: &'a str,
    expect: Option<&'a Hlc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<SyncedRecord<'a>>,
    outbox: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pend: Option<Hlc>,
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
) -> Result<(Vec<PendingRow>, u64)> {
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
    Ok((parse(&text, "outbox")?, lineage))
}

/// The outbox batch a read ahead was started for: after this key, this many rows.
type BatchKey = (DocKey, usize);
/// A batch read ahead: its rows and the lineage of the database they were read in.
type Batch = Result<(Vec<PendingRow>, u64)>;

/// Which object stores a transaction spans.
enum Stores<'a> {
    Fixed(&'a [&'a str]),
    /// Every collection store in the database, plus these (`_meta` alone when there are none).
    AllCollectionsAnd(&'a [&'a str]),
}

impl LocalStore for IdbLocal {
    type Error = Error;

    fn clock(&self) -> &SyncClock {
        &self.clock
    }

    /// Reads a batch; when it is full, starts reading the next one at once, so that IndexedDB
    /// works while this batch is on the wire (the engine asks for batches in key order). A
    /// prefetched batch is an earlier snapshot: a document edited since is pushed in its older
    /// version, its record has the newer HLC (so the ack leaves it pending), and it goes next sync.
    async fn pending(&self, after: Option<&DocKey>, limit: usize) -> Result<Vec<PendingChange>> {
        self.follow_lineage(self.store.lineage());
        let from = match after {
            None => {
                // A new pass over the outbox: nothing handed out before is waiting for an ack.
                self.outstanding.borrow_mut().clear();
                OutboxPos::Start
            }
            Some(k) => match &*self.last_read.borrow() {
                Some((last, pend)) if last == k => {
                    OutboxPos::After(k.collection.clone(), pend.clone(), k.id.clone())
                }
                // Not a row this store handed out: the rest of that collection waits for the next
                // pass (never re-read what may not be acknowledged yet).
                _ => OutboxPos::NextCollection(k.collection.clone()),
            },
        };
        let hit = match after {
            Some(k) => self.prefetch.take(&(k.clone(), limit)).await,
            None => {
                self.prefetch.clear();
                None
            }
        };
        let read = match hit {
            Some(Ok(read)) => read,
            _ => read_batch(&self.store, &from, limit).await?,
        };
        let rows = match read {
            (rows, lineage) if self.follow_lineage(lineage) => rows,
            // Prefetched from a database wiped since: read the new one.
            _ => {
                let (rows, lineage) = read_batch(&self.store, &from, limit).await?;
                self.follow_lineage(lineage);
                rows
            }
        };
        if let Some(last) = rows.last() {
            let key = DocKey::of(&last.change);
            *self.last_read.borrow_mut() = Some((key.clone(), last.pend.clone()));
            if rows.len() >= limit {
                let next =
                    OutboxPos::After(key.collection.clone(), last.pend.clone(), key.id.clone());
                let store = self.store.clone();
                self.prefetch.start((key, limit), async move {
                    read_batch(&store, &next, limit).await
                });
            }
        }
        let mut outstanding = self.outstanding.borrow_mut();
        Ok(rows
            .into_iter()
            .map(|r| {
                outstanding
                    .entry(r.change.collection.clone())
                    .or_default()
                    .push_back(Outstanding {
                        id: r.change.id.clone(),
                        hlc: r.change.hlc.clone(),
                        pend: r.pend,
                        handled: false,
                    });
                PendingChange {
                    change: r.change,
                    kind: if r.resync {
                        PendingKind::Resync
                    } else {
                        PendingKind::Edit
                    },
                }
            })
            .collect())
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<()> {
        self.share_offset();
        self.handled(acked.iter().map(|a| (&a.key, &a.hlc)));
        self.advance_marks().await
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>> {
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
        self.local_docs(&text)
    }

    async fn apply(&self, ops: &[StoreOp], cursor: Option<&str>) -> Result<ApplyOutcome> {
        self.share_offset();
        let meta = &self.apply_meta(cursor);
        let committed = self
            .tx(
                Stores::AllCollectionsAnd(&[META]),
                true,
                |conn, tx| async move {
                    self.check_cursor(&conn, cursor)?;
                    let known = collection_stores(&conn.db);
                    self.write_ops(&conn, &tx, ops, &known, meta, None).await
                },
            )
            .await?;
        if !committed {
            return Ok(ApplyOutcome::Conflict);
        }
        self.applied(ops, cursor).await?;
        Ok(ApplyOutcome::Committed)
    }

    /// One write transaction: read, decide (synchronous Rust, nothing foreign awaited, so the
    /// transaction stays open), write. Saves the apply's second read and cannot be raced.
    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome> {
        self.share_offset();
        let decide = &RefCell::new(decide);
        let written = self
            .tx(
                Stores::AllCollectionsAnd(&[META]),
                true,
                |conn, tx| async move {
                    self.check_cursor(&conn, cursor)?;
                    let known = collection_stores(&conn.db);
                    let (text, found) = local_store_tx::load_docs(&tx, keys, &known).await?;
                    let loaded = self.local_docs(&text)?;
                    let Some(ops) = (*decide.borrow_mut())(&loaded) else {
                        tx.roll_back().await;
                        return Ok(None);
                    };
                    if ops.is_empty() && cursor.is_none() {
                        return Ok(Some(ops));
                    }
                    let meta = self.apply_meta(cursor);
                    let written = self
                        .write_ops(&conn, &tx, &ops, &known, &meta, Some(found))
                        .await?;
                    Ok(written.then_some(ops))
                },
            )
            .await?;
        match written {
            None => Ok(ApplyOutcome::Conflict),
            Some(ops) => {
                if !ops.is_empty() || cursor.is_some() {
                    self.applied(&ops, cursor).await?;
                }
                Ok(ApplyOutcome::Committed)
            }
        }
    }

    async fn cursor(&self) -> Result<Option<String>> {
        self.follow_lineage(self.store.lineage());
        if let Some(c) = self.cursor.borrow().clone() {
            self.cursor_lineage.set(self.lineage.get());
            return Ok(c);
        }
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
        self.follow_lineage(lineage);
        *self.cursor.borrow_mut() = Some(c.clone());
        self.cursor_lineage.set(lineage);
        Ok(c)
    }

    async fn reset_for_resync(&self) -> Result<()> {
        // The outbox is rebuilt: nothing read before (positions, a prefetched batch) holds.
        self.outstanding.borrow_mut().clear();
        *self.last_read.borrow_mut() = None;
        self.prefetch.clear();
        // Stamped after everything any tab wrote: the stored clock first.
        let stored = self
            .tx(Stores::Fixed(&[META]), false, |_, tx| async move {
                local_store_tx::read_meta(&tx, &[CLOCK]).await
            })
            .await?;
        if let Some(clock) = stored
            .into_iter()
            .next()
            .flatten()
            .and_then(|v| v.as_string())
            .and_then(|c| c.parse::<Hlc>().ok())
        {
            self.clock.restore(&clock);
        }
        let stamp = self.clock.tick().encode();
        let stamp = &stamp;
        let lineage = self
            .tx(
                Stores::AllCollectionsAnd(&[META]),
                true,
                |conn, tx| async move {
                    local_store_tx::queue_resync(&tx, &collection_stores(&conn.db), stamp).await?;
                    Ok(conn.lineage())
                },
            )
            .await?;
        self.follow_lineage(lineage);
        *self.cursor.borrow_mut() = Some(None);
        self.cursor_lineage.set(lineage);
        Ok(())
    }
}
