//! The browser side of sync: core's engine (`ferrosync_core::sync`) over IndexedDB and `fetch`,
//! scheduled by browser events, led by one tab per database.
//!
//! - `transport`: core's `Transport` over gloo-net (`POST /push`, `GET /pull`);
//! - `local_store`: core's `OutboxStore` over the store's IndexedDB database (the store's `sync_ops`);
//! - `schedule`: the agent: when to sync, leadership, retries, status;
//! - `lock`: Web Locks (one leader per database); `tabs`: messages between instances;
//! - `events`: the server's event stream; `triggers`: `online`/`offline`/`visibilitychange`;
//! - `read_ahead`: the next pull page / outbox batch, read while the current one is handled;
//! - `status`, `options`, `resolver`, `time`.
//!
//! The `Database` methods JavaScript calls are in `js/sync.rs`; nothing here imports `js`.
//!
//! `docs/ARCHITECTURE.md` ("Sync engine (browser)") describes the design.

mod events;
pub mod local_store;
mod lock;
pub mod options;
mod read_ahead;
mod resolver;
pub mod schedule;
pub mod status;
mod tabs;
mod time;
pub mod transport;
mod triggers;

pub use schedule::Agent;
pub use status::Status;
pub use tabs::Report;

use ferrosync_core::by_name::ByName;
use ferrosync_core::sync::Policy;
use wasm_bindgen::JsValue;

use crate::error::Result;
use crate::store::Store;

/// What `Database.open` needs to start sync, checked before the database is opened (so bad
/// options create nothing).
pub struct Setup {
    policies: ferrosync_core::sync::Policies,
    sync: Option<options::SyncOptions>,
}

/// Reads and checks the `sync` option and every collection's `conflict` option (as given to
/// `Database.open`).
pub fn setup(sync: Option<&JsValue>, conflicts: &ByName<JsValue>) -> Result<Setup> {
    let sync_options = options::sync_options(sync)?;
    let timeout = options::resolver_timeout_ms(sync)?;
    Ok(Setup {
        policies: options::policies(conflicts, timeout)?,
        sync: sync_options,
    })
}

/// Starts sync for a freshly opened database if its options ask for it. Collections using the
/// `merge` policy get per-field timestamps on every local write, with or without `sync`, so that a
/// database can start syncing later without losing field-level history.
pub async fn start(store: &Store, setup: Setup) -> Result<Option<Agent>> {
    let Setup { policies, sync } = setup;
    for collection in store.declared().collections.keys() {
        match policies.get(collection) {
            p if p.tracks_fields() => {
                store.track_fields(collection);
                // A merge edit is pushed with the version it was made on, so a newer edit made
                // without the server's current version is answered `stale` and joined with it
                // instead of replacing it whole (core's `SyncEngine::push_base`).
                store.track_base(collection);
            }
            Policy::Custom(_) => store.track_base(collection),
            _ => {}
        }
    }
    let Some(sync) = sync else {
        return Ok(None);
    };
    let agent = Agent::start(store.clone(), sync, policies).await?;
    store.set_on_write(Some(agent.write_notifier()));
    Ok(Some(agent))
}
