//! Ordered walks: reading a source that yields documents already in result order, so a query with
//! a `limit` stops after `offset + limit` matches instead of reading every candidate.
//!
//! A source yields records in its own key order: the primary key in id order, an index in (key, id)
//! order, a compound index in (f1, ..., fn, id) order. That is the result order when the query
//! orders by `id` (or not at all) and every range is one index key (an equality or an `$in` point),
//! or when it orders by the indexed path (a compound index's last field, the others fixed). The
//! first `need` results are then among the first `need` matches of each range, so the store reads
//! each range only that far (IndexedDB `getAll(range, n)`) and core merges, filters and pages what
//! was read with [`Query::select`]. A descending order of the same shapes reads each range
//! backwards ([`Walk::descending`]). Anything else (an order the source does not serve) goes
//! through the planner of `query.rs`, reading every candidate.

use serde_json::Value;

use crate::query::{
    narrow, Bound, IndexKey, KeyComp, KeyRange, Op, Path, Query, Source, TupleBound, TupleRange,
};

/// Most fields in one compound index (each adds to every record's stored key).
pub const MAX_COMPOUND_FIELDS: usize = 8;

/// A compound index over several fields, in key order (`indexes: [["done", "title"]]`). Its
/// stored key is `[key(f1), ..., key(fn), id]` (see [`KeyComp`]); a record with an array or object
/// in any of the fields has no key and is left out, like a single-field index.
#[derive(Debug, Clone, PartialEq)]
pub struct CompoundIndex {
    pub paths: Vec<Path>,
}

impl CompoundIndex {
    /// The IndexedDB index name: `$` and the JSON array of the paths (`$["done","title"]`). Field
    /// paths cannot start with `$`, so it never collides with a single-field index.
    pub fn name(&self) -> String {
        let list: Vec<Value> = self
            .paths
            .iter()
            .map(|p| Value::String(p.as_str().to_string()))
            .collect();
        format!("${}", Value::Array(list))
    }

    /// The index an index name denotes, if it is a compound index's name.
    pub fn from_name(name: &str) -> Option<CompoundIndex> {
        let list: Vec<String> = serde_json::from_str(name.strip_prefix('$')?).ok()?;
        let paths = list
            .iter()
            .map(|p| Path::parse(p).ok())
            .collect::<Option<Vec<_>>>()?;
        (paths.len() >= 2).then_some(CompoundIndex { paths })
    }

    /// The stored key of a document, `None` when a field holds an array or object.
    pub fn key_of(&self, doc: &Value) -> Option<Vec<KeyComp>> {
        let mut key = Vec::with_capacity(self.paths.len() + 1);
        for p in &self.paths {
            key.push(KeyComp::Key(IndexKey::at(doc, p)?));
        }
        key.push(KeyComp::Id(doc.get("id")?.as_str()?.to_string()));
        Some(key)
    }
}

/// How to read a query with a limit in result order.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// One range per point or interval; each range yields records in result order.
    pub source: Source,
    /// Every record the ranges yield matches (only tombstones, on the primary key, are skipped):
    /// `getAll(range, need)` reads exactly enough. Otherwise the store reads on until it has `need`
    /// matches per range.
    pub exact: bool,
    /// The ranges hold every matching document. False for an index walked only for its order: a
    /// document whose value there is an array or object has no index key (it sorts after every
    /// scalar), so when the walk runs out before `need` matches the store must read everything.
    pub complete: bool,
    /// Set for index points read in id order with `after`: each point is read from just after
    /// this id (a cursor's `continuePrimaryKey`), which answers `after` exactly; `exact` then
    /// speaks of what is read from there.
    pub after_id: Option<String>,
    /// Read each range backwards (a cursor's `prev` direction): the query orders by the source's
    /// key descending.
    pub descending: bool,
    /// After `need` matches, read on while the key equals the last match's (a compound key's
    /// fields, without its id): a descending field order breaks ties by id *ascending* while a
    /// backward walk yields them by id descending, so the last tie group must be read whole
    /// (core's `select` orders it).
    pub ties: bool,
    /// Only valid when every live record has a key in the walked index (none holds an array or
    /// object at its path, or at one of a compound index's, which would sort first in a
    /// descending order): the store checks by counting before it walks, and reads everything
    /// otherwise.
    pub keyed: bool,
}

impl Walk {
    /// How many matches to read per range: `offset + limit`.
    pub fn need(query: &Query) -> Option<usize> {
        query.limit().map(|l| l.saturating_add(query.offset()))
    }
}

impl Query {
    /// A walk that serves this query in result order, if there is one and the query has a `limit`.
    /// Preference: the primary key when `id` has conditions; an index with an equality or `$in`
    /// (its points, merged by id); an index on the `orderBy` path; the whole primary key when no
    /// index can narrow the query at all. With a usable index that cannot serve the order (a range
    /// ordered by id, an equality ordered by another field) this returns `None`: counting and
    /// reading that index, then keeping a bounded top-k, is cheaper than filtering a long walk.
    pub fn walk(&self, is_indexed: impl Fn(&str) -> bool) -> Option<Walk> {
        self.walk_with(is_indexed, &[])
    }

    /// [`Query::walk`] with compound indexes too. A compound index serves the query when equality
    /// conditions fix all its fields but the last and `orderBy` names that one (or, with every
    /// field fixed, orders by `id`): one range of its keys is then the result in order, read
    /// forwards, or backwards for a descending order. With `after` an ascending range starts just
    /// after the previous page's last entry; a descending one ends just before it (ties by id
    /// descending), or is two ranges (ties by id ascending: the start's ties after its id, then
    /// every key below the start's). Such a walk is preferred to every single-field walk; one
    /// walked for its order alone only when nothing narrows.
    pub fn walk_with(
        &self,
        is_indexed: impl Fn(&str) -> bool,
        compounds: &[CompoundIndex],
    ) -> Option<Walk> {
        self.walk_dyn(&is_indexed, compounds)
    }

