//! The record stored for each document, and the JavaScript helpers that build and read records.
//!
//! A record wraps the document instead of adding fields to it, so no document field name is taken
//! and reads hand back `record.doc` without copying or stripping anything:
//! - live: `{ id, hlc, doc, ix? }`: `hlc` is the HLC of the write; `ix` holds one order-preserving
//!   key per index of the collection (`IndexKey`, as `[tag]` or `[tag, value]`), under the property
//!   `layout::ident(path)`; the IndexedDB indexes point at `ix.<ident>`.
//! - tombstone: `{ id, hlc, tomb }` (`tomb` = the deleting HLC): no `doc`, no `ix`, so tombstones are
//!   in no secondary index, and the `$tombstones` index (key path `tomb`) counts them.
//! - `pend` (optional): the place in the outbox of the write that queued the record: its HLC, or
//!   just above the highest place given when the clock was wound back below it (core's
//!   `outbox::Places`). The `$pending` index (key path `[pend, id]`) orders the outbox by it, and
//!   the server's acknowledgements move a per-collection watermark along that order (`_meta` key
//!   `outbox:<collection>`, see `outbox.rs`): a record is pending when its `[pend, id]` is above the
//!   watermark. A write marks its record in the same put, and an acknowledgement is one small
//!   `_meta` put however many documents it covers (instead of a second store written and deleted
//!   per document; measured in bench/ and docs/BENCHMARKS.md). `resync: true` next to `pend` marks
//!   a version queued again after a server reset rather than a local edit.
//! - Stamps (`hlc`, `tomb`, `pend`, `base`) are stored without their node when it is this
//!   client's (core's `Hlc::stored`: `wwwwwwwwwwww-cccccc`, 19 characters instead of 36), in full
//!   otherwise (another client's version). Two stamps per record were what a find read beyond
//!   Dexie's records (docs/BENCHMARKS.md, "Lean stamps"). Readers put the node back
//!   (`sync_records.js` `changeOf`, `fields.rs`); live queries compare stored forms as they are.
//!   Records written in full by earlier versions stay valid: a short form sorts after every full
//!   one of an earlier time and before those of a later one, and one client's stamps never share
//!   a time.
//! - `fields` (optional, per-field HLCs, always in full) is reserved for the `merge` conflict
//!   policy.
//! - `base` (optional, an HLC) is the version a local edit was made on, kept for collections with a
//!   custom conflict resolver or the `merge` policy (`Change::base`): a synced record's own `hlc`,
//!   carried over further local edits, and the remote version for a resolution. Synced (pulled)
//!   records have none.
//!
//! Records are built here: local writes in `records.js` (`buildRecords`, the hot path, from the
//! application's objects), sync's versions in Rust ([`SyncedRecord`], from the engine's changes).

use std::collections::BTreeMap;

use ferrosync_core::protocol::{Change, Doc};
use ferrosync_core::query::{IndexKey, KeyPart};
use ferrosync_core::Hlc;
use js_sys::{Array, Object, Reflect};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::indexeddb::from_dom;
use super::layout::{IndexInfo, F_BASE, F_ID, F_IX, F_TOMB};
use crate::error::Result;

