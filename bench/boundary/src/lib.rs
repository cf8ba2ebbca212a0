//! Strategies for getting a batch of documents from JavaScript into Rust, each ending with what
//! ferrosync's write path needs: every document validated by `ferrosync_core::document::validate`
//! (ids, reserved `$` names, depth) and its index keys computed, returned as one JSON string (the
//! `ix` objects, parsed once in JavaScript, like `records.rs::projections_json`).
//! All functions return the same JSON for the same documents; bench/boundary/page.js checks it.

use std::cell::RefCell;

use ferrosync_core::document;
use ferrosync_core::query::{IndexKey, Path};
use js_sys::Array;
use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;

thread_local! {
    /// (index ident, path) of the collection's declared indexes.
    static INDEXES: RefCell<Vec<(String, Path)>> = const { RefCell::new(Vec::new()) };
}

fn fail(msg: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&msg.to_string()).into()
}

/// Declares the indexed paths (like a collection's `indexes`).
#[wasm_bindgen]
pub fn set_indexes(paths: Vec<String>) -> Result<(), JsValue> {
    let mut parsed = Vec::new();
    for p in paths {
        let path = Path::parse(&p).map_err(fail)?;
        parsed.push((format!("i_{p}"), path));
    }
    INDEXES.with(|i| *i.borrow_mut() = parsed);
    Ok(())
}

/// The `ix` object of one document.
fn projection(doc: &Value, indexes: &[(String, Path)]) -> Value {
    let mut ix = Map::new();
    for (ident, path) in indexes {
        if let Some(key) = IndexKey::at(doc, path) {
            ix.insert(ident.clone(), key.to_json());
        }
    }
    Value::Object(ix)
}

fn validate(doc: &Value) -> Result<(), JsValue> {
    match document::validate(doc) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(fail("document without id")),
        Err(e) => Err(fail(e)),
    }
}

fn projections(docs: &[Value]) -> Result<String, JsValue> {
    INDEXES.with(|i| {
        let indexes = i.borrow();
        let mut all = Vec::with_capacity(docs.len());
        for d in docs {
            validate(d)?;
            all.push(projection(d, &indexes));
        }
        serde_json::to_string(&all).map_err(fail)
    })
}

/// ferrosync's choice: the batch as one JSON text (`JSON.stringify` in JS), parsed by serde_json.
#[wasm_bindgen]
pub fn json_batch(text: &str) -> Result<String, JsValue> {
    let docs: Vec<Value> = serde_json::from_str(text).map_err(fail)?;
    projections(&docs)
}

/// ferrosync's choice with the text as UTF-8 bytes (`TextEncoder.encode`): wasm-bindgen copies a
/// `Uint8Array` into WASM memory with one native `set`, where a string goes through a JavaScript
/// loop over its UTF-16 code units (`passStringToWasm0`).
#[wasm_bindgen]
pub fn json_batch_bytes(bytes: &[u8]) -> Result<String, JsValue> {
    let docs: Vec<Value> = serde_json::from_slice(bytes).map_err(fail)?;
    projections(&docs)
}

/// One JSON text per document: one boundary call and one string copy per document.
#[wasm_bindgen]
pub fn json_one(text: &str) -> Result<String, JsValue> {
    let doc: Value = serde_json::from_str(text).map_err(fail)?;
    INDEXES.with(|i| {
        validate(&doc)?;
        serde_json::to_string(&projection(&doc, &i.borrow())).map_err(fail)
    })
}

/// serde-wasm-bindgen: Rust walks the JS objects, one boundary call per field and value.
#[wasm_bindgen]
pub fn swb_batch(docs: JsValue) -> Result<String, JsValue> {
    let docs: Vec<Value> = serde_wasm_bindgen::from_value(docs).map_err(fail)?;
    projections(&docs)
}

/// serde-wasm-bindgen both ways: the documents are rebuilt in Rust and converted back to new JS
/// objects for storage (the naive "convert field by field" design), plus the projections.
#[wasm_bindgen]
pub fn swb_roundtrip(docs: JsValue) -> Result<Array, JsValue> {
    let docs: Vec<Value> = serde_wasm_bindgen::from_value(docs).map_err(fail)?;
    let ix = projections(&docs)?;
    let ser = serde_wasm_bindgen::Serializer::json_compatible();
    let out = Array::new();
    out.push(&serde::Serialize::serialize(&docs, &ser).map_err(fail)?);
    out.push(&JsValue::from_str(&ix));
    Ok(out)
}

/// Objects passed through untouched (ferrosync since ee870c1): JavaScript checks the documents
/// (core's rules included) and computes the index keys; Rust receives the ids only, one string per
/// document, as `src/js/convert.rs` `documents` does. Returns how many it took.
#[wasm_bindgen]
pub fn untouched_ids(ids: &Array) -> Result<u32, JsValue> {
    let mut n = 0;
    for id in ids.iter() {
        let id = id.as_string().ok_or_else(|| fail("id is not a string"))?;
        n += u32::from(!id.is_empty());
    }
    Ok(n)
}
