//! Reads: `get` by id, and queries (`find`, `count`, live-query evaluation).
//!
//! A query is planned by `ferrosync_core::query` (primary key, one index, or a scan). With several
//! usable indexes the store asks IndexedDB how many keys each would read (`count` requests, issued
//! at once in the same read transaction) and takes the smallest: real selectivity, not a guess. The
//! candidates are reduced in JavaScript to the fields the query reads (`records.js` `extract`), and
//! core filters, orders and pages them. Documents themselves never cross into WASM.

use ferrosync_core::query::{
    IdRange, KeyComp, KeyRange, Op, Query, Row, Source, TupleRange, TAG_TOP,
};
use ferrosync_core::walk::Walk;
use js_sys::{Array, Reflect};
use serde_json::Value;
use std::cmp::Ordering;

use ferrosync_core::query::cmp_str;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbCursorWithValue, IdbIndex, IdbKeyRange};

use super::indexeddb::{self, from_dom, from_rexie, join_requests, Tx};
use super::layout::TOMBSTONES;
use super::{records, Conn, Store};
use crate::error::{Error, Result};

/// How many index candidates are worth counting.
const MAX_COUNTED: usize = 4;

impl Store {
    /// The document with `id`, or `undefined`.
    pub async fn get(&self, collection: &str, id: &str) -> Result<JsValue> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            let tx = Tx::read(&conn.db, &[collection])?;
            let record = from_rexie(tx.store(collection)?.get(JsValue::from_str(id)).await)?;
            Ok(record
                .and_then(|r| records::doc_of(&r))
                .unwrap_or(JsValue::UNDEFINED))
        })
        .await
    }

    /// [`Store::get`] without leaving JavaScript (a get is one request: the Rust task, promise and
    /// request callbacks around it were a tenth of its time): a `Promise` of the document, or
    /// `None` when the database is not open now. `slow(id)` (a JS function returning `get`'s
    /// promise) answers whenever the fast read cannot: a lost connection, a failed request.
    pub fn get_now(
        &self,
        collection: &str,
        id: &str,
        slow: &js_sys::Function,
    ) -> Option<js_sys::Promise> {
        match &*self.0.state.borrow() {
            super::State::Open(conn, _) => Some(records::get_doc(&conn.db, collection, id, slow)),
            _ => None,
        }
    }

    /// The records of the query's result, in result order.
    pub async fn query_records(&self, collection: &str, query: &Query) -> Result<Array> {
        Ok(self.query_result(collection, query, false).await?.0)
    }

    /// The result's records and, when `with_rows`, each one's row (id and the query's fields), as
    /// live queries keep them.
    pub async fn query_result(
        &self,
        collection: &str,
        query: &Query,
        with_rows: bool,
    ) -> Result<(Array, Vec<Row>)> {
        self.check_collection(collection)?;
        self.run(|conn| query_tx(conn, collection, query, with_rows))
            .await
    }

    /// The stored records of `ids` (live, tombstone, or `undefined`), in one read transaction.
    pub async fn records_by_id(&self, collection: &str, ids: &[String]) -> Result<Vec<JsValue>> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            let tx = Tx::read(&conn.db, &[collection])?;
            let st = tx.store(collection)?;
            let found = join_requests(ids.iter().map(|id| st.get(JsValue::from_str(id)))).await?;
            Ok(found
                .into_iter()
                .map(|r| r.unwrap_or(JsValue::UNDEFINED))
                .collect())
        })
        .await
    }

    /// Which source a query reads: `"scan"`, `"ids"` or `"index:<path>"`, prefixed with `"walk:"`
    /// when a limit is read in result order (tests and debugging).
    #[doc(hidden)]
    pub async fn explain(&self, collection: &str, query: &Query) -> Result<String> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            if let Some(walk) = walk_of(&conn, collection, query) {
                let valid = match (raw_ranges(&walk.source)?.0, walk.keyed) {
                    (Some(name), true) => {
                        let raw = indexeddb::transaction(&conn.db, &[collection], false)?;
                        let store = indexeddb::store(&raw, collection)?;
                        keys_cover_live(&store, &from_dom(store.index(name))?).await?
                    }
                    _ => true,
                };
                let kind = if walk.descending { "walk-back" } else { "walk" };
                if valid {
                    return Ok(match walk.source {
                        Source::Ids(_) => format!("{kind}:ids"),
                        Source::Index { path, .. } => format!("{kind}:index:{path}"),
                        Source::Compound { name, .. } => format!("{kind}:index:{name}"),
                    });
                }
            }
            let tx = Tx::read(&conn.db, &[collection])?;
            let st = tx.store(collection)?;
            let sources = query.plan(|p| conn.schema.is_indexed(collection, p));
            Ok(match choose(&st, sources).await? {
                None => "scan".to_string(),
                Some(Source::Ids(_)) => "ids".to_string(),
                Some(Source::Index { path, .. }) => format!("index:{path}"),
                Some(Source::Compound { name, .. }) => format!("index:{name}"),
            })
        })
        .await
    }

    /// How many documents `find(query)` would return.
    pub async fn count(&self, collection: &str, query: &Query) -> Result<usize> {
        self.check_collection(collection)?;
        self.run(|conn| async move {
            if let Some(n) = count_fast(&conn, collection, query).await? {
                return Ok(n);
            }
            Ok(query_tx(conn, collection, query, false).await?.0.length() as usize)
        })
        .await
    }
}

