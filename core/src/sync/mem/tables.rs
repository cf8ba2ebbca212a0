//! The browser store's IndexedDB layout in memory, as an [`OutboxStorage`]: one record per
//! document carrying its place in the outbox (`pend`), per-collection watermarks, the persisted
//! clock and the cursor, with every method one all-or-nothing step. Behind [`OutboxStore`] it runs
//! the outbox code the browser runs ([`MemTables::store`]).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use crate::hlc::Hlc;
use crate::merge::local_change;
use crate::protocol::Change;
use crate::query::cmp_str;
use crate::sync::clock::SyncClock;
use crate::sync::outbox::{
    clock_to_persist, cmp_place, is_pending, Loaded, Mark, OutboxPos, OutboxRow, OutboxStorage,
    OutboxStore, Places, Plan,
};
use crate::sync::store::{DocKey, LocalDoc, PendingKind, StoreOp};

use super::store::MemStoreError;

/// A record as IndexedDB holds it.
#[derive(Clone, Debug)]
struct Record {
    /// The version, without `base`.
    change: Change,
    /// The version a local edit was made on.
    base: Option<Hlc>,
    /// Its place in the outbox: pending while `[pend, id]` is above the watermark.
    pend: Option<String>,
    resync: bool,
}

impl Record {
    fn change(&self) -> Change {
        Change {
            base: self.base.clone(),
            ..self.change.clone()
        }
    }

    fn kind(&self) -> PendingKind {
        if self.resync {
            PendingKind::Resync
        } else {
            PendingKind::Edit
        }
    }
}

#[derive(Default)]
struct Db {
    /// collection -> id -> record.
    records: BTreeMap<String, BTreeMap<String, Record>>,
    /// `_meta`: the watermark of each collection, the clock, the place floor, the cursor.
    marks: BTreeMap<String, (String, String)>,
    clock: Option<Hlc>,
    place: Option<Hlc>,
    cursor: Option<String>,
}

impl Db {
    fn mark(&self, collection: &str) -> Option<(&str, &str)> {
        self.marks
            .get(collection)
            .map(|(p, i)| (p.as_str(), i.as_str()))
    }

    fn record(&self, key: &DocKey) -> Option<&Record> {
        self.records.get(&key.collection)?.get(&key.id)
    }

    fn pending(&self, key: &DocKey) -> Option<PendingKind> {
        let r = self.record(key)?;
        is_pending(r.pend.as_deref(), &key.id, self.mark(&key.collection)).then(|| r.kind())
    }

    fn put(&mut self, key: &DocKey, record: Record) {
        self.records
            .entry(key.collection.clone())
            .or_default()
            .insert(key.id.clone(), record);
    }

    fn persist(&mut self, clock: &Hlc, touched: bool) {
        if let Some(c) = clock_to_persist(self.clock.as_ref(), clock, false, touched) {
            self.clock = Some(c);
        }
    }

    /// The `$pending` index read of `read_pending` in `src/store/sync_ops.rs`.
    fn read_batch(&self, from: &OutboxPos, limit: usize) -> Vec<OutboxRow> {
        let mut collections: Vec<String> = self.records.keys().cloned().collect();
        collections.sort_by(|a, b| cmp_str(a, b));
        let mut out = Vec::new();
        for collection in from.collections(&collections) {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                break;
            }
            let start = from.start_in(collection, self.mark(collection));
            let mut rows: Vec<(&String, &Record)> = self.records[collection]
                .iter()
                .filter(|(id, r)| is_pending(r.pend.as_deref(), id, start))
                .collect();
            rows.sort_by(|(a, ra), (b, rb)| {
                let pa = ra.pend.as_deref().unwrap_or_default();
                let pb = rb.pend.as_deref().unwrap_or_default();
                cmp_place((pa, a), (pb, b))
            });
            out.extend(rows.into_iter().take(left).map(|(_, r)| OutboxRow {
                change: r.change(),
                kind: r.kind(),
                pend: r.pend.clone().unwrap_or_default(),
            }));
        }
        out
    }
}

/// The tables, shared by every handle (like tabs on one database).
#[derive(Default)]
struct Shared {
    db: RefCell<Db>,
    lineage: Cell<u64>,
    fail_next: Cell<bool>,
    /// Collections whose local writes record per-field HLCs (policy `merge`).
    tracked: RefCell<Vec<String>>,
    wipes: Cell<u64>,
    /// Local edits given a new stamp (old HLC, the edit as re-stamped), in order: a test's record
    /// of writes follows them.
    restamps: RefCell<Vec<(Hlc, Change)>>,
    /// This database's client id (the node of its clock): places are stored without it, as
    /// records store them (`Hlc::stored`).
    own: RefCell<String>,
}

