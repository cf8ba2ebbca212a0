//! Conflict rules: which version of a document survives when two replicas wrote it.
//!
//! Two policies are pure functions here, so the client, the server and the tests share them:
//!
//! - **Last-write-wins** ([`lww`]): the version with the higher [`Hlc`] wins whole. A delete is an
//!   ordinary version (a tombstone), so it beats an older update and loses to a newer one.
//! - **Field merge** ([`merge`]): every version carries per-field HLCs (`Change::fields`), and the
//!   result takes each top-level field from the newer write. The state behind it ([`FieldState`]) is a
//!   state-based LWW-map plus a delete register, a join-semilattice: merging is commutative,
//!   associative and idempotent, so replicas that saw the same versions in any order, with
//!   duplicates, hold the same document.
//!
//! Whole-document deletes under field merge: a delete at time `D` removes every field written at or
//! before `D`; a field written after `D` (by a replica that had not seen the delete) survives and
//! brings the document back, holding only the fields written after the delete (plus `id`). So the
//! newer side wins, field by field, and `D` is remembered (under [`DELETED_AT`]) so that an older
//! field arriving later never resurrects.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::hlc::Hlc;
use crate::protocol::{Change, Doc};

/// Key of the whole-document delete time inside `Change::fields`. Field names starting with `$` are
/// refused in documents ([`crate::document`]), so it never collides with a real field.
pub const DELETED_AT: &str = "$deleted";

/// The field that names a document; always projected from the change's id.
const ID_FIELD: &str = "id";

/// Last-write-wins: the version with the higher HLC. Equal HLCs are the same write seen twice (the
/// node breaks every real tie); should they still differ, the content decides, so the choice is
/// deterministic everywhere.
pub fn lww<'a>(a: &'a Change, b: &'a Change) -> &'a Change {
    match a.hlc.cmp(&b.hlc) {
        Ordering::Greater => a,
        Ordering::Less => b,
        Ordering::Equal => {
            if cmp_content(a, b) == Ordering::Less {
                b
            } else {
                a
            }
        }
    }
}

/// Whether `change` was made without seeing `current` (another version of the same document),
/// judged by the version it says it was made on (`Change::base`): `current` is neither that base,
/// nor the change itself, nor written by the same node (a node sees its own writes, so an edit
/// made after an acknowledged one of its own is not concurrent with it, whatever base it still
/// carries). Without a base, nothing is known: false.
pub fn made_without(change: &Change, current: &Hlc) -> bool {
    match &change.base {
        Some(base) => current != base && *current != change.hlc && current.node != change.hlc.node,
        None => false,
    }
}

fn cmp_content(a: &Change, b: &Change) -> Ordering {
    a.deleted
        .cmp(&b.deleted)
        .then_with(|| cmp_opt_doc(a.doc.as_ref(), b.doc.as_ref()))
        .then_with(|| a.fields.cmp(&b.fields))
}

/// Field merge of two versions of one document. The result's HLC is the higher of the two (merge
/// itself writes nothing new); a replica that stores the result as a new write stamps it afresh.
pub fn merge(a: &Change, b: &Change) -> Change {
    let state = FieldState::of(a).join(&FieldState::of(b));
    let hlc = if a.hlc >= b.hlc { &a.hlc } else { &b.hlc };
    state.to_change(&a.collection, &a.id, hlc.clone())
}

/// The version a local write produces: `doc` (None = delete) stamped `hlc`, on top of `prev` (the
/// current local version, if any). With `track_fields` (the merge policy) the per-field HLCs are kept:
/// fields whose value changed get `hlc`, unchanged fields keep their time, removed fields are
/// recorded as removed at `hlc`. `hlc` must be newer than everything in `prev` (a fresh clock tick).
pub fn local_change(
    prev: Option<&Change>,
    collection: &str,
    id: &str,
    doc: Option<Value>,
    hlc: Hlc,
    track_fields: bool,
) -> Change {
    let plain = |doc: Option<Value>, hlc: Hlc| Change {
        collection: collection.to_string(),
        id: id.to_string(),
        hlc,
        deleted: doc.is_none(),
        doc: doc.map(Doc::from),
        fields: None,
        base: None,
    };
    if !track_fields {
        return plain(doc, hlc);
    }
    let mut state = prev.map(FieldState::of).unwrap_or_default();
    match doc {
        None => {
            state.deleted_at = Some(hlc.clone());
            state.canonicalize();
        }
        Some(Value::Object(map)) => {
            for (k, v) in &map {
                let same = state
                    .fields
                    .get(k)
                    .is_some_and(|f| f.value.as_ref() == Some(v));
                if !same {
                    state.fields.insert(
                        k.clone(),
                        FieldVersion {
                            hlc: hlc.clone(),
                            value: Some(v.clone()),
                        },
                    );
                }
            }
            for (k, f) in state.fields.iter_mut() {
                if f.value.is_some() && !map.contains_key(k) {
                    *f = FieldVersion {
                        hlc: hlc.clone(),
                        value: None,
                    };
                }
            }
        }
        // Documents are objects (validated before they get here); anything else has no fields.
        Some(other) => return plain(Some(other), hlc),
    }
    state.to_change(collection, id, hlc)
}

