//! Sync in a dedicated worker (no `window`, no `document`): fetch, Web Locks, BroadcastChannel,
//! the event stream and the `online` event all come from the worker's global scope.
//!
//! `FERROSYNC_TEST_SERVER=... FERROSYNC_TEST_CONTROL=... \
//!  CHROMEDRIVER=/usr/bin/chromedriver wasm-pack test --headless --chrome -- --test sync_worker`

mod common;

use common::sync::*;
use common::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn worker_two_devices_converge_with_events_and_the_online_event() {
    assert!(js_sys::Reflect::get(&js_sys::global(), &"window".into())
        .unwrap()
        .is_undefined());
    clear_faults().await;
    let token = unique("worker");
    let a = device(&unique("wa"), &token, Opts::default()).await;
    let b = device(
        &unique("wb"),
        &token,
        Opts {
            sync_extra: r#"{"events": true}"#,
            ..Opts::default()
        },
    )
    .await;
    a.settled().await;
    b.settled().await;
    a.offline(true);
    b.offline(true);
    a.put("tasks", r#"{"id": "w1", "title": "from a"}"#).await;
    b.put("tasks", r#"{"id": "w2", "title": "from b"}"#).await;
    a.online_sync().await;
    b.online_sync().await;
    converge(&[&a, &b], "tasks").await;
    assert_eq!(a.count("tasks").await, 2);

    // The server's event stream reaches b in the worker: a's next write arrives without b asking.
    a.put("tasks", r#"{"id": "w3", "title": "announced"}"#)
        .await;
    a.sync().await;
    let bb = &b;
    eventually("b pulled after the server's event", 5000.0, || async move {
        match bb.get("tasks", "w3").await.as_str() {
            "undefined" => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;

    // The `online` event on the worker's global scope triggers a sync.
    let c = device(&unique("wc"), &token, Opts::default()).await;
    c.settled().await;
    a.put("tasks", r#"{"id": "w4", "title": "after online"}"#)
        .await;
    a.sync().await;
    let global: web_sys::EventTarget = js_sys::global().unchecked_into();
    global
        .dispatch_event(&web_sys::Event::new("online").unwrap())
        .unwrap();
    let cc = &c;
    eventually("c synced after the online event", 5000.0, || async move {
        match cc.get("tasks", "w4").await.as_str() {
            "undefined" => Err("not yet".into()),
            _ => Ok(()),
        }
    })
    .await;
    a.close_and_destroy().await;
    b.close_and_destroy().await;
    c.close_and_destroy().await;
}

#[wasm_bindgen_test]
async fn worker_two_instances_of_one_database_share_one_leader() {
    clear_faults().await;
    let token = unique("wtabs");
    let name = unique("wtab");
    let t1 = device(&name, &token, Opts::default()).await;
    t1.settled().await;
    let t2 = device(&name, &token, Opts::default()).await;
    t2.put("tasks", r#"{"id": "f"}"#).await;
    t2.sync().await;
    assert_eq!(t2.pending().await, 0);
    t1.db.close();
    t2.put("tasks", r#"{"id": "g"}"#).await;
    t2.sync().await;
    assert_eq!(server_feed(&token).await.len(), 2);
    t2.close_and_destroy().await;
}