/// The in-memory IndexedDB layout. Cloning gives another handle to the same tables.
#[derive(Clone, Default)]
pub struct MemTables {
    shared: Rc<Shared>,
}

impl MemTables {
    pub fn new() -> Self {
        Self::default()
    }

    /// The sync engine's store over these tables, with `clock`.
    pub fn store(&self, clock: SyncClock) -> Rc<OutboxStore<MemTables>> {
        *self.shared.own.borrow_mut() = clock.node();
        Rc::new(OutboxStore::new(self.clone(), clock))
    }

    /// A place as a record stores it.
    fn stored(&self, place: &Hlc) -> String {
        place.stored(&self.shared.own.borrow())
    }

    /// Local writes to `collection` record per-field HLCs (its policy is `merge`).
    pub fn track_fields(&self, collection: &str) {
        self.shared
            .tracked
            .borrow_mut()
            .push(collection.to_string());
    }

    /// A local write stamped `hlc`, as the app's `put`/`delete` does it (`src/store/write.rs`): the
    /// new version, queued in the outbox at its place, made on the version it replaces (or on that
    /// one's own base).
    pub fn write(&self, collection: &str, id: &str, doc: Option<Value>, hlc: Hlc) -> Change {
        let track = self.shared.tracked.borrow().iter().any(|c| c == collection);
        let doc = doc.map(|mut d| {
            if let Some(m) = d.as_object_mut() {
                m.insert("id".into(), Value::String(id.to_string()));
            }
            d
        });
        let key = DocKey::new(collection, id);
        let mut db = self.shared.db.borrow_mut();
        let prev = db.record(&key).cloned();
        let base = prev
            .as_ref()
            .map(|p| p.base.clone().unwrap_or_else(|| p.change.hlc.clone()));
        let c = local_change(
            prev.as_ref().map(|p| &p.change),
            collection,
            id,
            doc,
            hlc.clone(),
            track,
        );
        let mut places = Places::new(db.clock.as_ref(), db.place.as_ref());
        let place = places.next(&hlc);
        db.persist(&hlc, false);
        if let Some(p) = places.to_persist(db.clock.as_ref()) {
            db.place = Some(p);
        }
        db.put(
            &key,
            Record {
                change: c.clone(),
                base,
                pend: Some(self.stored(&place)),
                resync: false,
            },
        );
        c
    }

    /// The local version (tombstones included).
    pub fn get(&self, collection: &str, id: &str) -> Option<Change> {
        let db = self.shared.db.borrow();
        db.record(&DocKey::new(collection, id))
            .map(|r| r.change.clone())
    }

    /// Every local version, in key order.
    pub fn docs(&self) -> Vec<Change> {
        let db = self.shared.db.borrow();
        db.records
            .values()
            .flat_map(|m| m.values().map(|r| r.change.clone()))
            .collect()
    }

    pub fn pending_count(&self) -> usize {
        let db = self.shared.db.borrow();
        db.records
            .iter()
            .map(|(c, m)| {
                m.iter()
                    .filter(|(id, r)| is_pending(r.pend.as_deref(), id, db.mark(c)))
                    .count()
            })
            .sum()
    }

    pub fn is_pending(&self, collection: &str, id: &str) -> bool {
        let db = self.shared.db.borrow();
        db.pending(&DocKey::new(collection, id)).is_some()
    }

    pub fn saved_cursor(&self) -> Option<String> {
        self.shared.db.borrow().cursor.clone()
    }

    /// The next storage call fails (and changes nothing).
    pub fn fail_next_call(&self) {
        self.shared.fail_next.set(true);
    }

    /// The database is wiped under the running app and reopened empty under a new lineage.
    pub fn wipe(&self) {
        *self.shared.db.borrow_mut() = Db::default();
        self.shared.lineage.set(self.shared.lineage.get() + 1);
        self.shared.wipes.set(self.shared.wipes.get() + 1);
    }

    pub fn wipes(&self) -> u64 {
        self.shared.wipes.get()
    }

    /// Local edits given a new stamp so far: (old HLC, the edit as re-stamped).
    pub fn restamps(&self) -> Vec<(Hlc, Change)> {
        self.shared.restamps.borrow().clone()
    }

    fn check(&self) -> Result<(), MemStoreError> {
        if self.shared.fail_next.replace(false) {
            Err(MemStoreError::Injected)
        } else {
            Ok(())
        }
    }