fn key_range_js(r: &KeyRange) -> Result<Option<rexie::KeyRange>> {
    key_range_raw(r).map(indexeddb::range)
}

fn key_range_raw(r: &KeyRange) -> Result<Option<IdbKeyRange>> {
    indexeddb::key_range(
        r.lower
            .as_ref()
            .map(|b| (records::key_to_js(&b.key), b.open)),
        r.upper
            .as_ref()
            .map(|b| (records::key_to_js(&b.key), b.open)),
    )
}

/// A compound key (or prefix) as IndexedDB's array key.
fn tuple_js(key: &[KeyComp]) -> JsValue {
    key.iter()
        .map(|c| match c {
            KeyComp::Key(k) => records::key_to_js(k),
            KeyComp::Id(id) => JsValue::from_str(id),
            KeyComp::Top => Array::of1(&JsValue::from_f64(f64::from(TAG_TOP))).into(),
        })
        .collect::<Array>()
        .into()
}

fn tuple_range_js(r: &TupleRange) -> Result<Option<rexie::KeyRange>> {
    tuple_range_raw(r).map(indexeddb::range)
}

fn tuple_range_raw(r: &TupleRange) -> Result<Option<IdbKeyRange>> {
    indexeddb::key_range(
        Some((tuple_js(&r.lower.key), r.lower.open)),
        Some((tuple_js(&r.upper.key), r.upper.open)),
    )
}

/// The index a source reads (`None`: the primary key) and its ranges as raw `IDBKeyRange`s (for
/// cursors and requests rexie does not offer).
fn raw_ranges(source: &Source) -> Result<(Option<&str>, Vec<Option<IdbKeyRange>>)> {
    Ok(match source {
        Source::Ids(r) => (None, r.iter().map(id_range_raw).collect::<Result<_>>()?),
        Source::Index { path, ranges } => (
            Some(path.as_str()),
            ranges.iter().map(key_range_raw).collect::<Result<_>>()?,
        ),
        Source::Compound { name, ranges } => (
            Some(name.as_str()),
            ranges.iter().map(tuple_range_raw).collect::<Result<_>>()?,
        ),
    })
}

/// The index name and IndexedDB ranges of an index or compound source.
fn index_ranges(source: &Source) -> Result<(String, Vec<Option<rexie::KeyRange>>)> {
    Ok(match source {
        Source::Index { path, ranges } => (
            path.clone(),
            ranges.iter().map(key_range_js).collect::<Result<_>>()?,
        ),
        Source::Compound { name, ranges } => (
            name.clone(),
            ranges.iter().map(tuple_range_js).collect::<Result<_>>()?,
        ),
        Source::Ids(_) => (String::new(), Vec::new()),
    })
}

fn id_range_js(r: &IdRange) -> Result<Option<rexie::KeyRange>> {
    id_range_raw(r).map(indexeddb::range)
}

fn id_range_raw(r: &IdRange) -> Result<Option<IdbKeyRange>> {
    indexeddb::key_range(
        r.lower.as_ref().map(|(k, o)| (JsValue::from_str(k), *o)),
        r.upper.as_ref().map(|(k, o)| (JsValue::from_str(k), *o)),
    )
}

