//! `Database`: open, collections, close, destroy.

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::collection::Collection;
use super::convert;
use super::error::reject;
use crate::error::Error;
use crate::live::Registry;
use crate::store::{schema, Store};

/// An open local database: one IndexedDB database with a store per declared collection.
#[wasm_bindgen]
pub struct Database {
    store: Store,
    /// The live queries of this instance: the store tells them what it commits (its sink).
    live: Rc<Registry>,
    /// The sync agent when opened with `sync` (see src/sync).
    sync: Option<crate::sync::Agent>,
}

#[wasm_bindgen]
impl Database {
    /// Opens (creating or upgrading) the database. New collections and indexes are added to an
    /// existing database automatically; nothing is ever dropped.
    #[wasm_bindgen(unchecked_return_type = "Promise<Database>")]
    pub fn open(#[wasm_bindgen(unchecked_param_type = "OpenOptions")] options: JsValue) -> Promise {
        let options = match convert::options(&options) {
            Ok(o) => o,
            Err(e) => return reject(e),
        };
        let setup = match crate::sync::setup(options.sync.as_ref(), &options.conflicts) {
            Ok(s) => s,
            Err(e) => return reject(e),
        };
        future_to_promise(async move {
            let store = Store::open(options.name.clone(), options.declared.clone()).await?;
            let live = Registry::start(&store);
            store.set_sink(live.clone());
            let sync = match crate::sync::start(&store, setup).await {
                Ok(s) => s,
                Err(e) => {
                    store.close();
                    return Err(e.into());
                }
            };
            Ok(Database { store, live, sync }.into())
        })
    }

    /// Deletes a database and all its data. Open instances of it stop working (`DATABASE_CLOSED`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn destroy(#[wasm_bindgen(unchecked_param_type = "string")] name: JsValue) -> Promise {
        let Some(name) = name.as_string().filter(|n| !n.is_empty()) else {
            return reject(Error::InvalidOptions(
                "Database.destroy expects the database name".into(),
            ));
        };
        future_to_promise(async move {
            schema::destroy(&name).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.store.name().to_string()
    }

    /// A declared collection; throws `UNKNOWN_COLLECTION` for any other name. Declared by hand in
    /// `types.rs` as the generic `collection<T>(name): Collection<T>`.
    #[wasm_bindgen(skip_typescript)]
    pub fn collection(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> Result<Collection, JsValue> {
        self.store.check_open()?;
        let name = name
            .as_string()
            .ok_or_else(|| Error::UnknownCollection(format!("<{}>", convert::kind_of(&name))))?;
        self.store.check_collection(&name)?;
        Ok(Collection::new(self.store.clone(), self.live.clone(), name))
    }

    /// Closes the connection; later calls fail with `DATABASE_CLOSED` and live queries stop.
    pub fn close(&self) {
        if let Some(agent) = &self.sync {
            agent.close();
        }
        self.store.close();
    }
}

impl Database {
    /// The store, for the sync engine and tests.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live queries (tests look at the broadcast queue).
    pub fn live(&self) -> &Rc<Registry> {
        &self.live
    }

    /// The sync agent (`None` without the `sync` option); its JS methods are in `sync.rs`.
    pub fn sync_agent(&self) -> Option<&crate::sync::Agent> {
        self.sync.as_ref()
    }
}
