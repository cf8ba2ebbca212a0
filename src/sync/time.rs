//! Time for the sync scheduler: timers and the wall clock (both from `env`, on the global scope).

pub use crate::env::sleep;

/// Wall clock in milliseconds since the epoch (`Date.now()`).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
