//! Change notices between `Database` instances of one origin (tabs, workers, or two instances on one
//! page) over a `BroadcastChannel` named per database. A channel never receives its own messages, so
//! every instance owns one. Message: `{ notices: [{ collection, ids, hlc? }] }` (`hlc`: the
//! transaction's), posted after commit; a bare `{ collection, ids, hlc? }` is read too.
//!
//! Posting is throttled: a notice goes out at once unless one went out less than `THROTTLE_MS` ago;
//! then it waits, with every other notice of that window, for one message at the window's end. A
//! `postMessage` costs about a quarter of a millisecond in Chromium (a tenth of a single `put`'s time,
//! profiled in bench/), so a burst of small writes pays it once per window instead of once per write,
//! and a lone write is still announced at once. Receivers handle each notice as before. A tab that
//! is hidden for good or unloaded (`pagehide` on the global scope) sends what waits at once: a timer
//! of a page being torn down may never fire, and other tabs would miss those changes.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::EventTarget;

use crate::env::Channel;
use crate::store::Notice;

/// At most one message per this many milliseconds (the rest wait for the window's end).
const THROTTLE_MS: f64 = 16.0;

pub struct Broadcast {
    out: Rc<Outgoing>,
    on_pagehide: Closure<dyn FnMut()>,
}

/// The sending side: notices waiting for the end of the current window.
struct Outgoing {
    channel: Channel,
    queued: RefCell<Vec<Object>>,
    last_sent: Cell<f64>,
    scheduled: Cell<bool>,
}

impl Outgoing {
    fn send(&self, notices: Array) {
        if notices.length() == 0 {
            return;
        }
        let msg = Object::new();
        let _ = Reflect::set(&msg, &"notices".into(), &notices);
        self.last_sent.set(js_sys::Date::now());
        if let Err(e) = self.channel.post(&msg) {
            web_sys::console::warn_2(&JsValue::from_str("ferrosync: broadcast failed:"), &e);
        }
    }

    fn flush(&self) {
        let notices: Array = self.queued.borrow_mut().drain(..).collect();
        self.send(notices);
    }
}

impl Broadcast {
    /// The channel of database `name`, handing what other instances post to `receive`; `None`
    /// where BroadcastChannel does not exist (then only this instance's own writes reach its
    /// watches).
    pub fn open(name: &str, receive: impl Fn(Vec<Notice>) + 'static) -> Option<Broadcast> {
        let channel = Channel::open(&format!("ferrosync:{name}"), move |data| {
            receive(parse(&data));
        })?;
        let out = Rc::new(Outgoing {
            channel,
            queued: RefCell::new(Vec::new()),
            last_sent: Cell::new(f64::NEG_INFINITY),
            scheduled: Cell::new(false),
        });
        let weak_out: Weak<Outgoing> = Rc::downgrade(&out);
        let on_pagehide = Closure::<dyn FnMut()>::new(move || {
            if let Some(out) = weak_out.upgrade() {
                out.flush();
            }
        });
        let global: EventTarget = js_sys::global().unchecked_into();
        let _ = global
            .add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
        Some(Broadcast { out, on_pagehide })
    }

    /// Notices waiting for the end of the throttle window (tests).
    #[cfg(feature = "test-hooks")]
    pub fn queued(&self) -> usize {
        self.out.queued.borrow().len()
    }

    pub fn post(&self, collection: &str, ids: &[String], hlc: Option<&str>) {
        let notice = Object::new();
        // One JSON text, not a string per id: each string crossing out of WASM is decoded on its
        // own (a pulled page is hundreds of ids).
        let ids = serde_json::to_string(ids)
            .ok()
            .and_then(|t| js_sys::JSON::parse(&t).ok())
            .unwrap_or_else(|| Array::new().into());
        let _ = Reflect::set(
            &notice,
            &"collection".into(),
            &JsValue::from_str(collection),
        );
        let _ = Reflect::set(&notice, &"ids".into(), &ids);
        if let Some(hlc) = hlc {
            let _ = Reflect::set(&notice, &"hlc".into(), &JsValue::from_str(hlc));
        }
        let out = &self.out;
        let wait = out.last_sent.get() + THROTTLE_MS - js_sys::Date::now();
        if !out.scheduled.get() && wait <= 0.0 {
            out.send(Array::of1(&notice));
            return;
        }
        out.queued.borrow_mut().push(notice);
        if !out.scheduled.replace(true) {
            let weak: Weak<Outgoing> = Rc::downgrade(out);
            crate::env::spawn(async move {
                crate::env::sleep(wait.max(0.0)).await;
                if let Some(out) = weak.upgrade() {
                    out.scheduled.set(false);
                    out.flush();
                }
            });
        }
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        // Notices still waiting for their window go out now: closing must not lose one.
        self.out.flush();
        let global: EventTarget = js_sys::global().unchecked_into();
        let _ = global.remove_event_listener_with_callback(
            "pagehide",
            self.on_pagehide.as_ref().unchecked_ref(),
        );
        // The channel closes when `out` goes (timers only hold it weakly).
    }
}

fn parse(data: &JsValue) -> Vec<Notice> {
    match Reflect::get(data, &"notices".into())
        .ok()
        .and_then(|v| v.dyn_into::<Array>().ok())
    {
        Some(list) => list.iter().filter_map(|n| parse_one(&n)).collect(),
        None => parse_one(data).into_iter().collect(),
    }
}

fn parse_one(data: &JsValue) -> Option<Notice> {
    let collection = Reflect::get(data, &"collection".into()).ok()?.as_string()?;
    let ids = Reflect::get(data, &"ids".into()).ok()?;
    let ids: Vec<String> = ids
        .dyn_ref::<Array>()?
        .iter()
        .filter_map(|v| v.as_string())
        .collect();
    let hlc = Reflect::get(data, &"hlc".into())
        .ok()
        .and_then(|v| v.as_string());
    Some(Notice::remote(&collection, ids, hlc))
}
