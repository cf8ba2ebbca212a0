//! The outbox as the browser keeps it, and the one [`LocalStore`] over it: the bookkeeping of a
//! sync's walk through the outbox (positions, watermarks, rows awaiting an ack, the batch read
//! ahead), the wiped-database rule, and how the clock is persisted. The IndexedDB store
//! (`src/sync/local_store.rs`) and the in-memory copy of its layout ([`crate::sync::mem::MemTables`])
//! only implement [`OutboxStorage`], one transaction per method, so the native simulation runs the
//! code the browser runs.
//!
//! Layout: a pending record carries `pend`, its place in its collection's outbox (the HLC of the
//! write that queued it, or just above the highest place given when the clock was wound back
//! below it: see [`Places`]). The outbox is read collection by collection (UTF-16 order), each in
//! `[pend, id]` order above the collection's watermark (`_meta` `outbox:<collection>`), which
//! acknowledgements move forward, never back, over a leading run of handled rows. Acknowledging
//! is one `_meta` write per collection, not one per record, and a row edited while its push was in
//! flight has a newer `pend`, above the watermark: it stays pending.
//!
//! Wiped database (eviction, "clear site data"): the storage reopens it empty under a new
//! lineage. Everything remembered of the old one (the cursor, positions, rows awaiting an ack, a
//! batch read ahead) is dropped at the first call that sees the new lineage, and a write carrying a
//! cursor read in another lineage is refused inside its transaction ([`OutboxStorage::wiped`]):
//! saved in the new database, that cursor would skip every document before it for good.
//!
//! Clock: the engine's [`SyncClock`] and the store's write clock are kept in step through the
//! persisted clock (at or above every HLC any tab issued: a local writer's bound, see
//! [`crate::sync::write_clock`]): each decision restores the sync clock from it first, and each
//! write persists what the sync clock observed in the same transaction ([`clock_to_persist`]), so
//! local writes made afterwards (in any tab) order after every remote version they saw.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::by_name::ByName;

use crate::hlc::Hlc;
use crate::query::cmp_str;

use super::clock::SyncClock;
use super::read_ahead::ReadAhead;
use super::store::{
    ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange, PendingKind, Pushed, StoreOp,
};

/// Where a read of the outbox starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxPos {
    /// At each collection's watermark.
    Start,
    /// After this row of `collection`'s outbox.
    After {
        collection: String,
        pend: String,
        id: String,
    },
    /// At the collection following this one.
    NextCollection(String),
}

impl OutboxPos {
    /// Of `collections` (in outbox order), the ones a read from here visits.
    pub fn collections<'a>(&self, collections: &'a [String]) -> &'a [String] {
        let start = match self {
            OutboxPos::Start => 0,
            OutboxPos::After { collection, .. } => {
                collections.partition_point(|x| cmp_str(x, collection).is_lt())
            }
            OutboxPos::NextCollection(c) => collections.partition_point(|x| cmp_str(x, c).is_le()),
        };
        &collections[start..]
    }

    /// In `collection`, the `[pend, id]` a read starts after: this position's, when it is in that
    /// collection, else the collection's watermark (`None`: none, read from the first row).
    pub fn start_in<'a>(
        &'a self,
        collection: &str,
        mark: Option<(&'a str, &'a str)>,
    ) -> Option<(&'a str, &'a str)> {
        match self {
            OutboxPos::After {
                collection: c,
                pend,
                id,
            } if c == collection => Some((pend, id)),
            _ => mark,
        }
    }
}

/// Outbox order within a collection: `[pend, id]`, strings compared as IndexedDB compares them.
pub fn cmp_place(a: (&str, &str), b: (&str, &str)) -> std::cmp::Ordering {
    cmp_str(a.0, b.0).then_with(|| cmp_str(a.1, b.1))
}