    /// [`Query::walk_with`], compiled once whatever the caller's closure.
    #[inline(never)]
    fn walk_dyn(
        &self,
        is_indexed: &dyn Fn(&str) -> bool,
        compounds: &[CompoundIndex],
    ) -> Option<Walk> {
        self.limit()?;
        let mut best: Option<(usize, Walk)> = None;
        for c in compounds {
            if let Some((fixed, w)) = self.compound_walk(c) {
                let better = best
                    .as_ref()
                    .is_none_or(|(f, b)| (fixed, w.exact) > (*f, b.exact));
                if better {
                    best = Some((fixed, w));
                }
            }
        }
        if let Some((fixed, w)) = &best {
            if *fixed > 0 {
                return Some(w.clone());
            }
        }
        if let Some(w) = self.single_walk(is_indexed) {
            return Some(self.start_after(w));
        }
        match best {
            Some((_, w)) if self.plan(is_indexed).is_empty() => Some(w),
            _ => None,
        }
    }

    /// The walk of compound index `c` and how many of its fields equalities fix, if it serves
    /// the query's order: ascending, or descending read backwards (the index order reversed).
    fn compound_walk(&self, c: &CompoundIndex) -> Option<(usize, Walk)> {
        let n = c.paths.len();
        // Equality keys of the leading fields.
        let mut keys = Vec::new();
        for p in &c.paths {
            let Some(pi) = self.paths().iter().position(|q| q == p) else {
                break;
            };
            let key = self
                .terms()
                .iter()
                .filter(|t| t.path == pi)
                .find_map(|t| match &t.op {
                    Op::Eq(v) => IndexKey::of(Some(v)),
                    _ => None,
                });
            match key {
                Some(k) => keys.push(k),
                None => break,
            }
        }
        // A trailing `id` key: ascending is the index's own order of ties, descending its reverse.
        let mut order = self.order();
        let mut id_desc = None;
        if let [rest @ .., last] = order {
            if self.paths()[last.path].as_str() == "id" {
                id_desc = Some(last.descending);
                order = rest;
            }
        }
        let descending = order
            .first()
            .map_or(id_desc == Some(true), |k| k.descending);
        if !descending && id_desc == Some(true) {
            return None; // ties by id descending in an ascending order: not the index order
        }
        // A descending field with ties by id ascending: the backward walk yields ties by id
        // descending, so the last group is read whole and core orders it.
        let ties = descending && !order.is_empty() && id_desc != Some(true);
        // The most fixed fields whose remaining fields are exactly the order. At most one field is
        // left free: a document with an array or object there is missing from the index but sorts
        // after every scalar, so only a walk that runs out can miss it; in an earlier free field
        // it would be missing from the middle of the order.
        let fixed = (0..=keys.len()).rev().find(|&m| {
            n - m <= 1
                && order.len() == n - m
                && order
                    .iter()
                    .zip(&c.paths[m..])
                    .all(|(k, p)| k.descending == descending && self.paths()[k.path] == *p)
        })?;
        let prefix: Vec<KeyComp> = keys[..fixed].iter().cloned().map(KeyComp::Key).collect();
        let with = |tail: &[KeyComp]| -> Vec<KeyComp> {
            let mut key = prefix.clone();
            key.extend_from_slice(tail);
            key
        };
        let mut ranges = vec![TupleRange {
            lower: TupleBound {
                key: prefix.clone(),
                open: false,
            },
            upper: TupleBound {
                key: with(&[KeyComp::Top]),
                open: true,
            },
        }];
        // Exact: the only conditions are the fixing equalities (one per field), and `after`, if
        // any, became a bound.
        let mut exact = self.terms().len() == fixed
            && self.terms().iter().all(|t| {
                matches!(&t.op, Op::Eq(v) if IndexKey::of(Some(v)).is_some())
                    && c.paths[..fixed].contains(&self.paths()[t.path])
            });
        // A document without a key (an array or object in the free field) sorts after every
        // scalar: at the end of an ascending walk, first in a descending one.
        let mut keyless_first = descending && fixed < n;
        if let Some(a) = self.after() {
            let rest: Option<Vec<KeyComp>> = a.values[..n - fixed]
                .iter()
                .map(|v| IndexKey::of(v.as_ref()).map(KeyComp::Key))
                .collect();
            match rest {
                Some(rest) => {
                    let mut start = rest.clone();
                    start.push(KeyComp::Id(a.id.clone()));
                    let start = TupleBound {
                        key: with(&start),
                        open: true,
                    };
                    if !descending {
                        ranges[0].lower = start;
                    } else if !ties {
                        ranges[0].upper = start;
                    } else {
                        // Descending with ties by id ascending: the start's ties after its id,
                        // then every key below the start's (two ranges, each read backwards).
                        let mut top = rest.clone();
                        top.push(KeyComp::Top);
                        ranges = vec![
                            TupleRange {
                                lower: start,
                                upper: TupleBound {
                                    key: with(&top),
                                    open: true,
                                },
                            },
                            TupleRange {
                                lower: ranges[0].lower.clone(),
                                upper: TupleBound {
                                    key: with(&rest),
                                    open: true,
                                },
                            },
                        ];
                    }
                    // Keyless documents come before a start with a key.
                    keyless_first = false;
                }
                None => exact = false,
            }
        }
        let walk = Walk {
            source: Source::Compound {
                name: c.name(),
                ranges,
            },
            exact,
            // With every field fixed each match has a key; otherwise an array or object in an
            // ordered field leaves a match out of the index (it sorts after every scalar).
            complete: fixed == n || (descending && !keyless_first),
            after_id: None,
            descending,
            ties,
            keyed: keyless_first,
        };
        Some((fixed, walk))
    }

