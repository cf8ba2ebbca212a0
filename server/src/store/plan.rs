//! Deciding a push, independent of the database: which changes win (last-write-wins by HLC, the
//! order defined once in `ferrosync_core::Hlc`) and which rows must be written.

use std::collections::{HashMap, HashSet};

use ferrosync_core::protocol::{Change, PushResult, PushStatus};

/// `(collection, id)` of a document within a namespace.
pub type Key = (String, String);

/// The outcome of a push before it is written.
#[derive(Debug, Default)]
pub struct Plan {
    /// One per pushed change, in the same order.
    pub results: Vec<PushResult>,
    /// New current versions to store, one per document, in the order they were first won.
    pub writes: Vec<Change>,
}

/// Applies `changes` in order on top of `current` (the stored versions of the documents they touch).
///
/// A change with a higher HLC than the current version replaces it; one with an equal HLC is the
/// same write seen again (a retry) and is reported applied without writing; a lower one is stale and
/// the reply carries the current version. Deletes are ordinary versions (tombstones), so a delete
/// beats an older update and loses to a newer one.
pub fn plan(changes: &[Change], mut current: HashMap<Key, Change>) -> Plan {
    let mut results = Vec::with_capacity(changes.len());
    let mut dirty: Vec<Key> = Vec::new();
    let mut seen: HashSet<Key> = HashSet::new();
    for c in changes {
        let key = (c.collection.clone(), c.id.clone());
        let status = match current.get(&key) {
            Some(cur) if cur.hlc > c.hlc => PushResult {
                status: PushStatus::Stale,
                current: Some(cur.clone()),
            },
            Some(cur) if cur.hlc == c.hlc => applied(),
            _ => {
                if seen.insert(key.clone()) {
                    dirty.push(key.clone());
                }
                current.insert(key, c.clone());
                applied()
            }
        };
        results.push(status);
    }
    let writes = dirty
        .into_iter()
        .filter_map(|k| current.remove(&k))
        .collect();
    Plan { results, writes }
}

fn applied() -> PushResult {
    PushResult {
        status: PushStatus::Applied,
        current: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosync_core::Hlc;
    use serde_json::json;

    fn ch(id: &str, wall: u64, node: &str, deleted: bool) -> Change {
        Change {
            collection: "t".into(),
            id: id.into(),
            hlc: Hlc::new(wall, 0, node).unwrap(),
            deleted,
            doc: (!deleted).then(|| json!({"id": id, "w": wall})),
            fields: None,
        }
    }

    #[test]
    fn lww_with_ties_and_tombstones() {
        let mut cur = HashMap::new();
        cur.insert(("t".into(), "a".into()), ch("a", 10, "x", false));
        cur.insert(("t".into(), "b".into()), ch("b", 10, "x", true));
        let p = plan(
            &[
                ch("a", 9, "z", true),   // older delete loses
                ch("a", 10, "x", false), // same version: idempotent
                ch("a", 10, "y", false), // same wall, higher node wins
                ch("b", 11, "x", false), // newer update beats tombstone
                ch("c", 1, "x", false),
                ch("c", 2, "x", true), // same push, later delete wins
            ],
            cur,
        );
        let s: Vec<_> = p.results.iter().map(|r| r.status.clone()).collect();
        use PushStatus::*;
        assert_eq!(s, vec![Stale, Applied, Applied, Applied, Applied, Applied]);
        assert_eq!(p.results[0].current.as_ref().unwrap().hlc.node, "x");
        let w: Vec<_> = p
            .writes
            .iter()
            .map(|c| (c.id.as_str(), c.hlc.node.as_str(), c.deleted))
            .collect();
        assert_eq!(
            w,
            vec![("a", "y", false), ("b", "x", false), ("c", "x", true)]
        );
    }
}
