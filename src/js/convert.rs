//! Values crossing the JS boundary.
//!
//! Documents are *not* converted. The JavaScript object is checked where it is (`convert.js`, one
//! walk enforcing both the JavaScript-only problems and core's document rules, cross-checked against
//! core in tests/browser.rs) and then stored by IndexedDB as it is; Rust gets its id. Measured for a
//! 10,000-document batch (tests/convert_bench.rs): that walk takes ~2% of the time of `JSON.stringify`
//! plus passing the text to WASM plus serde_json (which itself was the cheapest part), and
//! serde-wasm-bindgen was slower still (one boundary call per field). Rust parses a single document
//! only when it must look inside (live-query matching of a few changed documents, per-field HLCs).
//! Queries and options are small and are read as JSON text / with `Reflect`.

use ferrosync_core::by_name::ByName;
use ferrosync_core::document::{ID_FIELD, MAX_DEPTH};
use ferrosync_core::limits::{validate_collection_name, MAX_ID_LEN};
use ferrosync_core::query::{Path, Query};
use ferrosync_core::walk::{CompoundIndex, MAX_COMPOUND_FIELDS};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::{Error, Result};
use crate::store::{Declared, Prepared, Store};

#[wasm_bindgen(module = "/src/js/convert.js")]
extern "C" {
    /// "a string", "an array", "a Date", "undefined", ... for messages.
    #[wasm_bindgen(js_name = kindOf)]
    pub fn kind_of(v: &JsValue) -> String;
    #[wasm_bindgen(catch, js_name = checkDocs)]
    fn check_docs(
        docs: &JsValue,
        max_depth: u32,
        max_id_bytes: u32,
        single: bool,
    ) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_name = prepareQuery)]
    fn prepare_query(query: &JsValue, max_depth: u32) -> Result<String, JsValue>;
    #[wasm_bindgen(js_name = withId)]
    fn with_id(doc: &JsValue, id: &str) -> JsValue;
}

/// The message of whatever the JavaScript side threw (our checks throw strings; a getter may throw
/// an `Error`).
fn thrown(e: JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    "the value could not be read".into()
}

fn check(docs: &JsValue, single: bool) -> Result<Array> {
    check_docs(docs, MAX_DEPTH as u32, MAX_ID_LEN as u32, single)
        .map_err(|e| Error::InvalidDocument(thrown(e)))
}

/// The stored form of a checked document: as given, or a copy with a generated id.
fn finish(store: &Store, doc: JsValue, id: JsValue) -> (JsValue, Prepared) {
    match id.as_string() {
        Some(id) => (doc.clone(), Prepared::new(id, doc)),
        None => {
            let id = store.new_id();
            let stored = with_id(&doc, &id);
            (stored.clone(), Prepared::new(id, stored))
        }
    }
}

/// One document for `put`.
pub fn document(store: &Store, doc: &JsValue) -> Result<(JsValue, Prepared)> {
    let ids = check(doc, true)?;
    Ok(finish(store, doc.clone(), ids.get(0)))
}

/// A batch for `bulkPut`: every document is checked before anything is written.
pub fn documents(store: &Store, docs: &JsValue) -> Result<(Array, Vec<Prepared>)> {
    let ids = check(docs, false)?;
    let input: &Array = docs.unchecked_ref();
    let stored = Array::new_with_length(input.length());
    let mut prepared = Vec::with_capacity(input.length() as usize);
    for (i, id) in ids.iter().enumerate() {
        let (js, p) = finish(store, input.get(i as u32), id);
        stored.set(i as u32, js);
        prepared.push(p);
    }
    Ok((stored, prepared))
}

/// The checks of `bulkPut` on a batch (for the boundary measurement): the ids found, or the message.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn check_batch_for_test(docs: &JsValue) -> std::result::Result<Vec<Option<String>>, String> {
    check(docs, false)
        .map(|ids| ids.iter().map(|v| v.as_string()).collect())
        .map_err(|e| e.to_string())
}

