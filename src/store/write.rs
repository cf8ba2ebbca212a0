//! Writes: one IndexedDB transaction per call over the collection and `_meta`.
//!
//! Shape of every write transaction (no foreign await anywhere inside it):
//! 1. read the persisted clock (the transaction's own request),
//! 2. stamp one HLC for the whole call, issue every record put at once (each record carries its
//!    pending-sync marker, so a committed write is always in the outbox),
//! 3. write the clock back, await `complete` (or the abort reason: quota, etc.).
//!
//! Small writes do not wait for the clock read (step 2 uses this instance's clock) unless the
//! collection records per-field HLCs; if the read then shows a later clock (another tab wrote),
//! steps 2 and 3 are issued again with a later HLC before the transaction commits.
//!
//! Then, after commit only, live queries here and in other tabs are told which ids changed.

use std::cell::OnceCell;
use std::rc::Rc;

use ferrosync_core::Hlc;
use js_sys::Array;
use serde_json::Value;
use wasm_bindgen::JsValue;

use super::idb::{self, dom_error, js};
use super::schema::META;
use super::{meta, records, Conn, Store};
use crate::error::Error;
use crate::error::Result;
use crate::live::Notice;

/// Largest write whose puts are issued before the persisted clock is read (see `put_tx`).
const EARLY_MAX: usize = 16;

/// A validated document ready to store: its id and the JavaScript object, stored as it is. Rust looks
/// inside only when it must (live-query matching of a few changed documents, per-field HLCs of
/// `merge` collections), and then parses that one document once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub doc: JsValue,
    value: OnceCell<Value>,
}

impl Prepared {
    pub fn new(id: String, doc: JsValue) -> Prepared {
        Prepared {
            id,
            doc,
            value: OnceCell::new(),
        }
    }

    /// The document as JSON (parsed on first use).
    pub fn value(&self) -> Result<&Value> {
        if self.value.get().is_none() {
            let text = js_sys::JSON::stringify(&self.doc)
                .map_err(|e| dom_error(&e))?
                .as_string()
                .unwrap_or_default();
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::InvalidDocument(format!("document {:?}: {e}", self.id)))?;
            let _ = self.value.set(v);
        }
        self.value
            .get()
            .ok_or_else(|| Error::storage("UnknownError", "document value unavailable"))
    }
}

impl Store {
    /// Stores `docs` (the JavaScript objects, each with its `id`) in one transaction: all or none.
    /// `prepared` describes the same documents, in the same order.
    pub async fn put_all(
        &self,
        collection: &str,
        docs: &Array,
        prepared: Vec<Prepared>,
    ) -> Result<Hlc> {
        self.check_collection(collection)?;
        let prepared = Rc::new(prepared);
        let hlc = self
            .run(|conn| put_tx(self, conn, collection, docs, &prepared))
            .await?;
        let changes = prepared
            .iter()
            .map(|p| (p.id.clone(), Some(p.clone())))
            .collect();
        self.notify(Notice::local(collection, &hlc, changes), true);
        self.wrote();
        Ok(hlc)
    }

    /// Marks `id` deleted (a tombstone, for sync). Idempotent: deleting a deleted document writes
    /// nothing; deleting an unknown id writes a tombstone, since the document may exist elsewhere.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<()> {
        self.check_collection(collection)?;
        let written = self
            .run(|conn| delete_tx(self, conn, collection, id))
            .await?;
        if let Some((hlc, true)) = written {
            self.notify(
                Notice::local(collection, &hlc, vec![(id.to_string(), None)]),
                true,
            );
        }
        self.wrote();
        Ok(())
    }
}

