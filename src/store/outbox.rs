//! The outbox: the records whose current version the server has not acknowledged. A write marks its
//! record pending (`pend`, see `records.rs`) in the same put, so a committed write is always pending
//! sync; a later write of the same document replaces the record and stays pending. The sync engine
//! clears the marker only if the record's `hlc` is still the pushed one, so an edit made during a
//! push is pushed next time. Each collection's `$pending` index lists its pending records.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::idb::{self, js};
use super::schema::{collection_stores, PENDING};
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
    /// The pending change a stored record of `collection` stands for.
    pub fn from_record(collection: &str, v: &JsValue) -> Result<OutboxRow> {
        let s = |k: &str| {
            Reflect::get(v, &JsValue::from_str(k))
                .ok()
                .and_then(|x| x.as_string())
                .ok_or_else(|| Error::storage("DataError", format!("pending record without {k}")))
        };
        Ok(OutboxRow {
            collection: collection.to_string(),
            id: s("id")?,
            hlc: s("hlc")?,
            deleted: super::records::is_tombstone(v),
        })
    }
}

impl Store {
    /// Up to `limit` pending changes, in key order (collection, then id).
    pub async fn outbox(&self, limit: Option<u32>) -> Result<Vec<OutboxRow>> {
        self.run(|conn| async move {
            let names = collection_stores(&conn.db);
            let mut out = Vec::new();
            if names.is_empty() {
                return Ok(out);
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let tx = idb::transaction(&conn.db, &refs, false)?;
            for name in &names {
                let left = limit.map(|n| n.saturating_sub(out.len() as u32));
                if left == Some(0) {
                    break;
                }
                let index = js(idb::store(&tx, name)?.index(PENDING))?;
                let req = js(match left {
                    Some(n) => index.get_all_with_key_and_limit(&JsValue::UNDEFINED, n),
                    None => index.get_all(),
                })?;
                let rows: Array = idb::wait(&req).await?.unchecked_into();
                for r in rows.iter() {
                    out.push(OutboxRow::from_record(name, &r)?);
                }
            }
            Ok(out)
        })
        .await
    }

    /// How many documents have changes not yet pushed.
    pub async fn outbox_len(&self) -> Result<u32> {
        self.run(|conn| async move {
            let names = collection_stores(&conn.db);
            if names.is_empty() {
                return Ok(0);
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let tx = idb::transaction(&conn.db, &refs, false)?;
            let mut counts = Vec::new();
            for name in &names {
                let index = js(idb::store(&tx, name)?.index(PENDING))?;
                counts.push(idb::wait(&js(index.count())?));
            }
            let mut n = 0u32;
            for c in futures::future::try_join_all(counts).await? {
                n += c.as_f64().unwrap_or(0.0) as u32;
            }
            Ok(n)
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
