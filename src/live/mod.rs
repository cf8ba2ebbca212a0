//! Live queries: `watch` calls back with the current result, then after every committed change that
//! alters it: writes through this instance, through other instances and tabs (`broadcast.rs`), and
//! pulls applied by the sync engine (`Store::notify_applied`).
//!
//! The [`Registry`] of one `Database` instance holds its watches and its BroadcastChannel. The
//! `Database` owns it and gives it to its store as the store's `NoticeSink`: the store says what it
//! committed (and when the database ended) without knowing who listens.
//!
//! Each watch keeps its last result: the records (`id`, `hlc`, `doc`) and core's incremental window
//! (`ferrosync_core::window`) over their rows. A change notice names a collection, the ids one
//! transaction wrote and its HLC; a whole `bulkPut` is one notice, so at most one callback.
//! - Notices from this instance carry the new versions. If no changed id is in the window and no
//!   new version enters it (matches, and on a full page sorts before its last row), nothing can have
//!   changed: no work at all, no callback. Otherwise the window is *patched*: the changed rows leave,
//!   the matching new versions are inserted at their sorted position (a clone of the stored object,
//!   so the application's own object is never shared with the result) and the same edits are
//!   replayed on the records: work proportional to the change, not to the result.
//! - Notices from other instances carry ids and the HLC: the changed records are read by id; if each
//!   still has that HLC the result is patched the same way, else (a later write overtook the notice)
//!   the query runs again, so a callback never shows a state that mixes two transactions.
//! - A pulled page's notice carries the new versions as parsed JSON (not JavaScript objects): a
//!   watch whose window the page provably leaves alone (the same test as above, with no bound on
//!   the page's size) does nothing; the others run again. So a live query open during a first sync
//!   runs once per page that holds its matches, not once per page.
//! - A notice older than the version a result already shows (or last saw leave) is ignored, so a
//!   result never goes back to an older version (another tab's notice overtaken by a newer write).
//! - The query runs again from IndexedDB only when patching cannot be exact: an `offset`, a full
//!   `limit` page left with a free slot (the next match is unknown: the re-run reads the index only
//!   as far as the page, `Query::walk`), many changes, or a sync notice.
//!
//! The callback fires only if ids, order or content differ (an identical rewrite is no change;
//! unchanged documents keep their object identity). Work on one watch never overlaps: a notice
//! arriving while it runs marks it dirty, and one full re-query follows.
//!
//! Besides results a watch reports two things through its [`Handlers`] (filled by the JS layer):
//! - A run that fails (the first query or a re-run: a record that cannot be read, an IndexedDB
//!   error) goes to `on_error` (logged without one). The watch keeps running and keeps its last
//!   result, but forgets its window, so the next change re-runs the query in full rather than
//!   patching a result that may have missed the change that failed.
//! - The end: when the database is closed (`Store::close`) or deleted, every watch of it stops and
//!   `on_end` is called once. Not after `unwatch` (the application ended it itself).

mod broadcast;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use ferrosync_core::document::ID_FIELD;
use ferrosync_core::protocol::Doc;
use ferrosync_core::query::{Query, Row};
use ferrosync_core::window::{Change, Edit, Outcome, Window};
use js_sys::{Array, Function};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, Result};
use crate::store::{records, Notice, NoticeSink, Prepared, Store, WeakStore};

pub use broadcast::Broadcast;

/// Above this many changed documents a notice re-runs the query instead of patching.
const PATCH_MAX: usize = 64;

/// A result as delivered: records in order, their documents (the array callbacks get copies of,
/// patched in place with the records so a write never walks the whole result), and the window over
/// their rows (`None` for queries with an `offset`, which are always re-run).
pub struct Snapshot {
    pub records: Array,
    pub docs: Array,
    pub window: Option<Window>,
}

/// What a watch reports besides results; the JS layer fills these with the application's callbacks.
#[derive(Default)]
pub struct Handlers {
    /// A run failed; the watch keeps going (its next change re-runs the query).
    pub on_error: Option<Box<dyn Fn(Error)>>,
    /// The watch ended with its database (closed or deleted); called at most once.
    pub on_end: Option<Box<dyn Fn()>>,
}