async fn put_tx(
    store: &Store,
    conn: Conn,
    collection: &str,
    docs: &Array,
    prepared: &[Prepared],
) -> Result<Hlc> {
    let tx = idb::transaction(&conn.db, &[collection, META], true)?;
    let done = idb::TxDone::new(&tx);
    let (st, meta_st) = (idb::store(&tx, collection)?, idb::store(&tx, META)?);
    let clock = match meta::read_clock(&meta_st) {
        Ok(c) => c,
        Err(e) => return Err(idb::abort(&tx, e)),
    };
    // Sync hook: `merge` collections read the previous records (requests of this transaction) to
    // carry their per-field HLCs forward.
    let prev = if store.tracks_fields(collection) {
        let issued: Result<Vec<_>> = prepared
            .iter()
            .map(|p| js(st.get(&JsValue::from_str(&p.id))).map(|r| idb::wait(&r)))
            .collect();
        match issued {
            Ok(v) => Some(v),
            Err(e) => return Err(idb::abort(&tx, e)),
        }
    } else {
        None
    };
    // Where each index's key is read from (the keys themselves are computed in `writeDocs`).
    let index_paths = records::index_paths(conn.schema.indexes(collection));
    // Small writes without per-field HLCs to carry forward go out now, stamped by this instance's
    // clock, instead of after the persisted clock comes back: one round trip to IndexedDB's backend
    // less per write (a third of a single put's time, measured in bench/). The persisted clock is
    // ahead only when another tab or instance wrote since; then its read's result (still inside
    // this transaction) re-stamps everything below, and those puts replace these (a transaction's
    // requests run in order), so what commits is the same. Large batches wait instead: the round
    // trip is nothing next to them, and re-issuing one would not be.
    let early = if prev.is_none() && prepared.len() <= EARLY_MAX {
        let hlc = store.tick(None);
        let issued = records::write_docs(&st, &hlc.encode(), docs, &index_paths, None);
        if let Err(e) = issued {
            return Err(idb::abort(&tx, dom_error(&e)));
        }
        if let Err(e) = meta::write_clock(&meta_st, &hlc) {
            return Err(idb::abort(&tx, e));
        }
        Some(hlc)
    } else {
        None
    };
    let persisted = match clock.await {
        Ok(c) => c,
        Err(e) => return Err(idb::abort(&tx, e)),
    };
    if let Some(hlc) = early {
        if persisted.as_ref().is_none_or(|p| *p < hlc) {
            done.wait().await?;
            return Ok(hlc);
        }
    }
    let prev = match prev {
        Some(reqs) => match futures::future::try_join_all(reqs).await {
            Ok(v) => Some(v),
            Err(e) => return Err(idb::abort(&tx, e)),
        },
        None => None,
    };
    let hlc = store.tick(persisted.as_ref());
    let fields = match &prev {
        Some(prev) => match super::fields::for_puts(collection, prev, prepared, &hlc) {
            Ok(f) => Some(f),
            Err(e) => return Err(idb::abort(&tx, e)),
        },
        None => None,
    };
    if let Err(e) = records::write_docs(&st, &hlc.encode(), docs, &index_paths, fields) {
        return Err(idb::abort(&tx, dom_error(&e)));
    }
    if let Err(e) = meta::write_clock(&meta_st, &hlc) {
        return Err(idb::abort(&tx, e));
    }
    done.wait().await?;
    Ok(hlc)
}

/// `None` when the document was already deleted (nothing written), else the tombstone's HLC and
/// whether a live document was replaced.
async fn delete_tx(
    store: &Store,
    conn: Conn,
    collection: &str,
    id: &str,
) -> Result<Option<(Hlc, bool)>> {
    let tx = idb::transaction(&conn.db, &[collection, META], true)?;
    let done = idb::TxDone::new(&tx);
    let (st, meta_st) = (idb::store(&tx, collection)?, idb::store(&tx, META)?);
    let key = JsValue::from_str(id);
    let issued = js(st.get(&key)).and_then(|r| Ok((idb::wait(&r), meta::read_clock(&meta_st)?)));
    let (current, clock) = match issued {
        Ok(pair) => pair,
        Err(e) => return Err(idb::abort(&tx, e)),
    };
    let (current, persisted) = futures::join!(current, clock);
    let (current, persisted) = match (current, persisted) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => return Err(idb::abort(&tx, e)),
    };
    if records::is_tombstone(&current) {
        done.wait().await?;
        return Ok(None);
    }
    let was_live = !current.is_undefined();
    let stamp = store.tick(persisted.as_ref());
    let hlc = stamp.encode();
    let tomb = records::tombstone(id, &hlc);
    if store.tracks_fields(collection) {
        // Sync hook: the tombstone of a `merge` document records when it was deleted.
        match super::fields::for_delete(collection, id, &current, &stamp) {
            Ok(f) => {
                let _ = js_sys::Reflect::set(&tomb, &JsValue::from_str("fields"), &f);
            }
            Err(e) => return Err(idb::abort(&tx, e)),
        }
    }
    let issue = || -> Result<()> {
        js(st.put(&tomb))?;
        js(meta_st.put_with_key(&JsValue::from_str(&hlc), &meta::CLOCK.into()))?;
        Ok(())
    };
    if let Err(e) = issue() {
        return Err(idb::abort(&tx, e));
    }
    done.wait().await?;
    Ok(Some((stamp, was_live)))
}