/// The checks of `put` on one value, for tests comparing them with core's rules: the id (`None`
/// when absent) or the message.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn check_document_for_test(doc: &JsValue) -> std::result::Result<Option<String>, String> {
    match check(doc, true) {
        Ok(ids) => Ok(ids.get(0).as_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A query object (`undefined`/`null`: everything).
pub fn query(q: &JsValue) -> Result<Query> {
    let text = prepare_query(q, MAX_DEPTH as u32).map_err(|e| Error::InvalidQuery(thrown(e)))?;
    Ok(Query::parse(&text)?)
}

/// One field path of `collections.<cname>.indexes` (alone or inside a compound index).
fn index_path(cname: &str, item: &JsValue) -> Result<Path> {
    let text = item.as_string().ok_or_else(|| {
        bad(format!(
            "collections.{cname}.indexes holds {}, expected field path strings or arrays of them (a compound index)",
            kind_of(item)
        ))
    })?;
    if text == ID_FIELD {
        return Err(bad(format!(
            "collections.{cname}.indexes: \"id\" is always indexed (it is the primary key; compound index entries end with it anyway)"
        )));
    }
    Path::parse(&text).map_err(|m| bad(format!("collections.{cname}.indexes: {m}")))
}

/// A compound index `["done", "title"]`: two to `MAX_COMPOUND_FIELDS` distinct field paths.
fn compound_index(cname: &str, list: &Array) -> Result<CompoundIndex> {
    let n = list.length() as usize;
    if !(2..=MAX_COMPOUND_FIELDS).contains(&n) {
        return Err(bad(format!(
            "collections.{cname}.indexes: a compound index lists 2 to {MAX_COMPOUND_FIELDS} field paths, got {n} (for one field write the path itself)"
        )));
    }
    let mut paths: Vec<Path> = Vec::with_capacity(n);
    for item in list.iter() {
        let path = index_path(cname, &item)?;
        if paths.contains(&path) {
            return Err(bad(format!(
                "collections.{cname}.indexes: the compound index names {:?} twice",
                path.as_str()
            )));
        }
        paths.push(path);
    }
    Ok(CompoundIndex { paths })
}

/// A document id argument (`get`, `delete`).
pub fn id(v: &JsValue) -> Result<String> {
    v.as_string().ok_or_else(|| {
        Error::InvalidDocument(format!(
            "a document id must be a string, got {}",
            kind_of(v)
        ))
    })
}

/// `Database.open` options, parsed.
#[derive(Debug)]
pub struct OpenOptions {
    pub name: String,
    pub declared: Declared,
    /// `sync` as given (read by the sync engine).
    pub sync: Option<JsValue>,
    /// Each collection's `conflict` option as given (read by the sync engine).
    pub conflicts: ByName<JsValue>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidOptions(msg.into())
}

fn plain_object(v: &JsValue) -> bool {
    kind_of(v) == "an object"
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn keys(o: &JsValue) -> Vec<String> {
    Object::keys(o.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .collect()
}

fn only_keys(o: &JsValue, allowed: &[&str], what: &str) -> Result<()> {
    for k in keys(o) {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown option {k:?} in {what} (allowed: {})",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

pub fn options(o: &JsValue) -> Result<OpenOptions> {
    if !plain_object(o) {
        return Err(bad(format!(
            "Database.open expects an object like {{ name, collections }}, got {}",
            kind_of(o)
        )));
    }
    only_keys(o, &["name", "collections", "sync"], "Database.open")?;
    let name = get(o, "name")
        .as_string()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name must be a non-empty string"))?;
    let collections = get(o, "collections");
    if !plain_object(&collections) {
        return Err(bad(format!(
            "collections must be an object like {{ tasks: {{ indexes: [\"done\"] }} }}, got {}",
            kind_of(&collections)
        )));
    }
    let mut declared = Declared::default();
    let mut conflicts = ByName::new();
    for cname in keys(&collections) {
        validate_collection_name(&cname).map_err(|e| bad(e.to_string()))?;
        let spec = get(&collections, &cname);
        let mut paths: Vec<Path> = Vec::new();
        if !spec.is_undefined() && !spec.is_null() {
            if !plain_object(&spec) {
                return Err(bad(format!(
                    "collections.{cname} must be an object like {{ indexes: [\"done\"] }}, got {}",
                    kind_of(&spec)
                )));
            }
            only_keys(
                &spec,
                &["indexes", "conflict"],
                &format!("collections.{cname}"),
            )?;
            let indexes = get(&spec, "indexes");
            if !indexes.is_undefined() {
                let arr = indexes.dyn_ref::<Array>().ok_or_else(|| {
                    bad(format!(
                        "collections.{cname}.indexes must be an array of field paths, got {}",
                        kind_of(&indexes)
                    ))
                })?;
                for item in arr.iter() {
                    if let Some(list) = item.dyn_ref::<Array>() {
                        let c = compound_index(&cname, list)?;
                        let same = |d: &CompoundIndex| d.paths == c.paths;
                        let list = declared.compounds.entry_or_default(&cname);
                        if list.iter().any(same) {
                            return Err(bad(format!(
                                "collections.{cname}.indexes lists the compound index {} twice",
                                c.name().trim_start_matches('$')
                            )));
                        }
                        list.push(c);
                        continue;
                    }
                    let path = index_path(&cname, &item)?;
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
            }
            let conflict = get(&spec, "conflict");
            if !conflict.is_undefined() {
                conflicts.insert(cname.clone(), conflict);
            }
        }
        declared.collections.insert(cname, paths);
    }
    let sync = Some(get(o, "sync")).filter(|v| !v.is_undefined());
    Ok(OpenOptions {
        name,
        declared,
        sync,
        conflicts,
    })
}
