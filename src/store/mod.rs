//! The IndexedDB store behind a `Database`: connection lifecycle, clock, and the operations the JS API
//! and the sync engine call. Layout and upgrades: `schema.rs`; records: `records.rs`.
//!
//! Connection loss: browsers close IndexedDB connections under a page (Safari for background tabs
//! fires `close`; another instance's upgrade or `Database.destroy` fires `versionchange`). The store
//! then marks the connection lost, and the next operation reopens it; an operation that failed
//! because the connection went away mid-way (`InvalidStateError`, or an abort while it closed) is
//! retried once on the new connection. Transactions are all-or-nothing, so a retry never doubles a
//! write.
//!
//! Wiped database: when the reopened database is not the one this store had (its `_meta` instance
//! marker is missing or another: eviction or "clear site data" deleted it, and the reopen created it
//! anew, empty), the store moves to a new [`Store::lineage`] and calls the write hook, so that sync
//! drops what it remembered of the old database (cursor, outbox positions) and runs again from the
//! start; live queries run again. `versionchange` to no version is not a wipe but a deletion (`Database.destroy`, or the
//! app deleting the database itself): the instance ends (`DATABASE_CLOSED`) instead of recreating it.

pub mod fields;
pub mod held;
pub mod indexeddb;
pub mod layout;
pub mod meta;
mod notice;
pub mod outbox;
mod prepared;
mod read;
pub mod records;
pub mod schema;
pub mod sync_ops;
mod write;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};

use ferrosync_core::by_name::ByName;
use ferrosync_core::document::IdGenerator;
use ferrosync_core::hlc::DEFAULT_MAX_DRIFT_MS;
use ferrosync_core::sync::write_clock::{Stamp, WriteClock};
use ferrosync_core::{Hlc, HlcClock};
use futures::future::{LocalBoxFuture, Shared};
use futures::FutureExt;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, IdbDatabase, IdbVersionChangeEvent};

pub use notice::{Notice, NoticeSink};
pub use prepared::Prepared;
pub use schema::{Declared, Schema};

use crate::error::{Error, Result};

/// An open connection and the schema read with it.
#[derive(Clone)]
pub struct Conn {
    pub db: IdbDatabase,
    pub schema: Rc<Schema>,
    generation: u64,
    lineage: u64,
}

impl Conn {
    /// The [`Store::lineage`] of the database this connection is on.
    pub fn lineage(&self) -> u64 {
        self.lineage
    }
}

enum State {
    Open(Conn, ConnHandlers),
    /// Closed by the browser; reopened by the next operation.
    Lost,
    /// Closed by the application (`db.close()`).
    Closed,
    /// Deleted (`Database.destroy`) while open.
    Deleted,
}

/// `close`/`versionchange` listeners of one connection, removed when it is replaced.
struct ConnHandlers {
    db: IdbDatabase,
    _closures: [Closure<dyn FnMut(Event)>; 2],
}

impl Drop for ConnHandlers {
    fn drop(&mut self) {
        self.db.set_onclose(None);
        self.db.set_onversionchange(None);
        // Unmanaged, the connection would never yield to another tab's upgrade: close it (a no-op
        // when it is already closed, as on reconnect).
        self.db.close();
    }
}

type Opening = Shared<LocalBoxFuture<'static, Result<Conn>>>;

pub(crate) struct Inner {
    name: String,
    declared: Declared,
    state: RefCell<State>,
    opening: RefCell<Option<Opening>>,
    generation: Cell<u64>,
    client_id: String,
    clock: RefCell<WriteClock>,
    clock_offset_ms: Cell<f64>,
    ids: RefCell<IdGenerator>,
    /// Told of every committed change, and of the end (the live queries; see `notice.rs`).
    sink: RefCell<Option<Rc<dyn NoticeSink>>>,
    /// Sync hooks (src/sync): told after every committed local write; collections whose writes
    /// record per-field HLCs (the `merge` policy).
    on_write: RefCell<Option<Rc<dyn Fn()>>>,
    // Lists, not sets: a handful of names, and a set type costs the module a kilobyte.
    tracked_fields: RefCell<Vec<String>>,
    tracked_bases: RefCell<Vec<String>>,
    /// The `_meta` instance marker of the database this store is on.
    instance: RefCell<String>,
    /// Bumped each time the database turned out to be wiped and recreated under this store.
    lineage: Cell<u64>,
}

/// A handle on one opened database (cheap to clone; all clones share the connection).
#[derive(Clone)]
pub struct Store(Rc<Inner>);

/// A [`Store`] that may be gone (see [`Store::downgrade`]).
#[derive(Clone)]
pub struct WeakStore(Weak<Inner>);