/// The `base` a local edit replacing `prev` (a stored record, or `undefined`) is made on: `prev`'s
/// own base if it has one (a local edit, acknowledged or not: acknowledging moves a watermark and
/// leaves the record as it is, and the server does not count a client's own version as concurrent),
/// else its `hlc` (a synced version); none without a record.
pub fn base_of(prev: &JsValue) -> Option<JsValue> {
    if prev.is_undefined() || prev.is_null() {
        return None;
    }
    let get = |k: &str| Reflect::get(prev, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let base = get(F_BASE);
    Some(if base.is_undefined() {
        get("hlc")
    } else {
        base
    })
}

/// Sets `record.base` (see [`base_of`]).
pub fn set_base(record: &JsValue, base: &JsValue) -> Result<()> {
    Reflect::set(record, &JsValue::from_str(F_BASE), base)
        .map_err(|e| super::indexeddb::dom_error(&e))?;
    Ok(())
}

#[wasm_bindgen(module = "/src/store/records.js")]
extern "C" {
    /// The records of a batch of documents (same order), marked pending sync at `pend`.
    #[wasm_bindgen(catch, js_name = buildRecords)]
    pub fn build_records(
        hlc: &str,
        pend: &str,
        docs: &Array,
        index_paths: &Array,
        fields_json: Option<String>,
    ) -> Result<Array, JsValue>;

    /// The `ix` object of a document for `index_paths` (what `buildRecords` stores).
    pub fn projection(doc: &JsValue, index_paths: &Array) -> JsValue;

    /// A `Promise` of the document `id` of `store` (see `Store::get_now`).
    #[wasm_bindgen(js_name = getDoc)]
    pub fn get_doc(
        db: &web_sys::IdbDatabase,
        store: &str,
        id: &str,
        slow: &js_sys::Function,
    ) -> js_sys::Promise;

    /// Sets the `ix` of each live record of `records` (sync's, which arrive without one).
    #[wasm_bindgen(js_name = addProjections)]
    pub fn add_projections(records: &Array, index_paths: &Array);

    /// The JavaScript twin of `IndexKey::of` (what `buildRecords` stores); for tests.
    #[wasm_bindgen(js_name = keyOf)]
    pub fn key_of(value: &JsValue) -> JsValue;

    pub fn tombstone(id: &str, hlc: &str, pend: &str) -> JsValue;

    #[wasm_bindgen(js_name = docOf)]
    fn doc_of_js(record: &JsValue) -> JsValue;

    #[wasm_bindgen(js_name = isTombstone)]
    pub fn is_tombstone(record: &JsValue) -> bool;

    /// Up to `need` live records of `source` (an index or store) in `range`, read backwards (and on
    /// through the last key's ties with `ties`; `compound`: keys end with the id, which ties
    /// ignore): a `Promise` of the records read.
    #[wasm_bindgen(js_name = walkBack)]
    pub fn walk_back(
        source: &JsValue,
        range: &JsValue,
        need: f64,
        ties: bool,
        compound: bool,
    ) -> js_sys::Promise;

    /// An `offset` page of an exact backward index walk (`records.js` `skipBack`): a `Promise`
    /// of the page's records, in walk order, the earlier pages skipped by a key cursor.
    #[wasm_bindgen(js_name = skipBack)]
    pub fn skip_back(
        store: &JsValue,
        index: &JsValue,
        range: &JsValue,
        offset: f64,
        limit: f64,
    ) -> js_sys::Promise;

    /// `{ live: Array, rows: string | undefined }`.
    pub fn extract(lists: &Array, paths: JsValue) -> JsValue;

    pub fn pick(records: &Array, indices: &[u32]) -> Array;

    #[wasm_bindgen(js_name = docsOf)]
    pub fn docs_of(records: &Array) -> Array;

    /// `undefined` when unchanged, else the new records (with stable identities).
    #[wasm_bindgen(js_name = diffResult)]
    pub fn diff_result(prev: Option<Array>, next: &Array) -> JsValue;

    #[wasm_bindgen(js_name = freshRecord)]
    pub fn fresh_record(id: &str, hlc: &str, doc: &JsValue) -> JsValue;

    #[wasm_bindgen(js_name = hlcOf)]
    pub fn hlc_of(record: &JsValue) -> Option<String>;

    /// Replays a live window's edits (`[op, x, y]` triples: 0 remove at x, 1 insert `fresh[y]` at
    /// x, 2 keep the first x) on `records` and their documents `docs`, in place; true when anything
    /// the application sees changed.
    pub fn replay(records: &Array, docs: &Array, edits: &[u32], fresh: &Array) -> bool;

    /// A copy of `docs` (pointers only) for a callback.
    #[wasm_bindgen(js_name = shownDocs)]
    pub fn shown_docs(docs: &Array) -> Array;

    #[wasm_bindgen(js_name = idsOf)]
    pub fn ids_of(records: &Array) -> Vec<String>;

    #[wasm_bindgen(catch, js_name = toJson)]
    fn to_json(v: &JsValue) -> Result<String, JsValue>;
}

/// A stored document as JSON (for the few documents Rust must look into).
pub fn json_of(doc: &JsValue) -> Result<Value> {
    let text = to_json(doc).map_err(|e| super::indexeddb::dom_error(&e))?;
    serde_json::from_str(&text)
        .map_err(|e| crate::error::Error::storage("DataError", format!("stored document: {e}")))
}

/// The document of a live record; `None` for a tombstone or a missing record.
pub fn doc_of(record: &JsValue) -> Option<JsValue> {
    let doc = doc_of_js(record);
    (!doc.is_undefined()).then_some(doc)
}

/// `[[ident, [segment, ...]], ...]` for `buildRecords`: where each index's key is read from; a
/// compound index as `[ident, [[segment, ...], ...], true]`.
pub fn index_paths(indexes: &[IndexInfo]) -> Array {
    let segments = |p: &ferrosync_core::query::Path| -> Array {
        p.segments().iter().map(|s| JsValue::from_str(s)).collect()
    };
    indexes
        .iter()
        .map(|info| match &info.compound {
            None => Array::of2(&JsValue::from_str(&info.ident), &segments(&info.path)),
            Some(c) => Array::of3(
                &JsValue::from_str(&info.ident),
                &c.paths.iter().map(segments).collect::<Array>(),
                &JsValue::TRUE,
            ),
        })
        .collect()
}

/// The record's `ix` object, created if absent.
pub fn ix_of(record: &JsValue) -> Result<JsValue> {
    let key = JsValue::from_str(F_IX);
    let ix = from_dom(Reflect::get(record, &key))?;
    if ix.is_object() {
        return Ok(ix);
    }
    let ix: JsValue = Object::new().into();
    from_dom(Reflect::set(record, &key, &ix))?;
    Ok(ix)
}

/// An index key as the IndexedDB key array `[tag]` or `[tag, value]`.
pub fn key_to_js(key: &IndexKey) -> JsValue {
    let arr = Array::new();
    arr.push(&JsValue::from_f64(f64::from(key.tag)));
    match &key.part {
        Some(KeyPart::Number(n)) => {
            arr.push(&JsValue::from_f64(*n));
        }
        Some(KeyPart::String(s)) => {
            arr.push(&JsValue::from_str(s));
        }
        None => {}
    }
    arr.into()
}

/// The record of a version sync writes (a pulled version, a resolution), serialized straight from
/// the engine's change with its document borrowed: a live document `{ id, hlc, doc, ix? }` or a
/// tombstone `{ id, hlc, tomb }`, plus `fields` and `base` when the change has them (the layout
/// above; field names are `layout`'s `F_*`, checked at compile time below). The outbox fields
/// (`pend`, `resync`) are set by the transaction that writes it (`store/sync_records.js`).
#[derive(Serialize)]
pub struct SyncedRecord<'a> {
    id: &'a str,
    /// Stamps in their stored form (`Hlc::stored`).
    hlc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<&'a Doc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tomb: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a BTreeMap<String, Hlc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<String>,
}

/// `SyncedRecord`'s field names are the layout's (serde's names are literals).
const _: () = {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(same(F_ID, "id") && same(F_IX, "ix") && same(F_TOMB, "tomb") && same(F_BASE, "base"));
};

impl<'a> SyncedRecord<'a> {
    /// The record of `change`, and the slot of its document when that is held in JavaScript
    /// (`store::held`): the record then has no `doc`, and the op writing it puts the object
    /// held there. `own`: this database's client id (stamps are stored without it).
    pub fn of(change: &'a Change, own: &str) -> (SyncedRecord<'a>, Option<u32>) {
        let live = change.doc.as_ref().filter(|_| !change.deleted);
        let held = live.and_then(Doc::held_slot);
        let hlc = change.hlc.stored(own);
        let record = SyncedRecord {
            id: &change.id,
            tomb: live.is_none().then(|| hlc.clone()),
            hlc,
            doc: live.filter(|_| held.is_none()),
            fields: change.fields.as_ref(),
            base: change.base.as_ref().map(|b| b.stored(own)),
        };
        (record, held)
    }
}
