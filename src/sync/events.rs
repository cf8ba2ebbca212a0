//! The server's event stream (`GET {url}/events?token=`, Server-Sent Events): a `changes` event
//! says the namespace's feed moved (`{ cursor, serverTime }`), so the leader pulls at once instead
//! of waiting for its interval. Events are hints; a missed one only delays a pull.
//!
//! One `EventSource` per (url, token) per JavaScript realm, shared by every `Database` instance
//! that listens to it: browsers allow only six HTTP/1.1 connections per host, and each open stream
//! holds one for good. `EventSource` is looked up on the global scope, so this works in workers;
//! where it does not exist, there are no events and the other triggers still sync.

use std::cell::RefCell;
use std::rc::Rc;

use ferrosync_core::by_name::ByName;
use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    type EventSource;
    #[wasm_bindgen(constructor, catch)]
    fn new(url: &str) -> Result<EventSource, JsValue>;
    #[wasm_bindgen(method)]
    fn close(this: &EventSource);
    #[wasm_bindgen(method, getter, js_name = readyState)]
    fn ready_state(this: &EventSource) -> u16;
    #[wasm_bindgen(method, js_name = addEventListener)]
    fn add_event_listener(this: &EventSource, name: &str, callback: &Function);
}

const CLOSED: u16 = 2;

type Listener = Rc<dyn Fn(Option<String>)>;

struct Source {
    source: EventSource,
    listeners: Vec<(u64, Listener)>,
    _on_changes: Closure<dyn FnMut(JsValue)>,
}

#[derive(Default)]
struct Registry {
    /// By stream URL: one per server and token, a handful at most.
    sources: ByName<Source>,
    next_id: u64,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::default();
}

fn supported() -> bool {
    Reflect::get(&js_sys::global(), &"EventSource".into()).is_ok_and(|v| v.is_function())
}

/// The `cursor` of a `changes` event (`None` if absent or unreadable: still worth a pull).
fn cursor_of(event: &JsValue) -> Option<String> {
    let data = Reflect::get(event, &"data".into()).ok()?.as_string()?;
    let parsed: serde_json::Value = serde_json::from_str(&data).ok()?;
    parsed.get("cursor")?.as_str().map(str::to_string)
}

/// A listener on the event stream; dropping it stops listening (and closes the stream when it was
/// the last listener).
pub struct Subscription {
    key: String,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let removed = REGISTRY.with(|r| {
            let mut r = r.borrow_mut();
            let empty = match r.sources.get_mut(&self.key) {
                Some(s) => {
                    s.listeners.retain(|(id, _)| *id != self.id);
                    s.listeners.is_empty()
                }
                None => false,
            };
            if empty {
                r.sources.remove(&self.key)
            } else {
                None
            }
        });
        if let Some(s) = removed {
            s.source.close();
        }
    }
}

impl Subscription {
    /// False once the browser gave up on the stream (it does after a non-stream reply such as a
    /// 401); the caller may then subscribe again later.
    pub fn is_alive(&self) -> bool {
        REGISTRY.with(|r| {
            r.borrow()
                .sources
                .get(&self.key)
                .is_some_and(|s| s.source.ready_state() != CLOSED)
        })
    }
}

/// Listens to the stream of `base_url` for `token`; `on_change` gets each event's cursor.
/// `None` when the environment has no `EventSource` or refuses the URL.
pub fn subscribe(
    base_url: &str,
    token: &str,
    on_change: impl Fn(Option<String>) + 'static,
) -> Option<Subscription> {
    if !supported() {
        return None;
    }
    let token_q = String::from(js_sys::encode_uri_component(token));
    let key = format!("{base_url}/events?token={token_q}");
    let listener: Listener = Rc::new(on_change);
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        r.next_id += 1;
        let id = r.next_id;
        // A stream the browser closed for good is replaced.
        let dead = r
            .sources
            .get(&key)
            .is_some_and(|s| s.source.ready_state() == CLOSED);
        if dead {
            if let Some(old) = r.sources.remove(&key) {
                old.source.close();
            }
        }
        if let Some(s) = r.sources.get_mut(&key) {
            s.listeners.push((id, listener));
            return Some(Subscription { key, id });
        }
        let source = EventSource::new(&key).ok()?;
        let k = key.clone();
        let on_changes = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let cursor = cursor_of(&event);
            let listeners: Vec<Listener> = REGISTRY.with(|r| {
                r.borrow()
                    .sources
                    .get(&k)
                    .map(|s| s.listeners.iter().map(|(_, l)| l.clone()).collect())
                    .unwrap_or_default()
            });
            for l in listeners {
                l(cursor.clone());
            }
        });
        source.add_event_listener("changes", on_changes.as_ref().unchecked_ref());
        r.sources.insert(
            key.clone(),
            Source {
                source,
                listeners: vec![(id, listener)],
                _on_changes: on_changes,
            },
        );
        Some(Subscription { key, id })
    })
}
