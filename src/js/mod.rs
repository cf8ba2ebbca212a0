//! Everything JavaScript sees: the `#[wasm_bindgen]` classes, the conversions of their arguments,
//! the mapping of errors to `Error`s with a `code`, and the TypeScript declarations. `sync.rs` holds
//! the sync methods of `Database` (over the agent of src/sync); no `#[wasm_bindgen]` export lives
//! outside this module.

mod collection;
pub mod convert;
mod database;
mod error;
mod sync;
mod types;

pub use collection::{Collection, Subscription};
pub use convert::OpenOptions;
pub use database::Database;