/// Whether a record with `pend` (None: not queued) is in the outbox above `mark`.
pub fn is_pending(pend: Option<&str>, id: &str, mark: Option<(&str, &str)>) -> bool {
    match (pend, mark) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(p), Some(m)) => cmp_place((p, id), m).is_gt(),
    }
}

/// One row of the outbox, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub change: crate::protocol::Change,
    pub kind: PendingKind,
    pub pend: String,
}

/// A watermark to save: the last row of an acknowledged run of `collection`'s outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub collection: String,
    pub pend: String,
    pub id: String,
}

/// What a write transaction read: the local versions of its keys (with their outbox state), the
/// persisted clock and the persisted place floor (see [`Places`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Loaded {
    pub clock: Option<Hlc>,
    pub place: Option<Hlc>,
    pub docs: Vec<Option<LocalDoc>>,
}

/// What a write transaction writes, decided by [`OutboxStore`] once the records were read.
#[derive(Debug)]
pub struct Planned<'a> {
    /// Their preconditions hold (checked against what the transaction read).
    pub ops: Cow<'a, [StoreOp]>,
    /// Aligned with `ops`: the place in the outbox of each op that queues a row (a pending
    /// [`StoreOp::Put`], a [`StoreOp::Requeue`]): behind every row now in the outbox.
    pub places: Vec<Option<Hlc>>,
    pub cursor: Option<&'a str>,
    /// The clock to persist (None: the persisted one stays).
    pub clock: Option<Hlc>,
    /// The place floor to persist (None: the persisted one stays).
    pub place: Option<Hlc>,
}

/// Where rows queued by one write transaction go in the outbox. A row's place is normally the HLC
/// of the write that queued it, which the clock keeps above every earlier place. But the clock can
/// be wound back (after `CLOCK_AHEAD`) below places already given, and below a watermark saved
/// from one: a row placed there would never be read, so never pushed. So a place is never at or
/// below the highest one given before (the floor: the persisted clock, or the persisted place when
/// a rewind left it above the clock), whatever the clock says.
#[derive(Debug, Clone)]
pub struct Places {
    floor: Option<Hlc>,
    stored: Option<Hlc>,
}

impl Places {
    /// From the persisted clock and place floor, read in the write's transaction.
    pub fn new(clock: Option<&Hlc>, stored: Option<&Hlc>) -> Self {
        Places {
            floor: clock.max(stored).cloned(),
            stored: stored.cloned(),
        }
    }

    /// The place of a row queued by a write stamped `hlc`: `hlc`, unless its time is at or below
    /// the floor's, then just above the floor (with `hlc`'s node). By time alone, because records
    /// store places without their node (`Hlc::stored`): two places at the same time would tie.
    pub fn next(&mut self, hlc: &Hlc) -> Hlc {
        let place = match &self.floor {
            Some(f) if (f.wall_ms, f.counter) >= (hlc.wall_ms, hlc.counter) => Hlc {
                node: hlc.node.clone(),
                ..successor(f)
            },
            _ => hlc.clone(),
        };
        self.floor = Some(place.clone());
        place
    }

    /// The place floor to persist beside `clock` (the clock persisted once the write commits):
    /// the floor, when it is above that clock and not saved yet.
    pub fn to_persist(&self, clock: Option<&Hlc>) -> Option<Hlc> {
        let floor = self.floor.as_ref()?;
        (Some(floor) > clock && Some(floor) != self.stored.as_ref()).then(|| floor.clone())
    }
}

/// The smallest HLC above `h` (same node).
fn successor(h: &Hlc) -> Hlc {
    let (wall_ms, counter) = if h.counter < crate::hlc::MAX_COUNTER {
        (h.wall_ms, h.counter + 1)
    } else {
        (h.wall_ms + 1, 0)
    };
    Hlc {
        wall_ms,
        counter,
        node: h.node.clone(),
    }
}

/// Decides, inside a write transaction, from its lineage and what it read; `None` writes nothing.
pub type Plan<'p, 'a, E> = dyn FnMut(u64, Loaded) -> Result<Option<Planned<'a>>, E> + 'p;

