//! Pure logic shared by the ferrosync browser library and its sync server.
//!
//! Nothing here knows about wasm-bindgen, web-sys or a database driver, so the rules that decide
//! ordering and conflicts compile and test natively and are the *same code* on both ends.

pub mod by_name;
pub mod doc_text;
pub mod document;
pub mod hlc;
pub mod limits;
pub mod merge;
pub mod protocol;
pub mod query;
pub mod sort;
pub mod sync;
pub mod topk;
pub mod walk;
pub mod window;

pub use hlc::{Hlc, HlcClock, HlcError};