/// One `watch`.
pub struct Watch {
    collection: String,
    query: Rc<Query>,
    callback: Function,
    handlers: Handlers,
    active: Cell<bool>,
    running: Cell<bool>,
    dirty: Cell<bool>,
    last: RefCell<Option<Snapshot>>,
    /// How many times the query was run in full (the first run included): tests and benchmarks
    /// check that notices which cannot touch the result do not run it again.
    runs: Cell<u32>,
}

impl Watch {
    pub fn is_active(&self) -> bool {
        self.active.get()
    }

    /// Stops the watch because its database went away and tells the application, once.
    fn end(&self) {
        if !self.active.replace(false) {
            return; // already unwatched or ended
        }
        if let Some(f) = &self.handlers.on_end {
            f();
        }
    }

    fn fail(&self, e: Error) {
        // The failed run may have carried a change the window never saw: re-run in full next time.
        if let Some(s) = self.last.borrow_mut().as_mut() {
            s.window = None;
        }
        match &self.handlers.on_error {
            Some(f) => f(e),
            None => web_sys::console::error_1(&JsValue::from_str(&format!(
                "ferrosync: live query on {:?} failed: {e}",
                self.collection
            ))),
        }
    }
}

enum Work {
    Requery,
    Patch(Notice),
}

/// The live queries of one `Database` instance and its BroadcastChannel: the store's sink.
pub struct Registry {
    me: Weak<Registry>,
    /// The store the watches query (weak: the store holds this registry as its sink).
    store: WeakStore,
    watches: RefCell<Vec<Rc<Watch>>>,
    broadcast: RefCell<Option<Broadcast>>,
}

impl Registry {
    /// The live queries of `store`'s database, listening on its BroadcastChannel. Give it to the
    /// store (`Store::set_sink`) to hear what the store commits.
    pub fn start(store: &Store) -> Rc<Registry> {
        let registry = Rc::new_cyclic(|me: &Weak<Registry>| Registry {
            me: me.clone(),
            store: store.downgrade(),
            watches: RefCell::default(),
            broadcast: RefCell::new(None),
        });
        let weak = registry.me.clone();
        *registry.broadcast.borrow_mut() = Broadcast::open(store.name(), move |notices| {
            if let Some(registry) = weak.upgrade() {
                for notice in notices {
                    registry.notify(notice, false);
                }
            }
        });
        registry
    }

    /// Starts a live query on `store` (this registry's); the first callback (current result)
    /// follows asynchronously.
    pub fn watch(
        &self,
        store: &Store,
        collection: &str,
        query: Query,
        callback: Function,
        handlers: Handlers,
    ) -> Result<Rc<Watch>> {
        store.check_open()?;
        store.check_collection(collection)?;
        let watch = Rc::new(Watch {
            collection: collection.to_string(),
            query: Rc::new(query),
            callback,
            handlers,
            active: Cell::new(true),
            running: Cell::new(false),
            dirty: Cell::new(false),
            last: RefCell::new(None),
            runs: Cell::new(0),
        });
        self.watches.borrow_mut().push(watch.clone());
        schedule(store, &self.me, &watch, Work::Requery);
        Ok(watch)
    }

    /// Ends a live query: no callback after this returns.
    pub fn unwatch(&self, watch: &Rc<Watch>) {
        self.remove(watch);
    }

    /// Brings the live queries a committed change may affect up to date; `broadcast` also tells
    /// other instances and tabs.
    pub fn notify(&self, notice: Notice, broadcast: bool) {
        self.notify_where(notice, broadcast, cannot_change);
    }