/// How many keys of `ix` fall in `ranges` (all counts issued at once).
async fn index_count(ix: &rexie::StoreIndex, ranges: &[KeyRange]) -> Result<f64> {
    let ranges = ranges
        .iter()
        .map(key_range_js)
        .collect::<Result<Vec<_>>>()?;
    let counts = join_requests(ranges.into_iter().map(|r| ix.count(r))).await?;
    Ok(counts.into_iter().map(f64::from).sum())
}

/// Picks the source to read: the primary key when usable, else the index that yields the fewest keys.
async fn choose(st: &rexie::Store, sources: Vec<Source>) -> Result<Option<Source>> {
    let first_is_ids = matches!(sources.first(), Some(Source::Ids(_)));
    if first_is_ids || sources.len() <= 1 {
        return Ok(sources.into_iter().next());
    }
    let mut candidates: Vec<Source> = sources
        .into_iter()
        .filter(|s| matches!(s, Source::Index { .. }))
        .take(MAX_COUNTED)
        .collect();
    let mut indexes = Vec::new();
    for s in &candidates {
        if let Source::Index { path, ranges } = s {
            indexes.push((from_rexie(st.index(path))?, ranges));
        }
    }
    let counts = join_requests(indexes.iter().map(|(ix, ranges)| index_count(ix, ranges))).await?;
    let best = counts
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Some(candidates.swap_remove(best)))
}

/// One read of `fetch`: a point `get` or a `getAll` over a range.
enum Read {
    Get(JsValue),
    All(Option<rexie::KeyRange>),
}

/// Reads the candidate records of `source` (all requests issued at once), as one list per read.
async fn fetch(st: &rexie::Store, source: &Option<Source>) -> Result<Array> {
    let mut reads = Vec::new();
    let mut index = None;
    match source {
        None => reads.push(Read::All(None)),
        Some(Source::Ids(ranges)) => {
            for r in ranges {
                reads.push(match r.as_point() {
                    Some(id) => Read::Get(JsValue::from_str(id)),
                    None => Read::All(id_range_js(r)?),
                });
            }
        }
        Some(source) => {
            let (name, ranges) = index_ranges(source)?;
            index = Some(from_rexie(st.index(&name))?);
            reads.extend(ranges.into_iter().map(Read::All));
        }
    }
    let results = join_requests(reads.into_iter().map(|read| {
        let index = index.as_ref();
        async move {
            Ok::<Array, rexie::Error>(match (read, index) {
                (Read::Get(key), _) => st.get(key).await?.into_iter().collect(),
                (Read::All(range), Some(ix)) => {
                    ix.get_all(range, None).await?.into_iter().collect()
                }
                (Read::All(range), None) => st.get_all(range, None).await?.into_iter().collect(),
            })
        }
    }))
    .await?;
    Ok(results.into_iter().collect())
}

async fn query_tx(
    conn: Conn,
    collection: &str,
    query: &Query,
    with_rows: bool,
) -> Result<(Array, Vec<Row>)> {
    // The raw transaction too: cursors (`continuePrimaryKey`) are not in rexie's API.
    let raw = indexeddb::transaction(&conn.db, &[collection], false)?;
    let rexie_tx = rexie::Transaction::from(raw.clone());
    let st = from_rexie(rexie_tx.store(collection))?;
    if Walk::need(query) == Some(0) {
        return Ok((Array::new(), Vec::new()));
    }
    if let Some(walk) = walk_of(&conn, collection, query) {
        if query.offset() > 0 && walk.exact && walk.after_id.is_none() && walk_ranges(&walk) == 1 {
            if let Some(lists) = skip_read(&raw, collection, query, &walk).await? {
                let rest = query.skipped(query.offset());
                return select(&rest, &lists, !with_rows, with_rows);
            }
        }
        if walk.descending {
            if let Some(lists) = walk_back(&raw, collection, query, &walk).await? {
                // Ties come back by id descending: core orders what was read, then pages it.
                return select(query, &lists, false, with_rows);
            }
        }
        let lists = match &walk.after_id {
            _ if walk.descending => None,
            Some(after) => {
                let ix = from_dom(
                    indexeddb::store(&raw, collection)?.index(&index_ranges(&walk.source)?.0),
                )?;
                points_after(&ix, query, &walk, after).await?
            }
            None => walk_read(&st, query, &walk).await?,
        };
        if let Some(lists) = lists {
            // One exactly answered range read in result order: only paging is left.
            let plain = walk.exact && !with_rows && walk_ranges(&walk) == 1;
            return select(query, &lists, plain, with_rows);
        }
    }
    let sources = query.plan(|p| conn.schema.is_indexed(collection, p));
    let source = choose(&st, sources).await?;
    let lists = fetch(&st, &source).await?;
    // No conditions, or one equality the index read answered exactly (one key: records come in id
    // order): what was read is the result, only paging is left. Live queries still need the rows.
    let plain = query.order().is_empty()
        && query.after().is_none()
        && (query.terms().is_empty() || (!with_rows && answered_by_index(query, &source)));
    select(query, &lists, plain, with_rows)
}