/// The clock a sync write persists beside what it writes (None: the persisted one stays): its
/// own clock when that is ahead, or was wound back (after `CLOCK_AHEAD`, so later writes, after a
/// reload too, are stamped sanely); and when it `touched` the order of local writes (absorbed
/// remote versions, queued rows at its own stamp) without passing the persisted clock, the
/// smallest clock above it. The persisted clock may be a local writer's bound
/// ([`crate::sync::write_clock`]), under which that writer stamps from memory until it reads
/// another value: it must read one, or its next write could be stamped below what sync just saw.
pub fn clock_to_persist(
    persisted: Option<&Hlc>,
    clock: &Hlc,
    rewound: bool,
    touched: bool,
) -> Option<Hlc> {
    match persisted {
        Some(p) if !rewound && p >= clock => touched.then(|| successor(p)),
        _ => Some(clock.clone()),
    }
}

/// The local database as [`OutboxStore`] needs it: each async method is one transaction.
#[allow(async_fn_in_trait)]
pub trait OutboxStorage {
    type Error: std::error::Error + 'static;
    /// A batch read started by [`OutboxStorage::start_batch`].
    type Batch;

    /// Which database is open: bumped each time it is found wiped and reopened empty.
    fn lineage(&self) -> u64;

    /// The error of a cursor written into a database other than the one it was read in.
    fn wiped(&self) -> Self::Error;

    /// Starts reading (one read transaction, begun now) up to `limit` outbox rows from `from`.
    fn start_batch(&self, from: OutboxPos, limit: usize) -> Self::Batch;

    /// The rows of a started batch, and the lineage they were read in.
    async fn batch(&self, batch: Self::Batch) -> Result<(Vec<OutboxRow>, u64), Self::Error>;

    /// Moves watermarks forward (never back) when the open database is `lineage`, in a transaction
    /// ordered before every later call's (the browser does not wait for its commit: should it
    /// fail, the rows stay pending and are pushed again). Returns the open database's lineage.
    async fn save_marks(&self, lineage: u64, marks: Vec<Mark>) -> Result<u64, Self::Error>;

    /// The local versions of `keys` (same order) and the persisted clock.
    async fn load(&self, keys: &[DocKey]) -> Result<Loaded, Self::Error>;

    /// One write transaction: reads `keys` and the persisted clock, lets `plan` decide
    /// (synchronously: nothing foreign is awaited, so the transaction stays open), then writes
    /// what it planned. `None` from `plan` writes nothing. Returns the ops written.
    async fn write<'a>(
        &self,
        keys: &[DocKey],
        plan: &mut Plan<'_, 'a, Self::Error>,
    ) -> Result<Option<Cow<'a, [StoreOp]>>, Self::Error>;

    /// The saved pull cursor, and the lineage it was read in.
    async fn read_cursor(&self) -> Result<(Option<String>, u64), Self::Error>;

    /// The persisted clock.
    async fn stored_clock(&self) -> Result<Option<Hlc>, Self::Error>;

    /// Server reset, one transaction: forget the cursor and the watermarks, and queue every record
    /// that is not pending as a resync at `stamp` (persisted as the clock too, if ahead). Returns
    /// the lineage written in.
    async fn queue_resync(&self, stamp: &Hlc) -> Result<u64, Self::Error>;

    /// `ops` (and a cursor) committed: tell whoever watches the data (live queries).
    fn committed(&self, _ops: &[StoreOp]) {}

    /// The offset to the server's clock changed (the store stamps local writes with it).
    fn share_offset(&self, _offset_ms: i64) {}

    /// The engine wound the clock back to `to` (after `CLOCK_AHEAD`): so does the write clock.
    fn rewind_clock(&self, _to: &Hlc) {}
}