impl WeakStore {
    pub fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(Store)
    }
}

impl Store {
    /// Opens or creates the database, upgrading its schema to include `declared`.
    pub async fn open(name: String, declared: Declared) -> Result<Store> {
        let (db, schema) = schema::open(&name, &declared).await?;
        let (client_id, instance) = match meta::identity(&db, None).await {
            Ok(ids) => ids,
            Err(e) => {
                db.close();
                return Err(e);
            }
        };
        let clock = HlcClock::new(client_id.clone(), DEFAULT_MAX_DRIFT_MS)
            .map_err(|e| Error::storage("DataError", format!("stored client id: {e}")))?;
        let store = Store(Rc::new(Inner {
            name,
            declared,
            state: RefCell::new(State::Lost),
            opening: RefCell::new(None),
            generation: Cell::new(0),
            client_id,
            clock: RefCell::new(WriteClock::new(clock)),
            clock_offset_ms: Cell::new(0.0),
            ids: RefCell::new(IdGenerator::new()),
            sink: RefCell::new(None),
            on_write: RefCell::new(None),
            tracked_fields: RefCell::default(),
            tracked_bases: RefCell::default(),
            instance: RefCell::new(instance),
            lineage: Cell::new(0),
        }));
        store.install(db, schema);
        Ok(store)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The id of this client: node of its HLCs, sent with every push.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// `hlc` as this database's records store it: without the node when it is this client's.
    pub fn stored(&self, hlc: &Hlc) -> String {
        hlc.stored(self.client_id())
    }

    pub fn declared(&self) -> &Declared {
        &self.0.declared
    }

    /// A handle that does not keep the store alive.
    pub fn downgrade(&self) -> WeakStore {
        WeakStore(Rc::downgrade(&self.0))
    }

    /// Where notices of committed changes go from now on (the `Database` gives its live queries).
    pub fn set_sink(&self, sink: Rc<dyn NoticeSink>) {
        *self.0.sink.borrow_mut() = Some(sink);
    }

    fn sink(&self) -> Option<Rc<dyn NoticeSink>> {
        self.0.sink.borrow().clone()
    }

    /// Tells the sink about a committed change; `broadcast` also tells other instances and tabs.
    pub fn notify(&self, notice: Notice, broadcast: bool) {
        if let Some(sink) = self.sink() {
            sink.notice(notice, broadcast);
        }
    }

    /// For the sync engine: documents `ids` of `collection` were changed by a committed transaction
    /// that did not go through `put_all`/`delete` (a pulled page). Live queries here and in other
    /// tabs catch up.
    pub fn notify_changed(&self, collection: &str, ids: Vec<String>) {
        self.notify(Notice::remote(collection, ids, None), true);
    }

    /// One [`Store::notify_changed`] per collection for the engine's committed `ops` (a pulled page),
    /// with the new versions (`None`: deleted): a live query whose result the page provably leaves
    /// as it is is not run again.
    pub fn notify_applied(&self, ops: &[ferrosync_core::sync::StoreOp]) {
        use ferrosync_core::sync::StoreOp;
        type Changed<'a> = (Vec<String>, Vec<Option<&'a ferrosync_core::protocol::Doc>>);
        let Some(sink) = self.sink() else {
            return;
        };
        // By collection, in the order each first appears.
        let mut changed: ByName<Changed> = ByName::new();
        for op in ops {
            if let StoreOp::Put { change, .. } = op {
                let (ids, values) = changed.entry_or_default(&change.collection);
                ids.push(change.id.clone());
                values.push(change.doc.as_ref().filter(|_| !change.deleted));
            }
        }
        for (collection, (ids, values)) in changed.drain() {
            sink.pulled(Notice::remote(&collection, ids, None), &values);
        }
    }

    /// Tells the sink that the database ended (closed or deleted): live queries stop.
    fn ended(&self) {
        if let Some(sink) = self.sink() {
            sink.ended();
        }
    }

    /// Sync hook: `f` runs after every committed local write through this instance.
    pub fn set_on_write(&self, f: Option<Rc<dyn Fn()>>) {
        *self.0.on_write.borrow_mut() = f;
    }

    pub(crate) fn wrote(&self) {
        let hook = self.0.on_write.borrow().clone();
        if let Some(f) = hook {
            f();
        }
    }

    /// Which database this store is on: bumped each time the database was found wiped (deleted
    /// and created anew, empty) when a lost connection was reopened. Sync remembers the lineage
    /// its cursor was read in, and never writes that cursor into another.
    pub fn lineage(&self) -> u64 {
        self.0.lineage.get()
    }

