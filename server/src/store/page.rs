//! How a pull page is put together, the same on both databases: rows in feed order go in until
//! the page holds `limit` changes or the next row would pass the byte budget (one change always
//! comes, so a document larger than the budget comes alone), and `remaining` is counted only when
//! more follow. Each database reads the rows and runs the count in its own snapshot.

use super::error::StoreError;
use super::rows::{position_check, PullPage};
use crate::wire::{ChangesJson, StoredRef};

/// Counting the rest of the feed costs an index scan: beyond this many rows `remaining` is the
/// upper bound `head - position` instead of an exact count.
pub const REMAINING_COUNT_CAP: i64 = 10_000;

/// One pull page being filled.
pub(crate) struct PageBuilder {
    changes: ChangesJson,
    last_seq: Option<u64>,
    /// `collection`, `id`, `hlc` of the last change (a buffer reused row after row; hashed once,
    /// at the end).
    last_row: [String; 3],
    check_at_after: Option<String>,
    has_more: bool,
    after: u64,
    limit: usize,
    max_bytes: usize,
}

impl PageBuilder {
    /// A page of up to `limit` changes after position `after`, within `max_bytes`.
    pub fn new(after: u64, limit: usize, max_bytes: usize) -> PageBuilder {
        PageBuilder {
            changes: ChangesJson::with_capacity(limit.min(256) * 256),
            last_seq: None,
            last_row: Default::default(),
            check_at_after: None,
            has_more: false,
            after,
            limit,
            max_bytes,
        }
    }

    /// How many rows to read: one more than `limit`, to know whether more follow.
    pub fn rows_to_read(&self) -> i64 {
        self.limit as i64 + 1
    }

    /// Whether the page ends before a row whose document and fields take `bytes`: then more
    /// follow, and the row is left for the next page.
    pub fn ends_before(&mut self, bytes: usize) -> bool {
        let full = self.changes.len() == self.limit
            || (!self.changes.is_empty() && self.changes.bytes() + bytes > self.max_bytes);
        self.has_more |= full;
        full
    }

    /// Adds the row at feed position `seq` of `namespace`.
    pub fn push(
        &mut self,
        namespace: &str,
        seq: u64,
        change: &StoredRef,
    ) -> Result<(), StoreError> {
        self.changes
            .push(change)
            .map_err(|e| StoreError::Corrupt(format!("{namespace} seq {seq}: {e}")))?;
        self.last_seq = Some(seq);
        for (buf, part) in self
            .last_row
            .iter_mut()
            .zip([change.collection, change.id, change.hlc])
        {
            buf.clear();
            buf.push_str(part);
        }
        Ok(())
    }

    /// The position the page is read after, when it is not the start: its check is compared
    /// with the cursor's (see [`position_check`]).
    pub fn after(&self) -> Option<u64> {
        (self.after > 0).then_some(self.after)
    }

    /// The change now at [`PageBuilder::after`].
    pub fn at_after(&mut self, collection: &str, id: &str, hlc: &str) {
        self.check_at_after = Some(position_check(collection, id, hlc));
    }

    /// When more follow: the position after which to count them (at most
    /// [`REMAINING_COUNT_CAP`] rows).
    pub fn count_after(&self) -> Option<u64> {
        self.has_more.then(|| self.last_seq.unwrap_or(self.after))
    }

    /// The page, with `counted` the count of rows after [`PageBuilder::count_after`] (when
    /// asked) and `head` the namespace's feed head, both from the page's snapshot.
    pub fn finish(self, head: u64, counted: Option<i64>) -> PullPage {
        let remaining = match counted {
            Some(n) if n < REMAINING_COUNT_CAP => n as u64,
            // Every row has its own position in (last, head]: an upper bound, at no cost.
            Some(_) => head.saturating_sub(self.last_seq.unwrap_or(self.after)),
            None => 0,
        };
        let [collection, id, hlc] = &self.last_row;
        PullPage {
            last_check: self.last_seq.map(|_| position_check(collection, id, hlc)),
            check_at_after: self.check_at_after,
            changes: self.changes,
            last_seq: self.last_seq,
            has_more: self.has_more,
            remaining: Some(remaining),
            head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> StoredRef<'_> {
        StoredRef {
            collection: "t",
            id,
            hlc: "000000000001-000000-c",
            deleted: false,
            doc: Some(b"{\"v\":1}"),
            fields: None,
        }
    }

    #[test]
    fn limit_budget_and_remaining() {
        // The limit ends the page; the rest is counted after the last change.
        let mut p = PageBuilder::new(10, 2, usize::MAX);
        assert_eq!(p.rows_to_read(), 3);
        for (seq, id) in [(11, "a"), (12, "b")] {
            assert!(!p.ends_before(7));
            p.push("ns", seq, &row(id)).unwrap();
        }
        assert!(p.ends_before(7));
        assert_eq!(p.count_after(), Some(12));
        let page = p.finish(20, Some(3));
        assert_eq!(
            (page.last_seq, page.has_more, page.remaining),
            (Some(12), true, Some(3))
        );
        // One change always comes, however large; the next one that passes the budget waits.
        let mut p = PageBuilder::new(0, 10, 5);
        assert!(!p.ends_before(1_000));
        p.push("ns", 1, &row("a")).unwrap();
        assert!(p.ends_before(1_000));
        // A count at the cap gives the upper bound head - position instead.
        let page = p.finish(50_000, Some(REMAINING_COUNT_CAP));
        assert_eq!(page.remaining, Some(50_000 - 1));
        // Nothing more: no count, nothing remaining.
        let mut p = PageBuilder::new(5, 10, usize::MAX);
        p.push("ns", 6, &row("a")).unwrap();
        assert_eq!(p.count_after(), None);
        let page = p.finish(6, None);
        assert_eq!((page.has_more, page.remaining), (false, Some(0)));
    }
}