    /// A pulled page (see [`NoticeSink::pulled`]): its notice carries no JavaScript documents, so
    /// a watch it can touch runs again, but one whose window it provably leaves alone does nothing.
    /// No bound on the page's size here: the check is a hash lookup and a comparison per document.
    pub fn notify_pulled(&self, notice: Notice, values: &[Option<&Doc>]) {
        self.notify_where(notice, true, |w, n| {
            let windowed = w.last.borrow().as_ref().is_some_and(|s| s.window.is_some());
            if !windowed {
                return false;
            }
            // Only the members the query reads are parsed out of each document's text.
            let mut names: Vec<&str> = w
                .query
                .paths()
                .iter()
                .filter_map(|p| p.segments().first().map(String::as_str))
                .collect();
            // A query on ids alone (a document watched by id) reads nothing the notice lacks:
            // a document's id is its change's, checked when the page was pulled.
            let by_id = names.iter().all(|n| *n == ID_FIELD);
            names.push(ID_FIELD);
            let picked: Option<Vec<Option<Value>>> = values
                .iter()
                .zip(&n.ids)
                .map(|(d, id)| match d {
                    None => Some(None),
                    Some(_) if by_id => {
                        // `insert`, not `collect`: a B-tree built from an iterator links a sort.
                        let mut m = serde_json::Map::new();
                        m.insert(ID_FIELD.to_string(), Value::String(id.clone()));
                        Some(Some(Value::Object(m)))
                    }
                    Some(d) => d.pick(&names).ok().map(Some),
                })
                .collect();
            picked.is_some_and(|p| {
                let refs: Vec<Option<&Value>> = p.iter().map(Option::as_ref).collect();
                window_stays(w, &n.ids, &refs)
            })
        });
    }

    fn notify_where(
        &self,
        notice: Notice,
        broadcast: bool,
        stays: impl Fn(&Watch, &Notice) -> bool,
    ) {
        let watches: Vec<Rc<Watch>> = self
            .watches
            .borrow()
            .iter()
            .filter(|w| w.collection == notice.collection)
            .cloned()
            .collect();
        if let Some(store) = self.store.upgrade() {
            for w in watches {
                if w.running.get() {
                    w.dirty.set(true);
                } else if !stays(&w, &notice) {
                    schedule(&store, &self.me, &w, Work::Patch(notice.clone()));
                }
            }
        }
        if broadcast {
            if let Some(b) = &*self.broadcast.borrow() {
                b.post(&notice.collection, &notice.ids, notice.hlc.as_deref());
            }
        }
    }

    /// Test hook: full runs of every live query so far (first runs included).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn runs_for_test(&self) -> u32 {
        self.watches.borrow().iter().map(|w| w.runs.get()).sum()
    }

    /// Test hook: notices waiting to be broadcast (throttled, or not yet flushed by `pagehide`).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn queued_notices_for_test(&self) -> usize {
        self.broadcast
            .borrow()
            .as_ref()
            .map_or(0, Broadcast::queued)
    }

    /// Ends every watch (each one's `on_end`) and closes the channel: the database was closed or
    /// deleted. No borrow is held while the application's callbacks run (they may unsubscribe).
    pub fn shutdown(&self) {
        let watches: Vec<Rc<Watch>> = self.watches.borrow_mut().drain(..).collect();
        self.broadcast.borrow_mut().take();
        for w in watches {
            w.end();
        }
    }

    /// Takes `watch` out of the registry; `unwatch` also marks it inactive (no `on_end`).
    fn forget(&self, watch: &Watch) {
        self.watches
            .borrow_mut()
            .retain(|w| !std::ptr::eq(Rc::as_ptr(w), watch));
    }

    fn remove(&self, watch: &Rc<Watch>) {
        watch.active.set(false);
        self.forget(watch);
    }
}

impl NoticeSink for Registry {
    fn notice(&self, notice: Notice, broadcast: bool) {
        self.notify(notice, broadcast);
    }

    fn pulled(&self, notice: Notice, values: &[Option<&Doc>]) {
        self.notify_pulled(notice, values);
    }

    fn ended(&self) {
        self.shutdown();
    }
}

