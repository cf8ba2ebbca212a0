//! Change notices between `Database` instances of one origin (tabs, workers, or two instances on one
//! page) over a `BroadcastChannel` named per database. A channel never receives its own messages, so
//! every instance owns one. Message: `{ collection, ids, hlc? }` (the transaction's HLC), posted after
//! commit.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BroadcastChannel, MessageEvent};

use super::Notice;
use crate::store::Store;

pub struct Broadcast {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Broadcast {
    /// The channel of `store`'s database, or `None` where BroadcastChannel does not exist (then only
    /// this instance's own writes reach its watches).
    pub fn open(store: &Store) -> Option<Broadcast> {
        let channel = BroadcastChannel::new(&format!("ferrosync:{}", store.name())).ok()?;
        let weak = store.downgrade();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(store) = Store::upgrade(&weak) else {
                return;
            };
            if let Some(notice) = parse(&ev.data()) {
                store.notify(notice, false);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Broadcast {
            channel,
            _on_message: on_message,
        })
    }

    pub fn post(&self, collection: &str, ids: &[String], hlc: Option<&str>) {
        let msg = Object::new();
        let ids: Array = ids.iter().map(|s| JsValue::from_str(s)).collect();
        let _ = Reflect::set(&msg, &"collection".into(), &JsValue::from_str(collection));
        let _ = Reflect::set(&msg, &"ids".into(), &ids);
        if let Some(hlc) = hlc {
            let _ = Reflect::set(&msg, &"hlc".into(), &JsValue::from_str(hlc));
        }
        if let Err(e) = self.channel.post_message(&msg) {
            web_sys::console::warn_2(&JsValue::from_str("ferrosync: broadcast failed:"), &e);
        }
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}

fn parse(data: &JsValue) -> Option<Notice> {
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
