//! Browser events that make the scheduler look again: `online`/`offline` on the global scope (pages
//! and workers), and `visibilitychange` on `document` (main thread only), plus `navigator.onLine`.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, EventTarget};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowserEvent {
    Online,
    Offline,
    /// The page became visible again.
    Visible,
}

/// `navigator.onLine` of the global scope (true where it cannot be read: then we just try).
pub fn navigator_online() -> bool {
    let global = js_sys::global();
    Reflect::get(&global, &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"onLine".into()))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

fn document() -> Option<EventTarget> {
    let doc = Reflect::get(&js_sys::global(), &"document".into()).ok()?;
    doc.dyn_into::<EventTarget>().ok()
}

fn document_visible() -> bool {
    document()
        .and_then(|d| Reflect::get(&d, &"visibilityState".into()).ok())
        .and_then(|v| v.as_string())
        .is_none_or(|s| s == "visible")
}

type Registered = (EventTarget, &'static str, Closure<dyn FnMut(Event)>);

/// Registered listeners; dropping this removes them.
pub struct Listeners {
    registered: Vec<Registered>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for (target, name, closure) in &self.registered {
            let _ =
                target.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
    }
}

/// Calls `on_event` for each browser event that matters to sync.
pub fn listen(on_event: impl Fn(BrowserEvent) + Clone + 'static) -> Listeners {
    let mut registered = Vec::new();
    let mut add = |target: &EventTarget, name: &'static str, closure: Closure<dyn FnMut(Event)>| {
        if target
            .add_event_listener_with_callback(name, closure.as_ref().unchecked_ref())
            .is_ok()
        {
            registered.push((target.clone(), name, closure));
        }
    };
    if let Ok(global) = js_sys::global().dyn_into::<EventTarget>() {
        let f = on_event.clone();
        add(
            &global,
            "online",
            Closure::new(move |_: Event| f(BrowserEvent::Online)),
        );
        let f = on_event.clone();
        add(
            &global,
            "offline",
            Closure::new(move |_: Event| f(BrowserEvent::Offline)),
        );
    }
    if let Some(doc) = document() {
        let f = on_event;
        add(
            &doc,
            "visibilitychange",
            Closure::new(move |_: Event| {
                if document_visible() {
                    f(BrowserEvent::Visible)
                }
            }),
        );
    }
    Listeners { registered }
}
