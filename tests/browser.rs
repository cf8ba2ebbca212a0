//! Browser tests on the main thread, against the real IndexedDB of headless Chromium:
//! `CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test browser`

mod common;

use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn crud_and_generated_ids() {
    crud_and_ids().await;
}

#[wasm_bindgen_test]
async fn every_query_operator_with_index_and_scan() {
    queries_with_and_without_indexes().await;
}

#[wasm_bindgen_test]
async fn invalid_documents_are_rejected_and_write_nothing() {
    invalid_documents_write_nothing().await;
}

#[wasm_bindgen_test]
async fn invalid_queries_are_rejected() {
    invalid_queries().await;
}

#[wasm_bindgen_test]
async fn bulk_put_is_all_or_nothing() {
    bulk_put_all_or_nothing().await;
}

#[wasm_bindgen_test]
async fn writes_stamp_hlc_and_fill_the_outbox() {
    outbox_and_hlc().await;
}

#[wasm_bindgen_test]
async fn watch_calls_back_only_for_changed_results() {
    watch_semantics().await;
}

#[wasm_bindgen_test]
async fn two_instances_see_each_others_writes() {
    two_instances().await;
}

#[wasm_bindgen_test]
async fn burst_of_writes_reaches_other_instances() {
    common::burst_of_writes_reaches_other_instances().await;
}

#[wasm_bindgen_test]
async fn writes_restamp_when_another_instance_clock_is_ahead() {
    common::writes_restamp_when_another_instance_clock_is_ahead().await;
}

#[wasm_bindgen_test]
async fn live_results_always_equal_find() {
    live_results_equal_find().await;
}

#[wasm_bindgen_test]
async fn watch_results_never_alias_the_callers_objects() {
    watch_results_are_not_the_callers_objects().await;
}

#[wasm_bindgen_test]
async fn connection_closed_by_the_browser_is_reopened() {
    reconnects_when_the_browser_closes_the_connection().await;
}

