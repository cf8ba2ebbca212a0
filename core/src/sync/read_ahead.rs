//! A read started early, for the request expected next (the pull page after the one being applied,
//! the outbox batch after the one on the wire). Its result serves exactly that request, and only
//! while fresh; anything else reads again. `H` is whatever stands for the started read: a channel
//! to a spawned task in the browser, the result itself in memory.

use std::cell::RefCell;

/// A read ahead older than this is dropped and read again (an earlier view is fine, a stale one is
/// not).
pub const FRESH_MS: u64 = 5_000;

/// At most one read ahead, for the request `K`.
pub struct ReadAhead<K, H> {
    slot: RefCell<Option<(K, u64, H)>>,
}

impl<K: PartialEq, H> Default for ReadAhead<K, H> {
    fn default() -> Self {
        ReadAhead {
            slot: RefCell::new(None),
        }
    }
}

impl<K: PartialEq, H> ReadAhead<K, H> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `read`, started at `now_ms` for the request `key` (replacing any earlier one).
    pub fn start(&self, key: K, now_ms: u64, read: H) {
        *self.slot.borrow_mut() = Some((key, now_ms, read));
    }

    /// The read started for `key`, if it is still fresh at `now_ms`. Empties the slot either way.
    pub fn take(&self, key: &K, now_ms: u64) -> Option<H> {
        let (k, at, read) = self.slot.borrow_mut().take()?;
        (k == *key && now_ms.saturating_sub(at) < FRESH_MS).then_some(read)
    }

    pub fn clear(&self) {
        *self.slot.borrow_mut() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_its_own_request_while_fresh_and_once() {
        let ra = ReadAhead::new();
        ra.start(1, 100, "page");
        assert_eq!(ra.take(&2, 100), None, "another request reads again");
        assert_eq!(ra.take(&1, 100), None, "a miss empties the slot");
        ra.start(1, 100, "page");
        assert_eq!(ra.take(&1, 100 + FRESH_MS), None, "stale");
        ra.start(1, 100, "page");
        assert_eq!(ra.take(&1, 100 + FRESH_MS - 1), Some("page"));
        assert_eq!(ra.take(&1, 100), None, "used once");
    }
}
