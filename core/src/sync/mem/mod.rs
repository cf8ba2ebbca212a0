//! In-memory implementations of the sync traits: a local store, a server with the reference
//! server's rules, and a transport between them that can be made to fail. They let the engine run
//! natively, deterministically, in tests and simulations.

mod server;
mod store;
mod tables;
mod transport;

pub use server::{MemServer, Namespace};
pub use store::{MemStore, MemStoreError};
pub use tables::{MemBatch, MemTables};
pub use transport::{Fault, MemTransport};