/// The walk that reads `query` in result order, compound indexes included, forwards or (for a
/// descending order) backwards.
fn walk_of(conn: &Conn, collection: &str, query: &Query) -> Option<Walk> {
    query.walk_with(
        |p| conn.schema.is_indexed(collection, p),
        &conn.schema.compounds(collection),
    )
}

/// Whether every live record of `store` has a key in `ix` (none holds an array or object at its
/// path): index entries against records less tombstones, three counts issued at once.
async fn keys_cover_live(store: &web_sys::IdbObjectStore, ix: &IdbIndex) -> Result<bool> {
    let reqs = [
        from_dom(ix.count())?,
        from_dom(store.count())?,
        from_dom(from_dom(store.index(TOMBSTONES))?.count())?,
    ];
    let n = join_requests(reqs.iter().map(indexeddb::wait)).await?;
    let n: Vec<f64> = n.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
    Ok(n[0] == n[1] - n[2])
}

/// Reads each range of a backward walk (`walk.descending`) with a `prev` cursor, as far as the
/// query's first `offset + limit` matches, then (`walk.ties`) on while the key (a compound key
/// without its id) equals the last match's: ties are ordered by id ascending, the walk yields them by id descending, so the whole
/// last group is read and core orders it. `None` when the walk is not valid here (`walk.keyed` and
/// some live record has no key in the index: it would come first): the caller reads everything.
async fn walk_back(
    raw: &web_sys::IdbTransaction,
    collection: &str,
    query: &Query,
    walk: &Walk,
) -> Result<Option<Array>> {
    let need = Walk::need(query).unwrap_or(usize::MAX);
    let store = indexeddb::store(raw, collection)?;
    let (name, ranges) = raw_ranges(&walk.source)?;
    let index = name.map(|n| from_dom(store.index(n))).transpose()?;
    if walk.keyed {
        let Some(ix) = &index else { return Ok(None) };
        if !keys_cover_live(&store, ix).await? {
            return Ok(None);
        }
    }
    let source: JsValue = match &index {
        Some(ix) => ix.clone().into(),
        None => store.clone().into(),
    };
    let ranges: Vec<JsValue> = ranges
        .into_iter()
        .map(|r| r.map_or(JsValue::NULL, JsValue::from))
        .collect();
    // The walks run in JavaScript (`records.js` `walkBack`), all ranges at once (issued before the
    // first await: the transaction stays active). Every live record of an exact walk is a match.
    // A compound key ends with the id: ties are equal keys without it.
    let compound = matches!(walk.source, Source::Compound { .. });
    let (source, ranges, ties) = (&source, &ranges, walk.ties);
    let walks = |need: usize| {
        join_requests(ranges.iter().map(move |range| {
            let walked = JsFuture::from(records::walk_back(
                source,
                range,
                need as f64,
                ties,
                compound,
            ));
            async move { walked.await.map_err(|e| indexeddb::dom_error(&e)) }
        }))
    };
    if walk.exact {
        return Ok(Some(walks(need).await?.into_iter().collect()));
    }
    // Filtered: read each range again with four times the count until it holds `need` matches or
    // runs out (a walk cannot resume inside one key), like the forward index walks.
    let paths = paths_js(query);
    let mut batch = need;
    loop {
        let lists = walks(batch).await?;
        let mut enough = true;
        for list in &lists {
            let rows = rows_of(&records::extract(&Array::of1(list), paths.clone()))?;
            let exhausted = rows.len() < batch;
            enough &= exhausted || rows.iter().filter(|r| query.matches(*r)).count() >= need;
        }
        if enough {
            return Ok(Some(lists.into_iter().collect()));
        }
        batch = batch.saturating_mul(4);
    }
}

