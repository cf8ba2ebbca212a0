//! The `_meta` store: the client id (also the node of this client's HLCs) and the clock.
//!
//! The clock is read and written inside every write transaction instead of living only in memory:
//! readwrite transactions over `_meta` are serialized by IndexedDB across tabs and instances, so
//! every write of a client gets a timestamp strictly above every earlier one, whichever tab wrote it.

use ferrosync_core::Hlc;
use wasm_bindgen::JsValue;
use web_sys::IdbDatabase;

use super::idb::{rx, Tx};
use super::schema::META;
use crate::error::{Error, Result};

pub const CLIENT_ID: &str = "clientId";
pub const CLOCK: &str = "clock";

/// 16 lower-case hex digits (64 random bits): short, because it is part of every HLC.
pub fn new_client_id() -> String {
    crate::env::random::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the client id, creating it if this database has none yet.
pub async fn client_id(db: &IdbDatabase) -> Result<String> {
    let tx = Tx::write(db, &[META])?;
    let work = async {
        let meta = tx.store(META)?;
        if let Some(id) = rx(meta.get(CLIENT_ID.into()).await)?.and_then(|v| v.as_string()) {
            return Ok(id);
        }
        let id = new_client_id();
        rx(meta
            .put(&JsValue::from_str(&id), Some(&CLIENT_ID.into()))
            .await)?;
        Ok(id)
    }
    .await;
    tx.finish(work).await
}

/// The persisted clock (a request of the caller's transaction, issued when first polled).
pub async fn read_clock(meta: &rexie::Store) -> Result<Option<Hlc>> {
    match rx(meta.get(CLOCK.into()).await)?.and_then(|v| v.as_string()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e| Error::storage("DataError", format!("stored clock: {e}"))),
    }
}

/// Writes the clock (issued when first polled).
pub async fn write_clock(meta: &rexie::Store, hlc: &Hlc) -> Result<()> {
    rx(meta
        .put(&JsValue::from_str(&hlc.encode()), Some(&CLOCK.into()))
        .await)?;
    Ok(())
}
