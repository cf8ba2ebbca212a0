//! The `_outbox` store: one row per document with a change not yet pushed, key `[collection, id]`,
//! value `{ collection, id, hlc, deleted }`. Written in the same transaction as the document, so a
//! committed write is always pending sync; a later write of the same document overwrites the row
//! (the push reads the document itself from its collection). The sync engine removes a row only if
//! its `hlc` still equals the pushed one, so an edit made during a push is pushed next time.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::idb::{self, js};
use super::schema::OUTBOX;
use super::Store;
use crate::error::{Error, Result};

/// One pending change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub collection: String,
    pub id: String,
    pub hlc: String,
    pub deleted: bool,
}

impl OutboxRow {
    pub fn from_js(v: &JsValue) -> Result<OutboxRow> {
        let s = |k: &str| {
            Reflect::get(v, &JsValue::from_str(k))
                .ok()
                .and_then(|x| x.as_string())
                .ok_or_else(|| Error::storage("DataError", format!("outbox row without {k}")))
        };
        Ok(OutboxRow {
            collection: s("collection")?,
            id: s("id")?,
            hlc: s("hlc")?,
            deleted: Reflect::get(v, &"deleted".into())
                .ok()
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
        })
    }
}

impl Store {
    /// Up to `limit` pending changes, in key order (collection, then id).
    pub async fn outbox(&self, limit: Option<u32>) -> Result<Vec<OutboxRow>> {
        self.run(|conn| async move {
            let tx = idb::transaction(&conn.db, &[OUTBOX], false)?;
            let st = idb::store(&tx, OUTBOX)?;
            let req = js(match limit {
                Some(n) => st.get_all_with_key_and_limit(&JsValue::UNDEFINED, n),
                None => st.get_all(),
            })?;
            let rows: Array = idb::wait(&req).await?.unchecked_into();
            rows.iter().map(|r| OutboxRow::from_js(&r)).collect()
        })
        .await
    }

    /// How many documents have changes not yet pushed.
    pub async fn outbox_len(&self) -> Result<u32> {
        self.run(|conn| async move {
            let tx = idb::transaction(&conn.db, &[OUTBOX], false)?;
            let st = idb::store(&tx, OUTBOX)?;
            let n = idb::wait(&js(st.count())?).await?;
            Ok(n.as_f64().unwrap_or(0.0) as u32)
        })
        .await
    }

    /// The raw stored record of `id` (live or tombstone), for the sync engine and tests.
    pub async fn record(&self, collection: &str, id: &str) -> Result<Option<JsValue>> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            let tx = idb::transaction(&conn.db, &[collection], false)?;
            let st = idb::store(&tx, collection)?;
            let v = idb::wait(&js(st.get(&JsValue::from_str(id)))?).await?;
            Ok((!v.is_undefined()).then_some(v))
        })
        .await
    }
}