    /// Starts a single-field or primary-key walk after the page start: id ranges exactly (ids
    /// are unique), an index ordered by its path at the start's key (its ties are read again and
    /// filtered), index points in id order just after the start's id (ascending; a backward walk
    /// of points reads them from their end and filters). A backward walk's range ends at the start
    /// instead of beginning there.
    fn start_after(&self, mut w: Walk) -> Walk {
        let Some(a) = self.after() else {
            return w;
        };
        match &mut w.source {
            Source::Ids(ranges) => {
                for r in ranges.iter_mut() {
                    if w.descending {
                        r.end_before(&a.id);
                    } else {
                        r.start_after(&a.id);
                    }
                }
                ranges.retain(|r| !r.is_empty());
            }
            Source::Index { path, ranges } => {
                let by_path = self
                    .order()
                    .first()
                    .is_some_and(|k| self.paths()[k.path].as_str() == path.as_str());
                let key = a.values.first().and_then(|v| IndexKey::of(v.as_ref()));
                if !by_path && w.descending {
                    // Points in id order, backwards: each from its end, filtered.
                    w.exact = false;
                    return w;
                }
                if !by_path {
                    // Points in id order: each starts just after the id.
                    w.after_id = Some(a.id.clone());
                    return w;
                }
                if let Some(key) = key {
                    let bound = Bound { key, open: false };
                    for r in ranges.iter_mut() {
                        if w.descending {
                            r.tighten_upper(bound.clone());
                        } else {
                            r.tighten_lower(bound.clone());
                        }
                    }
                    ranges.retain(|r| !r.is_empty());
                }
                w.exact = false;
            }
            Source::Compound { .. } => {}
        }
        w
    }

    /// Single-field and primary-key walks, ascending or descending: a backward walk of the same
    /// source yields the reverse order, ties (equal keys) aside.
    fn single_walk(&self, is_indexed: impl Fn(&str) -> bool) -> Option<Walk> {
        let is_id = |k: &crate::query::SortKey| self.paths()[k.path].as_str() == "id";
        let (id_order, id_desc) = match self.order() {
            [] => (true, false),
            [k] if is_id(k) => (true, k.descending),
            _ => (false, false),
        };
        // The ordered path, whether descending, and whether ties need the last group read whole
        // (a descending key with ties by id ascending).
        let ordered = match self.order() {
            [k] => Some((k.path, k.descending, k.descending)),
            [k, t] if is_id(t) && !t.descending => Some((k.path, k.descending, k.descending)),
            [k, t] if is_id(t) && k.descending => Some((k.path, true, false)),
            _ => None,
        };
        let sources = self.plan(&is_indexed);
        if id_order {
            for s in &sources {
                let walk = match s {
                    Source::Ids(_) => self.walk_of(s.clone(), None, true),
                    Source::Index { path, ranges } if ranges.iter().all(KeyRange::is_point) => {
                        let pi = self.paths().iter().position(|p| p.as_str() == path)?;
                        self.walk_of(s.clone(), Some(pi), true)
                    }
                    _ => continue,
                };
                return Some(Walk {
                    descending: id_desc,
                    ..walk
                });
            }
            if sources.is_empty() {
                return Some(Walk {
                    source: Source::Ids(vec![crate::query::IdRange {
                        lower: None,
                        upper: None,
                    }]),
                    exact: self.terms().is_empty(),
                    complete: true,
                    after_id: None,
                    descending: id_desc,
                    ties: false,
                    keyed: false,
                });
            }
            return None;
        }
        let (pi, descending, ties) = ordered?;
        let path = self.paths()[pi].as_str();
        if path == "id" || !is_indexed(path) {
            return None;
        }
        let terms: Vec<&Op> = self
            .terms()
            .iter()
            .filter(|t| t.path == pi)
            .map(|t| &t.op)
            .collect();
        if terms.is_empty() {
            // Walked for its order only: a narrower index, if any, is read whole instead.
            if !sources.is_empty() {
                return None;
            }
            return Some(Walk {
                source: Source::Index {
                    path: path.to_string(),
                    ranges: vec![KeyRange {
                        lower: None,
                        upper: None,
                    }],
                },
                exact: self.terms().is_empty(),
                complete: false,
                after_id: None,
                descending,
                ties,
                // Backwards, a record without a key (an array or object there) would come first.
                keyed: descending,
            });
        }
        // Conditions on the path: every match has a scalar key in these ranges.
        let (_, ranges) = narrow(&terms)?;
        let source = Source::Index {
            path: path.to_string(),
            ranges,
        };
        Some(Walk {
            descending,
            ties,
            ..self.walk_of(source, Some(pi), true)
        })
    }

    /// The walk of `source`; exact when every condition is on the source's path and the ranges
    /// answer it exactly (see [`exactly_answered`]).
    fn walk_of(&self, source: Source, path: Option<usize>, complete: bool) -> Walk {
        let exact = match path {
            Some(pi) => {
                self.terms().iter().all(|t| t.path == pi)
                    && exactly_answered(self.terms().iter().map(|t| &t.op))
            }
            None => {
                let id = self.paths().iter().position(|p| p.as_str() == "id");
                self.terms().iter().all(|t| Some(t.path) == id)
                    && exactly_answered(self.terms().iter().map(|t| &t.op))
                    && self.terms().iter().all(|t| match &t.op {
                        Op::Eq(v) | Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => {
                            v.is_string()
                        }
                        Op::In(vs) => vs.iter().all(serde_json::Value::is_string),
                        Op::Ne(_) => false,
                    })
            }
        };
        Walk {
            source,
            exact,
            complete,
            after_id: None,
            descending: false,
            ties: false,
            keyed: false,
        }
    }
}