/// An outbox row handed to the engine this pass, in outbox order, until the watermark passes it.
#[derive(Debug, Clone, PartialEq)]
struct Outstanding {
    id: String,
    hlc: Hlc,
    pend: String,
    /// Acknowledged by the server, or settled by the engine (the record was rewritten: it is no
    /// longer at this place in the outbox).
    handled: bool,
}

/// The walk through the outbox during one sync: where the last batch ended, and per collection the
/// rows handed out and not yet passed by the watermark. No IO.
#[derive(Debug, Default)]
pub struct Walk {
    /// The last row handed out (its key, and its `pend`, which is not in the engine's key).
    last: Option<(DocKey, String)>,
    outstanding: ByName<VecDeque<Outstanding>>,
}

impl Walk {
    /// Where the batch after `after` starts. `None` begins a new pass: nothing handed out before
    /// is waiting for an ack any more.
    pub fn from(&mut self, after: Option<&DocKey>) -> OutboxPos {
        let Some(k) = after else {
            self.outstanding.clear();
            return OutboxPos::Start;
        };
        match &self.last {
            Some((last, pend)) if last == k => OutboxPos::After {
                collection: k.collection.clone(),
                pend: pend.clone(),
                id: k.id.clone(),
            },
            // Not a row handed out here: the rest of that collection waits for the next pass
            // (never re-read what may not be acknowledged yet).
            _ => OutboxPos::NextCollection(k.collection.clone()),
        }
    }

    /// `rows` were handed to the engine. Returns where the next batch starts when this one was
    /// full (worth reading ahead), with the key the engine will ask after.
    pub fn handed(&mut self, rows: &[OutboxRow], limit: usize) -> Option<(DocKey, OutboxPos)> {
        for r in rows {
            self.outstanding
                .entry_or_default(&r.change.collection)
                .push_back(Outstanding {
                    id: r.change.id.clone(),
                    hlc: r.change.hlc.clone(),
                    pend: r.pend.clone(),
                    handled: false,
                });
        }
        let last = rows.last()?;
        let key = DocKey::of(&last.change);
        self.last = Some((key.clone(), last.pend.clone()));
        (rows.len() >= limit).then(|| {
            let next = OutboxPos::After {
                collection: key.collection.clone(),
                pend: last.pend.clone(),
                id: key.id.clone(),
            };
            (key, next)
        })
    }

    /// Marks handed-out rows as handled: `(key, hlc)` of each acknowledged or settled version.
    pub fn handled<'a>(&mut self, versions: impl Iterator<Item = (&'a DocKey, &'a Hlc)>) {
        for (key, hlc) in versions {
            if let Some(rows) = self.outstanding.get_mut(&key.collection) {
                if let Some(row) = rows.iter_mut().find(|r| r.id == key.id && &r.hlc == hlc) {
                    row.handled = true;
                }
            }
        }
    }

    /// The rows of committed `ops` that left their place in the outbox: each settled version was
    /// rewritten or unmarked (a version still pending, re-stamped too, is at a new place above
    /// every row handed out: see [`Places`]).
    pub fn settled(&mut self, ops: &[StoreOp]) {
        let settled: Vec<(DocKey, Hlc)> = ops
            .iter()
            .filter_map(|op| op.expect().map(|h| (op.key(), h.clone())))
            .collect();
        self.handled(settled.iter().map(|(k, h)| (k, h)));
    }

    /// Each collection's watermark moved over its leading run of handled rows. A row the server
    /// answered stale and the engine has not settled (yet) stops it there; the rows after it stay
    /// pending and go again next pass, where the server answers a repeated version as applied.
    pub fn marks(&mut self) -> Vec<Mark> {
        let mut marks = Vec::new();
        for (collection, rows) in self.outstanding.iter_mut() {
            let mut mark = None;
            while rows.front().is_some_and(|r| r.handled) {
                mark = rows.pop_front();
            }
            if let Some(m) = mark {
                marks.push(Mark {
                    collection: collection.clone(),
                    pend: m.pend,
                    id: m.id,
                });
            }
        }
        marks
    }

    /// Forgets everything (a new database, or an outbox rebuilt).
    pub fn clear(&mut self) {
        *self = Walk::default();
    }
}

