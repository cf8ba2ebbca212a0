//! `Collection` (reads, writes, live queries) and `Subscription`.

use std::rc::Rc;

use ferrosync_core::limits::validate_id;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::convert;
use super::error::reject;
use crate::error::{Error, Result};
use crate::live::{Handlers, Registry, Watch};
use crate::store::{records, Store};

/// The documents of one collection. Its TypeScript declaration is written by hand in `types.rs`
/// (as the generic `Collection<T>`), hence `skip_typescript`.
#[wasm_bindgen(skip_typescript)]
pub struct Collection {
    store: Store,
    live: Rc<Registry>,
    name: String,
    /// `get`'s full path as a JS function of the id, made on the first `get` (see `get`).
    slow_get: std::cell::OnceCell<Closure<dyn Fn(String) -> Promise>>,
}

impl Collection {
    pub(crate) fn new(store: Store, live: Rc<Registry>, name: String) -> Collection {
        Collection {
            store,
            live,
            name,
            slow_get: Default::default(),
        }
    }

    fn slow_get(&self) -> &Function {
        self.slow_get
            .get_or_init(|| {
                let (store, name) = (self.store.clone(), self.name.clone());
                Closure::new(move |id: String| {
                    let (store, name) = (store.clone(), name.clone());
                    promise(Ok(async move { store.get(&name, &id).await }))
                })
            })
            .as_ref()
            .unchecked_ref()
    }
}

/// Runs the synchronous argument checks now (so the caller's object is read before it can change),
/// then the store operation.
fn promise<F>(prepared: Result<F>) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    match prepared {
        Err(e) => reject(e),
        Ok(fut) => future_to_promise(async move { fut.await.map_err(JsValue::from) }),
    }
}

