//! The store operations sync runs, each ONE IndexedDB transaction whose requests go through rexie
//! (`Tx`, see `indexeddb.rs`): the outbox read in batches, watermarks moved, documents loaded and
//! the engine's decisions written with the cursor and the clock, the resync queue, sync's `_meta`
//! values. What is done with the records read is in `sync_records.js` (documents stay JavaScript
//! objects, and a batch crosses into WASM as one JSON text); the record layout is this module's and
//! `records.rs`'s, so sync (`src/sync/local_store.rs`) names no store, index or field. The
//! bookkeeping around them (positions, watermarks, read-ahead, preconditions, the clock rule) is
//! core's `OutboxStore`.
//!
//! A transaction's code awaits only its own requests (rexie issue 36), and issues every request it
//! can at once (`join!`, `indexeddb::join_requests`): a request costs far more than a record, which is also why
//! batches are read with range requests where they can be (`read_many`, one `getAll` per push batch
//! on a collection's `$pending` index).

// IndexedDB orders string keys by UTF-16 code units, which is not Rust's order (UTF-8 bytes).
use ferrosync_core::by_name::ByName;
use ferrosync_core::query::cmp_str;
use ferrosync_core::sync::outbox::{clock_to_persist, Mark, OutboxPos};
use ferrosync_core::sync::DocKey;
use ferrosync_core::Hlc;
use js_sys::{Array, Map};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use ferrosync_core::protocol::Change;
use ferrosync_core::sync::outbox::{Loaded, OutboxRow, Plan};
use ferrosync_core::sync::{LocalDoc, PendingKind, StoreOp};
use serde::{Deserialize, Serialize};

use super::indexeddb::{self, dom_error, from_rexie, join_requests, Tx};
use super::layout::{sync_keys, watermark_key, CLOCK, META, PENDING, PLACE};
use super::outbox::watermark;
use super::records::{self, SyncedRecord};
use super::schema::collection_stores;
use super::{Conn, Store};
use crate::error::{Error, Result};

#[wasm_bindgen(module = "/src/store/sync_records.js")]
extern "C" {
    #[wasm_bindgen(js_name = markAdvances)]
    fn mark_advances(mark: &JsValue, current: &JsValue) -> bool;
    #[wasm_bindgen(js_name = pendingRows)]
    fn pending_rows(out: &Array, collection: &str, records: &Array, own: &str);
    #[wasm_bindgen(catch, js_name = toJson)]
    fn to_json(v: &JsValue) -> std::result::Result<String, JsValue>;
    #[wasm_bindgen(js_name = byId)]
    fn by_id(records: &Array) -> Map;
    #[wasm_bindgen(catch, js_name = loadedJson)]
    fn loaded_json(
        clock: &JsValue,
        place: &JsValue,
        keys: &JsValue,
        found: &Map,
        marks: &Map,
        own: &str,
    ) -> std::result::Result<String, JsValue>;
    #[wasm_bindgen(js_name = planApply)]
    fn plan_apply(ops: &JsValue, found: &Map) -> JsValue;
    #[wasm_bindgen(js_name = resyncRecords)]
    fn resync_records(records: &Array, mark: &JsValue, stamp: &str) -> Array;
}

fn json_text(v: std::result::Result<String, JsValue>) -> Result<String> {
    v.map_err(|e| crate::store::indexeddb::dom_error(&e))
}

/// The watermarks of `collections` (`undefined` where there is none), in that order.
async fn read_marks(meta: &rexie::Store, collections: &[String]) -> Result<Vec<JsValue>> {
    let marks = join_requests(collections.iter().map(|c| watermark(meta, c))).await?;
    Ok(marks
        .into_iter()
        .map(|m| m.unwrap_or(JsValue::UNDEFINED))
        .collect())
}

