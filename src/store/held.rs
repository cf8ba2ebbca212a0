//! Pulled documents held in JavaScript (`held.js`): a pull reply is parsed by the browser's
//! `JSON.parse`, its documents stay the objects that made, and WASM gets the page without them;
//! each becomes a [`Doc::held`], which knows its id and the slot it is held at. The store writes
//! a held document by its slot (`sync_records.js` `planApply` puts the object itself), and a rule
//! that reads fields (merge, a resolver, a live query) gets its text from here, made on demand.
//!
//! Why: the text of every document crossing into WASM, being scanned there, written into the ops
//! and decoded and parsed again in JavaScript was most of what a first sync did beyond what a
//! hand-written client does (docs/BENCHMARKS.md, "Documents held in JavaScript").

use std::sync::Arc;

use ferrosync_core::doc_text::DocSource;
use ferrosync_core::protocol::{Doc, PullResponse};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/store/held.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = holdPage)]
    fn hold_page(page: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(js_name = heldText)]
    fn held_text(slot: u32) -> Option<String>;
    #[wasm_bindgen(js_name = releasePage)]
    fn release_page(base: u32);
    #[cfg(feature = "test-hooks")]
    #[wasm_bindgen(js_name = heldPages)]
    fn held_pages() -> u32;
}

/// Test hook: how many pulled pages are held (none once every page was written or dropped).
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub fn pages_for_test() -> u32 {
    held_pages()
}

/// One held page: let go when the last document naming it is dropped.
struct Page {
    base: u32,
}

impl DocSource for Page {
    fn text(&self, slot: u32) -> Option<String> {
        held_text(slot)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        release_page(self.base);
    }
}

/// A pull reply parsed by `JSON.parse` (`page`) as core's [`PullResponse`], its object documents
/// held in JavaScript. The error is serde_json's message for a reply of the wrong shape.
pub fn pull_reply(page: &JsValue) -> Result<PullResponse, String> {
    // `holdPage` throws only past 2^32 documents held at once.
    let parts = hold_page(page).map_err(|_| "too many pulled documents held".to_string())?;
    let bytes = parts.get(0).unchecked_into::<Uint8Array>().to_vec();
    let base = parts.get(1).as_f64().unwrap_or(-1.0);
    // Made before parsing, so a reply that fails to parse lets its page go too.
    let source: Option<Arc<dyn DocSource>> =
        (base >= 0.0).then(|| Arc::new(Page { base: base as u32 }) as Arc<dyn DocSource>);
    let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
    let mut reply: PullResponse = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if let Some(source) = source {
        for (i, change) in reply.changes.iter_mut().enumerate() {
            // Every object document was replaced by `{ id }`; others came as they were.
            if let Some(doc) = change.doc.as_ref().filter(|d| d.is_object()) {
                let slot = (base as u32).wrapping_add(i as u32);
                change.doc = Some(Doc::held(slot, doc.id(), source.clone()));
            }
        }
    }
    Ok(reply)
}