    /// Sync hook: local writes to `collection` record per-field HLCs (`fields`; merge policy).
    pub fn track_fields(&self, collection: &str) {
        add_name(&self.0.tracked_fields, collection);
    }

    pub(crate) fn tracks_fields(&self, collection: &str) -> bool {
        has_name(&self.0.tracked_fields, collection)
    }

    /// Sync hook: local writes to `collection` record the version they were made on (`base`; a
    /// custom resolver's collection), so the server can tell a concurrent edit whatever its clock.
    pub fn track_base(&self, collection: &str) {
        add_name(&self.0.tracked_bases, collection);
    }

    pub(crate) fn tracks_base(&self, collection: &str) -> bool {
        has_name(&self.0.tracked_bases, collection)
    }

    /// Fails with `UNKNOWN_COLLECTION` unless `collection` was declared at open.
    pub fn check_collection(&self, collection: &str) -> Result<()> {
        if self.0.declared.collections.contains_key(collection) {
            Ok(())
        } else {
            Err(Error::UnknownCollection(collection.to_string()))
        }
    }

    /// Fails fast once the application closed the database or it was deleted.
    pub fn check_open(&self) -> Result<()> {
        match &*self.0.state.borrow() {
            State::Closed => Err(Error::DatabaseClosed(self.0.name.clone())),
            State::Deleted => Err(Error::DatabaseDeleted(self.0.name.clone())),
            _ => Ok(()),
        }
    }

    /// A new UUIDv7 document id.
    pub fn new_id(&self) -> String {
        self.0
            .ids
            .borrow_mut()
            .next(crate::env::now_ms().max(0.0) as u64, crate::env::random())
    }

    /// Wall clock corrected by the offset to the server's clock (set by the sync engine).
    pub fn now_ms(&self) -> u64 {
        (crate::env::now_ms() + self.0.clock_offset_ms.get()).max(0.0) as u64
    }

    /// Sets `serverTime - Date.now()`, used for stamping writes and bounding remote timestamps.
    pub fn set_clock_offset(&self, offset_ms: f64) {
        if offset_ms.is_finite() {
            self.0.clock_offset_ms.set(offset_ms);
        }
    }

    /// One write transaction's stamp, from the persisted clock and place floor it read (core's
    /// `WriteClock`: the persisted clock is a bound, written once in a while).
    pub fn stamp(&self, persisted: Option<&Hlc>, stored: Option<&Hlc>) -> Stamp {
        self.0
            .clock
            .borrow_mut()
            .stamp(persisted, stored, self.now_ms())
    }

    /// A small write's stamp, issued before its transaction's read comes back (see
    /// `WriteClock::early`).
    pub fn stamp_early(&self) -> Stamp {
        self.0.clock.borrow_mut().early(self.now_ms())
    }

    /// Whether `early` stands against what the transaction read, and what is left to write.
    pub fn confirm_stamp(
        &self,
        early: &Stamp,
        persisted: Option<&Hlc>,
        stored: Option<&Hlc>,
    ) -> Option<(Option<Hlc>, Option<Hlc>)> {
        self.0.clock.borrow_mut().confirm(early, persisted, stored)
    }

    /// Winds the write clock back to `to` (sync, after the server refused stamps that ran ahead
    /// of its clock: `CLOCK_AHEAD`); everywhere else the clock only moves forward.
    pub fn rewind_clock(&self, to: &Hlc) {
        self.0.clock.borrow_mut().rewind(to);
    }

    /// Absorbs a remote timestamp; refused when too far ahead of the corrected wall clock.
    pub fn observe(&self, remote: &Hlc) -> Result<(), ferrosync_core::HlcError> {
        let now = self.now_ms();
        self.0.clock.borrow_mut().clock_mut().observe(remote, now)
    }