/// The records of `ids` in `st`, as a JS `Map` id -> record: one `getAll` over the ids' key range
/// when it holds at most twice as many records as wanted (`count` first), else one `get` per id.
/// An empty range (every page of a first sync) is read no further: a round trip saved per page.
async fn read_many(st: &rexie::Store, ids: &[&str]) -> Result<Map> {
    if ids.len() >= 4 {
        let lo = ids.iter().min_by(|a, b| cmp_str(a, b));
        let hi = ids.iter().max_by(|a, b| cmp_str(a, b));
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let (lo, hi) = (JsValue::from_str(lo), JsValue::from_str(hi));
            let range =
                indexeddb::key_range(Some((lo, false)), Some((hi, false))).map(indexeddb::range)?;
            let n = from_rexie(st.count(range.clone()).await)? as usize;
            if n == 0 {
                return Ok(Map::new());
            }
            if n <= 2 * ids.len() {
                let all: Array = from_rexie(st.get_all(range, None).await)?
                    .into_iter()
                    .collect();
                return Ok(by_id(&all));
            }
        }
    }
    let found: Array = join_requests(ids.iter().map(|id| st.get(JsValue::from_str(id))))
        .await?
        .into_iter()
        .flatten()
        .collect();
    Ok(by_id(&found))
}

/// Up to `limit` pending records in outbox order (collection, then `[pend, id]`), as JSON text of
/// `[{ change, resync, pend }]`. `tx` spans `collections` and `_meta`; `own` is the client id.
async fn read_pending(
    tx: &Tx,
    own: &str,
    mut collections: Vec<String>,
    from: &OutboxPos,
    limit: u32,
) -> Result<String> {
    ferrosync_core::sort::sort_by(&mut collections, |a, b| cmp_str(a, b));
    let collections = from.collections(&collections);
    let marks = read_marks(&tx.store(META)?, collections).await?;
    let out = Array::new();
    // One collection after another, each read issued when the previous one is in.
    for (collection, mark) in collections.iter().zip(marks) {
        let left = limit.saturating_sub(out.length());
        if left == 0 {
            break;
        }
        let from_key: JsValue = match from {
            OutboxPos::After {
                collection: c,
                pend,
                id,
            } if c == collection => {
                Array::of2(&JsValue::from_str(pend), &JsValue::from_str(id)).into()
            }
            _ => mark,
        };
        let range = if from_key.is_undefined() {
            None
        } else {
            indexeddb::key_range(Some((from_key, true)), None).map(indexeddb::range)?
        };
        let index = from_rexie(tx.store(collection)?.index(PENDING))?;
        let records: Array = from_rexie(index.get_all(range, Some(left)).await)?
            .into_iter()
            .collect();
        pending_rows(&out, collection, &records, own);
    }
    json_text(to_json(&out))
}

/// Moves watermarks forward: each of `marks` is the last record of an acknowledged run of its
/// collection's outbox. A mark never moves back.
async fn advance_marks(tx: &Tx, marks: &[Mark]) -> Result<()> {
    let meta = tx.store(META)?;
    let collections: Vec<String> = marks.iter().map(|m| m.collection.clone()).collect();
    let current = read_marks(&meta, &collections).await?;
    let mut puts = Vec::new();
    for (
        Mark {
            collection,
            pend,
            id,
        },
        current,
    ) in marks.iter().zip(current)
    {
        let mark: JsValue = Array::of2(&JsValue::from_str(pend), &JsValue::from_str(id)).into();
        if mark_advances(&mark, &current) {
            puts.push((mark, JsValue::from_str(&watermark_key(collection))));
        }
    }
    join_requests(puts.iter().map(|(mark, key)| meta.put(mark, Some(key)))).await?;
    Ok(())
}

/// Ids grouped by collection, in the order each collection first appears.
type Groups<'a> = ByName<Vec<&'a str>>;

/// Groups ids by collection, keeping only `known` collections (all when `None`).
fn group<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
    known: Option<&[String]>,
) -> Groups<'a> {
    let mut groups: Groups<'a> = ByName::new();
    for (c, id) in keys {
        if known.is_none_or(|known| known.iter().any(|k| k == c)) {
            groups.entry_or_default(c).push(id);
        }
    }
    groups
}

/// Reads the records of each group: a JS `Map` collection -> (Map id -> record), and how many
/// records were found.
async fn read_groups(tx: &Tx, groups: &Groups<'_>) -> Result<(Map, u32)> {
    let stores = groups
        .iter()
        .map(|(c, _)| tx.store(c))
        .collect::<Result<Vec<_>>>()?;
    let found = join_requests(
        stores
            .iter()
            .zip(groups)
            .map(|(st, (_, ids))| read_many(st, ids)),
    )
    .await?;
    let out = Map::new();
    let mut n = 0;
    for ((c, _), m) in groups.iter().zip(found) {
        n += m.size();
        out.set(&JsValue::from_str(c), &m);
    }
    Ok((out, n))
}

