//! Incremental live windows: a live query's result kept up to date from the changes of each
//! committed write, instead of running the query again.
//!
//! A window holds the result's rows in result order (at most `limit`) and knows whether it holds
//! *every* match (`complete`: fewer than `limit` were found, or no limit) or only the matches up to
//! its last row (a full page: more may follow, unseen). A change (an id, its new version's row when
//! it matches, the version's HLC) then patches it exactly:
//! - a change to an id not in the window whose new version does not match, or sorts after the last
//!   row of a full page, changes nothing (cost: a hash lookup and a comparison);
//! - otherwise the old row leaves and the new one is inserted at its sorted position; a page that
//!   grows past `limit` drops its tail (the window is then full);
//! - a full page that ends up with fewer rows than `limit` cannot know what comes next: the caller
//!   refills it from the store ([`Outcome::Refill`], nothing changed).
//!
//! Versions: a change older than (or the same as) the version the window already holds or last
//! saw for that id is ignored, so a late notice (another tab's broadcast overtaken by a newer local
//! write) never brings an older version back. HLCs compare as strings (fixed-width encoding).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use crate::query::{Fields, Query, Row};

/// Past this many remembered versions the window asks for a refill (which starts afresh).
const MAX_VERSIONS: usize = 4096;

/// One changed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: String,
    /// The HLC of the new version, when known.
    pub hlc: Option<String>,
    /// The new version's row when it exists and matches the query; `None` when deleted or not
    /// matching.
    pub row: Option<Row>,
}

/// One step to replay on a parallel list (the records the application sees), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Remove(usize),
    /// Insert the new version of `changes[change]` at `pos`.
    Insert {
        pos: usize,
        change: usize,
    },
    /// Keep the first `len`.
    Truncate(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing visible changed.
    Unchanged,
    /// The window changed by these edits.
    Patched(Vec<Edit>),
    /// Only a fresh run of the query can be exact; the window is unchanged.
    Refill,
}

/// A live query's result, maintained from changes (`offset` must be 0: see [`Window::supports`]).
pub struct Window {
    query: Rc<Query>,
    rows: Vec<Rc<Row>>,
    by_id: HashMap<String, Rc<Row>>,
    versions: HashMap<String, String>,
    complete: bool,
}

impl Window {
    /// Whether a query's result can be maintained: not with an `offset` (a change before the page
    /// shifts it by documents the window never saw).
    pub fn supports(query: &Query) -> bool {
        query.offset() == 0
    }

    /// The window of a fresh result (`rows` in result order, as `Query::select` returned them).
    pub fn new(query: Rc<Query>, rows: Vec<Row>) -> Window {
        let complete = query.limit().is_none_or(|l| rows.len() < l || l == 0);
        let rows: Vec<Rc<Row>> = rows.into_iter().map(Rc::new).collect();
        let by_id = rows
            .iter()
            .map(|r| (r.id().to_string(), r.clone()))
            .collect();
        Window {
            query,
            rows,
            by_id,
            versions: HashMap::new(),
            complete,
        }
    }