/// One field's last write: when, and the value it left (None when that write removed the field).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldVersion {
    pub hlc: Hlc,
    pub value: Option<Value>,
}

/// The merge policy's state of one document: a last-write-wins register per top-level field, and
/// the time of the latest whole-document delete. Always canonical: no field older than the delete.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldState {
    pub fields: BTreeMap<String, FieldVersion>,
    pub deleted_at: Option<Hlc>,
}

impl FieldState {
    /// The state a version stands for. A version without per-field times (written by a
    /// last-write-wins client, or before the collection used merge) counts as writing every field
    /// at its own HLC; a tombstone without them as a delete at its HLC.
    pub fn of(c: &Change) -> FieldState {
        let mut st = FieldState::default();
        // A document whose text does not parse (a number beyond `f64`, which no server that
        // checks pushes sends) holds no field the merge could keep.
        let parsed = c.doc.as_ref().and_then(|d| d.parse().ok());
        let doc = parsed.as_ref().and_then(Value::as_object);
        match &c.fields {
            Some(times) => {
                st.deleted_at = times.get(DELETED_AT).cloned();
                if c.deleted && st.deleted_at.is_none() {
                    st.deleted_at = Some(c.hlc.clone());
                }
                for (k, h) in times {
                    if k == DELETED_AT {
                        continue;
                    }
                    let value = if c.deleted {
                        None
                    } else {
                        doc.and_then(|d| d.get(k)).cloned()
                    };
                    st.fields.insert(
                        k.clone(),
                        FieldVersion {
                            hlc: h.clone(),
                            value,
                        },
                    );
                }
                if let (Some(d), false) = (doc, c.deleted) {
                    for (k, v) in d {
                        // `id` only counts as a field when its time is recorded: it is projected
                        // from the change's id anyway.
                        if k != ID_FIELD && !times.contains_key(k) {
                            st.fields.insert(
                                k.clone(),
                                FieldVersion {
                                    hlc: c.hlc.clone(),
                                    value: Some(v.clone()),
                                },
                            );
                        }
                    }
                }
            }
            None => {
                if c.deleted {
                    st.deleted_at = Some(c.hlc.clone());
                } else if let Some(d) = doc {
                    for (k, v) in d {
                        st.fields.insert(
                            k.clone(),
                            FieldVersion {
                                hlc: c.hlc.clone(),
                                value: Some(v.clone()),
                            },
                        );
                    }
                }
            }
        }
        st.canonicalize();
        st
    }

