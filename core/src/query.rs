//! Queries over documents: parsing, matching, ordering and choosing an index.
//!
//! The browser store reads candidate records from IndexedDB (through an index when one serves the
//! query, else a full scan) and hands this module the few fields the query looks at; everything that
//! decides *which* documents and *in what order* lives here, so it is tested natively and shared.
//!
//! Semantics (deliberately small and predictable):
//! - `where` is an object of field conditions, all of which must hold (AND). A condition is either a
//!   value (deep equality) or an object of operators: `$eq $ne $gt $gte $lt $lte $in`.
//! - Field paths are dotted (`"meta.rank"`); a numeric segment also indexes an array (`"tags.0"`).
//! - A missing field equals `null` (so `{ x: null }` matches both, `{ x: { $ne: null } }` neither).
//! - Numbers compare by value (`1 == 1.0`); strings compare by UTF-16 code units, exactly like
//!   JavaScript `<` and IndexedDB keys, so an index range and this module never disagree.
//! - `$gt $gte $lt $lte` only match values of the operand's type (`{ n: { $gt: 2 } }` never matches a
//!   string), which is what lets an index answer a range with one contiguous key range.
//! - Ordering across types (for `orderBy`): null/missing < booleans < numbers < strings < arrays <
//!   objects; ties are broken by `id` ascending, so results are always deterministic. Without
//!   `orderBy`, results come in `id` order.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::document::type_name;

/// Supported operators, for messages.
pub const OPERATORS: &str = "$eq $ne $gt $gte $lt $lte $in";

/// Why a query was refused; the message says what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

// ---------------------------------------------------------------------------------------------------
// Paths

/// A dotted field path such as `meta.rank`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    text: String,
    segments: Vec<String>,
}

impl Path {
    /// Non-empty segments separated by dots; no segment may start with `$` (operators).
    pub fn parse(s: &str) -> Result<Path, String> {
        if s.is_empty() {
            return Err("a field path must not be empty".into());
        }
        let mut segments = Vec::new();
        for seg in s.split('.') {
            if seg.is_empty() {
                return Err(format!("field path {s:?} has an empty segment"));
            }
            if seg.starts_with('$') {
                return Err(format!(
                    "field path {s:?}: {seg:?} starts with '$', which is reserved for operators ({OPERATORS})"
                ));
            }
            segments.push(seg.to_string());
        }
        Ok(Path {
            text: s.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this path, if present. Object members by name; array elements by a canonical
    /// decimal index (`"0"`, `"12"`, not `"01"`); anything else is missing.
    pub fn resolve<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut cur = doc;
        for seg in &self.segments {
            cur = match cur {
                Value::Object(o) => o.get(seg)?,
                Value::Array(a) => a.get(array_index(seg)?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `"0"`, `"1"`, ... `"123"` but not `"01"`, `"+1"` or `"1e3"` (the JavaScript side applies the same rule).
pub fn array_index(seg: &str) -> Option<usize> {
    let b = seg.as_bytes();
    let canonical = match b {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    if canonical {
        seg.parse().ok()
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------------
// Value order

/// Type rank in the cross-type order.
fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Object(_)) => 5,
    }
}

fn num(n: &serde_json::Number) -> f64 {
    // Always Some without serde_json's arbitrary_precision feature.
    n.as_f64().unwrap_or(0.0)
}

/// Compares strings by UTF-16 code units (JavaScript and IndexedDB order), which differs from Rust's
/// byte order only when a character above U+FFFF meets one in U+E000..=U+FFFF.
pub fn cmp_str(a: &str, b: &str) -> Ordering {
    fn first_unit(c: char) -> u32 {
        let c = c as u32;
        if c >= 0x10000 {
            0xD800 + ((c - 0x10000) >> 10)
        } else {
            c
        }
    }
    let (mut ai, mut bi) = (a.chars(), b.chars());
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => {
                let (ux, uy) = (first_unit(x), first_unit(y));
                // Equal first units: both above U+FFFF with the same high surrogate; the low
                // surrogates then order like the code points.
                return if ux == uy { x.cmp(&y) } else { ux.cmp(&uy) };
            }
        }
    }
}

/// The total order of JSON values used by `orderBy` and the range operators (missing == null).
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            num(x).partial_cmp(&num(y)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => cmp_str(x, y),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare(Some(p), Some(q));
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            // Sorted explicitly: the map's own iteration order depends on serde_json features.
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            crate::sort::sort_by(&mut xs, |p, q| cmp_str(p.0, q.0));
            crate::sort::sort_by(&mut ys, |p, q| cmp_str(p.0, q.0));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                let c = cmp_str(kx, ky).then_with(|| compare(Some(vx), Some(vy)));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => Ordering::Equal, // both null/missing
    }
}

/// Deep equality with numbers by value and missing == null.
pub fn json_eq(a: Option<&Value>, b: &Value) -> bool {
    compare(a, Some(b)) == Ordering::Equal
}

// ---------------------------------------------------------------------------------------------------
// Queries

/// One condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
}

impl Op {
    /// Whether a field value (None = missing) satisfies the condition.
    pub fn test(&self, v: Option<&Value>) -> bool {
        let range = |operand: &Value, want: fn(Ordering) -> bool| {
            rank(v) == rank(Some(operand)) && want(compare(v, Some(operand)))
        };
        match self {
            Op::Eq(x) => json_eq(v, x),
            Op::Ne(x) => !json_eq(v, x),
            Op::Gt(x) => range(x, |o| o == Ordering::Greater),
            Op::Gte(x) => range(x, |o| o != Ordering::Less),
            Op::Lt(x) => range(x, |o| o == Ordering::Less),
            Op::Lte(x) => range(x, |o| o != Ordering::Greater),
            Op::In(xs) => xs.iter().any(|x| json_eq(v, x)),
        }
    }
}

/// A condition on the field `paths()[path]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub path: usize,
    pub op: Op,
}

/// One `orderBy` key on the field `paths()[path]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub path: usize,
    pub descending: bool,
}

/// Access to the fields of one candidate document, by position in [`Query::paths`].
pub trait Fields {
    fn id(&self) -> &str;
    fn field(&self, path: usize) -> Option<&Value>;
}

/// A document reduced to what a query reads: `[id, value of path 0, value of path 1, ...]`, missing
/// fields as `null`. The browser builds these in JavaScript so whole documents never cross into WASM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// The row of a whole document for a query's paths (what the browser builds in JavaScript).
    pub fn from_doc(doc: &Value, paths: &[Path]) -> Row {
        let mut v = Vec::with_capacity(paths.len() + 1);
        v.push(doc.get("id").cloned().unwrap_or(Value::Null));
        v.extend(
            paths
                .iter()
                .map(|p| p.resolve(doc).cloned().unwrap_or(Value::Null)),
        );
        Row(v)
    }
}

