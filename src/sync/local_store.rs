//! core's outbox store ([`OutboxStore`]) over the browser store's IndexedDB database: `IdbTables`
//! implements [`OutboxStorage`] with the store's sync operations (`store/sync_ops.rs`, one IndexedDB
//! transaction each), so this module names no object store, index or record field. The bookkeeping
//! (positions, watermarks, rows awaiting an ack, the batch read ahead, the wiped-database rule and
//! how the clock is persisted) is core's, and runs natively in the fault simulation too.

use std::borrow::Cow;

use ferrosync_core::hlc::{HlcClock, DEFAULT_MAX_DRIFT_MS};
use ferrosync_core::sync::outbox::{
    Loaded, Mark, OutboxPos, OutboxRow, OutboxStorage, OutboxStore, Plan,
};
use ferrosync_core::sync::{DocKey, LocalStore, StoreOp, SyncClock};
use ferrosync_core::Hlc;
use futures::channel::oneshot;

use super::read_ahead::spawn;
use crate::error::{Error, Result};
use crate::store::{sync_ops, Store};

/// The sync engine's store over one `Database`'s IndexedDB database.
pub type IdbLocal = OutboxStore<IdbTables>;

/// Pending records of `store`: local changes the server has not acknowledged (the store counts its
/// outbox; see `store/outbox.rs`).
pub async fn pending_count(store: &Store) -> Result<u64> {
    store.check_open()?;
    Ok(u64::from(store.outbox_len().await?))
}

/// The IndexedDB side of [`IdbLocal`].
pub struct IdbTables {
    store: Store,
    /// Test hook: how far this device's clock is off (`sync.clockSkewMs`); 0 in real use.
    skew_ms: f64,
}

/// The sync engine's store over `store`. `skew_ms` pretends the device clock is off by that much
/// (tests of clock correction).
pub fn open(store: Store, skew_ms: f64) -> Result<IdbLocal> {
    let hlc = HlcClock::new(store.client_id().to_string(), DEFAULT_MAX_DRIFT_MS)
        .map_err(|e| Error::storage("DataError", format!("client id: {e}")))?;
    let clock = SyncClock::new(hlc, move || (js_sys::Date::now() + skew_ms).max(0.0) as u64);
    store.set_clock_offset(skew_ms);
    Ok(OutboxStore::new(IdbTables { store, skew_ms }, clock))
}

/// Sync's `_meta` values around the engine's store.
#[allow(async_fn_in_trait)]
pub trait SyncMeta {
    /// Reads sync's `_meta` values at open: the cursor, the clock offset; returns `lastSyncAt`.
    async fn restore(&self) -> Result<Option<u64>>;
    /// After a successful sync: when it ended, and the clock offset (survives a reload).
    async fn save_sync_end(&self, at_ms: u64) -> Result<()>;
    /// Local changes the server has not acknowledged (pending records).
    async fn pending_count(&self) -> Result<u64>;
    /// The offset to the server's clock, as this instance knows it.
    fn offset_ms(&self) -> i64;
}

impl SyncMeta for IdbLocal {
    async fn restore(&self) -> Result<Option<u64>> {
        let state = sync_ops::read_sync_state(&self.storage().store).await?;
        if let Some(off) = state.offset_ms {
            self.adopt_offset(off as i64);
        }
        self.remember_cursor(state.cursor, state.lineage);
        Ok(state.last_sync_at)
    }

    async fn save_sync_end(&self, at_ms: u64) -> Result<()> {
        let offset = self.clock().offset_ms() as f64;
        sync_ops::save_sync_end(&self.storage().store, at_ms, offset).await
    }

    async fn pending_count(&self) -> Result<u64> {
        pending_count(&self.storage().store).await
    }

    fn offset_ms(&self) -> i64 {
        self.clock().offset_ms()
    }
}

/// A batch being read in its own task.
pub type IdbBatch = oneshot::Receiver<Result<(Vec<OutboxRow>, u64)>>;

impl OutboxStorage for IdbTables {
    type Error = Error;
    type Batch = IdbBatch;

    fn lineage(&self) -> u64 {
        self.store.lineage()
    }

    fn wiped(&self) -> Error {
        Error::DatabaseWiped(self.store.name().to_string())
    }

    fn start_batch(&self, from: OutboxPos, limit: usize) -> IdbBatch {
        let store = self.store.clone();
        spawn(async move { sync_ops::read_outbox(&store, &from, limit).await })
    }

    async fn batch(&self, batch: IdbBatch) -> Result<(Vec<OutboxRow>, u64)> {
        batch
            .await
            .map_err(|_| Error::storage("AbortError", "reading the outbox was cancelled"))?
    }

    async fn save_marks(&self, lineage: u64, marks: Vec<Mark>) -> Result<u64> {
        sync_ops::save_marks(&self.store, lineage, marks).await
    }

    async fn load(&self, keys: &[DocKey]) -> Result<Loaded> {
        sync_ops::load(&self.store, keys).await
    }

    async fn write<'a>(
        &self,
        keys: &[DocKey],
        plan: &mut Plan<'_, 'a, Error>,
    ) -> Result<Option<Cow<'a, [StoreOp]>>> {
        sync_ops::write(&self.store, keys, plan).await
    }

    async fn read_cursor(&self) -> Result<(Option<String>, u64)> {
        sync_ops::read_cursor(&self.store).await
    }

    async fn stored_clock(&self) -> Result<Option<Hlc>> {
        sync_ops::stored_clock(&self.store).await
    }

    async fn queue_resync(&self, stamp: &Hlc) -> Result<u64> {
        sync_ops::resync(&self.store, stamp).await
    }

    /// One live-query notice per collection per committed call (so per pulled page), with the
    /// new versions, so live queries the page cannot touch are not run again.
    fn committed(&self, ops: &[StoreOp]) {
        self.store.notify_applied(ops);
    }

    fn share_offset(&self, offset_ms: i64) {
        self.store.set_clock_offset(self.skew_ms + offset_ms as f64);
    }

    fn rewind_clock(&self, to: &Hlc) {
        self.store.rewind_clock(to);
    }
}
