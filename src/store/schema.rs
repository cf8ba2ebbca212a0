//! The IndexedDB layout and its upgrades.
//!
//! One database per `Database.open` name, holding:
//! - one object store per collection, key path `id`, records as in `records.rs`; an index per
//!   declared path over the record's projection (`ix.<ident>`), plus `$tombstones` (key path
//!   `tomb`, present on tombstones only) so live documents can be counted without reading them;
//!   and `$pending` (key path `[pend, id]`, `pend` present on records written locally): the
//!   outbox in write order, above a per-collection watermark in `_meta` (see `outbox.rs`);
//! - `_meta` (out-of-line keys): `clientId`, `clock` (a bound above every HLC issued), `instance`
//!   (marker of this database, see `meta.rs`), `format` (the record format, `layout.rs`
//!   `RECORD_FORMAT`), `schema` (description).
//!
//! Databases written before the outbox moved into the records have an `_outbox` store (one row per
//! pending document, key `[collection, id]`); the first open by this version marks those records
//! pending and deletes the store, in the upgrade transaction.
//!
//! Opening with a collection or index the database lacks bumps the version and creates what is
//! missing in `upgradeneeded`; nothing is ever deleted (the rexie/idb builder drops every store and
//! index it is not told about, which is why this module talks to IndexedDB directly). A new index on a
//! store that already has records is back-filled in the same upgrade transaction, so no reader ever
//! sees a half-built index.

use ferrosync_core::by_name::ByName;
use std::cell::RefCell;
use std::rc::Rc;

use ferrosync_core::query::Path;
use ferrosync_core::walk::CompoundIndex;
use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    Event, IdbCursorWithValue, IdbDatabase, IdbFactory, IdbIndexParameters, IdbObjectStore,
    IdbObjectStoreParameters, IdbOpenDbRequest, IdbRequest, IdbTransaction, IdbVersionChangeEvent,
};

use super::indexeddb::{self, dom_error, from_dom};
use super::layout::{
    IndexInfo, CLIENT_ID, F_ID, F_PEND, F_TOMB, LEGACY_OUTBOX, META, PENDING, SCHEMA, TOMBSTONES,
};
use super::{meta, records};
use crate::error::{Error, Result};

#[wasm_bindgen(module = "/src/store/records.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = migrateOutbox)]
    fn migrate_outbox(db: &IdbDatabase, tx: &IdbTransaction) -> std::result::Result<(), JsValue>;
}

/// Every collection store in the database (internal stores start with `_`), including the ones
/// only other instances declared: sync pushes and pulls them all.
pub fn collection_stores(db: &IdbDatabase) -> Vec<String> {
    list(&db.object_store_names())
        .into_iter()
        .filter(|n| !n.starts_with('_'))
        .collect()
}

/// What `Database.open` asked for: collection name -> declared index paths, and the compound
/// indexes of collections that declare any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub collections: ByName<Vec<Path>>,
    pub compounds: ByName<Vec<CompoundIndex>>,
}

/// The schema of one open connection: for every declared collection, *all* indexes its store has
/// (including ones declared by other instances), because every writer must keep every index's
/// projection up to date. Refreshed on every (re)open; an upgrade by another instance closes this
/// connection first (`versionchange`), so it can never go stale while open.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub collections: ByName<Vec<IndexInfo>>,
}