impl Fields for Row {
    fn id(&self) -> &str {
        self.0.first().and_then(Value::as_str).unwrap_or("")
    }
    fn field(&self, path: usize) -> Option<&Value> {
        self.0.get(path + 1)
    }
}

/// A whole document seen through a query's paths.
pub struct DocFields<'a> {
    pub doc: &'a Value,
    pub paths: &'a [Path],
}

impl Fields for DocFields<'_> {
    fn id(&self) -> &str {
        self.doc.get("id").and_then(Value::as_str).unwrap_or("")
    }
    fn field(&self, path: usize) -> Option<&Value> {
        self.paths.get(path).and_then(|p| p.resolve(self.doc))
    }
}

/// A parsed query: `{ where, orderBy, limit, offset, after }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    paths: Vec<Path>,
    terms: Vec<Term>,
    order: Vec<SortKey>,
    limit: Option<usize>,
    offset: usize,
    after: Option<After>,
}

/// Where a page starts: the previous page's last document, reduced to its `orderBy` values (one per
/// sort key, `None` when missing) and its id. Results are the matches strictly after it in result
/// order, so a page never repeats or skips a document, ties included (they are ordered by id).
#[derive(Debug, Clone, PartialEq)]
pub struct After {
    pub id: String,
    pub values: Vec<Option<Value>>,
}

