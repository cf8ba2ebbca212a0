//! Browser tests of a database wiped while open (issue 13 item 6): eviction or "clear site data"
//! deletes the IndexedDB database under a running page, and the next call finds a new, empty one.
//! Sync must notice, never save the cursor it read in the old database into the new one (that would
//! skip every document before it for good), and pull everything again from the start.
//!
//! How a wipe is made here: Chromium force-closes every connection to a database whose site data is
//! cleared (transactions aborted, then a `close` event), then deletes it. The tests dispatch that
//! `close` event on ferrosync's connection (or close it silently, as a browser may) and delete the
//! database with `indexedDB.deleteDatabase`, which must then not be blocked. Real headless
//! Chromium, real IndexedDB, the real ferrosync-server behind `tests/support/faultproxy.py` (run
//! like `tests/sync.rs`).

mod common;

use common::sync::*;
use common::*;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Runs `body` (JS returning a promise) with `args`.
async fn js_promise(params: &str, body: &str, args: &[&str]) -> JsValue {
    let f = Function::new_with_args(params, body);
    let this = JsValue::NULL;
    let p = match args {
        [a] => f.call1(&this, &JsValue::from_str(a)),
        [a, b] => f.call2(&this, &JsValue::from_str(a), &JsValue::from_str(b)),
        _ => unreachable!("one or two arguments"),
    }
    .unwrap();
    JsFuture::from(p.unchecked_into::<Promise>())
        .await
        .unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

/// `indexedDB.deleteDatabase(name)` from outside ferrosync; panics unless it completes within 5 s
/// (it waits, `blocked`, while a closed connection still finishes its transactions).
async fn delete_database(name: &str) {
    js_promise(
        "name",
        r#"return new Promise((resolve, reject) => {
            const req = indexedDB.deleteDatabase(name);
            const timer = setTimeout(() => reject(new Error("still blocked after 5 s")), 5000);
            req.onsuccess = () => { clearTimeout(timer); resolve(); };
            req.onerror = () => { clearTimeout(timer); reject(req.error); };
        });"#,
        &[name],
    )
    .await;
}

/// What Chromium does on "clear site data" or eviction: every connection to the database is
/// force-closed (a `close` event on each), then the database is deleted.
async fn wipe(tabs: &[&Device]) {
    for t in tabs {
        let conn =
            t.db.store()
                .raw_connection_for_test()
                .expect("an open connection");
        conn.dispatch_event(&web_sys::Event::new("close").unwrap())
            .unwrap();
    }
    delete_database(&tabs[0].name).await;
}

/// The connection is closed without any event (as a browser may close it), then the database is
/// deleted: the store finds out when its next transaction fails.
async fn wipe_silently(d: &Device) {
    d.db.store().close_connection_for_test();
    delete_database(&d.name).await;
}

/// A `_meta` value of database `name`, read over a connection of its own (`undefined` if absent).
async fn meta_value(name: &str, key: &str) -> JsValue {
    js_promise(
        "name, key",
        r#"return new Promise((resolve, reject) => {
            const req = indexedDB.open(name);
            req.onerror = () => reject(req.error);
            req.onsuccess = () => {
                const db = req.result;
                if (!db.objectStoreNames.contains("_meta")) { db.close(); return resolve(undefined); }
                const get = db.transaction("_meta").objectStore("_meta").get(key);
                get.onsuccess = () => { db.close(); resolve(get.result); };
                get.onerror = () => { db.close(); reject(get.error); };
            };
        });"#,
        &[name, key],
    )
    .await
}

/// Brings `d` online and starts `d.sync()` with its next request to `path` held 1.5 s by the
/// proxy, and wipes the database while that request is on the wire; returns the sync's promise.
async fn sync_wiped_midway(d: &Device, path: &str) -> Promise {
    let delay = format!(r#"{{"mode":"delay","path":"{path}","count":1,"ms":1500}}"#);
    control("fault", &delay).await;
    d.offline(false);
    let running = d.db.sync();
    sleep(500).await;
    wipe(&[d]).await;
    running
}

/// Sync options that start no sync by themselves after the open one (the test says when).
fn quiet() -> Opts<'static> {
    Opts {
        sync_extra: r#"{"debounceMs": 60000}"#,
        ..Opts::default()
    }
}