/// True when the notice provably leaves the watch's last result as it is: no changed id in its
/// window and no new version entering it (local notices, which know the new versions, only).
fn cannot_change(w: &Watch, notice: &Notice) -> bool {
    let Some(docs) = &notice.docs else {
        return false;
    };
    if docs.len() > PATCH_MAX {
        return false;
    }
    let mut values = Vec::with_capacity(docs.len());
    for p in docs.iter() {
        match p.as_ref().map(Prepared::value) {
            None => values.push(None),
            Some(Ok(v)) => values.push(Some(v)),
            Some(Err(_)) => return false,
        }
    }
    window_stays(w, &notice.ids, &values)
}

/// True when changing `ids` to `values` (aligned; `None`: deleted) provably leaves the watch's
/// window as it is: no changed id in it and no new version entering it.
fn window_stays(w: &Watch, ids: &[String], values: &[Option<&Value>]) -> bool {
    let last = w.last.borrow();
    let Some(window) = last.as_ref().and_then(|s| s.window.as_ref()) else {
        return false;
    };
    let rows: Vec<Row> = values
        .iter()
        .flatten()
        .filter(|v| w.query.matches_doc(v))
        .map(|v| Row::from_doc(v, w.query.paths()))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows: Vec<Option<&Row>> = rows.iter().map(Some).collect();
    !window.may_change(&ids, &rows)
}

fn schedule(store: &Store, registry: &Weak<Registry>, watch: &Rc<Watch>, work: Work) {
    if watch.running.get() {
        watch.dirty.set(true);
        return;
    }
    watch.running.set(true);
    // `work` covers what is known now; anything arriving before it even starts (several notices
    // handled in one task, as a broadcast batch is) must mark the watch dirty, so clear it here,
    // not when the work starts.
    watch.dirty.set(false);
    let (store, registry, watch) = (store.clone(), registry.clone(), watch.clone());
    crate::env::spawn(async move {
        run(&store, &registry, &watch, work).await;
        watch.running.set(false);
    });
}