/// Largest `limit`/`offset` accepted (JavaScript's safe integers).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl Query {
    /// The query that returns every document in id order.
    pub fn all() -> Query {
        Query::default()
    }

    /// Parses the JSON text of a query object (`orderBy` key order is significant, so this takes
    /// text rather than a `Value`, whose maps may be sorted).
    pub fn parse(json: &str) -> Result<Query, QueryError> {
        let raw: RawQuery = serde_json::from_str(json).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            QueryError(format!("a query must be a JSON object: {msg}"))
        })?;
        Query::from_raw(raw)
    }

    fn from_raw(raw: RawQuery) -> Result<Query, QueryError> {
        if let Some(found) = raw.not_an_object {
            return err(format!(
                "a query must be an object like {{ where, orderBy, limit, offset, after }}, got {found}"
            ));
        }
        if let Some(k) = raw.unknown.first() {
            return err(format!(
                "unknown query key {k:?} (allowed: where, orderBy, limit, offset, after)"
            ));
        }
        let mut q = Query::default();
        match raw.filter {
            None | Some(Value::Null) => {}
            Some(Value::Object(conds)) => {
                for (key, cond) in conds {
                    q.parse_condition(&key, cond)?;
                }
            }
            Some(other) => {
                return err(format!(
                    "where must be an object of field conditions, got {}",
                    type_name(&other)
                ))
            }
        }
        match raw.order_by {
            None | Some(OrderSpec::Null) => {}
            Some(OrderSpec::NotObject(t)) => {
                return err(format!(
                    "orderBy must be an object like {{ title: \"asc\" }}, got {t}"
                ))
            }
            Some(OrderSpec::Entries(entries)) => {
                for (key, dir) in entries {
                    let path =
                        Path::parse(&key).map_err(|m| QueryError(format!("orderBy: {m}")))?;
                    let descending = match dir.as_str() {
                        Some("asc") => false,
                        Some("desc") => true,
                        _ => {
                            return err(format!(
                                "orderBy.{key} must be \"asc\" or \"desc\", got {dir}"
                            ))
                        }
                    };
                    let path = q.intern(path);
                    q.order.push(SortKey { path, descending });
                }
            }
        }
        q.limit = parse_count("limit", raw.limit)?;
        q.offset = parse_count("offset", raw.offset)?.unwrap_or(0);
        q.after = match raw.after {
            None | Some(Value::Null) => None,
            Some(Value::Object(doc)) => {
                let id = match doc.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    Some(other) => {
                        return err(format!(
                            "after.id must be a string (the id of the previous page's last document), got {}",
                            type_name(other)
                        ))
                    }
                    None => {
                        return err(
                            "after must be the previous page's last document (or its orderBy fields and id); it has no id",
                        )
                    }
                };
                let doc = Value::Object(doc);
                let values = q
                    .order
                    .iter()
                    .map(|k| q.paths[k.path].resolve(&doc).cloned())
                    .collect();
                Some(After { id, values })
            }
            Some(other) => {
                return err(format!(
                    "after must be the previous page's last document (an object with its id and orderBy fields), got {}",
                    type_name(&other)
                ))
            }
        };
        Ok(q)
    }

    fn intern(&mut self, path: Path) -> usize {
        if let Some(i) = self.paths.iter().position(|p| *p == path) {
            return i;
        }
        self.paths.push(path);
        self.paths.len() - 1
    }

    fn parse_condition(&mut self, key: &str, cond: Value) -> Result<(), QueryError> {
        if key.starts_with('$') {
            return err(format!(
                "where: {key:?} is not supported; list conditions on fields (they all must hold), operators go inside a field: {{ field: {{ $gt: 1 }} }}"
            ));
        }
        let path = Path::parse(key).map_err(|m| QueryError(format!("where: {m}")))?;
        let ops = match cond {
            Value::Object(o) if o.keys().any(|k| k.starts_with('$')) => {
                if let Some(plain) = o.keys().find(|k| !k.starts_with('$')) {
                    return err(format!(
                        "where.{key} mixes operators with the plain field {plain:?}; to match an object exactly use {{ $eq: {{ ... }} }}"
                    ));
                }
                o.into_iter().collect::<Vec<_>>()
            }
            eq => vec![("$eq".to_string(), eq)],
        };
        let path = self.intern(path);
        for (name, operand) in ops {
            let op = match name.as_str() {
                "$eq" => Op::Eq(operand),
                "$ne" => Op::Ne(operand),
                "$gt" | "$gte" | "$lt" | "$lte" => {
                    if !matches!(
                        operand,
                        Value::Number(_) | Value::String(_) | Value::Bool(_)
                    ) {
                        return err(format!(
                            "where.{key}.{name} needs a number, string or boolean, got {}",
                            type_name(&operand)
                        ));
                    }
                    match name.as_str() {
                        "$gt" => Op::Gt(operand),
                        "$gte" => Op::Gte(operand),
                        "$lt" => Op::Lt(operand),
                        _ => Op::Lte(operand),
                    }
                }
                "$in" => match operand {
                    Value::Array(items) => Op::In(items),
                    other => {
                        return err(format!(
                            "where.{key}.$in needs an array, got {}",
                            type_name(&other)
                        ))
                    }
                },
                _ => {
                    return err(format!(
                        "where.{key}: unknown operator {name} (supported: {OPERATORS})"
                    ))
                }
            };
            self.terms.push(Term { path, op });
        }
        Ok(())
    }

    /// Every field path the query reads (conditions and ordering), without duplicates.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn order(&self) -> &[SortKey] {
        &self.order
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    /// This query after a reader skipped the first `n` results itself (keys only, say): the same
    /// query with `n` less offset.
    pub fn skipped(&self, n: usize) -> Query {
        let mut q = self.clone();
        q.offset = q.offset.saturating_sub(n);
        q
    }

    /// The page start (`after`), if any.
    pub fn after(&self) -> Option<&After> {
        self.after.as_ref()
    }

    /// Whether the document satisfies every condition and, with `after`, comes after it.
    pub fn matches<F: Fields + ?Sized>(&self, doc: &F) -> bool {
        self.terms.iter().all(|t| t.op.test(doc.field(t.path)))
            && self.after.as_ref().is_none_or(|a| self.is_after(doc, a))
    }

    /// Whether `doc` comes strictly after the page start in result order.
    fn is_after<F: Fields + ?Sized>(&self, doc: &F, after: &After) -> bool {
        for (k, v) in self.order.iter().zip(&after.values) {
            let c = compare(doc.field(k.path), v.as_ref());
            let c = if k.descending { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c == Ordering::Greater;
            }
        }
        cmp_str(doc.id(), &after.id) == Ordering::Greater
    }

    /// [`Query::matches`] on a whole document.
    pub fn matches_doc(&self, doc: &Value) -> bool {
        self.matches(&DocFields {
            doc,
            paths: &self.paths,
        })
    }

    /// Result order: the `orderBy` keys, then id ascending.
    pub fn compare<F: Fields + ?Sized>(&self, a: &F, b: &F) -> Ordering {
        for k in &self.order {
            let c = compare(a.field(k.path), b.field(k.path));
            let c = if k.descending { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        cmp_str(a.id(), b.id())
    }

    /// Filters, orders and pages candidates; returns the positions of the result, in result order.
    /// Candidates may contain non-matching documents (an index only narrows) but each id once.
    /// With a `limit`, only the best `offset + limit` matches are kept while scanning (a bounded
    /// heap, `topk.rs`): memory and sorting stay proportional to the page, not to the matches.
    pub fn select<F: Fields>(&self, candidates: &[F]) -> Vec<usize> {
        let order = |a: &usize, b: &usize| match (candidates.get(*a), candidates.get(*b)) {
            (Some(x), Some(y)) => self.compare(x, y),
            _ => Ordering::Equal,
        };
        let hits = (0..candidates.len()).filter(|&i| self.matches(&candidates[i]));
        let mut hits = match self.limit {
            Some(l) => crate::topk::top_k(hits, self.offset.saturating_add(l), order),
            None => {
                let mut all: Vec<usize> = hits.collect();
                crate::sort::sort_by(&mut all, order);
                all
            }
        };
        let start = self.offset.min(hits.len());
        hits.drain(..start);
        hits
    }

    /// Ways to narrow the candidates, best first (empty: scan everything). Only conditions that an
    /// index can answer exactly as a superset are used: equality/`$in` on scalars and ranges.
    /// `is_indexed` says whether a path has a declared index; `id` is always served by the primary key.
    pub fn plan(&self, is_indexed: impl Fn(&str) -> bool) -> Vec<Source> {
        self.plan_dyn(&is_indexed)
    }

    /// [`Query::plan`], compiled once whatever the caller's closure (a kilobyte per caller).
    #[inline(never)]
    fn plan_dyn(&self, is_indexed: &dyn Fn(&str) -> bool) -> Vec<Source> {
        let mut out: Vec<(u8, usize, Source)> = Vec::new();
        for (pi, path) in self.paths.iter().enumerate() {
            let terms: Vec<&Op> = self
                .terms
                .iter()
                .filter(|t| t.path == pi)
                .map(|t| &t.op)
                .collect();
            if terms.is_empty() {
                continue;
            }
            let is_id = path.as_str() == "id";
            if !is_id && !is_indexed(path.as_str()) {
                continue;
            }
            let Some((class, ranges)) = narrow(&terms) else {
                continue;
            };
            let n = ranges.len();
            let source = if is_id {
                Source::Ids(
                    ranges
                        .into_iter()
                        .filter_map(KeyRange::into_id_range)
                        .collect(),
                )
            } else {
                Source::Index {
                    path: path.as_str().to_string(),
                    ranges,
                }
            };
            out.push((class, n, source));
        }
        // Best class first; fewer points first; the primary key before a secondary index; then
        // the order they came in.
        crate::sort::sort_by_key(&mut out, |(class, n, s)| {
            (*class, *n, !matches!(s, Source::Ids(_)))
        });
        out.into_iter().map(|(_, _, s)| s).collect()
    }
}

/// The key ranges one field's conditions allow, with a selectivity class (0 equality, 1 `$in`,
/// 2 two-sided range, 3 one-sided range).
pub(crate) fn narrow(ops: &[&Op]) -> Option<(u8, Vec<KeyRange>)> {
    for op in ops {
        if let Op::Eq(v) = op {
            if let Some(k) = IndexKey::of(Some(v)) {
                return Some((0, vec![KeyRange::only(k)]));
            }
        }
    }
    let best_in = ops
        .iter()
        .filter_map(|op| match op {
            Op::In(vs) => vs
                .iter()
                .map(|v| IndexKey::of(Some(v)))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        })
        .min_by_key(Vec::len);
    if let Some(mut keys) = best_in {
        crate::sort::sort_by(&mut keys, IndexKey::cmp_idb);
        keys.dedup_by(|a, b| a.cmp_idb(b) == Ordering::Equal);
        return Some((1, keys.into_iter().map(KeyRange::only).collect()));
    }
    let mut range: Option<KeyRange> = None;
    for op in ops {
        let (k, is_lower, open) = match op {
            Op::Gt(v) => (v, true, true),
            Op::Gte(v) => (v, true, false),
            Op::Lt(v) => (v, false, true),
            Op::Lte(v) => (v, false, false),
            _ => continue,
        };
        let Some(key) = IndexKey::of(Some(k)) else {
            continue;
        };
        let tag = key.tag;
        let r = range.get_or_insert_with(|| KeyRange::of_type(tag));
        if r.tag() != tag {
            continue; // contradictory types: the filter will reject everything anyway
        }
        let bound = Bound { key, open };
        if is_lower {
            r.tighten_lower(bound);
        } else {
            r.tighten_upper(bound);
        }
    }
    range.map(|r| {
        let two_sided = r.lower.as_ref().is_some_and(|b| b.key.part.is_some())
            && r.upper.as_ref().is_some_and(|b| b.key.part.is_some());
        (if two_sided { 2 } else { 3 }, vec![r])
    })
}

// ---------------------------------------------------------------------------------------------------
// Index keys

/// Type tags of index keys, in the cross-type order.
pub const TAG_NULL: u8 = 0;
pub const TAG_BOOL: u8 = 1;
pub const TAG_NUMBER: u8 = 2;
pub const TAG_STRING: u8 = 3;

/// The value part of an index key. Booleans are stored as 0/1 numbers (IndexedDB cannot key them).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPart {
    Number(f64),
    String(String),
}