/// The persisted clock is a bound above the stamps, written once in a while instead of by every
/// write (core's `sync::write_clock`). Two instances on one database, writing in bursts and in
/// turns, single puts and batches (issued before the clock read, and after it): every write is
/// stamped above the one before, and the persisted clock is never below a stamp given. Before the
/// bound the persisted clock was the last stamp itself (the first assertion failed).
#[wasm_bindgen_test]
async fn the_persisted_clock_bounds_every_stamp_whichever_instance_writes() {
    let name = unique("bound");
    let db1 = open(&name, r#"{"tasks": {}}"#).await;
    let db2 = open(&name, r#"{"tasks": {}}"#).await;
    let read_clock = || {
        let f = js_sys::Function::new_with_args(
            "db",
            r#"return new Promise((resolve, reject) => {
  const r = db.transaction("_meta").objectStore("_meta").get("clock");
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
})"#,
        );
        let raw = db1.store().raw_connection_for_test().unwrap();
        let p = f.call1(&JsValue::NULL, &raw).unwrap();
        ok(wasm_bindgen::JsCast::unchecked_into(p))
    };
    let turns = [1, 1, 1, 2, 1, 2, 2, 2, 1, 2, 1, 1, 2, 2, 1];
    let mut last: Option<String> = None;
    for (i, w) in turns.into_iter().enumerate() {
        let db = if w == 1 { &db1 } else { &db2 };
        let tasks = coll(db, "tasks");
        // Every fifth write a batch of 20, which waits for the clock read.
        let n = if i % 5 == 4 { 20 } else { 1 };
        let docs: Vec<String> = (0..n)
            .map(|k| format!(r#"{{"id": "w{i:02}-{k}"}}"#))
            .collect();
        if n == 1 {
            put(&tasks, &docs[0]).await;
        } else {
            bulk(&tasks, &format!("[{}]", docs.join(","))).await;
        }
        let rec = db
            .store()
            .record("tasks", &format!("w{i:02}-0"))
            .await
            .unwrap()
            .unwrap();
        let hlc = prop(&rec, "hlc").as_string().unwrap();
        let clock = read_clock().await.as_string().unwrap();
        if let Some(last) = &last {
            assert!(
                hlc > *last,
                "write {i} (instance {w}): {hlc} not above {last}"
            );
        }
        assert!(
            clock >= hlc,
            "write {i}: persisted {clock} below the stamp {hlc}"
        );
        if i == 0 {
            assert!(
                clock > hlc,
                "the first write persists a bound ahead of its stamp"
            );
        }
        last = Some(hlc);
    }
    db1.close();
    db2.close();
    destroy(&name).await;
}

/// A stored clock that does not parse fails every write with a message naming it, and nothing of
/// the write is stored: a single put and a small batch (their puts issued before the clock read
/// returns) as much as a batch that waits for the read. Once the clock is whole again, writes go
/// through.
#[wasm_bindgen_test]
async fn a_corrupt_stored_clock_fails_writes_and_stores_nothing() {
    let name = unique("badclock");
    let db = open(&name, r#"{"tasks": {"indexes": ["done"]}}"#).await;
    let tasks = coll(&db, "tasks");
    put(&tasks, r#"{"id": "a", "done": false}"#).await;
    let set_clock = |value: &str| {
        let f = js_sys::Function::new_with_args(
            "db, value",
            r#"return new Promise((resolve, reject) => {
  const tx = db.transaction("_meta", "readwrite");
  tx.objectStore("_meta").put(value, "clock");
  tx.oncomplete = () => resolve();
  tx.onabort = () => reject(tx.error);
})"#,
        );
        let raw = db.store().raw_connection_for_test().unwrap();
        let p = f
            .call2(&JsValue::NULL, &raw, &JsValue::from_str(value))
            .unwrap();
        ok(wasm_bindgen::JsCast::unchecked_into(p))
    };
    set_clock("not a clock").await;

    let batch: Vec<String> = (0..20)
        .map(|k| format!(r#"{{"id": "c{k}", "done": true}}"#))
        .collect();
    let writes = [
        tasks.put(json(r#"{"id": "b", "done": true}"#)),
        tasks.bulk_put(json(r#"[{"id": "b", "done": true}, {"id": "b2"}]"#)),
        tasks.bulk_put(json(&format!("[{}]", batch.join(",")))),
    ];
    for (i, p) in writes.into_iter().enumerate() {
        let err = wasm_bindgen_futures::JsFuture::from(p)
            .await
            .expect_err("a write over a corrupt clock");
        assert_eq!(code(&err), "STORAGE_ERROR", "write {i}: {}", message(&err));
        assert!(
            message(&err).contains("stored clock"),
            "write {i}: {}",
            message(&err)
        );
    }
    assert_eq!(ids(&tasks, "{}").await, s(&["a"]));
    assert_eq!(db.store().outbox_len().await.unwrap(), 1);

    set_clock("000000000001-000000-0123456789abcdef").await;
    put(&tasks, r#"{"id": "b", "done": true}"#).await;
    assert_eq!(ids(&tasks, "{}").await, s(&["a", "b"]));
    db.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn invalid_options_are_rejected() {
    use ferrosync::Database;
    let cases: Vec<(JsValue, &str)> = vec![
        (
            JsValue::UNDEFINED,
            "expects an object like { name, collections }, got undefined",
        ),
        (
            json(r#"{"collections": {}}"#),
            "name must be a non-empty string",
        ),
        (
            json(r#"{"name": "", "collections": {}}"#),
            "name must be a non-empty string",
        ),
        (json(r#"{"name": "x"}"#), "collections must be an object"),
        (
            json(r#"{"name": "x", "collections": {}, "colections": {}}"#),
            "unknown option \"colections\"",
        ),
        (
            json(r#"{"name": "x", "collections": {"1bad": {}}}"#),
            "invalid collection name \"1bad\"",
        ),
        (
            json(r#"{"name": "x", "collections": {"_meta": {}}}"#),
            "invalid collection name",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": {"indexes": "done"}}}"#),
            "indexes must be an array",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": {"indexes": [1]}}}"#),
            "expected field path strings",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": {"indexes": ["a..b"]}}}"#),
            "empty segment",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": {"indexes": ["id"]}}}"#),
            "always indexed",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": {"index": ["a"]}}}"#),
            "unknown option \"index\" in collections.t",
        ),
        (
            json(r#"{"name": "x", "collections": {"t": 5}}"#),
            "collections.t must be an object",
        ),
    ];
    for (opts, want) in cases {
        let msg = rejects(Database::open(opts), "INVALID_OPTIONS").await;
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    }
    rejects(Database::destroy(JsValue::from_f64(1.0)), "INVALID_OPTIONS").await;
}

#[wasm_bindgen_test]
async fn schema_upgrade_adds_collections_and_indexes_and_keeps_data() {
    let name = unique("upgrade");
    let v1 = open(&name, r#"{"tasks": {"indexes": ["done"]}}"#).await;
    bulk(&coll(&v1, "tasks"), r#"[{"id": "a", "done": false, "title": "x", "meta": {"p": 1}}, {"id": "b", "done": true, "title": "y"}]"#).await;
    let old_tasks = coll(&v1, "tasks");

    // A second instance opening with a new index and a new collection upgrades the database while
    // the first is open: the first lets go (versionchange) and reopens on its next call.
    let v2 = open(
        &name,
        r#"{"tasks": {"indexes": ["done", "title", "meta.p"]}, "notes": {}}"#,
    )
    .await;
    let tasks = coll(&v2, "tasks");
    let q = ferrosync_core::query::Query::parse(r#"{"where": {"title": "x"}}"#).unwrap();
    assert_eq!(
        v2.store().explain("tasks", &q).await.unwrap(),
        "index:title"
    );
    // Existing records were back-filled into the new indexes.
    assert_eq!(ids(&tasks, r#"{"where": {"title": "x"}}"#).await, s(&["a"]));
    assert_eq!(
        ids(&tasks, r#"{"where": {"meta.p": null}}"#).await,
        s(&["b"])
    );
    assert_eq!(ids(&tasks, r#"{"where": {"done": true}}"#).await, s(&["b"]));
    put(&coll(&v2, "notes"), r#"{"id": "n"}"#).await;

    // The old instance still works, and writes the projection of indexes it never declared.
    put(&old_tasks, r#"{"id": "c", "done": false, "title": "x"}"#).await;
    assert_eq!(
        ids(&tasks, r#"{"where": {"title": "x"}}"#).await,
        s(&["a", "c"])
    );
    v1.close();
    v2.close();

    // Opening with fewer collections and indexes drops nothing.
    let v3 = open(&name, r#"{"notes": {}}"#).await;
    throws(
        v3.collection(JsValue::from_str("tasks")),
        "UNKNOWN_COLLECTION",
    );
    v3.close();
    let v4 = open(&name, r#"{"tasks": {}, "notes": {}}"#).await;
    assert_eq!(ids(&coll(&v4, "tasks"), "{}").await, s(&["a", "b", "c"]));
    assert_eq!(
        v4.store().explain("tasks", &q).await.unwrap(),
        "index:title"
    );
    assert_eq!(count(&coll(&v4, "notes"), "{}").await, 1);
    v4.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn destroy_deletes_everything_and_stops_open_instances() {
    let name = unique("destroy");
    let db = open(&name, r#"{"tasks": {}}"#).await;
    let tasks = coll(&db, "tasks");
    put(&tasks, r#"{"id": "a"}"#).await;
    destroy(&name).await;
    let msg = rejects(tasks.get(JsValue::from_str("a")), "DATABASE_CLOSED").await;
    assert!(msg.contains("deleted"), "{msg}");
    let again = open(&name, r#"{"tasks": {}}"#).await;
    assert_eq!(count(&coll(&again, "tasks"), "{}").await, 0);
    again.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
async fn sync_hook_notifies_watches_here_and_in_other_instances() {
    let name = unique("hook");
    let db1 = open(&name, r#"{"tasks": {}}"#).await;
    let db2 = open(&name, r#"{"tasks": {}}"#).await;
    let (r1, r2) = (Recorder::new(), Recorder::new());
    let _s1 = coll(&db1, "tasks")
        .watch(JsValue::UNDEFINED, r1.function())
        .unwrap();
    let _s2 = coll(&db2, "tasks")
        .watch(JsValue::UNDEFINED, r2.function())
        .unwrap();
    assert!(r1.wait_for(1, 2000.0).await && r2.wait_for(1, 2000.0).await);

    // What the sync engine does after applying a pulled page in its own transaction: write the
    // records, then call notify_changed once.
    let store = db1.store();
    store.run(|conn| async move {
        let tx = ferrosync::store::indexeddb::transaction(&conn.db, &["tasks"], true)?;
        let done = ferrosync::store::indexeddb::TxDone::new(&tx);
        let st = ferrosync::store::indexeddb::store(&tx, "tasks")?;
        for id in ["p1", "p2"] {
            let rec = json(&format!(r#"{{"id": "{id}", "hlc": "000000000001-000000-server", "doc": {{"id": "{id}"}}}}"#));
            st.put(&rec).unwrap();
        }
        done.wait().await
    }).await.unwrap();
    store.notify_changed("tasks", vec!["p1".into(), "p2".into()]);
    assert!(r1.wait_for(2, 2000.0).await);
    assert!(r2.wait_for(2, 2000.0).await);
    assert_eq!(r1.last(), s(&["p1", "p2"]));
    assert_eq!(r2.last(), s(&["p1", "p2"]));
    sleep(50).await;
    assert_eq!((r1.count(), r2.count()), (2, 2));
    db1.close();
    db2.close();
    destroy(&name).await;
}

#[wasm_bindgen_test]
fn quota_exceeded_maps_to_its_code() {
    // The mapping, unit level: a QuotaExceededError DOMException becomes QUOTA_EXCEEDED.
    let dom = web_sys::DomException::new_with_message_and_name("disk full", "QuotaExceededError")
        .unwrap();
    let err = ferrosync::store::indexeddb::dom_error(&dom.into());
    assert_eq!(err.code(), "QUOTA_EXCEEDED");
    let js: JsValue = err.into();
    assert_eq!(code(&js), "QUOTA_EXCEEDED");
    assert!(message(&js).contains("disk full"));
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &[
    "a", "b", "c", "$x", "x$", "", "é", "a.b", "$", "nested", "list",
];
const STRINGS: &[&str] = &["", "x", "é", "😀", "\u{1}", "a.b", "$gt", "\u{FFFD}"];

fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::{json, Value};
    let kind = if depth > 3 {
        rng.below(5)
    } else {
        rng.below(7)
    };
    match kind {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.below(2000) as i64 - 1000),
        3 => json!((rng.below(2000) as f64 - 1000.0) / 8.0),
        4 => json!(rng.pick(STRINGS)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                m.insert(rng.pick(KEYS).to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn random_doc(rng: &mut Rng) -> serde_json::Value {
    use serde_json::{json, Value};
    let mut doc = match random_value(rng, 1) {
        Value::Object(m) if rng.below(10) > 0 => m,
        other if rng.below(20) == 0 => return other, // not an object at all
        _ => serde_json::Map::new(),
    };
    let id = match rng.below(12) {
        0 => None,
        1 => Some(json!("")),
        2 => Some(json!("x".repeat(256))),
        3 => Some(json!("é".repeat(129))), // 258 bytes
        4 => Some(json!("a\u{7f}b")),
        5 => Some(json!("a\u{85}b")), // C1 control
        6 => Some(json!(7)),
        7 => Some(Value::Null),
        8 => Some(json!({"x": 1})),
        _ => Some(json!(format!("id-{}", rng.below(1000)))),
    };
    if let Some(id) = id {
        doc.insert("id".into(), id);
    }
    if rng.below(25) == 0 {
        // Around the depth limit.
        let mut v = json!(1);
        for _ in 0..(95 + rng.below(10)) {
            v = if rng.below(2) == 0 {
                json!({ "d": v })
            } else {
                json!([v])
            };
        }
        doc.insert("deep".into(), v);
    }
    Value::Object(doc)
}

#[wasm_bindgen_test]
fn js_document_checks_and_index_keys_agree_with_core() {
    use ferrosync::js::convert::check_document_for_test;
    use ferrosync::store::records::{key_of, key_to_js};
    use ferrosync_core::document::validate;
    use ferrosync_core::query::IndexKey;

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..4000 {
        let doc = random_doc(&mut rng);
        let text = serde_json::to_string(&doc).unwrap();
        let js_doc = js_sys::JSON::parse(&text).unwrap();
        let ours = check_document_for_test(&js_doc);
        let core = match validate(&doc) {
            Ok(id) => Ok(id.map(str::to_string)),
            Err(e) => Err(format!("invalid document: {e}")),
        };
        assert_eq!(ours, core, "document {i}: {text}");
        if core.is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
        // Index keys of every value in the document, JavaScript vs core.
        let value = random_value(&mut rng, 0);
        let js_value = js_sys::JSON::parse(&serde_json::to_string(&value).unwrap()).unwrap();
        let want = IndexKey::of(Some(&value)).map(|k| to_json(&key_to_js(&k)));
        let got = Some(to_json(&key_of(&js_value))).filter(|s| s != "undefined");
        assert_eq!(got, want, "key of {value}");
    }
    assert_eq!(
        to_json(&key_of(&JsValue::UNDEFINED)),
        "[0]",
        "missing field"
    );
    assert!(
        accepted > 500 && rejected > 500,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[wasm_bindgen_test]
async fn a_dropped_instance_does_not_block_upgrades() {
    let name = unique("dropped");
    let db = open(&name, r#"{"tasks": {}}"#).await;
    put(&coll(&db, "tasks"), r#"{"id": "a"}"#).await;
    drop(db); // freed by the application without close()
    let upgraded = open(&name, r#"{"tasks": {"indexes": ["x"]}}"#).await;
    assert_eq!(ids(&coll(&upgraded, "tasks"), "{}").await, s(&["a"]));
    upgraded.close();
    destroy(&name).await;
}

/// A database written before the outbox moved into the records (a separate `_outbox` store) is
/// migrated on open: its pending rows become pending records, nothing else changes, the store goes.
#[wasm_bindgen_test]
async fn legacy_outbox_store_is_migrated_on_open() {
    let name = unique("legacy");
    upgrade_by_hand(
        &name,
        r#"
    db.createObjectStore("_meta");
    db.createObjectStore("_outbox", { keyPath: ["collection", "id"] });
    const tasks = db.createObjectStore("tasks", { keyPath: "id" });
    tasks.createIndex("$tombstones", "tomb");
    tasks.createIndex("done", "ix.pdone");
    const meta = tx.objectStore("_meta"), outbox = tx.objectStore("_outbox");
    meta.put("00000000000a-000000-legacyclient0001", "clock");
    meta.put("legacyclient0001", "clientId");
    tasks.put({ id: "a", hlc: "000000000001-000000-legacyclient0001", doc: { id: "a", done: false }, ix: { pdone: [1, 0] } });
    tasks.put({ id: "b", hlc: "000000000002-000000-legacyclient0001", doc: { id: "b", done: true }, ix: { pdone: [1, 1] } });
    tasks.put({ id: "c", hlc: "000000000003-000000-legacyclient0001", tomb: "000000000003-000000-legacyclient0001" });
    tasks.put({ id: "d", hlc: "000000000004-000000-otherclient00001", doc: { id: "d", done: true }, ix: { pdone: [1, 1] } });
    outbox.put({ collection: "tasks", id: "a", hlc: "000000000001-000000-legacyclient0001", deleted: false });
    outbox.put({ collection: "tasks", id: "c", hlc: "000000000003-000000-legacyclient0001", deleted: true });
    outbox.put({ collection: "tasks", id: "d", hlc: "000000000004-000000-otherclient00001", deleted: false, kind: "resync" });
    outbox.put({ collection: "gone", id: "x", hlc: "000000000005-000000-legacyclient0001", deleted: false });
"#,
    )
    .await;

    let db = open(&name, r#"{"tasks": {"indexes": ["done"]}}"#).await;
    let store = db.store();
    let conn = store.raw_connection_for_test().expect("open connection");
    assert!(!conn.object_store_names().contains("_outbox"));
    let rows = store.outbox(None).await.unwrap();
    let summary: Vec<(String, bool)> = rows.iter().map(|r| (r.id.clone(), r.deleted)).collect();
    assert_eq!(
        summary,
        vec![
            ("a".to_string(), false),
            ("c".to_string(), true),
            ("d".to_string(), false)
        ]
    );
    assert_eq!(rows[0].hlc, "000000000001-000000-legacyclient0001");
    assert_eq!(store.outbox_len().await.unwrap(), 3);
    let d = store.record("tasks", "d").await.unwrap().unwrap();
    assert_eq!(prop(&d, "resync").as_bool(), Some(true));
    let a = store.record("tasks", "a").await.unwrap().unwrap();
    assert!(prop(&a, "resync").is_undefined());
    // The documents and their index entries are as they were.
    let tasks = coll(&db, "tasks");
    assert_eq!(ids(&tasks, "{}").await, s(&["a", "b", "d"]));
    assert_eq!(
        ids(&tasks, r#"{"where": {"done": true}}"#).await,
        s(&["b", "d"])
    );
    assert_eq!(store.client_id(), "legacyclient0001");
    // New writes go to the records' outbox, after the migrated clock.
    put(&tasks, r#"{"id": "e", "done": false}"#).await;
    let rows = store.outbox(None).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[3].hlc.as_str() > "00000000000a-000000-legacyclient0001");
    db.close();
    destroy(&name).await;
}

/// A database marked with a record format above this version's (a newer version wrote it) is
/// refused with `DATABASE_NEWER`, at open and at the reopen after another tab's upgrade, and left
/// as it is; this version marks the databases it opens with its own format.
#[wasm_bindgen_test]
async fn a_database_of_a_newer_record_format_is_refused() {
    let name = unique("newer");
    let db = open(&name, r#"{"tasks": {}}"#).await;
    let tasks = coll(&db, "tasks");
    put(&tasks, r#"{"id": "a"}"#).await;
    // Another tab, running a newer version, upgrades the database and marks it.
    let seen = upgrade_by_hand(
        &name,
        r#"const meta = tx.objectStore("_meta"), r = meta.get("format");
           r.onsuccess = () => { done(r.result); meta.put(3, "format"); };"#,
    )
    .await;
    assert_eq!(seen.as_f64(), Some(2.0), "this version's mark");
    // This instance reopens on its next operation, and stops there.
    let msg = rejects(tasks.get(JsValue::from_str("a")), "DATABASE_NEWER").await;
    assert!(msg.contains("record format 3"), "{msg}");
    db.close();
    let opts = json(&format!(
        r#"{{"name": "{name}", "collections": {{"tasks": {{}}}}}}"#
    ));
    let msg = rejects(ferrosync::Database::open(opts), "DATABASE_NEWER").await;
    assert!(msg.contains("reload"), "{msg}");
    // Nothing was rewritten: the mark and the record are the newer version's.
    let left = upgrade_by_hand(
        &name,
        r#"const f = tx.objectStore("_meta").get("format"), a = tx.objectStore("tasks").get("a");
           a.onsuccess = () => done([f.result, a.result.doc.id]);"#,
    )
    .await;
    assert_eq!(to_json(&left), r#"[3,"a"]"#);
    destroy(&name).await;
}