/// The local versions of `keys` (collection, id) with their outbox state, and the persisted clock
/// and place floor; and the records read (collection -> (id -> record)), for `apply_ops` in the
/// same transaction. Records found cross as JSON text of
/// `{ clock, place, docs: [{ change, pending: null | "edit" | "resync" } | null] }`; when none
/// is (a first sync, a page of new documents) nothing crosses.
async fn load_docs(tx: &Tx, own: &str, keys: &[DocKey], known: &[String]) -> Result<(Loaded, Map)> {
    let groups = group(
        keys.iter().map(|k| (k.collection.as_str(), k.id.as_str())),
        Some(known),
    );
    let collections: Vec<String> = groups.iter().map(|(c, _)| c.to_string()).collect();
    let meta = tx.store(META)?;
    let (stamps, marks, found) = futures::join!(
        super::meta::read_stamp_values(&meta),
        read_marks(&meta, &collections),
        read_groups(tx, &groups)
    );
    let (clock, place) = stamps?;
    let (found, n) = found?;
    let marks = marks?;
    if n == 0 {
        let stamp = |v: &JsValue| v.as_string().and_then(|c| c.parse::<Hlc>().ok());
        let loaded = Loaded {
            clock: stamp(&clock),
            place: stamp(&place),
            docs: keys.iter().map(|_| None).collect(),
        };
        return Ok((loaded, found));
    }
    let marks_map = Map::new();
    for (c, m) in collections.iter().zip(marks) {
        if !m.is_undefined() {
            marks_map.set(&JsValue::from_str(c), &m);
        }
    }
    let keys_js: Array = keys
        .iter()
        .map(|k| Array::of2(&JsValue::from_str(&k.collection), &JsValue::from_str(&k.id)))
        .collect();
    let text = json_text(loaded_json(
        &clock, &place, &keys_js, &found, &marks_map, own,
    ))?;
    Ok((loaded(&text)?, found))
}

/// Writes the engine's ops planned in this transaction (`ops_js`, see `planApply` in
/// sync_records.js) over the records `load_docs` read (`found`), with `cursor` and `stamps` (the
/// clock and the place floor; None: the persisted one stays) in `_meta`. The preconditions were
/// checked by core against what `load_docs` read in this same transaction.
async fn apply_ops(
    conn: &Conn,
    tx: &Tx,
    ops_js: &JsValue,
    found: &Map,
    cursor: Option<&str>,
    stamps: &[(&str, Option<&Hlc>)],
) -> Result<()> {
    let meta_st = tx.store(META)?;
    let plan: Array = plan_apply(ops_js, found).unchecked_into();
    let mut stores = Vec::new();
    for entry in plan.iter() {
        let entry: Array = entry.unchecked_into();
        let collection = entry.get(0).as_string().unwrap_or_default();
        let records: Array = entry.get(1).unchecked_into();
        let indexes = conn.schema.indexes(&collection);
        if !indexes.is_empty() {
            records::add_projections(&records, &records::index_paths(indexes));
        }
        stores.push((tx.store(&collection)?, records));
    }
    let mut meta_puts: Vec<(JsValue, JsValue)> = Vec::new();
    if let Some(c) = cursor {
        meta_puts.push((JsValue::from_str(c), JsValue::from_str(sync_keys::CURSOR)));
    }
    for (key, value) in stamps {
        if let Some(v) = value {
            meta_puts.push((JsValue::from_str(&v.encode()), JsValue::from_str(key)));
        }
    }
    let records = join_requests(
        stores
            .iter()
            .map(|(st, records)| st.put_all(records.iter().map(|r| (r, None)))),
    );
    let metas = join_requests(meta_puts.iter().map(|(v, k)| meta_st.put(v, Some(k))));
    let (records, metas) = futures::join!(records, metas);
    records?;
    metas?;
    Ok(())
}