impl Schema {
    pub fn indexes(&self, collection: &str) -> &[IndexInfo] {
        self.collections
            .get(collection)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether `path` has a single-field index.
    pub fn is_indexed(&self, collection: &str, path: &str) -> bool {
        self.indexes(collection)
            .iter()
            .any(|i| i.compound.is_none() && i.path.as_str() == path)
    }

    /// The compound indexes of `collection`.
    pub fn compounds(&self, collection: &str) -> Vec<CompoundIndex> {
        self.indexes(collection)
            .iter()
            .filter_map(|i| i.compound.clone())
            .collect()
    }
}

fn list(names: &web_sys::DomStringList) -> Vec<String> {
    (0..names.length()).filter_map(|i| names.item(i)).collect()
}

/// Opens (creating or upgrading as needed) and returns the connection with its schema.
pub async fn open(name: &str, declared: &Declared) -> Result<(IdbDatabase, Schema)> {
    let factory = indexeddb::factory()?;
    let mut version: Option<u32> = None;
    // Another tab may upgrade between our look and our upgrade; look again after each open.
    for _ in 0..8 {
        let db = open_once(&factory, name, version, declared).await?;
        match inspect(&db, declared) {
            Ok(Some(schema)) => return Ok((db, schema)),
            Ok(None) => {
                version = Some(db.version() as u32 + 1);
                db.close();
            }
            Err(e) => {
                db.close();
                return Err(e);
            }
        }
    }
    Err(Error::storage(
        "UpgradeFailed",
        "the database schema kept changing while opening it",
    ))
}

/// The schema if everything declared exists (and no migration is due), `None` if an upgrade is needed.
fn inspect(db: &IdbDatabase, declared: &Declared) -> Result<Option<Schema>> {
    let stores = list(&db.object_store_names());
    let has = |n: &str| stores.iter().any(|s| s == n);
    if !has(META) || has(LEGACY_OUTBOX) || declared.collections.keys().any(|c| !has(c)) {
        return Ok(None);
    }
    let mut schema = Schema::default();
    let names = collection_stores(db);
    if names.is_empty() {
        return Ok(Some(schema));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tx = indexeddb::Tx::read(db, &refs)?;
    for name in &names {
        let present = tx.store(name)?.index_names();
        let missing = |n: &str| !present.iter().any(|p| p == n);
        // Every collection store needs the outbox index, declared here or not (sync reads them all).
        if missing(PENDING) {
            return Ok(None);
        }
        let Some(wanted) = declared.collections.get(name) else {
            continue;
        };
        let compounds = declared.compounds.get(name).map_or(&[][..], Vec::as_slice);
        if missing(TOMBSTONES)
            || wanted.iter().any(|p| missing(p.as_str()))
            || compounds.iter().any(|c| missing(&c.name()))
        {
            return Ok(None);
        }
        let infos = present
            .iter()
            .filter_map(|n| match CompoundIndex::from_name(n) {
                Some(c) => Some(IndexInfo::compound(c)),
                None if n.starts_with('$') => None,
                None => Path::parse(n).ok().map(IndexInfo::single),
            })
            .collect();
        schema.collections.insert(name.clone(), infos);
    }
    Ok(Some(schema))
}

type Failure = Rc<RefCell<Option<Error>>>;
type Callbacks = Rc<RefCell<Vec<Closure<dyn FnMut(Event)>>>>;

async fn open_once(
    factory: &IdbFactory,
    name: &str,
    version: Option<u32>,
    declared: &Declared,
) -> Result<IdbDatabase> {
    let req: IdbOpenDbRequest = from_dom(match version {
        Some(v) => factory.open_with_u32(name, v),
        None => factory.open(name),
    })?;
    let failure: Failure = Rc::new(RefCell::new(None));
    let callbacks: Callbacks = Rc::new(RefCell::new(Vec::new()));
    let on_upgrade = {
        let (req, declared, failure, callbacks) = (
            req.clone(),
            declared.clone(),
            failure.clone(),
            callbacks.clone(),
        );
        Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
            let old = ev
                .dyn_ref::<IdbVersionChangeEvent>()
                .map_or(0.0, |e| e.old_version());
            let result = upgrade(&req, &declared, old, &failure, &callbacks);
            if let Err(e) = result {
                failure.borrow_mut().get_or_insert(e);
                if let Some(tx) = req.transaction() {
                    let _ = tx.abort();
                }
            }
        })
    };
    let on_blocked = Closure::<dyn FnMut(Event)>::new(|_: Event| {
        web_sys::console::warn_1(&JsValue::from_str(
            "ferrosync: upgrading the database waits for another connection (another tab or library) to close it",
        ));
    });
    req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    req.set_onblocked(Some(on_blocked.as_ref().unchecked_ref()));
    let request: &IdbRequest = req.as_ref();
    let result = indexeddb::wait(request).await;
    req.set_onupgradeneeded(None);
    req.set_onblocked(None);
    drop((on_upgrade, on_blocked, callbacks));
    if let Some(e) = failure.borrow_mut().take() {
        return Err(e);
    }
    result?
        .dyn_into::<IdbDatabase>()
        .map_err(|_| Error::storage("UnknownError", "open did not return a database"))
}

