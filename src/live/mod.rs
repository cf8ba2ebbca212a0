//! Live queries: `watch` calls back with the current result, then after every committed change that
//! alters it: writes through this instance, through other instances and tabs (`broadcast.rs`), and
//! pulls applied by the sync engine (`Store::notify_changed`).
//!
//! Each watch keeps its last result: the records (`id`, `hlc`, `doc`) and, for each, the fields the
//! query orders by (`Row`). A change notice names a collection, the ids one transaction wrote and its
//! HLC; a whole `bulkPut` is one notice, so at most one callback.
//! - Notices from this instance carry the new versions. If no changed id is in the result and no new
//!   version matches, nothing can have changed: no work at all. Otherwise the result is *patched in
//!   memory*: changed ids are removed, matching new versions inserted at their sorted position (a
//!   clone of the stored object, so the application's own object is never shared with the result).
//! - Notices from other instances carry ids and the HLC: the changed records are read by id; if each
//!   still has that HLC the result is patched the same way, else (a later write overtook the notice)
//!   the query runs again, so a callback never shows a state that mixes two transactions.
//! - The query runs again from IndexedDB whenever patching cannot be exact: an `offset`, a full
//!   `limit` page losing a member (the next one is unknown), many changes, or a sync notice.
//!
//! The callback fires only if ids, order or content differ (`records.js` `diffResult`; unchanged
//! documents keep their object identity). Work on one watch never overlaps: a notice arriving while
//! it runs marks it dirty, and one full re-query follows.

mod broadcast;

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::rc::Rc;

use ferrosync_core::query::{Query, Row};
use ferrosync_core::Hlc;
use js_sys::{Array, Function};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, Result};
use crate::store::{records, Prepared, Store};

pub use broadcast::Broadcast;

/// Above this many changed documents a notice re-runs the query instead of patching.
const PATCH_MAX: usize = 64;

/// What changed in one committed transaction.
#[derive(Debug, Clone)]
pub struct Notice {
    pub collection: String,
    pub ids: Vec<String>,
    /// HLC of the transaction that made all these changes, when known.
    pub hlc: Option<String>,
    /// New versions aligned with `ids` (`None`: deleted); writes through this instance only.
    pub docs: Option<Rc<Vec<Option<Prepared>>>>,
}

impl Notice {
    pub fn local(collection: &str, hlc: &Hlc, changes: Vec<(String, Option<Prepared>)>) -> Notice {
        let (ids, docs): (Vec<_>, Vec<_>) = changes.into_iter().unzip();
        Notice {
            collection: collection.to_string(),
            ids,
            hlc: Some(hlc.encode()),
            docs: Some(Rc::new(docs)),
        }
    }

    pub fn remote(collection: &str, ids: Vec<String>, hlc: Option<String>) -> Notice {
        Notice {
            collection: collection.to_string(),
            ids,
            hlc,
            docs: None,
        }
    }
}

/// A result as delivered: records in order, and the query's fields of each.
#[derive(Clone)]
pub struct Snapshot {
    pub records: Array,
    pub rows: Vec<Row>,
}

/// One `watch`.
pub struct Watch {
    collection: String,
    query: Query,
    callback: Function,
    active: Cell<bool>,
    running: Cell<bool>,
    dirty: Cell<bool>,
    last: RefCell<Option<Snapshot>>,
}

impl Watch {
    pub fn is_active(&self) -> bool {
        self.active.get()
    }
}

enum Work {
    Requery,
    Patch(Notice),
}

/// The watches of one `Database` instance and its BroadcastChannel.
#[derive(Default)]
pub struct Registry {
    watches: RefCell<Vec<Rc<Watch>>>,
    broadcast: RefCell<Option<Broadcast>>,
}

impl Registry {
    pub(crate) fn start_broadcast(&self, store: &Store) {
        *self.broadcast.borrow_mut() = Broadcast::open(store);
    }

    /// Stops every watch and the channel (database closed).
    pub(crate) fn shutdown(&self) {
        for w in self.watches.borrow_mut().drain(..) {
            w.active.set(false);
        }
        self.broadcast.borrow_mut().take();
    }

    fn remove(&self, watch: &Rc<Watch>) {
        watch.active.set(false);
        self.watches.borrow_mut().retain(|w| !Rc::ptr_eq(w, watch));
    }
}

