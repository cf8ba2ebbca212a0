//! A read started early, for the request expected next: the pull page after the one being applied
//! (`transport`), the outbox batch after the one on the wire (`local_store`). Its result is used only by
//! exactly that request and only while fresh; anything else reads again.

use std::cell::RefCell;
use std::future::Future;

use futures::channel::oneshot;

use super::time::now_ms;

/// A result older than this is read again instead (an earlier view is fine, a stale one is not).
const FRESH_MS: f64 = 5_000.0;

/// At most one read ahead, for the request `K`.
pub struct ReadAhead<K, T> {
    slot: RefCell<Option<Started<K, T>>>,
}

struct Started<K, T> {
    key: K,
    at: f64,
    result: oneshot::Receiver<T>,
}

impl<K: PartialEq, T: 'static> ReadAhead<K, T> {
    pub fn new() -> Self {
        ReadAhead {
            slot: RefCell::new(None),
        }
    }

    /// Starts `read` now for the request `key` (replacing any earlier read ahead).
    pub fn start(&self, key: K, read: impl Future<Output = T> + 'static) {
        let (tx, rx) = oneshot::channel();
        wasm_bindgen_futures::spawn_local(async move {
            let _ = tx.send(read.await);
        });
        *self.slot.borrow_mut() = Some(Started {
            key,
            at: now_ms(),
            result: rx,
        });
    }

    /// The result read ahead for `key`, if there is a fresh one (waiting for it if still under way).
    /// Empties the slot either way.
    pub async fn take(&self, key: &K) -> Option<T> {
        let started = self.slot.borrow_mut().take()?;
        if started.key != *key || now_ms() - started.at >= FRESH_MS {
            return None;
        }
        started.result.await.ok()
    }

    pub fn clear(&self) {
        *self.slot.borrow_mut() = None;
    }
}
