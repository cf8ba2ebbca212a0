//! The ferrosync reference sync server: the `/v1` protocol (see `docs/PROTOCOL.md`) over SQLite or
//! PostgreSQL, with the conflict order, wire types and limits taken from `ferrosync-core`.

pub mod app;
pub mod auth;
pub mod clock;
pub mod compact;
pub mod config;
pub mod cursor;
pub mod duration;
pub mod error;
pub mod events;
pub mod handlers;
pub mod hook;
pub mod listen;
pub mod metrics;
pub mod ops;
pub mod request_id;
pub mod sse;
pub mod state;
pub mod store;
pub mod stream_slots;
pub mod validate;
pub mod wire;

pub use app::{open, router, start, start_with, Handle, Server};
pub use config::Config;
pub use hook::{HookRequest, PushHook, Verdict};
pub use state::{AppState, StartError};
