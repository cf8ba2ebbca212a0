//! Live queries: `watch` calls back with the current result, then after every committed change that
//! alters it: writes through this instance, through other instances and tabs (`broadcast.rs`), and
//! pulls applied by the sync engine (`Store::notify_changed`).
//!
//! Each watch keeps its last result (the records, so `id` and `hlc` of each document). A change notice
//! names a collection and the ids written in one transaction; a whole `bulkPut` is one notice, so
//! one callback. For a notice from this instance the new versions are known: when no changed id is
//! in the last result and no new version matches the query, the result cannot have changed and
//! nothing is read (with an `offset` this shortcut is off, since a removal before the page moves it).
//! Otherwise the query runs again and the callback fires only if ids, order or content differ. Runs
//! of one watch never overlap: a notice arriving during a run marks it dirty and one more run
//! follows, so the last callback always reflects the latest committed state.

mod broadcast;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ferrosync_core::query::Query;
use js_sys::{Array, Function};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Error;
use crate::store::{records, Store};

pub use broadcast::Broadcast;

/// What changed in one committed transaction.
#[derive(Debug, Clone)]
pub struct Notice {
    pub collection: String,
    pub ids: Vec<String>,
    /// New versions, aligned with `ids` (`None`: deleted), when known (local writes only).
    pub docs: Option<Rc<Vec<Option<Value>>>>,
}

impl Notice {
    pub fn local(collection: &str, changes: Vec<(String, Option<Value>)>) -> Notice {
        let (ids, docs): (Vec<_>, Vec<_>) = changes.into_iter().unzip();
        Notice {
            collection: collection.to_string(),
            ids,
            docs: Some(Rc::new(docs)),
        }
    }

    pub fn ids_only(collection: &str, ids: Vec<String>) -> Notice {
        Notice {
            collection: collection.to_string(),
            ids,
            docs: None,
        }
    }
}

/// One `watch`.
pub struct Watch {
    collection: String,
    query: Query,
    callback: Function,
    active: Cell<bool>,
    running: Cell<bool>,
    dirty: Cell<bool>,
    last: RefCell<Option<Array>>,
}

impl Watch {
    pub fn is_active(&self) -> bool {
        self.active.get()
    }
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
    pub fn watch(
        &self,
        collection: &str,
        query: Query,
        callback: Function,
    ) -> crate::error::Result<Rc<Watch>> {
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
        schedule(self, &watch);
        Ok(watch)
    }

    /// Ends a live query: no callback after this returns.
    pub fn unwatch(&self, watch: &Rc<Watch>) {
        self.live().remove(watch);
    }

    /// Re-evaluates the live queries a committed change may affect; `broadcast` also tells other
    /// instances and tabs.
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
            if !w.running.get() && cannot_change(&w, &notice, &mut ids_js) {
                continue;
            }
            schedule(self, &w);
        }
        if broadcast {
            if let Some(b) = &*self.live().broadcast.borrow() {
                b.post(&notice.collection, &notice.ids);
            }
        }
    }

    /// For the sync engine: documents `ids` of `collection` changed by a committed transaction that
    /// did not go through `put_all`/`delete` (a pulled page). Live queries here and in other tabs
    /// re-run.
    pub fn notify_changed(&self, collection: &str, ids: Vec<String>) {
        self.notify(Notice::ids_only(collection, ids), true);
    }
}

/// True when the notice provably leaves the watch's last result as it is.
fn cannot_change(w: &Watch, notice: &Notice, ids_js: &mut Option<Array>) -> bool {
    let Some(docs) = &notice.docs else {
        return false;
    };
    if w.query.offset() > 0 {
        return false;
    }
    let last = w.last.borrow().clone();
    if last.is_none() {
        return false;
    }
    if docs.iter().flatten().any(|doc| w.query.matches_doc(doc)) {
        return false;
    }
    let ids =
        ids_js.get_or_insert_with(|| notice.ids.iter().map(|s| JsValue::from_str(s)).collect());
    !records::contains_any(last, ids)
}

fn schedule(store: &Store, watch: &Rc<Watch>) {
    if watch.running.get() {
        watch.dirty.set(true);
        return;
    }
    watch.running.set(true);
    let (store, watch) = (store.clone(), watch.clone());
    wasm_bindgen_futures::spawn_local(async move {
        run(&store, &watch).await;
        watch.running.set(false);
    });
}

async fn run(store: &Store, watch: &Watch) {
    loop {
        watch.dirty.set(false);
        let result = store.query_records(&watch.collection, &watch.query).await;
        if !watch.active.get() {
            return;
        }
        match result {
            Ok(records) => {
                let prev = watch.last.borrow().clone();
                let diff = records::diff_result(prev, &records);
                if !diff.is_undefined() {
                    let current: Array = diff.unchecked_into();
                    *watch.last.borrow_mut() = Some(current.clone());
                    let docs = records::docs_of(&current);
                    if let Err(e) = watch.callback.call1(&JsValue::NULL, &docs) {
                        web_sys::console::error_2(
                            &JsValue::from_str("ferrosync: a watch callback threw:"),
                            &e,
                        );
                    }
                }
            }
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
    }
}
