//! Why the store opens and upgrades its IndexedDB database itself instead of through rexie's builder
//! (rexie carries every request of the store; see docs/ARCHITECTURE.md), as executable evidence:
//! rexie's builder, asked to open a ferrosync database with one collection declared, deletes every
//! object store and index it was not told about on the upgrade (idb 0.6 `DatabaseBuilder::build`,
//! which also `expect()`s inside `upgradeneeded`). For ferrosync that is an app version opening with
//! fewer collections, or one `Database.open` in a tab that does not list them all: other
//! collections, the `_meta` store (client id, clock, sync cursor) and the outbox index would be
//! gone, with the pending changes in them never pushed. `schema.rs` creates only what is missing
//! and never deletes.
//!
//! If this test fails, rexie stopped deleting what it was not told about: revisit the choice in
//! docs/ARCHITECTURE.md ("How the store uses rexie").
//!
//! `CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test rexie_hazard`

mod common;

use common::*;
use rexie::{ObjectStore, Rexie};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn rexie_upgrade_deletes_what_it_was_not_told_about_and_ferrosync_does_not() {
    let name = unique("rexie");
    let db = open(&name, r#"{"tasks": {"indexes": ["done"]}, "notes": {}}"#).await;
    put(&coll(&db, "tasks"), r#"{"id": "t", "done": false}"#).await;
    put(&coll(&db, "notes"), r#"{"id": "n"}"#).await;
    let client = db.store().client_id().to_string();
    let version = db
        .store()
        .raw_connection_for_test()
        .expect("open")
        .version() as u32;
    db.close();

    // ferrosync opening with fewer collections keeps everything (also covered in browser.rs).
    let fewer = open(&name, r#"{"tasks": {}}"#).await;
    assert_eq!(fewer.store().outbox_len().await.unwrap(), 2);
    fewer.close();

    // rexie asked for the same thing (the `tasks` store, one version up) drops the rest.
    let rx = Rexie::builder(&name)
        .version(version + 1)
        .add_object_store(ObjectStore::new("tasks").key_path("id"))
        .build()
        .await
        .expect("rexie opens the database");
    let mut stores = rx.store_names();
    stores.sort();
    assert_eq!(stores, vec!["tasks".to_string()], "rexie kept {stores:?}");
    rx.close();

    // What is left after ferrosync recreates what is missing: the task (its indexes rebuilt from
    // the records), while the note and its pending change are lost, and so is the client id.
    let after = open(&name, r#"{"tasks": {}, "notes": {}}"#).await;
    assert_eq!(count(&coll(&after, "tasks"), "{}").await, 1);
    assert_eq!(count(&coll(&after, "notes"), "{}").await, 0);
    let pending = after.store().outbox(None).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].collection, "tasks");
    assert_ne!(after.store().client_id(), client, "`_meta` survived");
    after.close();
    destroy(&name).await;
}