    fn loaded(&self, keys: &[DocKey]) -> Loaded {
        let db = self.shared.db.borrow();
        Loaded {
            clock: db.clock.clone(),
            place: db.place.clone(),
            docs: keys
                .iter()
                .map(|k| {
                    db.record(k).map(|r| LocalDoc {
                        change: r.change(),
                        pending: db.pending(k),
                    })
                })
                .collect(),
        }
    }
}

/// A batch read at once (the snapshot the browser's read transaction would take when started).
pub type MemBatch = Result<(Vec<OutboxRow>, u64), MemStoreError>;

impl OutboxStorage for MemTables {
    type Error = MemStoreError;
    type Batch = MemBatch;

    fn lineage(&self) -> u64 {
        self.shared.lineage.get()
    }

    fn wiped(&self) -> MemStoreError {
        MemStoreError::Wiped
    }

    fn start_batch(&self, from: OutboxPos, limit: usize) -> MemBatch {
        self.check()?;
        let rows = self.shared.db.borrow().read_batch(&from, limit);
        Ok((rows, self.lineage()))
    }

    async fn batch(&self, batch: MemBatch) -> MemBatch {
        batch
    }

    async fn save_marks(&self, lineage: u64, marks: Vec<Mark>) -> Result<u64, MemStoreError> {
        self.check()?;
        if lineage == self.lineage() {
            let mut db = self.shared.db.borrow_mut();
            for m in marks {
                let advances = db
                    .mark(&m.collection)
                    .is_none_or(|cur| cmp_place((&m.pend, &m.id), cur).is_gt());
                if advances {
                    db.marks.insert(m.collection, (m.pend, m.id));
                }
            }
        }
        Ok(self.lineage())
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Loaded, MemStoreError> {
        self.check()?;
        Ok(self.loaded(keys))
    }

    async fn write<'a>(
        &self,
        keys: &[DocKey],
        plan: &mut Plan<'_, 'a, MemStoreError>,
    ) -> Result<Option<Cow<'a, [StoreOp]>>, MemStoreError> {
        self.check()?;
        let Some(planned) = plan(self.lineage(), self.loaded(keys))? else {
            return Ok(None);
        };
        let mut db = self.shared.db.borrow_mut();
        for (op, place) in planned.ops.iter().zip(&planned.places) {
            let key = op.key();
            let place = place.as_ref().map(|p| self.stored(p));
            match op {
                StoreOp::Put {
                    change, pending, ..
                } => {
                    if let Some(old) = op.restamped_from() {
                        let entry = (old.clone(), change.clone());
                        self.shared.restamps.borrow_mut().push(entry);
                    }
                    let record = Record {
                        change: Change {
                            base: None,
                            ..change.clone()
                        },
                        base: change.base.clone(),
                        pend: place.filter(|_| *pending),
                        resync: false,
                    };
                    db.put(&key, record);
                }
                StoreOp::Unpend { .. } => {
                    if let Some(r) = db
                        .records
                        .get_mut(&key.collection)
                        .and_then(|m| m.get_mut(&key.id))
                    {
                        r.pend = None;
                        r.resync = false;
                    }
                }
                StoreOp::Requeue { .. } => {
                    if let Some(r) = db
                        .records
                        .get_mut(&key.collection)
                        .and_then(|m| m.get_mut(&key.id))
                    {
                        if r.pend.is_some() {
                            r.pend = place;
                        }
                    }
                }
            }
        }
        if let Some(c) = planned.cursor {
            db.cursor = Some(c.to_string());
        }
        if let Some(c) = planned.clock {
            db.clock = Some(c);
        }
        if let Some(p) = planned.place {
            db.place = Some(p);
        }
        Ok(Some(planned.ops))
    }

    async fn read_cursor(&self) -> Result<(Option<String>, u64), MemStoreError> {
        self.check()?;
        Ok((self.shared.db.borrow().cursor.clone(), self.lineage()))
    }

    async fn stored_clock(&self) -> Result<Option<Hlc>, MemStoreError> {
        self.check()?;
        Ok(self.shared.db.borrow().clock.clone())
    }

    async fn queue_resync(&self, stamp: &Hlc) -> Result<u64, MemStoreError> {
        self.check()?;
        let mut guard = self.shared.db.borrow_mut();
        let db = &mut *guard;
        db.cursor = None;
        db.persist(stamp, true);
        let marks = std::mem::take(&mut db.marks);
        let at = self.stored(stamp);
        for (collection, records) in db.records.iter_mut() {
            let mark = marks.get(collection).map(|(p, i)| (p.as_str(), i.as_str()));
            for (id, r) in records.iter_mut() {
                if !is_pending(r.pend.as_deref(), id, mark) {
                    r.pend = Some(at.clone());
                    r.resync = true;
                }
            }
        }
        Ok(self.lineage())
    }
}
