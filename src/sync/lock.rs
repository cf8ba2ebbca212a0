//! Leadership through the Web Locks API, so only one tab (or worker) per database runs the sync
//! engine; the others follow through their live queries.
//!
//! A small `extern` binding of `navigator.locks.request` on the global scope (web-sys'
//! `LockManager` needs an unstable cfg, and `window` does not exist in workers). The lock callback
//! returns a promise that stays pending while we lead, so the lock is held until [`Held`] is
//! dropped, or until the tab goes away, when the browser hands it to the next waiter.

use futures::channel::oneshot;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks`.
    type LockManager;
    #[wasm_bindgen(method, catch)]
    fn request(
        this: &LockManager,
        name: &str,
        options: &Object,
        callback: &Function,
    ) -> Result<Promise, JsValue>;

    type AbortController;
    #[wasm_bindgen(constructor, catch)]
    fn new() -> Result<AbortController, JsValue>;
    #[wasm_bindgen(method, getter)]
    fn signal(this: &AbortController) -> JsValue;
    #[wasm_bindgen(method)]
    fn abort(this: &AbortController);
}

fn lock_manager() -> Option<LockManager> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    (locks.is_object()).then(|| locks.unchecked_into())
}

/// The lock is ours while this lives; dropping it releases the lock.
pub struct Held {
    release: Option<Function>,
}

impl Held {
    /// Leadership without Web Locks (a context that lacks them): every instance leads.
    fn unlocked() -> Self {
        Held { release: None }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

/// A queued request for the lock. Dropping it before the lock is granted withdraws the request.
pub struct Waiting {
    granted: oneshot::Receiver<Function>,
    controller: Option<AbortController>,
    unsupported: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(c) = &self.controller {
            c.abort();
        }
    }
}

impl Waiting {
    /// Resolves once the lock is ours (`None` if the request failed or was withdrawn).
    pub async fn granted(mut self) -> Option<Held> {
        if self.unsupported {
            return Some(Held::unlocked());
        }
        let release = (&mut self.granted).await.ok()?;
        // Granted: aborting the signal now would do nothing, but keep it from being called at all.
        self.controller = None;
        Some(Held {
            release: Some(release),
        })
    }
}

/// Queues for the exclusive lock `name` (the browser grants it in request order).
pub fn request(name: &str) -> Waiting {
    let (tx, granted) = oneshot::channel::<Function>();
    let Some(locks) = lock_manager() else {
        web_sys::console::warn_1(&JsValue::from_str(
            "ferrosync: the Web Locks API is not available here; every instance will sync on its own",
        ));
        return Waiting {
            granted,
            controller: None,
            unsupported: true,
        };
    };
    let controller = AbortController::new().ok();
    let options = Object::new();
    if let Some(c) = &controller {
        let _ = Reflect::set(&options, &"signal".into(), &c.signal());
    }
    let mut tx = Some(tx);
    // Called once by the browser when the lock is granted; never called if the request is aborted
    // (the tiny closure then stays allocated: `once_into_js` frees it only when called).
    let callback = Closure::once_into_js(move |_lock: JsValue| -> Promise {
        let mut resolve_slot: Option<Function> = None;
        let held = Promise::new(&mut |resolve, _| resolve_slot = Some(resolve));
        if let (Some(tx), Some(resolve)) = (tx.take(), resolve_slot) {
            if let Err(resolve) = tx.send(resolve) {
                // Nobody waits any more: give the lock back at once.
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        }
        held
    });
    match locks.request(name, &options, callback.unchecked_ref()) {
        Ok(promise) => {
            // The promise rejects with AbortError when withdrawn; nothing to do then.
            crate::env::spawn(async move {
                let _ = JsFuture::from(promise).await;
            });
        }
        Err(e) => {
            web_sys::console::warn_2(
                &JsValue::from_str(
                    "ferrosync: navigator.locks.request failed; syncing without it:",
                ),
                &e,
            );
            return Waiting {
                granted,
                controller: None,
                unsupported: true,
            };
        }
    }
    Waiting {
        granted,
        controller,
        unsupported: false,
    }
}