impl Store {
    /// Starts a live query; the first callback (current result) follows asynchronously.
    pub fn watch(&self, collection: &str, query: Query, callback: Function) -> Result<Rc<Watch>> {
        self.check_open()?;
        self.check_collection(collection)?;
        let watch = Rc::new(Watch {
            collection: collection.to_string(),
            query,
            callback,
            active: Cell::new(true),
            running: Cell::new(false),
            dirty: Cell::new(false),
            last: RefCell::new(None),
        });
        self.live().watches.borrow_mut().push(watch.clone());
        schedule(self, &watch, Work::Requery);
        Ok(watch)
    }

    /// Ends a live query: no callback after this returns.
    pub fn unwatch(&self, watch: &Rc<Watch>) {
        self.live().remove(watch);
    }

    /// Brings the live queries a committed change may affect up to date; `broadcast` also tells
    /// other instances and tabs.
    pub fn notify(&self, notice: Notice, broadcast: bool) {
        let watches: Vec<Rc<Watch>> = self
            .live()
            .watches
            .borrow()
            .iter()
            .filter(|w| w.collection == notice.collection)
            .cloned()
            .collect();
        let mut ids_js: Option<Array> = None;
        for w in watches {
            if w.running.get() {
                w.dirty.set(true);
            } else if !cannot_change(&w, &notice, &mut ids_js) {
                schedule(self, &w, Work::Patch(notice.clone()));
            }
        }
        if broadcast {
            if let Some(b) = &*self.live().broadcast.borrow() {
                b.post(&notice.collection, &notice.ids, notice.hlc.as_deref());
            }
        }
    }

    /// For the sync engine: documents `ids` of `collection` were changed by a committed transaction
    /// that did not go through `put_all`/`delete` (a pulled page). Live queries here and in other
    /// tabs catch up.
    pub fn notify_changed(&self, collection: &str, ids: Vec<String>) {
        self.notify(Notice::remote(collection, ids, None), true);
    }
}

/// True when the notice provably leaves the watch's last result as it is: no changed id in it and
/// no new version matching (local notices, which know the new versions, only).
fn cannot_change(w: &Watch, notice: &Notice, ids_js: &mut Option<Array>) -> bool {
    let Some(docs) = &notice.docs else {
        return false;
    };
    if w.query.offset() > 0 || docs.len() > PATCH_MAX {
        return false;
    }
    let last = match &*w.last.borrow() {
        Some(s) => s.records.clone(),
        None => return false,
    };
    let may_match = docs
        .iter()
        .flatten()
        .any(|p| p.value().map_or(true, |v| w.query.matches_doc(v)));
    if may_match {
        return false;
    }
    let ids =
        ids_js.get_or_insert_with(|| notice.ids.iter().map(|s| JsValue::from_str(s)).collect());
    !records::contains_any(Some(last), ids)
}

fn schedule(store: &Store, watch: &Rc<Watch>, work: Work) {
    if watch.running.get() {
        watch.dirty.set(true);
        return;
    }
    watch.running.set(true);
    // `work` covers what is known now; anything arriving before it even starts (several notices
    // handled in one task, as a broadcast batch is) must mark the watch dirty, so clear it here,
    // not when the work starts.
    watch.dirty.set(false);
    let (store, watch) = (store.clone(), watch.clone());
    wasm_bindgen_futures::spawn_local(async move {
        run(&store, &watch, work).await;
        watch.running.set(false);
    });
}

async fn run(store: &Store, watch: &Watch, mut work: Work) {
    loop {
        let outcome = match work {
            Work::Requery => requery(store, watch).await,
            Work::Patch(notice) => match patch(store, watch, &notice).await {
                Ok(Some(s)) => Ok(s),
                Ok(None) => requery(store, watch).await,
                Err(e) => Err(e),
            },
        };
        if !watch.active.get() {
            return;
        }
        match outcome {
            Ok(snapshot) => deliver(watch, snapshot),
            Err(Error::DatabaseClosed(_) | Error::DatabaseDeleted(_)) => {
                watch.active.set(false);
                return;
            }
            Err(e) => {
                web_sys::console::error_1(&JsValue::from_str(&format!(
                    "ferrosync: live query on {:?} failed: {e}",
                    watch.collection
                )));
            }
        }
        if !watch.dirty.get() || !watch.active.get() {
            return;
        }
        // A re-query reads everything committed before it starts, so what arrives from here on is
        // either in it or marks the watch dirty again.
        watch.dirty.set(false);
        work = Work::Requery;
    }
}