async fn put_docs(d: &Device, ids: std::ops::Range<u32>) {
    for i in ids {
        d.put("tasks", &format!(r#"{{"id": "d{i}", "v": {i}}}"#))
            .await;
    }
}

/// Device `a` and device `b` (which syncs only when asked) in a new namespace `prefix`-..., with
/// `n` documents of a's synced to both.
async fn a_and_b(prefix: &str, n: u32) -> (Device, Device) {
    clear_faults().await;
    let token = unique(prefix);
    let a = device(&unique("a"), &token, Opts::default()).await;
    let b = device(&unique("b"), &token, quiet()).await;
    a.settled().await;
    b.settled().await;
    put_docs(&a, 0..n).await;
    a.sync().await;
    assert_eq!(b.sync().await.1, u64::from(n));
    (a, b)
}

/// Syncs both until they agree; b then holds `n` documents, and a has b's `after`.
async fn ends_converged(a: Device, b: Device, n: u32) {
    let all = converge(&[&a, &b], "tasks").await;
    assert_eq!(b.count("tasks").await, n, "{all}");
    assert_eq!(a.get("tasks", "after").await, r#"{"id":"after","v":"b"}"#);
    a.close_and_destroy().await;
    b.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn a_database_wiped_while_a_pull_is_in_flight_is_pulled_again_from_the_start() {
    // Failed before the fix: the pulled page was written into the new, empty database with its
    // cursor, the sync succeeded, and d0..d5 were never pulled again.
    let (a, b) = a_and_b("wiped-pull", 6).await;
    put_docs(&a, 6..8).await;
    a.sync().await;

    // b's next pull (d6, d7 and a cursor after them) is slow; the database is wiped meanwhile.
    let first = sync_wiped_midway(&b, "/v1/pull").await;
    let msg = rejects(first, "DATABASE_WIPED").await;
    assert!(msg.contains("wiped"), "{msg}");
    let error = prop(&b.status(), "error");
    assert_eq!(
        prop(&error, "code").as_string().as_deref(),
        Some("DATABASE_WIPED")
    );
    clear_faults().await;
    assert!(
        meta_value(&b.name, "syncCursor").await.is_undefined(),
        "no cursor saved in the new database"
    );
    assert_eq!(b.count("tasks").await, 0, "nothing of the refused page");

    // A local edit after the wipe, and more from a.
    b.put("tasks", r#"{"id": "after", "v": "b"}"#).await;
    put_docs(&a, 8..9).await;
    a.sync().await;
    let (pushed, pulled, _) = b.sync().await;
    assert_eq!(pushed, 1, "the edit made after the wipe");
    assert_eq!(pulled, 9, "everything again, from the start");
    assert!(prop(&b.status(), "error").is_null());
    assert_eq!(b.get("tasks", "d0").await, r#"{"id":"d0","v":0}"#);
    ends_converged(a, b, 10).await;
}

#[wasm_bindgen_test]
async fn a_database_wiped_while_a_push_is_in_flight_keeps_the_edits_made_after_it() {
    // Failed before the fix: the pull after the push read from the cursor remembered in memory,
    // so the new database never got the documents pulled before the wipe.
    let (a, b) = a_and_b("wiped-push", 3).await;
    b.offline(true);
    for i in 0..3 {
        b.put("tasks", &format!(r#"{{"id": "p{i}", "v": "b"}}"#))
            .await;
    }

    // b's push is slow; the database is wiped meanwhile, and b writes again into the new one.
    let first = sync_wiped_midway(&b, "/v1/push").await;
    b.put("tasks", r#"{"id": "after", "v": "b"}"#).await;
    let report = ok(first).await;
    clear_faults().await;
    assert_eq!(prop(&report, "pushed").as_f64(), Some(3.0));
    assert_eq!(
        b.pending().await,
        1,
        "the ack of the old rows moved no watermark over the new edit"
    );
    assert_eq!(b.count("tasks").await, 7, "pulled from the start");
    let (pushed, _, _) = b.sync().await;
    assert_eq!(pushed, 1);
    ends_converged(a, b, 7).await;
}

#[wasm_bindgen_test]
async fn a_database_wiped_while_idle_resyncs_at_the_next_call() {
    // Failed before the fix: the sync after the wipe pulled from the cursor remembered in memory
    // and brought only what was newer than it (1 of 6 documents).
    let (a, b) = a_and_b("wiped-idle", 5).await;

    // Force-closed and wiped; the next call is a sync.
    wipe(&[&b]).await;
    put_docs(&a, 5..6).await;
    a.sync().await;
    let (_, pulled, _) = b.sync().await;
    assert_eq!(pulled, 6, "everything again, from the start");
    assert_eq!(b.all("tasks").await, a.all("tasks").await);

    // Closed without an event and wiped; the next call is a local write, which lands in the new
    // database and is pushed. A live query shows the new database, not the old one plus the write.
    let seen = js_sys::Object::new();
    let recorder = Function::new_with_args("seen", "return (docs) => { seen.n = docs.length; };")
        .call1(&JsValue::NULL, &seen)
        .unwrap();
    let _watch = b.coll("tasks").watch(JsValue::UNDEFINED, recorder).unwrap();
    let live = |want: f64| {
        let seen = seen.clone();
        async move {
            let n = prop(&seen, "n").as_f64();
            if n == Some(want) {
                Ok(())
            } else {
                Err(format!("live query has {n:?} documents"))
            }
        }
    };
    eventually("the live query shows 6", 5000.0, || live(6.0)).await;
    wipe_silently(&b).await;
    b.put("tasks", r#"{"id": "after", "v": "b"}"#).await;
    assert_eq!(b.count("tasks").await, 1);
    eventually("the live query shows the new database", 5000.0, || {
        live(1.0)
    })
    .await;
    assert_eq!(b.pending().await, 1);
    let (pushed, _, _) = b.sync().await;
    assert_eq!(pushed, 1);
    assert_eq!(b.count("tasks").await, 7);
    assert_eq!(b.pending().await, 0);
    eventually("the live query shows the resync", 5000.0, || live(7.0)).await;
    ends_converged(a, b, 7).await;
}

#[wasm_bindgen_test]
async fn a_wiped_database_shared_by_two_tabs_resyncs_through_the_syncing_tab() {
    // Failed before the fix: the syncing tab kept its cursor, and after the wipe both tabs saw
    // only the follower's new document.
    clear_faults().await;
    let token = unique("wiped-tabs");
    let name = unique("tab");
    let a = device(&unique("a"), &token, Opts::default()).await;
    let t1 = device(&name, &token, Opts::default()).await;
    t1.settled().await;
    let t2 = device(&name, &token, Opts::default()).await;
    sleep(200).await;
    put_docs(&a, 0..4).await;
    a.sync().await;
    t2.sync().await;
    assert_eq!(t2.count("tasks").await, 4);

    // Both tabs' connections are force-closed; the follower's write creates the new database.
    wipe(&[&t1, &t2]).await;
    t2.put("tasks", r#"{"id": "from-t2", "v": 2}"#).await;
    assert_eq!(t2.count("tasks").await, 1);
    t2.sync().await;
    assert_eq!(t2.count("tasks").await, 5);
    assert_eq!(t1.count("tasks").await, 5);
    assert_eq!(t2.pending().await, 0);
    let all = converge(&[&a, &t2], "tasks").await;
    assert_eq!(t1.all("tasks").await, all);
    assert_eq!(a.get("tasks", "from-t2").await, r#"{"id":"from-t2","v":2}"#);
    a.close_and_destroy().await;
    t1.db.close();
    t2.close_and_destroy().await;
}