    fn install(&self, db: IdbDatabase, schema: Schema) -> Conn {
        let generation = self.0.generation.get() + 1;
        self.0.generation.set(generation);
        let weak = Rc::downgrade(&self.0);
        let on_close = {
            let weak = weak.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                if let Some(inner) = weak.upgrade() {
                    Store(inner).mark_lost(generation, false);
                }
            })
        };
        let on_version_change = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
            let deleted = ev
                .dyn_ref::<IdbVersionChangeEvent>()
                .is_some_and(|e| e.new_version().is_none());
            if let Some(inner) = weak.upgrade() {
                Store(inner).mark_lost(generation, deleted);
            }
        });
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        let conn = Conn {
            db: db.clone(),
            schema: Rc::new(schema),
            generation,
            lineage: self.0.lineage.get(),
        };
        let handlers = ConnHandlers {
            db,
            _closures: [on_close, on_version_change],
        };
        *self.0.state.borrow_mut() = State::Open(conn.clone(), handlers);
        conn
    }

    /// Forgets connection `generation` (closing it, so an upgrade or delete elsewhere can proceed).
    /// Deleted: live queries end (after the state borrow is released; their callbacks run).
    fn mark_lost(&self, generation: u64, deleted: bool) {
        let mut state = self.0.state.borrow_mut();
        if let State::Open(conn, _) = &*state {
            if conn.generation == generation {
                conn.db.close();
                *state = if deleted { State::Deleted } else { State::Lost };
                drop(state);
                if deleted {
                    self.ended();
                }
            }
        }
    }

    fn is_open(&self, generation: u64) -> bool {
        matches!(&*self.0.state.borrow(), State::Open(c, _) if c.generation == generation)
    }

    /// The current connection, reopening it if the browser closed it.
    pub async fn conn(&self) -> Result<Conn> {
        match &*self.0.state.borrow() {
            State::Open(conn, _) => return Ok(conn.clone()),
            State::Closed => return Err(Error::DatabaseClosed(self.0.name.clone())),
            State::Deleted => return Err(Error::DatabaseDeleted(self.0.name.clone())),
            State::Lost => {}
        }
        let opening = self
            .0
            .opening
            .borrow_mut()
            .get_or_insert_with(|| {
                let store = self.clone();
                async move { store.reopen().await }.boxed_local().shared()
            })
            .clone();
        opening.await
    }

    async fn reopen(&self) -> Result<Conn> {
        let opened = match schema::open(&self.0.name, &self.0.declared).await {
            Ok((db, schema)) => match meta::identity(&db, Some(&self.0.client_id)).await {
                Ok((_, marker)) => Ok((db, schema, marker)),
                Err(e) => {
                    db.close();
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        self.0.opening.borrow_mut().take();
        let (db, schema, marker) = opened?;
        let lost = matches!(&*self.0.state.borrow(), State::Lost);
        if !lost {
            // Closed (or deleted) by the application meanwhile.
            db.close();
            return Err(Error::DatabaseClosed(self.0.name.clone()));
        }
        let wiped = *self.0.instance.borrow() != marker;
        if wiped {
            // Not the database this store had: deleted and created anew (by this reopen or by
            // another instance's), empty.
            *self.0.instance.borrow_mut() = marker;
            self.0.lineage.set(self.0.lineage.get() + 1);
            self.0.clock.borrow_mut().forget();
        }
        let conn = self.install(db, schema);
        if wiped {
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "ferrosync: the IndexedDB database {:?} was wiped while open (eviction or cleared \
                 site data); sync starts again from the start",
                self.0.name
            )));
            // Sync reacts as to a local write: it runs soon, and finds the new lineage.
            self.wrote();
            // Live queries read everything again (a notice without ids or version re-runs them).
            for collection in self.0.declared.collections.keys() {
                self.notify_changed(collection, Vec::new());
            }
        }
        Ok(conn)
    }

    /// Runs `op` on the connection; if the connection was lost during it, reopens and runs it once
    /// more. `op` must be a whole transaction (all-or-nothing), so running it twice is safe.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let conn = self.conn().await?;
        let generation = conn.generation;
        match op(conn).await {
            Err(e) if matches!(e, Error::ConnectionLost(_)) || !self.is_open(generation) => {
                self.mark_lost(generation, false);
                let conn = self.conn().await?;
                op(conn).await
            }
            other => other,
        }
    }

    /// Closes the database for good: later operations fail with `DATABASE_CLOSED`, watches stop.
    pub fn close(&self) {
        let old = std::mem::replace(&mut *self.0.state.borrow_mut(), State::Closed);
        if let State::Open(conn, handlers) = old {
            drop(handlers);
            conn.db.close();
        }
        self.ended();
    }

    /// Test hook: closes the underlying IndexedDB connection without telling the store, as a
    /// browser does when it evicts a background tab's connection.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn close_connection_for_test(&self) {
        if let State::Open(conn, _) = &*self.0.state.borrow() {
            conn.db.close();
        }
    }

    /// Test hook: the raw connection (to dispatch a synthetic `close` event, for instance).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn raw_connection_for_test(&self) -> Option<IdbDatabase> {
        match &*self.0.state.borrow() {
            State::Open(conn, _) => Some(conn.db.clone()),
            _ => None,
        }
    }
}

/// Adds `name` to a list kept as a set (a handful of collections: a scan, not a hash).
fn add_name(list: &RefCell<Vec<String>>, name: &str) {
    let mut list = list.borrow_mut();
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn has_name(list: &RefCell<Vec<String>>, name: &str) -> bool {
    list.borrow().iter().any(|n| n == name)
}
