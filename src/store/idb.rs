//! Small, panic-free futures over raw IndexedDB requests and transactions.
//!
//! Why not rexie's request futures: writes never need one future per request. A batch issues all its
//! requests synchronously and awaits only the transaction's `complete`/`abort`, which is both the
//! fastest shape (no per-request closures) and the one that can never await something foreign while
//! the transaction is open (rexie issue 36). Reads await the few requests they issue, all of which
//! belong to the transaction; their wake-ups run as microtasks, inside the request's success event, so
//! the transaction stays active.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use futures::channel::oneshot;
use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    DomException, Event, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use crate::error::{Error, Result};

#[wasm_bindgen]
extern "C" {
    /// The global scope: `Window` on a page, `WorkerGlobalScope` in a worker.
    type Global;
    #[wasm_bindgen(method, getter, catch, js_name = indexedDB)]
    fn indexed_db(this: &Global) -> Result<JsValue, JsValue>;

    /// `IDBDatabase`, for the one method web-sys only has behind its unstable-API cfg.
    #[wasm_bindgen(js_name = IDBDatabase)]
    type RawDatabase;
    /// `db.transaction(names, mode, options)`.
    #[wasm_bindgen(catch, method, js_class = "IDBDatabase", js_name = transaction)]
    fn transaction_with_options(
        this: &RawDatabase,
        names: &js_sys::Array,
        mode: &str,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;
}

thread_local! {
    static RELAXED: JsValue = {
        let o = js_sys::Object::new();
        let _ = Reflect::set(&o, &"durability".into(), &"relaxed".into());
        o.into()
    };
}

/// `indexedDB` of the global scope (never `window`, so the library works in workers).
pub fn factory() -> Result<IdbFactory> {
    let global: Global = js_sys::global().unchecked_into();
    let value = global.indexed_db().map_err(|e| dom_error(&e))?;
    value.dyn_into::<IdbFactory>().map_err(|_| {
        Error::storage(
            "NotSupportedError",
            "IndexedDB is not available in this context",
        )
    })
}

/// Classifies a thrown DOMException (or anything else thrown by IndexedDB).
pub fn dom_error(v: &JsValue) -> Error {
    let (name, message) = if let Some(e) = v.dyn_ref::<DomException>() {
        (e.name(), e.message())
    } else if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        (String::from(e.name()), String::from(e.message()))
    } else {
        let text = v
            .as_string()
            .or_else(|| js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()))
            .unwrap_or_else(|| "unknown error".into());
        ("Error".to_string(), text)
    };
    match name.as_str() {
        "QuotaExceededError" => Error::QuotaExceeded(message),
        // Thrown by `transaction()` once the connection is closed: the browser closed it under us.
        "InvalidStateError" => Error::ConnectionLost(message),
        _ => Error::Storage { name, message },
    }
}

/// Clears the handlers of a request/transaction when its future is dropped, so a late event never
/// calls a freed closure.
struct Handlers<T: AsRef<web_sys::EventTarget>> {
    target: T,
    events: &'static [&'static str],
    _closures: Vec<Closure<dyn FnMut(Event)>>,
}

impl<T: AsRef<web_sys::EventTarget>> Drop for Handlers<T> {
    fn drop(&mut self) {
        for name in self.events {
            let _ = Reflect::set(
                self.target.as_ref(),
                &JsValue::from_str(&format!("on{name}")),
                &JsValue::NULL,
            );
        }
    }
}

type Slot = Rc<RefCell<Option<oneshot::Sender<Result<JsValue>>>>>;

fn send(slot: &Slot, value: Result<JsValue>) {
    if let Some(tx) = slot.borrow_mut().take() {
        let _ = tx.send(value);
    }
}

