//! core's [`ReadAhead`](ferrosync_core::sync::read_ahead::ReadAhead) over a task spawned on the
//! page: the pull page after the one being applied (`transport`). The read runs at once; its
//! result waits on a channel until taken.

use std::future::Future;

use ferrosync_core::sync::read_ahead::ReadAhead as Slot;
use futures::channel::oneshot;

use super::time::now_ms;

/// At most one read ahead, for the request `K`.
pub struct ReadAhead<K, T> {
    slot: Slot<K, oneshot::Receiver<T>>,
}

/// Runs `read` now in its own task; the receiver gets its result.
pub fn spawn<T: 'static>(read: impl Future<Output = T> + 'static) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    crate::env::spawn(async move {
        let _ = tx.send(read.await);
    });
    rx
}

impl<K: PartialEq, T: 'static> ReadAhead<K, T> {
    pub fn new() -> Self {
        ReadAhead { slot: Slot::new() }
    }

    /// Starts `read` now for the request `key` (replacing any earlier read ahead).
    pub fn start(&self, key: K, read: impl Future<Output = T> + 'static) {
        self.slot.start(key, now_ms() as u64, spawn(read));
    }

    /// The result read ahead for `key`, if there is a fresh one (waiting for it if still under way).
    /// Empties the slot either way.
    pub async fn take(&self, key: &K) -> Option<T> {
        self.slot.take(key, now_ms() as u64)?.await.ok()
    }

    pub fn clear(&self) {
        self.slot.clear();
    }
}