/// True when the key ranges `narrow` builds for these conditions (all on one path) hold exactly
/// the matching values: one equality with a scalar or null, one `$in` of scalars and nulls, or
/// range operators whose operands are all of one type.
fn exactly_answered<'a>(ops: impl Iterator<Item = &'a Op>) -> bool {
    let ops: Vec<&Op> = ops.collect();
    let scalar = |v: &serde_json::Value| !v.is_array() && !v.is_object();
    match ops.as_slice() {
        [] => true,
        [Op::Eq(v)] => scalar(v),
        [Op::In(vs)] => vs.iter().all(scalar),
        _ => {
            let mut tag = None;
            ops.iter().all(|op| match op {
                Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => {
                    let t = crate::query::IndexKey::of(Some(v)).map(|k| k.tag);
                    t.is_some() && *tag.get_or_insert(t) == t
                }
                _ => false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{cmp_tuple, DocFields, IdRange};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn q(v: Value) -> Query {
        Query::parse(&v.to_string()).unwrap()
    }

    #[test]
    fn walks_serve_equality_id_order_and_index_order() {
        let indexed = |p: &str| p == "bucket" || p == "title";
        let w = q(json!({"where": {"bucket": 7}, "limit": 50}))
            .walk(indexed)
            .unwrap();
        assert!(w.exact && w.complete);
        assert!(matches!(&w.source, Source::Index { path, .. } if path == "bucket"));
        let w = q(json!({"where": {"bucket": 7}, "orderBy": {"id": "asc"}, "limit": 5}))
            .walk(indexed)
            .unwrap();
        assert!(w.exact);
        let w = q(json!({"where": {"bucket": 7, "done": false}, "limit": 5}))
            .walk(indexed)
            .unwrap();
        assert!(!w.exact && w.complete, "other conditions are filtered");
        assert_eq!(
            q(json!({"where": {"bucket": 7}})).walk(indexed),
            None,
            "no limit"
        );
        assert_eq!(
            q(json!({"where": {"bucket": {"$gt": 7}}, "limit": 5})).walk(indexed),
            None,
            "a range is not in id order"
        );
        let w =
            q(json!({"where": {"bucket": {"$gt": 7}}, "orderBy": {"bucket": "asc"}, "limit": 5}))
                .walk(indexed)
                .unwrap();
        assert!(w.exact && w.complete);
        let w = q(json!({"orderBy": {"title": "asc"}, "limit": 5}))
            .walk(indexed)
            .unwrap();
        assert!(
            w.exact && !w.complete,
            "arrays and objects are not in the index"
        );
        let w = q(json!({"limit": 5})).walk(indexed).unwrap();
        assert_eq!(
            w.source,
            Source::Ids(vec![IdRange {
                lower: None,
                upper: None
            }])
        );
        assert!(w.exact);
        let w = q(json!({"where": {"priority": 1}, "limit": 5}))
            .walk(indexed)
            .unwrap();
        assert!(!w.exact, "unindexed: the primary key, filtered");
        assert_eq!(
            q(json!({"where": {"bucket": 7}, "orderBy": {"title": "asc"}, "limit": 5}))
                .walk(indexed),
            None,
            "an equality elsewhere is read whole and top-k'd"
        );
        let w = q(json!({"where": {"id": {"$gte": "m"}}, "limit": 5}))
            .walk(indexed)
            .unwrap();
        assert!(w.exact && matches!(w.source, Source::Ids(_)));
    }

    #[test]
    fn descending_orders_walk_backwards() {
        let indexed = |p: &str| p == "bucket" || p == "title" || p == "score";
        // An equality in id order, newest id first: the point backwards, exact.
        let w = q(json!({"where": {"bucket": 7}, "orderBy": {"id": "desc"}, "limit": 50}))
            .walk(indexed)
            .unwrap();
        assert!(w.descending && w.exact && w.complete && !w.ties && !w.keyed);
        assert!(matches!(&w.source, Source::Index { path, .. } if path == "bucket"));
        // The primary key backwards.
        let w = q(json!({"orderBy": {"id": "desc"}, "limit": 50}))
            .walk(indexed)
            .unwrap();
        assert!(w.descending && w.exact && matches!(w.source, Source::Ids(_)));
        // An indexed field by itself descending: ties by id ascending need the last group whole,
        // and a record without a key (an array there) would come first: counted before walking.
        let w = q(json!({"orderBy": {"title": "desc"}, "limit": 20}))
            .walk(indexed)
            .unwrap();
        assert!(w.descending && w.ties && w.keyed && !w.complete);
        // Conditions on the field: every match has a key in the ranges.
        let w =
            q(json!({"where": {"score": {"$gte": 2}}, "orderBy": {"score": "desc"}, "limit": 5}))
                .walk(indexed)
                .unwrap();
        assert!(w.descending && w.ties && !w.keyed && w.complete && w.exact);
        // With `after`, a backward walk ends at the start: an index at the start's key (its ties
        // read again and filtered), the primary key just below the start's id.
        let w = q(
            json!({"orderBy": {"title": "desc"}, "limit": 20, "after": {"id": "x", "title": "t"}}),
        )
        .walk(indexed)
        .unwrap();
        assert!(w.descending && !w.exact && w.keyed);
        let Source::Index { ranges, .. } = &w.source else {
            panic!("{w:?}")
        };
        assert_eq!(
            ranges[0].upper,
            Some(Bound {
                key: IndexKey::of(Some(&json!("t"))).unwrap(),
                open: false
            })
        );
        assert_eq!(ranges[0].lower, None);
        let w = q(json!({"orderBy": {"id": "desc"}, "limit": 20, "after": {"id": "m"}}))
            .walk(indexed)
            .unwrap();
        assert!(w.descending && w.exact);
        assert_eq!(
            w.source,
            Source::Ids(vec![IdRange {
                lower: None,
                upper: Some(("m".into(), true))
            }])
        );
        // Index points in id order, backwards: from each point's end, filtered.
        let w = q(json!({"where": {"bucket": 7}, "orderBy": {"id": "desc"}, "limit": 20, "after": {"id": "m"}}))
            .walk(indexed)
            .unwrap();
        assert!(w.descending && !w.exact && w.after_id.is_none());
    }

    // ---- the walk against a naive evaluation ------------------------------------------------

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..4).prop_map(|n| json!(n)),
            prop::sample::select(vec!["a", "b", "B", "\u{1F600}"]).prop_map(|s| json!(s)),
        ]
    }

    fn arb_field() -> impl Strategy<Value = Option<Value>> {
        prop::option::of(prop_oneof![
            4 => arb_scalar(),
            1 => prop::collection::vec(arb_scalar(), 0..2).prop_map(Value::Array),
            1 => Just(json!({"x": 1})),
        ])
    }

    /// Documents with ties, missing fields, mixed types; some are tombstones (`None`).
    fn arb_store() -> impl Strategy<Value = Vec<Option<Value>>> {
        prop::collection::vec((arb_field(), arb_field(), any::<bool>(), 0u8..6), 0..24).prop_map(
            |docs| {
                docs.into_iter()
                    .enumerate()
                    .map(|(i, (a, b, live, c))| {
                        live.then(|| {
                            let mut m = serde_json::Map::new();
                            m.insert("id".into(), json!(format!("d{i:02}")));
                            if let Some(a) = a {
                                m.insert("a".into(), a);
                            }
                            if let Some(b) = b {
                                m.insert("b".into(), b);
                            }
                            m.insert("c".into(), json!(c % 3));
                            Value::Object(m)
                        })
                    })
                    .collect()
            },
        )
    }

    fn arb_walk_query() -> impl Strategy<Value = String> {
        let cond = prop_oneof![
            arb_scalar().prop_map(|v| json!(v)),
            prop::collection::vec(arb_scalar(), 0..3).prop_map(|v| json!({ "$in": v })),
            (
                prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]),
                arb_scalar()
            )
                .prop_filter("non-null", |(_, v)| !v.is_null())
                .prop_map(|(o, v)| json!({ o: v })),
            arb_scalar().prop_map(|v| json!({ "$ne": v })),
            prop::sample::select(vec!["d03", "d10", "e"]).prop_map(|s| json!({ "$gte": s })),
        ];
        (
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "c", "id"]),
                cond,
                0..3,
            ),
            prop::option::of((
                prop::sample::select(vec!["a", "b", "id"]),
                any::<bool>(),
                prop::option::of(any::<bool>()),
            )),
            0usize..6,
            prop::option::of(0usize..3),
            prop::option::of(prop::sample::select(vec!["b", "c"])),
        )
            .prop_map(|(w, order, limit, offset, second)| {
                let mut text = format!("{{\"where\": {}", json!(w));
                if let Some((p, desc, tie)) = order {
                    let dir = if desc { "desc" } else { "asc" };
                    let second = second
                        .filter(|s| *s != p && p != "id")
                        .map(|s| format!(", \"{s}\": \"asc\""))
                        .unwrap_or_default();
                    if let Some(tie) = tie.filter(|_| p != "id") {
                        // Ties by id, either way.
                        let tie = if tie { "desc" } else { "asc" };
                        text.push_str(&format!(
                            ", \"orderBy\": {{\"{p}\": \"{dir}\"{second}, \"id\": \"{tie}\"}}"
                        ));
                    } else {
                        text.push_str(&format!(", \"orderBy\": {{\"{p}\": \"{dir}\"{second}}}"));
                    }
                }
                text.push_str(&format!(", \"limit\": {limit}"));
                if let Some(o) = offset {
                    text.push_str(&format!(", \"offset\": {o}"));
                }
                text.push('}');
                text
            })
    }

    /// Queries a compound index serves backwards: an equality on `c`, ordered by `b` descending
    /// (ties by id either way, or not named), or also fixing `a` (`$["c","a","b"]`), or fixing
    /// `b` too and ordered by id descending; some with another condition to filter.
    fn arb_desc_compound_query() -> impl Strategy<Value = String> {
        (
            0u8..3,
            0u8..4,
            arb_scalar(),
            prop::option::of(any::<bool>()),
            1usize..6,
            prop::option::of(0usize..3),
        )
            .prop_map(|(c, shape, v, tie, limit, offset)| {
                let tie = match tie {
                    None => String::new(),
                    Some(d) => format!(r#", "id": "{}""#, if d { "desc" } else { "asc" }),
                };
                let v = json!(v);
                let (cond, order) = match shape {
                    0 => (String::new(), format!(r#""b": "desc"{tie}"#)),
                    1 => (format!(r#", "a": {v}"#), format!(r#""b": "desc"{tie}"#)),
                    2 => (format!(r#", "b": {v}"#), r#""id": "desc""#.to_string()),
                    _ => (
                        format!(r#", "a": {{"$ne": {v}}}"#),
                        format!(r#""b": "desc"{tie}"#),
                    ),
                };
                let mut text = format!(
                    r#"{{"where": {{"c": {c}{cond}}}, "orderBy": {{{order}}}, "limit": {limit}"#
                );
                if let Some(o) = offset {
                    text.push_str(&format!(r#", "offset": {o}"#));
                }
                text.push('}');
                text
            })
    }

    /// What the store does with a walk, simulated over sorted in-memory "IndexedDB" ranges: each
    /// range read (backwards when descending) up to `need` matches (or exactly `need` records when
    /// exact), then on through the last match's tie group when `ties`, tombstones skipped, then
    /// `select`. `None` when the walk ran out incomplete, or a `keyed` walk's index misses a live
    /// record (the store then reads everything).
    fn run_walk(query: &Query, walk: &Walk, store: &[Option<Value>]) -> Option<Vec<String>> {
        let need = Walk::need(query).unwrap();
        let mut read: Vec<&Value> = Vec::new();
        // The key of a record in the walked index (a compound key without its id: ties share it).
        let key_of = |d: Option<&Value>| match (&walk.source, d) {
            (Source::Index { path, .. }, Some(d)) => {
                IndexKey::at(d, &Path::parse(path).unwrap()).map(|k| vec![KeyComp::Key(k)])
            }
            (Source::Compound { name, .. }, Some(d)) => {
                let mut key = CompoundIndex::from_name(name).unwrap().key_of(d)?;
                key.pop();
                Some(key)
            }
            _ => None,
        };
        if walk.keyed {
            assert!(
                !matches!(walk.source, Source::Ids(_)),
                "keyed walks are index walks"
            );
            if store.iter().flatten().any(|d| key_of(Some(d)).is_none()) {
                return None;
            }
        }
        let mut ranges_docs: Vec<Vec<Option<&Value>>> = match &walk.source {
            Source::Ids(ranges) => ranges
                .iter()
                .map(|r| {
                    // The primary key holds tombstones too (with their id).
                    (0..store.len())
                        .filter(|i| r.contains(&format!("d{i:02}")))
                        .map(|i| store[i].as_ref())
                        .collect()
                })
                .collect(),
            Source::Index { path, ranges } => {
                let p = Path::parse(path).unwrap();
                ranges
                    .iter()
                    .map(|r| {
                        let mut hits: Vec<(IndexKey, &Value)> = store
                            .iter()
                            .flatten()
                            .filter_map(|d| IndexKey::at(d, &p).map(|k| (k, d)))
                            .filter(|(k, _)| r.contains(k))
                            .collect();
                        hits.sort_by(|x, y| {
                            x.0.cmp_idb(&y.0).then_with(|| {
                                x.1["id"].as_str().unwrap().cmp(y.1["id"].as_str().unwrap())
                            })
                        });
                        hits.into_iter()
                            .filter(|(_, d)| {
                                walk.after_id.as_deref().is_none_or(|a| {
                                    crate::query::cmp_str(d["id"].as_str().unwrap(), a)
                                        == std::cmp::Ordering::Greater
                                })
                            })
                            .map(|(_, d)| Some(d))
                            .collect()
                    })
                    .collect()
            }
            Source::Compound { name, ranges } => {
                let c = CompoundIndex::from_name(name).unwrap();
                ranges
                    .iter()
                    .map(|r| {
                        let mut hits: Vec<(Vec<KeyComp>, &Value)> = store
                            .iter()
                            .flatten()
                            .filter_map(|d| c.key_of(d).map(|k| (k, d)))
                            .filter(|(k, _)| r.contains(k))
                            .collect();
                        hits.sort_by(|x, y| cmp_tuple(&x.0, &y.0));
                        hits.into_iter().map(|(_, d)| Some(d)).collect()
                    })
                    .collect()
            }
        };
        if walk.descending {
            for docs in &mut ranges_docs {
                docs.reverse();
            }
        }
        for docs in ranges_docs {
            let mut found = 0;
            let mut last: Option<Vec<KeyComp>> = None;
            for (took, d) in docs.iter().enumerate() {
                // An exact index range is one `getAll(range, need)`.
                if found >= need
                    || (walk.exact && took >= need && !matches!(walk.source, Source::Ids(_)))
                {
                    let tied = walk.ties
                        && last
                            .as_ref()
                            .zip(key_of(*d))
                            .is_some_and(|(a, b)| cmp_tuple(a, &b) == std::cmp::Ordering::Equal);
                    if !tied {
                        break;
                    }
                }
                if let Some(d) = d {
                    read.push(d);
                    if query.matches_doc(d) {
                        found += 1;
                        last = key_of(Some(d));
                    }
                }
            }
            // A backward walk is never read again (`store/read.rs` `walk_back`): it must be
            // complete, or `keyed` and checked above.
            if found < need && !walk.complete && !walk.descending {
                return None;
            }
        }
        let rows: Vec<DocFields> = read
            .iter()
            .map(|doc| DocFields {
                doc,
                paths: query.paths(),
            })
            .collect();
        Some(
            query
                .select(&rows)
                .into_iter()
                .map(|i| read[i]["id"].as_str().unwrap().to_string())
                .collect(),
        )
    }

    fn naive(query: &Query, store: &[Option<Value>]) -> Vec<String> {
        let docs: Vec<&Value> = store.iter().flatten().collect();
        let mut hits: Vec<&Value> = docs.into_iter().filter(|d| query.matches_doc(d)).collect();
        hits.sort_by(|a, b| {
            query.compare(
                &DocFields {
                    doc: a,
                    paths: query.paths(),
                },
                &DocFields {
                    doc: b,
                    paths: query.paths(),
                },
            )
        });
        hits.into_iter()
            .skip(query.offset())
            .take(query.limit().unwrap_or(usize::MAX))
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn compounds() -> Vec<CompoundIndex> {
        [vec!["a", "b"], vec!["c", "b"], vec!["c", "a", "b"]]
            .into_iter()
            .map(|ps| CompoundIndex {
                paths: ps.into_iter().map(|p| Path::parse(p).unwrap()).collect(),
            })
            .collect()
    }

    /// `text` with `"after": after` added.
    fn with_after(text: &str, after: &Value) -> String {
        format!("{}, \"after\": {}}}", &text[..text.len() - 1], after)
    }

    /// The result the store returns: the walk's, or everything read and selected.
    fn store_result(query: &Query, store: &[Option<Value>], idx_a: bool) -> Vec<String> {
        let indexed = |p: &str| p == "b" || (idx_a && p == "a");
        query
            .walk_with(indexed, &compounds())
            .and_then(|w| run_walk(query, &w, store))
            .unwrap_or_else(|| naive(query, store))
    }

    #[test]
    fn compound_walks_fix_a_prefix_and_follow_the_order() {
        let c = compounds();
        let w = q(json!({"where": {"c": 1}, "orderBy": {"b": "asc"}, "limit": 5}))
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(w.exact && !w.complete, "{w:?}");
        assert!(matches!(&w.source, Source::Compound { name, .. } if name == r#"$["c","b"]"#));
        let w = q(json!({"where": {"a": "x", "b": 2}, "limit": 5}))
            .walk_with(|p| p == "a", &c)
            .unwrap();
        assert!(w.exact && w.complete);
        assert!(matches!(&w.source, Source::Compound { name, .. } if name == r#"$["a","b"]"#));
        let w = q(json!({"where": {"c": 1, "a": 2}, "orderBy": {"b": "asc"}, "limit": 5}))
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(matches!(&w.source, Source::Compound { name, .. } if name == r#"$["c","a","b"]"#));
        assert_eq!(
            q(json!({"where": {"c": 1}, "orderBy": {"a": "asc", "b": "asc"}, "limit": 5}))
                .walk_with(|_| false, &c),
            None,
            "an array in `a` would be missing from the middle of the order"
        );
        assert_eq!(
            q(json!({"where": {"c": 1}, "orderBy": {"b": "asc", "id": "desc"}, "limit": 5}))
                .walk_with(|_| false, &c),
            None,
            "ties by id descending in an ascending order are not the index order"
        );
        // With `after`, the range starts just after the previous page's last entry.
        let text = json!({"where": {"c": 1}, "orderBy": {"b": "asc"}, "limit": 5}).to_string();
        let w = Query::parse(&with_after(&text, &json!({"id": "d07", "c": 1, "b": true})))
            .unwrap()
            .walk_with(|_| false, &c)
            .unwrap();
        let Source::Compound { ranges, .. } = &w.source else {
            panic!()
        };
        assert!(ranges[0].lower.open && w.exact);
        assert_eq!(
            ranges[0].lower.key,
            [
                KeyComp::Key(IndexKey::of(Some(&json!(1))).unwrap()),
                KeyComp::Key(IndexKey::of(Some(&json!(true))).unwrap()),
                KeyComp::Id("d07".into())
            ]
        );
        assert_eq!(
            CompoundIndex::from_name(r#"$["c","b"]"#),
            Some(c[1].clone())
        );
        assert_eq!(CompoundIndex::from_name("$tombstones"), None);
    }

    #[test]
    fn compound_walks_go_backwards_for_descending_orders() {
        let c = compounds();
        let key = |v: Value| KeyComp::Key(IndexKey::of(Some(&v)).unwrap());
        let ranges_of = |w: &Walk| match &w.source {
            Source::Compound { name, ranges } => {
                assert_eq!(name, r#"$["c","b"]"#);
                ranges.clone()
            }
            s => panic!("{s:?}"),
        };
        // The last field descending: the prefix's range backwards, the last tie group read whole
        // (ties by id ascending), valid only while every live record has a key in the index (an
        // array or object in `b` would come first).
        let text = json!({"where": {"c": 1}, "orderBy": {"b": "desc"}, "limit": 5}).to_string();
        let w = Query::parse(&text)
            .unwrap()
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(
            w.descending && w.ties && w.keyed && w.exact && !w.complete,
            "{w:?}"
        );
        let all = ranges_of(&w);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].lower.key, [key(json!(1))]);
        assert_eq!(all[0].upper.key, [key(json!(1)), KeyComp::Top]);
        // Ties by id descending: the exact reverse of the index order, no tie group to finish.
        let w = q(json!({"where": {"c": 1}, "orderBy": {"b": "desc", "id": "desc"}, "limit": 5}))
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(w.descending && !w.ties && w.keyed && w.exact, "{w:?}");
        // Every field fixed, newest id first: every match has a key.
        let w = q(json!({"where": {"c": 1, "b": 2}, "orderBy": {"id": "desc"}, "limit": 5}))
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(w.descending && !w.ties && !w.keyed && w.exact && w.complete);
        // Other conditions are filtered.
        let w =
            q(json!({"where": {"c": 1, "a": {"$ne": 3}}, "orderBy": {"b": "desc"}, "limit": 5}))
                .walk_with(|_| false, &c)
                .unwrap();
        assert!(w.descending && !w.exact);
        // Mixed directions are not the index order, reversed or not.
        assert_eq!(
            q(json!({"where": {"c": 1}, "orderBy": {"a": "desc", "b": "asc"}, "limit": 5}))
                .walk_with(|_| false, &c),
            None
        );
        // With `after` (a key in `b`): the start's ties after its id, then the keys below it;
        // keyless records come before the start, so no count is needed.
        let start = json!({"id": "d07", "c": 1, "b": "a"});
        let w = Query::parse(&with_after(&text, &start))
            .unwrap()
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(
            w.descending && w.ties && !w.keyed && w.exact && w.complete,
            "{w:?}"
        );
        let r = ranges_of(&w);
        assert_eq!(r.len(), 2);
        let at = [key(json!(1)), key(json!("a")), KeyComp::Id("d07".into())];
        assert!(r[0].lower.open && r[0].lower.key == at);
        assert_eq!(
            r[0].upper.key,
            [key(json!(1)), key(json!("a")), KeyComp::Top]
        );
        assert!(!r[1].lower.open && r[1].lower.key == [key(json!(1))]);
        assert!(r[1].upper.open && r[1].upper.key == [key(json!(1)), key(json!("a"))]);
        // Ties by id descending: one range ending just before the start.
        let text_desc =
            json!({"where": {"c": 1}, "orderBy": {"b": "desc", "id": "desc"}, "limit": 5})
                .to_string();
        let w = Query::parse(&with_after(&text_desc, &start))
            .unwrap()
            .walk_with(|_| false, &c)
            .unwrap();
        let r = ranges_of(&w);
        assert!(r.len() == 1 && r[0].upper.open && r[0].upper.key == at && w.exact && !w.keyed);
        // A start holding an array in `b` (no key): the whole range, filtered, counted first.
        let w = Query::parse(&with_after(&text, &json!({"id": "d07", "c": 1, "b": [1]})))
            .unwrap()
            .walk_with(|_| false, &c)
            .unwrap();
        assert!(w.descending && w.keyed && !w.exact && ranges_of(&w) == all);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Paging with `after` (the previous page's last document) through every page gives
        /// exactly the unpaged result, ties, missing fields and mixed types included, whichever
        /// way the store reads (compound, single-field, primary key or everything).
        #[test]
        fn pages_after_pages_equal_one_query(store in arb_store(), text in arb_walk_query(), idx_a in any::<bool>()) {
            let first = Query::parse(&text).unwrap();
            let Some(limit) = first.limit().filter(|l| *l > 0) else { return Ok(()); };
            if first.offset() > 0 { return Ok(()); }
            let all_text = text.replace(&format!(", \"limit\": {limit}"), "");
            let all = naive(&Query::parse(&all_text).unwrap(), &store);
            let by_id: std::collections::HashMap<&str, &Value> =
                store.iter().flatten().map(|d| (d["id"].as_str().unwrap(), d)).collect();
            let mut got: Vec<String> = store_result(&first, &store, idx_a);
            let mut page = got.clone();
            while page.len() == limit {
                let last = by_id[page[limit - 1].as_str()];
                let next = Query::parse(&with_after(&text, last)).unwrap();
                page = store_result(&next, &store, idx_a);
                prop_assert!(got.len() <= all.len(), "{} pages run past the result", text);
                got.extend(page.iter().cloned());
            }
            prop_assert_eq!(got, all, "{}", text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// Reading each range of a walk only as far as `offset + limit` matches gives exactly the
        /// naive result (filter everything, sort, page), and exact walks never skip a filter that
        /// mattered.
        #[test]
        fn walks_equal_naive_evaluation(
            store in arb_store(),
            text in arb_walk_query(),
            idx_a in any::<bool>(),
            after in prop::option::of((arb_field(), arb_field(), 0u8..3, 0usize..26)),
        ) {
            let text = match after {
                None => text,
                Some((a, b, c, i)) => {
                    let mut m = serde_json::Map::new();
                    m.insert("id".into(), json!(format!("d{i:02}")));
                    if let Some(a) = a { m.insert("a".into(), a); }
                    if let Some(b) = b { m.insert("b".into(), b); }
                    m.insert("c".into(), json!(c));
                    with_after(&text, &Value::Object(m))
                }
            };
            let query = Query::parse(&text).unwrap();
            let indexed = |p: &str| p == "b" || (idx_a && p == "a");
            let Some(walk) = query.walk_with(indexed, &compounds()) else { return Ok(()); };
            let want = naive(&query, &store);
            prop_assert!(!walk.descending || walk.complete || walk.keyed, "{:?}", walk);
            if let Some(got) = run_walk(&query, &walk, &store) {
                prop_assert_eq!(&got, &want, "{} via {:?}", text, walk);
            } else {
                prop_assert!(!walk.complete);
            }
            if walk.exact {
                // Every live record in the ranges matches.
                if let Source::Index { path, ranges } = &walk.source {
                    let p = Path::parse(path).unwrap();
                    let past = |d: &Value| walk.after_id.as_deref().is_none_or(|a| {
                        crate::query::cmp_str(d["id"].as_str().unwrap(), a) == std::cmp::Ordering::Greater
                    });
                    for d in store.iter().flatten().filter(|d| past(d)) {
                        if let Some(k) = IndexKey::at(d, &p) {
                            if ranges.iter().any(|r| r.contains(&k)) {
                                prop_assert!(query.matches_doc(d), "{} exact but {} fails", text, d);
                            }
                        }
                    }
                }
                if let Source::Compound { name, ranges } = &walk.source {
                    let c = CompoundIndex::from_name(name).unwrap();
                    for d in store.iter().flatten() {
                        if let Some(k) = c.key_of(d) {
                            if ranges.iter().any(|r| r.contains(&k)) {
                                prop_assert!(query.matches_doc(d), "{} exact but {} fails", text, d);
                            }
                        }
                    }
                }
                if let Source::Ids(ranges) = &walk.source {
                    for d in store.iter().flatten() {
                        if ranges.iter().any(|r| r.contains(d["id"].as_str().unwrap())) {
                            prop_assert!(query.matches_doc(d), "{} exact but {} fails", text, d);
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Descending compound walks (read backwards, the last tie group whole) equal the naive
        /// evaluation with `offset`, with `after` anywhere (a key, none, or an array in `b`) and
        /// on stores where every record has a key or where some have none (then the store counts
        /// and reads everything); paging through with `after` equals one query.
        #[test]
        fn descending_compound_walks_equal_naive_evaluation(
            store in arb_store(),
            all_keyed in any::<bool>(),
            text in arb_desc_compound_query(),
            after in prop::option::of((arb_field(), arb_field(), 0usize..26)),
        ) {
            let store: Vec<Option<Value>> = store
                .into_iter()
                .map(|d| {
                    d.map(|mut d| {
                        if all_keyed {
                            for f in ["a", "b"] {
                                if d.get(f).is_some_and(|v| v.is_array() || v.is_object()) {
                                    d[f] = Value::Null;
                                }
                            }
                        }
                        d
                    })
                })
                .collect();
            let first = Query::parse(&text).unwrap();
            let text_after = match after {
                None => text.clone(),
                Some((a, b, i)) => {
                    let mut m = serde_json::Map::new();
                    m.insert("id".into(), json!(format!("d{i:02}")));
                    if let Some(a) = a { m.insert("a".into(), a); }
                    if let Some(b) = b { m.insert("b".into(), b); }
                    with_after(&text, &Value::Object(m))
                }
            };
            for t in [&text, &text_after] {
                let query = Query::parse(t).unwrap();
                let indexed = |p: &str| p == "b";
                let walk = query.walk_with(indexed, &compounds());
                let walk = walk.expect("a compound walk serves it");
                prop_assert!(
                    walk.descending && matches!(walk.source, Source::Compound { .. }),
                    "{} via {:?}", t, walk
                );
                prop_assert!(walk.complete || walk.keyed, "{:?}", walk);
                let want = naive(&query, &store);
                match run_walk(&query, &walk, &store) {
                    Some(got) => prop_assert_eq!(&got, &want, "{} via {:?}", t, walk),
                    None => prop_assert!(walk.keyed && !all_keyed, "{} via {:?}", t, walk),
                }
            }
            // Every page after the previous one's last document.
            if first.offset() > 0 { return Ok(()); }
            let limit = first.limit().unwrap();
            let all = naive(
                &Query::parse(&text.replace(&format!(r#", "limit": {limit}"#), "")).unwrap(),
                &store,
            );
            let by_id: std::collections::HashMap<&str, &Value> =
                store.iter().flatten().map(|d| (d["id"].as_str().unwrap(), d)).collect();
            let mut got = store_result(&first, &store, false);
            let mut page = got.clone();
            while page.len() == limit {
                let last = by_id[page[limit - 1].as_str()];
                page = store_result(&Query::parse(&with_after(&text, last)).unwrap(), &store, false);
                prop_assert!(got.len() <= all.len(), "{} pages run past the result", text);
                got.extend(page.iter().cloned());
            }
            prop_assert_eq!(got, all, "{}", text);
        }
    }
}