#[wasm_bindgen]
impl Collection {
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Stores a document (replacing any with the same id) and returns it as stored, with its id.
    #[wasm_bindgen(unchecked_return_type = "Promise<Document>")]
    pub fn put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "NewDocument")] doc: JsValue,
    ) -> Promise {
        let (store, name) = (self.store.clone(), self.name.clone());
        promise(
            convert::document(&store, &doc).map(|(stored, prepared)| async move {
                let batch = js_sys::Array::of1(&stored);
                store.put_all(&name, &batch, vec![prepared]).await?;
                Ok(stored)
            }),
        )
    }

    /// Stores many documents in one transaction: all or none. Returns them as stored.
    #[wasm_bindgen(js_name = bulkPut, unchecked_return_type = "Promise<Document[]>")]
    pub fn bulk_put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "NewDocument[]")] docs: JsValue,
    ) -> Promise {
        let (store, name) = (self.store.clone(), self.name.clone());
        promise(
            convert::documents(&store, &docs).map(|(stored, prepared)| async move {
                if !prepared.is_empty() {
                    store.put_all(&name, &stored, prepared).await?;
                }
                Ok(stored.into())
            }),
        )
    }

    /// The document with this id, or `undefined`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Document | undefined>")]
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        // The read itself runs in JavaScript when the database is open; the full path (reopen,
        // error codes) answers otherwise.
        let id = match convert::id(&id).and_then(|id| {
            self.store.check_collection(&self.name)?;
            Ok(id)
        }) {
            Ok(id) => id,
            Err(e) => return reject(e),
        };
        let slow = self.slow_get();
        match self.store.get_now(&self.name, &id, slow) {
            Some(p) => p,
            None => slow
                .call1(&JsValue::UNDEFINED, &JsValue::from_str(&id))
                .map(JsCast::unchecked_into)
                .unwrap_or_else(|e| Promise::reject(&e)),
        }
    }

    /// Deletes the document (kept as a tombstone for sync). Idempotent.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        let (store, name) = (self.store.clone(), self.name.clone());
        let id = convert::id(&id).and_then(|id| {
            validate_id(&id).map_err(|e| Error::InvalidDocument(e.to_string()))?;
            Ok(id)
        });
        promise(id.map(|id| async move {
            store.delete(&name, &id).await?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// The documents matching `query`, in its order.
    #[wasm_bindgen(unchecked_return_type = "Promise<Document[]>")]
    pub fn find(&self, #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue) -> Promise {
        let (store, name) = (self.store.clone(), self.name.clone());
        promise(convert::query(&query).map(|q| async move {
            let recs = store.query_records(&name, &q).await?;
            Ok(records::docs_of(&recs).into())
        }))
    }

    /// How many documents `find(query)` would return.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn count(&self, #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue) -> Promise {
        let (store, name) = (self.store.clone(), self.name.clone());
        promise(convert::query(&query).map(|q| async move {
            let n = store.count(&name, &q).await?;
            Ok(JsValue::from_f64(n as f64))
        }))
    }

    /// Calls `callback` with the current result, then after every committed change that alters it
    /// (from this instance, other tabs, or sync) until `unsubscribe()`. A run that fails goes to
    /// `onError` (a `FerrosyncError`; the watch keeps running and re-runs on the next change);
    /// `onEnd` is called once when the database is closed or deleted (not after `unsubscribe()`).
    #[wasm_bindgen(js_name = watch)]
    pub fn watch_with(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Query | undefined")] query: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WatchCallback")] callback: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WatchErrorCallback | undefined")] on_error: JsValue,
        #[wasm_bindgen(unchecked_param_type = "WatchEndCallback | undefined")] on_end: JsValue,
    ) -> Result<Subscription, JsValue> {
        let callback: Function = callback.dyn_into().map_err(|v| {
            Error::InvalidQuery(format!(
                "watch expects a callback function, got {}",
                convert::kind_of(&v)
            ))
        })?;
        let on_error = optional_function("onError", on_error)?;
        let on_end = optional_function("onEnd", on_end)?;
        let query = convert::query(&query)?;
        let handlers = Handlers {
            on_error: on_error.map(|f| -> Box<dyn Fn(Error)> {
                Box::new(move |e: Error| {
                    let err = JsValue::from(e);
                    if let Err(thrown) = f.call1(&JsValue::NULL, &err) {
                        log_thrown("onError", &thrown);
                    }
                })
            }),
            on_end: on_end.map(|f| -> Box<dyn Fn()> {
                Box::new(move || {
                    if let Err(thrown) = f.call0(&JsValue::NULL) {
                        log_thrown("onEnd", &thrown);
                    }
                })
            }),
        };
        let watch = self
            .live
            .watch(&self.store, &self.name, query, callback, handlers)?;
        Ok(Subscription {
            _store: self.store.clone(),
            live: self.live.clone(),
            watch,
        })
    }
}

impl Collection {
    /// `watch(query, callback)` without `onError`/`onEnd`, for Rust callers.
    pub fn watch(&self, query: JsValue, callback: JsValue) -> Result<Subscription, JsValue> {
        self.watch_with(query, callback, JsValue::UNDEFINED, JsValue::UNDEFINED)
    }
}

/// An optional callback argument: `undefined`/`null` for none, else it must be a function.
fn optional_function(what: &str, value: JsValue) -> Result<Option<Function>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value.dyn_into().map(Some).map_err(|v| {
        Error::InvalidQuery(format!(
            "watch expects {what} to be a function or undefined, got {}",
            convert::kind_of(&v)
        ))
    })
}

fn log_thrown(what: &str, thrown: &JsValue) {
    web_sys::console::error_2(
        &JsValue::from_str(&format!("ferrosync: a watch {what} callback threw:")),
        thrown,
    );
}

/// A running live query.
#[wasm_bindgen]
pub struct Subscription {
    /// Keeps the database open while the application holds a live query of it.
    _store: Store,
    live: Rc<Registry>,
    watch: Rc<Watch>,
}

#[wasm_bindgen]
impl Subscription {
    /// Stops the live query; none of its callbacks is called again.
    pub fn unsubscribe(&self) {
        self.live.unwatch(&self.watch);
    }

    /// False after `unsubscribe()`, and once the watch ended with its database (`onEnd`).
    #[wasm_bindgen(getter)]
    pub fn active(&self) -> bool {
        self.watch.is_active()
    }
}