/// The paths a query reads, as `[[segment, ...], ...]` for `records.js`.
fn paths_js(query: &Query) -> JsValue {
    query
        .paths()
        .iter()
        .map(|p| {
            p.segments()
                .iter()
                .map(|s| JsValue::from_str(s))
                .collect::<Array>()
        })
        .collect::<Array>()
        .into()
}

/// The rows of `extracted` (`records.js` `extract` with paths).
fn rows_of(extracted: &JsValue) -> Result<Vec<Row>> {
    let rows_json = from_dom(Reflect::get(extracted, &"rows".into()))?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str(&rows_json)
        .map_err(|e| Error::storage("DataError", format!("reading stored documents: {e}")))
}

/// Filters, orders and pages what was read. `plain`: `lists` already hold exactly the matches in
/// result order (tombstones aside), so only the page is cut.
fn select(query: &Query, lists: &Array, plain: bool, with_rows: bool) -> Result<(Array, Vec<Row>)> {
    let paths = if plain {
        JsValue::UNDEFINED
    } else {
        paths_js(query)
    };
    let extracted = records::extract(lists, paths);
    let live: Array = from_dom(Reflect::get(&extracted, &"live".into()))?.unchecked_into();
    if plain {
        let len = live.length() as usize;
        let start = query.offset().min(len);
        let end = query
            .limit()
            .map_or(len, |l| start.saturating_add(l).min(len));
        let page = live.slice(start as u32, end as u32);
        let rows = if with_rows {
            records::ids_of(&page)
                .into_iter()
                .map(|id| Row(vec![Value::String(id)]))
                .collect()
        } else {
            Vec::new()
        };
        return Ok((page, rows));
    }
    let rows = rows_of(&extracted)?;
    let selected = query.select(&rows);
    let indices: Vec<u32> = selected.iter().map(|i| *i as u32).collect();
    let page = records::pick(&live, &indices);
    let rows = if with_rows {
        let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
        selected
            .iter()
            .filter_map(|i| rows.get_mut(*i).and_then(Option::take))
            .collect()
    } else {
        Vec::new()
    };
    Ok((page, rows))
}

fn walk_ranges(walk: &Walk) -> usize {
    match &walk.source {
        Source::Ids(r) => r.len(),
        Source::Index { ranges, .. } => ranges.len(),
        Source::Compound { ranges, .. } => ranges.len(),
    }
}

/// Largest single `getAll` of a walk that must read on (filtered or skipping tombstones).
const WALK_BATCH_MAX: usize = 4096;

/// Reads each range of `walk` only as far as the query's first `offset + limit` matches (core's
/// `walk.rs` says why that is enough): `getAll(range, n)`. An exact index range is one request.
/// The primary key may hold tombstones and a filtered walk non-matches, so those read on in
/// batches: the primary key from just after the last id read, an index (which cannot resume
/// inside one key) again from its start with four times the count. `None` when an incomplete walk
/// ran out first: the caller reads everything.
async fn walk_read(st: &rexie::Store, query: &Query, walk: &Walk) -> Result<Option<Array>> {
    let need = Walk::need(query).unwrap_or(usize::MAX);
    let paths = (!walk.exact).then(|| paths_js(query));
    // Matches among `batch` (exact walks: its live records).
    let matches = |batch: &Array| -> Result<usize> {
        let extracted = records::extract(
            &Array::of1(batch),
            paths.clone().unwrap_or(JsValue::UNDEFINED),
        );
        if paths.is_none() {
            let live: Array = from_dom(Reflect::get(&extracted, &"live".into()))?.unchecked_into();
            return Ok(live.length() as usize);
        }
        Ok(rows_of(&extracted)?
            .iter()
            .filter(|r| query.matches(*r))
            .count())
    };
    let count = |n: usize| Some(n.min(u32::MAX as usize) as u32);
    let lists = Array::new();
    match &walk.source {
        Source::Ids(ranges) => {
            for r in ranges {
                if let Some(id) = r.as_point() {
                    let found = from_rexie(st.get(JsValue::from_str(id)).await)?;
                    lists.push(&found.into_iter().collect::<Array>());
                    continue;
                }
                let mut range = r.clone();
                let (mut found, mut batch) = (0usize, need);
                loop {
                    let got: Array =
                        from_rexie(st.get_all(id_range_js(&range)?, count(batch)).await)?
                            .into_iter()
                            .collect();
                    let n = got.length() as usize;
                    found += matches(&got)?;
                    let last = (n > 0)
                        .then(|| records::ids_of(&got.slice(n as u32 - 1, n as u32)))
                        .and_then(|v| v.into_iter().next());
                    lists.push(&got);
                    if found >= need || n < batch {
                        break;
                    }
                    let Some(last) = last else { break };
                    range.lower = Some((last, true));
                    let missing = need - found;
                    batch = if walk.exact {
                        missing
                    } else {
                        (batch * 2).max(missing)
                    }
                    .clamp(1, WALK_BATCH_MAX);
                }
            }
        }
        Source::Index { .. } | Source::Compound { .. } => {
            let (name, ranges) = index_ranges(&walk.source)?;
            let ix = from_rexie(st.index(&name))?;
            for range in ranges {
                let mut batch = need;
                loop {
                    let got: Array = from_rexie(ix.get_all(range.clone(), count(batch)).await)?
                        .into_iter()
                        .collect();
                    let n = got.length() as usize;
                    let exhausted = n < batch;
                    if walk.exact || exhausted || matches(&got)? >= need {
                        if exhausted && !walk.complete {
                            return Ok(None);
                        }
                        lists.push(&got);
                        break;
                    }
                    batch = batch.saturating_mul(4);
                }
            }
        }
    }
    Ok(Some(lists))
}

