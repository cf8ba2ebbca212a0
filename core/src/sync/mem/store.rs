//! A [`LocalStore`] in memory, with the same contract as the IndexedDB one: one outbox row per
//! document, conditional acks, all-or-nothing `apply`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::rc::Rc;

use serde_json::Value;

use crate::hlc::Hlc;
use crate::merge::local_change;
use crate::protocol::Change;
use crate::sync::clock::SyncClock;
use crate::sync::store::{
    load_then_apply, ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange,
    PendingKind, Pushed, StoreOp,
};

/// How this store fails: on purpose, to test that a failing store loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemStoreError {
    #[error("injected store failure")]
    Injected,
    /// The database was wiped ([`MemStore::wipe`]) after the cursor this write carries was read:
    /// writing it into the new, empty database would skip every document before it for good. The
    /// browser store refuses the same way (`DATABASE_WIPED`); the next sync starts from scratch.
    #[error("the local database was wiped while a sync was running; sync starts over")]
    Wiped,
}

#[derive(Default)]
struct State {
    docs: BTreeMap<DocKey, Change>,
    /// The version each local edit was made on (`Change::base`), kept beside the version as the
    /// browser store keeps it beside the document in the record.
    bases: BTreeMap<DocKey, Hlc>,
    outbox: BTreeMap<DocKey, (Hlc, PendingKind)>,
    cursor: Option<String>,
    tracked: HashSet<String>,
    applies: u64,
    /// Pages settled by `load_and_apply` (read, decide and write in one call).
    one_call_settles: u64,
    /// Bumped by every wipe: which database this is.
    lineage: u64,
    /// The lineage when the cursor was last read: a cursor write from an older one is refused.
    cursor_lineage: u64,
    wipes: u64,
    /// Local edits given a new stamp (old HLC, the edit as re-stamped), in order: a test's record
    /// of writes follows them (issue 13 item 2).
    restamps: Vec<(Hlc, Change)>,
}

/// Cloning gives another handle to the same store (like two tabs on one database).
#[derive(Clone)]
pub struct MemStore {
    state: Rc<RefCell<State>>,
    clock: Rc<SyncClock>,
    fail_next: Rc<Cell<bool>>,
}

impl MemStore {
    pub fn new(clock: SyncClock) -> Self {
        MemStore {
            state: Rc::default(),
            clock: Rc::new(clock),
            fail_next: Rc::default(),
        }
    }

    /// Local writes to `collection` record per-field HLCs (its policy is `merge`).
    pub fn track_fields(&self, collection: &str) {
        self.state
            .borrow_mut()
            .tracked
            .insert(collection.to_string());
    }

    /// A local write, as the app's `put`/`delete` would do it: new HLC, new version, outbox row.
    pub fn write(&self, collection: &str, id: &str, doc: Option<Value>) -> Change {
        let hlc = self.clock.tick();
        let mut st = self.state.borrow_mut();
        let key = DocKey::new(collection, id);
        let track = st.tracked.contains(collection);
        let doc = doc.map(|mut d| {
            if let Some(m) = d.as_object_mut() {
                m.insert("id".into(), Value::String(id.to_string()));
            }
            d
        });
        let prev = st.docs.get(&key);
        // The version this edit is made on: the one it replaces, or that one's own base when it
        // is a local edit too (what the browser store records).
        let base = prev.map(|p| st.bases.get(&key).unwrap_or(&p.hlc).clone());
        let c = local_change(prev, collection, id, doc, hlc.clone(), track);
        st.docs.insert(key.clone(), c.clone());
        if let Some(b) = base {
            st.bases.insert(key.clone(), b);
        }
        st.outbox.insert(key, (hlc, PendingKind::Edit));
        c
    }

    /// The local version (tombstones included).
    pub fn get(&self, collection: &str, id: &str) -> Option<Change> {
        self.state
            .borrow()
            .docs
            .get(&DocKey::new(collection, id))
            .cloned()
    }

    /// Every local version, in key order.
    pub fn docs(&self) -> Vec<Change> {
        self.state.borrow().docs.values().cloned().collect()
    }

    pub fn pending_count(&self) -> usize {
        self.state.borrow().outbox.len()
    }

    pub fn is_pending(&self, collection: &str, id: &str) -> bool {
        self.state
            .borrow()
            .outbox
            .contains_key(&DocKey::new(collection, id))
    }

    pub fn saved_cursor(&self) -> Option<String> {
        self.state.borrow().cursor.clone()
    }

    /// How many `apply` calls committed (one per page, one per batch of stale replies).
    pub fn applies(&self) -> u64 {
        self.state.borrow().applies
    }

    /// Pages settled through `load_and_apply` (decided between reading and writing, no await).
    pub fn one_call_settles(&self) -> u64 {
        self.state.borrow().one_call_settles
    }

    pub fn sync_clock(&self) -> &SyncClock {
        &self.clock
    }

    /// The next store call fails (and changes nothing).
    pub fn fail_next_call(&self) {
        self.fail_next.set(true);
    }

