//! Per-field timestamps of local writes in collections using the `merge` policy.
//!
//! Field merge needs to know *when each field* was last written (`fields` on the record, the same
//! map as `Change::fields`), so a local edit of `title` and a remote edit of `done` both survive.
//! `write.rs` calls these inside its write transaction, with the previous record it read there, for
//! collections the sync setup marked with `Store::track_fields`:
//! changed fields get the write's HLC, unchanged ones keep theirs (core's `merge::local_change`).

use std::collections::BTreeMap;

use ferrosync_core::merge::local_change;
use ferrosync_core::protocol::{Change, Doc};
use ferrosync_core::Hlc;
use js_sys::Reflect;
use serde_json::Value;
use wasm_bindgen::JsValue;

use super::Prepared;
use crate::error::{Error, Result};

fn text_of(v: &JsValue) -> Result<String> {
    Ok(js_sys::JSON::stringify(v)
        .map_err(|e| super::indexeddb::dom_error(&e))?
        .as_string()
        .unwrap_or_default())
}

fn get(record: &JsValue, key: &str) -> JsValue {
    Reflect::get(record, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// The version a stored record stands for (`None` for no record), in the database of client `own`
/// (its stamps are stored without that node: `Hlc::stored`).
fn previous(collection: &str, record: &JsValue, own: &str) -> Result<Option<Change>> {
    if record.is_undefined() || record.is_null() {
        return Ok(None);
    }
    let bad = |m: String| Error::storage("DataError", m);
    let id = get(record, "id")
        .as_string()
        .ok_or_else(|| bad("stored record without id".into()))?;
    let hlc = get(record, "hlc")
        .as_string()
        .ok_or_else(|| bad(format!("stored record {id:?} without hlc")))?;
    let hlc = Hlc::from_stored(&hlc, own).map_err(|e| bad(format!("stored record {id:?}: {e}")))?;
    let doc = get(record, "doc");
    let doc = if doc.is_undefined() {
        None
    } else {
        Some(Doc::from_json(&text_of(&doc)?).map_err(|e| bad(format!("stored record: {e}")))?)
    };
    let fields = get(record, "fields");
    let fields: Option<BTreeMap<String, Hlc>> = if fields.is_undefined() {
        None
    } else {
        Some(
            serde_json::from_str(&text_of(&fields)?)
                .map_err(|e| bad(format!("stored record {id:?} fields: {e}")))?,
        )
    };
    Ok(Some(Change {
        collection: collection.to_string(),
        id,
        hlc,
        deleted: doc.is_none(),
        doc,
        fields,
        base: None,
    }))
}

fn fields_value(c: &Change) -> Value {
    match &c.fields {
        None => Value::Null,
        Some(f) => {
            // Inserted one by one: a map collected from an iterator links a sort.
            let mut m = serde_json::Map::new();
            for (k, h) in f {
                m.insert(k.clone(), Value::String(h.encode()));
            }
            Value::Object(m)
        }
    }
}

/// The `fields` of each document of a put batch, as the JSON text of one array aligned with `docs`.
/// `prev` holds the records read in the same transaction (undefined where there was none).
pub fn for_puts(
    collection: &str,
    prev: &[JsValue],
    docs: &[Prepared],
    hlc: &Hlc,
) -> Result<String> {
    let mut out = Vec::with_capacity(docs.len());
    for (p, record) in docs.iter().zip(prev) {
        // The write's stamp is this client's: its node is the one stored stamps leave out.
        let before = previous(collection, record, &hlc.node)?;
        let c = local_change(
            before.as_ref(),
            collection,
            &p.id,
            Some(p.value()?.clone()),
            hlc.clone(),
            true,
        );
        out.push(fields_value(&c));
    }
    serde_json::to_string(&out).map_err(|e| Error::storage("DataError", e.to_string()))
}

/// The `fields` of a tombstone replacing `prev` (a JS object to set on the record).
pub fn for_delete(collection: &str, id: &str, prev: &JsValue, hlc: &Hlc) -> Result<JsValue> {
    let before = previous(collection, prev, &hlc.node)?;
    let c = local_change(before.as_ref(), collection, id, None, hlc.clone(), true);
    let text = serde_json::to_string(&fields_value(&c))
        .map_err(|e| Error::storage("DataError", e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|e| super::indexeddb::dom_error(&e))
}