/// An order-preserving IndexedDB key for a scalar: the array `[tag]` (null, or a bare type bound)
/// or `[tag, part]`. IndexedDB orders arrays element by element, a shorter prefix first, and numbers
/// before strings, so these keys sort exactly like [`compare`] sorts the values.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexKey {
    pub tag: u8,
    pub part: Option<KeyPart>,
}

impl IndexKey {
    /// The key as JSON, `[tag]` or `[tag, part]`: what a record's `ix` holds (the store writes it
    /// in JavaScript; tests and benchmarks compare against this).
    pub fn to_json(&self) -> Value {
        let mut v = vec![Value::from(self.tag)];
        match &self.part {
            Some(KeyPart::Number(n)) => {
                v.push(serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number))
            }
            Some(KeyPart::String(s)) => v.push(Value::String(s.clone())),
            None => {}
        }
        Value::Array(v)
    }

    /// The key of a field value; missing and null share `[0]`. Arrays and objects have none and are
    /// left out of the index, which is correct because no indexable condition can match them.
    pub fn of(v: Option<&Value>) -> Option<IndexKey> {
        let (tag, part) = match v {
            None | Some(Value::Null) => (TAG_NULL, None),
            Some(Value::Bool(b)) => (TAG_BOOL, Some(KeyPart::Number(if *b { 1.0 } else { 0.0 }))),
            Some(Value::Number(n)) => (TAG_NUMBER, Some(KeyPart::Number(num(n)))),
            Some(Value::String(s)) => (TAG_STRING, Some(KeyPart::String(s.clone()))),
            Some(Value::Array(_) | Value::Object(_)) => return None,
        };
        Some(IndexKey { tag, part })
    }

    /// The key of the value at `path` in `doc`.
    pub fn at(doc: &Value, path: &Path) -> Option<IndexKey> {
        IndexKey::of(path.resolve(doc))
    }

    fn bare(tag: u8) -> IndexKey {
        IndexKey { tag, part: None }
    }

    /// IndexedDB's comparison of these keys (used by tests and to tidy ranges).
    pub fn cmp_idb(&self, other: &IndexKey) -> Ordering {
        self.tag
            .cmp(&other.tag)
            .then_with(|| match (&self.part, &other.part) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(KeyPart::Number(a)), Some(KeyPart::Number(b))) => {
                    a.partial_cmp(b).unwrap_or(Ordering::Equal)
                }
                (Some(KeyPart::Number(_)), Some(KeyPart::String(_))) => Ordering::Less,
                (Some(KeyPart::String(_)), Some(KeyPart::Number(_))) => Ordering::Greater,
                (Some(KeyPart::String(a)), Some(KeyPart::String(b))) => cmp_str(a, b),
            })
    }
}

/// One end of a key range.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub key: IndexKey,
    /// Exclusive when true.
    pub open: bool,
}

/// A range of index keys (`None` ends are unbounded), like `IDBKeyRange`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
}

impl KeyRange {
    pub fn only(key: IndexKey) -> KeyRange {
        KeyRange {
            lower: Some(Bound {
                key: key.clone(),
                open: false,
            }),
            upper: Some(Bound { key, open: false }),
        }
    }

    /// One key exactly (an equality or `$in` point): its records come in id order.
    pub fn is_point(&self) -> bool {
        matches!((&self.lower, &self.upper), (Some(l), Some(u))
            if !l.open && !u.open && l.key.cmp_idb(&u.key) == Ordering::Equal)
    }

    /// Every key of one type: `[tag]` inclusive to `[tag + 1]` exclusive.
    fn of_type(tag: u8) -> KeyRange {
        KeyRange {
            lower: Some(Bound {
                key: IndexKey::bare(tag),
                open: false,
            }),
            upper: Some(Bound {
                key: IndexKey::bare(tag + 1),
                open: true,
            }),
        }
    }

    fn tag(&self) -> u8 {
        self.lower.as_ref().map_or(0, |b| b.key.tag)
    }

    pub(crate) fn tighten_lower(&mut self, b: Bound) {
        let tighter = match &self.lower {
            None => true,
            Some(cur) => match b.key.cmp_idb(&cur.key) {
                Ordering::Greater => true,
                Ordering::Equal => b.open && !cur.open,
                Ordering::Less => false,
            },
        };
        if tighter {
            self.lower = Some(b);
        }
    }

    pub(crate) fn tighten_upper(&mut self, b: Bound) {
        let tighter = match &self.upper {
            None => true,
            Some(cur) => match b.key.cmp_idb(&cur.key) {
                Ordering::Less => true,
                Ordering::Equal => b.open && !cur.open,
                Ordering::Greater => false,
            },
        };
        if tighter {
            self.upper = Some(b);
        }
    }

    /// True when no key can lie in the range (IndexedDB refuses to build such a range).
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Some(l), Some(u)) => match l.key.cmp_idb(&u.key) {
                Ordering::Greater => true,
                Ordering::Equal => l.open || u.open,
                Ordering::Less => false,
            },
            _ => false,
        }
    }

    /// Whether `key` lies in the range (IndexedDB semantics).
    pub fn contains(&self, key: &IndexKey) -> bool {
        let above = self
            .lower
            .as_ref()
            .is_none_or(|b| match key.cmp_idb(&b.key) {
                Ordering::Greater => true,
                Ordering::Equal => !b.open,
                Ordering::Less => false,
            });
        let below = self
            .upper
            .as_ref()
            .is_none_or(|b| match key.cmp_idb(&b.key) {
                Ordering::Less => true,
                Ordering::Equal => !b.open,
                Ordering::Greater => false,
            });
        above && below
    }

    /// The same range over raw string primary keys (ids are always strings); `None` when the range
    /// holds no string at all.
    fn into_id_range(self) -> Option<IdRange> {
        let conv = |b: Option<Bound>, is_lower: bool| -> Result<Option<(String, bool)>, ()> {
            match b {
                None => Ok(None),
                Some(Bound { key, open }) => match (key.tag, key.part) {
                    (TAG_STRING, Some(KeyPart::String(s))) => Ok(Some((s, open))),
                    // A bare bound at or around the string type: unbounded on that side.
                    (TAG_STRING, None) if is_lower => Ok(None),
                    (t, None) if !is_lower && t == TAG_STRING + 1 => Ok(None),
                    _ => Err(()),
                },
            }
        };
        let lower = conv(self.lower, true).ok()?;
        let upper = conv(self.upper, false).ok()?;
        Some(IdRange { lower, upper })
    }
}

/// A range of document ids (the store's primary key); `(value, open)` ends, `None` unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRange {
    pub lower: Option<(String, bool)>,
    pub upper: Option<(String, bool)>,
}

