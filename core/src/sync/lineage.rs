//! What a server keeps beside each document's current version so that an edit whose push reply
//! was lost is recognised when it comes back: the version's **lineage**, for each writer, the
//! highest HLC of that writer among the version and the versions it was made on (followed through
//! `base`-checked writes only: docs/PROTOCOL.md section 7.1).
//!
//! Without it, a device whose edit E1 was applied but never acknowledged pushes E1 again after
//! another device's E2, made on E1, replaced it: E1 is older, so it is `stale`, and the app's
//! resolver is offered E2 against E1 and may write E1 back over E2. With it, the server sees E1 in
//! E2's lineage and answers `applied` with E2 as `current`: the device acknowledges E1 and takes
//! E2 as a fast-forward.
//!
//! The lineage is believed only as far as the server checked it: a change extends the current
//! version's lineage only when it carried a `base` and passed the base rule (made on the current
//! version, or over the pusher's own); any other write (a creation, a change ordered by HLC
//! alone) starts a new lineage. It is kept for at most [`MAX_LINEAGE_WRITERS`] writers (the most
//! recent ones), so a document edited by many devices stays small; an edit that fell out of it
//! is offered to the resolver as before.

use std::collections::BTreeMap;

use crate::hlc::Hlc;
use crate::protocol::Change;

/// Writer node -> the highest HLC of that writer in the lineage.
pub type Lineage = BTreeMap<String, Hlc>;

/// Writers a lineage keeps (those with the most recent versions).
pub const MAX_LINEAGE_WRITERS: usize = 32;

/// The lineage to keep beside `change` when it is stored over `current` (whose lineage is
/// `current_lineage`, `None` meaning the version alone). `None` when the new version has no
/// history worth keeping: it then stands alone.
pub fn lineage_after(
    change: &Change,
    current: Option<&Change>,
    current_lineage: Option<&Lineage>,
) -> Option<Lineage> {
    let cur = current?;
    change.base.as_ref()?;
    if cur.hlc >= change.hlc {
        return None;
    }
    let mut l = current_lineage
        .filter(|l| belongs(l, cur))
        .cloned()
        .unwrap_or_default();
    let e = l
        .entry(cur.hlc.node.clone())
        .or_insert_with(|| cur.hlc.clone());
    if *e < cur.hlc {
        *e = cur.hlc.clone();
    }
    // The version's own entry is the version itself: that is how a lineage is known to belong
    // to the version stored beside it ([`belongs`]).
    l.insert(change.hlc.node.clone(), change.hlc.clone());
    while l.len() > MAX_LINEAGE_WRITERS {
        let oldest = l
            .iter()
            .filter(|(n, _)| **n != change.hlc.node)
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(n, _)| n.clone());
        if let Some(n) = oldest {
            l.remove(&n);
        }
    }
    Some(l)
}

/// Whether `change`, pushed by `client_id` and older than (or made without) `current`, is
/// already in `current`'s lineage: the server applied it before (its reply was lost) and
/// `current` was made on it. Only a client's own versions: a version is recognised by its exact
/// HLC, which only its writer's clock produces.
pub fn applied_before(
    change: &Change,
    client_id: &str,
    current: &Change,
    lineage: Option<&Lineage>,
) -> bool {
    change.hlc.node == client_id
        && change.hlc < current.hlc
        && lineage
            .filter(|l| belongs(l, current))
            .and_then(|l| l.get(&change.hlc.node))
            .is_some_and(|h| *h == change.hlc)
}

/// Whether `l` was written with `version` (its writer's entry is the version itself). A lineage
/// left beside another version (written by a server that does not keep lineages, during a
/// rolling upgrade) is not believed.
fn belongs(l: &Lineage, version: &Change) -> bool {
    l.get(&version.hlc.node) == Some(&version.hlc)
}

/// A lineage as the server stores it (JSON text).
pub fn encode(l: &Lineage) -> String {
    serde_json::to_string(l).unwrap_or_default()
}

/// A stored lineage; an unreadable one is treated as none (it only costs a resolver call).
pub fn decode(s: &str) -> Option<Lineage> {
    serde_json::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Doc;

    fn v(wall: u64, node: &str, base: Option<(u64, &str)>) -> Change {
        Change {
            collection: "c".into(),
            id: "x".into(),
            hlc: Hlc::new(wall, 0, node).unwrap(),
            deleted: false,
            doc: Doc::some(serde_json::json!({ "id": "x" })),
            fields: None,
            base: base.map(|(w, n)| Hlc::new(w, 0, n).unwrap()),
        }
    }

    #[test]
    fn a_chain_of_checked_edits_keeps_every_writer() {
        let e0 = v(1, "a", None);
        let e1 = v(2, "a", Some((1, "a")));
        let l1 = lineage_after(&e1, Some(&e0), None);
        let e2 = v(3, "b", Some((2, "a")));
        let l2 = lineage_after(&e2, Some(&e1), l1.as_ref());
        let e3 = v(4, "c", Some((3, "b")));
        let l3 = lineage_after(&e3, Some(&e2), l2.as_ref()).unwrap();
        assert!(applied_before(&e1, "a", &e3, Some(&l3)));
        assert!(applied_before(&e2, "b", &e3, Some(&l3)));
        // Only the writer itself is answered, and only for the exact version.
        assert!(!applied_before(&e1, "b", &e3, Some(&l3)));
        assert!(!applied_before(&e0, "a", &e3, Some(&l3)));
        assert!(!applied_before(&v(2, "a", None), "a", &e3, None));
    }

    #[test]
    fn a_lineage_left_beside_another_version_is_not_believed() {
        let e0 = v(1, "a", None);
        let e1 = v(2, "a", Some((1, "a")));
        let e2 = v(3, "b", Some((2, "a")));
        let l2 = lineage_after(&e2, Some(&e1), None).unwrap();
        assert!(applied_before(&e1, "a", &e2, Some(&l2)));
        // Another version stored by a server that left the lineage in place.
        let other = v(4, "c", None);
        assert!(!applied_before(&e1, "a", &other, Some(&l2)));
        let e3 = v(5, "d", Some((4, "c")));
        let l3 = lineage_after(&e3, Some(&other), Some(&l2)).unwrap();
        assert!(!l3.contains_key("a"), "{l3:?}");
        assert!(!applied_before(&e0, "a", &e3, Some(&l3)));
    }

    #[test]
    fn a_write_without_a_base_starts_a_new_lineage() {
        let e0 = v(1, "a", None);
        let e1 = v(2, "b", None);
        assert_eq!(lineage_after(&e1, Some(&e0), None), None);
        assert_eq!(lineage_after(&v(2, "b", Some((1, "a"))), None, None), None);
    }

    #[test]
    fn a_lineage_keeps_the_most_recent_writers() {
        let mut cur = v(1, "w0", None);
        let mut l = None;
        for i in 1..=(MAX_LINEAGE_WRITERS as u64 + 5) {
            let next = v(i + 1, &format!("w{i}"), Some((i, "x")));
            l = lineage_after(&next, Some(&cur), l.as_ref());
            cur = next;
        }
        let l = l.unwrap();
        assert_eq!(l.len(), MAX_LINEAGE_WRITERS);
        assert!(!l.contains_key("w0"));
        assert!(l.contains_key(&format!("w{}", MAX_LINEAGE_WRITERS + 5)));
        assert_eq!(decode(&encode(&l)), Some(l));
    }
}