    /// The least state holding both: per field the newer write, the later delete.
    pub fn join(&self, other: &FieldState) -> FieldState {
        let mut fields = self.fields.clone();
        for (k, theirs) in &other.fields {
            match fields.get_mut(k) {
                Some(ours) => {
                    if newer_field(theirs, ours) {
                        *ours = theirs.clone();
                    }
                }
                None => {
                    fields.insert(k.clone(), theirs.clone());
                }
            }
        }
        let deleted_at = match (&self.deleted_at, &other.deleted_at) {
            (Some(a), Some(b)) => Some(a.max(b).clone()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut st = FieldState { fields, deleted_at };
        st.canonicalize();
        st
    }

    /// Deleted when a delete happened and no field holding a value was written after it.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some() && !self.fields.values().any(|f| f.value.is_some())
    }

    /// Drops fields the delete superseded; they can never win again, since the delete time only grows.
    fn canonicalize(&mut self) {
        if let Some(d) = &self.deleted_at {
            // Rebuilt by `insert`, not `retain`: removing from a B-tree links its rebalancing
            // code (3 KB of the browser module) for this one map type.
            let old = std::mem::take(&mut self.fields);
            for (k, f) in old {
                if f.hlc > *d {
                    self.fields.insert(k, f);
                }
            }
        }
    }

    /// The version that carries this state, stamped `hlc`.
    pub fn to_change(&self, collection: &str, id: &str, hlc: Hlc) -> Change {
        // Inserted one by one: a map collected from an iterator links a sort of its own.
        let mut times: BTreeMap<String, Hlc> = BTreeMap::new();
        for (k, f) in &self.fields {
            times.insert(k.clone(), f.hlc.clone());
        }
        if let Some(d) = &self.deleted_at {
            times.insert(DELETED_AT.to_string(), d.clone());
        }
        let deleted = self.is_deleted();
        let doc = (!deleted).then(|| {
            let mut m = Map::new();
            for (k, f) in &self.fields {
                if let Some(v) = &f.value {
                    m.insert(k.clone(), v.clone());
                }
            }
            m.insert(ID_FIELD.to_string(), Value::String(id.to_string()));
            Doc::from_value(&Value::Object(m))
        });
        Change {
            collection: collection.to_string(),
            id: id.to_string(),
            hlc,
            deleted,
            doc,
            fields: Some(times),
            base: None,
        }
    }
}

fn newer_field(a: &FieldVersion, b: &FieldVersion) -> bool {
    match a.hlc.cmp(&b.hlc) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => cmp_opt_json(a.value.as_ref(), b.value.as_ref()) == Ordering::Greater,
    }
}

/// Documents by [`cmp_json`]; text that does not parse (a number beyond `f64`) orders by the text.
fn cmp_opt_doc(a: Option<&Doc>, b: Option<&Doc>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match (a.parse(), b.parse()) {
            (Ok(x), Ok(y)) => cmp_json(&x, &y),
            _ => a.json().cmp(b.json()),
        },
        _ => a.is_some().cmp(&b.is_some()),
    }
}

fn cmp_opt_json(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => cmp_json(a, b),
    }
}