    /// The database is wiped under the running app ("clear site data", eviction): every document,
    /// outbox row and the cursor are gone; the clock (in memory) and the sync engine survive. A
    /// write that carries a cursor read before the wipe is then refused
    /// ([`MemStoreError::Wiped`]), as the browser store refuses it.
    pub fn wipe(&self) {
        let mut st = self.state.borrow_mut();
        st.docs.clear();
        st.bases.clear();
        st.outbox.clear();
        st.cursor = None;
        st.lineage += 1;
        st.wipes += 1;
    }

    /// How many times [`MemStore::wipe`] ran.
    /// Local edits given a new stamp so far: (old HLC, the edit as re-stamped).
    pub fn restamps(&self) -> Vec<(Hlc, Change)> {
        self.state.borrow().restamps.clone()
    }

    pub fn wipes(&self) -> u64 {
        self.state.borrow().wipes
    }

    fn check(&self) -> Result<(), MemStoreError> {
        if self.fail_next.replace(false) {
            Err(MemStoreError::Injected)
        } else {
            Ok(())
        }
    }

    /// Refuses a cursor read from a database that was wiped since.
    fn check_cursor_lineage(&self, cursor: Option<&str>) -> Result<(), MemStoreError> {
        let mut st = self.state.borrow_mut();
        if cursor.is_some() && st.cursor_lineage != st.lineage {
            st.cursor_lineage = st.lineage;
            return Err(MemStoreError::Wiped);
        }
        Ok(())
    }
}

fn with_base(c: &Change, base: Option<&Hlc>) -> Change {
    Change {
        base: base.cloned(),
        ..c.clone()
    }
}

impl LocalStore for MemStore {
    type Error = MemStoreError;

    fn clock(&self) -> &SyncClock {
        &self.clock
    }

    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, MemStoreError> {
        self.check()?;
        let st = self.state.borrow();
        let lower = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        Ok(st
            .outbox
            .range((lower, Bound::Unbounded))
            .take(limit)
            .filter_map(|(k, (_, kind))| {
                st.docs.get(k).map(|c| PendingChange {
                    change: with_base(c, st.bases.get(k)),
                    kind: *kind,
                })
            })
            .collect())
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), MemStoreError> {
        self.check()?;
        let mut st = self.state.borrow_mut();
        for a in acked {
            if st.outbox.get(&a.key).is_some_and(|(h, _)| *h == a.hlc) {
                st.outbox.remove(&a.key);
            }
        }
        Ok(())
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, MemStoreError> {
        self.check()?;
        let st = self.state.borrow();
        Ok(keys
            .iter()
            .map(|k| {
                st.docs.get(k).map(|c| LocalDoc {
                    change: with_base(c, st.bases.get(k)),
                    pending: st.outbox.get(k).map(|(_, kind)| *kind),
                })
            })
            .collect())
    }

    /// The default (nothing can interleave here anyway: no await is real), counted so tests can
    /// see which path a page took.
    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, MemStoreError> {
        self.check_cursor_lineage(cursor)?;
        self.state.borrow_mut().one_call_settles += 1;
        load_then_apply(self, keys, cursor, decide).await
    }

    async fn apply(
        &self,
        ops: &[StoreOp],
        cursor: Option<&str>,
    ) -> Result<ApplyOutcome, MemStoreError> {
        self.check()?;
        self.check_cursor_lineage(cursor)?;
        let mut st = self.state.borrow_mut();
        for op in ops {
            if st.docs.get(&op.key()).map(|c| &c.hlc) != op.expect() {
                return Ok(ApplyOutcome::Conflict);
            }
        }
        for op in ops {
            match op {
                StoreOp::Put {
                    change, pending, ..
                } => {
                    let key = DocKey::of(change);
                    if let Some(old) = op.restamped_from() {
                        st.restamps.push((old.clone(), change.clone()));
                    }
                    if *pending {
                        st.outbox
                            .insert(key.clone(), (change.hlc.clone(), PendingKind::Edit));
                    } else {
                        st.outbox.remove(&key);
                    }
                    match &change.base {
                        Some(b) => st.bases.insert(key.clone(), b.clone()),
                        None => st.bases.remove(&key),
                    };
                    st.docs.insert(
                        key,
                        Change {
                            base: None,
                            ..change.clone()
                        },
                    );
                }
                StoreOp::Unpend { key, .. } => {
                    st.outbox.remove(key);
                }
                // One row per document, in key order: nothing to move.
                StoreOp::Requeue { .. } => {}
            }
        }
        if let Some(c) = cursor {
            st.cursor = Some(c.to_string());
        }
        st.applies += 1;
        Ok(ApplyOutcome::Committed)
    }

    async fn cursor(&self) -> Result<Option<String>, MemStoreError> {
        self.check()?;
        let mut st = self.state.borrow_mut();
        st.cursor_lineage = st.lineage;
        Ok(st.cursor.clone())
    }

    async fn reset_for_resync(&self) -> Result<(), MemStoreError> {
        self.check()?;
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        st.cursor = None;
        st.cursor_lineage = st.lineage;
        for (k, c) in &st.docs {
            st.outbox
                .entry(k.clone())
                .or_insert_with(|| (c.hlc.clone(), PendingKind::Resync));
        }
        Ok(())
    }
}