/// Server reset: forgets the cursor, marks every record that is not pending as a "resync" in the
/// outbox at `stamp` (persisted as the clock too, if ahead), and drops the watermarks, so what the
/// new server database lacks is pushed again. Returns how many records were queued.
async fn queue_resync(tx: &Tx, own: &str, collections: &[String], stamp: &Hlc) -> Result<u32> {
    let stamp_text = stamp.stored(own);
    let stamp_str = stamp_text.as_str();
    let meta = tx.store(META)?;
    let (cleared, clock, marks) = futures::join!(
        meta.delete(JsValue::from_str(sync_keys::CURSOR)),
        meta.get(CLOCK.into()),
        read_marks(&meta, collections)
    );
    from_rexie(cleared)?;
    let marks = marks?;
    let persisted = from_rexie(clock)?
        .and_then(|c| c.as_string())
        .and_then(|c| c.parse::<Hlc>().ok());
    // Touched: the rows are queued at `stamp`, which a local writer's bound may be above.
    if let Some(clock) = clock_to_persist(persisted.as_ref(), stamp, false, true) {
        from_rexie(
            meta.put(&JsValue::from_str(&clock.encode()), Some(&CLOCK.into()))
                .await,
        )?;
    }
    let stores = collections
        .iter()
        .map(|c| tx.store(c))
        .collect::<Result<Vec<_>>>()?;
    let queued = join_requests(stores.iter().zip(marks).zip(collections).map(
        |((st, mark), collection)| {
            let meta = &meta;
            async move {
                let key = JsValue::from_str(&watermark_key(collection));
                let (deleted, all) = futures::join!(meta.delete(key), st.get_all(None, None));
                deleted?;
                let all: Array = all?.into_iter().collect();
                let records = resync_records(&all, &mark, stamp_str);
                let n = records.length();
                st.put_all(records.iter().map(|r| (r, None))).await?;
                Ok::<u32, rexie::Error>(n)
            }
        },
    ))
    .await?;
    Ok(queued.into_iter().sum())
}

/// `_meta` values of `keys`, in that order (`None` where absent).
async fn read_meta(tx: &Tx, keys: &[&str]) -> Result<Vec<Option<JsValue>>> {
    let meta = tx.store(META)?;
    join_requests(keys.iter().map(|k| meta.get(JsValue::from_str(k)))).await
}

/// Writes `_meta` values.
async fn write_meta(tx: &Tx, values: &[(&str, JsValue)]) -> Result<()> {
    let meta = tx.store(META)?;
    let keys: Vec<JsValue> = values.iter().map(|(k, _)| JsValue::from_str(k)).collect();
    join_requests(
        values
            .iter()
            .zip(&keys)
            .map(|((_, v), k)| meta.put(v, Some(k))),
    )
    .await?;
    Ok(())
}

/// Parses JSON text produced by `sync_records.js`; anything else is a storage error (a corrupt record).
fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::storage(
            "DataError",
            format!("{what}: stored record unreadable: {e}"),
        )
    })
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
    place: Option<String>,
    docs: Vec<Option<LoadedDoc>>,
}