/// A total order on JSON values, used only to break ties deterministically (independent of map
/// insertion order, so it holds whichever serde_json features are on).
pub fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (fx, fy) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            fx.total_cmp(&fy)
                .then_with(|| x.to_string().cmp(&y.to_string()))
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = cmp_json(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut kx: Vec<_> = x.iter().collect();
            let mut ky: Vec<_> = y.iter().collect();
            crate::sort::sort_by(&mut kx, |p, q| p.0.cmp(q.0));
            crate::sort::sort_by(&mut ky, |p, q| p.0.cmp(q.0));
            for ((k1, v1), (k2, v2)) in kx.iter().zip(&ky) {
                let o = k1.cmp(k2).then_with(|| cmp_json(v1, v2));
                if o != Ordering::Equal {
                    return o;
                }
            }
            kx.len().cmp(&ky.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn h(wall: u64, node: &str) -> Hlc {
        Hlc::new(wall, 0, node).unwrap()
    }

    fn put(prev: Option<&Change>, doc: Value, hlc: Hlc) -> Change {
        local_change(prev, "t", "a", Some(doc), hlc, true)
    }

    fn del(prev: Option<&Change>, hlc: Hlc) -> Change {
        local_change(prev, "t", "a", None, hlc, true)
    }

    fn plain(wall: u64, node: &str, doc: Option<Value>) -> Change {
        local_change(None, "t", "a", doc, h(wall, node), false)
    }

    #[test]
    fn lww_newer_wins_and_deletes_are_versions() {
        let old = plain(1, "x", Some(json!({"id": "a", "v": 1})));
        let gone = plain(2, "y", None);
        let new = plain(3, "x", Some(json!({"id": "a", "v": 3})));
        assert_eq!(lww(&old, &gone), &gone, "delete beats an older update");
        assert_eq!(lww(&gone, &new), &new, "a newer update beats the delete");
        let tie_a = plain(5, "a", Some(json!({"id": "a"})));
        let tie_b = plain(5, "b", Some(json!({"id": "a"})));
        assert_eq!(lww(&tie_a, &tie_b), &tie_b, "node breaks the tie");
        assert_eq!(lww(&tie_b, &tie_a), &tie_b);
    }

    #[test]
    fn local_change_stamps_only_changed_fields() {
        let v1 = put(
            None,
            json!({"id": "a", "title": "x", "done": false}),
            h(1, "c"),
        );
        let f1 = v1.fields.clone().unwrap();
        assert_eq!(f1["title"], h(1, "c"));
        assert_eq!(f1["id"], h(1, "c"));
        assert!(!f1.contains_key(DELETED_AT));
        let v2 = put(
            Some(&v1),
            json!({"id": "a", "title": "x", "done": true}),
            h(2, "c"),
        );
        let f2 = v2.fields.clone().unwrap();
        assert_eq!(f2["title"], h(1, "c"), "unchanged field keeps its time");
        assert_eq!(f2["done"], h(2, "c"));
        let v3 = put(Some(&v2), json!({"id": "a", "done": true}), h(3, "c"));
        let f3 = v3.fields.clone().unwrap();
        assert_eq!(f3["title"], h(3, "c"), "removal is a write of the field");
        assert!(v3
            .doc
            .as_ref()
            .unwrap()
            .parse()
            .unwrap()
            .get("title")
            .is_none());
        assert_eq!(v3.hlc, h(3, "c"));
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let base = put(
            None,
            json!({"id": "a", "title": "x", "done": false}),
            h(1, "p"),
        );
        let left = put(
            Some(&base),
            json!({"id": "a", "title": "y", "done": false}),
            h(5, "l"),
        );
        let right = put(
            Some(&base),
            json!({"id": "a", "title": "x", "done": true}),
            h(4, "r"),
        );
        let m = merge(&left, &right);
        assert_eq!(
            m.doc,
            Doc::some(json!({"id": "a", "title": "y", "done": true}))
        );
        assert_eq!(m.hlc, h(5, "l"));
        assert_eq!(FieldState::of(&m), FieldState::of(&merge(&right, &left)));
    }

    #[test]
    fn same_field_newer_write_wins() {
        let base = put(None, json!({"id": "a", "title": "x"}), h(1, "p"));
        let l = put(Some(&base), json!({"id": "a", "title": "l"}), h(5, "l"));
        let r = put(Some(&base), json!({"id": "a", "title": "r"}), h(6, "r"));
        assert_eq!(merge(&l, &r).doc.unwrap().parse().unwrap()["title"], "r");
    }

    #[test]
    fn delete_vs_field_edits() {
        let base = put(
            None,
            json!({"id": "a", "title": "x", "done": false}),
            h(1, "p"),
        );
        let gone = del(Some(&base), h(5, "d"));
        // An edit older than the delete loses.
        let older = put(
            Some(&base),
            json!({"id": "a", "title": "y", "done": false}),
            h(3, "e"),
        );
        assert!(merge(&gone, &older).deleted);
        // An edit newer than the delete brings the document back with only what was written after it.
        let newer = put(
            Some(&base),
            json!({"id": "a", "title": "z", "done": false}),
            h(7, "e"),
        );
        let m = merge(&older, &merge(&gone, &newer));
        assert!(!m.deleted);
        assert_eq!(m.doc, Doc::some(json!({"id": "a", "title": "z"})));
        // Whatever order: the older edit arriving last cannot resurrect its fields.
        let m2 = merge(&merge(&newer, &older), &gone);
        assert_eq!(FieldState::of(&m), FieldState::of(&m2));
        // Re-creating a deleted document (even an empty one) is newer than the delete.
        let again = put(Some(&gone), json!({"id": "a"}), h(9, "d"));
        let m3 = merge(&again, &older);
        assert!(!m3.deleted);
        assert_eq!(m3.doc, Doc::some(json!({"id": "a"})));
    }

    #[test]
    fn field_removal_after_delete_does_not_resurrect() {
        let base = put(None, json!({"id": "a", "x": 1, "y": 2}), h(1, "p"));
        let gone = del(Some(&base), h(5, "d"));
        let removed = put(Some(&base), json!({"id": "a", "y": 2}), h(7, "e"));
        let m = merge(&gone, &removed);
        assert!(
            m.deleted,
            "removing a field is not a reason to bring the document back"
        );
        assert_eq!(m.fields.as_ref().unwrap()["x"], h(7, "e"));
    }

    #[test]
    fn versions_without_field_times_merge_as_whole_writes() {
        let lww_v = plain(4, "x", Some(json!({"id": "a", "title": "w"})));
        let tracked = put(None, json!({"id": "a", "title": "t", "n": 1}), h(3, "y"));
        let m = merge(&lww_v, &tracked);
        assert_eq!(m.doc, Doc::some(json!({"id": "a", "title": "w", "n": 1})));
        let tomb = plain(9, "x", None);
        assert!(merge(&tomb, &tracked).deleted);
    }

    #[test]
    fn round_trip_through_change_keeps_state() {
        let base = put(
            None,
            json!({"id": "a", "x": 1, "y": {"z": [1, 2]}}),
            h(1, "p"),
        );
        let gone = del(Some(&base), h(5, "d"));
        let back = put(Some(&base), json!({"id": "a", "x": 2}), h(7, "e"));
        for c in [&base, &gone, &back, &merge(&gone, &back)] {
            let st = FieldState::of(c);
            assert_eq!(FieldState::of(&st.to_change("t", "a", c.hlc.clone())), st);
            let json = serde_json::to_value(c).unwrap();
            let parsed: Change = serde_json::from_value(json).unwrap();
            assert_eq!(FieldState::of(&parsed), st);
        }
    }

    #[test]
    fn json_order_is_total_and_key_order_free() {
        let a = json!({"b": 1, "a": [1, "x", null]});
        let b: Value = serde_json::from_str(r#"{"a": [1, "x", null], "b": 1}"#).unwrap();
        assert_eq!(cmp_json(&a, &b), Ordering::Equal);
        assert_eq!(cmp_json(&json!(1), &json!(1.5)), Ordering::Less);
        assert_eq!(cmp_json(&json!("a"), &json!(1)), Ordering::Greater);
    }

    // ---- property tests: random histories on several replicas ----

    /// One step of a history: replica `r` edits (field k := v, remove k, delete, re-create) or
    /// receives another replica's current version.
    #[derive(Clone, Debug)]
    enum Step {
        Set(usize, usize, i64),
        Remove(usize, usize),
        Delete(usize),
        Create(usize, usize, i64),
        Receive(usize, usize),
    }

    const REPLICAS: usize = 3;
    const KEYS: [&str; 3] = ["a", "b", "c"];

    fn step() -> impl Strategy<Value = Step> {
        let r = 0..REPLICAS;
        let k = 0..KEYS.len();
        prop_oneof![
            4 => (r.clone(), k.clone(), -3i64..3).prop_map(|(r, k, v)| Step::Set(r, k, v)),
            1 => (r.clone(), k.clone()).prop_map(|(r, k)| Step::Remove(r, k)),
            1 => r.clone().prop_map(Step::Delete),
            1 => (r.clone(), k, -3i64..3).prop_map(|(r, k, v)| Step::Create(r, k, v)),
            3 => (r.clone(), r).prop_map(|(a, b)| Step::Receive(a, b)),
        ]
    }

    /// Runs a history with one clock per replica (walls drawn at random, so clocks disagree) and
    /// returns every version written, in order. `track` picks the merge policy's field times.
    fn run(steps: &[Step], walls: &[u64], track: bool) -> (Vec<Change>, Vec<Option<Change>>) {
        let mut clocks: Vec<_> = (0..REPLICAS)
            .map(|i| crate::hlc::HlcClock::new(format!("r{i}"), u64::MAX).unwrap())
            .collect();
        let mut local: Vec<Option<Change>> = vec![None; REPLICAS];
        let mut written = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let wall = walls[i % walls.len()];
            let resolve = |a: &Change, b: &Change| {
                if track {
                    merge(a, b)
                } else {
                    lww(a, b).clone()
                }
            };
            match s {
                Step::Receive(to, from) => {
                    if let Some(theirs) = local[*from].clone() {
                        clocks[*to].observe(&theirs.hlc, u64::MAX / 2).unwrap();
                        local[*to] = Some(match &local[*to] {
                            Some(mine) => resolve(mine, &theirs),
                            None => theirs,
                        });
                    }
                }
                edit => {
                    let r = match edit {
                        Step::Set(r, ..)
                        | Step::Remove(r, _)
                        | Step::Delete(r)
                        | Step::Create(r, ..) => *r,
                        Step::Receive(..) => unreachable!(),
                    };
                    let prev = local[r].clone();
                    let current = prev
                        .as_ref()
                        .filter(|c| !c.deleted)
                        .and_then(|c| c.doc.as_ref())
                        .map(|d| d.parse().unwrap());
                    let doc = match edit {
                        Step::Set(_, k, v) => current.map(|mut d| {
                            d[KEYS[*k]] = json!(v);
                            d
                        }),
                        Step::Remove(_, k) => current.map(|mut d| {
                            d.as_object_mut().unwrap().remove(KEYS[*k]);
                            d
                        }),
                        Step::Delete(_) => None,
                        Step::Create(_, k, v) => {
                            let mut d = json!({"id": "a"});
                            d[KEYS[*k]] = json!(v);
                            Some(d)
                        }
                        Step::Receive(..) => unreachable!(),
                    };
                    // Editing a missing document does nothing; deleting one that is gone writes a tombstone.
                    if doc.is_none() && !matches!(edit, Step::Delete(_)) {
                        continue;
                    }
                    let hlc = clocks[r].tick(wall);
                    let c = local_change(prev.as_ref(), "t", "a", doc, hlc, track);
                    local[r] = Some(c.clone());
                    written.push(c);
                }
            }
        }
        (written, local)
    }

    /// Deterministic shuffle with duplicates: the order a flaky network might deliver things in.
    fn scramble(items: &[Change], seed: u64) -> Vec<Change> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out: Vec<Change> = items.to_vec();
        for i in 0..items.len() / 2 + 1 {
            let _ = i;
            if !items.is_empty() {
                out.push(items[(next() % items.len() as u64) as usize].clone());
            }
        }
        for i in (1..out.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
        out
    }

    fn fold_merge(items: &[Change]) -> Option<FieldState> {
        items.iter().map(FieldState::of).reduce(|a, b| a.join(&b))
    }

    fn fold_merge_changes(items: &[Change]) -> Option<Change> {
        items.iter().cloned().reduce(|a, b| merge(&a, &b))
    }

    fn fold_lww(items: &[Change]) -> Option<Change> {
        items.iter().cloned().reduce(|a, b| lww(&a, &b).clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn merge_converges_in_any_order_with_duplicates(
            steps in proptest::collection::vec(step(), 1..60),
            walls in proptest::collection::vec(0u64..40, 1..20),
            seeds in proptest::collection::vec(any::<u64>(), 3),
        ) {
            let (written, _) = run(&steps, &walls, true);
            let reference = fold_merge(&written);
            for s in &seeds {
                let order = scramble(&written, *s);
                prop_assert_eq!(fold_merge(&order), reference.clone());
                // Through the wire form too: merging Changes gives the same state.
                let via_changes = fold_merge_changes(&order).map(|c| FieldState::of(&c));
                prop_assert_eq!(via_changes, reference.clone());
            }
        }

        #[test]
        fn merge_is_a_semilattice(
            steps in proptest::collection::vec(step(), 3..40),
            walls in proptest::collection::vec(0u64..40, 1..20),
            pick in proptest::collection::vec(any::<prop::sample::Index>(), 3),
        ) {
            let (written, _) = run(&steps, &walls, true);
            prop_assume!(!written.is_empty());
            let [a, b, c] = [0, 1, 2].map(|i| FieldState::of(pick[i].get(&written)));
            prop_assert_eq!(a.join(&b), b.join(&a));
            prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            // The result dominates both inputs: joining either again changes nothing.
            let ab = a.join(&b);
            prop_assert_eq!(ab.join(&a), ab.clone());
        }

        #[test]
        fn lww_converges_in_any_order_with_duplicates(
            steps in proptest::collection::vec(step(), 1..60),
            walls in proptest::collection::vec(0u64..40, 1..20),
            seeds in proptest::collection::vec(any::<u64>(), 3),
        ) {
            let (written, _) = run(&steps, &walls, false);
            let reference = fold_lww(&written);
            if let Some(r) = &reference {
                prop_assert!(written.iter().all(|c| c.hlc <= r.hlc), "the newest version wins");
            }
            for s in &seeds {
                prop_assert_eq!(fold_lww(&scramble(&written, *s)), reference.clone());
            }
        }

        #[test]
        fn replicas_that_exchange_everything_agree(
            steps in proptest::collection::vec(step(), 1..60),
            walls in proptest::collection::vec(0u64..40, 1..20),
            track in any::<bool>(),
        ) {
            // Two full rounds of every replica receiving from every other: all hold the same state,
            // the join (merge) or the newest version (lww) of everything ever written.
            let mut all = steps.clone();
            for _ in 0..2 {
                for to in 0..REPLICAS {
                    for from in 0..REPLICAS {
                        all.push(Step::Receive(to, from));
                    }
                }
            }
            let (written, finals) = run(&all, &walls, track);
            for f in &finals {
                if track {
                    prop_assert_eq!(f.as_ref().map(FieldState::of), fold_merge(&written));
                } else {
                    prop_assert_eq!(f.clone(), fold_lww(&written));
                }
            }
        }
    }
}