    /// Replaces the rows with a fresh result, keeping the versions learnt so far (they stay true:
    /// a notice older than one already applied is still stale after the refill).
    pub fn refresh(&mut self, rows: Vec<Row>) {
        let versions = std::mem::take(&mut self.versions);
        *self = Window::new(self.query.clone(), rows);
        self.versions = versions;
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().map(|r| &**r)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the window holds every match (else it is a full page of the first ones).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The position of `id` in the window.
    pub fn position(&self, id: &str) -> Option<usize> {
        let row = self.by_id.get(id)?;
        self.rows
            .binary_search_by(|r| self.query.compare(&**r, &**row))
            .ok()
    }

    /// Whether a new version with this row (None: gone or not matching) would enter the window.
    fn admits(&self, row: &Row) -> bool {
        if self.query.limit() == Some(0) {
            return false;
        }
        self.complete
            || self
                .rows
                .last()
                .is_some_and(|last| self.query.compare(row, last) != Ordering::Greater)
    }

    /// Cheap test before any work: false when none of `changes` can alter the window (ignoring
    /// versions, which only [`Window::apply`] checks).
    pub fn may_change(&self, ids: &[&str], rows: &[Option<&Row>]) -> bool {
        ids.iter().any(|id| self.by_id.contains_key(*id))
            || rows.iter().flatten().any(|r| self.admits(r))
    }

    /// Applies one transaction's changes. `hlc_at(pos)` gives the version shown at a position (the
    /// caller keeps the records), used when the window has not seen that id change itself.
    pub fn apply(
        &mut self,
        changes: &[Change],
        hlc_at: impl Fn(usize) -> Option<String>,
    ) -> Outcome {
        // The last change per id wins; stale versions are dropped.
        let mut effective: Vec<usize> = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            if changes[i + 1..].iter().any(|later| later.id == c.id) {
                continue;
            }
            if let Some(h) = &c.hlc {
                let known = match self.versions.get(&c.id) {
                    Some(k) => Some(k.clone()),
                    None => self.position(&c.id).and_then(&hlc_at),
                };
                if known.is_some_and(|k| h.as_str() <= k.as_str()) {
                    continue;
                }
            }
            effective.push(i);
        }
        let relevant: Vec<usize> = effective
            .iter()
            .copied()
            .filter(|&i| {
                let c = &changes[i];
                self.by_id.contains_key(&c.id) || c.row.as_ref().is_some_and(|r| self.admits(r))
            })
            .collect();
        // Versions are learnt even from changes that alter nothing visible (a later, older notice
        // of the same id must still be refused).
        if self.versions.len() + effective.len() > MAX_VERSIONS {
            self.versions.clear();
            return Outcome::Refill;
        }
        if relevant.is_empty() {
            self.remember(changes, &effective);
            return Outcome::Unchanged;
        }
        if !self.complete {
            let removed = relevant
                .iter()
                .filter(|&&i| self.by_id.contains_key(&changes[i].id))
                .count();
            let inserted = relevant
                .iter()
                .filter(|&&i| changes[i].row.as_ref().is_some_and(|r| self.admits(r)))
                .count();
            if self.rows.len() - removed + inserted < self.query.limit().unwrap_or(usize::MAX) {
                // The refill reads a state at least this new: the versions stay true.
                self.remember(changes, &effective);
                return Outcome::Refill;
            }
        }
        let boundary = (!self.complete)
            .then(|| self.rows.last().cloned())
            .flatten();
        let mut edits = Vec::new();
        for &i in &relevant {
            let c = &changes[i];
            if let Some(pos) = self.position(&c.id) {
                self.rows.remove(pos);
                self.by_id.remove(&c.id);
                edits.push(Edit::Remove(pos));
            }
            let Some(row) = &c.row else { continue };
            let inside = boundary
                .as_ref()
                .is_none_or(|b| self.query.compare(row, &**b) != Ordering::Greater);
            if !inside || self.query.limit() == Some(0) {
                continue;
            }
            let row = Rc::new(row.clone());
            let pos = self
                .rows
                .partition_point(|r| self.query.compare(&**r, &*row) == Ordering::Less);
            self.rows.insert(pos, row.clone());
            self.by_id.insert(c.id.clone(), row);
            edits.push(Edit::Insert { pos, change: i });
        }
        if let Some(limit) = self.query.limit() {
            if self.rows.len() > limit {
                for r in self.rows.drain(limit..) {
                    self.by_id.remove(r.id());
                }
                self.complete = false;
                edits.push(Edit::Truncate(limit));
            }
        }
        self.remember(changes, &effective);
        if edits.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Patched(edits)
        }
    }

    fn remember(&mut self, changes: &[Change], effective: &[usize]) {
        for &i in effective {
            if let Some(h) = &changes[i].hlc {
                self.versions.insert(changes[i].id.clone(), h.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::DocFields;
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn fresh(query: &Query, docs: &BTreeMap<String, Value>) -> Vec<Row> {
        let all: Vec<&Value> = docs.values().collect();
        let fields: Vec<DocFields> = all
            .iter()
            .map(|doc| DocFields {
                doc,
                paths: query.paths(),
            })
            .collect();
        query
            .select(&fields)
            .into_iter()
            .map(|i| Row::from_doc(all[i], query.paths()))
            .collect()
    }

    fn change(query: &Query, id: &str, hlc: u32, doc: Option<&Value>) -> Change {
        Change {
            id: id.to_string(),
            hlc: Some(format!("{hlc:08}")),
            row: doc
                .filter(|d| query.matches_doc(d))
                .map(|d| Row::from_doc(d, query.paths())),
        }
    }

    /// The window plus a parallel list the edits are replayed on (as the browser's records are).
    struct Live {
        window: Window,
        shown: Vec<(String, u32)>,
        refills: usize,
    }

    impl Live {
        fn new(
            query: &Rc<Query>,
            docs: &BTreeMap<String, Value>,
            hlcs: &BTreeMap<String, u32>,
        ) -> Live {
            let rows = fresh(query, docs);
            let shown = rows
                .iter()
                .map(|r| (r.id().to_string(), hlcs[r.id()]))
                .collect();
            Live {
                window: Window::new(query.clone(), rows),
                shown,
                refills: 0,
            }
        }

        fn apply(
            &mut self,
            query: &Rc<Query>,
            changes: &[Change],
            docs: &BTreeMap<String, Value>,
            hlcs: &BTreeMap<String, u32>,
        ) {
            let shown = self.shown.clone();
            match self.window.apply(changes, |pos| {
                shown.get(pos).map(|(_, h)| format!("{h:08}"))
            }) {
                Outcome::Unchanged => {}
                Outcome::Refill => {
                    self.refills += 1;
                    let rows = fresh(query, docs);
                    self.shown = rows
                        .iter()
                        .map(|r| (r.id().to_string(), hlcs[r.id()]))
                        .collect();
                    self.window.refresh(rows);
                }
                Outcome::Patched(edits) => {
                    for e in edits {
                        match e {
                            Edit::Remove(p) => {
                                self.shown.remove(p);
                            }
                            Edit::Insert { pos, change } => {
                                let c = &changes[change];
                                let h: u32 = c.hlc.as_ref().unwrap().parse().unwrap();
                                self.shown.insert(pos, (c.id.clone(), h));
                            }
                            Edit::Truncate(n) => self.shown.truncate(n),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_full_page_patches_enter_leave_and_move_and_refills_a_freed_slot() {
        let query = Rc::new(
            Query::parse(r#"{"where": {"b": 1}, "orderBy": {"n": "asc"}, "limit": 2}"#).unwrap(),
        );
        let row = |id: &str, n: i64| Row(vec![json!(id), json!(1), json!(n)]);
        let mut w = Window::new(query.clone(), vec![row("a", 1), row("b", 2)]);
        assert!(!w.is_complete());
        let none = |_: usize| None;
        // After the page: nothing.
        let c = |id: &str, r: Option<Row>| Change {
            id: id.into(),
            hlc: None,
            row: r,
        };
        assert_eq!(
            w.apply(&[c("z", Some(row("z", 9)))], none),
            Outcome::Unchanged
        );
        // Enters: the last row falls off.
        assert_eq!(
            w.apply(&[c("c", Some(row("c", 0)))], none),
            Outcome::Patched(vec![Edit::Insert { pos: 0, change: 0 }, Edit::Truncate(2)])
        );
        // Moves inside.
        assert_eq!(
            w.apply(&[c("a", Some(row("a", -1)))], none),
            Outcome::Patched(vec![Edit::Remove(1), Edit::Insert { pos: 0, change: 0 }])
        );
        // Moves past the last row of a full page: what lies between is unknown.
        assert_eq!(w.apply(&[c("c", Some(row("c", 5)))], none), Outcome::Refill);
        // Leaves a full page: the next one is unknown.
        assert_eq!(w.apply(&[c("c", None)], none), Outcome::Refill);
        assert_eq!(w.rows().count(), 2, "unchanged after a refill answer");
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let query = Rc::new(Query::parse(r#"{"orderBy": {"n": "asc"}}"#).unwrap());
        let row = |id: &str, n: i64| Row(vec![json!(id), json!(n)]);
        let mut w = Window::new(query, vec![row("a", 1)]);
        let at = |h: &str| Change {
            id: "a".into(),
            hlc: Some(h.into()),
            row: Some(row("a", 5)),
        };
        let shown = |_: usize| Some("00000002".to_string());
        assert_eq!(
            w.apply(&[at("00000001")], shown),
            Outcome::Unchanged,
            "older than shown"
        );
        assert!(matches!(
            w.apply(&[at("00000003")], shown),
            Outcome::Patched(_)
        ));
        // It left; an older notice must not bring it back either.
        let gone = Change {
            id: "a".into(),
            hlc: Some("00000004".into()),
            row: None,
        };
        assert!(matches!(w.apply(&[gone], |_| None), Outcome::Patched(_)));
        assert_eq!(w.apply(&[at("00000003")], |_| None), Outcome::Unchanged);
        assert!(w.is_empty());
    }

    fn arb_value() -> impl Strategy<Value = Option<Value>> {
        prop::option::of(prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..4).prop_map(|n| json!(n)),
            prop::sample::select(vec!["a", "b", "B"]).prop_map(|s| json!(s)),
            Just(json!([1])),
        ])
    }

    fn arb_doc() -> impl Strategy<Value = Option<(Option<Value>, Option<Value>)>> {
        prop::option::weighted(0.85, (arb_value(), arb_value()))
    }

    fn doc(id: &str, f: &(Option<Value>, Option<Value>)) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(id));
        if let Some(a) = &f.0 {
            m.insert("a".into(), a.clone());
        }
        if let Some(b) = &f.1 {
            m.insert("b".into(), b.clone());
        }
        Value::Object(m)
    }

    fn arb_query() -> impl Strategy<Value = String> {
        (
            prop::option::of(prop_oneof![
                (0i64..4).prop_map(|n| json!({ "a": n })),
                Just(json!({ "a": { "$ne": 1 } })),
                Just(json!({ "b": { "$gte": "a" } })),
                Just(json!({ "a": { "$in": [0, 2, null] } })),
            ]),
            prop::option::of((prop::sample::select(vec!["a", "b", "id"]), any::<bool>())),
            prop::option::of(0usize..5),
        )
            .prop_map(|(w, o, l)| {
                let mut parts = Vec::new();
                if let Some(w) = w {
                    parts.push(format!("\"where\": {w}"));
                }
                if let Some((p, d)) = o {
                    parts.push(format!(
                        "\"orderBy\": {{\"{p}\": \"{}\"}}",
                        if d { "desc" } else { "asc" }
                    ));
                }
                if let Some(l) = l {
                    parts.push(format!("\"limit\": {l}"));
                }
                format!("{{{}}}", parts.join(", "))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// After every write (one to three documents, puts and deletes, ties and mixed types), the
        /// maintained window equals a fresh run of the query, and a patch, not a refill, handled
        /// every write that left a full page full.
        #[test]
        fn maintained_windows_equal_fresh_runs(
            text in arb_query(),
            initial in prop::collection::vec(arb_doc(), 0..10),
            writes in prop::collection::vec(prop::collection::vec((0usize..12, arb_doc()), 1..4), 1..25),
        ) {
            let query = Rc::new(Query::parse(&text).unwrap());
            let mut docs = BTreeMap::new();
            let mut hlcs = BTreeMap::new();
            let mut clock = 1u32;
            for (i, d) in initial.iter().enumerate() {
                let id = format!("d{i:02}");
                hlcs.insert(id.clone(), clock);
                if let Some(f) = d {
                    docs.insert(id.clone(), doc(&id, f));
                }
            }
            let mut live = Live::new(&query, &docs, &hlcs);
            for batch in writes {
                clock += 1;
                let mut changes = Vec::new();
                for (n, d) in batch {
                    let id = format!("d{n:02}");
                    match &d {
                        Some(f) => { docs.insert(id.clone(), doc(&id, f)); }
                        None => { docs.remove(&id); }
                    }
                    hlcs.insert(id.clone(), clock);
                    changes.push(change(&query, &id, clock, docs.get(&id)));
                }
                live.apply(&query, &changes, &docs, &hlcs);
                let want: Vec<String> = fresh(&query, &docs).iter().map(|r| r.id().to_string()).collect();
                let got: Vec<String> = live.window.rows().map(|r| r.id().to_string()).collect();
                prop_assert_eq!(&got, &want, "{}", text);
                let shown: Vec<String> = live.shown.iter().map(|(id, _)| id.clone()).collect();
                prop_assert_eq!(&shown, &want, "replayed edits");
                for (id, h) in &live.shown {
                    prop_assert_eq!(*h, hlcs[id], "shows the latest version of {}", id);
                }
            }
        }

        /// Notices delivered out of order (a newer one first, then a stale one): the window never
        /// goes back to the older version, and ends equal to a fresh run.
        #[test]
        fn stale_notices_are_ignored(
            text in arb_query(),
            initial in prop::collection::vec(arb_doc(), 1..8),
            writes in prop::collection::vec((0usize..8, arb_doc()), 2..16),
        ) {
            let query = Rc::new(Query::parse(&text).unwrap());
            let mut docs = BTreeMap::new();
            let mut hlcs = BTreeMap::new();
            for (i, d) in initial.iter().enumerate() {
                let id = format!("d{i:02}");
                hlcs.insert(id.clone(), 1);
                if let Some(f) = d {
                    docs.insert(id.clone(), doc(&id, f));
                }
            }
            let mut live = Live::new(&query, &docs, &hlcs);
            // Writes in pairs: the second's notice is delivered before the first's.
            let mut clock = 1u32;
            for pair in writes.chunks(2) {
                let mut notices = Vec::new();
                for (n, d) in pair {
                    clock += 1;
                    let id = format!("d{n:02}");
                    match d {
                        Some(f) => { docs.insert(id.clone(), doc(&id, f)); }
                        None => { docs.remove(&id); }
                    }
                    hlcs.insert(id.clone(), clock);
                    notices.push(vec![change(&query, &id, clock, docs.get(&id))]);
                }
                for n in notices.iter().rev() {
                    live.apply(&query, n, &docs, &hlcs);
                    for (id, h) in &live.shown {
                        prop_assert!(*h <= hlcs[id]);
                    }
                }
                let want: Vec<String> = fresh(&query, &docs).iter().map(|r| r.id().to_string()).collect();
                let shown: Vec<String> = live.shown.iter().map(|(id, _)| id.clone()).collect();
                prop_assert_eq!(&shown, &want, "{}", text);
            }
        }
    }
}
