//! The sync engine's IndexedDB transactions, their requests issued through rexie (`Tx`, see
//! `store/indexeddb.rs`); what is done with the records read is in `local_store.js` (documents stay
//! JavaScript objects, and a batch crosses into WASM as one JSON text).
//!
//! A transaction's code awaits only its own requests (rexie issue 36), and issues every request it
//! can at once (`join!`, `indexeddb::join_requests`): a request costs far more than a record, which is also why
//! batches are read with range requests where they can be (`read_many`, one `getAll` per push batch
//! on a collection's `$pending` index).

use std::collections::BTreeMap;

// IndexedDB orders string keys by UTF-16 code units, which is not Rust's order (UTF-8 bytes).
use ferrosync_core::query::cmp_str;
use ferrosync_core::sync::outbox::{persist_clock, Mark, OutboxPos};
use ferrosync_core::sync::DocKey;
use ferrosync_core::Hlc;
use js_sys::{Array, Map};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::Result;
use crate::store::indexeddb::{self, from_rexie, join_requests, Tx};
use crate::store::layout::{sync_keys, watermark_key, CLOCK, META, PENDING};
use crate::store::outbox::watermark;

#[wasm_bindgen(module = "/src/sync/local_store.js")]
extern "C" {
    #[wasm_bindgen(js_name = markAdvances)]
    fn mark_advances(mark: &JsValue, current: &JsValue) -> bool;
    #[wasm_bindgen(js_name = pendingRows)]
    fn pending_rows(out: &Array, collection: &str, records: &Array);
    #[wasm_bindgen(catch, js_name = toJson)]
    fn to_json(v: &JsValue) -> std::result::Result<String, JsValue>;
    #[wasm_bindgen(js_name = byId)]
    fn by_id(records: &Array) -> Map;
    #[wasm_bindgen(catch, js_name = loadedJson)]
    fn loaded_json(
        clock: &JsValue,
        keys: &JsValue,
        found: &Map,
        marks: &Map,
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
async fn read_many(st: &rexie::Store, ids: &[&str]) -> Result<Map> {
    if ids.len() >= 4 {
        let lo = ids.iter().min_by(|a, b| cmp_str(a, b));
        let hi = ids.iter().max_by(|a, b| cmp_str(a, b));
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let (lo, hi) = (JsValue::from_str(lo), JsValue::from_str(hi));
            let range =
                indexeddb::key_range(Some((lo, false)), Some((hi, false))).map(indexeddb::range)?;
            let n = from_rexie(st.count(range.clone()).await)? as usize;
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
/// `[{ change, resync, pend }]`. `tx` spans `collections` and `_meta`.
pub async fn read_pending(
    tx: &Tx,
    mut collections: Vec<String>,
    from: &OutboxPos,
    limit: u32,
) -> Result<String> {
    collections.sort_unstable_by(|a, b| cmp_str(a, b));
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
        pending_rows(&out, collection, &records);
    }
    json_text(to_json(&out))
}

/// Moves watermarks forward: each of `marks` is the last record of an acknowledged run of its
/// collection's outbox. A mark never moves back.
pub async fn advance_marks(tx: &Tx, marks: &[Mark]) -> Result<()> {
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

/// Groups ids by collection, keeping only `known` collections (all when `None`).
fn group<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
    known: Option<&[String]>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (c, id) in keys {
        if known.is_none_or(|known| known.iter().any(|k| k == c)) {
            groups.entry(c).or_default().push(id);
        }
    }
    groups
}

/// Reads the records of each group: a JS `Map` collection -> (Map id -> record).
async fn read_groups(tx: &Tx, groups: &BTreeMap<&str, Vec<&str>>) -> Result<Map> {
    let stores = groups
        .keys()
        .map(|c| tx.store(c))
        .collect::<Result<Vec<_>>>()?;
    let found = join_requests(
        stores
            .iter()
            .zip(groups.values())
            .map(|(st, ids)| read_many(st, ids)),
    )
    .await?;
    let out = Map::new();
    for (c, m) in groups.keys().zip(found) {
        out.set(&JsValue::from_str(c), &m);
    }
    Ok(out)
}

/// The local versions of `keys` (collection, id) with their outbox state, and the persisted clock,
/// as JSON text of `{ clock, docs: [{ change, pending: null | "edit" | "resync" } | null] }`; and
/// the records read (collection -> (id -> record)), for `apply_ops` in the same transaction.
pub async fn load_docs(tx: &Tx, keys: &[DocKey], known: &[String]) -> Result<(String, Map)> {
    let groups = group(
        keys.iter().map(|k| (k.collection.as_str(), k.id.as_str())),
        Some(known),
    );
    let collections: Vec<String> = groups.keys().map(|c| c.to_string()).collect();
    let meta = tx.store(META)?;
    let (clock, marks, found) = futures::join!(
        meta.get(CLOCK.into()),
        read_marks(&meta, &collections),
        read_groups(tx, &groups)
    );
    let clock = from_rexie(clock)?.unwrap_or(JsValue::UNDEFINED);
    let marks_map = Map::new();
    for (c, m) in collections.iter().zip(marks?) {
        if !m.is_undefined() {
            marks_map.set(&JsValue::from_str(c), &m);
        }
    }
    let keys_js: Array = keys
        .iter()
        .map(|k| Array::of2(&JsValue::from_str(&k.collection), &JsValue::from_str(&k.id)))
        .collect();
    let found = found?;
    Ok((
        json_text(loaded_json(&clock, &keys_js, &found, &marks_map))?,
        found,
    ))
}

/// Writes the engine's ops planned in this transaction (`ops_js`, see `planApply` in
/// local_store.js) over the records `load_docs` read (`found`), with `cursor` and `clock` (None:
/// the persisted one stays) in `_meta`. The preconditions were checked by core against what
/// `load_docs` read in this same transaction.
pub async fn apply_ops(
    tx: &Tx,
    ops_js: &JsValue,
    found: &Map,
    cursor: Option<&str>,
    clock: Option<&Hlc>,
) -> Result<()> {
    let meta_st = tx.store(META)?;
    let plan: Array = plan_apply(ops_js, found).unchecked_into();
    let mut stores = Vec::new();
    for entry in plan.iter() {
        let entry: Array = entry.unchecked_into();
        let collection = entry.get(0).as_string().unwrap_or_default();
        let records: Array = entry.get(1).unchecked_into();
        stores.push((tx.store(&collection)?, records));
    }
    let mut meta_puts: Vec<(JsValue, JsValue)> = Vec::new();
    if let Some(c) = cursor {
        meta_puts.push((JsValue::from_str(c), JsValue::from_str(sync_keys::CURSOR)));
    }
    if let Some(c) = clock {
        meta_puts.push((JsValue::from_str(&c.encode()), JsValue::from_str(CLOCK)));
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
pub async fn queue_resync(tx: &Tx, collections: &[String], stamp: &Hlc) -> Result<u32> {
    let stamp_text = stamp.encode();
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
    if persist_clock(persisted.as_ref(), stamp, false) {
        from_rexie(
            meta.put(&JsValue::from_str(stamp_str), Some(&CLOCK.into()))
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
pub async fn read_meta(tx: &Tx, keys: &[&str]) -> Result<Vec<Option<JsValue>>> {
    let meta = tx.store(META)?;
    join_requests(keys.iter().map(|k| meta.get(JsValue::from_str(k)))).await
}

/// Writes `_meta` values.
pub async fn write_meta(tx: &Tx, values: &[(&str, JsValue)]) -> Result<()> {
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