/// Runs inside `upgradeneeded`: creates what is missing, back-fills new indexes, records the schema.
fn upgrade(
    req: &IdbOpenDbRequest,
    declared: &Declared,
    old_version: f64,
    failure: &Failure,
    callbacks: &Callbacks,
) -> Result<()> {
    let db: IdbDatabase = from_dom(req.result())?
        .dyn_into()
        .map_err(|_| Error::storage("UnknownError", "upgrade without a database"))?;
    let tx = req
        .transaction()
        .ok_or_else(|| Error::storage("UnknownError", "upgrade without a transaction"))?;
    let stores = list(&db.object_store_names());
    let has = |n: &str| stores.iter().any(|s| s == n);
    if !has(META) {
        from_dom(db.create_object_store(META))?;
    }
    for (collection, wanted) in &declared.collections {
        let (store, created) = if has(collection) {
            (indexeddb::store(&tx, collection)?, false)
        } else {
            let params = IdbObjectStoreParameters::new();
            params.set_key_path(&JsValue::from_str(F_ID));
            let s = from_dom(db.create_object_store_with_optional_parameters(collection, &params))?;
            (s, true)
        };
        let present = list(&store.index_names());
        if !present.iter().any(|n| n == TOMBSTONES) {
            from_dom(store.create_index_with_str(TOMBSTONES, F_TOMB))?;
        }
        let mut added = Vec::new();
        let compounds = declared.compounds.get(collection).into_iter().flatten();
        let infos = (wanted.iter().cloned().map(IndexInfo::single))
            .chain(compounds.cloned().map(IndexInfo::compound));
        for info in infos {
            let name = info.name();
            if !present.contains(&name) {
                let params = IdbIndexParameters::new();
                params.set_unique(false);
                from_dom(store.create_index_with_str_and_optional_parameters(
                    &name,
                    &info.key_path(),
                    &params,
                ))?;
                added.push(info);
            }
        }
        if !created && !added.is_empty() {
            backfill(&store, &tx, added, failure, callbacks)?;
        }
    }
    // The outbox index on every collection store, then the rows of a legacy `_outbox` moved into
    // the records (their puts are requests of this transaction, issued after the index exists).
    for name in collection_stores(&db) {
        let store = indexeddb::store(&tx, &name)?;
        if !list(&store.index_names()).iter().any(|n| n == PENDING) {
            let key_path = Array::of2(&F_PEND.into(), &F_ID.into());
            from_dom(store.create_index_with_str_sequence(PENDING, &key_path))?;
        }
    }
    if has(LEGACY_OUTBOX) {
        from_dom(migrate_outbox(&db, &tx))?;
    }
    // A readable description of what exists, for humans and tools (IndexedDB itself is the truth).
    let description = js_sys::Object::new();
    for name in list(&db.object_store_names()) {
        if name.starts_with('_') {
            continue;
        }
        let store = indexeddb::store(&tx, &name)?;
        let paths: Array = list(&store.index_names())
            .into_iter()
            .filter(|n| !n.starts_with('$'))
            .map(|n| JsValue::from_str(&n))
            .collect();
        from_dom(Reflect::set(&description, &name.into(), &paths))?;
    }
    let meta = indexeddb::store(&tx, META)?;
    from_dom(meta.put_with_key(&description, &SCHEMA.into()))?;
    if old_version == 0.0 {
        // The client id is also written lazily on open; creating it here saves a write later.
        from_dom(meta.put_with_key(
            &JsValue::from_str(&meta::new_client_id()),
            &CLIENT_ID.into(),
        ))?;
    }
    Ok(())
}

/// Adds the keys of the indexes `added` to every live record of `store`, inside the upgrade
/// transaction (cursor callbacks only; nothing foreign is awaited).
fn backfill(
    store: &IdbObjectStore,
    tx: &IdbTransaction,
    added: Vec<IndexInfo>,
    failure: &Failure,
    callbacks: &Callbacks,
) -> Result<()> {
    let req = from_dom(store.open_cursor())?;
    let (req2, tx, failure) = (req.clone(), tx.clone(), failure.clone());
    // The keys come from the same JavaScript as every local write's (no JSON round trip).
    let paths = records::index_paths(&added);
    let step = move || -> Result<()> {
        let cursor = from_dom(req2.result())?;
        if cursor.is_null() || cursor.is_undefined() {
            return Ok(());
        }
        let cursor: IdbCursorWithValue = cursor.unchecked_into();
        let record = from_dom(cursor.value())?;
        if let Some(doc) = records::doc_of(&record) {
            let ix = records::ix_of(&record)?;
            let keys = records::projection(&doc, &paths);
            let (ix, keys): (&js_sys::Object, &js_sys::Object) =
                (ix.unchecked_ref(), keys.unchecked_ref());
            js_sys::Object::assign(ix, keys);
            from_dom(cursor.update(&record))?;
        }
        from_dom(cursor.continue_())
    };
    let cb = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if let Err(e) = step() {
            failure.borrow_mut().get_or_insert(e);
            let _ = tx.abort();
        }
    });
    req.set_onsuccess(Some(cb.as_ref().unchecked_ref()));
    callbacks.borrow_mut().push(cb);
    Ok(())
}

/// Deletes a whole database (`Database.destroy`).
pub async fn destroy(name: &str) -> Result<()> {
    let factory = indexeddb::factory()?;
    let req = factory.delete_database(name).map_err(|e| dom_error(&e))?;
    indexeddb::wait(req.as_ref()).await.map(|_| ())
}