/// An `offset` page of an exact one-range index walk without reading the earlier pages, then the
/// page's records by id, all requests at once. Ascending, the index's primary keys up to the
/// page's end (`getAllKeys`: keys only, no document read or converted); descending, a `prev` key
/// cursor's `advance` (`records.js` `skipBack`), only when the walk's order is the result's (no
/// tie group to reorder, no keyless record to check for). `None` otherwise, and for the primary
/// key (its tombstones are keys too: the walk reads on past them instead).
async fn skip_read(
    raw: &web_sys::IdbTransaction,
    collection: &str,
    query: &Query,
    walk: &Walk,
) -> Result<Option<Array>> {
    let (Some(limit), Some(need)) = (query.limit(), Walk::need(query)) else {
        return Ok(None);
    };
    if walk.descending && (walk.ties || walk.keyed) {
        return Ok(None);
    }
    let (Some(name), ranges) = raw_ranges(&walk.source)? else {
        return Ok(None);
    };
    let [range] = ranges.as_slice() else {
        return Ok(None);
    };
    let store = indexeddb::store(raw, collection)?;
    let ix = from_dom(store.index(name))?;
    let range: JsValue = range.clone().map_or(JsValue::NULL, JsValue::from);
    if walk.descending {
        let page = JsFuture::from(records::skip_back(
            &store,
            &ix,
            &range,
            query.offset() as f64,
            limit as f64,
        ))
        .await
        .map_err(|e| indexeddb::dom_error(&e))?;
        return Ok(Some(Array::of1(&page)));
    }
    let req =
        from_dom(ix.get_all_keys_with_key_and_limit(&range, need.min(u32::MAX as usize) as u32))?;
    let keys: Array = indexeddb::wait(&req).await?.unchecked_into();
    let start = query.offset().min(keys.length() as usize) as u32;
    let page = keys.slice(start, keys.length());
    let reqs = page
        .iter()
        .map(|id| from_dom(store.get(&id)))
        .collect::<Result<Vec<_>>>()?;
    let found = join_requests(reqs.iter().map(indexeddb::wait)).await?;
    Ok(Some(Array::of1(&found.into_iter().collect::<Array>())))
}

