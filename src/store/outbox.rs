//! The outbox: the records whose current version the server has not acknowledged. A local write
//! stamps its record with `pend` (its place: its HLC, or above every earlier place when the clock
//! was wound back; core's `outbox::Places`) in the same put, which puts it in the collection's
//! `$pending` index at `[pend, id]`: the outbox in write order. The server's acknowledgements move a
//! watermark along that order (`_meta` key `outbox:<collection>`, the `[pend, id]` of the last
//! acknowledged record): everything above it is pending. An edit made during a push gets a higher
//! place, so it lands above any watermark that push can set and is pushed next time. Acknowledging a
//! batch is therefore one small `_meta` put, however many documents it covers.

#[cfg(feature = "test-hooks")]
use js_sys::Reflect;
use wasm_bindgen::JsValue;

use super::indexeddb::{self, from_rexie, join_requests, Tx};
use super::layout::{watermark_key, META, PENDING};
use super::schema::collection_stores;
use super::Store;
#[cfg(feature = "test-hooks")]
use crate::error::Error;
use crate::error::Result;

/// One pending change (tests read the outbox with [`Store::outbox`]; sync reads it through
/// `store/sync_ops.rs`).
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub collection: String,
    pub id: String,
    pub hlc: String,
    pub deleted: bool,
}

#[cfg(feature = "test-hooks")]
impl OutboxRow {
    /// The pending change a stored record of `collection` stands for (`own`: the client id, the
    /// node its stored stamps may leave out).
    pub fn from_record(collection: &str, v: &JsValue, own: &str) -> Result<OutboxRow> {
        let s = |k: &str| {
            Reflect::get(v, &JsValue::from_str(k))
                .ok()
                .and_then(|x| x.as_string())
                .ok_or_else(|| Error::storage("DataError", format!("pending record without {k}")))
        };
        Ok(OutboxRow {
            collection: collection.to_string(),
            id: s("id")?,
            hlc: ferrosync_core::Hlc::from_stored(&s("hlc")?, own)
                .map_err(|e| Error::storage("DataError", e.to_string()))?
                .encode(),
            deleted: super::records::is_tombstone(v),
        })
    }
}

/// `collection`'s outbox watermark, read through `meta` (the `_meta` store of a transaction); `None`
/// when nothing was acknowledged since the outbox began (or a server reset dropped it).
pub async fn watermark(meta: &rexie::Store, collection: &str) -> Result<Option<JsValue>> {
    from_rexie(
        meta.get(JsValue::from_str(&watermark_key(collection)))
            .await,
    )
}

/// The key range of `collection`'s pending records: above its watermark (read in `tx`, which must
/// span `_meta`), or everything when it has none.
async fn pending_range(tx: &Tx, collection: &str) -> Result<Option<rexie::KeyRange>> {
    match watermark(&tx.store(META)?, collection).await? {
        None => Ok(None),
        Some(mark) => indexeddb::key_range(Some((mark, true)), None).map(indexeddb::range),
    }
}

impl Store {
    /// Up to `limit` pending changes, in outbox order (collection, then write order). For tests;
    /// sync reads the same `$pending` index above the same watermark in `store/sync_ops.rs`.
    #[cfg(feature = "test-hooks")]
    pub async fn outbox(&self, limit: Option<u32>) -> Result<Vec<OutboxRow>> {
        self.run(|conn| async move {
            let names = collection_stores(&conn.db);
            let mut out = Vec::new();
            if names.is_empty() {
                return Ok(out);
            }
            let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
            refs.push(META);
            let tx = Tx::read(&conn.db, &refs)?;
            for name in &names {
                let left = limit.map(|n| n.saturating_sub(out.len() as u32));
                if left == Some(0) {
                    break;
                }
                let range = pending_range(&tx, name).await?;
                let index = from_rexie(tx.store(name)?.index(PENDING))?;
                for r in from_rexie(index.get_all(range, left).await)? {
                    out.push(OutboxRow::from_record(name, &r, self.client_id())?);
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
            let tx = Tx::read(&conn.db, &refs)?;
            let ranges = join_requests(names.iter().map(|name| pending_range(&tx, name))).await?;
            let indexes = names
                .iter()
                .map(|name| from_rexie(tx.store(name)?.index(PENDING)))
                .collect::<Result<Vec<_>>>()?;
            let counts = join_requests(
                indexes
                    .iter()
                    .zip(ranges)
                    .map(|(ix, range)| ix.count(range)),
            )
            .await?;
            Ok(counts.into_iter().sum())
        })
        .await
    }

    /// The raw stored record of `id` (live or tombstone), for the sync engine and tests.
    pub async fn record(&self, collection: &str, id: &str) -> Result<Option<JsValue>> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            let tx = Tx::read(&conn.db, &[collection])?;
            from_rexie(tx.store(collection)?.get(JsValue::from_str(id)).await)
        })
        .await
    }
}
