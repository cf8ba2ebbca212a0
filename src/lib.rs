//! ferrosync: offline-first, local-first data layer for web apps (browser library).
//!
//! - `store`: IndexedDB (schema and upgrades, records, outbox, clock), reads and writes;
//! - `live`: live queries and change notices across instances and tabs (the store's notice sink);
//! - `sync`: core's sync engine over the store and `fetch`, scheduled per database;
//! - `js`: the JavaScript API (`Database`, `Collection`, `Subscription`, the sync methods),
//!   conversions, error codes: every `#[wasm_bindgen]` export.
//!
//! Imports run down: `js` -> `live`, `sync` -> `store` -> `error`, `env` (`docs/ARCHITECTURE.md`).
//!
//! Pure logic (documents, queries, HLC, merge, protocol) lives in `ferrosync-core`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo)
)]

mod env;
pub mod error;
pub mod js;
pub mod live;
pub mod store;
pub mod sync;

pub use error::{Error, Result};
pub use js::{Collection, Database, Subscription};