/// `load_docs`'s JSON as core's [`Loaded`].
fn loaded(text: &str) -> Result<Loaded> {
    let loaded: LoadedText = parse(text, "documents")?;
    Ok(Loaded {
        clock: loaded.clock.as_deref().and_then(|c| c.parse::<Hlc>().ok()),
        place: loaded.place.as_deref().and_then(|c| c.parse::<Hlc>().ok()),
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

/// Sync's `_meta` values read at open.
pub struct SyncState {
    pub cursor: Option<String>,
    /// Offset of the server's clock to this device's (ms), as last saved.
    pub offset_ms: Option<f64>,
    pub last_sync_at: Option<u64>,
    /// The lineage they were read in.
    pub lineage: u64,
}

/// Sync's `_meta` values (one read transaction).
pub async fn read_sync_state(store: &Store) -> Result<SyncState> {
    let wanted = [
        sync_keys::CURSOR,
        sync_keys::CLOCK_OFFSET,
        sync_keys::LAST_SYNC_AT,
    ];
    let (values, lineage) = run_tx(
        store,
        Stores::Fixed(&[META]),
        false,
        |conn, tx| async move { Ok((read_meta(&tx, &wanted).await?, conn.lineage())) },
    )
    .await?;
    let [cursor, offset, last]: [Option<JsValue>; 3] = values
        .try_into()
        .map_err(|_| Error::storage("DataError", "reading sync state"))?;
    Ok(SyncState {
        cursor: cursor.and_then(|v| v.as_string()),
        offset_ms: offset.and_then(|v| v.as_f64()).filter(|o| o.is_finite()),
        last_sync_at: last.and_then(|v| v.as_f64()).map(|t| t as u64),
        lineage,
    })
}

/// After a successful sync: when it ended, and the clock offset (survives a reload).
pub async fn save_sync_end(store: &Store, at_ms: u64, offset_ms: f64) -> Result<()> {
    run_tx(store, Stores::Fixed(&[META]), true, |_, tx| async move {
        let values = [
            (sync_keys::LAST_SYNC_AT, JsValue::from_f64(at_ms as f64)),
            (sync_keys::CLOCK_OFFSET, JsValue::from_f64(offset_ms)),
        ];
        write_meta(&tx, &values).await
    })
    .await
}

/// Moves watermarks forward in `lineage` (see `advance_marks`). The transaction is created (and its
/// first request issued) before this returns, and IndexedDB runs transactions over overlapping
/// stores (`_meta`) in creation order, so every later read of the outbox (the next batch, a count, a
/// pulled page) sees the new marks. Its commit is not awaited: the next batch goes out meanwhile.
/// Should it fail, the rows stay pending and are pushed again (the server answers a repeated
/// version as applied). Returns the open database's lineage (another: nothing written).
pub async fn save_marks(store: &Store, lineage: u64, marks: Vec<Mark>) -> Result<u64> {
    let conn = store.conn().await?;
    if conn.lineage() != lineage {
        return Ok(conn.lineage());
    }
    let tx = Tx::write(&conn.db, &[META])?;
    crate::env::spawn(async move {
        let work = advance_marks(&tx, &marks).await;
        if let Err(e) = tx.finish(work).await {
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "ferrosync: acknowledging pushed changes failed (they will be pushed again): {e}"
            )));
        }
    });
    Ok(lineage)
}

/// The local versions of `keys` and the persisted clock (one read transaction).
pub async fn load(store: &Store, keys: &[DocKey]) -> Result<Loaded> {
    run_tx(
        store,
        Stores::AllCollectionsAnd(&[META]),
        false,
        |conn, tx| async move {
            let known = collection_stores(&conn.db);
            Ok(load_docs(&tx, store.client_id(), keys, &known).await?.0)
        },
    )
    .await
}

/// One write transaction: reads `keys` and the clock, lets `plan` decide, writes its ops (records
/// with their index projections), cursor and clock; `plan` saying None rolls back.
pub async fn write<'a>(
    store: &Store,
    keys: &[DocKey],
    plan: &mut Plan<'_, 'a, Error>,
) -> Result<Option<Cow<'a, [StoreOp]>>> {
    let plan = &RefCell::new(plan);
    run_tx(
        store,
        Stores::AllCollectionsAnd(&[META]),
        true,
        |conn, tx| async move {
            let known = collection_stores(&conn.db);
            let (loaded, found) = load_docs(&tx, store.client_id(), keys, &known).await?;
            let Some(planned) = (*plan.borrow_mut())(conn.lineage(), loaded)? else {
                tx.roll_back().await;
                return Ok(None);
            };
            let text = ops_text(store.client_id(), &planned.ops, &planned.places, &known)?;
            let ops_js = js_sys::JSON::parse(&text).map_err(|e| dom_error(&e))?;
            let stamps = [
                (CLOCK, planned.clock.as_ref()),
                (PLACE, planned.place.as_ref()),
            ];
            apply_ops(&conn, &tx, &ops_js, &found, planned.cursor, &stamps).await?;
            Ok(Some(planned.ops))
        },
    )
    .await
}

/// The saved pull cursor and the lineage it was read in.
pub async fn read_cursor(store: &Store) -> Result<(Option<String>, u64)> {
    let (values, lineage) = run_tx(
        store,
        Stores::Fixed(&[META]),
        false,
        |conn, tx| async move { Ok((read_meta(&tx, &[sync_keys::CURSOR]).await?, conn.lineage())) },
    )
    .await?;
    let c = values
        .into_iter()
        .next()
        .flatten()
        .and_then(|v| v.as_string());
    Ok((c, lineage))
}