impl IdRange {
    pub fn contains(&self, id: &str) -> bool {
        let above = self
            .lower
            .as_ref()
            .is_none_or(|(k, open)| match cmp_str(id, k) {
                Ordering::Greater => true,
                Ordering::Equal => !open,
                Ordering::Less => false,
            });
        let below = self
            .upper
            .as_ref()
            .is_none_or(|(k, open)| match cmp_str(id, k) {
                Ordering::Less => true,
                Ordering::Equal => !open,
                Ordering::Greater => false,
            });
        above && below
    }

    /// Raises the lower end to just above `id` (a page start), if that is tighter.
    pub fn start_after(&mut self, id: &str) {
        let tighter = self
            .lower
            .as_ref()
            .is_none_or(|(k, _)| cmp_str(id, k) != Ordering::Less);
        if tighter {
            self.lower = Some((id.to_string(), true));
        }
    }

    /// Lowers the upper end to just below `id` (a page start of a descending walk), if that is
    /// tighter.
    pub fn end_before(&mut self, id: &str) {
        let tighter = self
            .upper
            .as_ref()
            .is_none_or(|(k, _)| cmp_str(id, k) != Ordering::Greater);
        if tighter {
            self.upper = Some((id.to_string(), true));
        }
    }

    /// True when no id can lie in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Some((l, lo)), Some((u, uo))) => match cmp_str(l, u) {
                Ordering::Greater => true,
                Ordering::Equal => *lo || *uo,
                Ordering::Less => false,
            },
            _ => false,
        }
    }

    /// A single id, when the range is one point.
    pub fn as_point(&self) -> Option<&str> {
        match (&self.lower, &self.upper) {
            (Some((a, false)), Some((b, false))) if a == b => Some(a),
            _ => None,
        }
    }
}

/// Where a query's candidates come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Records whose id lies in one of the ranges (an empty list means no record can match).
    Ids(Vec<IdRange>),
    /// Records whose index key for `path` lies in one of the ranges (an empty list: none can match).
    Index { path: String, ranges: Vec<KeyRange> },
    /// Records of the compound index `name` whose key lies in one of the ranges.
    Compound {
        name: String,
        ranges: Vec<TupleRange>,
    },
}

/// One component of a compound index key. The stored key of a compound index on fields
/// `f1..fn` is `[key(f1), ..., key(fn), id]`: each field's [`IndexKey`] (an array), then the id (a
/// string), so entries are unique and come in (f1, ..., fn, id) order, which is the result order
/// of a query that fixes a prefix and orders by the rest; a page can start after any entry.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyComp {
    Key(IndexKey),
    Id(String),
    /// Above every key and id (`[4]`: an array, greater than every string and every `[tag, ..]`).
    Top,
}

/// The tag of [`KeyComp::Top`].
pub const TAG_TOP: u8 = 4;

/// One end of a compound key range: a (prefix of a) compound key.
#[derive(Debug, Clone, PartialEq)]
pub struct TupleBound {
    pub key: Vec<KeyComp>,
    /// Exclusive when true.
    pub open: bool,
}

/// A range of compound keys, both ends bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct TupleRange {
    pub lower: TupleBound,
    pub upper: TupleBound,
}

/// IndexedDB's order of compound keys: component by component, a prefix first; within one
/// component an id (a string) sorts before a key (an array), and `Top` after everything.
pub fn cmp_tuple(a: &[KeyComp], b: &[KeyComp]) -> Ordering {
    fn class(c: &KeyComp) -> u8 {
        match c {
            KeyComp::Id(_) => 0,
            KeyComp::Key(_) => 1,
            KeyComp::Top => 2,
        }
    }
    for (x, y) in a.iter().zip(b) {
        let c = match (x, y) {
            (KeyComp::Key(p), KeyComp::Key(q)) => p.cmp_idb(q),
            (KeyComp::Id(p), KeyComp::Id(q)) => cmp_str(p, q),
            _ => class(x).cmp(&class(y)),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

impl TupleRange {
    /// Whether the compound key `key` lies in the range (IndexedDB semantics).
    pub fn contains(&self, key: &[KeyComp]) -> bool {
        let lo = cmp_tuple(key, &self.lower.key);
        let hi = cmp_tuple(key, &self.upper.key);
        (lo == Ordering::Greater || (lo == Ordering::Equal && !self.lower.open))
            && (hi == Ordering::Less || (hi == Ordering::Equal && !self.upper.open))
    }
}

// ---------------------------------------------------------------------------------------------------
// Parsing helpers

fn parse_count(name: &str, v: Option<Value>) -> Result<Option<usize>, QueryError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let ok = n
                .as_u64()
                .map(|u| u as f64)
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0))
                .filter(|f| *f <= MAX_SAFE_INTEGER);
            match ok {
                Some(f) => Ok(Some(f as usize)),
                None => err(format!("{name} must be a non-negative integer, got {n}")),
            }
        }
        Some(other) => err(format!(
            "{name} must be a non-negative integer, got {}",
            type_name(&other)
        )),
    }
}

/// The top level of a query, read key by key so `orderBy` keeps its key order and every semantic
/// problem gets our own message.
#[derive(Default)]
struct RawQuery {
    not_an_object: Option<&'static str>,
    unknown: Vec<String>,
    filter: Option<Value>,
    order_by: Option<OrderSpec>,
    limit: Option<Value>,
    offset: Option<Value>,
    after: Option<Value>,
}

