//! The outbox: the records whose current version the server has not acknowledged. A local write
//! stamps its record with `pend` (its HLC) in the same put, which puts it in the collection's
//! `$pending` index at `[pend, id]`: the outbox in write order. The server's acknowledgements move a
//! watermark along that order (`_meta` key `outbox:<collection>`, the `[pend, id]` of the last
//! acknowledged record): everything above it is pending. An edit made during a push gets a newer
//! HLC, so it lands above any watermark that push can set and is pushed next time. Acknowledging a
//! batch is therefore one small `_meta` put, however many documents it covers.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::idb::{self, js};
use super::schema::{collection_stores, META, PENDING};
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

/// The `_meta` key of `collection`'s outbox watermark.
pub fn watermark_key(collection: &str) -> String {
    format!("outbox:{collection}")
}

/// The key range of `collection`'s pending records: above its watermark (read in `tx`, which must
/// span `_meta`), or everything when it has none.
async fn pending_range(
    tx: &web_sys::IdbTransaction,
    collection: &str,
) -> Result<Option<web_sys::IdbKeyRange>> {
    let meta = idb::store(tx, META)?;
    let mark = idb::wait(&js(
        meta.get(&JsValue::from_str(&watermark_key(collection)))
    )?)
    .await?;
    if mark.is_undefined() {
        return Ok(None);
    }
    js(web_sys::IdbKeyRange::lower_bound_with_open(&mark, true)).map(Some)
}

impl Store {
    /// Up to `limit` pending changes, in outbox order (collection, then write order).
    pub async fn outbox(&self, limit: Option<u32>) -> Result<Vec<OutboxRow>> {
        self.run(|conn| async move {
            let names = collection_stores(&conn.db);
            let mut out = Vec::new();
            if names.is_empty() {
                return Ok(out);
            }
            let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
            refs.push(META);
            let tx = idb::transaction(&conn.db, &refs, false)?;
            for name in &names {
                let left = limit.map(|n| n.saturating_sub(out.len() as u32));
                if left == Some(0) {
                    break;
                }
                let range: JsValue = pending_range(&tx, name)
                    .await?
                    .map_or(JsValue::UNDEFINED, Into::into);
                let index = js(idb::store(&tx, name)?.index(PENDING))?;
                let req = js(match left {
                    Some(n) => index.get_all_with_key_and_limit(&range, n),
                    None => index.get_all_with_key(&range),
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
            let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
            refs.push(META);
            let tx = idb::transaction(&conn.db, &refs, false)?;
            let mut counts = Vec::new();
            for name in &names {
                let range = pending_range(&tx, name).await?;
                let index = js(idb::store(&tx, name)?.index(PENDING))?;
                counts.push(idb::wait(&js(match range {
                    Some(r) => index.count_with_key(&r),
                    None => index.count(),
                })?));
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
