//! Time for the sync scheduler: timers and the wall clock (both from `env`, on the global scope).

pub use crate::env::{now_ms, sleep};
