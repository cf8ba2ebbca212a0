//! Timers on the global scope (`setTimeout` exists on pages and in workers alike), and the wall clock.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
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

/// Wall clock in milliseconds since the epoch (`Date.now()`).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