/// The outbox batch a read ahead was started for: after this key, this many rows.
type BatchKey = (DocKey, usize);

/// The sync engine's [`LocalStore`] over an [`OutboxStorage`]: the IndexedDB store's, and the
/// in-memory one's in simulations.
pub struct OutboxStore<S: OutboxStorage> {
    storage: S,
    clock: SyncClock,
    /// The saved cursor, once read (None: not known yet).
    cursor: RefCell<Option<Option<String>>>,
    walk: RefCell<Walk>,
    /// The next push batch, read while the current one is on the wire.
    prefetch: ReadAhead<BatchKey, S::Batch>,
    /// The sync clock's rewinds already handed to the storage (see [`OutboxStore::take_rewind`]).
    rewinds_seen: Cell<u64>,
    /// The lineage everything remembered above was read in.
    lineage: Cell<u64>,
    /// The lineage of the database the cursor last handed to the engine was read in: the engine
    /// carries it (and the cursors of the pages it pulls from there) into `apply`.
    cursor_lineage: Cell<u64>,
}

impl<S: OutboxStorage> OutboxStore<S> {
    pub fn new(storage: S, clock: SyncClock) -> Self {
        let lineage = storage.lineage();
        OutboxStore {
            storage,
            clock,
            cursor: RefCell::new(None),
            walk: RefCell::default(),
            prefetch: ReadAhead::new(),
            rewinds_seen: Cell::new(0),
            lineage: Cell::new(lineage),
            cursor_lineage: Cell::new(lineage),
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The cursor as last read or written (`None` when not known yet).
    pub fn known_cursor(&self) -> Option<Option<String>> {
        self.cursor.borrow().clone()
    }

    /// Takes `cursor`, read outside the store calls (at open) in `lineage`, as the saved one.
    pub fn remember_cursor(&self, cursor: Option<String>, lineage: u64) {
        self.follow_lineage(lineage);
        self.cursor_lineage.set(lineage);
        *self.cursor.borrow_mut() = Some(cursor);
    }

    /// Adopts an offset to the server's clock learnt elsewhere (stored, or by the syncing tab),
    /// and hands it to the write clock.
    pub fn adopt_offset(&self, offset_ms: i64) {
        self.clock.set_offset_ms(offset_ms);
        self.share_offset();
    }

    fn share_offset(&self) {
        self.storage.share_offset(self.clock.offset_ms());
    }

    /// Moves to `lineage` (a store call ran there), dropping what was remembered of an older
    /// database. False when `lineage` is older than the one known: that call read a database
    /// that is gone since, and its result must not be used.
    fn follow_lineage(&self, lineage: u64) -> bool {
        let known = self.lineage.get();
        if lineage > known {
            self.lineage.set(lineage);
            *self.cursor.borrow_mut() = None;
            self.walk.borrow_mut().clear();
            self.prefetch.clear();
        }
        lineage >= known
    }

    /// Inside a write transaction in `lineage`: refuses to save `cursor` into a database other
    /// than the one the engine's cursor was read in. An empty cursor (read from the start) is a
    /// position in no database, and safe in any.
    fn check_cursor(&self, lineage: u64, cursor: Option<&str>) -> Result<(), S::Error> {
        self.follow_lineage(lineage);
        match cursor {
            Some(c) if !c.is_empty() && lineage != self.cursor_lineage.get() => {
                Err(self.storage.wiped())
            }
            _ => Ok(()),
        }
    }

    /// Whether the engine wound the sync clock back (after `CLOCK_AHEAD`) since the last write:
    /// then the write clock is wound back with it, and the next write persists the clock as it is
    /// instead of keeping the higher stored one.
    fn take_rewind(&self) -> bool {
        let n = self.clock.rewinds();
        if n == self.rewinds_seen.replace(n) {
            return false;
        }
        self.storage.rewind_clock(&self.clock.last());
        true
    }

    /// What a write of `ops` saves besides them, given the persisted clock and place floor.
    fn plan<'a>(
        &self,
        ops: Cow<'a, [StoreOp]>,
        cursor: Option<&'a str>,
        loaded: &Loaded,
    ) -> Planned<'a> {
        let mut places = Places::new(loaded.clock.as_ref(), loaded.place.as_ref());
        let requeue_at = ops
            .iter()
            .any(|op| matches!(op, StoreOp::Requeue { .. }))
            .then(|| self.clock.tick());
        let rows = ops
            .iter()
            .map(|op| match (op, &requeue_at) {
                (
                    StoreOp::Put {
                        change,
                        pending: true,
                        ..
                    },
                    _,
                ) => Some(places.next(&change.hlc)),
                (StoreOp::Requeue { .. }, Some(at)) => Some(places.next(at)),
                _ => None,
            })
            .collect();
        let rewound = self.take_rewind();
        let observed = self.clock.take_observed();
        let clock = clock_to_persist(loaded.clock.as_ref(), &self.clock.last(), rewound, observed);
        let place = places.to_persist(clock.as_ref().or(loaded.clock.as_ref()));
        Planned {
            places: rows,
            cursor,
            clock,
            place,
            ops,
        }
    }