/// The persisted clock (a bound at or above every HLC any tab issued).
pub async fn stored_clock(store: &Store) -> Result<Option<Hlc>> {
    let stored = run_tx(store, Stores::Fixed(&[META]), false, |_, tx| async move {
        read_meta(&tx, &[CLOCK]).await
    })
    .await?;
    Ok(stored
        .into_iter()
        .next()
        .flatten()
        .and_then(|v| v.as_string())
        .and_then(|c| c.parse::<Hlc>().ok()))
}

/// Server reset (see `queue_resync`); returns the lineage written in.
pub async fn resync(store: &Store, stamp: &Hlc) -> Result<u64> {
    run_tx(
        store,
        Stores::AllCollectionsAnd(&[META]),
        true,
        |conn, tx| async move {
            queue_resync(&tx, store.client_id(), &collection_stores(&conn.db), stamp).await?;
            Ok(conn.lineage())
        },
    )
    .await
}

/// One batch of the outbox from `from` (one read transaction), and the lineage it was read in.
pub async fn read_outbox(
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
            let own = store.client_id();
            let text = read_pending(&tx, own, collection_stores(&conn.db), from, limit).await?;
            Ok((text, conn.lineage()))
        },
    )
    .await?;
    let rows: Vec<PendingRow> = parse(&text, "outbox")?;
    Ok((rows.into_iter().map(PendingRow::row).collect(), lineage))
}

/// The ops as one JSON text for `planApply` (`sync_records.js`). Serialized once, straight from
/// the engine's ops: a pulled document is named by its slot (it is held in JavaScript, see
/// `store::held`), any other is the JSON text it was read or made as, written out as it is (index
/// keys are computed in JavaScript, by the same `projection` local writes use). Ops on collections
/// the database does not have are left out.
fn ops_text(
    own: &str,
    ops: &[StoreOp],
    places: &[Option<Hlc>],
    known: &[String],
) -> Result<String> {
    let mut out = Vec::with_capacity(ops.len());
    for (op, place) in ops.iter().zip(places) {
        let (collection, id) = match op {
            StoreOp::Put { change, .. } => (change.collection.as_str(), change.id.as_str()),
            StoreOp::Unpend { key, .. } | StoreOp::Requeue { key, .. } => {
                (key.collection.as_str(), key.id.as_str())
            }
        };
        if !known.iter().any(|k| k == collection) {
            continue;
        }
        let (record, held, outbox, pend) = match op {
            StoreOp::Put {
                change, pending, ..
            } => {
                let (record, held) = SyncedRecord::of(change, own);
                (
                    Some(record),
                    held,
                    if *pending { "put" } else { "ack" },
                    place.as_ref(),
                )
            }
            StoreOp::Unpend { .. } => (None, None, "ack", None),
            StoreOp::Requeue { .. } => (None, None, "requeue", place.as_ref()),
        };
        out.push(OpOut {
            c: collection,
            id,
            record,
            held,
            outbox,
            pend: pend.map(|p| p.stored(own)),
        });
    }
    serde_json::to_string(&out)
        .map_err(|e| Error::storage("DataError", format!("encoding records: {e}")))
}

/// One op of `planApply` (`sync_records.js`): `outbox` "put" (the record is pending at `pend`),
/// "ack" (acknowledged) or "requeue" (pending at the new place `pend`).
#[derive(Serialize)]
struct OpOut<'a> {
    c: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<SyncedRecord<'a>>,
    /// The slot of the record's document, held in JavaScript (`store::held`).
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<u32>,
    outbox: &'static str,
    /// Its place, as records store it (`Hlc::stored`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pend: Option<String>,
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
            let fut = open_tx(&conn, &stores, write).map(|tx| (op(conn.clone(), tx.clone()), tx));
            async move {
                let (fut, tx) = fut?;
                let work = fut.await;
                tx.finish(work).await
            }
        })
        .await
}

/// The transaction of `run_tx` (not generic: one copy for every operation).
#[inline(never)]
fn open_tx(conn: &Conn, stores: &Stores<'_>, write: bool) -> Result<Rc<Tx>> {
    let names: Vec<String> = match stores {
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
    if write {
        Tx::write(&conn.db, &refs)
    } else {
        Tx::read(&conn.db, &refs)
    }
    .map(Rc::new)
}

/// Which object stores a transaction spans.
enum Stores<'a> {
    Fixed(&'a [&'a str]),
    /// Every collection store in the database, plus these (`_meta` alone when there are none).
    AllCollectionsAnd(&'a [&'a str]),
}