/// Reads the index points of `walk` (id order) each from just after the id `after`, as far as the
/// query's first `offset + limit` matches: a cursor jumps there (`continuePrimaryKey`), so earlier
/// pages are not read again. `None` (read by the planner instead) for a range that is not a point.
async fn points_after(
    ix: &IdbIndex,
    query: &Query,
    walk: &Walk,
    after: &str,
) -> Result<Option<Array>> {
    let Source::Index { ranges, .. } = &walk.source else {
        return Ok(None);
    };
    let need = Walk::need(query).unwrap_or(usize::MAX);
    let paths = (!walk.exact).then(|| paths_js(query));
    let lists = Array::new();
    for r in ranges {
        let Some(point) = r.lower.as_ref().filter(|_| r.is_point()) else {
            return Ok(None);
        };
        let key = records::key_to_js(&point.key);
        let (mut from, mut found, mut batch) = (after.to_string(), 0usize, need);
        loop {
            let (got, last) = cursor_after(ix, &key, &from, batch).await?;
            let n = got.length() as usize;
            found += match &paths {
                None => n,
                Some(paths) => {
                    let extracted = records::extract(&Array::of1(&got), paths.clone());
                    rows_of(&extracted)?
                        .iter()
                        .filter(|r| query.matches(*r))
                        .count()
                }
            };
            lists.push(&got);
            let Some(last) = last.filter(|_| found < need && n == batch) else {
                break;
            };
            from = last;
            batch = (batch.saturating_mul(2)).clamp(1, WALK_BATCH_MAX);
        }
    }
    Ok(Some(lists))
}

/// Up to `n` records of index key `key` whose id is after `from`, in id order, and the last id.
async fn cursor_after(
    ix: &IdbIndex,
    key: &JsValue,
    from: &str,
    n: usize,
) -> Result<(Array, Option<String>)> {
    let out = Array::new();
    let range: JsValue = from_dom(IdbKeyRange::only(key))?.into();
    let req = from_dom(ix.open_cursor_with_range(&range))?;
    let (mut last, mut first) = (None, true);
    loop {
        let v = indexeddb::wait(&req).await?;
        if v.is_null() || v.is_undefined() {
            break;
        }
        let cursor: IdbCursorWithValue = v.unchecked_into();
        let id = from_dom(cursor.primary_key())?
            .as_string()
            .unwrap_or_default();
        let order = cmp_str(&id, from);
        if order != Ordering::Greater {
            // Before the start: jump to it once (the start itself is stepped over).
            if first && order == Ordering::Less {
                from_dom(cursor.continue_primary_key(key, &JsValue::from_str(from)))?;
            } else {
                from_dom(cursor.continue_())?;
            }
            first = false;
            continue;
        }
        first = false;
        out.push(&from_dom(cursor.value())?);
        last = Some(id);
        if out.length() as usize >= n {
            break;
        }
        from_dom(cursor.continue_())?;
    }
    Ok((out, last))
}

/// True when `source` reads exactly the query's result: its only condition is an equality with a
/// string, number or boolean on the indexed path, read as that one key. (Such index keys encode
/// exactly core's equality: `1` and `1.0` share a key; arrays, objects and null are excluded here.)
fn answered_by_index(query: &Query, source: &Option<Source>) -> bool {
    let ([term], Some(Source::Index { path, ranges })) = (query.terms(), source) else {
        return false;
    };
    let Op::Eq(v) = &term.op else {
        return false;
    };
    let scalar = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    let same_path = query
        .paths()
        .get(term.path)
        .is_some_and(|p| p.as_str() == path.as_str());
    let one_key = matches!(ranges.as_slice(),
        [r] if r.lower == r.upper && r.lower.as_ref().is_some_and(|b| !b.open));
    scalar && same_path && one_key
}

/// Counts without reading documents when IndexedDB can answer exactly: no conditions (all records
/// minus tombstones), or a single equality on an indexed field.
async fn count_fast(conn: &Conn, collection: &str, query: &Query) -> Result<Option<usize>> {
    if query.limit().is_some() || query.offset() > 0 || query.after().is_some() {
        return Ok(None);
    }
    let tx = Tx::read(&conn.db, &[collection])?;
    let st = tx.store(collection)?;
    match query.terms() {
        [] => {
            let tombstones = from_rexie(st.index(TOMBSTONES))?;
            // `join!`, not `try_join!`: a failed count must not drop the other's future while its
            // request is still out (rexie's handlers would then call freed closures).
            let (all, dead) = futures::join!(st.count(None), tombstones.count(None));
            Ok(Some(all?.saturating_sub(dead?) as usize))
        }
        [term] if matches!(term.op, Op::Eq(_)) => {
            let sources = query.plan(|p| conn.schema.is_indexed(collection, p));
            match sources.first() {
                Some(Source::Index { path, ranges }) => {
                    let ix = from_rexie(st.index(path))?;
                    Ok(Some(index_count(&ix, ranges).await? as usize))
                }
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}
