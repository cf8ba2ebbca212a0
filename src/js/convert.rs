//! Values crossing the JS boundary.
//!
//! Documents: the JavaScript object is checked (`convert.js`), serialised once with the engine's
//! native `JSON.stringify`, parsed by serde_json in WASM and validated by core's rules. Rust keeps the
//! parsed value (index keys, live-query matching); the *original object* is what IndexedDB stores and
//! what the caller gets back, so documents are never rebuilt field by field across the boundary.
//! Measured against `serde-wasm-bindgen` (walks the object with one boundary call per field) and
//! against passing objects through unconverted: see `tests/convert_bench.rs` and docs/ARCHITECTURE.md.

use std::collections::BTreeMap;

use ferrosync_core::document::{self, ID_FIELD, MAX_DEPTH};
use ferrosync_core::limits::validate_collection_name;
use ferrosync_core::query::{Path, Query};
use js_sys::{Array, Object, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::{Error, Result};
use crate::store::{Declared, Prepared, Store};

#[wasm_bindgen(module = "/src/js/convert.js")]
extern "C" {
    #[wasm_bindgen(js_name = kindOf)]
    fn kind_of(v: &JsValue) -> String;
    #[wasm_bindgen(catch, js_name = prepareDoc)]
    fn prepare_doc(doc: &JsValue, max_depth: u32) -> Result<String, JsValue>;
    #[wasm_bindgen(catch, js_name = prepareDocs)]
    fn prepare_docs(docs: &JsValue, max_depth: u32) -> Result<String, JsValue>;
    #[wasm_bindgen(catch, js_name = prepareQuery)]
    fn prepare_query(query: &JsValue, max_depth: u32) -> Result<String, JsValue>;
    #[wasm_bindgen(js_name = withId)]
    fn with_id(doc: &JsValue, id: &str) -> JsValue;
}

/// The message of whatever the JavaScript side threw (our checks throw strings; `JSON.stringify`
/// or a getter may throw an `Error`).
fn thrown(e: JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    "the value could not be read".into()
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        msg.split(" at line ").next().unwrap_or(&msg).to_string()
    })
}

/// Validates a parsed document and gives it an id if it has none; returns the object to store.
fn finish(store: &Store, js: &JsValue, mut value: Value) -> Result<(JsValue, Prepared), String> {
    let id = document::validate(&value)
        .map_err(|e| e.to_string())?
        .map(str::to_string);
    match id {
        Some(id) => Ok((js.clone(), Prepared { id, value })),
        None => {
            let id = store.new_id();
            if let Value::Object(o) = &mut value {
                o.insert(ID_FIELD.to_string(), Value::String(id.clone()));
            }
            Ok((with_id(js, &id), Prepared { id, value }))
        }
    }
}

/// One document for `put`.
pub fn document(store: &Store, doc: &JsValue) -> Result<(JsValue, Prepared)> {
    let text = prepare_doc(doc, MAX_DEPTH as u32).map_err(|e| Error::InvalidDocument(thrown(e)))?;
    let value: Value = parse_json(&text).map_err(Error::InvalidDocument)?;
    finish(store, doc, value).map_err(Error::InvalidDocument)
}

/// A batch for `bulkPut`: every document is checked before anything is written.
pub fn documents(store: &Store, docs: &JsValue) -> Result<(Array, Vec<Prepared>)> {
    let text =
        prepare_docs(docs, MAX_DEPTH as u32).map_err(|e| Error::InvalidDocument(thrown(e)))?;
    let values: Vec<Value> = parse_json(&text).map_err(Error::InvalidDocument)?;
    let input: &Array = docs.unchecked_ref();
    let stored = Array::new_with_length(input.length());
    let mut prepared = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let js = input.get(i as u32);
        let (js, p) = finish(store, &js, value)
            .map_err(|m| Error::InvalidDocument(format!("document {i}: {m}")))?;
        stored.set(i as u32, js);
        prepared.push(p);
    }
    Ok((stored, prepared))
}

/// A query object (`undefined`/`null`: everything).
pub fn query(q: &JsValue) -> Result<Query> {
    let text = prepare_query(q, MAX_DEPTH as u32).map_err(|e| Error::InvalidQuery(thrown(e)))?;
    Ok(Query::parse(&text)?)
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
    pub conflicts: BTreeMap<String, JsValue>,
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
    let mut conflicts = BTreeMap::new();
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
                    let text = item.as_string().ok_or_else(|| {
                        bad(format!(
                            "collections.{cname}.indexes holds {}, expected field path strings",
                            kind_of(&item)
                        ))
                    })?;
                    if text == ID_FIELD {
                        return Err(bad(format!(
                            "collections.{cname}.indexes: \"id\" is always indexed (it is the primary key)"
                        )));
                    }
                    let path = Path::parse(&text)
                        .map_err(|m| bad(format!("collections.{cname}.indexes: {m}")))?;
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
