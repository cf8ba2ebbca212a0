//! A document checked by the JS API (`js/convert.js`), ready to store.

use std::cell::OnceCell;

use serde_json::Value;
use wasm_bindgen::JsValue;

use super::indexeddb::dom_error;
use crate::error::{Error, Result};

/// A validated document ready to store: its id and the JavaScript object, stored as it is. Rust looks
/// inside only when it must (live-query matching of a few changed documents, per-field HLCs of
/// `merge` collections), and then parses that one document once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub doc: JsValue,
    value: OnceCell<Value>,
}

impl Prepared {
    pub fn new(id: String, doc: JsValue) -> Prepared {
        Prepared {
            id,
            doc,
            value: OnceCell::new(),
        }
    }

    /// The document as JSON (parsed on first use).
    pub fn value(&self) -> Result<&Value> {
        if self.value.get().is_none() {
            let text = js_sys::JSON::stringify(&self.doc)
                .map_err(|e| dom_error(&e))?
                .as_string()
                .unwrap_or_default();
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::InvalidDocument(format!("document {:?}: {e}", self.id)))?;
            let _ = self.value.set(v);
        }
        self.value
            .get()
            .ok_or_else(|| Error::storage("UnknownError", "document value unavailable"))
    }
}
