//! The `_meta` store: the client id (also the node of this client's HLCs) and the clock.
//!
//! The clock is read and written inside every write transaction instead of living only in memory:
//! readwrite transactions over `_meta` are serialized by IndexedDB across tabs and instances, so
//! every write of a client gets a timestamp strictly above every earlier one, whichever tab wrote it.

use std::future::Future;

use ferrosync_core::Hlc;
use wasm_bindgen::JsValue;
use web_sys::{IdbDatabase, IdbObjectStore};

use super::idb::{self, js};
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
    let tx = idb::transaction(db, &[META], true)?;
    let done = idb::TxDone::new(&tx);
    let meta = idb::store(&tx, META)?;
    let existing = idb::wait(&js(meta.get(&CLIENT_ID.into()))?).await?;
    let id = match existing.as_string() {
        Some(id) => id,
        None => {
            let id = new_client_id();
            js(meta.put_with_key(&JsValue::from_str(&id), &CLIENT_ID.into()))?;
            id
        }
    };
    done.wait().await?;
    Ok(id)
}

/// Issues the read of the persisted clock now (a request of the caller's transaction); the returned
/// future yields it.
pub fn read_clock(meta: &IdbObjectStore) -> Result<impl Future<Output = Result<Option<Hlc>>>> {
    let pending = idb::wait(&js(meta.get(&CLOCK.into()))?);
    Ok(async move {
        match pending.await?.as_string() {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| Error::storage("DataError", format!("stored clock: {e}"))),
        }
    })
}

pub fn write_clock(meta: &IdbObjectStore, hlc: &Hlc) -> Result<()> {
    js(meta.put_with_key(&JsValue::from_str(&hlc.encode()), &CLOCK.into()))?;
    Ok(())
}