    /// The persisted clock restores the sync clock, so decisions are stamped after everything this
    /// database ever wrote.
    fn restore_clock(&self, loaded: &Loaded) {
        if let Some(c) = &loaded.clock {
            self.clock.restore(c);
        }
    }

    async fn read(&self, from: OutboxPos, limit: usize) -> Result<(Vec<OutboxRow>, u64), S::Error> {
        self.storage
            .batch(self.storage.start_batch(from, limit))
            .await
    }

    /// The rows whose watermark can move now, saved.
    async fn advance_marks(&self) -> Result<(), S::Error> {
        let marks = self.walk.borrow_mut().marks();
        if marks.is_empty() {
            return Ok(());
        }
        let lineage = self.storage.save_marks(self.lineage.get(), marks).await?;
        // Positions in a database wiped since mean nothing in the new one (nothing was written).
        self.follow_lineage(lineage);
        Ok(())
    }

    /// After `ops` (and `cursor`) committed: the cached cursor, the outbox bookkeeping, and the
    /// storage's notice.
    async fn applied(&self, ops: &[StoreOp], cursor: Option<&str>) -> Result<(), S::Error> {
        if let Some(c) = cursor {
            *self.cursor.borrow_mut() = Some(Some(c.to_string()));
        }
        self.walk.borrow_mut().settled(ops);
        self.advance_marks().await?;
        self.storage.committed(ops);
        Ok(())
    }
}

/// Whether every op's precondition holds against `docs` (aligned with the ops).
fn expectations_hold(ops: &[StoreOp], docs: &[Option<LocalDoc>]) -> bool {
    ops.iter()
        .zip(docs)
        .all(|(op, doc)| doc.as_ref().map(|d| &d.change.hlc) == op.expect())
}

impl<S: OutboxStorage> LocalStore for OutboxStore<S> {
    type Error = S::Error;

    fn clock(&self) -> &SyncClock {
        &self.clock
    }

