//! Engine tests over the in-memory store, server and transport. Futures run on
//! `futures::executor::block_on`; time is simulated, shared by the server and every device.

mod any_store;
mod engine;
mod faults;
mod faults_repro;
mod mem_server;
mod sim;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use crate::hlc::{HlcClock, DEFAULT_MAX_DRIFT_MS};
use crate::protocol::Change;
use crate::sync::mem::{MemServer, MemTransport};
use crate::sync::{
    DocKey, Policies, Policy, Progress, SyncClock, SyncConfig, SyncEngine, SyncError, SyncReport,
};

pub(super) use any_store::AnyStore;

/// A document's parsed value (tests compare values, not texts).
pub(super) fn value(doc: Option<crate::protocol::Doc>) -> Option<Value> {
    doc.map(|d| d.parse().expect("a document the tests wrote parses"))
}

pub(super) const NS: &str = "ns";
pub(super) const START: u64 = 1_700_000_000_000;

pub(super) struct World {
    pub time: Rc<Cell<u64>>,
    pub server: MemServer,
}

impl World {
    pub fn new() -> Self {
        let time = Rc::new(Cell::new(START));
        let t = time.clone();
        World {
            server: MemServer::new(move || t.get()),
            time,
        }
    }

    pub fn advance(&self, ms: u64) {
        self.time.set(self.time.get() + ms);
    }

    pub fn device(&self, name: &str, skew_ms: i64, policies: Policies) -> Device {
        self.device_with(name, skew_ms, policies, SyncConfig::default())
    }

    pub fn device_with(
        &self,
        name: &str,
        skew_ms: i64,
        policies: Policies,
        config: SyncConfig,
    ) -> Device {
        self.device_on(false, name, skew_ms, policies, config)
    }

    /// A device over the browser's outbox code ([`AnyStore::layout`]) when `layout`, else over
    /// the simple in-memory store.
    pub fn device_on(
        &self,
        layout: bool,
        name: &str,
        skew_ms: i64,
        policies: Policies,
        config: SyncConfig,
    ) -> Device {
        let t = self.time.clone();
        let clock = SyncClock::new(
            HlcClock::new(name, DEFAULT_MAX_DRIFT_MS).unwrap(),
            move || (t.get() as i64 + skew_ms) as u64,
        );
        let store = AnyStore::new(layout, clock);
        for c in ["notes", "mrg"] {
            if policies.get(c).tracks_fields() {
                store.track_fields(c);
            }
        }
        let transport = MemTransport::new(self.server.clone(), NS);
        let engine = SyncEngine::new(store.clone(), transport, policies).with_config(config);
        Device { store, engine }
    }
}

pub(super) struct Device {
    pub store: AnyStore,
    pub engine: SyncEngine<AnyStore, MemTransport>,
}

impl Device {
    pub fn sync(&self) -> Result<SyncReport, SyncError> {
        futures::executor::block_on(self.engine.sync_once(&mut |_| {}))
    }

    pub fn sync_with_progress(&self) -> (Result<SyncReport, SyncError>, Vec<Progress>) {
        let mut seen = Vec::new();
        let r = futures::executor::block_on(self.engine.sync_once(&mut |p| seen.push(p)));
        (r, seen)
    }

    pub fn net(&self) -> &MemTransport {
        self.engine.transport()
    }

    pub fn put(&self, collection: &str, id: &str, doc: Value) -> Change {
        self.store.write(collection, id, Some(doc))
    }

    pub fn delete(&self, collection: &str, id: &str) -> Change {
        self.store.write(collection, id, None)
    }

    /// The document as the app sees it (None: absent or deleted).
    pub fn doc(&self, collection: &str, id: &str) -> Option<Value> {
        self.store
            .get(collection, id)
            .filter(|c| !c.deleted)
            .and_then(|c| value(c.doc))
    }

    pub fn all(&self) -> BTreeMap<DocKey, Change> {
        self.store
            .docs()
            .into_iter()
            .map(|c| (DocKey::of(&c), c))
            .collect()
    }
}

pub(super) fn server_all(w: &World) -> BTreeMap<DocKey, Change> {
    w.server
        .docs(NS)
        .into_iter()
        .map(|c| (DocKey::of(&c), c))
        .collect()
}

/// A [`crate::sync::Sleep`] over simulated time: ready once `time` has moved `ms` past the call
/// (the simulation's driver moves time on while a sync waits).
pub(super) fn sim_sleep(time: Rc<Cell<u64>>) -> crate::sync::Sleep {
    Rc::new(move |ms| {
        let (time, deadline) = (time.clone(), time.get().saturating_add(ms));
        Box::pin(std::future::poll_fn(move |_| {
            if time.get() >= deadline {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }))
    })
}

pub(super) fn lww() -> Policies {
    Policies::new(Policy::Lww)
}

pub(super) fn merge_notes() -> Policies {
    Policies::new(Policy::Lww).with("notes", Policy::Merge)
}
