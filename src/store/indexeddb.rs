//! IndexedDB transactions and requests (the module is not called `idb`: that is a crate's name).
//! The store's requests go through rexie (`Tx::store` gives a `rexie::Store`), over transactions
//! created here, because only here can a transaction get
//! `{ durability: "relaxed" }` and report why it aborted (`QuotaExceededError` is only the
//! transaction's `error`); `vendor/rexie/PATCHES.md` has the one `From` impl that joins the two.
//!
//! Rules that keep a transaction alive (IndexedDB commits it as soon as the code awaits anything
//! foreign, rexie issue 36): a transaction's code awaits only its own requests, whose wake-ups run as
//! microtasks inside the request's success event; a batch issues all its requests in one poll
//! (`put_all`, `join!`, `join_requests`) and awaits the last, then the transaction's `complete`.
//!
//! The raw request futures below (`wait`) remain for the schema upgrade (`schema.rs`), which runs
//! inside `upgradeneeded` where rexie has no transaction to offer.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
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

/// One transaction of the store: opened here, its requests issued through rexie.
pub struct Tx {
    raw: IdbTransaction,
    rexie: rexie::Transaction,
    /// The outcome of a read-write transaction, registered before any request (so no event is
    /// missed); read-only ones are done when their last request is.
    done: RefCell<Option<TxDone>>,
}

impl Tx {
    /// A read-only transaction over `stores`.
    pub fn read(db: &IdbDatabase, stores: &[&str]) -> Result<Tx> {
        Ok(Tx::wrap(transaction(db, stores, false)?, None))
    }

    /// A read-write transaction over `stores`; end it with `finish`.
    pub fn write(db: &IdbDatabase, stores: &[&str]) -> Result<Tx> {
        let raw = transaction(db, stores, true)?;
        let done = TxDone::new(&raw);
        Ok(Tx::wrap(raw, Some(done)))
    }

    fn wrap(raw: IdbTransaction, done: Option<TxDone>) -> Tx {
        Tx {
            rexie: rexie::Transaction::from(raw.clone()),
            raw,
            done: RefCell::new(done),
        }
    }

    /// An object store of the transaction, for rexie's request API.
    pub fn store(&self, name: &str) -> Result<rexie::Store> {
        from_rexie(self.rexie.store(name))
    }

    /// Ends the transaction's work: on `Ok`, waits until a read-write transaction has committed
    /// (quota and other commit-time failures surface here); on `Err`, aborts it and returns why it
    /// ended: the transaction's own error (the first failed request's, naming the real problem)
    /// when there is one, else the given error.
    pub async fn finish<T>(&self, work: Result<T>) -> Result<T> {
        // The generic part is only this split: the ending itself is one boxed future, so it is
        // compiled once rather than into every operation's state machine.
        let (value, cause) = match work {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        self.end(cause).await?;
        value.ok_or_else(|| Error::storage("AbortError", "the transaction was aborted"))
    }

    /// `finish` without the value: commits (`None`) or aborts with `cause`.
    fn end(&self, cause: Option<Error>) -> Pin<Box<dyn Future<Output = Result<()>> + '_>> {
        Box::pin(async move {
            let done = self.done.borrow_mut().take();
            let Some(cause) = cause else {
                return match done {
                    Some(done) => done.wait().await,
                    None => Ok(()),
                };
            };
            let _ = self.raw.abort();
            Err(match done {
                None => cause,
                Some(done) => match done.wait().await {
                    Err(Error::Storage { name, .. }) if name == "AbortError" => cause,
                    Err(e) => e,
                    Ok(()) => cause,
                },
            })
        })
    }

    /// Rolls back everything the transaction did (a failed precondition, not an error).
    pub async fn roll_back(&self) {
        let _ = self.raw.abort();
        let done = self.done.borrow_mut().take();
        if let Some(done) = done {
            let _ = done.wait().await;
        }
    }
}

/// A rexie error as ours, keeping the DOMException's name (`QuotaExceededError`, `DataError`, ...).
pub fn rexie_error(e: rexie::Error) -> Error {
    use ::idb::Error as E;
    let rexie::Error::IdbError(inner) = e else {
        return Error::storage("AbortError", "the transaction could not be ended");
    };
    match inner {
        E::DomException(d) => dom_error(&d.into()),
        E::AddFailed(v)
        | E::ClearFailed(v)
        | E::CountFailed(v)
        | E::DeleteFailed(v)
        | E::GetAllFailed(v)
        | E::GetAllKeysFailed(v)
        | E::GetFailed(v)
        | E::GetKeyFailed(v)
        | E::IndexNotFound(v)
        | E::KeyRangeCreateFailed(v)
        | E::ObjectStoreNotFound(v)
        | E::OpenCursorFailed(v)
        | E::TransactionOpenFailed(v)
        | E::UpdateFailed(v) => dom_error(&v),
        // Cursor and key-path failures (the store uses neither through rexie) and a dropped
        // request: no DOMException to name (a fixed text keeps idb's message table out of the module).
        _ => Error::storage(
            "UnknownError",
            "an IndexedDB request failed without a DOMException",
        ),
    }
}

impl From<rexie::Error> for Error {
    fn from(e: rexie::Error) -> Self {
        rexie_error(e)
    }
}

/// Awaits a batch of request futures of one transaction, results in order, the first error (in
/// order) winning once all have ended. Every future is polled once first, which issues its request (rexie's futures
/// issue theirs when first polled), so the whole batch goes to IndexedDB at once; then each is
/// awaited in turn, which costs no extra round trip, since a transaction's requests complete in
/// the order they were issued. Why not `try_join_all`: it is monomorphised with `FuturesOrdered`
/// for every future type past 30 items, which made up most of the module's growth when the store
/// moved onto rexie; this is a few hundred bytes per type and O(n) polls.
pub async fn join_requests<F, T, E>(futs: impl IntoIterator<Item = F>) -> Result<Vec<T>>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut early: Vec<Option<std::result::Result<T, E>>> = Vec::with_capacity(futs.len());
    futures::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            early.push(match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            });
        }
        std::task::Poll::Ready(())
    })
    .await;
    // After a failure the rest still run to their end (the transaction aborts them at once): a
    // request future dropped early would leave its request's handlers pointing at freed closures.
    let mut out = Vec::with_capacity(futs.len());
    let mut failed = None;
    for (f, done) in futs.into_iter().zip(early) {
        let v = match done {
            Some(v) => v,
            None => f.await,
        };
        match v {
            Ok(v) => out.push(v),
            Err(e) => {
                failed.get_or_insert(e.into());
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `rexie::Result` as ours.
pub fn from_rexie<T>(r: rexie::Result<T>) -> Result<T> {
    r.map_err(rexie_error)
}

/// An optional raw key range as rexie's.
pub fn range(r: Option<IdbKeyRange>) -> Option<rexie::KeyRange> {
    r.map(rexie::KeyRange::from)
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
pub fn from_dom<T>(r: std::result::Result<T, JsValue>) -> Result<T> {
    r.map_err(|e| dom_error(&e))
}
