//! Writes: one IndexedDB transaction per call over the collection and `_meta`.
//!
//! Shape of every write transaction (no foreign await anywhere inside it):
//! 1. read the persisted clock and outbox place floor (the transaction's own request),
//! 2. stamp one HLC for the whole call, issue every record put at once (each record carries its
//!    place in the outbox, so a committed write is always in the outbox: core's `outbox::Places`),
//! 3. write the clock back when the write passed the bound last persisted or another writer wrote
//!    since (core's `sync::write_clock`; and the place floor, when the clock was wound back below
//!    it), await `complete` (or the abort reason: quota, etc.).
//!
//! Small writes do not wait for the clock read (step 2 uses this instance's clock) unless the
//! collection records per-field HLCs; if the read then shows a later clock (another tab wrote),
//! steps 2 and 3 are issued again with a later HLC before the transaction commits.
//!
//! Then, after commit only, live queries here and in other tabs are told which ids changed.

use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::JsValue;

use super::indexeddb::{self, dom_error, join_requests, Tx};
use super::layout::META;
use super::notice::Notice;
use super::prepared::Prepared;
use super::{meta, records, Conn, Store};
use crate::error::Result;

/// Largest write whose puts are issued before the persisted clock is read (see `put_tx`).
const EARLY_MAX: usize = 16;

impl Store {
    /// Stores `docs` (the JavaScript objects, each with its `id`) in one transaction: all or none.
    /// `prepared` describes the same documents, in the same order.
    pub async fn put_all(
        &self,
        collection: &str,
        docs: &Array,
        prepared: Vec<Prepared>,
    ) -> Result<()> {
        self.check_collection(collection)?;
        let prepared = Rc::new(prepared);
        let stamp = self
            .run(|conn| put_tx(self, conn, collection, docs, &prepared))
            .await?;
        let changes = prepared
            .iter()
            .map(|p| (p.id.clone(), Some(p.clone())))
            .collect();
        self.notify(Notice::local(collection, stamp, changes), true);
        self.wrote();
        Ok(())
    }

