//! The client sync engine's browser-free heart: push the outbox, pull the feed, settle conflicts by
//! policy, with the local database and the server behind two small traits.
//!
//! - [`LocalStore`] / [`Transport`]: what the engine needs (IndexedDB and `fetch` in the browser,
//!   `mem` here, a test double built only for tests and with the `test-util` feature). No `Send`
//!   bounds: browser futures are not `Send`.
//! - [`SyncEngine::sync_once`]: one sync; [`Backoff`] and [`RetryClass`] say when to try again.
//! - [`Policies`]: `lww`, `merge` or a custom async resolver per collection.
//! - [`SyncClock`]: the HLC with wall time corrected by the server's clock.
//!
//! `docs/ARCHITECTURE.md` ("Sync engine (core)") describes the design.

pub mod backoff;
pub mod clock;
pub mod engine;
pub mod lineage;
#[cfg(any(test, feature = "test-util"))]
pub mod mem;
pub mod outbox;
pub mod policy;
pub mod push_rule;
pub mod read_ahead;
pub mod schedule;
pub mod store;
pub mod transport;
pub mod validate;
pub mod write_clock;

#[cfg(test)]
mod tests;

pub use backoff::{Backoff, RetryClass};
pub use clock::SyncClock;
pub use engine::{
    Progress, SetAside, SyncConfig, SyncEngine, SyncError, SyncReport, RESOLVER_FAILED,
};
pub use policy::{
    with_timeout, Conflict, CustomResolver, Policies, Policy, ResolverFuture, Sleep,
    DEFAULT_RESOLVER_TIMEOUT_MS,
};
pub use store::{
    ApplyOutcome, Decide, DocKey, LocalDoc, LocalStore, PendingChange, PendingKind, Pushed, StoreOp,
};
pub use transport::{Transport, TransportError};