    /// Reads a batch; when it is full, starts reading the next one at once, so the storage works
    /// while this batch is on the wire (the engine asks for batches in key order). A batch read
    /// ahead is an earlier snapshot: a document edited since is pushed in its older version, its
    /// record has a newer `pend` (so the ack leaves it pending), and it goes next sync.
    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, S::Error> {
        self.follow_lineage(self.storage.lineage());
        let from = self.walk.borrow_mut().from(after);
        let hit = match after {
            Some(k) => self
                .prefetch
                .take(&(k.clone(), limit), self.clock.wall_ms()),
            None => {
                self.prefetch.clear();
                None
            }
        };
        let read = match hit {
            Some(batch) => self.storage.batch(batch).await.ok(),
            None => None,
        };
        let read = match read {
            Some(read) => read,
            None => self.read(from.clone(), limit).await?,
        };
        let rows = match read {
            (rows, lineage) if self.follow_lineage(lineage) => rows,
            // Read ahead in a database wiped since: read the new one.
            _ => {
                let (rows, lineage) = self.read(from, limit).await?;
                self.follow_lineage(lineage);
                rows
            }
        };
        if let Some((key, next)) = self.walk.borrow_mut().handed(&rows, limit) {
            let batch = self.storage.start_batch(next, limit);
            self.prefetch
                .start((key, limit), self.clock.wall_ms(), batch);
        }
        Ok(rows
            .into_iter()
            .map(|r| PendingChange {
                change: r.change,
                kind: r.kind,
            })
            .collect())
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), S::Error> {
        self.share_offset();
        self.walk
            .borrow_mut()
            .handled(acked.iter().map(|a| (&a.key, &a.hlc)));
        self.advance_marks().await
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, S::Error> {
        let loaded = self.storage.load(keys).await?;
        self.restore_clock(&loaded);
        Ok(loaded.docs)
    }

    async fn apply(&self, ops: &[StoreOp], cursor: Option<&str>) -> Result<ApplyOutcome, S::Error> {
        self.share_offset();
        let keys: Vec<DocKey> = ops.iter().map(StoreOp::key).collect();
        let written = self
            .storage
            .write(&keys, &mut |lineage, loaded| {
                self.check_cursor(lineage, cursor)?;
                if !expectations_hold(ops, &loaded.docs) {
                    return Ok(None);
                }
                Ok(Some(self.plan(Cow::Borrowed(ops), cursor, &loaded)))
            })
            .await?;
        if written.is_none() {
            return Ok(ApplyOutcome::Conflict);
        }
        self.applied(ops, cursor).await?;
        Ok(ApplyOutcome::Committed)
    }

    /// One write transaction: read, decide (synchronous, nothing foreign awaited, so the
    /// transaction stays open), write. Saves the apply's second read and cannot be raced.
    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, S::Error> {
        self.share_offset();
        let written = self
            .storage
            .write(keys, &mut |lineage, loaded| {
                self.check_cursor(lineage, cursor)?;
                self.restore_clock(&loaded);
                let Some(ops) = decide(&loaded.docs) else {
                    return Ok(None);
                };
                Ok(Some(self.plan(Cow::Owned(ops), cursor, &loaded)))
            })
            .await?;
        match written {
            None => Ok(ApplyOutcome::Conflict),
            Some(ops) => {
                if !ops.is_empty() || cursor.is_some() {
                    self.applied(&ops, cursor).await?;
                }
                Ok(ApplyOutcome::Committed)
            }
        }
    }

    async fn cursor(&self) -> Result<Option<String>, S::Error> {
        self.follow_lineage(self.storage.lineage());
        if let Some(c) = self.cursor.borrow().clone() {
            self.cursor_lineage.set(self.lineage.get());
            return Ok(c);
        }
        let (c, lineage) = self.storage.read_cursor().await?;
        self.remember_cursor(c.clone(), lineage);
        Ok(c)
    }

    async fn reset_for_resync(&self) -> Result<(), S::Error> {
        // The outbox is rebuilt: nothing read before (positions, a batch read ahead) holds.
        self.walk.borrow_mut().clear();
        self.prefetch.clear();
        // Stamped after everything any tab wrote: the stored clock first.
        if let Some(clock) = self.storage.stored_clock().await? {
            self.clock.restore(&clock);
        }
        let lineage = self.storage.queue_resync(&self.clock.tick()).await?;
        self.remember_cursor(None, lineage);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