/// Awaits one request's result.
pub fn wait(req: &IdbRequest) -> impl Future<Output = Result<JsValue>> {
    let (tx, rx) = oneshot::channel();
    let slot: Slot = Rc::new(RefCell::new(Some(tx)));
    let (ok_slot, err_slot) = (slot.clone(), slot);
    let (ok_req, err_req) = (req.clone(), req.clone());
    let on_ok = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        send(&ok_slot, ok_req.result().map_err(|e| dom_error(&e)));
    });
    let on_err = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        let err = match err_req.error() {
            Ok(Some(e)) => dom_error(&e),
            Ok(None) => Error::storage("UnknownError", "request failed"),
            Err(e) => dom_error(&e),
        };
        send(&err_slot, Err(err));
    });
    req.set_onsuccess(Some(on_ok.as_ref().unchecked_ref()));
    req.set_onerror(Some(on_err.as_ref().unchecked_ref()));
    let guard = Handlers {
        target: req.clone(),
        events: &["success", "error"],
        _closures: vec![on_ok, on_err],
    };
    async move {
        let result = rx.await;
        drop(guard);
        result.unwrap_or_else(|_| Err(Error::storage("AbortError", "request was dropped")))
    }
}

/// Resolves when the transaction commits; fails with the reason when it aborts. Created right after
/// the transaction, before any request, so no event can be missed.
pub struct TxDone {
    rx: oneshot::Receiver<Result<JsValue>>,
    guard: Handlers<IdbTransaction>,
}

impl TxDone {
    pub fn new(tx: &IdbTransaction) -> TxDone {
        let (sender, rx) = oneshot::channel();
        let slot: Slot = Rc::new(RefCell::new(Some(sender)));
        let (ok_slot, abort_slot) = (slot.clone(), slot);
        let abort_tx = tx.clone();
        let on_complete = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            send(&ok_slot, Ok(JsValue::UNDEFINED));
        });
        let on_abort = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let err = match abort_tx.error() {
                Some(e) => dom_error(&e),
                None => Error::storage("AbortError", "the transaction was aborted"),
            };
            send(&abort_slot, Err(err));
        });
        tx.set_oncomplete(Some(on_complete.as_ref().unchecked_ref()));
        tx.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
        TxDone {
            rx,
            guard: Handlers {
                target: tx.clone(),
                events: &["complete", "abort"],
                _closures: vec![on_complete, on_abort],
            },
        }
    }

    pub async fn wait(self) -> Result<()> {
        let TxDone { rx, guard } = self;
        let result = rx.await;
        drop(guard);
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::storage("AbortError", "transaction was dropped")),
        }
    }
}

/// Aborts a transaction after a request could not even be issued; the error that caused it wins.
pub fn abort(tx: &IdbTransaction, cause: Error) -> Error {
    let _ = tx.abort();
    cause
}

/// Opens a transaction over `stores`. Relaxed durability for writes: Chromium then skips the fsync
/// per commit (what Dexie, Firefox and Safari do by default); a power cut may lose the last commits
/// but never tears one.
pub fn transaction(db: &IdbDatabase, stores: &[&str], write: bool) -> Result<IdbTransaction> {
    let names = js_sys::Array::new();
    for s in stores {
        names.push(&JsValue::from_str(s));
    }
    let tx = if write {
        RELAXED.with(|options| {
            db.unchecked_ref::<RawDatabase>()
                .transaction_with_options(&names, "readwrite", options)
        })
    } else {
        db.transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readonly)
    };
    tx.map_err(|e| dom_error(&e))
}

pub fn store(tx: &IdbTransaction, name: &str) -> Result<IdbObjectStore> {
    tx.object_store(name).map_err(|e| dom_error(&e))
}

/// An `IDBKeyRange` from optional `(key, open)` ends; `None` for "everything".
pub fn key_range(
    lower: Option<(JsValue, bool)>,
    upper: Option<(JsValue, bool)>,
) -> Result<Option<IdbKeyRange>> {
    let r = match (lower, upper) {
        (None, None) => return Ok(None),
        (Some((l, lo)), None) => IdbKeyRange::lower_bound_with_open(&l, lo),
        (None, Some((u, uo))) => IdbKeyRange::upper_bound_with_open(&u, uo),
        (Some((l, lo)), Some((u, uo))) => {
            IdbKeyRange::bound_with_lower_open_and_upper_open(&l, &u, lo, uo)
        }
    };
    r.map(Some).map_err(|e| dom_error(&e))
}

/// Turns a synchronous IndexedDB call's exception into our error.
pub fn js<T>(r: std::result::Result<T, JsValue>) -> Result<T> {
    r.map_err(|e| dom_error(&e))
}
