//! The `_meta` store: the client id (also the node of this client's HLCs), the clock, the
//! database's instance marker and its record format (`layout::RECORD_FORMAT`).
//!
//! The instance marker is a random id written when the database is created (or first opened by a
//! version that knows it). A connection the browser closed is reopened by the next operation; if
//! the database it finds has no marker, or another one, the database was deleted meanwhile
//! (eviction, "clear site data") and this is a new, empty one, so nothing the running instance
//! remembers of the old one (the sync cursor first of all) holds for it (`Store::lineage`).
//!
//! The clock is read inside every write transaction instead of living only in memory: readwrite
//! transactions over `_meta` are serialized by IndexedDB across tabs and instances, so every write
//! of a client gets a timestamp strictly above every earlier one, whichever tab wrote it. What is
//! written back is a bound above the stamps, once in a while (core's `sync::write_clock`).

use ferrosync_core::Hlc;
use wasm_bindgen::JsValue;
use web_sys::IdbDatabase;

use super::indexeddb::{self, from_rexie, Tx};
use super::layout::{CLIENT_ID, CLOCK, FORMAT, INSTANCE, META, PLACE, RECORD_FORMAT};
use crate::error::{Error, Result};

/// 16 lower-case hex digits (64 random bits): short, because it is part of every HLC.
pub fn new_client_id() -> String {
    crate::env::random::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The client id and the instance marker, read in one transaction, writing what is missing. A
/// database without a marker gets one; `keep` (the client id of a store reopening a database that
/// was wiped under it) then replaces the id the new database was created with, so one running
/// instance keeps stamping with one node and the tabs it shares the database with agree on it.
/// The record format is checked and marked in the same transaction (see [`RECORD_FORMAT`]).
pub async fn identity(db: &IdbDatabase, keep: Option<&str>) -> Result<(String, String)> {
    let tx = Tx::write(db, &[META])?;
    let work = async {
        let meta = tx.store(META)?;
        let (id, marker, format) = futures::join!(
            meta.get(CLIENT_ID.into()),
            meta.get(INSTANCE.into()),
            meta.get(FORMAT.into())
        );
        match from_rexie(format)?.map(|v| v.as_f64()) {
            Some(Some(f)) if f == f64::from(RECORD_FORMAT) => {}
            Some(Some(f)) if f > f64::from(RECORD_FORMAT) => {
                return Err(Error::DatabaseNewer {
                    found: f.to_string(),
                    reads: RECORD_FORMAT,
                });
            }
            _ => {
                let mark = JsValue::from(RECORD_FORMAT);
                from_rexie(meta.put(&mark, Some(&FORMAT.into())).await)?;
            }
        }
        let id = from_rexie(id)?.and_then(|v| v.as_string());
        let marker = from_rexie(marker)?.and_then(|v| v.as_string());
        let (id, write_id) = match (marker.is_some(), keep, id) {
            (false, Some(keep), _) => (keep.to_string(), true),
            (_, _, Some(id)) => (id, false),
            (_, _, None) => (new_client_id(), true),
        };
        if write_id {
            from_rexie(
                meta.put(&JsValue::from_str(&id), Some(&CLIENT_ID.into()))
                    .await,
            )?;
        }
        let marker = match marker {
            Some(m) => m,
            None => {
                let m = new_client_id();
                from_rexie(
                    meta.put(&JsValue::from_str(&m), Some(&INSTANCE.into()))
                        .await,
                )?;
                m
            }
        };
        Ok((id, marker))
    }
    .await;
    tx.finish(work).await
}

/// The persisted clock and outbox place floor, as stored (`undefined` when absent): one request
/// of the caller's transaction, issued when first polled. The keys `clock` and `clock~place` are
/// adjacent, and the place is only ever written beside the clock, so one value is the clock and
/// two are the clock and the place.
pub async fn read_stamp_values(meta: &rexie::Store) -> Result<(JsValue, JsValue)> {
    let both = indexeddb::key_range(
        Some((JsValue::from_str(CLOCK), false)),
        Some((JsValue::from_str(PLACE), false)),
    )?;
    let mut values = from_rexie(meta.get_all(indexeddb::range(both), None).await)?.into_iter();
    let mut next = || values.next().unwrap_or(JsValue::UNDEFINED);
    Ok((next(), next()))
}

/// [`read_stamp_values`], parsed.
pub async fn read_stamps(meta: &rexie::Store) -> Result<(Option<Hlc>, Option<Hlc>)> {
    let (clock, place) = read_stamp_values(meta).await?;
    let hlc = |v: JsValue, key: &str| -> Result<Option<Hlc>> {
        match v.as_string() {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| Error::storage("DataError", format!("stored {key}: {e}"))),
        }
    };
    Ok((hlc(clock, CLOCK)?, hlc(place, PLACE)?))
}

/// Writes the clock and the place floor, each when given (issued when first polled).
pub async fn write_stamps(
    meta: &rexie::Store,
    clock: Option<&Hlc>,
    place: Option<&Hlc>,
) -> Result<()> {
    let (clock, place) = futures::join!(
        write_some(meta, CLOCK, clock),
        write_some(meta, PLACE, place)
    );
    clock.and(place)
}

async fn write_some(meta: &rexie::Store, key: &str, hlc: Option<&Hlc>) -> Result<()> {
    match hlc {
        Some(h) => write_hlc(meta, key, h).await,
        None => Ok(()),
    }
}

async fn write_hlc(meta: &rexie::Store, key: &str, hlc: &Hlc) -> Result<()> {
    from_rexie(
        meta.put(&JsValue::from_str(&hlc.encode()), Some(&key.into()))
            .await,
    )?;
    Ok(())
}