enum OrderSpec {
    Null,
    NotObject(&'static str),
    Entries(Vec<(String, Value)>),
}

struct RawQueryVisitor;

impl<'de> Visitor<'de> for RawQueryVisitor {
    type Value = RawQuery;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawQuery, A::Error> {
        let mut raw = RawQuery::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "where" => raw.filter = Some(map.next_value()?),
                "orderBy" => raw.order_by = Some(map.next_value()?),
                "limit" => raw.limit = Some(map.next_value()?),
                "offset" => raw.offset = Some(map.next_value()?),
                "after" => raw.after = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    raw.unknown.push(key);
                }
            }
        }
        Ok(raw)
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawQuery, E> {
        Ok(RawQuery::default()) // null: the query that matches everything
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawQuery, E> {
        Ok(not_object("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawQuery, E> {
        Ok(not_object("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawQuery, E> {
        Ok(not_object("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawQuery, E> {
        Ok(not_object("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawQuery, E> {
        Ok(not_object("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawQuery, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_object("an array"))
    }
}

fn not_object(t: &'static str) -> RawQuery {
    RawQuery {
        not_an_object: Some(t),
        ..RawQuery::default()
    }
}

impl<'de> Deserialize<'de> for RawQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawQueryVisitor)
    }
}

struct OrderVisitor;

impl<'de> Visitor<'de> for OrderVisitor {
    type Value = OrderSpec;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an orderBy object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderSpec, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            entries.push((k, v));
        }
        Ok(OrderSpec::Entries(entries))
    }
    fn visit_unit<E: de::Error>(self) -> Result<OrderSpec, E> {
        Ok(OrderSpec::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<OrderSpec, E> {
        Ok(OrderSpec::NotObject("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<OrderSpec, E> {
        Ok(OrderSpec::NotObject("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<OrderSpec, E> {
        Ok(OrderSpec::NotObject("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<OrderSpec, E> {
        Ok(OrderSpec::NotObject("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<OrderSpec, E> {
        Ok(OrderSpec::NotObject("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderSpec, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(OrderSpec::NotObject("an array"))
    }
}

impl<'de> Deserialize<'de> for OrderSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn q(v: Value) -> Query {
        Query::parse(&v.to_string()).unwrap()
    }

    fn q_err(text: &str) -> String {
        Query::parse(text).unwrap_err().0
    }

    fn run(query: &Query, docs: &[Value]) -> Vec<String> {
        let rows: Vec<DocFields> = docs
            .iter()
            .map(|doc| DocFields {
                doc,
                paths: query.paths(),
            })
            .collect();
        query
            .select(&rows)
            .into_iter()
            .map(|i| docs[i]["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn sample() -> Vec<Value> {
        vec![
            json!({"id": "a", "title": "milk", "done": false, "priority": 2, "meta": {"rank": 3}, "tags": ["x", "y"]}),
            json!({"id": "b", "title": "eggs", "done": true, "priority": 1.0, "meta": {"rank": 1}}),
            json!({"id": "c", "title": "bread", "done": false, "priority": "high", "tags": []}),
            json!({"id": "d", "title": "Apples", "done": null, "priority": 5}),
            json!({"id": "e", "title": "zucchini", "meta": {"rank": 2}, "tags": ["y"]}),
        ]
    }

    #[test]
    fn equality_and_operators() {
        let d = sample();
        assert_eq!(run(&q(json!({"where": {"done": false}})), &d), ["a", "c"]);
        assert_eq!(
            run(&q(json!({"where": {"priority": 1}})), &d),
            ["b"],
            "1 == 1.0"
        );
        assert_eq!(
            run(&q(json!({"where": {"done": null}})), &d),
            ["d", "e"],
            "missing == null"
        );
        assert_eq!(
            run(&q(json!({"where": {"done": {"$ne": null}}})), &d),
            ["a", "b", "c"]
        );
        assert_eq!(
            run(&q(json!({"where": {"done": {"$eq": true}}})), &d),
            ["b"]
        );
        assert_eq!(
            run(&q(json!({"where": {"priority": {"$gt": 1}}})), &d),
            ["a", "d"]
        );
        assert_eq!(
            run(
                &q(json!({"where": {"priority": {"$gte": 2, "$lt": 5}}})),
                &d
            ),
            ["a"]
        );
        assert_eq!(
            run(&q(json!({"where": {"priority": {"$lte": 2}}})), &d),
            ["a", "b"]
        );
        assert_eq!(
            run(&q(json!({"where": {"priority": {"$gt": "a"}}})), &d),
            ["c"],
            "ranges stay within a type"
        );
        assert_eq!(
            run(
                &q(json!({"where": {"title": {"$in": ["eggs", "bread", 3]}}})),
                &d
            ),
            ["b", "c"]
        );
        assert_eq!(
            run(&q(json!({"where": {"title": {"$in": []}}})), &d),
            Vec::<String>::new()
        );
        assert_eq!(
            run(&q(json!({"where": {"done": {"$gt": false}}})), &d),
            ["b"]
        );
        assert_eq!(
            run(&q(json!({"where": {"tags": ["y"]}})), &d),
            ["e"],
            "arrays compare whole"
        );
        assert_eq!(
            run(&q(json!({"where": {"meta": {"$eq": {"rank": 1}}}})), &d),
            ["b"]
        );
        assert_eq!(
            run(&q(json!({"where": {"meta": {"rank": 1}}})), &d),
            ["b"],
            "object literal is equality"
        );
        assert_eq!(
            run(
                &q(json!({"where": {"done": false, "priority": {"$ne": 2}}})),
                &d
            ),
            ["c"]
        );
    }

    #[test]
    fn dotted_paths() {
        let d = sample();
        assert_eq!(
            run(&q(json!({"where": {"meta.rank": {"$gte": 2}}})), &d),
            ["a", "e"]
        );
        assert_eq!(run(&q(json!({"where": {"tags.0": "y"}})), &d), ["e"]);
        assert_eq!(run(&q(json!({"where": {"tags.1": "y"}})), &d), ["a"]);
        assert_eq!(
            run(&q(json!({"where": {"meta.rank.deeper": null}})), &d).len(),
            5
        );
        assert_eq!(
            run(&q(json!({"where": {"tags.01": "x"}})), &d),
            Vec::<String>::new(),
            "non-canonical index"
        );
        assert_eq!(
            run(&q(json!({"where": {"tags.length": 2}})), &d),
            Vec::<String>::new(),
            "no JS properties"
        );
    }

    #[test]
    fn ordering_limit_offset() {
        let d = sample();
        assert_eq!(run(&Query::all(), &d), ["a", "b", "c", "d", "e"]);
        // UTF-16 order: uppercase before lowercase.
        assert_eq!(
            run(&q(json!({"orderBy": {"title": "asc"}})), &d),
            ["d", "c", "b", "a", "e"]
        );
        assert_eq!(
            run(&q(json!({"orderBy": {"title": "desc"}, "limit": 2})), &d),
            ["e", "a"]
        );
        assert_eq!(
            run(
                &q(json!({"orderBy": {"title": "asc"}, "limit": 2, "offset": 1})),
                &d
            ),
            ["c", "b"]
        );
        assert_eq!(run(&q(json!({"offset": 4})), &d), ["e"]);
        assert_eq!(run(&q(json!({"offset": 9})), &d), Vec::<String>::new());
        assert_eq!(run(&q(json!({"limit": 0})), &d), Vec::<String>::new());
        // Cross-type order: missing/null < bool < number < string.
        assert_eq!(
            run(&q(json!({"orderBy": {"priority": "asc"}})), &d),
            ["e", "b", "a", "d", "c"]
        );
        assert_eq!(
            run(&q(json!({"orderBy": {"done": "asc"}})), &d),
            ["d", "e", "a", "c", "b"]
        );
        // Key order of orderBy is significant (parsed from text, not a sorted map).
        let docs = vec![
            json!({"id": "1", "a": 1, "b": 2}),
            json!({"id": "2", "a": 2, "b": 1}),
            json!({"id": "3", "a": 1, "b": 1}),
        ];
        let by_b_then_a = Query::parse(r#"{"orderBy": {"b": "asc", "a": "desc"}}"#).unwrap();
        assert_eq!(run(&by_b_then_a, &docs), ["2", "3", "1"]);
        let by_a_then_b = Query::parse(r#"{"orderBy": {"a": "asc", "b": "desc"}}"#).unwrap();
        assert_eq!(run(&by_a_then_b, &docs), ["1", "3", "2"]);
    }

    #[test]
    fn rows_match_like_documents() {
        let query = q(json!({"where": {"meta.rank": {"$gt": 1}}, "orderBy": {"title": "desc"}}));
        assert_eq!(
            query.paths().iter().map(Path::as_str).collect::<Vec<_>>(),
            ["meta.rank", "title"]
        );
        let rows = vec![
            Row(vec![json!("a"), json!(3), json!("milk")]),
            Row(vec![json!("b"), json!(1), json!("eggs")]),
            Row(vec![json!("e"), json!(2), json!("zucchini")]),
            Row(vec![json!("c"), Value::Null, json!("bread")]),
        ];
        assert_eq!(query.select(&rows), [2, 0]);
        let doc = json!({"id": "z", "meta": {"rank": 5}});
        let row = Row::from_doc(&doc, query.paths());
        assert_eq!(row, Row(vec![json!("z"), json!(5), Value::Null]));
        assert!(query.matches(&row));
    }

    #[test]
    fn bad_queries_are_named() {
        let cases = [
            ("[]", "a query must be an object"),
            ("3", "got a number"),
            (r#"{"where": 1}"#, "where must be an object"),
            (r#"{"wher": {}}"#, "unknown query key \"wher\""),
            (r#"{"where": {"$or": []}}"#, "\"$or\" is not supported"),
            (
                r#"{"where": {"a": {"$regex": "x"}}}"#,
                "unknown operator $regex",
            ),
            (r#"{"where": {"a": {"$gt": 1, "b": 2}}}"#, "mixes operators"),
            (
                r#"{"where": {"a": {"$gt": null}}}"#,
                "$gt needs a number, string or boolean, got null",
            ),
            (r#"{"where": {"a": {"$lt": [1]}}}"#, "got an array"),
            (r#"{"where": {"a": {"$in": 3}}}"#, "$in needs an array"),
            (r#"{"where": {"a..b": 1}}"#, "empty segment"),
            (r#"{"where": {"": 1}}"#, "must not be empty"),
            (r#"{"where": {"a.$b": 1}}"#, "reserved for operators"),
            (r#"{"orderBy": "title"}"#, "orderBy must be an object"),
            (
                r#"{"orderBy": {"title": 1}}"#,
                "orderBy.title must be \"asc\" or \"desc\"",
            ),
            (
                r#"{"limit": -1}"#,
                "limit must be a non-negative integer, got -1",
            ),
            (r#"{"limit": 1.5}"#, "limit must be a non-negative integer"),
            (
                r#"{"offset": "2"}"#,
                "offset must be a non-negative integer, got a string",
            ),
            (r#"{"limit": 1e300}"#, "limit must be"),
            (
                r#"{"after": 3}"#,
                "after must be the previous page's last document",
            ),
            (r#"{"after": {"title": "a"}}"#, "it has no id"),
            (r#"{"after": {"id": 7}}"#, "after.id must be a string"),
            ("{", "a query must be a JSON object"),
        ];
        for (text, want) in cases {
            let got = q_err(text);
            assert!(
                got.contains(want),
                "{text}: {got:?} should contain {want:?}"
            );
        }
        // Absent and null parts are fine.
        assert_eq!(Query::parse("null").unwrap(), Query::all());
        assert_eq!(
            Query::parse(r#"{"where": null, "limit": null}"#).unwrap(),
            Query::all()
        );
    }

    #[test]
    fn plans_prefer_equality_and_the_primary_key() {
        let indexed = |p: &str| p == "done" || p == "title" || p == "meta.rank";
        let plan = q(json!({"where": {"done": false, "priority": 2}})).plan(indexed);
        assert_eq!(plan.len(), 1);
        let Source::Index { path, ranges } = &plan[0] else {
            panic!()
        };
        assert_eq!(path, "done");
        assert_eq!(
            ranges,
            &[KeyRange::only(IndexKey {
                tag: TAG_BOOL,
                part: Some(KeyPart::Number(0.0))
            })]
        );

        assert!(
            q(json!({"where": {"priority": 2}}))
                .plan(indexed)
                .is_empty(),
            "no index: scan"
        );
        assert!(
            q(json!({"where": {"done": {"$ne": true}}}))
                .plan(indexed)
                .is_empty(),
            "$ne cannot use an index"
        );
        assert!(
            q(json!({"where": {"title": ["a"]}}))
                .plan(indexed)
                .is_empty(),
            "arrays are not indexed"
        );

        let plan =
            q(json!({"where": {"title": {"$gte": "b", "$lt": "m"}, "done": true}})).plan(indexed);
        assert!(matches!(&plan[0], Source::Index { path, .. } if path == "done"));
        assert!(
            matches!(&plan[1], Source::Index { path, ranges } if path == "title" && ranges.len() == 1)
        );

        let plan = q(json!({"where": {"id": "x", "done": true}})).plan(indexed);
        assert_eq!(
            plan[0],
            Source::Ids(vec![IdRange {
                lower: Some(("x".into(), false)),
                upper: Some(("x".into(), false))
            }])
        );
        assert_eq!(
            plan[0].clone(),
            Source::Ids(vec![IdRange {
                lower: Some(("x".into(), false)),
                upper: Some(("x".into(), false))
            }])
        );
        assert_eq!(
            q(json!({"where": {"id": 5}})).plan(indexed),
            [Source::Ids(vec![])],
            "ids are strings"
        );
        let plan = q(json!({"where": {"id": {"$gt": "m"}}})).plan(indexed);
        assert_eq!(
            plan,
            [Source::Ids(vec![IdRange {
                lower: Some(("m".into(), true)),
                upper: None
            }])]
        );

        let plan = q(json!({"where": {"meta.rank": {"$in": [3, 1, 3.0, null]}}})).plan(indexed);
        let Source::Index { ranges, .. } = &plan[0] else {
            panic!()
        };
        assert_eq!(ranges.len(), 3, "deduplicated points");
    }

    #[test]
    fn utf16_string_order() {
        // U+FF5E (BMP, high) sorts after U+1F600 (surrogates D83D DE00) in UTF-16, before in UTF-8.
        assert_eq!(cmp_str("\u{FF5E}", "\u{1F600}"), Ordering::Greater);
        assert_eq!("\u{FF5E}".cmp("\u{1F600}"), Ordering::Less);
        assert_eq!(cmp_str("a", "ab"), Ordering::Less);
        assert_eq!(cmp_str("B", "a"), Ordering::Less);
    }

    // ---- properties ------------------------------------------------------------------------------

    fn arb_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..4).prop_map(|n| json!(n)),
            (-6i32..7).prop_map(|n| json!(n as f64 / 2.0)),
            prop::sample::select(vec!["", "a", "ab", "B", "é", "\u{FF5E}", "\u{1F600}", "z"])
                .prop_map(|s| json!(s)),
        ]
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        arb_scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(vec!["a", "b"]), inner, 0..3)
                    .prop_map(|m| Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )),
            ]
        })
    }

    const PATHS: [&str; 5] = ["a", "b", "n.a", "l.0", "id"];

    fn arb_doc(i: usize) -> impl Strategy<Value = Value> {
        (
            prop::option::of(arb_value()),
            prop::option::of(arb_value()),
            prop::option::of(arb_value()),
            prop::option::of(prop::collection::vec(arb_scalar(), 0..3)),
        )
            .prop_map(move |(a, b, na, l)| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), json!(format!("d{i}")));
                if let Some(a) = a {
                    m.insert("a".into(), a);
                }
                if let Some(b) = b {
                    m.insert("b".into(), b);
                }
                if let Some(na) = na {
                    m.insert("n".into(), json!({"a": na}));
                }
                if let Some(l) = l {
                    m.insert("l".into(), Value::Array(l));
                }
                Value::Object(m)
            })
    }

    fn arb_docs() -> impl Strategy<Value = Vec<Value>> {
        (0usize..12).prop_flat_map(|n| (0..n).map(arb_doc).collect::<Vec<_>>())
    }

    fn arb_op() -> impl Strategy<Value = (String, Value)> {
        let scalar_nn = arb_scalar().prop_filter("non-null", |v| !v.is_null());
        let id_str =
            prop::sample::select(vec!["d0", "d1", "d10", "d5", "e"]).prop_map(|s| json!(s));
        prop_oneof![
            arb_value().prop_map(|v| ("$eq".to_string(), v)),
            arb_value().prop_map(|v| ("$ne".to_string(), v)),
            (
                prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]),
                scalar_nn
            )
                .prop_map(|(o, v)| (o.to_string(), v)),
            (
                prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte", "$eq"]),
                id_str
            )
                .prop_map(|(o, v)| (o.to_string(), v)),
            prop::collection::vec(arb_value(), 0..4)
                .prop_map(|vs| ("$in".to_string(), Value::Array(vs))),
        ]
    }

    fn arb_query() -> impl Strategy<Value = String> {
        (
            prop::collection::btree_map(
                prop::sample::select(PATHS.to_vec()),
                prop::collection::vec(arb_op(), 1..3),
                0..3,
            ),
            prop::collection::vec((prop::sample::select(PATHS.to_vec()), any::<bool>()), 0..3),
            prop::option::of(0usize..6),
            prop::option::of(0usize..4),
        )
            .prop_map(|(conds, order, limit, offset)| {
                let mut w = serde_json::Map::new();
                for (path, ops) in conds {
                    let ops: serde_json::Map<String, Value> = ops.into_iter().collect();
                    w.insert(path.to_string(), Value::Object(ops));
                }
                let mut text = format!("{{\"where\": {}", Value::Object(w));
                let mut seen = Vec::new();
                let entries: Vec<String> = order
                    .into_iter()
                    .filter(|(p, _)| {
                        let new = !seen.contains(p);
                        seen.push(*p);
                        new
                    })
                    .map(|(p, d)| format!("\"{p}\": \"{}\"", if d { "desc" } else { "asc" }))
                    .collect();
                text.push_str(&format!(", \"orderBy\": {{{}}}", entries.join(", ")));
                if let Some(l) = limit {
                    text.push_str(&format!(", \"limit\": {l}"));
                }
                if let Some(o) = offset {
                    text.push_str(&format!(", \"offset\": {o}"));
                }
                text.push('}');
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// An index plan never loses a match: every matching document's key is inside its ranges.
        #[test]
        fn plans_are_supersets(docs in arb_docs(), text in arb_query()) {
            let query = Query::parse(&text).unwrap();
            for source in query.plan(|p| p != "b") {
                for doc in &docs {
                    if !query.matches_doc(doc) { continue; }
                    let covered = match &source {
                        Source::Ids(ranges) => {
                            let id = doc["id"].as_str().unwrap();
                            ranges.iter().any(|r| r.contains(id))
                        }
                        Source::Index { path, ranges } => {
                            let key = IndexKey::at(doc, &Path::parse(path).unwrap());
                            key.is_some_and(|k| ranges.iter().any(|r| r.contains(&k)))
                        }
                        Source::Compound { .. } => unreachable!("plan() never yields compound ranges"),
                    };
                    prop_assert!(covered, "{} lost {} via {:?}", text, doc, source);
                }
            }
        }

        /// select() equals the obvious reference: filter, full stable sort, slice.
        #[test]
        fn select_matches_reference(docs in arb_docs(), text in arb_query()) {
            let query = Query::parse(&text).unwrap();
            let rows: Vec<DocFields> = docs.iter().map(|doc| DocFields { doc, paths: query.paths() }).collect();
            let got = query.select(&rows);
            let mut want: Vec<usize> = (0..docs.len()).filter(|&i| query.matches(&rows[i])).collect();
            want.sort_by(|&a, &b| query.compare(&rows[a], &rows[b]));
            let want: Vec<usize> = want.into_iter().skip(query.offset()).take(query.limit().unwrap_or(usize::MAX)).collect();
            prop_assert_eq!(got, want);
        }

        /// Index keys sort exactly like the values they encode.
        #[test]
        fn index_key_order_is_value_order(a in arb_scalar(), b in arb_scalar()) {
            let (ka, kb) = (IndexKey::of(Some(&a)).unwrap(), IndexKey::of(Some(&b)).unwrap());
            prop_assert_eq!(ka.cmp_idb(&kb), compare(Some(&a), Some(&b)));
        }

        /// compare() is a total order.
        #[test]
        fn compare_is_total_order(a in arb_value(), b in arb_value(), c in arb_value()) {
            let (a, b, c) = (Some(&a), Some(&b), Some(&c));
            prop_assert_eq!(compare(a, b), compare(b, a).reverse());
            if compare(a, b) != Ordering::Greater && compare(b, c) != Ordering::Greater {
                prop_assert_ne!(compare(a, c), Ordering::Greater);
            }
            prop_assert_eq!(compare(a, a), Ordering::Equal);
        }

        #[test]
        fn cmp_str_is_utf16_order(a in "\\PC{0,6}", b in "\\PC{0,6}") {
            let (ua, ub): (Vec<u16>, Vec<u16>) = (a.encode_utf16().collect(), b.encode_utf16().collect());
            prop_assert_eq!(cmp_str(&a, &b), ua.cmp(&ub));
        }

        #[test]
        fn array_index_is_canonical(n in 0usize..100_000) {
            let s = n.to_string();
            prop_assert_eq!(array_index(&s), Some(n));
            let padded = format!("0{s}");
            prop_assert_eq!(array_index(&padded), None);
        }
    }
}