async fn requery(store: &Store, watch: &Watch) -> Result<Snapshot> {
    let (records, rows) = store
        .query_result(&watch.collection, &watch.query, true)
        .await?;
    Ok(Snapshot { records, rows })
}

/// Calls back if the visible result differs from the last one delivered.
fn deliver(watch: &Watch, next: Snapshot) {
    let prev = watch.last.borrow().as_ref().map(|s| s.records.clone());
    let diff = records::diff_result(prev, &next.records);
    if diff.is_undefined() {
        return;
    }
    let current: Array = diff.unchecked_into();
    *watch.last.borrow_mut() = Some(Snapshot {
        records: current.clone(),
        rows: next.rows,
    });
    let docs = records::docs_of(&current);
    if let Err(e) = watch.callback.call1(&JsValue::NULL, &docs) {
        web_sys::console::error_2(&JsValue::from_str("ferrosync: a watch callback threw:"), &e);
    }
}

/// A new version that belongs in the result: its row and record.
struct Entry {
    row: Row,
    record: JsValue,
}

/// The last result with `notice` applied, or `None` when only a re-query can be exact.
async fn patch(store: &Store, watch: &Watch, notice: &Notice) -> Result<Option<Snapshot>> {
    let query = &watch.query;
    let Some(last) = watch.last.borrow().clone() else {
        return Ok(None);
    };
    if query.offset() > 0 || notice.ids.len() > PATCH_MAX {
        return Ok(None);
    }
    let Some(hlc) = &notice.hlc else {
        return Ok(None);
    };
    // The new version of each changed id, if it matches the query.
    let mut changes: Vec<(&str, Option<Entry>)> = Vec::with_capacity(notice.ids.len());
    match &notice.docs {
        Some(docs) => {
            for (id, doc) in notice.ids.iter().zip(docs.iter()) {
                let entry = match doc {
                    Some(p) => {
                        let Ok(value) = p.value() else {
                            return Ok(None);
                        };
                        query.matches_doc(value).then(|| Entry {
                            row: Row::from_doc(value, query.paths()),
                            record: records::fresh_record(id, hlc, &p.doc),
                        })
                    }
                    None => None,
                };
                changes.push((id, entry));
            }
        }
        None => {
            let fetched = store.records_by_id(&watch.collection, &notice.ids).await?;
            for (id, record) in notice.ids.iter().zip(fetched) {
                if record.is_undefined() {
                    changes.push((id, None));
                    continue;
                }
                if records::hlc_of(&record).as_deref() != Some(hlc.as_str()) {
                    return Ok(None); // overtaken by a later write: read a consistent state
                }
                let entry = match records::doc_of(&record) {
                    None => None,
                    Some(doc) => {
                        let Ok(value) = records::json_of(&doc) else {
                            return Ok(None);
                        };
                        query.matches_doc(&value).then(|| Entry {
                            row: Row::from_doc(&value, query.paths()),
                            record,
                        })
                    }
                };
                changes.push((id, entry));
            }
        }
    }
    let records = last.records.slice(0, last.records.length());
    let mut rows = last.rows;
    let page_was_full = query.limit().is_some_and(|l| rows.len() >= l);
    let mut removed = false;
    for (id, entry) in changes {
        if let Some(pos) = rows
            .iter()
            .position(|r| r.0.first().and_then(Value::as_str) == Some(id))
        {
            rows.remove(pos);
            records::remove_at(&records, pos as u32);
            removed = true;
        }
        if let Some(Entry { row, record }) = entry {
            let pos = rows.partition_point(|r| query.compare(r, &row) == Ordering::Less);
            rows.insert(pos, row);
            records::insert_at(&records, pos as u32, &record);
        }
    }
    if let Some(limit) = query.limit() {
        if removed && page_was_full {
            return Ok(None); // the document after the page is unknown
        }
        rows.truncate(limit);
        records::truncate(&records, limit.min(u32::MAX as usize) as u32);
    }
    Ok(Some(Snapshot { records, rows }))
}