async fn run(store: &Store, registry: &Weak<Registry>, watch: &Watch, mut work: Work) {
    loop {
        let outcome = match work {
            Work::Requery => requery(store, watch).await.map(Some),
            Work::Patch(notice) => match patch(store, watch, &notice).await {
                Ok(Patched::Done) => Ok(None),
                Ok(Patched::Refill) => requery(store, watch).await.map(Some),
                Err(e) => Err(e),
            },
        };
        if !watch.active.get() {
            return;
        }
        match outcome {
            Ok(Some((records, rows))) => deliver(watch, records, rows),
            Ok(None) => {}
            Err(Error::DatabaseClosed(_) | Error::DatabaseDeleted(_)) => {
                // Closed or deleted (by another tab, say) and not yet shut down here: it ends.
                if let Some(registry) = registry.upgrade() {
                    registry.forget(watch);
                }
                watch.end();
                return;
            }
            Err(e) => watch.fail(e),
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

async fn requery(store: &Store, watch: &Watch) -> Result<(Array, Vec<Row>)> {
    watch.runs.set(watch.runs.get().saturating_add(1));
    store
        .query_result(&watch.collection, &watch.query, true)
        .await
}

/// Takes a fresh result; calls back if the visible result differs from the last one delivered.
fn deliver(watch: &Watch, records: Array, rows: Vec<Row>) {
    let mut last = watch.last.borrow_mut();
    let prev = last.as_ref().map(|s| (s.records.clone(), s.docs.clone()));
    let diff = records::diff_result(prev.as_ref().map(|p| p.0.clone()), &records);
    let window = match last.take().and_then(|s| s.window) {
        Some(mut w) => {
            w.refresh(rows);
            Some(w)
        }
        None => Window::supports(&watch.query).then(|| Window::new(watch.query.clone(), rows)),
    };
    if diff.is_undefined() {
        // Same visible result; keep the records shown (their identities) with the new window.
        let (records, docs) = prev.unwrap_or_else(|| {
            let docs = records::docs_of(&records);
            (records, docs)
        });
        *last = Some(Snapshot {
            records,
            docs,
            window,
        });
        return;
    }
    let current: Array = diff.unchecked_into();
    let docs = records::docs_of(&current);
    *last = Some(Snapshot {
        records: current,
        docs: docs.clone(),
        window,
    });
    drop(last);
    call(watch, &docs);
}

/// Calls back with a copy of `docs`: the application may keep or change its array while the
/// watch patches its own.
fn call(watch: &Watch, docs: &Array) {
    let docs = records::shown_docs(docs);
    if let Err(e) = watch.callback.call1(&JsValue::NULL, &docs) {
        web_sys::console::error_2(&JsValue::from_str("ferrosync: a watch callback threw:"), &e);
    }
}

enum Patched {
    /// Applied (or nothing to do); called back if anything visible changed.
    Done,
    /// Only a re-run of the query can be exact.
    Refill,
}

/// Applies `notice` to the last result through its window.
async fn patch(store: &Store, watch: &Watch, notice: &Notice) -> Result<Patched> {
    let query = &watch.query;
    let has_window = watch
        .last
        .borrow()
        .as_ref()
        .is_some_and(|s| s.window.is_some());
    if !has_window || notice.ids.len() > PATCH_MAX {
        return Ok(Patched::Refill);
    }
    let Some(hlc) = &notice.hlc else {
        return Ok(Patched::Refill);
    };
    // The new version of each changed id (its row when it matches) and its record.
    let mut changes: Vec<Change> = Vec::with_capacity(notice.ids.len());
    let fresh = Array::new();
    match &notice.docs {
        Some(docs) => {
            for (id, doc) in notice.ids.iter().zip(docs.iter()) {
                let mut row = None;
                let mut record = JsValue::UNDEFINED;
                if let Some(p) = doc {
                    let Ok(value) = p.value() else {
                        return Ok(Patched::Refill);
                    };
                    if query.matches_doc(value) {
                        row = Some(Row::from_doc(value, query.paths()));
                        record = records::fresh_record(id, hlc, &p.doc);
                    }
                }
                fresh.push(&record);
                changes.push(Change {
                    id: id.clone(),
                    hlc: Some(hlc.clone()),
                    row,
                });
            }
        }
        None => {
            let fetched = store.records_by_id(&watch.collection, &notice.ids).await?;
            for (id, record) in notice.ids.iter().zip(fetched) {
                let mut row = None;
                if !record.is_undefined() {
                    if records::hlc_of(&record).as_deref() != Some(hlc.as_str()) {
                        return Ok(Patched::Refill); // overtaken by a later write: read a consistent state
                    }
                    if let Some(doc) = records::doc_of(&record) {
                        let Ok(value) = records::json_of(&doc) else {
                            return Ok(Patched::Refill);
                        };
                        if query.matches_doc(&value) {
                            row = Some(Row::from_doc(&value, query.paths()));
                        }
                    }
                }
                fresh.push(&record);
                changes.push(Change {
                    id: id.clone(),
                    hlc: Some(hlc.clone()),
                    row,
                });
            }
        }
    }
    if !watch.active.get() {
        return Ok(Patched::Done);
    }
    let mut last = watch.last.borrow_mut();
    let Some(Snapshot {
        records,
        docs,
        window: Some(window),
    }) = last.as_mut()
    else {
        return Ok(Patched::Refill);
    };
    let shown = records.clone();
    let outcome = window.apply(&changes, |pos| {
        records::hlc_of(&shown.get(pos.min(u32::MAX as usize) as u32))
    });
    let edits = match outcome {
        Outcome::Unchanged => return Ok(Patched::Done),
        Outcome::Refill => return Ok(Patched::Refill),
        Outcome::Patched(edits) => edits,
    };
    let mut flat: Vec<u32> = Vec::with_capacity(edits.len() * 2);
    for e in edits {
        let (op, x, y) = match e {
            Edit::Remove(pos) => (0, pos, 0),
            Edit::Insert { pos, change } => (1, pos, change),
            Edit::Truncate(len) => (2, len, 0),
        };
        let clamp = |n: usize| n.min(u32::MAX as usize) as u32;
        flat.extend([op, clamp(x), clamp(y)]);
    }
    let visible = records::replay(records, docs, &flat, &fresh);
    let current = docs.clone();
    drop(last);
    if visible {
        call(watch, &current);
    }
    Ok(Patched::Done)
}
