//! `db.status` and `db.onStatus(cb)`: what the sync engine is doing, as a plain object an app can
//! render (`{ state, pending, lastSyncAt, error, progress: { pulled, remaining }, rejected }`).

use std::cell::{Cell, RefCell};

use js_sys::{Function, Object, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// The engine's state as the app sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Idle,
    Syncing,
    /// `navigator.onLine` is false: nothing is attempted.
    Offline,
    /// The last sync failed (see `error`); retried with backoff unless the failure needs a change
    /// first (a new token, a new local write).
    Error,
}

/// Why the last sync failed: the same `code`/`message` a rejected `db.sync()` carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusProgress {
    /// Changes received so far in the running (or last) sync.
    pub pulled: u64,
    /// Changes the server still has for us, when it says (`null` otherwise).
    pub remaining: Option<u64>,
}

/// A pending local change sync has set aside (core's `SetAside`): the server refused it on its
/// own, or the collection's resolver failed on it. It stays local and pending until the app
/// retries or discards it (or edits the document again); every other change keeps syncing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub collection: String,
    pub id: String,
    pub code: String,
    pub message: String,
}

impl Rejected {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        for (k, v) in [
            ("collection", &self.collection),
            ("id", &self.id),
            ("code", &self.code),
            ("message", &self.message),
        ] {
            let _ = Reflect::set(&o, &k.into(), &JsValue::from_str(v));
        }
        o.into()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: State,
    /// Local changes not yet acknowledged by the server (pending records).
    pub pending: u64,
    /// When the last successful sync ended (ms since the epoch), `null` if never.
    pub last_sync_at: Option<u64>,
    pub error: Option<StatusError>,
    pub progress: StatusProgress,
    /// Changes set aside, in (collection, id) order.
    pub rejected: Vec<Rejected>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Idle,
            pending: 0,
            last_sync_at: None,
            error: None,
            progress: StatusProgress::default(),
            rejected: Vec::new(),
        }
    }
}

impl Status {
    /// A fresh plain JS object (never shared with the app, so it cannot be changed under us).
    pub fn to_js(&self) -> JsValue {
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &JsValue::from_str(k), &v);
        };
        let state = match self.state {
            State::Idle => "idle",
            State::Syncing => "syncing",
            State::Offline => "offline",
            State::Error => "error",
        };
        set("state", JsValue::from_str(state));
        set("pending", JsValue::from_f64(self.pending as f64));
        set(
            "lastSyncAt",
            self.last_sync_at
                .map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64)),
        );
        set(
            "error",
            match &self.error {
                None => JsValue::NULL,
                Some(e) => {
                    let err = Object::new();
                    let _ = Reflect::set(&err, &"code".into(), &JsValue::from_str(&e.code));
                    let _ = Reflect::set(&err, &"message".into(), &JsValue::from_str(&e.message));
                    err.into()
                }
            },
        );
        let progress = Object::new();
        let _ = Reflect::set(
            &progress,
            &"pulled".into(),
            &JsValue::from_f64(self.progress.pulled as f64),
        );
        let _ = Reflect::set(
            &progress,
            &"remaining".into(),
            &self
                .progress
                .remaining
                .map_or(JsValue::NULL, |r| JsValue::from_f64(r as f64)),
        );
        set("progress", progress.into());
        let rejected: js_sys::Array = self.rejected.iter().map(Rejected::to_js).collect();
        set("rejected", rejected.into());
        o.into()
    }
}

/// The current status and the `onStatus` callbacks of one `Database` instance.
#[derive(Default)]
pub struct StatusCell {
    current: RefCell<Status>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_id: Cell<u32>,
}

impl StatusCell {
    pub fn get(&self) -> Status {
        self.current.borrow().clone()
    }

    /// Changes the status; listeners are called only if something they can see changed.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        let before = self.current.borrow().clone();
        let mut next = before.clone();
        f(&mut next);
        self.set(before, next);
    }

    /// `update`'s ending, compiled once whatever the caller's closure.
    #[inline(never)]
    fn set(&self, before: Status, next: Status) {
        if next != before {
            *self.current.borrow_mut() = next.clone();
            self.emit(&next);
        }
    }

    fn emit(&self, status: &Status) {
        // Copy the list first: a callback may subscribe or unsubscribe.
        let listeners: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            if let Err(e) = f.call1(&JsValue::NULL, &status.to_js()) {
                web_sys::console::error_2(
                    &JsValue::from_str("ferrosync: an onStatus callback threw:"),
                    &e,
                );
            }
        }
    }

    pub fn subscribe(&self, f: Function) -> u32 {
        let id = self.next_id.get().wrapping_add(1);
        self.next_id.set(id);
        self.listeners.borrow_mut().push((id, f));
        id
    }

    pub fn unsubscribe(&self, id: u32) {
        self.listeners.borrow_mut().retain(|(i, _)| *i != id);
    }

    pub fn clear(&self) {
        self.listeners.borrow_mut().clear();
    }
}
