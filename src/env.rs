//! The few things taken from the JavaScript environment: wall clock, timers, randomness, spawned
//! tasks and `BroadcastChannel`, all through the global scope so they work on a page and in a
//! worker alike.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BroadcastChannel, MessageEvent};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: f64) -> JsValue;
}

/// Resolves after `ms` milliseconds. Dropping it early is harmless: the timer only resolves a
/// promise nobody listens to (no Rust closure is involved that could be called after free).
pub async fn sleep(ms: f64) {
    let ms = if ms.is_finite() {
        ms.clamp(0.0, 2_147_483_647.0)
    } else {
        0.0
    };
    let promise = Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Runs `task` on the page's event loop. Boxed first, so wasm-bindgen's task machinery is
/// compiled once rather than once per kind of task.
pub fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = Box::pin(task);
    wasm_bindgen_futures::spawn_local(task);
}

/// Wall clock in milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Fresh random bytes from `crypto.getRandomValues`.
pub fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    get_random_values(&mut buf);
    buf
}

/// A `BroadcastChannel` and its message handler (instances of one database talk over these:
/// live-query notices, sync's tab messages). A channel never receives its own messages. Dropping it
/// closes the channel.
pub struct Channel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Channel {
    /// Opens channel `name`, handing each message's data to `receive`; `None` where
    /// BroadcastChannel does not exist.
    pub fn open(name: &str, receive: impl Fn(JsValue) + 'static) -> Option<Channel> {
        let channel = BroadcastChannel::new(name).ok()?;
        let on_message =
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| receive(ev.data()));
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Channel {
            channel,
            _on_message: on_message,
        })
    }

    pub fn post(&self, data: &JsValue) -> Result<(), JsValue> {
        self.channel.post_message(data)
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