    /// Marks `id` deleted (a tombstone, for sync). Idempotent: deleting a deleted document writes
    /// nothing; deleting an unknown id writes a tombstone, since the document may exist elsewhere.
    pub async fn delete(&self, collection: &str, id: &str) -> Result<()> {
        self.check_collection(collection)?;
        let written = self
            .run(|conn| delete_tx(self, conn, collection, id))
            .await?;
        if let Some((stamp, true)) = written {
            self.notify(
                Notice::local(collection, stamp, vec![(id.to_string(), None)]),
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
) -> Result<String> {
    let tx = Tx::write(&conn.db, &[collection, META])?;
    let work = async {
        let (st, meta_st) = (tx.store(collection)?, tx.store(META)?);
        put_requests(store, &conn, collection, &st, &meta_st, docs, prepared).await
    }
    .await;
    tx.finish(work).await
}

/// The requests of `put_tx`, in one transaction (`st` and `meta_st` belong to it). Returns the
/// write's HLC as its records store it (what the write's notice carries).
async fn put_requests(
    store: &Store,
    conn: &Conn,
    collection: &str,
    st: &rexie::Store,
    meta_st: &rexie::Store,
    docs: &Array,
    prepared: &[Prepared],
) -> Result<String> {
    // Where each index's key is read from (the keys themselves are computed in `buildRecords`).
    let index_paths = records::index_paths(conn.schema.indexes(collection));
    let tracks = store.tracks_fields(collection);
    let bases = store.tracks_base(collection);
    // Small writes without per-field HLCs to carry forward go out at once, stamped by this
    // instance's clock, together with the read of the persisted clock instead of after it: one
    // round trip to IndexedDB's backend less per write (a third of a single put's time, measured in
    // bench/). The stamp stands (core's `WriteClock::confirm`) unless another tab or instance
    // wrote since, or sync wound the clock back; then the persisted values (still inside this
    // transaction) re-stamp everything below, and those puts replace these (a transaction's
    // requests run in order), so what commits is the same. Large batches wait instead: the round
    // trip is nothing next to them, and re-issuing one would not be.
    let (persisted, place) = if !tracks && !bases && prepared.len() <= EARLY_MAX {
        let early = store.stamp_early();
        let stamp = store.stored(&early.hlc);
        let recs = records::build_records(&stamp, &stamp, docs, &index_paths, None)
            .map_err(|e| dom_error(&e))?;
        let (persisted, puts, clock) = futures::join!(
            meta::read_stamps(meta_st),
            put_records(st, &recs),
            meta::write_stamps(meta_st, early.clock.as_ref(), None)
        );
        puts?;
        clock?;
        let (persisted, place) = persisted?;
        if let Some((clock, floor)) =
            store.confirm_stamp(&early, persisted.as_ref(), place.as_ref())
        {
            meta::write_stamps(meta_st, clock.as_ref(), floor.as_ref()).await?;
            return Ok(stamp);
        }
        (persisted, place)
    } else {
        meta::read_stamps(meta_st).await?
    };
    // Sync hook: `merge` collections read the previous records to carry their per-field HLCs
    // forward, custom-resolver ones to record the version each edit is made on.
    let prev = if tracks || bases {
        let prev = join_requests(prepared.iter().map(|p| st.get(JsValue::from_str(&p.id)))).await?;
        let prev: Vec<JsValue> = prev
            .into_iter()
            .map(|r| r.unwrap_or(JsValue::UNDEFINED))
            .collect();
        Some(prev)
    } else {
        None
    };
    let stamp = store.stamp(persisted.as_ref(), place.as_ref());
    let hlc = stamp.hlc.clone();
    let fields = match &prev {
        Some(prev) if tracks => Some(super::fields::for_puts(collection, prev, prepared, &hlc)?),
        _ => None,
    };
    let stored = store.stored(&hlc);
    let recs = records::build_records(
        &stored,
        &store.stored(&stamp.place),
        docs,
        &index_paths,
        fields,
    )
    .map_err(|e| dom_error(&e))?;
    if let (true, Some(prev)) = (bases, &prev) {
        for (rec, prev) in recs.iter().zip(prev) {
            if let Some(base) = records::base_of(prev) {
                records::set_base(&rec, &base)?;
            }
        }
    }
    let (puts, clock) = futures::join!(
        put_records(st, &recs),
        meta::write_stamps(meta_st, stamp.clock.as_ref(), stamp.floor.as_ref())
    );
    puts?;
    clock?;
    Ok(stored)
}

/// Puts `records` (all issued at once; resolves with the last one).
async fn put_records(st: &rexie::Store, records: &Array) -> Result<()> {
    indexeddb::from_rexie(st.put_all(records.iter().map(|r| (r, None))).await)
}

/// `None` when the document was already deleted (nothing written), else the tombstone's HLC (as
/// the record stores it) and whether a live document was replaced.
async fn delete_tx(
    store: &Store,
    conn: Conn,
    collection: &str,
    id: &str,
) -> Result<Option<(String, bool)>> {
    let tx = Tx::write(&conn.db, &[collection, META])?;
    let work = async {
        let (st, meta_st) = (tx.store(collection)?, tx.store(META)?);
        delete_requests(store, collection, id, &st, &meta_st).await
    }
    .await;
    tx.finish(work).await
}

async fn delete_requests(
    store: &Store,
    collection: &str,
    id: &str,
    st: &rexie::Store,
    meta_st: &rexie::Store,
) -> Result<Option<(String, bool)>> {
    let (current, stamps) =
        futures::join!(st.get(JsValue::from_str(id)), meta::read_stamps(meta_st));
    let current = indexeddb::from_rexie(current)?.unwrap_or(JsValue::UNDEFINED);
    let (persisted, place) = stamps?;
    if records::is_tombstone(&current) {
        return Ok(None);
    }
    let was_live = !current.is_undefined();
    let stamped = store.stamp(persisted.as_ref(), place.as_ref());
    let stamp = stamped.hlc.clone();
    let stored = store.stored(&stamp);
    let tomb = records::tombstone(id, &stored, &store.stored(&stamped.place));
    if store.tracks_fields(collection) {
        // Sync hook: the tombstone of a `merge` document records when it was deleted.
        let f = super::fields::for_delete(collection, id, &current, &stamp)?;
        let _ = js_sys::Reflect::set(&tomb, &JsValue::from_str("fields"), &f);
    }
    if store.tracks_base(collection) {
        if let Some(base) = records::base_of(&current) {
            records::set_base(&tomb, &base)?;
        }
    }
    let (put, clock) = futures::join!(
        st.put(&tomb, None),
        meta::write_stamps(meta_st, stamped.clock.as_ref(), stamped.floor.as_ref())
    );
    indexeddb::from_rexie(put)?;
    clock?;
    Ok(Some((stored, was_live)))
}
