//! Ordered walks: reading a source that yields documents already in result order, so a query with
//! a `limit` stops after `offset + limit` matches instead of reading every candidate.
//!
//! A source yields records in its own key order: the primary key in id order, an index in (key, id)
//! order. That is the result order when the query orders by `id` (or not at all) and every range is
//! one index key (an equality or an `$in` point), or when it orders by the indexed path ascending.
//! The first `need` results are then among the first `need` matches of each range, so the store
//! reads each range only that far (IndexedDB `getAll(range, n)`) and core merges, filters and pages
//! what was read with [`Query::select`]. Anything else (a descending order, an order the source does
//! not serve) goes through the planner of `query.rs`, reading every candidate.

use crate::query::{narrow, KeyRange, Op, Query, Source};

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
        self.limit()?;
        let id_order = match self.order() {
            [] => true,
            [k] => !k.descending && self.paths()[k.path].as_str() == "id",
            _ => false,
        };
        let ordered_path = match self.order() {
            [k] if !k.descending => Some(k.path),
            [k, t] if !k.descending && !t.descending && self.paths()[t.path].as_str() == "id" => {
                Some(k.path)
            }
            _ => None,
        };
        let sources = self.plan(&is_indexed);
        if id_order {
            for s in &sources {
                match s {
                    Source::Ids(_) => return Some(self.walk_of(s.clone(), None, true)),
                    Source::Index { path, ranges } if ranges.iter().all(KeyRange::is_point) => {
                        let pi = self.paths().iter().position(|p| p.as_str() == path)?;
                        return Some(self.walk_of(s.clone(), Some(pi), true));
                    }
                    _ => {}
                }
            }
            if sources.is_empty() {
                return Some(Walk {
                    source: Source::Ids(vec![crate::query::IdRange {
                        lower: None,
                        upper: None,
                    }]),
                    exact: self.terms().is_empty(),
                    complete: true,
                });
            }
            return None;
        }
        let pi = ordered_path?;
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
            });
        }
        let (_, ranges) = narrow(&terms)?;
        let source = Source::Index {
            path: path.to_string(),
            ranges,
        };
        Some(self.walk_of(source, Some(pi), true))
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
    use crate::query::{DocFields, IdRange, IndexKey, Path};
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
        assert_eq!(
            q(json!({"where": {"bucket": 7}, "orderBy": {"id": "desc"}, "limit": 5})).walk(indexed),
            None
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
                any::<bool>(),
            )),
            0usize..6,
            prop::option::of(0usize..3),
        )
            .prop_map(|(w, order, limit, offset)| {
                let mut text = format!("{{\"where\": {}", json!(w));
                if let Some((p, desc, tie)) = order {
                    let dir = if desc { "desc" } else { "asc" };
                    if tie && p != "id" {
                        text.push_str(&format!(
                            ", \"orderBy\": {{\"{p}\": \"{dir}\", \"id\": \"asc\"}}"
                        ));
                    } else {
                        text.push_str(&format!(", \"orderBy\": {{\"{p}\": \"{dir}\"}}"));
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

    /// What the store does with a walk, simulated over sorted in-memory "IndexedDB" ranges: each
    /// range read up to `need` matches (or exactly `need` records when exact), tombstones skipped,
    /// then `select`. `None` when the walk ran out incomplete (the store then reads everything).
    fn run_walk(query: &Query, walk: &Walk, store: &[Option<Value>]) -> Option<Vec<String>> {
        let need = Walk::need(query).unwrap();
        let mut read: Vec<&Value> = Vec::new();
        let ranges_docs: Vec<Vec<Option<&Value>>> = match &walk.source {
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
                        hits.into_iter().map(|(_, d)| Some(d)).collect()
                    })
                    .collect()
            }
        };
        for docs in ranges_docs {
            let mut found = 0;
            for (took, d) in docs.iter().enumerate() {
                // An exact index range is one `getAll(range, need)`.
                if found >= need
                    || (walk.exact && took >= need && !matches!(walk.source, Source::Ids(_)))
                {
                    break;
                }
                if let Some(d) = d {
                    read.push(d);
                    if query.matches_doc(d) {
                        found += 1;
                    }
                }
            }
            if found < need && !walk.complete {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// Reading each range of a walk only as far as `offset + limit` matches gives exactly the
        /// naive result (filter everything, sort, page), and exact walks never skip a filter that
        /// mattered.
        #[test]
        fn walks_equal_naive_evaluation(store in arb_store(), text in arb_walk_query(), idx_a in any::<bool>()) {
            let query = Query::parse(&text).unwrap();
            let indexed = |p: &str| p == "b" || (idx_a && p == "a");
            let Some(walk) = query.walk(indexed) else { return Ok(()); };
            let want = naive(&query, &store);
            if let Some(got) = run_walk(&query, &walk, &store) {
                prop_assert_eq!(&got, &want, "{} via {:?}", text, walk);
            } else {
                prop_assert!(!walk.complete);
            }
            if walk.exact {
                // Every live record in the ranges matches.
                if let Source::Index { path, ranges } = &walk.source {
                    let p = Path::parse(path).unwrap();
                    for d in store.iter().flatten() {
                        if let Some(k) = IndexKey::at(d, &p) {
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
}
