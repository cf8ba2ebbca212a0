//! The tests' local store: the simple in-memory one (one outbox row per document), or the
//! browser's outbox code ([`OutboxStore`] over [`MemTables`], IndexedDB's layout in memory), so one
//! test or simulation runs over either.

use std::rc::Rc;

use serde_json::Value;

use crate::hlc::Hlc;
use crate::protocol::Change;
use crate::sync::mem::{MemStore, MemStoreError, MemTables};
use crate::sync::outbox::OutboxStore;
use crate::sync::{
    ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange, Pushed, StoreOp, SyncClock,
};

/// Cloning gives another handle to the same store (like two tabs on one database).
#[derive(Clone)]
pub enum AnyStore {
    Simple(MemStore),
    Layout(MemTables, Rc<OutboxStore<MemTables>>),
}

impl AnyStore {
    /// Over the browser's outbox code when `layout`.
    pub fn new(layout: bool, clock: SyncClock) -> AnyStore {
        if layout {
            let tables = MemTables::new();
            let store = tables.store(clock);
            AnyStore::Layout(tables, store)
        } else {
            AnyStore::Simple(MemStore::new(clock))
        }
    }

    fn simple(&self, what: &str) -> &MemStore {
        match self {
            AnyStore::Simple(s) => s,
            AnyStore::Layout(..) => panic!("{what}: only the simple store counts this"),
        }
    }

    pub fn track_fields(&self, collection: &str) {
        match self {
            AnyStore::Simple(s) => s.track_fields(collection),
            AnyStore::Layout(t, _) => t.track_fields(collection),
        }
    }

    /// A local write, as the app's `put`/`delete` does it.
    pub fn write(&self, collection: &str, id: &str, doc: Option<Value>) -> Change {
        match self {
            AnyStore::Simple(s) => s.write(collection, id, doc),
            AnyStore::Layout(t, s) => t.write(collection, id, doc, s.clock().tick()),
        }
    }

    pub fn get(&self, collection: &str, id: &str) -> Option<Change> {
        match self {
            AnyStore::Simple(s) => s.get(collection, id),
            AnyStore::Layout(t, _) => t.get(collection, id),
        }
    }

    pub fn docs(&self) -> Vec<Change> {
        match self {
            AnyStore::Simple(s) => s.docs(),
            AnyStore::Layout(t, _) => t.docs(),
        }
    }

    pub fn pending_count(&self) -> usize {
        match self {
            AnyStore::Simple(s) => s.pending_count(),
            AnyStore::Layout(t, _) => t.pending_count(),
        }
    }

    pub fn is_pending(&self, collection: &str, id: &str) -> bool {
        match self {
            AnyStore::Simple(s) => s.is_pending(collection, id),
            AnyStore::Layout(t, _) => t.is_pending(collection, id),
        }
    }

    pub fn saved_cursor(&self) -> Option<String> {
        match self {
            AnyStore::Simple(s) => s.saved_cursor(),
            AnyStore::Layout(t, _) => t.saved_cursor(),
        }
    }

    pub fn sync_clock(&self) -> &SyncClock {
        self.clock()
    }

    pub fn fail_next_call(&self) {
        match self {
            AnyStore::Simple(s) => s.fail_next_call(),
            AnyStore::Layout(t, _) => t.fail_next_call(),
        }
    }

    pub fn wipe(&self) {
        match self {
            AnyStore::Simple(s) => s.wipe(),
            AnyStore::Layout(t, _) => t.wipe(),
        }
    }

    pub fn wipes(&self) -> u64 {
        match self {
            AnyStore::Simple(s) => s.wipes(),
            AnyStore::Layout(t, _) => t.wipes(),
        }
    }

    /// Local edits given a new stamp so far: (old HLC, the edit as re-stamped).
    pub fn restamps(&self) -> Vec<(Hlc, Change)> {
        match self {
            AnyStore::Simple(s) => s.restamps(),
            AnyStore::Layout(t, _) => t.restamps(),
        }
    }

    pub fn applies(&self) -> u64 {
        self.simple("applies").applies()
    }

    pub fn one_call_settles(&self) -> u64 {
        self.simple("one_call_settles").one_call_settles()
    }
}

impl LocalStore for AnyStore {
    type Error = MemStoreError;

    fn clock(&self) -> &SyncClock {
        match self {
            AnyStore::Simple(s) => s.clock(),
            AnyStore::Layout(_, s) => s.clock(),
        }
    }

    async fn pending(
        &self,
        after: Option<&DocKey>,
        limit: usize,
    ) -> Result<Vec<PendingChange>, MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.pending(after, limit).await,
            AnyStore::Layout(_, s) => s.pending(after, limit).await,
        }
    }

    async fn ack_pushed(&self, acked: &[Pushed]) -> Result<(), MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.ack_pushed(acked).await,
            AnyStore::Layout(_, s) => s.ack_pushed(acked).await,
        }
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Vec<Option<LocalDoc>>, MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.load(keys).await,
            AnyStore::Layout(_, s) => s.load(keys).await,
        }
    }

    async fn apply(
        &self,
        ops: &[StoreOp],
        cursor: Option<&str>,
    ) -> Result<ApplyOutcome, MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.apply(ops, cursor).await,
            AnyStore::Layout(_, s) => s.apply(ops, cursor).await,
        }
    }

    async fn load_and_apply(
        &self,
        keys: &[DocKey],
        cursor: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<ApplyOutcome, MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.load_and_apply(keys, cursor, decide).await,
            AnyStore::Layout(_, s) => s.load_and_apply(keys, cursor, decide).await,
        }
    }

    async fn cursor(&self) -> Result<Option<String>, MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.cursor().await,
            AnyStore::Layout(_, s) => s.cursor().await,
        }
    }

    async fn reset_for_resync(&self) -> Result<(), MemStoreError> {
        match self {
            AnyStore::Simple(s) => s.reset_for_resync().await,
            AnyStore::Layout(_, s) => s.reset_for_resync().await,
        }
    }
}
